//! The Failure search tab (SAGE, issue #6): choose a generator, an ensemble of classifiers and a
//! held-out judge, a class, an objective and a search mode with its budget; watch the loss and
//! every classifier's probability per iteration and the best image so far; judge the gallery of
//! candidates (accept / reject, kept in the run's report.json); cancel and resume; save the run
//! folder or open one saved before (a paused search's state.json resumes, a report is judged).
//!
//! The search is `methods::sage` run in one background job (`compute`); the panel lays out.

pub mod compute;
mod gallery;
mod live;

use crate::app::{AppState, Command, Session};
use crate::core::jobs::{self, JobError, JobHandle};
use crate::methods::sage::naturalness::Naturalness;
use crate::methods::sage::report;
use crate::methods::sage::resnet::is_resnet_folder;
use crate::methods::sage::search::{Mode, ModeKind, Objective, SearchConfig, SearchState};
use crate::methods::sage::setup::{CLASSIFIER_FAMILY, GENERATOR_FAMILY, GeneratorSpec, ModelRef, SetupSpec};
use crate::methods::sage::stable_diffusion::{SdOptions, is_stable_diffusion_folder};
use compute::{Finished, LiveView, Loaded, Outcome, Output};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

const JOB_POLL: std::time::Duration = std::time::Duration::from_millis(100);
/// Width of the settings column.
const SIDE_WIDTH: f32 = 280.0;

/// The failure types a search can look for (`search::Objective` without its target).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectiveChoice {
    /// Natural images of something else under the class's condition.
    #[default]
    Unrelated,
    /// Latents that fail whatever the condition.
    Distorted,
    /// A condition embedding that switches the content to a target class.
    Switch,
}

impl ObjectiveChoice {
    pub const ALL: [ObjectiveChoice; 3] = [Self::Unrelated, Self::Distorted, Self::Switch];
    pub fn label(self) -> &'static str {
        match self {
            Self::Unrelated => "unrelated output",
            Self::Distorted => "distorted under every condition",
            Self::Switch => "condition switch",
        }
    }
}

/// The generator choice that stands for the Stable Diffusion folder in the settings.
pub const SD_GENERATOR: &str = "Stable Diffusion folder";

/// A user's Stable Diffusion folder and how to sample it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SdSettings {
    pub folder: String,
    /// The classes to search, comma-separated.
    pub classes: String,
    /// The prompt of a class, `{}` standing for its name.
    pub prompt: String,
    pub guidance: f64,
    /// Square image size in pixels; 0: the UNet's own.
    pub size: usize,
}

impl Default for SdSettings {
    fn default() -> Self {
        let d = SdOptions::default();
        Self {
            folder: String::new(),
            classes: String::new(),
            prompt: d.prompt_template,
            guidance: d.guidance,
            size: 0,
        }
    }
}

impl SdSettings {
    fn classes(&self) -> Vec<String> {
        self.classes
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The generator these settings name, or what is missing.
    fn spec(&self) -> Result<GeneratorSpec, String> {
        let folder = self.folder.trim();
        if folder.is_empty() {
            return Err("Choose a Stable Diffusion folder (diffusers layout).".into());
        }
        let dir = PathBuf::from(folder);
        if !is_stable_diffusion_folder(&dir) {
            return Err(format!(
                "{folder} is not a Stable Diffusion folder (diffusers layout: unet/, vae/, text_encoder/, tokenizer/, scheduler/)."
            ));
        }
        let classes = self.classes();
        if classes.is_empty() {
            return Err("List the classes to search, comma-separated (for example: cat, dog).".into());
        }
        let size = (self.size > 0).then_some(self.size);
        Ok(GeneratorSpec::StableDiffusion {
            dir,
            options: SdOptions {
                height: size,
                width: size,
                guidance: self.guidance,
                prompt_template: self.prompt.clone(),
                classes,
                ..SdOptions::default()
            },
        })
    }
}

/// What the panel remembers across restarts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct FailureSearchSettings {
    /// A registered generator's name, or [`SD_GENERATOR`].
    pub generator: String,
    pub sd: SdSettings,
    /// The ensemble: registered classifier names and classifier folder paths.
    pub classifiers: Vec<String>,
    /// Classifier folders (torchvision ResNets) the panel knows, ticked into the ensemble or
    /// chosen as the judge like the registered classifiers.
    pub classifier_folders: Vec<String>,
    /// The held-out judge (a registered name or a classifier folder); empty for none.
    pub held_out: String,
    /// Index of the class whose failures are sought.
    pub class: usize,
    pub objective: ObjectiveChoice,
    /// The class a condition switch should produce.
    pub target: usize,
    pub mode: ModeKind,
    pub restarts: usize,
    /// Generator calls per restart (a gradient evaluation counts two).
    pub budget: usize,
    pub lr: f64,
    /// Gradient and evolution modes: random draws per restart before the first step.
    pub screen: usize,
    /// DDIM steps of the generator during the search.
    pub steps: usize,
    pub seed: u64,
    /// Skip mode: exact backpropagation through this many final sampler steps.
    pub exact_last: usize,
    /// Evolution: perturbations per update (even) and their scale.
    pub population: usize,
    pub sigma: f64,
    /// Show every restart in the gallery, not only the failures the ensemble found.
    pub show_all: bool,
    /// The last run folder saved or opened.
    pub run_dir: String,
}

