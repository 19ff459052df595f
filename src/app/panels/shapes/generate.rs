//! The Shapes tab's generation section: a WaLa diffusion model (a folder as WaLa publishes one,
//! `args.json` + `checkpoint.ckpt`) turns a loaded point cloud or mesh (or nothing, for an
//! unconditional model) into a shape, in a job with progress and cancel
//! (`methods::wala::generate`, which `wala-generate` drives too). A voxel-conditioned model also
//! takes upstream's voxel JSON (`run.py --voxel_files`), picked here or dropped on the window.

use crate::app::Session;
use crate::app::notify::Log;
use crate::core::jobs::{self, JobError, JobHandle};
use crate::core::manifest::Entry;
use crate::core::{Asset, Mesh};
use crate::methods::wala::generate::{
    DEMO_MODEL, DIFFUSION_FAMILY, Framing, GenerateError, GenerateOptions, OPERATION, Prepared, WALA_POINTS,
    WalaGenerator, voxel_condition,
};
use crate::methods::wala::latent::LatentModel;
use crate::methods::wala::uvit::VoxelGrid;
use crate::methods::wala::uvit::{Condition, SampleOptions};
use crate::render::{Coloring, Geometry, Scene, SceneObject};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct GenerateSettings {
    /// The WaLa model folder last opened (reopened on the next start).
    pub folder: Option<PathBuf>,
    /// A registered WaLa-family autoencoder to decode with; `None`: the checkpoint's own.
    pub autoencoder: Option<String>,
    pub steps: usize,
    pub guidance: f64,
    pub seed: u64,
    /// Fit the condition's box into WaLa's ±0.9 frame (and map the shape back).
    pub fit: bool,
    pub show: bool,
}

impl Default for GenerateSettings {
    fn default() -> Self {
        Self {
            folder: None,
            autoencoder: None,
            steps: SampleOptions::WALA_STEPS,
            guidance: SampleOptions::WALA_GUIDANCE,
            seed: 0,
            fit: true,
            show: true,
        }
    }
}

/// A generated shape and how it was made.
pub struct GeneratedShape {
    pub mesh: Option<Arc<Mesh>>,
    pub provenance: serde_json::Value,
    pub seconds: f64,
}

/// The model to open: a folder the user chose, or the registered (demo) one.
#[derive(Clone)]
enum ModelChoice {
    Folder(PathBuf),
    Registered(Box<Entry>),
}

impl ModelChoice {
    fn folder(&self) -> &std::path::Path {
        match self {
            ModelChoice::Folder(f) => f,
            ModelChoice::Registered(e) => &e.dir,
        }
    }
}

/// The registered WaLa diffusion model (the shipped demo one), if any.
fn registered_model(session: &Session) -> Option<Entry> {
    let family = |m: &&Entry| m.manifest.family == DIFFUSION_FAMILY;
    let models = || session.models.iter().filter(family);
    models()
        .find(|m| m.manifest.name == DEMO_MODEL)
        .or_else(|| models().next())
        .cloned()
}

/// A voxel JSON read as a condition (already in WaLa's frame, so it is taken as given).
#[derive(Clone, Debug)]
pub struct VoxelFile {
    pub path: PathBuf,
    pub name: String,
    pub prepared: Prepared,
    pub resolution: usize,
    pub cells: usize,
    /// The occupied cells' centres in WaLa's frame, for the view.
    pub points: Arc<crate::core::PointCloud>,
}

impl VoxelFile {
    /// Reads and checks `path` (on a worker thread: files may be large).
    fn read(path: PathBuf) -> Result<Self, JobError> {
        let name = path
            .file_name()
            .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        let problem = |e: String| JobError::Failed(format!("{}: {e}", path.display()));
        let text = std::fs::read_to_string(&path).map_err(|e| problem(format!("cannot be read ({e})")))?;
        // Worded as `voxel_json` words it (the CLI's path).
        let grid = VoxelGrid::from_json(&text).map_err(|e| problem(GenerateError::Condition(e).to_string()))?;
        let (resolution, cells) = (grid.resolution, grid.count());
        let points = Arc::new(crate::core::PointCloud::new(grid.occupied_centres()));
        Ok(Self {
            path,
            name,
            prepared: voxel_condition(grid),
            resolution,
            cells,
            points,
        })
    }

