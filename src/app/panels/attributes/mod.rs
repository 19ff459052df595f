//! The Attributes tab: attribute manipulation with LDAE (issue #4, `shared/research/ldae.md` §8).
//! A linear probe on the standardised semantic code (fitted here from a labelled CSV with
//! cross-validation, or loaded from a file such as LDAE's `disease_classifier.ckpt`) gives a
//! direction; a scan slides along it (y' = y + s·√d·ŵ in standardised space) with a low-step live
//! preview, a difference map against the unedited reconstruction, the probe's score before and
//! after, and an export at full quality. Its demo (`gui --tab attributes --run-demo`) fits a diagnosis
//! probe on generated cohort scans and previews a held-out CN scan moved toward AD.

pub mod compute;
pub mod labelled;

use super::interpolation::LdaeSettings;
use super::interpolation::shared::{self, ScanInput, ScanSlot, ScanSource, SliceStrip, Tile};
use crate::app::session::Loaded;
use crate::app::{AppState, Command, Session};
use crate::core::Colormap;
use crate::core::jobs::{self, JobError, JobHandle};
use crate::methods::ldae::interpolate::NoiseCache;
use crate::methods::ldae::model::LdaeModel;
use crate::methods::ldae::probe::{CvMetrics, CvReport, LinearProbe, ProbeKind};
use compute::{DemoAttribute, EditRequest, Edited, FitRequest, Fitted, ReconCache};
use labelled::{ColumnKind, LabelledSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The strength slider's range (LDAE's tutorial uses 2.5).
pub const MAX_STRENGTH: f64 = 5.0;
/// Quiet time after the slider moves before a preview starts.
const DEBOUNCE: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pick {
    Csv,
    Probe,
    Scan,
    SaveProbe,
}

/// Per-session state of the panel (jobs, probe, previews, textures); never persisted.
#[derive(Default)]
pub struct AttributesRuntime {
    pub scan: ScanSlot,
    pub strength: f64,
    set: Option<LabelledSet>,
    /// (positive, negative) for a class column with more than two classes.
    classes: Option<(String, String)>,
    probe: Option<Arc<LinearProbe>>,
    report: Option<CvReport>,
    probe_source: String,
    model: Option<Arc<LdaeModel>>,
    cache: Arc<Mutex<NoiseCache>>,
    recon: ReconCache,
    fit: Option<JobHandle<Fitted>>,
    /// `--run-demo`: a probe fitted on generated cohort scans and a scan to edit.
    demo: Option<JobHandle<DemoAttribute>>,
    load: Option<JobHandle<(LinearProbe, Arc<LdaeModel>)>>,
    preview: Option<JobHandle<Edited>>,
    /// The edit for export at full quality, then its export.
    full: Option<JobHandle<Edited>>,
    export: Option<JobHandle<Option<PathBuf>>>,
    pick: Option<(Pick, JobHandle<Option<PathBuf>>)>,
    shown: Option<Edited>,
    /// What the running or shown preview is for.
    requested: Option<String>,
    changed_at: Option<Instant>,
    pub error: Option<String>,
    strip: SliceStrip,
}

impl AttributesRuntime {
    /// Whether any job of the panel runs.
    pub fn busy(&self) -> bool {
        self.fit.is_some()
            || self.demo.is_some()
            || self.load.is_some()
            || self.preview.is_some()
            || self.full.is_some()
            || self.export.is_some()
    }
    /// Whether a preview is being computed.
    pub fn previewing(&self) -> bool {
        self.preview.is_some()
    }
    /// The edit shown.
    pub fn shown(&self) -> Option<&Edited> {
        self.shown.as_ref()
    }
    pub fn probe(&self) -> Option<&LinearProbe> {
        self.probe.as_deref()
    }
    pub fn report(&self) -> Option<&CvReport> {
        self.report.as_ref()
    }
    /// Uses `probe` (e.g. one fitted by a script or a test).
    pub fn set_probe(&mut self, probe: LinearProbe, source: impl Into<String>) {
        self.probe = Some(Arc::new(probe));
        self.probe_source = source.into();
        self.requested = None;
        self.report = None;
    }
    /// The tab's demo: fits a diagnosis probe (AD vs CN) on synthetic cohort scans generated in
    /// memory, then previews a held-out CN scan moved toward AD (`gui --tab attributes --run-demo`).
    pub fn run_demo(&mut self, model_dir: Option<PathBuf>, waker: Option<jobs::Waker>) {
        let Some(dir) = model_dir else {
            self.error = Some("The demo needs a registered LDAE model (models/ldae-demo).".into());
            return;
        };
        let cached = self.model.clone();
        self.demo = Some(jobs::spawn("Attribute demo", waker, move |ctx| {
            compute::demo(dir, cached, ctx)
        }));
    }