impl Default for FailureSearchSettings {
    fn default() -> Self {
        Self {
            generator: "sage-sprites-generator".into(),
            sd: SdSettings::default(),
            classifiers: vec!["relreps-sprites-a".into(), "relreps-sprites-b".into()],
            classifier_folders: Vec::new(),
            held_out: "relreps-sprites-wide".into(),
            class: 2,
            objective: ObjectiveChoice::Unrelated,
            target: 0,
            mode: ModeKind::Skip,
            restarts: 16,
            budget: 100,
            lr: SearchConfig::default().lr,
            screen: SearchConfig::default().screen,
            steps: 10,
            seed: 0,
            exact_last: 0,
            population: 8,
            sigma: 0.1,
            show_all: false,
            run_dir: String::new(),
        }
    }
}

impl FailureSearchSettings {
    /// The search these settings describe.
    pub fn config(&self) -> SearchConfig {
        let objective = match self.objective {
            ObjectiveChoice::Unrelated => Objective::Unrelated,
            ObjectiveChoice::Distorted => Objective::Distorted,
            ObjectiveChoice::Switch => Objective::SwitchCondition { target: self.target },
        };
        SearchConfig {
            objective,
            class: self.class,
            mode: self.mode.with(self.exact_last, self.population, self.sigma),
            restarts: self.restarts.max(1),
            budget: self.budget.max(1),
            lr: self.lr,
            screen: self.screen,
            seed: self.seed,
            naturalness: Naturalness::default(),
            ..SearchConfig::default()
        }
    }

    /// Takes the search settings of a saved run (models stay as chosen).
    fn adopt(&mut self, c: &SearchConfig) {
        self.class = c.class;
        self.restarts = c.restarts;
        self.budget = c.budget;
        self.lr = c.lr;
        self.screen = c.screen;
        self.seed = c.seed;
        match c.objective {
            Objective::Unrelated => self.objective = ObjectiveChoice::Unrelated,
            Objective::Distorted => self.objective = ObjectiveChoice::Distorted,
            Objective::SwitchCondition { target } => {
                self.objective = ObjectiveChoice::Switch;
                self.target = target;
            }
        }
        self.mode = c.mode.kind();
        match c.mode {
            Mode::Skip { exact_last } => self.exact_last = exact_last,
            Mode::Evolution { population, sigma } => {
                self.population = population;
                self.sigma = sigma;
            }
            Mode::Backprop | Mode::Random => {}
        }
    }

    /// The models to load, or which one is missing from the registry.
    pub fn spec(&self, session: &Session) -> Result<SetupSpec, String> {
        let find = |name: &str, family: &str| {
            session
                .models
                .iter()
                .find(|m| m.manifest.family == family && m.manifest.name == name)
                .map(ModelRef::from_entry)
                .ok_or_else(|| format!("{name} is not a registered {family} model"))
        };
        // A classifier folder stands for itself; anything else must be registered.
        let classifier = |spec: &str| {
            let dir = std::path::Path::new(spec);
            if self.classifier_folders.iter().any(|f| f == spec) || is_resnet_folder(dir) {
                if !is_resnet_folder(dir) {
                    return Err(format!(
                        "{spec} is not a classifier folder (a ResNet state dict and labels.txt)"
                    ));
                }
                return Ok(ModelRef::classifier_folder(dir));
            }
            find(spec, CLASSIFIER_FAMILY)
        };
        if self.classifiers.is_empty() {
            return Err("Tick at least one classifier for the ensemble.".into());
        }
        let generator = if self.generator == SD_GENERATOR {
            self.sd.spec()?
        } else {
            GeneratorSpec::Model(find(&self.generator, GENERATOR_FAMILY)?)
        };
        Ok(SetupSpec {
            generator,
            classifiers: self
                .classifiers
                .iter()
                .map(|c| classifier(c))
                .collect::<Result<_, _>>()?,
            held_out: (!self.held_out.is_empty())
                .then(|| classifier(&self.held_out))
                .transpose()?,
            steps: self.steps.max(1),
        })
    }
}

/// What a file job brought back.
enum FileDone {
    /// A Stable Diffusion folder chosen in the dialog.
    SdFolder(PathBuf),
    /// A classifier folder chosen in the dialog.
    ClassifierFolder(PathBuf),
    Saved(PathBuf),
    Opened(Box<OpenedRun>),
    Nothing,
}

/// A run folder read back: a finished report, a paused state, or both.
struct OpenedRun {
    dir: PathBuf,
    finished: Option<Finished>,
    paused: Option<SearchState>,
}

