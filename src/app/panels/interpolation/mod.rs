//! The Interpolation tab: missing-scan synthesis with LDAE (issue #4, `shared/research/ldae.md` §7).
//! Pick the start and end scans with their months and a target month; "Synthesise" runs in the
//! background (semantic codes lerped, inverted noises slerped, decoded). Each scan's inversion is
//! cached, so moving the target month afterwards only re-decodes. Results are shown side by side
//! (start, synthesis, end, truth, synthesis − truth) at linked slices, can be opened in the Viewer,
//! scored against the truth and its autoencoder reconstruction next to two baselines, and exported.

pub mod compute;
pub mod shared;

use crate::app::session::Loaded;
use crate::app::{AppState, Command, Session, Tab};
use crate::core::Colormap;
use crate::core::jobs::{self, JobError, JobHandle};
use crate::methods::ldae::interpolate::{MethodScores, NoiseCache};
use crate::methods::ldae::model::{DEFAULT_STEPS, LdaeModel, PAPER_STEPS};
use compute::{DemoSubject, Request, Synthesis};
use serde::{Deserialize, Serialize};
use shared::{ScanInput, ScanSlot, ScanSource, SliceStrip, Tile};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What the LDAE panels (Interpolation and Attributes) remember across restarts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LdaeSettings {
    /// Chosen model (registry name).
    pub model: String,
    /// DDIM steps of synthesis and of a full-quality edit.
    pub steps: usize,
    /// DDIM steps of the attribute panel's live preview.
    pub preview_steps: usize,
    /// The attribute panel's labelled set (CSV) and label column.
    pub labelled_csv: String,
    pub label_column: Option<String>,
}