    fn adopt_demo(&mut self, demo: DemoAttribute, session: &mut Session) {
        let f = demo.fitted;
        session.log.info(format!(
            "Fitted a diagnosis probe (AD vs CN) on {} synthetic demo scans in {:.1} s; editing {}",
            f.report.samples, f.seconds, demo.scan_name
        ));
        let id = session.add(Loaded {
            name: demo.scan_name,
            path: None,
            asset: crate::core::Asset::Volume(demo.scan),
        });
        self.model = Some(f.model);
        self.set_probe(f.probe, format!("fitted on {} synthetic demo scans", f.report.samples));
        self.report = Some(f.report);
        self.scan = ScanSlot {
            source: ScanSource::Asset(id),
            month: 0.0,
        };
        self.strength = compute::DEMO_STRENGTH;
    }

    /// Reads a labelled CSV.
    pub fn open_csv(&mut self, path: &std::path::Path, settings: &mut LdaeSettings) {
        match LabelledSet::read(path) {
            Ok(set) => {
                settings.labelled_csv = path.display().to_string();
                let cols = set.label_columns();
                if settings.label_column.as_ref().is_none_or(|c| !cols.contains(c)) {
                    settings.label_column = cols.iter().find(|c| set.kind(c).is_ok()).cloned();
                }
                self.classes = None;
                self.set = Some(set);
                self.error = None;
            }
            Err(e) => self.error = Some(e),
        }
    }

    fn poll(&mut self, settings: &mut LdaeSettings, session: &mut Session) {
        if let Some(job) = &self.fit
            && let Some(r) = job.poll()
        {
            self.fit = None;
            match r {
                Ok(f) => {
                    session.log.info(format!(
                        "Fitted a probe for {} on {} scans in {:.1} s",
                        f.probe.label, f.report.samples, f.seconds
                    ));
                    self.model = Some(f.model);
                    self.probe = Some(Arc::new(f.probe));
                    self.report = Some(f.report);
                    self.probe_source = format!(
                        "fitted on {}",
                        shared::file_name(&PathBuf::from(&settings.labelled_csv))
                    );
                    self.requested = None;
                }
                Err(JobError::Cancelled) => {}
                Err(e) => self.fail(session, e),
            }
        }
        if let Some(job) = &self.demo
            && let Some(r) = job.poll()
        {
            self.demo = None;
            match r {
                Ok(d) => self.adopt_demo(d, session),
                Err(JobError::Cancelled) => {}
                Err(e) => self.fail(session, e),
            }
        }
        if let Some(job) = &self.load
            && let Some(r) = job.poll()
        {
            self.load = None;
            match r {
                Ok((p, model)) => {
                    self.model = Some(model);
                    self.set_probe(p, self.probe_source.clone());
                }
                Err(JobError::Cancelled) => {}
                Err(e) => self.fail(session, e),
            }
        }
        if let Some(job) = &self.preview
            && let Some(r) = job.poll()
        {
            self.preview = None;
            match r {
                Ok(e) => {
                    self.model = Some(e.model.clone());
                    self.strip.reset();
                    self.shown = Some(e);
                }
                Err(JobError::Cancelled) => {}
                Err(e) => self.fail(session, e),
            }
        }
        if let Some(job) = &self.full
            && let Some(r) = job.poll()
        {
            self.full = None;
            match r {
                Ok(e) => {
                    let prov = provenance(&e);
                    let name = format!("edit_{}_s{:+.1}.nii.gz", e.probe.label, e.strength);
                    self.export = Some(shared::export_job(
                        "Export the edited scan",
                        name,
                        e.edited,
                        prov,
                        None,
                        session.waker.clone(),
                    ));
                }
                Err(JobError::Cancelled) => {}
                Err(e) => self.fail(session, e),
            }
        }
        if let Some(job) = &self.export
            && let Some(r) = job.poll()
        {
            self.export = None;
            match r {
                Ok(Some(p)) => session
                    .log
                    .info(format!("Exported the edit to {} (provenance beside it)", p.display())),
                Ok(None) | Err(JobError::Cancelled) => {}
                Err(e) => self.fail(session, e),
            }
        }
        if let Some((what, path)) = shared::poll_pick(&mut self.pick) {
            match what {
                Pick::Csv => self.open_csv(&path, settings),
                Pick::Scan => {
                    self.scan.source = ScanSource::File(path);
                }
                Pick::Probe => {
                    if let Some(dir) = shared::model_dir(session, &settings.model) {
                        let cached = self.model.clone();
                        self.probe_source = shared::file_name(&path);
                        self.load = Some(jobs::spawn("Loading a probe", session.waker.clone(), move |ctx| {
                            compute::load_probe(&path, &dir, cached, ctx)
                        }));
                    }
                }
                Pick::SaveProbe => {
                    if let Some(p) = &self.probe {
                        match compute::save_probe(&path, p, self.report.as_ref()) {
                            Ok(()) => session.log.info(format!("Saved the probe to {}", path.display())),
                            Err(e) => self.fail(session, e),
                        }
                    }
                }
            }
        }
    }