/// Per-session state of the panel (jobs, results, textures); never persisted.
#[derive(Default)]
pub struct FailureSearchRuntime {
    loaded: Option<Arc<Loaded>>,
    loading: Option<JobHandle<Arc<Loaded>>>,
    job: Option<JobHandle<Output>>,
    live: LiveView,
    /// A cancelled search, ready to resume.
    paused: Option<SearchState>,
    finished: Option<Finished>,
    /// Verdicts or a result not yet written to a run folder.
    pub unsaved: bool,
    /// The folder the shown run was saved to or opened from.
    run_dir: Option<PathBuf>,
    file_job: Option<JobHandle<FileDone>>,
    pub error: Option<String>,
    gallery: gallery::GalleryView,
    live_view: live::LiveTextures,
    opened: bool,
    /// Start a search with the current settings as soon as the models are in (`gui --run-demo`).
    pub run_on_open: bool,
    /// The classifier folder typed but not yet added.
    pub new_folder: String,
}

impl FailureSearchRuntime {
    /// Whether loading, a search or a file job runs.
    pub fn busy(&self) -> bool {
        self.loading.is_some() || self.job.is_some() || self.file_job.is_some() || self.run_on_open
    }
    /// The finished search shown (tests read it).
    pub fn result(&self) -> Option<&crate::methods::sage::search::SearchResult> {
        self.finished.as_ref().map(|f| &f.result)
    }
    /// The paused search, if any.
    pub fn paused(&self) -> Option<&SearchState> {
        self.paused.as_ref()
    }
    pub fn class_names(&self) -> Option<Vec<String>> {
        self.loaded.as_ref().map(|l| l.setup.generator.class_names())
    }
    /// Every iteration record the live view holds.
    pub fn live_iterations(&self) -> usize {
        self.live.lock().map_or(0, |l| l.records.len())
    }

    /// Starts a search (from `resume`, or fresh); a running one is cancelled first.
    pub fn start(
        &mut self,
        spec: SetupSpec,
        config: SearchConfig,
        resume: Option<SearchState>,
        waker: Option<jobs::Waker>,
    ) {
        if let Some(old) = self.job.take() {
            old.cancel();
        }
        self.error = None;
        let cached = self.loaded.clone();
        let live = self.live.clone();
        let name = format!("Failure search ({})", config.mode.label());
        self.job = Some(jobs::spawn(name, waker, move |ctx| {
            compute::run(spec, cached, config, resume, live, ctx)
        }));
    }

    /// Loads the models (for their class names and base rates) without searching.
    fn preload(&mut self, spec: SetupSpec, waker: Option<jobs::Waker>) {
        let cached = self.loaded.clone();
        self.loading = Some(jobs::spawn("Loading the search's models", waker, move |ctx| {
            compute::load(spec, cached, ctx)
        }));
    }

    /// Sets a person's verdict on candidate `index` (None: not judged).
    pub fn set_verdict(&mut self, index: usize, verdict: Option<bool>) {
        if let Some(c) = self.finished.as_mut().and_then(|f| f.result.candidates.get_mut(index))
            && c.human != verdict
        {
            c.human = verdict;
            self.unsaved = true;
        }
    }

    /// Writes the shown run (report with verdicts, gallery, candidates, latents) and a paused
    /// state to `to`, or asks for a folder.
    pub fn save(&mut self, to: Option<PathBuf>, waker: Option<jobs::Waker>) {
        let finished = self.finished.as_ref().map(|f| Finished {
            result: f.result.clone(),
            info: f.info.clone(),
        });
        let paused = self.paused.clone();
        if finished.is_none() && paused.is_none() {
            return;
        }
        self.file_job = Some(jobs::spawn("Save the search run", waker, move |ctx| {
            let Some(dir) = to.or_else(|| pick_folder("Save the run into a folder")) else {
                return Ok(FileDone::Nothing);
            };
            ctx.set(0.3, "writing the run folder");
            if let Some(f) = &finished {
                compute::save_run(&dir, f)?;
            }
            if let Some(s) = &paused {
                compute::save_state(&dir, s)?;
            }
            Ok(FileDone::Saved(dir))
        }));
    }

    /// Opens a run folder: its report (to judge) and a paused state (to resume).
    pub fn open(&mut self, from: Option<PathBuf>, waker: Option<jobs::Waker>) {
        self.file_job = Some(jobs::spawn("Open a search run", waker, move |_| {
            let Some(dir) = from.or_else(|| pick_folder("Open a search run folder")) else {
                return Ok(FileDone::Nothing);
            };
            open_run(dir).map(|r| FileDone::Opened(Box::new(r)))
        }));
    }

