//! The Motion tab's Motion2VecSets section: a loaded sequence (points, or a mesh sequence sampled
//! on its surface) reconstructed and tracked by a Motion2VecSets-family model in a background job
//! (progress per stage, cancel), the result added as a new sequence on the timeline. When the
//! input is a mesh sequence it is also the truth: the result is scored against it beside the
//! nearest-frame baseline.

use crate::app::Session;
use crate::app::session::Loaded;
use crate::core::Asset;
use crate::core::jobs::{self, JobError, JobHandle};
use crate::core::manifest::Entry;
use crate::core::motion::MotionSequence;
use crate::methods::metrics::shape::EvalOptions;
use crate::methods::motion2vecsets::bundle::{FAMILY, M2vsBundle};
use crate::methods::motion2vecsets::pipeline::{Normalisation, PipelineOptions, Stage, job_progress};
use crate::methods::motion2vecsets::tracking::{self, TrackingScores};
use serde::{Deserialize, Serialize};

/// Samples per IoU/Chamfer estimate in the tab (the evaluation command uses 100 000).
const TAB_SAMPLES: usize = 20_000;

/// What the section remembers across restarts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ReconstructSettings {
    pub model: Option<String>,
    /// Heun steps of each sampler.
    pub steps: usize,
    pub seed: u64,
    /// Fit frame 1's bounding box to the model's unit cube (off: the input is already in it).
    pub fit_box: bool,
}

impl Default for ReconstructSettings {
    fn default() -> Self {
        Self {
            model: None,
            steps: 18,
            seed: 0,
            fit_box: false,
        }
    }
}

/// A finished reconstruction.
pub struct Done {
    pub input: String,
    pub model: String,
    pub sequence: MotionSequence,
    pub seconds: f64,
    /// Against the input when it was a mesh sequence.
    pub scores: Option<TrackingScores>,
}

#[derive(Default)]
pub struct ReconstructRuntime {
    /// The asset to reconstruct.
    pub source: Option<u64>,
    job: Option<JobHandle<Done>>,
    pub last: Option<Done>,
    pub error: Option<String>,
}

impl ReconstructRuntime {
    pub fn busy(&self) -> bool {
        self.job.is_some()
    }
}

fn models(session: &Session) -> Vec<Entry> {
    session
        .models
        .iter()
        .filter(|m| m.manifest.family == FAMILY)
        .cloned()
        .collect()
}

/// Adds a finished reconstruction to the session.
pub fn poll(session: &mut Session) {
    let rt = &mut session.motion.reconstruct;
    let Some(result) = rt.job.as_ref().and_then(|j| j.poll()) else {
        return;
    };
    rt.job = None;
    match result {
        Ok(done) => {
            session.log.info(format!(
                "{}: {} reconstructed by {} in {:.1} s ({} frames, {} vertices)",
                FAMILY,
                done.input,
                done.model,
                done.seconds,
                done.sequence.len(),
                done.sequence.frames.first().map_or(0, Vec::len)
            ));
            let name = format!("{} ({})", done.input, done.model);
            session.add(Loaded {
                name,
                path: None,
                asset: Asset::Motion(done.sequence.clone()),
            });
            session.motion.reconstruct.error = None;
            session.motion.reconstruct.last = Some(done);
        }
        Err(JobError::Cancelled) => {}
        Err(e) => {
            session.log.error(format!("Motion2VecSets: {e}"));
            session.motion.reconstruct.error = Some(e.to_string());
        }
    }
}

fn start(session: &mut Session, entry: Entry, input: (String, MotionSequence), settings: &ReconstructSettings) {
    let opts = PipelineOptions {
        seed: settings.seed,
        steps: settings.steps,
        normalisation: if settings.fit_box {
            Normalisation::FirstFrameBox
        } else {
            Normalisation::AsGiven
        },
        fps: input.1.fps,
        ..PipelineOptions::default()
    };
    let seed = settings.seed;
    let job = jobs::spawn("Motion2VecSets", session.waker.clone(), move |ctx| {
        ctx.set(0.0, format!("loading {}", entry.manifest.name));
        let device = crate::core::device::device().device.clone();
        let bundle = M2vsBundle::from_entry(&entry, &device)?;
        let models = bundle.models();
        let (name, seq) = input;
        let obs = tracking::observations(&seq, bundle.config().points, 0.0, models.observation(), seed)?;
        // A mesh sequence is its own truth: the reconstruction is scored against it.
        let scored = seq.is_mesh();
        let stages = if scored {
            Stage::SCORED_RECONSTRUCTION
        } else {
            Stage::RECONSTRUCTION
        };
        let mut progress = job_progress(ctx, stages);
        let recon = crate::methods::motion2vecsets::reconstruct(&models, &obs, &opts, &mut progress)?;
        let scores = if scored && seq.len() == recon.sequence.len() {
            let eval = EvalOptions {
                volume_samples: TAB_SAMPLES,
                surface_samples: TAB_SAMPLES,
                ..EvalOptions::default()
            };
            Some(tracking::score(&recon.sequence, &seq, &eval, &mut progress)?)
        } else {
            None
        };
        Ok(Done {
            input: name,
            model: entry.manifest.name.clone(),
            seconds: recon.stats.total().as_secs_f64(),
            sequence: recon.sequence,
            scores,
        })
    });
    session.motion.reconstruct.job = Some(job);
}