    fn label(&self) -> String {
        format!("{} ({}³ voxel JSON, {} cells)", self.name, self.resolution, self.cells)
    }
}

/// Which model is open: the folder and the autoencoder choice it was opened with.
type Opened = (PathBuf, Option<String>);

#[derive(Default)]
pub struct GenerateRuntime {
    /// The model asked for last (opened, opening, or failed to open): a failure is not retried
    /// until the choice changes or Reload is pressed.
    attempted: Option<Opened>,
    open_job: Option<JobHandle<Arc<WalaGenerator>>>,
    pick_job: Option<JobHandle<Option<PathBuf>>>,
    pub generator: Option<Arc<WalaGenerator>>,
    /// The loaded asset used as the condition.
    pub condition: Option<u64>,
    /// A voxel JSON read for a voxel-conditioned model, and whether it (not the asset) conditions.
    pub voxel_file: Option<VoxelFile>,
    pub use_voxel_file: bool,
    voxel_job: Option<JobHandle<VoxelFile>>,
    voxel_pick: Option<JobHandle<Option<PathBuf>>>,
    job: Option<JobHandle<GeneratedShape>>,
    pub result: Option<GeneratedShape>,
    pub error: Option<String>,
    /// `gui --tab shapes --run-demo`: generate from this asset as soon as the model is open.
    pub demo_condition: Option<u64>,
}

impl GenerateRuntime {
    pub fn busy(&self) -> bool {
        self.open_job.is_some()
            || self.pick_job.is_some()
            || self.voxel_job.is_some()
            || self.voxel_pick.is_some()
            || self.job.is_some()
            || self.demo_condition.is_some()
    }

    /// Reads a voxel JSON in a job; once read it becomes the condition of a voxel-conditioned model.
    pub fn open_voxel_file(&mut self, path: PathBuf, waker: Option<jobs::Waker>) {
        self.voxel_job = Some(jobs::spawn("Reading a voxel JSON", waker, move |_| {
            VoxelFile::read(path)
        }));
    }

    pub fn poll(&mut self, settings: &mut GenerateSettings, log: &mut Log, waker: Option<jobs::Waker>) {
        if let Some(result) = self.pick_job.as_ref().and_then(|j| j.poll()) {
            self.pick_job = None;
            if let Ok(Some(folder)) = result {
                settings.folder = Some(folder);
            }
        }
        if let Some(result) = self.voxel_pick.as_ref().and_then(|j| j.poll()) {
            self.voxel_pick = None;
            if let Ok(Some(path)) = result {
                self.open_voxel_file(path, waker);
            }
        }
        if let Some(result) = self.voxel_job.as_ref().and_then(|j| j.poll()) {
            self.voxel_job = None;
            match result {
                Ok(file) => {
                    log.info(format!("read {}", file.label()));
                    self.voxel_file = Some(file);
                    self.use_voxel_file = true;
                    self.error = None;
                }
                Err(JobError::Cancelled) => {}
                Err(e) => self.error = Some(e.to_string()),
            }
        }
        if let Some(result) = self.open_job.as_ref().and_then(|j| j.poll()) {
            self.open_job = None;
            match result {
                Ok(g) => {
                    log.info(format!("opened {}", g.describe()));
                    self.generator = Some(g);
                    self.error = None;
                }
                Err(e) => {
                    self.generator = None;
                    self.error = Some(e.to_string());
                    self.demo_condition = None;
                }
            }
        }
        if let Some(result) = self.job.as_ref().and_then(|j| j.poll()) {
            self.job = None;
            match result {
                Ok(shape) => {
                    log.info(format!(
                        "generated a shape with {} triangles in {:.1} s",
                        shape.mesh.as_ref().map_or(0, |m| m.triangles.len()),
                        shape.seconds
                    ));
                    self.result = Some(shape);
                    self.error = None;
                }
                Err(JobError::Cancelled) => log.info("generation cancelled"),
                Err(e) => self.error = Some(e.to_string()),
            }
        }
    }