    fn poll(&mut self, settings: &mut FailureSearchSettings, log: &mut crate::app::notify::Log) {
        if let Some(l) = finished_job(&mut self.loading, &mut self.error, log) {
            self.loaded = Some(l);
        }
        if let Some(out) = finished_job(&mut self.job, &mut self.error, log) {
            self.loaded = Some(out.loaded);
            match out.outcome {
                Outcome::Done(f) => {
                    let s = f.result.summary();
                    log.info(format!(
                        "Failure search: {} of {} restarts failed the ensemble ({} generator calls, {:.1} s)",
                        f.result.candidates.iter().filter(|c| c.auto_success).count(),
                        s.restarts,
                        s.generator_calls,
                        s.seconds
                    ));
                    self.finished = Some(*f);
                    self.paused = None;
                    self.unsaved = true;
                    self.run_dir = None;
                    self.gallery.reset();
                }
                Outcome::Paused(state) => {
                    log.info(format!(
                        "Failure search paused at iteration {}; Resume continues it",
                        state.iteration
                    ));
                    self.paused = Some(*state);
                }
            }
        }
        match finished_job(&mut self.file_job, &mut self.error, log) {
            Some(FileDone::Saved(dir)) => {
                log.info(format!("Failure search: run saved to {}", dir.display()));
                settings.run_dir = dir.display().to_string();
                self.run_dir = Some(dir);
                self.unsaved = false;
            }
            Some(FileDone::Opened(run)) => {
                let OpenedRun { dir, finished, paused } = *run;
                log.info(format!("Failure search: opened {}", dir.display()));
                if let Some(c) = paused
                    .as_ref()
                    .map(|s| s.config)
                    .or(finished.as_ref().map(|f| f.result.config))
                {
                    settings.adopt(&c);
                }
                settings.run_dir = dir.display().to_string();
                if finished.is_some() {
                    self.finished = finished;
                    self.gallery.reset();
                    self.unsaved = false;
                }
                self.paused = paused;
                self.run_dir = Some(dir);
            }
            Some(FileDone::SdFolder(dir)) => settings.sd.folder = dir.display().to_string(),
            Some(FileDone::ClassifierFolder(dir)) => self.add_classifier_folder(settings, dir.display().to_string()),
            Some(FileDone::Nothing) | None => {}
        }
    }

    /// Asks for a folder in a dialog (on a job's thread); `classifier` says what it is for.
    fn pick(&mut self, classifier: bool, waker: Option<jobs::Waker>) {
        self.file_job = Some(jobs::spawn("Choose a folder", waker, move |_| {
            Ok(match classifier {
                true => pick_folder("Choose a classifier folder (ResNet state dict and labels.txt)")
                    .map_or(FileDone::Nothing, FileDone::ClassifierFolder),
                false => pick_folder("Choose a Stable Diffusion folder").map_or(FileDone::Nothing, FileDone::SdFolder),
            })
        }));
    }

    /// Adds a classifier folder to the ensemble, or says why it cannot be one.
    pub fn add_classifier_folder(&mut self, settings: &mut FailureSearchSettings, folder: String) {
        let folder = folder.trim().to_string();
        if !is_resnet_folder(std::path::Path::new(&folder)) {
            self.error = Some(format!(
                "{folder} is not a classifier folder (a ResNet state dict and labels.txt)"
            ));
        } else if !settings.classifier_folders.contains(&folder) {
            settings.classifier_folders.push(folder.clone());
            settings.classifiers.push(folder);
            self.new_folder.clear();
        }
    }
}

/// A native folder dialog (blocks the job's thread, not the UI); None when dismissed.
fn pick_folder(title: &str) -> Option<PathBuf> {
    rfd::FileDialog::new().set_title(title).pick_folder()
}

/// The value of a job that has finished successfully (the slot is then empty); a failure is
/// logged and kept in `error`, a cancellation is dropped.
fn finished_job<T>(
    slot: &mut Option<JobHandle<T>>,
    error: &mut Option<String>,
    log: &mut crate::app::notify::Log,
) -> Option<T> {
    let result = slot.as_ref()?.poll()?;
    *slot = None;
    match result {
        Ok(v) => Some(v),
        Err(JobError::Cancelled) => None,
        Err(e) => {
            log.error(format!("Failure search: {e}"));
            *error = Some(e.to_string());
            None
        }
    }
}

/// Reads a run folder's report and paused state; an empty folder is an error that names it.
fn open_run(dir: PathBuf) -> Result<OpenedRun, JobError> {
    let read = |name: &str| -> Result<Option<String>, JobError> {
        let path = dir.join(name);
        if !path.is_file() {
            return Ok(None);
        }
        std::fs::read_to_string(&path)
            .map(Some)
            .map_err(|e| JobError::Failed(format!("cannot read {}: {e}", path.display())))
    };
    let bad = |name: &str, e: &dyn std::fmt::Display| JobError::Failed(format!("{}: {e}", dir.join(name).display()));
    let finished = match read(report::REPORT_FILE)? {
        Some(text) => {
            let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(report::REPORT_FILE, &e))?;
            let (mut result, info) = report::read_report(&value).map_err(|e| bad(report::REPORT_FILE, &e))?;
            attach_files(&dir, &mut result)?;
            Some(Finished { result, info })
        }
        None => None,
    };
    let paused = match read(report::STATE_FILE)? {
        Some(text) => Some(serde_json::from_str::<SearchState>(&text).map_err(|e| bad(report::STATE_FILE, &e))?),
        None => None,
    };
    if finished.is_none() && paused.is_none() {
        return Err(JobError::Failed(format!(
            "{}: no {} or {} (not a search run folder)",
            dir.display(),
            report::REPORT_FILE,
            report::STATE_FILE
        )));
    }
    Ok(OpenedRun { dir, finished, paused })
}