pub fn section(ui: &mut egui::Ui, settings: &mut ReconstructSettings, session: &mut Session) {
    ui.strong("Reconstruct and track (Motion2VecSets)");
    let entries = models(session);
    if entries.is_empty() {
        ui.weak("No Motion2VecSets-family model found: `latent-workbench train m2vs-demo` makes the demo one.");
        return;
    }
    if settings
        .model
        .as_ref()
        .is_none_or(|n| !entries.iter().any(|m| &m.manifest.name == n))
    {
        settings.model = entries.first().map(|m| m.manifest.name.clone());
    }
    egui::ComboBox::new("m2vs-model", "model")
        .selected_text(settings.model.clone().unwrap_or_default())
        .show_ui(ui, |ui| {
            for m in &entries {
                ui.selectable_value(&mut settings.model, Some(m.manifest.name.clone()), &m.manifest.name)
                    .on_hover_text(&m.manifest.description);
            }
        });
    let inputs: Vec<(u64, String)> = session
        .motion
        .sequence_ids()
        .into_iter()
        .filter_map(|id| session.get(id).map(|a| (id, a.name.clone())))
        .collect();
    let rt = &mut session.motion.reconstruct;
    if rt.source.is_none_or(|s| !inputs.iter().any(|(id, _)| *id == s)) {
        rt.source = inputs.first().map(|(id, _)| *id);
    }
    let selected = inputs
        .iter()
        .find(|(id, _)| Some(*id) == rt.source)
        .map_or("–".to_string(), |(_, n)| n.clone());
    egui::ComboBox::new("m2vs-input", "input")
        .selected_text(selected)
        .show_ui(ui, |ui| {
            for (id, name) in &inputs {
                ui.selectable_value(&mut rt.source, Some(*id), name);
            }
        });
    ui.add(egui::Slider::new(&mut settings.steps, 2..=40).text("Heun steps"));
    ui.horizontal(|ui| {
        let label = ui.label("seed");
        ui.add(egui::DragValue::new(&mut settings.seed)).labelled_by(label.id);
    });
    ui.checkbox(&mut settings.fit_box, "Fit frame 1's box to the unit cube")
        .on_hover_text("Off: the points are already in the model's unit cube, as demo sequences are");
    let busy = rt.job.is_some();
    let can = !busy && rt.source.is_some();
    if ui
        .add_enabled(can, egui::Button::new("Reconstruct"))
        .on_hover_text(
            "Shape sampled from frame 1's points, meshed (MISE), then frames 2..T by deforming its \
             vertices: constant topology",
        )
        .clicked()
    {
        let chosen = rt.source;
        let source = chosen.and_then(|id| session.motion.sequence_of_id(id));
        let name = chosen.and_then(|id| session.get(id)).map(|a| a.name.clone());
        let entry = entries
            .iter()
            .find(|m| Some(&m.manifest.name) == settings.model.as_ref())
            .cloned();
        if let (Some(seq), Some(name), Some(entry)) = (source, name, entry) {
            start(session, entry, (name, seq), settings);
        }
    }
    let rt = &mut session.motion.reconstruct;
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
    if let Some(done) = &rt.last {
        ui.weak(format!("last: {} in {:.1} s", done.input, done.seconds));
        if let Some(s) = &done.scores {
            egui::Grid::new("m2vs-scores").striped(true).show(ui, |ui| {
                ui.label("");
                ui.label("IoU");
                ui.label("Chamfer-L1");
                ui.label("corr. L2");
                ui.end_row();
                for (label, m) in [("model", &s.model.mean), ("frame 1 held", &s.nearest_frame.mean)] {
                    ui.label(label);
                    ui.label(format!("{:.3}", m.iou));
                    ui.label(format!("{:.4}", m.chamfer_l1));
                    ui.label(m.correspondence_l2.map_or("–".into(), |c| format!("{c:.4}")));
                    ui.end_row();
                }
            });
        }
    }
}