    fn fail(&mut self, session: &mut Session, e: JobError) {
        session.log.error(format!("Attributes: {e}"));
        self.error = Some(e.to_string());
    }

    /// Starts the preview when the choices changed and the slider has been still for a moment.
    fn maybe_preview(&mut self, settings: &LdaeSettings, session: &Session) {
        let (Some(probe), Some(scan), Some(dir)) = (
            self.probe.clone(),
            ScanInput::from_slot(&self.scan, session),
            shared::model_dir(session, &settings.model),
        ) else {
            return;
        };
        let wanted = format!(
            "{:?}|{}|{}|{:p}|{}",
            self.scan.source,
            self.strength,
            settings.preview_steps,
            Arc::as_ptr(&probe),
            dir.display()
        );
        if self.requested.as_deref() == Some(wanted.as_str()) {
            return;
        }
        if self.changed_at.is_some_and(|t| t.elapsed() < DEBOUNCE) {
            return;
        }
        if let Some(old) = self.preview.take() {
            old.cancel();
        }
        self.requested = Some(wanted);
        self.error = None;
        let req = EditRequest {
            model_dir: dir,
            scan,
            probe,
            strength: self.strength,
            steps: settings.preview_steps.max(1),
        };
        self.preview = Some(self.spawn_edit("Preview", req, session));
    }

    fn spawn_edit(&self, what: &str, req: EditRequest, session: &Session) -> JobHandle<Edited> {
        let (cached, cache, recon) = (self.model.clone(), self.cache.clone(), self.recon.clone());
        let name = format!("{what}: s = {:+.1}, {} steps", req.strength, req.steps);
        jobs::spawn(name, session.waker.clone(), move |ctx| {
            compute::edit(req, cached, cache, recon, ctx)
        })
    }
}

pub fn ui(ui: &mut egui::Ui, state: &mut AppState, session: &mut Session, _commands: &mut Vec<Command>) {
    let settings = &mut state.ldae;
    let mut rt = std::mem::take(&mut session.attributes);
    if rt.set.is_none() && !settings.labelled_csv.is_empty() && rt.error.is_none() {
        let p = PathBuf::from(&settings.labelled_csv);
        rt.open_csv(&p, settings);
    }
    rt.poll(settings, session);
    rt.maybe_preview(settings, session);
    if rt.busy() || rt.pick.is_some() || rt.changed_at.is_some_and(|t| t.elapsed() < DEBOUNCE * 2) {
        ui.ctx().request_repaint_after(shared::JOB_POLL);
    }
    egui::ScrollArea::vertical()
        .id_salt("attributes-scroll")
        .auto_shrink([false; 2])
        .show(ui, |ui| panel(ui, settings, &mut rt, session));
    session.attributes = rt;
}