/// The report leaves out each candidate's latent and pixels: they come back from
/// latents.safetensors and candidates/NNN.png.
fn attach_files(
    dir: &std::path::Path,
    result: &mut crate::methods::sage::search::SearchResult,
) -> Result<(), JobError> {
    let fail = |path: &std::path::Path, problem: String| JobError::Failed(format!("{}: {problem}", path.display()));
    let latents = dir.join(report::LATENTS_FILE);
    let tensors = crate::io::array::read_safetensors(&latents).map_err(|e| JobError::Failed(e.to_string()))?;
    let t = tensors
        .first()
        .ok_or_else(|| fail(&latents, "holds no tensor".into()))?;
    let n = result.candidates.len();
    if t.shape().first() != Some(&n) || t.shape().len() != 2 {
        return Err(fail(
            &latents,
            format!("shape {:?}, but the report lists {n} candidates", t.shape()),
        ));
    }
    let m = t.shape()[1];
    let [_, h, w] = result.image_shape;
    for (k, c) in result.candidates.iter_mut().enumerate() {
        c.variable = t.values()[k * m..(k + 1) * m].to_vec();
        let path = dir.join(report::candidate_image_path(c));
        let image = crate::io::image::read(&path).map_err(|e| JobError::Failed(e.to_string()))?;
        let crate::core::image::ImageData::U8(px) = image.data() else {
            return Err(fail(&path, "not an 8-bit picture".into()));
        };
        if image.channels() != crate::core::image::Channels::Rgb {
            return Err(fail(&path, "not an RGB picture".into()));
        }
        c.images = crate::methods::sage::gallery::split_row(image.width(), image.height(), px, h, w)
            .ok_or_else(|| fail(&path, format!("not a row of {w}×{h} tiles")))?;
    }
    Ok(())
}

/// Registered models of `family`, by name.
fn model_names(session: &Session, family: &str) -> Vec<String> {
    session
        .models
        .iter()
        .filter(|m| m.manifest.family == family)
        .map(|m| m.manifest.name.clone())
        .collect()
}

pub fn ui(ui: &mut egui::Ui, state: &mut AppState, session: &mut Session, _commands: &mut Vec<Command>) {
    let settings = &mut state.failure_search;
    let mut rt = std::mem::take(&mut session.failure_search);
    rt.poll(settings, &mut session.log);
    if rt.busy() {
        ui.ctx().request_repaint_after(JOB_POLL);
    }
    let spec = settings.spec(session);
    // The tab loads its models on opening, for the class names and base rates.
    if !rt.opened {
        rt.opened = true;
        if let Ok(spec) = &spec
            && rt.loaded.is_none()
        {
            rt.preload(spec.clone(), session.waker.clone());
        }
    }
    if rt.run_on_open && rt.loading.is_none() && rt.job.is_none() {
        rt.run_on_open = false;
        if let Ok(spec) = &spec {
            rt.start(spec.clone(), settings.config(), None, session.waker.clone());
        }
    }
    ui.heading("Failure search: adversarial search of a generator (SAGE)");
    ui.horizontal_top(|ui| {
        ui.vertical(|ui| {
            ui.set_width(SIDE_WIDTH);
            egui::ScrollArea::vertical()
                .id_salt("sage_settings")
                .show(ui, |ui| controls(ui, settings, session, &mut rt, &spec));
        });
        ui.separator();
        ui.vertical(|ui| results(ui, settings, &mut rt, session.waker.clone()));
    });
    session.failure_search = rt;
}

/// A labelled combo box over `options` (value, text); `fallback` names a value not among them.
fn choice<T: PartialEq + Clone>(
    ui: &mut egui::Ui,
    label: &str,
    value: &mut T,
    options: &[(T, String)],
    fallback: &str,
) {
    let l = ui.label(label);
    let selected = options
        .iter()
        .find(|(v, _)| v == value)
        .map_or_else(|| fallback.to_string(), |(_, t)| t.clone());
    egui::ComboBox::from_id_salt(("sage_choice", label))
        .selected_text(selected)
        .show_ui(ui, |ui| {
            for (v, t) in options {
                ui.selectable_value(value, v.clone(), t);
            }
        })
        .response
        .labelled_by(l.id);
}

/// A folder's last component, as the lists show it.
/// A folder's last component, as the lists show it; a registered model's name as it is.
fn folder_label(folder: &str) -> String {
    if !folder.contains(std::path::MAIN_SEPARATOR) && !folder.contains('/') {
        return folder.to_string();
    }
    std::path::Path::new(folder)
        .file_name()
        .map_or_else(|| folder.to_string(), |n| format!("{} (folder)", n.to_string_lossy()))
}