    /// Opens `model` (the settings' folder, or the registered demo model) unless it was asked for
    /// already.
    fn ensure_open(
        &mut self,
        model: Option<ModelChoice>,
        settings: &GenerateSettings,
        models: &[Entry],
        waker: Option<jobs::Waker>,
    ) {
        let Some(model) = model else { return };
        let folder = model.folder().to_path_buf();
        let want: Opened = (folder.clone(), settings.autoencoder.clone());
        if self.attempted.as_ref() == Some(&want) || self.open_job.is_some() {
            return;
        }
        let entry = settings
            .autoencoder
            .as_ref()
            .and_then(|n| models.iter().find(|m| &m.manifest.name == n))
            .cloned();
        self.attempted = Some(want);
        self.generator = None;
        self.error = None;
        self.open_job = Some(jobs::spawn("Open WaLa model", waker, move |ctx| {
            if let ModelChoice::Registered(entry) = &model {
                ctx.set(0.05, "checking the checkpoint's sha256");
                entry.verify().map_err(|e| JobError::Failed(e.to_string()))?;
            }
            ctx.set(0.1, "reading the checkpoint");
            let autoencoder = entry
                .map(|e| LatentModel::from_entry(&e))
                .transpose()
                .map_err(|e| JobError::Failed(e.to_string()))?;
            ctx.check()?;
            Ok(Arc::new(WalaGenerator::open(
                &folder,
                autoencoder,
                &crate::core::device::device().device,
            )?))
        }));
    }

    /// The generated shape in the view, and a voxel JSON condition as points at its occupied cells.
    pub fn add_to_scene(&self, scene: &mut Scene, settings: &GenerateSettings, id: u64, voxel_id: u64) {
        if !settings.show {
            return;
        }
        let voxel_model = self
            .generator
            .as_ref()
            .is_some_and(|g| matches!(g.condition(), Condition::Voxel { .. }));
        if let Some(file) = self.voxel_file.as_ref().filter(|_| voxel_model && self.use_voxel_file) {
            let mut object = SceneObject::new(voxel_id, file.name.clone(), Geometry::Points(file.points.clone()));
            object.coloring = Coloring::Solid(crate::render::scene::PALETTE[2]);
            scene.objects.push(object);
        }
        if let Some(GeneratedShape { mesh: Some(m), .. }) = &self.result {
            let mut object = SceneObject::new(
                id,
                format!("generated (seed {})", settings.seed),
                Geometry::Mesh(m.clone()),
            );
            object.coloring = Coloring::Solid(crate::render::scene::PALETTE[4]);
            scene.objects.push(object);
        }
    }

    pub fn provenance(&self) -> serde_json::Value {
        self.result
            .as_ref()
            .map_or(serde_json::Value::Null, |r| r.provenance.clone())
    }
}

/// Loaded assets the model can take: meshes, point clouds and N × 3 arrays for a point-cloud
/// model; meshes (voxelised) for a voxel model.
fn condition_assets(session: &Session, condition: &Condition) -> Vec<(u64, String)> {
    let voxels = matches!(condition, Condition::Voxel { .. });
    session
        .assets
        .iter()
        .filter(|a| match &a.asset {
            Asset::Mesh(m) => !m.triangles.is_empty(),
            Asset::PointCloud(p) => !voxels && !p.points.is_empty(),
            Asset::Tensors(ts) => !voxels && ts.iter().any(|t| matches!(t.shape(), [_, 3])),
            // A signed distance volume conditions through its zero level set (the tab knows each
            // volume's range; scanning the voxels here would cost every frame).
            Asset::Volume(_) => session.shapes.is_signed_volume(a.id),
            _ => false,
        })
        .map(|a| (a.id, a.name.clone()))
        .collect()
}