fn panel(ui: &mut egui::Ui, settings: &mut LdaeSettings, rt: &mut AttributesRuntime, session: &Session) {
    ui.heading("Attributes: manipulation along a probe (LDAE)");
    if shared::ldae_models(session).is_empty() {
        shared::no_model_hint(ui);
        return;
    }
    shared::model_picker(ui, "attr-model", &mut settings.model, session);
    ui.weak(shared::PREPROCESSING_NOTE);
    ui.separator();
    probe_section(ui, settings, rt, session);
    ui.separator();
    edit_section(ui, settings, rt, session);
    if let Some(e) = &rt.error {
        ui.colored_label(ui.visuals().error_fg_color, e);
    }
}

fn probe_section(ui: &mut egui::Ui, settings: &mut LdaeSettings, rt: &mut AttributesRuntime, session: &Session) {
    ui.strong("1. Probe");
    ui.horizontal_wrapped(|ui| {
        ui.label("Labelled set (CSV: a path column and label columns)");
        let shown = if settings.labelled_csv.is_empty() {
            "(none)".to_string()
        } else {
            settings.labelled_csv.clone()
        };
        ui.monospace(shown);
        if ui.button("CSV…").clicked() && rt.pick.is_none() {
            rt.pick = Some((
                Pick::Csv,
                shared::pick_file("Labelled set", ("CSV", &["csv"]), session.waker.clone()),
            ));
        }
    });
    if let Some(set) = &rt.set {
        let set = set.clone();
        ui.horizontal_wrapped(|ui| {
            egui::ComboBox::new("attr-label", "Label column")
                .selected_text(settings.label_column.clone().unwrap_or_else(|| "(pick)".into()))
                .show_ui(ui, |ui| {
                    for c in set.label_columns() {
                        if ui
                            .selectable_label(settings.label_column.as_ref() == Some(&c), &c)
                            .clicked()
                        {
                            settings.label_column = Some(c);
                            rt.classes = None;
                        }
                    }
                });
            let kind = settings.label_column.as_ref().map(|c| set.kind(c));
            match &kind {
                Some(Ok(ColumnKind::Continuous)) => {
                    ui.weak("numbers: ridge regression (CV MAE, RMSE)");
                }
                Some(Ok(ColumnKind::Classes(all))) => {
                    let (mut pos, mut neg) = rt
                        .classes
                        .clone()
                        .unwrap_or_else(|| (all[all.len() - 1].clone(), all[0].clone()));
                    if all.len() > 2 {
                        class_combo(ui, "attr-pos", "positive", &mut pos, all);
                        class_combo(ui, "attr-neg", "negative", &mut neg, all);
                        rt.classes = Some((pos.clone(), neg.clone()));
                    }
                    ui.weak(format!(
                        "classes: logistic regression, {pos} (positive) vs {neg} (CV ROC-AUC, accuracy)"
                    ));
                }
                Some(Err(e)) => {
                    ui.colored_label(ui.visuals().warn_fg_color, e);
                }
                None => {}
            }
            let dir = shared::model_dir(session, &settings.model);
            let ready = matches!(kind, Some(Ok(_))) && dir.is_some() && rt.fit.is_none();
            if ui
                .add_enabled(ready, egui::Button::new("Fit probe"))
                .on_hover_text(format!(
                    "Encode the {} scans and fit with cross-validation",
                    set.rows.len()
                ))
                .clicked()
                && let (Some(dir), Some(column)) = (dir, settings.label_column.clone())
            {
                let req = FitRequest {
                    model_dir: dir,
                    set: set.clone(),
                    column,
                    classes: rt.classes.clone(),
                };
                let cached = rt.model.clone();
                rt.error = None;
                rt.fit = Some(jobs::spawn("Fitting a probe", session.waker.clone(), move |ctx| {
                    compute::fit(req, cached, ctx)
                }));
            }
            job_bar(ui, rt.fit.as_ref().map(|j| (j.progress(), j.id)), || {
                if let Some(j) = &rt.fit {
                    j.cancel();
                }
            });
        });
    }
    ui.horizontal_wrapped(|ui| {
        if ui
            .add_enabled(rt.load.is_none(), egui::Button::new("Load probe file…"))
            .on_hover_text(
                "A probe saved here (.safetensors) or LDAE's disease_classifier.ckpt (Linear(768, 1), positive = CN), \
                 standardised with the model's semantic mean/std",
            )
            .clicked()
            && rt.pick.is_none()
        {
            rt.pick = Some((
                Pick::Probe,
                shared::pick_file(
                    "Probe",
                    ("Probe", &["safetensors", "ckpt", "pt", "pth"]),
                    session.waker.clone(),
                ),
            ));
        }
        if ui
            .add_enabled(rt.probe.is_some(), egui::Button::new("Save probe…"))
            .clicked()
            && rt.pick.is_none()
        {
            let waker = session.waker.clone();
            rt.pick = Some((
                Pick::SaveProbe,
                jobs::spawn("Save probe", waker, |_| {
                    Ok(rfd::FileDialog::new()
                        .set_title("Save the probe")
                        .set_file_name("probe.safetensors")
                        .save_file())
                }),
            ));
        }
        match &rt.probe {
            Some(p) => {
                let kind = match &p.kind {
                    ProbeKind::Binary { positive, negative } => format!("logistic, {positive} vs {negative}"),
                    ProbeKind::Continuous => "ridge".into(),
                };
                ui.label(format!(
                    "Probe: {} ({kind}, d = {}) {}",
                    p.label,
                    p.dim(),
                    rt.probe_source
                ));
            }
            None => {
                ui.weak("No probe yet: fit one from a labelled set or load a file.");
            }
        }
    });
    if let Some(r) = &rt.report {
        cv_table(ui, r);
    }
}