/// A checkbox that puts `value` (a registered name or a folder) in the ensemble or takes it out.
fn ensemble_checkbox(ui: &mut egui::Ui, settings: &mut FailureSearchSettings, value: &str) -> egui::Response {
    let mut on = settings.classifiers.iter().any(|x| x == value);
    let response = ui.checkbox(&mut on, folder_label(value));
    if response.changed() {
        if on {
            settings.classifiers.push(value.to_string());
        } else {
            settings.classifiers.retain(|x| x != value);
        }
    }
    response
}

/// The Stable Diffusion folder and its sampling settings (grid rows).
fn sd_controls(ui: &mut egui::Ui, sd: &mut SdSettings, rt: &mut FailureSearchRuntime, waker: Option<jobs::Waker>) {
    let l = ui.label("Folder").on_hover_text(
        "A diffusers Stable Diffusion folder on this machine: unet/, vae/, text_encoder/, tokenizer/, scheduler/",
    );
    ui.horizontal(|ui| {
        ui.add(egui::TextEdit::singleline(&mut sd.folder).desired_width(170.0))
            .labelled_by(l.id);
        if ui
            .add_enabled(rt.file_job.is_none(), egui::Button::new("Browse…"))
            .clicked()
        {
            rt.pick(false, waker);
        }
    });
    ui.end_row();
    let l = ui
        .label("Classes")
        .on_hover_text("The classes to search, comma-separated; each becomes a prompt");
    ui.add(egui::TextEdit::singleline(&mut sd.classes).hint_text("cat, dog"))
        .labelled_by(l.id);
    ui.end_row();
    let l = ui.label("Prompt").on_hover_text("{} stands for the class name");
    ui.add(egui::TextEdit::singleline(&mut sd.prompt)).labelled_by(l.id);
    ui.end_row();
    let l = ui
        .label("Guidance")
        .on_hover_text("Classifier-free guidance scale; 1 or less: none");
    ui.add(egui::DragValue::new(&mut sd.guidance).range(0.0..=30.0).speed(0.1))
        .labelled_by(l.id);
    ui.end_row();
    let l = ui
        .label("Image size")
        .on_hover_text("Square, in pixels; 0: the model's own");
    ui.add(egui::DragValue::new(&mut sd.size).range(0..=2048).speed(8))
        .labelled_by(l.id);
    ui.end_row();
}

/// The ensemble's classifier folders (torchvision ResNets), each removable, and a field to add one.
fn folder_classifiers(
    ui: &mut egui::Ui,
    settings: &mut FailureSearchSettings,
    rt: &mut FailureSearchRuntime,
    waker: Option<jobs::Waker>,
) {
    let mut remove = None;
    for (i, f) in settings.classifier_folders.clone().iter().enumerate() {
        ui.horizontal(|ui| {
            ensemble_checkbox(ui, settings, f).on_hover_text(f.as_str());
            if ui.small_button("Remove").on_hover_text("Forget this folder").clicked() {
                remove = Some(i);
            }
        });
    }
    if let Some(i) = remove {
        let gone = settings.classifier_folders.remove(i);
        settings.classifiers.retain(|x| *x != gone);
        if settings.held_out == gone {
            settings.held_out.clear();
        }
    }
    ui.horizontal(|ui| {
        ui.add(
            egui::TextEdit::singleline(&mut rt.new_folder)
                .hint_text("ResNet folder")
                .desired_width(150.0),
        )
        .on_hover_text("A folder with a torchvision ResNet state dict (.pth or .safetensors) and labels.txt");
        if ui.button("Add").clicked() {
            let folder = rt.new_folder.clone();
            rt.add_classifier_folder(settings, folder);
        }
        if ui
            .add_enabled(rt.file_job.is_none(), egui::Button::new("Browse…"))
            .clicked()
        {
            rt.pick(true, waker);
        }
    });
}

