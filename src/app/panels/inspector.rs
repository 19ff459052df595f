//! The Latent inspector: shape, dtype, statistics, histogram and per-channel heatmaps of the
//! active volume, image or tensor.

use crate::app::{Command, Session};
use crate::core::stats::{Histogram, Summary, channel_planes};
use crate::core::{Asset, Colormap};
use std::collections::HashMap;

const HISTOGRAM_BINS: usize = 64;
/// Heatmaps drawn at most (a 64-channel latent fits; more are counted, not drawn).
const MAX_HEATMAPS: usize = 64;

/// What the inspector shows for one array.
struct Inspected {
    title: String,
    shape: Vec<usize>,
    dtype: String,
    summary: Summary,
    histogram: Histogram,
    heatmaps: Vec<egui::TextureHandle>,
    heat_range: (f32, f32),
    omitted: usize,
    layout_note: &'static str,
}

#[derive(Default)]
pub struct InspectorRuntime {
    /// Which tensor of a multi-tensor file is shown, per asset.
    pub tensor_index: HashMap<u64, usize>,
    cache: Option<((u64, usize), Inspected)>,
}

/// The array of an asset as C-order values plus shape, with a note on how channels were formed.
struct ArrayView {
    title: String,
    values: Vec<f32>,
    /// C-order shape used to cut planes.
    shape: Vec<usize>,
    /// The shape as the file states it (a volume's `[x, y, z(, t)]`).
    display_shape: Vec<usize>,
    /// Volumes are stored bottom row first; flip so heatmaps match the viewer.
    flip_rows: bool,
    dtype: String,
    layout_note: &'static str,
}

fn view(
    title: impl Into<String>,
    values: Vec<f32>,
    shape: Vec<usize>,
    dtype: impl Into<String>,
    layout_note: &'static str,
) -> ArrayView {
    ArrayView {
        title: title.into(),
        values,
        display_shape: shape.clone(),
        flip_rows: false,
        shape,
        dtype: dtype.into(),
        layout_note,
    }
}

fn array_of(asset: &Asset, tensor: usize) -> Option<ArrayView> {
    match asset {
        Asset::Volume(v) => {
            let d = v.dims();
            // x-fastest storage is C order for shape [t, z, y, x].
            let shape = vec![v.frames(), d[2], d[1], d[0]];
            let note = "channels = frames; middle axial slice, oriented as in the viewer";
            let mut a = view("volume", v.data().to_vec(), shape, v.source_kind.name(), note);
            a.display_shape = v.shape();
            a.flip_rows = true;
            Some(a)
        }
        Asset::Image(img) => {
            let c = img.channels().count();
            let planar: Vec<f32> = (0..c).flat_map(|k| img.channel_f32(k)).collect();
            let dtype = format!("{}-bit {}", img.bit_depth().bits(), img.channels().name());
            Some(view(
                "image",
                planar,
                vec![c, img.height(), img.width()],
                dtype,
                "channels = colour channels",
            ))
        }
        Asset::Tensors(ts) => {
            let t = ts.get(tensor.min(ts.len().saturating_sub(1)))?;
            Some(view(
                format!("tensor {}", t.name),
                t.values().to_vec(),
                t.shape().to_vec(),
                t.source_kind.name(),
                "last two axes = rows x cols; with 4+ axes the middle of the third-from-last is shown",
            ))
        }
        Asset::Mesh(m) if !m.scalars.is_empty() => Some(view(
            "mesh scalars",
            m.scalars.clone(),
            vec![m.scalars.len()],
            "float32",
            "per-vertex scalars",
        )),
        Asset::Mesh(m) => {
            let flat: Vec<f32> = m.positions.iter().flatten().copied().collect();
            Some(view(
                "mesh positions (mm)",
                flat,
                vec![m.positions.len(), 3],
                "float32",
                "vertex positions",
            ))
        }
        Asset::Motion(m) => {
            let n = m.corresponding()?;
            let flat: Vec<f32> = m.frames.iter().flatten().flatten().copied().collect();
            Some(view(
                "sequence positions",
                flat,
                vec![m.len(), n, 3],
                "float32",
                "frames × points × xyz",
            ))
        }
        Asset::PointCloud(p) => {
            let flat: Vec<f32> = p.points.iter().flatten().copied().collect();
            Some(view(
                "point positions (mm)",
                flat,
                vec![p.len(), 3],
                "float32",
                "point positions",
            ))
        }
    }
}

fn inspect(ctx: &egui::Context, asset: &Asset, tensor: usize) -> Option<Inspected> {
    let ArrayView {
        title,
        values,
        shape,
        display_shape,
        flip_rows,
        dtype,
        layout_note,
    } = array_of(asset, tensor)?;
    let summary = Summary::of(&values);
    let (lo, hi) = if summary.count > 0 {
        (summary.min, summary.max)
    } else {
        (0.0, 1.0)
    };
    let histogram = Histogram::of(&values, HISTOGRAM_BINS, lo, hi);
    let show_planes = !matches!(asset, Asset::Mesh(_) | Asset::PointCloud(_) | Asset::Motion(_));
    let planes = channel_planes(&values, &shape, if show_planes { MAX_HEATMAPS } else { 0 });
    let heat_range = (lo as f32, hi as f32);
    let heatmaps = planes
        .planes
        .iter()
        .enumerate()
        .map(|(c, p)| {
            let flipped: Vec<f32>;
            let p = if flip_rows {
                flipped = p.chunks(planes.cols.max(1)).rev().flatten().copied().collect();
                &flipped
            } else {
                p
            };
            let rgba: Vec<u8> = Colormap::Viridis
                .apply(p, heat_range.0, heat_range.1)
                .into_iter()
                .flatten()
                .collect();
            let img = egui::ColorImage::from_rgba_unmultiplied([planes.cols, planes.rows], &rgba);
            ctx.load_texture(format!("inspector-{c}"), img, egui::TextureOptions::NEAREST)
        })
        .collect();
    Some(Inspected {
        title,
        shape: display_shape,
        dtype,
        summary,
        histogram,
        heatmaps,
        heat_range,
        omitted: planes.omitted,
        layout_note,
    })
}