/// What a generation is conditioned on: a loaded asset (prepared in the job) or a voxel JSON.
enum ConditionSource {
    Asset(Asset),
    Prepared(Prepared),
}

/// Starts generating with the open model (the condition prepared in the job too).
pub fn start(session: &mut Session, settings: &GenerateSettings) {
    let rt = &session.shapes.generate;
    let Some(generator) = rt.generator.clone() else { return };
    let voxel_file = rt.voxel_file.clone().filter(|_| rt.use_voxel_file);
    let condition = match (generator.condition(), voxel_file) {
        (Condition::None, _) => None,
        (Condition::Voxel { .. }, Some(file)) => {
            let wanted = generator.voxel_resolution().unwrap_or(0);
            if file.resolution != wanted {
                session.shapes.generate.error = Some(format!(
                    "{}: a {}³ voxel grid, but {} takes {wanted}³",
                    file.name, file.resolution, generator.name
                ));
                return;
            }
            Some((file.name, Some(file.path), ConditionSource::Prepared(file.prepared)))
        }
        _ => {
            let Some(a) = rt.condition.and_then(|id| session.get(id)) else {
                session.shapes.generate.error =
                    Some("choose a point cloud, a mesh or an SDF volume to condition on".into());
                return;
            };
            Some((a.name.clone(), a.path.clone(), ConditionSource::Asset(a.asset.clone())))
        }
    };
    let options = GenerateOptions {
        sample: SampleOptions {
            steps: settings.steps.max(1),
            guidance: settings.guidance,
        },
        seed: settings.seed,
    };
    let framing = if settings.fit { Framing::Fit } else { Framing::AsGiven };
    let waker = session.waker.clone();
    let job = jobs::spawn("WaLa generation", waker, move |ctx| {
        let started = std::time::Instant::now();
        ctx.set(0.0, "preparing the condition");
        let prepared = condition
            .as_ref()
            .map(|(name, _, source)| match source {
                ConditionSource::Asset(asset) => generator
                    .prepare(asset, WALA_POINTS, options.seed, framing)
                    .map_err(|e| JobError::Failed(format!("{name}: {e}"))),
                ConditionSource::Prepared(p) => Ok(p.clone()),
            })
            .transpose()?;
        ctx.check()?;
        let mut progress = crate::core::diffusion::job_progress(ctx, "sampling step");
        let generated = generator.generate(prepared.as_ref().map(|c| &c.input), &options, &mut progress)?;
        ctx.set(1.0, "meshing");
        let mesh = generator.mesh_in_input_frame(&generated, prepared.as_ref())?;
        let seconds = started.elapsed().as_secs_f64();
        let provenance = serde_json::json!({
            "operation": OPERATION,
            "model": {"name": generator.name, "folder": generator.folder, "checkpoint_sha256": generator.sha256},
            "autoencoder": if generator.autoencoder_in_checkpoint { serde_json::json!("the checkpoint's own") } else { serde_json::json!({"name": generator.autoencoder.name, "sha256": generator.autoencoder.sha256}) },
            "condition": condition.as_ref().map(|(name, path, _)| serde_json::json!({
                "name": name, "path": path, "input": prepared.as_ref().map(|c| c.input.describe()),
                "framing": prepared.as_ref().map(Prepared::framing_note),
            })),
            "steps": options.sample.steps, "guidance": options.sample.guidance,
            "guidance_used": generator.diffusion.config().guided(), "seed": options.seed,
            "grid": generator.autoencoder.grid, "seconds": seconds,
        });
        Ok(GeneratedShape {
            mesh: mesh.filter(|m| !m.triangles.is_empty()).map(Arc::new),
            provenance,
            seconds,
        })
    });
    session.shapes.generate.job = Some(job);
}

