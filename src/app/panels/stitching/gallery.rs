//! The strip under the maps: the selected samples' inputs (sprites re-rendered from their
//! factors, cached as textures) and, when the decoders are there, their reconstructions
//! unstitched and stitched, decoded in a background job whenever the selection changes.

use super::compute::{self, Analysis, Inputs, Reconstructions};
use crate::core::jobs::{self, JobHandle};
use crate::methods::demo_data::sprites;
use std::collections::HashMap;
use std::sync::Arc;

/// Samples shown in the strip at most (the rest stay selected).
const MAX_SHOWN: usize = 24;
const THUMB_PX: f32 = 48.0;

/// One decoder's reconstructions: its label and one texture per selected row.
type ReconRow = (String, Vec<egui::TextureHandle>);

#[derive(Default)]
pub struct Gallery {
    thumbs: HashMap<usize, egui::TextureHandle>,
    /// Reconstructions of `rows` as textures, one row of images per decoder.
    recon: Option<(Vec<usize>, Vec<ReconRow>)>,
    recon_job: Option<(Vec<usize>, JobHandle<Reconstructions>)>,
    /// The rows whose decoding failed, and why (not retried until the selection changes).
    recon_error: Option<(Vec<usize>, String)>,
}

impl Gallery {
    /// New spaces: every cached picture is stale.
    pub fn clear(&mut self) {
        *self = Self::default();
    }
    /// New analysis (other anchors): the stitched reconstructions are stale.
    pub fn forget_reconstructions(&mut self) {
        if let Some((_, job)) = self.recon_job.take() {
            job.cancel();
        }
        self.recon = None;
        self.recon_error = None;
    }
    pub fn busy(&self) -> bool {
        self.recon_job.is_some()
    }
}

fn texture(ctx: &egui::Context, name: String, rgb: &[u8]) -> egui::TextureHandle {
    let image = egui::ColorImage::from_rgb([sprites::SIZE, sprites::SIZE], rgb);
    ctx.load_texture(name, image, egui::TextureOptions::LINEAR)
}

pub fn show(
    ui: &mut egui::Ui,
    inputs: &Arc<Inputs>,
    analysis: Option<&Arc<Analysis>>,
    selection: &[usize],
    gallery: &mut Gallery,
    waker: Option<jobs::Waker>,
) {
    let shown: Vec<usize> = selection.iter().copied().take(MAX_SHOWN).collect();
    poll(ui.ctx(), gallery);
    // Ask for reconstructions of what is shown (demo only), once per selection.
    let wanted = inputs.demo.is_some() && !shown.is_empty();
    let have = gallery.recon.as_ref().map(|(r, _)| r) == Some(&shown)
        || gallery.recon_job.as_ref().map(|(r, _)| r) == Some(&shown)
        || gallery.recon_error.as_ref().map(|(r, _)| r) == Some(&shown);
    if wanted
        && !have
        && let Some(an) = analysis
    {
        if let Some((_, old)) = gallery.recon_job.take() {
            old.cancel();
        }
        let (inputs, an, rows) = (inputs.clone(), an.clone(), shown.clone());
        let job = jobs::spawn("Decoding the selection", waker, move |ctx| {
            compute::reconstruct(&inputs, &an, &rows, ctx)
        });
        gallery.recon_job = Some((shown.clone(), job));
    }
    if gallery.recon_job.is_some() {
        ui.ctx().request_repaint_after(std::time::Duration::from_millis(100));
    }

    if selection.is_empty() {
        ui.label(egui::RichText::new("Selection").strong());
        ui.weak(if inputs.sprites.is_some() {
            "Select points in either map to see their sprites here, with their reconstructions by each model's \
             decoder, unstitched and stitched."
        } else {
            "Select points in either map to list them here."
        });
        return;
    }
    let more = selection.len().saturating_sub(shown.len());
    ui.horizontal(|ui| {
        ui.label(egui::RichText::new("Selection").strong());
        if more > 0 {
            ui.weak(format!("(first {} of {}; +{more} more)", shown.len(), selection.len()));
        }
        if gallery.recon_job.is_some() {
            ui.spinner();
            ui.weak("decoding");
        }
        if let Some((_, e)) = &gallery.recon_error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
    });
    egui::ScrollArea::horizontal()
        .id_salt("stitching-strip")
        .auto_shrink([false, true])
        .show(ui, |ui| {
            egui::Grid::new("stitching-strip-grid")
                .spacing([4.0, 4.0])
                .show(ui, |ui| {
                    let size = egui::vec2(THUMB_PX, THUMB_PX);
                    match &inputs.sprites {
                        Some(sprites_of) => {
                            ui.label("input");
                            for &row in &shown {
                                let tex = gallery.thumbs.entry(row).or_insert_with(|| {
                                    texture(
                                        ui.ctx(),
                                        format!("stitching-sprite-{row}"),
                                        &sprites::render_rgb8(&sprites_of[row]),
                                    )
                                });
                                ui.add(egui::Image::new((tex.id(), size)))
                                    .on_hover_text(describe(inputs, row));
                            }
                            ui.end_row();
                        }
                        None => {
                            ui.label("samples");
                            ui.vertical(|ui| {
                                for &row in &shown {
                                    ui.label(describe(inputs, row));
                                }
                            });
                            ui.end_row();
                        }
                    }
                    if let Some((rows, kinds)) = &gallery.recon
                        && *rows == shown
                    {
                        for (title, textures) in kinds {
                            ui.label(title);
                            for tex in textures {
                                ui.add(egui::Image::new((tex.id(), size)));
                            }
                            ui.end_row();
                        }
                    }
                });
        });
}

/// A sample's id and labels, one line.
fn describe(inputs: &Inputs, row: usize) -> String {
    let mut s = format!("id {}", inputs.a.ids()[row]);
    for c in inputs.a.columns() {
        s.push_str(&format!(", {} {}", c.name, c.values[row]));
    }
    s
}

fn poll(ctx: &egui::Context, gallery: &mut Gallery) {
    let Some((rows, job)) = &gallery.recon_job else { return };
    let Some(result) = job.poll() else { return };
    let rows = rows.clone();
    gallery.recon_job = None;
    match result {
        Ok(r) => {
            let kinds = r
                .kinds
                .iter()
                .enumerate()
                .map(|(k, (title, images))| {
                    let textures = images
                        .iter()
                        .zip(&rows)
                        .map(|(rgb, row)| texture(ctx, format!("stitching-recon-{k}-{row}"), rgb))
                        .collect();
                    (title.clone(), textures)
                })
                .collect();
            gallery.recon = Some((rows, kinds));
            gallery.recon_error = None;
        }
        Err(crate::core::jobs::JobError::Cancelled) => {}
        Err(e) => gallery.recon_error = Some((rows, e.to_string())),
    }
}
