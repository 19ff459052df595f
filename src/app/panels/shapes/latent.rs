//! The Shapes tab's learned-latent section: shapes A and B through a WaLa-family VQ-VAE
//! (`methods::wala::latent`), the latent grid inspected channel by channel, and a slider that
//! interpolates the two latents and decodes the result as WaLa decodes (nearest codes, decoder,
//! inverse wavelet transform, marching cubes).

use crate::app::Session;
use crate::app::notify::Log;
use crate::core::colormap::Colormap;
use crate::core::jobs::{self, JobError, JobHandle};
use crate::core::manifest::Entry;
use crate::core::{Affine, Mesh, Volume};
use crate::methods::wala::latent::{Latent, LatentModel, SharedModel};
use crate::render::{Coloring, Geometry, Scene, SceneObject};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Which latent the inspector shows.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum Inspect {
    #[default]
    A,
    B,
    Interpolated,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LatentSettings {
    /// Interpolation weight of B.
    pub t: f32,
    pub inspect: Inspect,
    /// The latent grid's slice shown (along its third axis).
    pub slice: usize,
    pub show_round_trip: bool,
}

impl Default for LatentSettings {
    fn default() -> Self {
        Self {
            t: 0.5,
            inspect: Inspect::A,
            slice: 2,
            show_round_trip: true,
        }
    }
}

/// One shape through the autoencoder.
pub struct Side {
    pub name: String,
    pub latent: Latent,
    /// Channel-major values of the latent, for the inspector.
    pub values: ([usize; 4], Vec<f32>),
    pub codes: Vec<u32>,
    /// IoU of the decoded solid against the (resampled, truncated) input.
    pub iou: f64,
    pub mesh: Option<Arc<Mesh>>,
}

pub struct Encoded {
    pub model: SharedModel,
    pub a: Side,
    pub b: Option<Side>,
    /// Voxel-to-world of the model's grid over shape A's extent.
    affine: Affine,
}

/// An interpolated latent, decoded.
pub struct Interpolated {
    pub t: f32,
    pub values: ([usize; 4], Vec<f32>),
    pub codes: Vec<u32>,
    pub mesh: Option<Arc<Mesh>>,
}

#[derive(Default)]
pub struct LatentRuntime {
    /// The model chosen by name (a `family = "wala"` entry).
    pub model_name: Option<String>,
    job: Option<JobHandle<Encoded>>,
    pub encoded: Option<Encoded>,
    interp_job: Option<(f32, JobHandle<Interpolated>)>,
    pub interpolated: Option<Interpolated>,
    pub error: Option<String>,
}

impl LatentRuntime {
    pub fn busy(&self) -> bool {
        self.job.is_some() || self.interp_job.is_some()
    }

    pub fn poll(&mut self, log: &mut Log) {
        if let Some(result) = self.job.as_ref().and_then(|j| j.poll()) {
            self.job = None;
            match result {
                Ok(e) => {
                    log.info(format!(
                        "{}: latent {:?}, IoU of the round trip {:.3}{}",
                        e.model.name,
                        e.a.values.0,
                        e.a.iou,
                        e.b.as_ref().map_or(String::new(), |b| format!(" / {:.3}", b.iou))
                    ));
                    self.encoded = Some(e);
                    self.interpolated = None;
                    self.error = None;
                }
                Err(e) => self.error = Some(e.to_string()),
            }
        }
        if let Some(result) = self.interp_job.as_ref().and_then(|(_, j)| j.poll()) {
            self.interp_job = None;
            match result {
                Ok(i) => self.interpolated = Some(i),
                Err(e) => self.error = Some(e.to_string()),
            }
        }
    }

    /// The round trip of A and the interpolation, beside the inputs.
    pub fn add_to_scene(&self, scene: &mut Scene, settings: &LatentSettings, round_trip_id: u64, interp_id: u64) {
        let Some(e) = &self.encoded else { return };
        if settings.show_round_trip
            && let Some(m) = &e.a.mesh
        {
            let name = format!("{} (through {})", e.a.name, e.model.name);
            let mut object = SceneObject::new(round_trip_id, name, Geometry::Mesh(m.clone()));
            object.coloring = Coloring::Solid(crate::render::scene::PALETTE[2]);
            scene.objects.push(object);
        }
        if let Some(Interpolated { t, mesh: Some(m), .. }) = &self.interpolated {
            let name = format!("latent interpolation t = {t:.2}");
            let mut object = SceneObject::new(interp_id, name, Geometry::Mesh(m.clone()));
            object.coloring = Coloring::Solid(crate::render::scene::PALETTE[3]);
            scene.objects.push(object);
        }
    }

    pub fn provenance(&self, interpolation: bool) -> serde_json::Value {
        let Some(e) = &self.encoded else {
            return serde_json::Value::Null;
        };
        serde_json::json!({
            "operation": if interpolation {
                "WaLa latent interpolation: (1 − t)·z_A + t·z_B of the pre-quant latents, nearest codes, VQ-VAE decoder, inverse wavelet transform, marching cubes at 0"
            } else {
                "WaLa VQ-VAE round trip: wavelet tree, encoder, nearest codes, decoder, inverse wavelet transform, marching cubes at 0"
            },
            "model": {"name": e.model.name, "sha256": e.model.sha256, "grid": e.model.grid, "truncation": e.model.truncation},
            "a": {"name": e.a.name, "iou": e.a.iou},
            "b": e.b.as_ref().map(|b| serde_json::json!({"name": b.name, "iou": b.iou})),
            "t": if interpolation { self.interpolated.as_ref().map(|i| i.t) } else { None },
        })
    }

    /// Starts decoding the interpolation at `t` unless it is current or running.
    fn schedule_interpolation(&mut self, t: f32, waker: Option<jobs::Waker>) {
        let Some(e) = &self.encoded else { return };
        let Some(b) = &e.b else { return };
        if self.interpolated.as_ref().is_some_and(|i| i.t == t) || self.interp_job.is_some() {
            return;
        }
        let (model, za, zb, affine) = (e.model.clone(), e.a.latent.clone(), b.latent.clone(), e.affine);
        let job = jobs::spawn("Latent interpolation", waker, move |ctx| {
            ctx.set(0.2, "decoding");
            let z = Latent::lerp(&za, &zb, t).map_err(failed)?;
            let values = z.values().map_err(failed)?;
            let decoded = model.decode(&z).map_err(failed)?;
            ctx.check()?;
            Ok(Interpolated {
                t,
                values,
                codes: decoded.codes,
                mesh: zero_surface(&decoded.sdf, affine)?.map(Arc::new),
            })
        });
        self.interp_job = Some((t, job));
    }
}

fn failed(e: impl std::fmt::Display) -> JobError {
    JobError::Failed(e.to_string())
}

fn zero_surface(sdf: &crate::methods::wala::wavelet::Array3, affine: Affine) -> Result<Option<Mesh>, JobError> {
    crate::methods::wala::roundtrip::zero_surface(sdf, affine).map_err(failed)
}

/// WaLa-family models the session knows.
pub(super) fn wala_models(session: &Session) -> Vec<Entry> {
    session
        .models
        .iter()
        .filter(|m| m.manifest.family == "wala")
        .cloned()
        .collect()
}

fn encode_side(model: &LatentModel, name: String, volume: &Volume) -> Result<Side, JobError> {
    let sdf = model.input_sdf(volume).map_err(failed)?;
    let latent = model
        .encode(&sdf)
        .map_err(|e| JobError::Failed(format!("{name}: {e}")))?;
    let values = latent.values().map_err(failed)?;
    let decoded = model.decode(&latent).map_err(failed)?;
    let iou = LatentModel::iou(&sdf, &decoded.sdf);
    let mesh = zero_surface(&decoded.sdf, model.world_from_grid(volume))?.map(Arc::new);
    Ok(Side {
        name,
        latent,
        values,
        codes: decoded.codes,
        iou,
        mesh,
    })
}

/// Loads the chosen model (in the job) and encodes shapes A and B of the wavelet section.
pub fn start(session: &mut Session) {
    let models = wala_models(session);
    let rt = &session.shapes.latent;
    let Some(entry) = rt
        .model_name
        .as_ref()
        .and_then(|n| models.iter().find(|m| &m.manifest.name == n))
        .or(models.first())
        .cloned()
    else {
        return;
    };
    let get = |id: Option<u64>| {
        let id = id?;
        Some((session.get(id)?.name.clone(), session.shapes.volume(id)?))
    };
    let Some(a) = get(session.shapes.wavelet.a) else {
        return;
    };
    let b = get(session.shapes.wavelet.b);
    let waker = session.waker.clone();
    let job = jobs::spawn("WaLa latent", waker, move |ctx| {
        ctx.set(0.05, format!("loading {}", entry.manifest.name));
        let model = Arc::new(LatentModel::from_entry(&entry).map_err(failed)?);
        ctx.check()?;
        ctx.set(0.3, "shape A");
        let affine = model.world_from_grid(&a.1);
        let sa = encode_side(&model, a.0, &a.1)?;
        ctx.check()?;
        let sb = match b {
            Some(b) => {
                ctx.set(0.65, "shape B");
                Some(encode_side(&model, b.0, &b.1)?)
            }
            None => None,
        };
        Ok(Encoded {
            model,
            a: sa,
            b: sb,
            affine,
        })
    });
    session.shapes.latent.job = Some(job);
}

pub fn section(ui: &mut egui::Ui, settings: &mut LatentSettings, session: &mut Session) {
    ui.strong("Learned latent (WaLa VQ-VAE)");
    let models = wala_models(session);
    if models.is_empty() {
        ui.weak("No WaLa-family model found: `latent-workbench train wala-shapes-demo` makes the demo one.");
        return;
    }
    let rt = &mut session.shapes.latent;
    if rt
        .model_name
        .as_ref()
        .is_none_or(|n| !models.iter().any(|m| &m.manifest.name == n))
    {
        rt.model_name = models.first().map(|m| m.manifest.name.clone());
    }
    egui::ComboBox::new("wala-model", "model")
        .selected_text(rt.model_name.clone().unwrap_or_default())
        .show_ui(ui, |ui| {
            for m in &models {
                ui.selectable_value(&mut rt.model_name, Some(m.manifest.name.clone()), &m.manifest.name);
            }
        });
    let busy = rt.job.is_some();
    let has_a = session.shapes.wavelet.a.is_some();
    ui.horizontal(|ui| {
        if ui
            .add_enabled(!busy && has_a, egui::Button::new("Encode A and B"))
            .on_hover_text("Shapes A and B of the wavelet section, resampled to the model's grid")
            .clicked()
        {
            start(session);
        }
        if busy {
            ui.spinner();
        }
    });
    let rt = &mut session.shapes.latent;
    if let Some(e) = &rt.error {
        ui.colored_label(ui.visuals().error_fg_color, e);
    }
    let Some(e) = &rt.encoded else { return };
    let [c, g0, g1, g2] = e.a.values.0;
    egui::Grid::new("latent-report").num_columns(2).show(ui, |ui| {
        ui.label("latent");
        ui.label(format!("{c} × {g0}×{g1}×{g2} (grid {}³ in)", e.model.grid));
        ui.end_row();
        for side in std::iter::once(&e.a).chain(e.b.as_ref()) {
            ui.label(format!("IoU, {}", side.name));
            ui.label(format!("{:.3}", side.iou));
            ui.end_row();
        }
    });
    ui.checkbox(&mut settings.show_round_trip, "show A through the autoencoder");
    if e.b.is_some() {
        ui.add(egui::Slider::new(&mut settings.t, 0.0..=1.0).text("latent A to B"));
        let waker = session.waker.clone();
        session.shapes.latent.schedule_interpolation(settings.t, waker);
    }
    inspector(ui, settings, &session.shapes.latent);
}

/// The latent grid, one small heat map per channel at the chosen slice; hover for values and codes.
fn inspector(ui: &mut egui::Ui, settings: &mut LatentSettings, rt: &LatentRuntime) {
    let Some(e) = &rt.encoded else { return };
    ui.horizontal(|ui| {
        ui.label("inspect");
        ui.selectable_value(&mut settings.inspect, Inspect::A, "A");
        if e.b.is_some() {
            ui.selectable_value(&mut settings.inspect, Inspect::B, "B");
        }
        if rt.interpolated.is_some() {
            ui.selectable_value(&mut settings.inspect, Inspect::Interpolated, "t");
        }
    });
    let (values, codes) = match settings.inspect {
        Inspect::B => e.b.as_ref().map(|b| (&b.values, &b.codes)),
        Inspect::Interpolated => rt.interpolated.as_ref().map(|i| (&i.values, &i.codes)),
        Inspect::A => None,
    }
    .unwrap_or((&e.a.values, &e.a.codes));
    let ([c, gx, gy, gz], data) = (values.0, &values.1);
    settings.slice = settings.slice.min(gz.saturating_sub(1));
    ui.add(egui::Slider::new(&mut settings.slice, 0..=gz.saturating_sub(1)).text("slice (z)"));
    let lim = data.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    ui.label(format!(
        "channels 0–{} at z = {}; colour ±{lim:.2}",
        c - 1,
        settings.slice
    ));
    let cell = 8.0;
    ui.horizontal_wrapped(|ui| {
        for ch in 0..c {
            let size = egui::vec2(gx as f32 * cell, gy as f32 * cell);
            let (rect, response) = ui.allocate_exact_size(size, egui::Sense::hover());
            let painter = ui.painter_at(rect);
            let at = |x: usize, y: usize| data[((ch * gx + x) * gy + y) * gz + settings.slice];
            for x in 0..gx {
                for y in 0..gy {
                    let v = at(x, y);
                    let [r, g, b, _] = Colormap::Diverging.rgba(0.5 + 0.5 * v / lim);
                    // y up, as the axial slices of the 2D viewer.
                    let min = rect.min + egui::vec2(x as f32 * cell, (gy - 1 - y) as f32 * cell);
                    painter.rect_filled(
                        egui::Rect::from_min_size(min, egui::vec2(cell, cell)),
                        0.0,
                        egui::Color32::from_rgb(r, g, b),
                    );
                }
            }
            if let Some(p) = response.hover_pos() {
                let x = (((p.x - rect.min.x) / cell) as usize).min(gx - 1);
                let y = gy - 1 - (((p.y - rect.min.y) / cell) as usize).min(gy - 1);
                let code = codes.get((x * gy + y) * gz + settings.slice).copied().unwrap_or(0);
                response.on_hover_text(format!(
                    "channel {ch}, cell ({x}, {y}, {}): {:.3}, code {code}",
                    settings.slice,
                    at(x, y)
                ));
            }
        }
    });
    let distinct: std::collections::BTreeSet<u32> = codes.iter().copied().collect();
    ui.weak(format!(
        "{} cells use {} distinct codes of {}",
        codes.len(),
        distinct.len(),
        e.model.vqvae.config().n_e
    ));
}