impl Default for LdaeSettings {
    fn default() -> Self {
        Self {
            model: shared::DEMO_MODEL.into(),
            steps: DEFAULT_STEPS,
            preview_steps: 5,
            labelled_csv: String::new(),
            label_column: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Start,
    End,
    Truth,
}

/// Per-session state of the panel (jobs, results, textures); never persisted.
pub struct InterpolationRuntime {
    pub start: ScanSlot,
    pub end: ScanSlot,
    /// The real scan at the target month, when there is one.
    pub truth: ScanSlot,
    pub target_month: f64,
    model: Option<Arc<LdaeModel>>,
    cache: Arc<Mutex<NoiseCache>>,
    job: Option<JobHandle<Synthesis>>,
    demo: Option<JobHandle<DemoSubject>>,
    /// Synthesise as soon as the demo subject is in (`gui --run-demo`).
    synthesise_demo: bool,
    pick: Option<(Slot, JobHandle<Option<PathBuf>>)>,
    export: Option<JobHandle<Option<PathBuf>>>,
    result: Option<Synthesis>,
    pub error: Option<String>,
    strip: SliceStrip,
    /// The target month the shown result or running job is for.
    requested_month: Option<f64>,
}

impl Default for InterpolationRuntime {
    fn default() -> Self {
        Self {
            start: ScanSlot::default(),
            end: ScanSlot {
                month: 24.0,
                ..Default::default()
            },
            truth: ScanSlot::default(),
            target_month: 12.0,
            model: None,
            cache: Arc::default(),
            job: None,
            demo: None,
            synthesise_demo: false,
            pick: None,
            export: None,
            result: None,
            error: None,
            strip: SliceStrip::default(),
            requested_month: None,
        }
    }
}

impl InterpolationRuntime {
    /// Whether a synthesis, the demo subject or an export is running.
    pub fn busy(&self) -> bool {
        self.job.is_some() || self.demo.is_some() || self.export.is_some()
    }
    /// The last finished synthesis.
    pub fn result(&self) -> Option<&Synthesis> {
        self.result.as_ref()
    }
    /// The running synthesis' progress message.
    pub fn progress(&self) -> Option<String> {
        self.job.as_ref().map(|j| j.progress().message())
    }

    /// Starts a synthesis (a running one is cancelled). Public for tests and scripts.
    pub fn start(&mut self, req: Request, waker: Option<jobs::Waker>) {
        if let Some(old) = self.job.take() {
            old.cancel();
        }
        self.error = None;
        self.requested_month = Some(req.target_month);
        let cached = self.model.clone();
        let cache = self.cache.clone();
        let name = format!("Synthesising month {}", req.target_month);
        self.job = Some(jobs::spawn(name, waker, move |ctx| {
            compute::synthesise(req, cached, cache, ctx)
        }));
    }

    /// Generates the demo subject and synthesises its middle visit once it is in.
    pub fn run_demo(&mut self, waker: Option<jobs::Waker>) {
        self.demo = Some(jobs::spawn("Demo subject", waker, compute::demo_subject));
        self.synthesise_demo = true;
    }

    /// Exports the synthesis to `to` (or asks with a save dialog).
    pub fn export(&mut self, to: Option<PathBuf>, waker: Option<jobs::Waker>) {
        let Some(r) = &self.result else { return };
        let prov = provenance(r);
        let suggested = format!("synthesis_m{:02}.nii.gz", r.request.target_month.round() as i64);
        self.export = Some(shared::export_job(
            "Export the synthesis",
            suggested,
            r.synthesis.clone(),
            prov,
            to,
            waker,
        ));
    }

    fn poll(&mut self, session: &mut Session, commands: &mut Vec<Command>) {
        if let Some(job) = &self.job
            && let Some(result) = job.poll()
        {
            self.job = None;
            match result {
                Ok(s) => {
                    session.log.info(format!(
                        "Synthesised month {} (α = {:.2}) in {:.1} s ({} of 2 inversions cached)",
                        s.request.target_month, s.alpha, s.seconds, s.cached_inversions
                    ));
                    self.model = Some(s.model.clone());
                    self.strip.reset();
                    self.result = Some(s);
                }
                Err(JobError::Cancelled) => {}
                Err(e) => {
                    session.log.error(format!("Interpolation: {e}"));
                    self.error = Some(e.to_string());
                }
            }
        }
        if let Some(job) = &self.demo
            && let Some(result) = job.poll()
        {
            self.demo = None;
            match result {
                Ok(demo) => self.adopt_demo(demo, session, commands),
                Err(JobError::Cancelled) => {}
                Err(e) => session.log.error(e.to_string()),
            }
        }
        if let Some((slot, path)) = shared::poll_pick(&mut self.pick) {
            let s = match slot {
                Slot::Start => &mut self.start,
                Slot::End => &mut self.end,
                Slot::Truth => &mut self.truth,
            };
            if let Some(m) = shared::month_from_name(&shared::file_name(&path)) {
                s.month = m;
            }
            s.source = ScanSource::File(path);
        }
        if let Some(job) = &self.export
            && let Some(result) = job.poll()
        {
            self.export = None;
            match result {
                Ok(Some(p)) => session.log.info(format!(
                    "Exported the synthesis to {} (provenance beside it)",
                    p.display()
                )),
                Ok(None) | Err(JobError::Cancelled) => {}
                Err(e) => session.log.error(format!("Export: {e}")),
            }
        }
    }

    /// Adds the demo subject's scans to the session (as the Loaded path does) and picks them.
    fn adopt_demo(&mut self, demo: DemoSubject, session: &mut Session, commands: &mut Vec<Command>) {
        let mut ids = Vec::new();
        for (name, month, volume) in demo.scans {
            let id = session.add(Loaded {
                name,
                path: None,
                asset: crate::core::Asset::Volume(volume),
            });
            ids.push((id, f64::from(month)));
        }
        if let [(s, sm), (t, tm), (e, em)] = ids[..] {
            self.start = ScanSlot {
                source: ScanSource::Asset(s),
                month: sm,
            };
            self.truth = ScanSlot {
                source: ScanSource::Asset(t),
                month: tm,
            };
            self.end = ScanSlot {
                source: ScanSource::Asset(e),
                month: em,
            };
            self.target_month = tm;
            commands.push(Command::SetActive(s));
        }
        session
            .log
            .info("Loaded the synthetic demo subject (months 0, 12 and 24)");
    }
}

/// The request the panel's choices describe, or what is missing.
fn request(settings: &LdaeSettings, rt: &InterpolationRuntime, session: &Session) -> Result<Request, String> {
    let model_dir = shared::model_dir(session, &settings.model).ok_or("Pick a registered LDAE model.")?;
    let start = ScanInput::from_slot(&rt.start, session).ok_or("Pick the start scan.")?;
    let end = ScanInput::from_slot(&rt.end, session).ok_or("Pick the end scan.")?;
    if rt.start.month == rt.end.month {
        return Err("The start and end months must differ.".into());
    }
    Ok(Request {
        model_dir,
        start,
        end,
        truth: ScanInput::from_slot(&rt.truth, session),
        start_month: rt.start.month,
        end_month: rt.end.month,
        target_month: rt.target_month,
        steps: settings.steps,
    })
}

pub fn ui(ui: &mut egui::Ui, state: &mut AppState, session: &mut Session, commands: &mut Vec<Command>) {
    let settings = &mut state.ldae;
    let mut rt = std::mem::take(&mut session.interpolation);
    rt.poll(session, commands);
    if rt.busy() || rt.pick.is_some() {
        ui.ctx().request_repaint_after(shared::JOB_POLL);
    }
    egui::ScrollArea::vertical()
        .id_salt("interpolation-scroll")
        .auto_shrink([false; 2])
        .show(ui, |ui| panel(ui, settings, &mut rt, session, commands));
    session.interpolation = rt;
}

fn panel(
    ui: &mut egui::Ui,
    settings: &mut LdaeSettings,
    rt: &mut InterpolationRuntime,
    session: &mut Session,
    commands: &mut Vec<Command>,
) {
    ui.heading("Interpolation: missing-scan synthesis (LDAE)");
    if shared::ldae_models(session).is_empty() {
        shared::no_model_hint(ui);
        return;
    }
    ui.horizontal_wrapped(|ui| {
        shared::model_picker(ui, "interp-model", &mut settings.model, session);
        let l = ui.label("DDIM steps");
        ui.add(egui::DragValue::new(&mut settings.steps).range(2..=500))
            .labelled_by(l.id);
        if ui
            .selectable_label(
                settings.steps == DEFAULT_STEPS,
                format!("{DEFAULT_STEPS} (interactive)"),
            )
            .clicked()
        {
            settings.steps = DEFAULT_STEPS;
        }
        if ui
            .selectable_label(settings.steps == PAPER_STEPS, format!("{PAPER_STEPS} (paper)"))
            .clicked()
        {
            settings.steps = PAPER_STEPS;
        }
    });
    ui.weak(shared::PREPROCESSING_NOTE);
    ui.add_space(4.0);

    if session.volumes().next().is_none() || rt.demo.is_some() {
        demo_hint(ui, rt, session);
    }
    let mut pick = None;
    egui::Grid::new("interp-slots").num_columns(1).show(ui, |ui| {
        if shared::slot_ui(ui, "Start ", &mut rt.start, session, true) {
            pick = Some(Slot::Start);
        }
        ui.end_row();
        if shared::slot_ui(ui, "End   ", &mut rt.end, session, true) {
            pick = Some(Slot::End);
        }
        ui.end_row();
    });
    target_row(ui, settings, rt, session);
    if shared::slot_ui(
        ui,
        "Truth (optional, at the target month)",
        &mut rt.truth,
        session,
        false,
    ) {
        pick = Some(Slot::Truth);
    }
    if let Some(slot) = pick
        && rt.pick.is_none()
    {
        rt.pick = Some((
            slot,
            shared::pick_file("Pick a scan", ("NIfTI", &["nii", "gz"]), session.waker.clone()),
        ));
    }

    ui.horizontal_wrapped(|ui| {
        let req = request(settings, rt, session);
        let running = rt.job.is_some();
        let hover =
            req.as_ref().err().cloned().unwrap_or_else(|| {
                "Encode and invert both scans (cached per scan), interpolate the codes, decode".into()
            });
        let demo_ready = rt.synthesise_demo && rt.demo.is_none() && !running;
        if (ui
            .add_enabled(req.is_ok() && !running, egui::Button::new("Synthesise"))
            .on_hover_text(hover)
            .clicked()
            || demo_ready)
            && let Ok(req) = req
        {
            rt.synthesise_demo = false;
            rt.start(req, session.waker.clone());
        }
        if let Some(job) = &rt.job {
            let p = job.progress();
            ui.add(
                egui::ProgressBar::new(p.fraction())
                    .desired_width(220.0)
                    .text(p.message()),
            );
            if ui.button("Cancel").clicked() {
                job.cancel();
            }
        }
        if let Some(e) = &rt.error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
    });
    ui.separator();
    results(ui, rt, session, commands);
}

fn demo_hint(ui: &mut egui::Ui, rt: &mut InterpolationRuntime, session: &Session) {
    ui.horizontal_wrapped(|ui| {
        match &rt.demo {
            Some(job) => {
                let p = job.progress();
                ui.add(
                    egui::ProgressBar::new(p.fraction())
                        .desired_width(220.0)
                        .text(p.message()),
                );
            }
            None => {
                if ui
                    .button("Load demo subject")
                    .on_hover_text(
                        "Generate a held-out synthetic subject (sub-032) at months 0, 12 and 24 on the demo grid",
                    )
                    .clicked()
                {
                    rt.demo = Some(jobs::spawn(
                        "Demo subject",
                        session.waker.clone(),
                        compute::demo_subject,
                    ));
                }
            }
        }
        ui.label(
            "No scans loaded. Load a synthetic demo subject, open registered skull-stripped T1 scans (File > Open), \
             or make the whole demo cohort with `latent-workbench demo-data cohort --size demo`.",
        );
    });
}

/// Target month slider between the start and end months; with a result on screen, releasing the slider
/// re-decodes at the new month (the inversions come from the cache).
fn target_row(ui: &mut egui::Ui, settings: &LdaeSettings, rt: &mut InterpolationRuntime, session: &Session) {
    let (lo, hi) = (rt.start.month.min(rt.end.month), rt.start.month.max(rt.end.month));
    ui.horizontal(|ui| {
        let l = ui.label("Target month");
        let r = ui
            .add(egui::Slider::new(&mut rt.target_month, lo..=hi.max(lo + 1.0)).step_by(1.0))
            .labelled_by(l.id);
        if rt.end.month != rt.start.month {
            let alpha = (rt.target_month - rt.start.month) / (rt.end.month - rt.start.month);
            ui.weak(format!("α = {alpha:.2}"));
        }
        let settled = r.drag_stopped() || (r.changed() && !r.dragged());
        let differs = rt.requested_month != Some(rt.target_month);
        if settled
            && differs
            && rt.result.is_some()
            && let Ok(req) = request(settings, rt, session)
        {
            rt.start(req, session.waker.clone());
        }
        if rt.result.is_some() {
            ui.weak("(release to re-decode; inversions are cached)");
        }
    });
}

fn results(ui: &mut egui::Ui, rt: &mut InterpolationRuntime, session: &mut Session, commands: &mut Vec<Command>) {
    let Some(r) = &rt.result else {
        if rt.job.is_none() {
            ui.weak(
                "Results appear here: start, synthesis, end and truth at linked slices, a difference map and scores.",
            );
        }
        return;
    };
    let mut export = false;
    ui.horizontal_wrapped(|ui| {
        ui.strong(format!(
            "Month {} (α = {:.2}), {} DDIM steps, {:.1} s",
            r.request.target_month, r.alpha, r.request.steps, r.seconds
        ));
        if ui
            .button("Open in Viewer")
            .on_hover_text("Add start, synthesis, end, truth and difference to the loaded data; show the synthesis")
            .clicked()
        {
            open_in_viewer(r, session, commands);
        }
        if ui
            .add_enabled(rt.export.is_none(), egui::Button::new("Export NIfTI + provenance…"))
            .clicked()
        {
            export = true;
        }
    });
    let window = (0.0, 1.0);
    let month = |m: f64| format!("M{m:.0}");
    let mut tiles = vec![
        Tile {
            title: format!("Start {}", month(r.request.start_month)),
            volume: &r.start,
            window,
            colormap: Colormap::Gray,
        },
        Tile {
            title: format!("Synthesis {}", month(r.request.target_month)),
            volume: &r.synthesis,
            window,
            colormap: Colormap::Gray,
        },
        Tile {
            title: format!("End {}", month(r.request.end_month)),
            volume: &r.end,
            window,
            colormap: Colormap::Gray,
        },
    ];
    if let Some(t) = &r.truth {
        tiles.push(Tile {
            title: "Truth".into(),
            volume: t,
            window,
            colormap: Colormap::Gray,
        });
    }
    if let Some(d) = &r.difference {
        tiles.push(Tile {
            title: "Synthesis − truth".into(),
            volume: d,
            window: shared::symmetric_window(d),
            colormap: Colormap::Diverging,
        });
    }
    rt.strip.show(ui, "interp", &tiles, 420.0);
    ui.add_space(6.0);
    match &r.evaluation {
        Some(ev) => scores_table(ui, ev),
        None => {
            ui.weak("Pick a truth scan (the real scan at the target month) to score the synthesis.");
        }
    }
    if export {
        rt.export(None, session.waker.clone());
    }
}

fn scores_table(ui: &mut egui::Ui, ev: &crate::methods::ldae::interpolate::Evaluation) {
    ui.strong("Scores");
    egui::Grid::new("interp-scores")
        .striped(true)
        .num_columns(7)
        .show(ui, |ui| {
            ui.label("");
            ui.label("SSIM vs truth");
            ui.label("MSE vs truth");
            ui.label("PSNR vs truth");
            ui.label("SSIM vs AE recon.");
            ui.label("MSE vs AE recon.");
            ui.label("PSNR vs AE recon.");
            ui.end_row();
            let row = |ui: &mut egui::Ui, name: &str, m: &MethodScores| {
                ui.label(name);
                for s in [&m.vs_truth, &m.vs_ae_reconstruction] {
                    ui.label(format!("{:.4}", s.ssim));
                    ui.label(format!("{:.5}", s.mse));
                    ui.label(if s.psnr.is_finite() {
                        format!("{:.2} dB", s.psnr)
                    } else {
                        "∞".into()
                    });
                }
                ui.end_row();
            };
            row(ui, "LDAE synthesis", &ev.ldae);
            row(ui, "Nearest scan", &ev.nearest);
            row(ui, "Linear blend", &ev.linear_blend);
        });
    ui.weak(
        "SSIM: MONAI 3D, Gaussian σ 1.5, data range 1. The paper scores against the autoencoder reconstruction of \
         the truth (the model cannot beat its own autoencoder); the raw truth is the stricter check.",
    );
}

/// The volumes as session assets (the Loaded path), the synthesis shown in the Viewer.
fn open_in_viewer(r: &Synthesis, session: &mut Session, commands: &mut Vec<Command>) {
    let m = |x: f64| format!("M{x:.0}");
    let mut add = |name: String, v: &crate::core::volume::Volume| {
        session.add(Loaded {
            name,
            path: None,
            asset: crate::core::Asset::Volume(v.clone()),
        })
    };
    add(format!("start {} (preprocessed)", m(r.request.start_month)), &r.start);
    add(format!("end {} (preprocessed)", m(r.request.end_month)), &r.end);
    if let Some(t) = &r.truth {
        add(format!("truth {} (preprocessed)", m(r.request.target_month)), t);
    }
    if let Some(d) = &r.difference {
        add(format!("synthesis − truth {}", m(r.request.target_month)), d);
    }
    let synth = add(format!("LDAE synthesis {}", m(r.request.target_month)), &r.synthesis);
    commands.push(Command::SetActive(synth));
    commands.push(Command::ShowTab(Tab::Viewer));
}

/// The export's provenance: inputs with hashes, model, parameters and scores.
fn provenance(r: &Synthesis) -> serde_json::Value {
    let params = serde_json::json!({
        "start_month": r.request.start_month,
        "end_month": r.request.end_month,
        "target_month": r.request.target_month,
        "alpha": r.alpha,
        "ddim_steps": r.request.steps,
        "semantic_code": "lerp",
        "noise": "slerp over the flattened x_T (lerp when parallel)",
        "inversion": "deterministic DDIM inversion with the shift, conditioned on each scan's y_sem",
        "encoding": "autoencoder posterior mean x 0.8730",
    });
    let results = serde_json::json!({ "scores": r.evaluation, "seconds": r.seconds });
    shared::provenance("interpolate", &r.model, r.inputs.clone(), params, results)
}
