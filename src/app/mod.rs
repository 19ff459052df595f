//! The desktop app: the only module that imports egui/eframe. A thin client of the library:
//! panels draw from the session and queue [`Command`]s; the app applies them once per frame.

mod command;
mod notify;
pub mod panels;
mod session;
mod state;
mod tabs;

pub use command::Command;
pub use notify::Level;
pub use session::{LoadedAsset, Session};
pub use state::{AppState, ViewerSettings};
pub use tabs::Tab;

use crate::core::jobs::{self, JobError};
use session::Loaded;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The built-in demo volume: MNI152 2009 T1 at 1.5 mm (`methods::demo_data::templates`, compiled into
/// the binary so the app is useful with no files and no network).
const DEMO_NAME: &str = "MNI152 T1 (demo, 1.5 mm)";

const STATE_KEY: &str = "latent-workbench/state";
const TREE_KEY: &str = "latent-workbench/tree";
/// Frames to draw before a `--screenshot` is taken (layout and textures settle in a few).
const SCREENSHOT_AFTER_FRAMES: u64 = 12;

/// How the app was started.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    pub files: Vec<PathBuf>,
    pub screenshot: Option<PathBuf>,
    pub tab: Option<String>,
    pub size: Option<String>,
    /// Run the shown tab's demo on start (Interpolation unless the tab has its own; see `gui --run-demo`).
    pub run_demo: bool,
}

/// Opens the window and runs until it is closed.
pub fn run(launch: Launch) -> anyhow::Result<()> {
    let size = match launch.size.as_deref() {
        Some(s) => parse_size(s).ok_or_else(|| anyhow::anyhow!("--size must look like 1400x900, got {s:?}"))?,
        None => [1400.0, 900.0],
    };
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Latent Workbench")
            .with_inner_size(size)
            .with_min_inner_size([640.0, 400.0])
            .with_drag_and_drop(true),
        renderer: eframe::Renderer::Wgpu,
        ..Default::default()
    };
    eframe::run_native(
        "latent-workbench",
        options,
        Box::new(move |cc| Ok(Box::new(WorkbenchApp::new(cc, launch)))),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}

fn parse_size(s: &str) -> Option<[f32; 2]> {
    let (w, h) = s.split_once(['x', 'X'])?;
    Some([w.trim().parse().ok()?, h.trim().parse().ok()?])
}

pub struct WorkbenchApp {
    pub state: AppState,
    tree: egui_tiles::Tree<Tab>,
    pub session: Session,
    commands: Vec<Command>,
    screenshot: Option<PathBuf>,
    /// Where the requested screenshot arrives.
    screenshot_rx: Option<std::sync::mpsc::Receiver<Arc<egui::ColorImage>>>,
    frames: u64,
}

