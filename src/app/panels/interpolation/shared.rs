//! What the Interpolation and Attributes panels share: the LDAE model choice, scan slots (a loaded
//! volume or a file), loading a model or a scan inside a job, file dialogs on a worker thread, the
//! slice strip that shows several volumes of one grid side by side, and the export (NIfTI plus a
//! provenance JSON, both written atomically).

use crate::app::Session;
use crate::core::Colormap;
use crate::core::diffusion::Cancelled;
use crate::core::jobs::{self, JobContext, JobError, JobHandle};
use crate::core::slice::{Layer, Plane, render_plane};
use crate::core::volume::Volume;
use crate::methods::ldae::model::LdaeModel;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Registry family of LDAE models.
pub const FAMILY: &str = "ldae";
/// The shipped demo model (`latent-workbench train ldae-demo`).
pub const DEMO_MODEL: &str = "ldae-demo";
/// How often a panel with a running job redraws to show its progress.
pub const JOB_POLL: std::time::Duration = std::time::Duration::from_millis(100);
/// Said wherever scans are picked: LDAE's offline steps are not done here.
pub const PREPROCESSING_NOTE: &str = "Scans must already be skull-stripped T1 registered to MNI152 (LDAE's external \
     ANTs step: N4, brain extraction, SyN); here they are only resampled to the model grid, padded/cropped and \
     scaled to [0, 1].";

/// Registered LDAE models.
pub fn ldae_models(session: &Session) -> Vec<&crate::core::manifest::Entry> {
    session.models.iter().filter(|m| m.manifest.family == FAMILY).collect()
}

/// The folder of the chosen model, when it is registered.
pub fn model_dir(session: &Session, name: &str) -> Option<PathBuf> {
    ldae_models(session)
        .into_iter()
        .find(|m| m.manifest.name == name)
        .map(|m| m.dir.clone())
}

/// Replaces a chosen model name that is not registered by the first registered LDAE model's (kept
/// when none is registered).
pub fn settle_choice(chosen: &mut String, session: &Session) {
    let models = ldae_models(session);
    if !models.iter().any(|m| &m.manifest.name == chosen)
        && let Some(first) = models.first()
    {
        *chosen = first.manifest.name.clone();
    }
}

/// A combo box of the registered LDAE models; falls back to the first one when the chosen name is
/// not registered.
pub fn model_picker(ui: &mut egui::Ui, salt: &str, chosen: &mut String, session: &Session) {
    settle_choice(chosen, session);
    let models = ldae_models(session);
    egui::ComboBox::new(salt, "Model")
        .selected_text(if models.is_empty() {
            "(none registered)"
        } else {
            chosen.as_str()
        })
        .show_ui(ui, |ui| {
            for m in &models {
                ui.selectable_value(chosen, m.manifest.name.clone(), &m.manifest.name)
                    .on_hover_text(&m.manifest.description);
            }
        });
}

/// Says what to do when no LDAE model is registered.
pub fn no_model_hint(ui: &mut egui::Ui) {
    ui.label(egui::RichText::new("No LDAE model is registered.").strong());
    ui.label(
        "Train the demo model with `latent-workbench train ldae-demo` (it is saved under models/ldae-demo and \
         appears here), or register LDAE's published files with Data > Models > Register a checkpoint (family \
         \"ldae\").",
    );
}

/// The model in `cached` when it came from `dir`, else a fresh load.
pub fn model_for(cached: Option<Arc<LdaeModel>>, dir: &Path, ctx: &JobContext) -> Result<Arc<LdaeModel>, JobError> {
    if let Some(m) = cached.filter(|m| m.dir() == Some(dir)) {
        return Ok(m);
    }
    ctx.set(0.0, "loading the model");
    let model = LdaeModel::from_dir(dir, &crate::core::device::device().device)?;
    ctx.check()?;
    Ok(Arc::new(model))
}

/// A progress callback for the library that maps `(done, total)` onto `[from, from + span]` of the job's
/// bar and turns a cancel request into [`Cancelled`].
pub fn progress<'a>(
    ctx: &'a JobContext,
    from: f32,
    span: f32,
    what: &'a str,
) -> impl FnMut(usize, usize) -> Result<(), Cancelled> + 'a {
    let part = ctx.within(from, span);
    move |done, total| {
        part.set(done as f32 / total.max(1) as f32, format!("{what} {done}/{total}"));
        part.check().map_err(|_| Cancelled)
    }
}

/// Where a scan comes from.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum ScanSource {
    #[default]
    None,
    /// A volume loaded in the session.
    Asset(u64),
    /// A file read by the job.
    File(PathBuf),
}

/// One picked scan and its time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScanSlot {
    pub source: ScanSource,
    pub month: f64,
}