fn controls(
    ui: &mut egui::Ui,
    settings: &mut FailureSearchSettings,
    session: &Session,
    rt: &mut FailureSearchRuntime,
    spec: &Result<SetupSpec, String>,
) {
    let generators = model_names(session, GENERATOR_FAMILY);
    let classifiers = model_names(session, CLASSIFIER_FAMILY);
    if generators.is_empty() || classifiers.is_empty() {
        ui.label(egui::RichText::new("No generator or classifiers are registered.").strong());
        ui.label(
            "The demo needs `sage-sprites-generator` and the sprite classifiers `relreps-sprites-a`, `-b` and \
             `-wide` under models/ (`latent-workbench train sage-sprites-generator` and `train relreps-sprites-*`).",
        );
    }
    ui.strong("Models");
    egui::Grid::new("sage_models").num_columns(2).show(ui, |ui| {
        let options: Vec<(String, String)> = generators
            .iter()
            .map(|g| (g.clone(), g.clone()))
            .chain(std::iter::once((SD_GENERATOR.to_string(), format!("{SD_GENERATOR}…"))))
            .collect();
        let fallback = settings.generator.clone();
        choice(ui, "Generator", &mut settings.generator, &options, &fallback);
        ui.end_row();
        if settings.generator == SD_GENERATOR {
            sd_controls(ui, &mut settings.sd, rt, session.waker.clone());
        }
        ui.label("Ensemble");
        ui.vertical(|ui| {
            for c in &classifiers {
                ensemble_checkbox(ui, settings, c);
            }
            folder_classifiers(ui, settings, rt, session.waker.clone());
        });
        ui.end_row();
        let options: Vec<(String, String)> = std::iter::once((String::new(), "none".to_string()))
            .chain(classifiers.iter().map(|c| (c.clone(), c.clone())))
            .chain(settings.classifier_folders.iter().map(|f| (f.clone(), folder_label(f))))
            .collect();
        let fallback = folder_label(&settings.held_out);
        choice(ui, "Held-out judge", &mut settings.held_out, &options, &fallback);
        ui.end_row();
    });
    if !settings.held_out.is_empty() && settings.classifiers.contains(&settings.held_out) {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            "The judge is also in the ensemble: it no longer confirms independently.",
        );
    }
    ui.add_space(6.0);
    ui.strong("Search settings");
    let names = if settings.generator == SD_GENERATOR {
        settings.sd.classes()
    } else {
        rt.class_names().unwrap_or_default()
    };
    let class_options: Vec<(usize, String)> = names.iter().cloned().enumerate().collect();
    egui::Grid::new("sage_search").num_columns(2).show(ui, |ui| {
        let fallback = format!("class {}", settings.class);
        choice(ui, "Class", &mut settings.class, &class_options, &fallback);
        ui.end_row();
        let options = ObjectiveChoice::ALL.map(|o| (o, o.label().to_string()));
        choice(ui, "Failure type", &mut settings.objective, &options, "");
        ui.end_row();
        if settings.objective == ObjectiveChoice::Switch {
            let fallback = format!("class {}", settings.target);
            choice(ui, "Switch to", &mut settings.target, &class_options, &fallback);
            ui.end_row();
        }
        let options = ModeKind::ALL.map(|m| (m, m.label().to_string()));
        choice(ui, "Mode", &mut settings.mode, &options, "");
        ui.end_row();
        match settings.mode {
            ModeKind::Skip => {
                let l = ui.label("Exact last steps").on_hover_text(
                    "Backpropagate exactly through this many final sampler steps; the skip covers the rest",
                );
                ui.add(egui::DragValue::new(&mut settings.exact_last).range(0..=1000))
                    .labelled_by(l.id);
                ui.end_row();
            }
            ModeKind::Evolution => {
                let l = ui.label("Population");
                ui.add(egui::DragValue::new(&mut settings.population).range(2..=256))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("σ");
                ui.add(egui::DragValue::new(&mut settings.sigma).range(0.001..=5.0).speed(0.01))
                    .labelled_by(l.id);
                ui.end_row();
            }
            ModeKind::Backprop | ModeKind::Random => {}
        }
        let l = ui.label("Restarts");
        ui.add(egui::DragValue::new(&mut settings.restarts).range(1..=256))
            .labelled_by(l.id);
        ui.end_row();
        let l = ui.label("Budget / restart").on_hover_text(
            "Generator calls per restart; a gradient evaluation counts two, so every mode gets the same work",
        );
        ui.add(egui::DragValue::new(&mut settings.budget).range(2..=100_000))
            .labelled_by(l.id);
        ui.end_row();
        if matches!(settings.mode, ModeKind::Skip | ModeKind::Backprop | ModeKind::Evolution) {
            let l = ui.label("Step size (Adam)");
            ui.add(egui::DragValue::new(&mut settings.lr).range(0.001..=10.0).speed(0.01))
                .labelled_by(l.id);
            ui.end_row();
            if settings.objective != ObjectiveChoice::Switch {
                let l = ui.label("Screening draws").on_hover_text(
                    "Random draws per restart before the first step, which starts from the best of them (part of the budget)",
                );
                ui.add(egui::DragValue::new(&mut settings.screen).range(0..=100_000))
                    .labelled_by(l.id);
                ui.end_row();
            }
        }
        let l = ui.label("Sampler steps");
        ui.add(egui::DragValue::new(&mut settings.steps).range(1..=1000))
            .labelled_by(l.id);
        ui.end_row();
        let l = ui.label("Seed");
        ui.add(egui::DragValue::new(&mut settings.seed)).labelled_by(l.id);
        ui.end_row();
    });
    let config = settings.config();
    let classes = names.len().max(1);
    let valid = config.validate(classes).map_err(|e| e.to_string());
    ui.add_space(4.0);
    let running = rt.job.is_some();
    let ready = spec.is_ok() && valid.is_ok() && !running && rt.loading.is_none();
    ui.horizontal(|ui| {
        let hover = match (spec, &valid) {
            (Err(e), _) | (_, Err(e)) => e.clone(),
            _ => format!(
                "{} iterations × {} restarts ({} generator calls per restart)",
                config.iterations(classes),
                config.restarts,
                config.calls_per_restart(classes)
            ),
        };
        if ui
            .add_enabled(ready, egui::Button::new("Search"))
            .on_hover_text(hover)
            .clicked()
            && let Ok(spec) = spec
        {
            rt.paused = None;
            rt.start(spec.clone(), config, None, session.waker.clone());
        }
        let resumable = rt.paused.as_ref().filter(|p| p.config == config);
        if let Some(p) = resumable {
            let label = format!("Resume ({}/{})", p.iteration, config.iterations(classes));
            if ui.add_enabled(ready, egui::Button::new(label)).clicked()
                && let Ok(spec) = spec
            {
                let state = rt.paused.take();
                rt.start(spec.clone(), config, state, session.waker.clone());
            }
        } else if rt.paused.is_some() {
            ui.weak("paused (other settings)")
                .on_hover_text("Resume continues only with the settings the search was paused with");
        }
    });
    if let Some(job) = &rt.job {
        let p = job.progress();
        ui.add(egui::ProgressBar::new(p.fraction()).text(p.message()));
        if ui
            .button("Cancel")
            .on_hover_text("Pauses after this iteration; Resume continues")
            .clicked()
        {
            job.cancel();
        }
    } else if let Some(job) = &rt.loading {
        let p = job.progress();
        ui.add(egui::ProgressBar::new(p.fraction()).text(p.message()));
    }
    if let Err(e) = spec {
        ui.colored_label(ui.visuals().warn_fg_color, e);
    }
    if let Some(e) = &rt.error {
        ui.colored_label(ui.visuals().error_fg_color, e);
    }
    ui.add_space(6.0);
    ui.strong("Run folder");
    ui.horizontal_wrapped(|ui| {
        let can_save = (rt.finished.is_some() || rt.paused.is_some()) && rt.file_job.is_none() && !running;
        let save_label = if rt.unsaved { "Save run…" } else { "Save run as…" };
        if ui
            .add_enabled(can_save, egui::Button::new(save_label))
            .on_hover_text("report.json (with your verdicts), gallery.png, candidates/, latents.safetensors; a paused search as state.json")
            .clicked()
        {
            rt.save(None, session.waker.clone());
        }
        if let Some(dir) = rt.run_dir.clone()
            && rt.unsaved
            && ui.add_enabled(can_save, egui::Button::new("Save (Ctrl+S)")).clicked()
        {
            rt.save(Some(dir), session.waker.clone());
        }
        if ui
            .add_enabled(rt.file_job.is_none() && !running, egui::Button::new("Open run…"))
            .on_hover_text("A folder saved here or by `latent-workbench sage -o DIR`")
            .clicked()
        {
            rt.open(None, session.waker.clone());
        }
    });
    if let Some(dir) = &rt.run_dir {
        ui.weak(format!(
            "{}{}",
            dir.display(),
            if rt.unsaved { " (unsaved changes)" } else { "" }
        ));
    } else if rt.finished.is_some() {
        ui.weak("not saved yet");
    }
    if let Some(dir) = rt.run_dir.clone()
        && rt.unsaved
        && rt.file_job.is_none()
        && ui.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::S))
    {
        rt.save(Some(dir), session.waker.clone());
    }
}