fn class_combo(ui: &mut egui::Ui, salt: &str, label: &str, value: &mut String, all: &[String]) {
    egui::ComboBox::new(salt, label)
        .selected_text(value.as_str())
        .show_ui(ui, |ui| {
            for c in all {
                ui.selectable_value(value, c.clone(), c);
            }
        });
}

fn job_bar(ui: &mut egui::Ui, job: Option<(&crate::core::jobs::Progress, u64)>, cancel: impl FnOnce()) {
    if let Some((p, _)) = job {
        ui.add(
            egui::ProgressBar::new(p.fraction())
                .desired_width(200.0)
                .text(p.message()),
        );
        if ui.button("Cancel").clicked() {
            cancel();
        }
    }
}

fn cv_table(ui: &mut egui::Ui, r: &CvReport) {
    let text = match &r.metrics {
        CvMetrics::Binary {
            roc_auc,
            accuracy,
            fold_auc_mean,
            fold_auc_std,
            positives,
            negatives,
        } => format!(
            "{}-fold CV over {} subjects ({} scans: {positives} positive, {negatives} negative): ROC-AUC {roc_auc:.3} \
             (per fold {fold_auc_mean:.3} ± {fold_auc_std:.3}), accuracy {:.1} %",
            r.folds,
            r.groups,
            r.samples,
            accuracy * 100.0
        ),
        CvMetrics::Continuous { mae, rmse, r2 } => format!(
            "{}-fold CV over {} subjects ({} scans): MAE {mae:.3}, RMSE {rmse:.3}, R² {r2:.3}",
            r.folds, r.groups, r.samples
        ),
    };
    ui.label(text);
}