/// A scan handed to a job: the loaded volume (cloned) or a path to read there.
#[derive(Clone, Debug)]
pub struct ScanInput {
    pub name: String,
    pub path: Option<PathBuf>,
    pub volume: Option<Volume>,
}

impl ScanInput {
    /// The slot's scan, or `None` when nothing is picked (or the asset is gone / not a volume).
    pub fn from_slot(slot: &ScanSlot, session: &Session) -> Option<Self> {
        match &slot.source {
            ScanSource::None => None,
            ScanSource::Asset(id) => {
                let a = session.get(*id)?;
                match &a.asset {
                    crate::core::Asset::Volume(v) => Some(Self {
                        name: a.name.clone(),
                        path: a.path.clone(),
                        volume: Some(v.clone()),
                    }),
                    _ => None,
                }
            }
            ScanSource::File(p) => Some(Self {
                name: file_name(p),
                path: Some(p.clone()),
                volume: None,
            }),
        }
    }

    /// The raw volume (read from the file when needed).
    pub fn volume(&self) -> Result<Volume, JobError> {
        match (&self.volume, &self.path) {
            (Some(v), _) => Ok(v.clone()),
            (None, Some(p)) => crate::io::nifti::read(p).map_err(|e| JobError::Failed(e.to_string())),
            (None, None) => Err(JobError::Failed(format!("{}: no volume", self.name))),
        }
    }

    /// Provenance of this input: name, path and a content hash (the file's sha256, else the volume's).
    pub fn describe(&self, raw: &Volume) -> serde_json::Value {
        let sha = self
            .path
            .as_ref()
            .and_then(|p| crate::core::manifest::sha256_file(p).ok())
            .map(|h| ("file_sha256", h))
            .unwrap_or_else(|| ("volume_sha256", crate::methods::ldae::interpolate::volume_key(raw)));
        serde_json::json!({
            "name": self.name,
            "path": self.path.as_ref().map(|p| p.display().to_string()),
            sha.0: sha.1,
            "shape": raw.shape(),
            "spacing_mm": raw.spacing_mm(),
        })
    }
}