fn results(
    ui: &mut egui::Ui,
    settings: &mut FailureSearchSettings,
    rt: &mut FailureSearchRuntime,
    _waker: Option<jobs::Waker>,
) {
    let names = rt.class_names().unwrap_or_default();
    let member_names: Vec<String> = rt
        .loaded
        .as_ref()
        .map(|l| l.setup.spec.classifiers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    live::show(ui, &rt.live, &member_names, &mut rt.live_view, rt.job.is_some());
    if let Some(l) = &rt.loaded
        && let Some(rates) = l.base_rates.as_object()
    {
        let class = names.get(settings.class).map_or("the class", String::as_str);
        let parts: Vec<String> = rates
            .iter()
            .map(|(k, v)| format!("{k} {:.0} %", v.as_f64().unwrap_or(0.0) * 100.0))
            .collect();
        ui.weak(format!(
            "Base rates (random draws of every class shown as the class asked): {}",
            parts.join(", ")
        ))
        .on_hover_text(format!("A failure of {class} is rare when these are high"));
    }
    ui.separator();
    match &rt.finished {
        Some(f) => {
            for (i, verdict) in gallery::show(ui, f, settings, &mut rt.gallery) {
                rt.set_verdict(i, verdict);
            }
        }
        None if rt.job.is_none() => {
            ui.label(
                "Press Search: each restart starts from a random latent and moves it to make the ensemble stop \
                 seeing the class; the gallery then lists what it found, with every classifier's scores, for you \
                 to accept (a real generator failure) or reject (a classifier error).",
            );
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_runs_settings_come_back_as_they_were() {
        for mode in ModeKind::ALL {
            let settings = FailureSearchSettings {
                mode,
                exact_last: 2,
                population: 12,
                sigma: 0.25,
                objective: ObjectiveChoice::Switch,
                target: 1,
                class: 0,
                budget: 40,
                ..FailureSearchSettings::default()
            };
            let mut other = FailureSearchSettings::default();
            other.adopt(&settings.config());
            assert_eq!(other.config(), settings.config(), "{mode:?}");
        }
    }
}