pub fn ui(ui: &mut egui::Ui, session: &mut Session, commands: &mut Vec<Command>) {
    let Session {
        assets,
        active,
        inspector,
        ..
    } = session;
    let InspectorRuntime { tensor_index, cache } = inspector;
    let Some(active) = (*active).and_then(|id| assets.iter().find(|a| a.id == id)) else {
        ui.heading("Latent inspector");
        ui.label("Open a volume, image, mesh or tensor file (.npy, .safetensors) to inspect it.");
        return;
    };
    let id = active.id;
    let name = active.name.clone();
    ui.horizontal(|ui| {
        egui::ComboBox::from_label("Asset")
            .selected_text(&name)
            .show_ui(ui, |ui| {
                for a in assets.iter() {
                    if ui.selectable_label(a.id == id, &a.name).clicked() {
                        commands.push(Command::SetActive(a.id));
                    }
                }
            });
        if let Asset::Tensors(ts) = &active.asset
            && ts.len() > 1
        {
            let current = tensor_index.get(&id).copied().unwrap_or(0);
            let mut chosen = current;
            egui::ComboBox::from_label("Tensor")
                .selected_text(ts.get(current).map_or("", |t| t.name.as_str()))
                .show_ui(ui, |ui| {
                    for (i, t) in ts.iter().enumerate() {
                        ui.selectable_value(&mut chosen, i, &t.name);
                    }
                });
            if chosen != current {
                tensor_index.insert(id, chosen);
            }
        }
    });
    let tensor = tensor_index.get(&id).copied().unwrap_or(0);
    let key = (id, tensor);
    if cache.as_ref().is_none_or(|(k, _)| *k != key) {
        *cache = inspect(ui.ctx(), &active.asset, tensor).map(|i| (key, i));
    }
    let Some((_, ins)) = cache else {
        ui.label("Nothing to inspect in this asset.");
        return;
    };
    ui.separator();
    egui::ScrollArea::vertical().auto_shrink([false; 2]).show(ui, |ui| {
        stats_grid(ui, ins);
        ui.add_space(6.0);
        ui.strong("Histogram");
        histogram_ui(ui, &ins.histogram);
        if !ins.heatmaps.is_empty() {
            ui.add_space(6.0);
            ui.strong(format!(
                "Per-channel heatmaps (viridis, shared range {:.4} to {:.4})",
                ins.heat_range.0, ins.heat_range.1
            ));
            ui.weak(ins.layout_note);
            heatmaps_ui(ui, ins);
        }
    });
}

fn stats_grid(ui: &mut egui::Ui, ins: &Inspected) {
    let s = &ins.summary;
    egui::Grid::new("inspector-stats").striped(true).show(ui, |ui| {
        let shape: Vec<String> = ins.shape.iter().map(ToString::to_string).collect();
        for (k, v) in [
            ("What", ins.title.clone()),
            ("Shape", format!("[{}]", shape.join(", "))),
            ("Elements", format!("{}", s.count + s.nan_count)),
            ("Stored dtype", ins.dtype.clone()),
            ("Min", format!("{:.6}", s.min)),
            ("Max", format!("{:.6}", s.max)),
            ("Mean", format!("{:.6}", s.mean)),
            ("Std", format!("{:.6}", s.std)),
            ("L2 norm", format!("{:.6}", s.norm)),
            ("Non-finite", format!("{}", s.nan_count)),
        ] {
            ui.label(k);
            ui.label(v);
            ui.end_row();
        }
    });
}

fn histogram_ui(ui: &mut egui::Ui, h: &Histogram) {
    let width = ui.available_width().min(520.0);
    let (rect, _) = ui.allocate_exact_size(egui::vec2(width, 110.0), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
    let max = h.counts.iter().copied().max().unwrap_or(1).max(1) as f32;
    let bw = rect.width() / h.counts.len().max(1) as f32;
    for (i, &c) in h.counts.iter().enumerate() {
        // Square-root scale so small bins stay visible next to a big background peak.
        let frac = (c as f32 / max).sqrt();
        let x = rect.left() + i as f32 * bw;
        let bar = egui::Rect::from_min_max(
            egui::pos2(x, rect.bottom() - frac * rect.height()),
            egui::pos2(x + bw - 1.0, rect.bottom()),
        );
        painter.rect_filled(bar, 0.0, ui.visuals().selection.bg_fill);
    }
    ui.horizontal(|ui| {
        ui.weak(format!("{:.4}", h.lo));
        ui.add_space((width - 140.0).max(0.0));
        ui.weak(format!("{:.4}", h.hi));
    });
}

fn heatmaps_ui(ui: &mut egui::Ui, ins: &Inspected) {
    let tile = 96.0;
    ui.horizontal_wrapped(|ui| {
        for (c, tex) in ins.heatmaps.iter().enumerate() {
            let size = tex.size_vec2();
            let scale = tile / size.x.max(size.y).max(1.0);
            ui.vertical(|ui| {
                ui.add(egui::Image::new((tex.id(), size * scale)));
                ui.weak(format!("ch {c}"));
            });
        }
    });
    if ins.omitted > 0 {
        ui.weak(format!("... and {} more channels not drawn", ins.omitted));
    }
}