pub fn section(ui: &mut egui::Ui, settings: &mut GenerateSettings, session: &mut Session) {
    ui.strong("Generate (WaLa diffusion)");
    // Registered WaLa-family autoencoders: the decoders a diffusion model may stand on.
    let models = super::latent::wala_models(session);
    let waker = session.waker.clone();
    let registered = registered_model(session);
    let choice = match (&settings.folder, &registered) {
        (Some(folder), _) => Some(ModelChoice::Folder(folder.clone())),
        (None, Some(entry)) => Some(ModelChoice::Registered(Box::new(entry.clone()))),
        (None, None) => None,
    };
    session
        .shapes
        .generate
        .ensure_open(choice.clone(), settings, &models, waker.clone());
    let rt = &mut session.shapes.generate;
    ui.horizontal(|ui| {
        if ui
            .add_enabled(rt.pick_job.is_none(), egui::Button::new("Open model folder…"))
            .on_hover_text(
                "A WaLa model as published: a folder with args.json and checkpoint.ckpt (or checkpoint.safetensors)",
            )
            .clicked()
        {
            rt.pick_job = Some(jobs::spawn("Choose a WaLa model", waker.clone(), |_| {
                Ok(rfd::FileDialog::new().set_title("WaLa model folder").pick_folder())
            }));
        }
        if let (Some(_), Some(entry)) = (&settings.folder, &registered)
            && ui
                .button("Demo model")
                .on_hover_text(format!("Back to {}", entry.manifest.name))
                .clicked()
        {
            settings.folder = None;
        }
        if choice.is_some()
            && rt.open_job.is_none()
            && ui.button("Reload").on_hover_text("Read the folder again").clicked()
        {
            rt.attempted = None;
        }
    });
    let Some(choice) = choice else {
        rt.demo_condition = None;
        ui.weak(format!(
            "No model open. WaLa's published models (Hugging Face ADSKAILab/WaLa-PC-1B and others) are folders of args.json and checkpoint.ckpt; `latent-workbench train {DEMO_MODEL}` makes the small demo one."
        ));
        return;
    };
    let folder = choice.folder().to_path_buf();
    if rt.open_job.is_some() {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(format!("opening {}", folder.display()));
        });
    }
    let autoencoder_label = |n: &Option<String>| n.clone().unwrap_or_else(|| "its own (in the checkpoint)".into());
    egui::ComboBox::new("wala-gen-autoencoder", "decoder")
        .selected_text(autoencoder_label(&settings.autoencoder))
        .show_ui(ui, |ui| {
            ui.selectable_value(&mut settings.autoencoder, None, autoencoder_label(&None));
            for m in &models {
                ui.selectable_value(&mut settings.autoencoder, Some(m.manifest.name.clone()), &m.manifest.name);
            }
        })
        .response
        .on_hover_text("Decode with the checkpoint's own autoencoder, or with a registered WaLa-family one whose latents the diffusion model was trained on");
    if let Some(e) = &rt.error {
        ui.colored_label(ui.visuals().error_fg_color, e);
    }
    let Some(generator) = rt.generator.clone() else { return };
    let kind = match generator.condition() {
        Condition::None => "unconditional",
        Condition::PointCloud { .. } => "point-cloud conditioned",
        Condition::Voxel { .. } => "voxel conditioned",
    };
    ui.label(format!("model {} ({kind})", generator.name))
        .on_hover_text(generator.describe());
    if let ModelChoice::Registered(entry) = &choice
        && entry.manifest.demo
    {
        ui.weak("The shipped demo model: small, trained on procedural solids only (not WaLa's)")
            .on_hover_text(&entry.manifest.description);
    }
    let needs_condition = generator.condition() != Condition::None;
    if needs_condition {
        let voxels = matches!(generator.condition(), Condition::Voxel { .. });
        let choices = condition_assets(session, &generator.condition());
        let rt = &mut session.shapes.generate;
        if rt.condition.is_none_or(|id| !choices.iter().any(|(c, _)| *c == id)) {
            rt.condition = choices.first().map(|(id, _)| *id);
        }
        let file = rt.voxel_file.as_ref().filter(|_| voxels).map(VoxelFile::label);
        rt.use_voxel_file &= file.is_some();
        if file.is_none() && choices.is_empty() {
            ui.weak(if voxels {
                "Load a closed mesh or an SDF volume to voxelise as the condition, or read a voxel JSON."
            } else {
                "Load a point cloud, a mesh or an SDF volume to condition on."
            });
        }
        let name = |id: Option<u64>| {
            choices
                .iter()
                .find(|(c, _)| Some(*c) == id)
                .map_or_else(String::new, |(_, n)| n.clone())
        };
        ui.horizontal(|ui| {
            let shown = match (&file, rt.use_voxel_file) {
                (Some(f), true) => f.clone(),
                _ => name(rt.condition),
            };
            egui::ComboBox::new("wala-gen-condition", "condition")
                .selected_text(shown)
                .show_ui(ui, |ui| {
                    for (id, n) in &choices {
                        if ui
                            .selectable_label(!rt.use_voxel_file && rt.condition == Some(*id), n)
                            .clicked()
                        {
                            rt.condition = Some(*id);
                            rt.use_voxel_file = false;
                        }
                    }
                    if let Some(f) = &file
                        && ui.selectable_label(rt.use_voxel_file, f).clicked()
                    {
                        rt.use_voxel_file = true;
                    }
                });
            if voxels
                && ui
                    .add_enabled(
                        rt.voxel_pick.is_none() && rt.voxel_job.is_none(),
                        egui::Button::new("Voxel JSON…"),
                    )
                    .on_hover_text(
                        "Upstream's voxel condition (run.py --voxel_files): {\"resolution\": 16, \"occupancy\": [[x, y, z], …]}, already in WaLa's frame",
                    )
                    .clicked()
            {
                rt.voxel_pick = Some(jobs::spawn("Choose a voxel JSON", waker.clone(), |_| {
                    Ok(rfd::FileDialog::new()
                        .set_title("Voxel JSON")
                        .add_filter("Voxel JSON", &["json"])
                        .pick_file())
                }));
            }
        });
        ui.checkbox(&mut settings.fit, "fit to WaLa's frame")
            .on_hover_text("Centre the condition's box and scale it to ±0.9 (the shape is mapped back); off: it is already in WaLa's frame");
    }
    ui.horizontal(|ui| {
        ui.add(
            egui::DragValue::new(&mut settings.steps)
                .range(1..=1000)
                .prefix("steps "),
        );
        ui.add(
            egui::DragValue::new(&mut settings.guidance)
                .range(0.0..=20.0)
                .speed(0.05)
                .prefix("guidance "),
        );
    });
    ui.horizontal(|ui| {
        ui.add(egui::DragValue::new(&mut settings.seed).prefix("seed "));
        if ui.button("Next seed").clicked() {
            settings.seed = settings.seed.wrapping_add(1);
        }
    });
    let rt = &mut session.shapes.generate;
    // The demo run presses Generate once the model is open.
    let demo_run = rt.job.is_none() && rt.demo_condition.is_some();
    if demo_run {
        rt.condition = rt.demo_condition.take();
        rt.use_voxel_file = false;
    }
    if let Some(job) = &rt.job {
        let p = job.progress();
        ui.add(egui::ProgressBar::new(p.fraction()).text(p.message()));
        if ui.button("Cancel").clicked() {
            job.cancel();
        }
    } else if ui
        .add_enabled(
            !needs_condition || rt.condition.is_some() || rt.use_voxel_file,
            egui::Button::new("Generate"),
        )
        .on_hover_text("Sample a latent, decode it and mesh its zero level set")
        .clicked()
        || demo_run
    {
        start(session, settings);
    }
    let rt = &session.shapes.generate;
    if let Some(r) = &rt.result {
        ui.checkbox(&mut settings.show, "show the generated shape");
        match &r.mesh {
            Some(m) => ui.weak(format!("{} triangles in {:.1} s", m.triangles.len(), r.seconds)),
            None => ui.weak(format!("the generated SDF has no surface ({:.1} s)", r.seconds)),
        };
    }
}