pub fn file_name(p: &Path) -> String {
    p.file_name()
        .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// The month in a BIDS-like name (`ses-M12`, `month-12`, `_m06_`), if any.
pub fn month_from_name(name: &str) -> Option<f64> {
    let lower = name.to_lowercase();
    for tag in ["ses-m", "month-", "month", "_m", "-m", " m"] {
        if let Some(pos) = lower.find(tag) {
            let digits: String = lower[pos + tag.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(m) = digits.parse::<u32>() {
                return Some(f64::from(m));
            }
        }
    }
    None
}

/// A combo of the loaded volumes plus a "File…" button, and the month beside it. Returns true when
/// "File…" was pressed (the caller opens the dialog).
pub fn slot_ui(ui: &mut egui::Ui, label: &str, slot: &mut ScanSlot, session: &Session, with_month: bool) -> bool {
    let mut browse = false;
    ui.horizontal(|ui| {
        let l = ui.label(label);
        let shown = match &slot.source {
            ScanSource::None => "(pick a scan)".to_string(),
            ScanSource::Asset(id) => session.get(*id).map_or("(removed)".into(), |a| a.name.clone()),
            ScanSource::File(p) => file_name(p),
        };
        egui::ComboBox::new(("ldae-slot", label), "")
            .selected_text(shown)
            .width(260.0)
            .show_ui(ui, |ui| {
                if ui.selectable_label(slot.source == ScanSource::None, "(none)").clicked() {
                    slot.source = ScanSource::None;
                }
                for a in session.volumes() {
                    let picked = slot.source == ScanSource::Asset(a.id);
                    if ui.selectable_label(picked, &a.name).clicked() {
                        slot.source = ScanSource::Asset(a.id);
                        if let Some(m) = month_from_name(&a.name) {
                            slot.month = m;
                        }
                    }
                }
            })
            .response
            .labelled_by(l.id);
        if ui.button("File…").on_hover_text("Pick a NIfTI scan").clicked() {
            browse = true;
        }
        if with_month {
            ui.add(
                egui::DragValue::new(&mut slot.month)
                    .range(0.0..=600.0)
                    .speed(0.5)
                    .suffix(" months"),
            )
            .labelled_by(l.id);
        }
    });
    browse
}

/// A native open dialog on its own thread (it blocks that thread, not the UI).
pub fn pick_file(
    title: &'static str,
    filter: (&'static str, &'static [&'static str]),
    waker: Option<jobs::Waker>,
) -> JobHandle<Option<PathBuf>> {
    jobs::spawn(format!("Pick: {title}"), waker, move |_| {
        Ok(rfd::FileDialog::new()
            .set_title(title)
            .add_filter(filter.0, filter.1)
            .pick_file())
    })
}

/// Applies a finished file dialog to `slot`.
pub fn poll_pick<T: Copy>(pending: &mut Option<(T, JobHandle<Option<PathBuf>>)>) -> Option<(T, PathBuf)> {
    let (tag, job) = pending.as_ref()?;
    let result = job.poll()?;
    let tag = *tag;
    *pending = None;
    result.ok().flatten().map(|p| (tag, p))
}

/// `x − y` voxel by voxel, with the geometry of `x`.
pub fn difference(x: &Volume, y: &Volume) -> Option<Volume> {
    if x.dims() != y.dims() || x.frames() != y.frames() {
        return None;
    }
    let mut d = x.clone();
    for (o, &b) in d.data_mut().iter_mut().zip(y.data()) {
        *o -= b;
    }
    Some(d)
}

/// A symmetric window for a difference map (its largest magnitude, at least 1e-3).
pub fn symmetric_window(v: &Volume) -> (f32, f32) {
    let m = v
        .data()
        .iter()
        .fold(0f32, |m, x| if x.is_finite() { m.max(x.abs()) } else { m });
    let m = m.max(1e-3);
    (-m, m)
}

/// One tile of a [`SliceStrip`].
pub struct Tile<'a> {
    pub title: String,
    pub volume: &'a Volume,
    pub window: (f32, f32),
    pub colormap: Colormap,
}

/// Textures of a strip of volumes on one grid, cut at the same slices (linked): one row per plane.
#[derive(Default)]
pub struct SliceStrip {
    /// Bumped by the owner when the volumes change.
    pub generation: u64,
    /// Slice position per plane as a fraction of the axis.
    pub position: [f32; 3],
    textures: HashMap<(u64, usize, usize, usize), egui::TextureHandle>,
    initialised: bool,
}

impl SliceStrip {
    /// Forgets the textures (new volumes).
    pub fn reset(&mut self) {
        self.generation += 1;
        self.textures.clear();
    }

    /// Draws axial and coronal rows of `tiles` with one slice slider per plane.
    pub fn show(&mut self, ui: &mut egui::Ui, salt: &str, tiles: &[Tile<'_>], height: f32) {
        if !self.initialised {
            self.position = [0.5; 3];
            self.initialised = true;
        }
        let Some(first) = tiles.first() else { return };
        let dims = first.volume.dims();
        let planes = [Plane::Axial, Plane::Coronal];
        ui.horizontal(|ui| {
            for (k, plane) in planes.iter().enumerate() {
                let n = dims[plane.normal_axis()];
                let mut index = ((self.position[k] * n as f32) as usize).min(n - 1);
                let l = ui.label(plane.name());
                if ui
                    .add(egui::Slider::new(&mut index, 0..=n - 1))
                    .labelled_by(l.id)
                    .changed()
                {
                    self.position[k] = (index as f32 + 0.5) / n as f32;
                }
            }
        });
        let gap = 4.0;
        let width = ((ui.available_width() - gap * tiles.len() as f32) / tiles.len() as f32).max(40.0);
        let row_h = ((height - 30.0) / 2.0).max(60.0);
        for (k, plane) in planes.iter().enumerate() {
            let n = dims[plane.normal_axis()];
            let index = ((self.position[k] * n as f32) as usize).min(n - 1);
            ui.horizontal(|ui| {
                for (i, tile) in tiles.iter().enumerate() {
                    let key = (self.generation, i, k, index);
                    let tex = self.textures.entry(key).or_insert_with(|| {
                        let layer = Layer {
                            volume: tile.volume,
                            frame: 0,
                            window: tile.window,
                            colormap: tile.colormap,
                            opacity: 1.0,
                        };
                        let img = render_plane(
                            &layer,
                            None,
                            *plane,
                            index.min(tile.volume.dims()[plane.normal_axis()] - 1),
                        );
                        let pixels: Vec<u8> = img.pixels.iter().flatten().copied().collect();
                        let color = egui::ColorImage::from_rgba_unmultiplied([img.width, img.height], &pixels);
                        ui.ctx().load_texture(
                            format!("{salt}-{i}-{}", plane.name()),
                            color,
                            egui::TextureOptions::LINEAR,
                        )
                    });
                    let (w, h) = plane.size(tile.volume.dims());
                    let (pw, ph) = plane.pixel_mm(tile.volume.spacing_mm());
                    let (mm_w, mm_h) = (w as f32 * pw.abs().max(1e-6), h as f32 * ph.abs().max(1e-6));
                    let (rect, response) = ui.allocate_exact_size(egui::vec2(width, row_h), egui::Sense::hover());
                    let label = format!("{} {}", tile.title, plane.name());
                    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, &label));
                    let fit = (rect.width() / mm_w).min((rect.height() - 16.0) / mm_h);
                    let img_rect = egui::Rect::from_center_size(
                        rect.center() + egui::vec2(0.0, 8.0),
                        egui::vec2(mm_w * fit, mm_h * fit),
                    );
                    let painter = ui.painter_at(rect);
                    painter.rect_filled(rect, 2.0, egui::Color32::BLACK);
                    let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
                    painter.image(tex.id(), img_rect, uv, egui::Color32::WHITE);
                    painter.text(
                        rect.left_top() + egui::vec2(4.0, 2.0),
                        egui::Align2::LEFT_TOP,
                        &tile.title,
                        egui::FontId::proportional(12.0),
                        egui::Color32::from_gray(230),
                    );
                    ui.add_space(gap - ui.spacing().item_spacing.x);
                }
            });
        }
        // Keep memory bounded: old slices of this generation are dropped past a few hundred.
        if self.textures.len() > 400 {
            let g = self.generation;
            self.textures.retain(|k, _| k.0 == g);
            if self.textures.len() > 400 {
                self.textures.clear();
            }
        }
    }
}

/// Where the provenance of `nifti` goes: `name.nii.gz` → `name.provenance.json`.
pub fn provenance_path(nifti: &Path) -> PathBuf {
    let name = file_name(nifti);
    let stem = name
        .strip_suffix(".nii.gz")
        .or_else(|| name.strip_suffix(".nii"))
        .unwrap_or(&name)
        .to_string();
    nifti.with_file_name(format!("{stem}.provenance.json"))
}

/// Provenance common to both panels' exports.
pub fn provenance(
    operation: &str,
    model: &LdaeModel,
    inputs: serde_json::Value,
    parameters: serde_json::Value,
    results: serde_json::Value,
) -> serde_json::Value {
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let manifest = model.manifest();
    serde_json::json!({
        "program": "latent-workbench",
        "version": crate::VERSION,
        "operation": operation,
        "created_unix_s": created,
        "model": {
            "name": manifest.map(|m| m.name.clone()),
            "family": FAMILY,
            "weights_sha256": manifest.map(|m| m.sha256.clone()),
            "dir": model.dir().map(|d| d.display().to_string()),
            "id": model.id(),
            "spacing_mm": model.config().spacing_mm,
            "shape": model.config().shape,
        },
        "preprocessing": PREPROCESSING_NOTE,
        "inputs": inputs,
        "parameters": parameters,
        "results": results,
    })
}

/// Writes `volume` as NIfTI (`.nii.gz` added when the name has no NIfTI suffix) and its provenance
/// beside it, both atomically. Returns the NIfTI path.
pub fn write_export(path: &Path, volume: &Volume, provenance: &serde_json::Value) -> Result<PathBuf, String> {
    let name = file_name(path);
    let path = if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        path.to_path_buf()
    } else {
        path.with_file_name(format!("{name}.nii.gz"))
    };
    crate::io::nifti::write(&path, volume, &Default::default()).map_err(|e| e.to_string())?;
    let json = serde_json::to_vec_pretty(provenance).map_err(|e| e.to_string())?;
    let side = provenance_path(&path);
    crate::io::atomic::write_bytes(&side, &json).map_err(|e| format!("{}: {e}", side.display()))?;
    Ok(path)
}

/// A save dialog then the writes, on a worker thread; `Ok(None)` when the dialog was dismissed.
pub fn export_job(
    title: &'static str,
    suggested: String,
    volume: Volume,
    provenance: serde_json::Value,
    to: Option<PathBuf>,
    waker: Option<jobs::Waker>,
) -> JobHandle<Option<PathBuf>> {
    jobs::spawn(format!("Export {suggested}"), waker, move |ctx| {
        let path = match to {
            Some(p) => Some(p),
            None => rfd::FileDialog::new()
                .set_title(title)
                .set_file_name(&suggested)
                .add_filter("NIfTI", &["nii", "gz"])
                .save_file(),
        };
        let Some(path) = path else { return Ok(None) };
        ctx.set(0.5, "writing");
        write_export(&path, &volume, &provenance)
            .map(Some)
            .map_err(JobError::Failed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_read_from_bids_like_names() {
        assert_eq!(month_from_name("sub-032_ses-M12_T1w.nii.gz"), Some(12.0));
        assert_eq!(month_from_name("sub-032 M06 (synthetic)"), Some(6.0));
        assert_eq!(month_from_name("scan.nii.gz"), None);
    }

    #[test]
    fn provenance_sits_beside_the_nifti() {
        assert_eq!(
            provenance_path(Path::new("/o/synth.nii.gz")),
            PathBuf::from("/o/synth.provenance.json")
        );
        assert_eq!(
            provenance_path(Path::new("/o/a.nii")),
            PathBuf::from("/o/a.provenance.json")
        );
    }
}