impl WorkbenchApp {
    pub fn new(cc: &eframe::CreationContext<'_>, launch: Launch) -> Self {
        let state = cc
            .storage
            .and_then(|s| eframe::get_value::<AppState>(s, STATE_KEY))
            .filter(|s| s.version == state::STATE_VERSION)
            .unwrap_or_default();
        let tree = cc
            .storage
            .and_then(|s| eframe::get_value::<egui_tiles::Tree<Tab>>(s, TREE_KEY))
            .filter(tabs::tree_is_complete)
            .unwrap_or_else(tabs::default_tree);
        cc.egui_ctx.set_theme(if state.dark_mode {
            egui::Theme::Dark
        } else {
            egui::Theme::Light
        });
        if let Some(render_state) = cc.wgpu_render_state.as_ref() {
            panels::viewport3d::install(render_state);
        }
        let ctx = cc.egui_ctx.clone();
        let mut session = Session::default();
        session.waker = Some(Arc::new(move || ctx.request_repaint()));
        session.rescan_models();
        if let Some(rs) = cc.wgpu_render_state.as_ref() {
            let info = rs.adapter.get_info();
            // A software rasterizer (lavapipe) meshes far slower than the CPU path (README, Benchmarks).
            if info.device_type == eframe::egui_wgpu::wgpu::DeviceType::Cpu {
                session.shapes.mesh_on_cpu_because(format!(
                    "the viewport's device, {}, is a software rasterizer, slower than the CPU path",
                    info.name
                ));
            } else {
                let mc = crate::render::LiveMarchingCubes::new(rs.device.clone(), rs.queue.clone());
                session.shapes.use_gpu(mc);
            }
        }
        session.log.info(format!(
            "Latent Workbench {} - inference device: {}",
            crate::VERSION,
            device_name()
        ));
        let mut app = Self {
            state,
            tree,
            session,
            commands: Vec::new(),
            screenshot: launch.screenshot,
            screenshot_rx: None,
            frames: 0,
        };
        if launch.files.is_empty() {
            if app.state.open_demo_on_start {
                app.load_demo();
            }
        } else {
            for f in launch.files {
                app.open(f);
            }
        }
        let mut tab = launch
            .tab
            .as_deref()
            .and_then(Tab::from_name)
            .unwrap_or_else(|| app.start_tab());
        if launch.run_demo {
            if tab == Tab::Shapes {
                app.push(Command::AddDemoShapes);
                app.session.shapes.demo_pending = true;
            } else if tab == Tab::Motion {
                app.push(Command::AddDemoMotion);
                app.session.motion.demo_pending = true;
            } else if tab == Tab::FailureSearch {
                app.session.failure_search.run_on_open = true;
            } else if tab == Tab::Attributes {
                use panels::interpolation::shared;
                // The model the tab's picker will show.
                shared::settle_choice(&mut app.state.ldae.model, &app.session);
                let dir = shared::model_dir(&app.session, &app.state.ldae.model);
                let waker = app.session.waker.clone();
                app.session.attributes.run_demo(dir, waker);
            } else if tab == Tab::WildFusion {
                // The tab renders its first view as soon as it is shown.
            } else {
                let waker = app.session.waker.clone();
                app.session.interpolation.run_demo(waker);
                tab = Tab::Interpolation;
            }
        }
        app.show_tab(tab);
        app
    }

    /// The tab shown on start without `--tab`: Interpolation when an LDAE model (the shipped demo)
    /// is registered, since missing-scan synthesis is what the app is for; else the Viewer.
    fn start_tab(&self) -> Tab {
        let ldae = panels::interpolation::shared::FAMILY;
        if self.session.models.iter().any(|m| m.manifest.family == ldae) {
            Tab::Interpolation
        } else {
            Tab::Viewer
        }
    }

    /// Queues a command as a panel would (tests use this too).
    pub fn push(&mut self, c: Command) {
        self.commands.push(c);
    }

    /// Whether any load job is still running.
    pub fn busy(&self) -> bool {
        !self.session.loads.is_empty()
    }

    /// Whether a panel's own job (synthesis, probe fit, comparison) runs: `--screenshot` waits for
    /// it so that the picture shows results.
    fn panels_busy(&self) -> bool {
        self.session.interpolation.busy()
            || self.session.attributes.busy()
            || self.session.stitching.busy()
            || self.session.shapes.busy()
            || self.session.motion.busy()
            || self.session.failure_search.busy()
            || self.session.wildfusion.busy()
    }

    fn show_tab(&mut self, tab: Tab) {
        self.tree
            .make_active(|_, t| matches!(t, egui_tiles::Tile::Pane(p) if *p == tab));
    }

    /// Decodes the embedded demo synchronously (about 30 ms), so the first frame shows it.
    fn load_demo(&mut self) {
        match crate::io::demo_assets::t1() {
            Ok(volume) => {
                let id = self.session.add(Loaded {
                    name: DEMO_NAME.into(),
                    path: None,
                    asset: crate::core::Asset::Volume(volume),
                });
                self.session.active = Some(id);
            }
            Err(e) => self.session.log.error(format!("cannot open the built-in demo: {e}")),
        }
    }