fn edit_section(ui: &mut egui::Ui, settings: &mut LdaeSettings, rt: &mut AttributesRuntime, session: &Session) {
    ui.strong("2. Edit a scan");
    if shared::slot_ui(ui, "Scan", &mut rt.scan, session, false) && rt.pick.is_none() {
        rt.pick = Some((
            Pick::Scan,
            shared::pick_file("Pick a scan", ("NIfTI", &["nii", "gz"]), session.waker.clone()),
        ));
    }
    ui.horizontal_wrapped(|ui| {
        let r = ui
            .add(
                egui::Slider::new(&mut rt.strength, -MAX_STRENGTH..=MAX_STRENGTH)
                    .step_by(0.1)
                    .text("strength s"),
            )
            .on_hover_text("y' = y + s·√d·ŵ in the standardised semantic space; positive s moves towards the positive class or a larger value");
        if r.changed() {
            rt.changed_at = Some(Instant::now());
        }
        let l = ui.label("preview steps");
        if ui
            .add(egui::DragValue::new(&mut settings.preview_steps).range(1..=50))
            .labelled_by(l.id)
            .changed()
        {
            rt.changed_at = Some(Instant::now());
        }
        job_bar(ui, rt.preview.as_ref().map(|j| (j.progress(), j.id)), || {
            if let Some(j) = &rt.preview {
                j.cancel();
            }
        });
        let ready = rt.probe.is_some() && ScanInput::from_slot(&rt.scan, session).is_some();
        if ui
            .add_enabled(ready && rt.full.is_none() && rt.export.is_none(), egui::Button::new(format!("Export ({} steps)…", settings.steps)))
            .on_hover_text("Decode the edit at full quality, then save it as NIfTI with a provenance JSON")
            .clicked()
            && let (Some(probe), Some(scan), Some(dir)) = (
                rt.probe.clone(),
                ScanInput::from_slot(&rt.scan, session),
                shared::model_dir(session, &settings.model),
            )
        {
            let req = EditRequest {
                model_dir: dir,
                scan,
                probe,
                strength: rt.strength,
                steps: settings.steps,
            };
            rt.full = Some(rt.spawn_edit("Full-quality edit", req, session));
        }
        job_bar(ui, rt.full.as_ref().map(|j| (j.progress(), j.id)), || {
            if let Some(j) = &rt.full {
                j.cancel();
            }
        });
    });
    if rt.probe.is_none() || rt.scan.source == ScanSource::None {
        ui.weak("Pick a probe and a scan; the preview follows the slider.");
    }
    let Some(e) = &rt.shown else { return };
    let prob = |p: Option<f64>| p.map_or(String::new(), |p| format!(" (p = {p:.3})"));
    ui.label(format!(
        "s = {:+.1} at {} steps: probe score {:.3}{} -> {:.3}{} (Δ {:+.3}), {:.1} s",
        e.strength,
        e.steps,
        e.score_before,
        prob(e.probability_before),
        e.score_after,
        prob(e.probability_after),
        e.score_after - e.score_before,
        e.seconds
    ));
    let tiles = [
        Tile {
            title: "Input (preprocessed)".into(),
            volume: &e.scan,
            window: (0.0, 1.0),
            colormap: Colormap::Gray,
        },
        Tile {
            title: "Reconstruction (s = 0)".into(),
            volume: &e.reconstruction,
            window: (0.0, 1.0),
            colormap: Colormap::Gray,
        },
        Tile {
            title: format!("Edited (s = {:+.1})", e.strength),
            volume: &e.edited,
            window: (0.0, 1.0),
            colormap: Colormap::Gray,
        },
        Tile {
            title: "Edited − reconstruction".into(),
            volume: &e.difference,
            window: shared::symmetric_window(&e.difference),
            colormap: Colormap::Diverging,
        },
    ];
    rt.strip.show(ui, "attr", &tiles, 420.0);
}

/// The export's provenance: input with hash, model, probe and strength, scores.
fn provenance(e: &Edited) -> serde_json::Value {
    let params = serde_json::json!({
        "probe": { "label": e.probe.label, "kind": e.probe.kind, "dim": e.probe.dim(), "l2": e.probe.l2 },
        "strength": e.strength,
        "edit": "y' = unstandardise(standardise(y) + s * sqrt(d) * w / |w|)",
        "ddim_steps": e.steps,
        "inversion": "deterministic DDIM inversion with the shift, conditioned on the original y_sem",
    });
    let results = serde_json::json!({
        "probe_score_before": e.score_before,
        "probe_score_after": e.score_after,
        "probability_before": e.probability_before,
        "probability_after": e.probability_after,
        "seconds": e.seconds,
    });
    shared::provenance(
        "manipulate",
        &e.model,
        serde_json::json!({ "scan": e.input }),
        params,
        results,
    )
}