    /// Starts loading a file on a worker thread.
    fn open(&mut self, path: PathBuf) {
        // A WaLa model folder (args.json + checkpoint) is a model to generate with, not data.
        if crate::methods::wala::generate::is_model_folder(&path) {
            self.session
                .log
                .info(format!("{} is a WaLa model: opened in the Shapes tab", path.display()));
            self.state.shapes.generate.folder = Some(path);
            self.show_tab(Tab::Shapes);
            return;
        }
        // The only JSON taken as data: WaLa's voxel condition (a clear error names any other).
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
            self.session.log.info(format!(
                "{}: read as a WaLa voxel condition in the Shapes tab",
                path.display()
            ));
            let waker = self.session.waker.clone();
            self.session.shapes.generate.open_voxel_file(path, waker);
            self.show_tab(Tab::Shapes);
            return;
        }
        let name = path
            .file_name()
            .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        let job_name = format!("Loading {name}");
        let handle = jobs::spawn(job_name, self.session.waker.clone(), move |ctx| {
            ctx.set(0.1, "reading");
            let asset = crate::io::load(&path).map_err(|e| JobError::Failed(e.to_string()))?;
            ctx.check()?;
            Ok(Loaded {
                name,
                path: Some(path),
                asset,
            })
        });
        self.session.loads.push(handle);
    }

    fn poll_jobs(&mut self) {
        let mut finished = Vec::new();
        self.session.loads.retain(|job| match job.poll() {
            Some(r) => {
                finished.push((job.name.clone(), r));
                false
            }
            None => true,
        });
        for (name, result) in finished {
            match result {
                Ok(loaded) => {
                    if let Some(p) = &loaded.path {
                        self.state.push_recent(p.clone());
                    }
                    let label = loaded.name.clone();
                    let is_volume = matches!(loaded.asset, crate::core::Asset::Volume(_));
                    let id = self.session.add(loaded);
                    // A newly opened volume becomes the one shown; other kinds become active
                    // only if nothing is.
                    if is_volume || self.session.active.is_none() {
                        self.session.active = Some(id);
                    }
                    self.session.log.info(format!("Opened {label}"));
                }
                Err(JobError::Cancelled) => self.session.log.info(format!("{name}: cancelled")),
                Err(e) => self.session.log.error(e.to_string()),
            }
        }
        if let Some(rx) = &self.session.dialog
            && let Ok(paths) = rx.try_recv()
        {
            self.session.dialog = None;
            for p in paths {
                self.open(p);
            }
        }
        if let Some((family, rx)) = &self.session.model_dialog
            && let Ok(path) = rx.try_recv()
        {
            let family = family.clone();
            self.session.model_dialog = None;
            if let Some(path) = path {
                self.commands.push(Command::AddModel { path, family });
            }
        }
        if let Some((plane, rx)) = &self.session.save_dialog
            && let Ok(path) = rx.try_recv()
        {
            let plane = *plane;
            self.session.save_dialog = None;
            if let Some(path) = path {
                self.commands.push(Command::SaveViewPng {
                    plane,
                    path: Some(path),
                });
            }
        }
    }

    fn apply_commands(&mut self) {
        for cmd in std::mem::take(&mut self.commands) {
            match cmd {
                Command::OpenDialog => self.open_dialog(false),
                Command::OpenFolderDialog => self.open_dialog(true),
                Command::Open(p) => self.open(p),
                Command::LoadDemo => self.load_demo(),
                Command::AddDemoMotion => {
                    for (name, sequence) in panels::motion::demo_sequences() {
                        self.session.add(Loaded {
                            name,
                            path: None,
                            asset: crate::core::Asset::Motion(sequence),
                        });
                    }
                }
                Command::AddDemoShapes => {
                    for (name, volume) in panels::shapes::demo_shapes() {
                        self.session.add(Loaded {
                            name,
                            path: None,
                            asset: crate::core::Asset::Volume(volume),
                        });
                    }
                }
                Command::Remove(id) => self.session.remove(id),
                Command::SetActive(id) => self.session.active = Some(id),
                Command::SetOverlay(id) => self.session.overlay = id,
                Command::ShowTab(t) => self.show_tab(t),
                Command::SaveViewPng { plane, path } => match path {
                    Some(path) => self.save_view_png(plane, &path),
                    None => self.save_dialog(plane),
                },
                Command::CancelJob(id) => {
                    for j in self.session.loads.iter().filter(|j| j.id == id) {
                        j.cancel();
                    }
                }
                Command::ClearRecent => self.state.recent_files.clear(),
                Command::AddModelDialog { family } => self.model_dialog(family),
                Command::AddModel { path, family } => self.add_model(&path, &family),
                Command::ResetLayout => self.tree = tabs::default_tree(),
            }
        }
    }

    /// Shows the system dialog for files, or for one folder (a sequence of frames), and opens
    /// what is picked.
    fn open_dialog(&mut self, folder: bool) {
        if self.session.dialog.is_some() {
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let waker = self.session.waker.clone();
        // The dialog blocks its thread, not the UI.
        let spawned = std::thread::Builder::new().name("open-dialog".into()).spawn(move || {
            if folder {
                let picked = rfd::FileDialog::new()
                    .set_title("Open a sequence folder (one mesh or point cloud per frame)")
                    .pick_folder();
                let _ = tx.send(picked.into_iter().collect());
                if let Some(w) = waker {
                    w();
                }
                return;
            }
            let picked = rfd::FileDialog::new()
                .set_title("Open files")
                .add_filter(
                    "Supported",
                    &[
                        "nii",
                        "gz",
                        "png",
                        "jpg",
                        "jpeg",
                        "tif",
                        "tiff",
                        "obj",
                        "ply",
                        "stl",
                        "npy",
                        "npz",
                        "safetensors",
                    ],
                )
                .pick_files()
                .unwrap_or_default();
            let _ = tx.send(picked);
            if let Some(w) = waker {
                w();
            }
        });
        match spawned {
            Ok(_) => self.session.dialog = Some(rx),
            Err(e) => self.session.log.error(format!("cannot show the file dialog: {e}")),
        }
    }

    fn model_dialog(&mut self, family: String) {
        let (tx, rx) = std::sync::mpsc::channel();
        let waker = self.session.waker.clone();
        let spawned = std::thread::Builder::new().name("model-dialog".into()).spawn(move || {
            let picked = rfd::FileDialog::new()
                .set_title("Register a checkpoint")
                .add_filter("Checkpoints", &["pth", "pt", "ckpt", "safetensors"])
                .pick_file();
            let _ = tx.send(picked);
            if let Some(w) = waker {
                w();
            }
        });
        match spawned {
            Ok(_) => self.session.model_dialog = Some((family, rx)),
            Err(e) => self.session.log.error(format!("cannot show the file dialog: {e}")),
        }
    }

    fn add_model(&mut self, path: &Path, family: &str) {
        let name = path
            .file_stem()
            .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
        let dir = crate::core::manifest::user_models_dir();
        match crate::core::manifest::add_user_model(path, family, &name, Default::default(), &dir) {
            Ok(e) => self.session.log.info(format!(
                "Registered {} as a {} model ({})",
                e.manifest.name,
                family,
                e.dir.display()
            )),
            Err(e) => self.session.log.error(e.to_string()),
        }
        self.session.rescan_models();
    }

    fn save_dialog(&mut self, plane: crate::core::slice::Plane) {
        let (tx, rx) = std::sync::mpsc::channel();
        let waker = self.session.waker.clone();
        let spawned = std::thread::Builder::new().name("save-dialog".into()).spawn(move || {
            let picked = rfd::FileDialog::new()
                .set_title("Save view as PNG")
                .set_file_name(format!("{}.png", plane.name()))
                .add_filter("PNG", &["png"])
                .save_file();
            let _ = tx.send(picked);
            if let Some(w) = waker {
                w();
            }
        });
        match spawned {
            Ok(_) => self.session.save_dialog = Some((plane, rx)),
            Err(e) => self.session.log.error(format!("cannot show the save dialog: {e}")),
        }
    }

    fn save_view_png(&mut self, plane: crate::core::slice::Plane, path: &Path) {
        let result = panels::viewer::render_view(&self.state.viewer, &self.session, plane)
            .ok_or_else(|| "no volume to save: open one first".to_string())
            .and_then(|img| {
                let image = crate::io::image::rgba8_to_image(img.width, img.height, img.pixels);
                crate::io::image::write_png(path, &image).map_err(|e| e.to_string())
            });
        match result {
            Ok(()) => self
                .session
                .log
                .info(format!("Saved the {} view to {}", plane.name(), path.display())),
            Err(e) => self.session.log.error(e),
        }
    }

    fn handle_input(&mut self, ctx: &egui::Context) {
        let (dropped, open, tab) = ctx.input_mut(|i| {
            let dropped: Vec<PathBuf> = i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).collect();
            let open = i.consume_key(egui::Modifiers::COMMAND, egui::Key::O);
            let keys = [
                egui::Key::Num1,
                egui::Key::Num2,
                egui::Key::Num3,
                egui::Key::Num4,
                egui::Key::Num5,
                egui::Key::Num6,
                egui::Key::Num7,
                egui::Key::Num8,
                egui::Key::Num9,
            ];
            let tab = keys
                .iter()
                .position(|&k| i.consume_key(egui::Modifiers::COMMAND, k))
                .map(|n| Tab::ALL[n]);
            (dropped, open, tab)
        });
        for p in dropped {
            self.open(p);
        }
        if open {
            self.commands.push(Command::OpenDialog);
        }
        if let Some(t) = tab {
            self.commands.push(Command::ShowTab(t));
        }
    }

    fn menu_bar(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open...  (Ctrl+O)").clicked() {
                    self.commands.push(Command::OpenDialog);
                }
                ui.menu_button("Open recent", |ui| {
                    if self.state.recent_files.is_empty() {
                        ui.label("(none yet)");
                    }
                    for p in &self.state.recent_files {
                        if ui.button(p.display().to_string()).clicked() {
                            self.commands.push(Command::Open(p.clone()));
                        }
                    }
                    ui.separator();
                    if ui.button("Clear list").clicked() {
                        self.commands.push(Command::ClearRecent);
                    }
                });
                if ui.button("Open demo volume").clicked() {
                    self.commands.push(Command::LoadDemo);
                }
                ui.separator();
                if ui.button("Quit").clicked() {
                    ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                }
            });
            ui.menu_button("View", |ui| {
                for (n, tab) in Tab::ALL.iter().enumerate() {
                    if ui.button(format!("{}  (Ctrl+{})", tab.title(), n + 1)).clicked() {
                        self.commands.push(Command::ShowTab(*tab));
                    }
                }
                ui.separator();
                if ui.checkbox(&mut self.state.dark_mode, "Dark theme").changed() {
                    ui.ctx().set_theme(if self.state.dark_mode {
                        egui::Theme::Dark
                    } else {
                        egui::Theme::Light
                    });
                }
                ui.checkbox(&mut self.state.open_demo_on_start, "Open the demo on start");
                if ui.button("Reset layout").clicked() {
                    self.commands.push(Command::ResetLayout);
                }
            });
        });
    }

    fn status_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label(format!("Device: {}", device_name()));
            ui.separator();
            if self.session.loads.is_empty() {
                ui.label("Idle");
            }
            for job in &self.session.loads {
                let p = job.progress();
                ui.add(egui::ProgressBar::new(p.fraction()).desired_width(120.0).text(format!(
                    "{} {}",
                    job.name,
                    p.message()
                )));
                if ui.small_button("Cancel").on_hover_text("Cancel this job").clicked() {
                    self.commands.push(Command::CancelJob(job.id));
                }
            }
            if let Some(h) = &self.session.viewer.hover_text {
                ui.separator();
                ui.label(h);
            }
        });
    }

    fn toasts(&mut self, ctx: &egui::Context) {
        if self.session.log.expire_toasts() {
            ctx.request_repaint_after(std::time::Duration::from_millis(250));
        }
        let mut dismiss = None;
        egui::Area::new(egui::Id::unique("toasts"))
            .anchor(egui::Align2::RIGHT_BOTTOM, [-12.0, -36.0])
            .order(egui::Order::Foreground)
            .interactable(true)
            .show(ctx, |ui| {
                for (i, _) in self.session.log.toasts.iter().rev().take(5) {
                    let Some(e) = self.session.log.entries.get(*i) else {
                        continue;
                    };
                    let (fill, title) = match e.level {
                        Level::Error => (egui::Color32::from_rgb(120, 30, 30), "Error"),
                        Level::Warning => (egui::Color32::from_rgb(120, 90, 20), "Warning"),
                        Level::Info => (egui::Color32::from_rgb(40, 60, 90), "Info"),
                    };
                    let r = egui::Frame::popup(ui.style())
                        .fill(fill)
                        .show(ui, |ui| {
                            ui.set_max_width(420.0);
                            ui.colored_label(egui::Color32::WHITE, format!("{title}: {}", e.message));
                        })
                        .response;
                    if r.interact(egui::Sense::click())
                        .on_hover_text("Click to dismiss")
                        .clicked()
                    {
                        dismiss = Some(*i);
                    }
                }
            });
        if let Some(i) = dismiss {
            self.session.log.dismiss(i);
        }
    }

    fn handle_screenshot(&mut self, ctx: &egui::Context) {
        let Some(path) = self.screenshot.clone() else { return };
        ctx.request_repaint();
        let Some(rx) = &self.screenshot_rx else {
            if self.frames >= SCREENSHOT_AFTER_FRAMES && !self.busy() && !self.panels_busy() {
                let (tx, rx) = std::sync::mpsc::channel();
                ctx.request_screenshot(move |image| {
                    let _ = tx.send(image);
                });
                self.screenshot_rx = Some(rx);
            }
            return;
        };
        if let Ok(image) = rx.try_recv() {
            let pixels: Vec<[u8; 4]> = image.pixels.iter().map(|c| c.to_array()).collect();
            let img = crate::io::image::rgba8_to_image(image.size[0], image.size[1], pixels);
            match crate::io::image::write_png(&path, &img) {
                Ok(()) => eprintln!("screenshot saved to {}", path.display()),
                Err(e) => eprintln!("error: {e}"),
            }
            self.screenshot = None;
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
    }
}

/// The device inference runs on (chosen once in `core::device`).
fn device_name() -> &'static str {
    &crate::core::device::device().name
}

impl eframe::App for WorkbenchApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.frames += 1;
        self.handle_input(&ctx);
        self.poll_jobs();
        self.apply_commands();
        if self.busy() {
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
        egui::Panel::top("menu").show(ui, |ui| self.menu_bar(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            let mut behavior = panels::TabBehavior {
                state: &mut self.state,
                session: &mut self.session,
                commands: &mut self.commands,
                gpu_viewport: panels::viewport3d::status(Some(_frame)),
            };
            self.tree.ui(&mut behavior, ui);
        });
        self.toasts(&ctx);
        self.handle_screenshot(&ctx);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, STATE_KEY, &self.state);
        eframe::set_value(storage, TREE_KEY, &self.tree);
    }
}
