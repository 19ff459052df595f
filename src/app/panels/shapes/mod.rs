//! The Shapes tab (issue #7): loaded meshes, point clouds and volumes in the 3D viewport; volumes
//! and signed distance fields as iso-surfaces at a live level (marching cubes in a job, on the
//! viewport's GPU when there is one: `iso`) or ray-marched; a clip plane; WaLa's wavelet stage
//! (SDF → wavelet tree → SDF) with its cost and an SDF blend in tree space; WaLa's learned latent
//! (a WaLa-family VQ-VAE: latent grid inspector, interpolation of two shapes decoded as WaLa
//! decodes); mesh export with provenance.
//!
//! Volumes ray-march through a window with a colormap, an opacity per voxel and an opacity curve
//! across the window (`transfer`: drag, add and remove its points).
//!
//! WaLa's diffusion model generates a shape from a loaded point cloud or mesh (`generate`; a mesh
//! is voxelised for a voxel-conditioned model).

mod generate;
mod iso;
mod latent;
pub mod transfer;
mod wavelet;

use super::viewport3d::{self, GpuStatus, ViewportState};
use crate::app::{AppState, Command, Session};
use crate::core::colormap::Colormap;
use crate::core::jobs::{self, JobError, JobHandle};
use crate::core::transfer::OpacityCurve;
use crate::core::{Asset, Mesh, Volume};
use crate::methods::isosurface::Inside;
use crate::render::{ClipPlane, Coloring, Geometry, LiveMarchingCubes, Scene, SceneObject};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

const SIDE_WIDTH: f32 = 300.0;
const JOB_POLL: std::time::Duration = std::time::Duration::from_millis(100);
/// Scene ids of objects the panel makes itself (asset ids count up from 1).
const RECONSTRUCTION_ID: u64 = u64::MAX - 1;
const BLEND_ID: u64 = u64::MAX - 2;
const LATENT_ROUND_TRIP_ID: u64 = u64::MAX - 3;
const LATENT_INTERP_ID: u64 = u64::MAX - 4;
const GENERATED_ID: u64 = u64::MAX - 5;
const VOXEL_CONDITION_ID: u64 = u64::MAX - 6;

/// What the tab remembers across restarts.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ShapesSettings {
    /// Mesh iso-levels on the CPU even when the viewport's GPU could (off by default).
    pub cpu_marching_cubes: bool,
    pub viewport: ViewportState,
    pub clip: ClipSettings,
    pub wavelet: wavelet::WaveletSettings,
    pub latent: latent::LatentSettings,
    pub generate: generate::GenerateSettings,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ClipSettings {
    pub enabled: bool,
    /// 0 = X, 1 = Y, 2 = Z.
    pub axis: usize,
    /// Position along the axis as a fraction of the scene's extent.
    pub at: f32,
    pub flip: bool,
}

impl Default for ClipSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            axis: 0,
            at: 0.5,
            flip: false,
        }
    }
}

/// A volume drawn as an iso-surface.
struct IsoSurface {
    /// Ray-march the volume instead of meshing it.
    ray_march: bool,
    /// The volume itself, shared with the renderer when ray-marched.
    volume: Arc<Volume>,
    level: f32,
    inside: Inside,
    /// The level the current mesh was made at; `None` before the first one.
    built: Option<(f32, Inside)>,
    mesh: Option<Arc<Mesh>>,
    /// How the current mesh was made (triangles, time, GPU or CPU).
    how: Option<String>,
    range: (f32, f32),
    /// Ray marching: the values the opacity ramp spans, and their colours.
    window: (f32, f32),
    colormap: Colormap,
}

/// One asset in the viewport.
struct Shown {
    visible: bool,
    /// `None` for meshes and point clouds (drawn as they are).
    iso: Option<IsoSurface>,
    geometry: Option<Geometry>,
}

/// The tab's working state (not persisted).
#[derive(Default)]
pub struct ShapesRuntime {
    shown: BTreeMap<u64, Shown>,
    iso_job: Option<(u64, f32, Inside, JobHandle<iso::IsoBuilt>)>,
    /// Marching cubes on the viewport's device; `None` without one, or after it failed.
    gpu_iso: Option<LiveMarchingCubes>,
    /// Why iso-levels are meshed on the CPU although the app has a GPU (it failed, or it is a
    /// software rasterizer).
    cpu_reason: Option<String>,
    pub wavelet: wavelet::WaveletRuntime,
    pub latent: latent::LatentRuntime,
    pub generate: generate::GenerateRuntime,
    export: Option<JobHandle<Option<PathBuf>>>,
    scene: Arc<Scene>,
    pub message: Option<String>,
    /// `gui --tab shapes --run-demo`: once the demo shapes are loaded, show only them and run
    /// the wavelet round trip and blend on them.
    pub demo_pending: bool,
}

impl ShapesRuntime {
    /// Meshes live iso-levels with `mc` (the app passes its viewport's device at start-up).
    pub fn use_gpu(&mut self, mc: LiveMarchingCubes) {
        self.gpu_iso = Some(mc);
        self.cpu_reason = None;
    }

    /// Meshes on the CPU, saying why in the panel.
    pub fn mesh_on_cpu_because(&mut self, reason: String) {
        self.gpu_iso = None;
        self.cpu_reason = Some(reason);
    }

    /// How the current mesh of a shown volume was made ("… triangles in … ms on the GPU").
    pub fn iso_build(&self, asset: u64) -> Option<&str> {
        self.shown.get(&asset)?.iso.as_ref()?.how.as_deref()
    }

    pub fn busy(&self) -> bool {
        self.iso_job.is_some()
            || self.wavelet.busy()
            || self.latent.busy()
            || self.generate.busy()
            || self.export.is_some()
            || self.demo_pending
    }

    /// Sets the iso-level of a shown volume (what its slider does); false when `asset` is not a
    /// shown volume.
    pub fn set_level(&mut self, asset: u64, level: f32) -> bool {
        match self.shown.get_mut(&asset).and_then(|s| s.iso.as_mut()) {
            Some(iso) => {
                iso.level = level;
                true
            }
            None => false,
        }
    }

    /// A shown volume, shared (no copy of its voxels).
    fn volume(&self, asset: u64) -> Option<Arc<Volume>> {
        self.shown.get(&asset)?.iso.as_ref().map(|iso| iso.volume.clone())
    }

    /// Whether `asset` is a shown volume with values of both signs (its range, found once when it
    /// was added): a signed distance field, negative inside.
    pub fn is_signed_volume(&self, asset: u64) -> bool {
        self.shown
            .get(&asset)
            .and_then(|s| s.iso.as_ref())
            .is_some_and(|iso| iso.range.0 < 0.0 && iso.range.1 > 0.0)
    }

    /// Shown volumes that can be signed distance fields: a cubic grid with values of both signs.
    fn sdf_volumes(&self) -> impl Iterator<Item = u64> + '_ {
        self.shown.iter().filter_map(|(id, s)| {
            let [x, y, z] = s.iso.as_ref()?.volume.dims();
            (x == y && y == z && self.is_signed_volume(*id)).then_some(*id)
        })
    }

    /// The scene as last drawn (tests inspect it).
    pub fn scene(&self) -> &Scene {
        &self.scene
    }
}

/// Whether an asset can be drawn in 3D.
fn drawable(asset: &Asset) -> bool {
    matches!(asset, Asset::Mesh(_) | Asset::PointCloud(_) | Asset::Volume(_))
}

/// How a volume is first shown: a signed distance field (negative inside) as its zero surface;
/// an intensity volume (an MRI) ray-marched, its lowest 15 % (background) transparent, with an
/// iso-level halfway through its range ready for the surface view.
fn default_iso(volume: &Volume) -> IsoSurface {
    let shared = Arc::new(volume.clone());
    let range = crate::core::stats::finite_range(volume.data()).unwrap_or((0.0, 1.0));
    let sdf_like = range.0 < 0.0 && range.1 > 0.0;
    IsoSurface {
        ray_march: !sdf_like,
        window: (range.0 + 0.15 * (range.1 - range.0), range.1),
        colormap: Colormap::Magma,
        volume: shared,
        level: if sdf_like { 0.0 } else { 0.5 * (range.0 + range.1) },
        inside: if sdf_like { Inside::Below } else { Inside::Above },
        built: None,
        mesh: None,
        how: None,
        range,
    }
}

/// Adds new drawable assets (visible by default), drops removed ones.
fn sync_assets(session: &mut Session) {
    let rt = &mut session.shapes;
    rt.shown.retain(|id, _| session.assets.iter().any(|a| a.id == *id));
    for a in &session.assets {
        if !drawable(&a.asset) || rt.shown.contains_key(&a.id) {
            continue;
        }
        let (iso, geometry) = match &a.asset {
            Asset::Volume(v) => (Some(default_iso(v)), None),
            Asset::Mesh(m) => (None, Some(Geometry::Mesh(Arc::new(m.clone())))),
            Asset::PointCloud(p) => (None, Some(Geometry::Points(Arc::new(p.clone())))),
            _ => continue,
        };
        rt.shown.insert(
            a.id,
            Shown {
                visible: true,
                iso,
                geometry,
            },
        );
    }
}

/// Starts marching cubes for the first visible volume whose level changed (one job at a time).
fn schedule_iso(session: &mut Session, cpu_only: bool) {
    if session.shapes.iso_job.is_some() {
        return;
    }
    let waker = session.waker.clone();
    let next = session.shapes.shown.iter().find_map(|(id, s)| {
        let iso = s.iso.as_ref()?;
        (s.visible && !iso.ray_march && iso.built != Some((iso.level, iso.inside)))
            .then(|| (*id, iso.level, iso.inside, iso.volume.clone()))
    });
    let Some((id, level, inside, volume)) = next else {
        return;
    };
    let gpu = session.shapes.gpu_iso.clone().filter(|_| !cpu_only);
    let job = jobs::spawn("Iso-surface", waker, move |ctx| {
        ctx.set(0.1, "marching cubes");
        Ok(iso::build(&volume, level, inside, gpu.as_ref()))
    });
    session.shapes.iso_job = Some((id, level, inside, job));
}

fn poll_iso(session: &mut Session) {
    let rt = &mut session.shapes;
    let Some((id, level, inside, job)) = &rt.iso_job else {
        return;
    };
    let Some(result) = job.poll() else { return };
    let (id, level, inside) = (*id, *level, *inside);
    rt.iso_job = None;
    match result {
        Ok(built) => {
            if let Some(e) = built.gpu_error {
                rt.mesh_on_cpu_because(format!("the GPU failed: {e}"));
            }
            if let Some(iso) = rt.shown.get_mut(&id).and_then(|s| s.iso.as_mut()) {
                iso.built = Some((level, inside));
                iso.how = Some(built.how);
                iso.mesh = (!built.mesh.triangles.is_empty()).then(|| Arc::new(built.mesh));
            }
        }
        Err(e) => rt.message = Some(format!("marching cubes failed: {e}")),
    }
}

/// Rebuilds the scene from what is shown (cheap: geometry is shared through `Arc`s).
fn build_scene(session: &Session, settings: &ShapesSettings) -> Scene {
    let rt = &session.shapes;
    let mut scene = Scene::default();
    for (id, s) in &rt.shown {
        if !s.visible {
            continue;
        }
        let geometry = match (&s.iso, &s.geometry) {
            (Some(iso), _) if iso.ray_march => {
                let name = session.get(*id).map_or_else(String::new, |a| a.name.clone());
                let mut object = SceneObject::new(*id, name, Geometry::Volume(iso.volume.clone()));
                object.coloring = Coloring::Scalar {
                    colormap: iso.colormap,
                    lo: iso.window.0,
                    hi: iso.window.1,
                };
                scene.objects.push(object);
                continue;
            }
            (Some(iso), _) => iso.mesh.clone().map(Geometry::Mesh),
            (None, g) => g.clone(),
        };
        if let Some(g) = geometry {
            let name = session.get(*id).map_or_else(String::new, |a| a.name.clone());
            scene.objects.push(SceneObject::new(*id, name, g));
        }
    }
    rt.wavelet
        .add_to_scene(&mut scene, &settings.wavelet, RECONSTRUCTION_ID, BLEND_ID);
    rt.latent
        .add_to_scene(&mut scene, &settings.latent, LATENT_ROUND_TRIP_ID, LATENT_INTERP_ID);
    rt.generate
        .add_to_scene(&mut scene, &settings.generate, GENERATED_ID, VOXEL_CONDITION_ID);
    scene
}

/// The clip plane in world coordinates from the settings and the scene's extent.
fn clip_plane(clip: &ClipSettings, scene: &Scene, settings: &ShapesSettings) -> Option<ClipPlane> {
    if !clip.enabled {
        return None;
    }
    let (lo, hi) = scene.bounds(settings.viewport.settings.arrangement)?;
    let a = clip.axis.min(2);
    let mut normal = [0.0; 3];
    normal[a] = if clip.flip { -1.0 } else { 1.0 };
    let mut point = [0.0; 3];
    point[a] = lo[a] + clip.at * (hi[a] - lo[a]);
    Some(ClipPlane { normal, point })
}

pub fn ui(
    ui: &mut egui::Ui,
    state: &mut AppState,
    session: &mut Session,
    commands: &mut Vec<Command>,
    gpu: &GpuStatus,
) {
    sync_assets(session);
    if session.shapes.demo_pending {
        start_demo(session, &mut state.shapes);
    }
    poll_iso(session);
    schedule_iso(session, state.shapes.cpu_marching_cubes);
    session.shapes.wavelet.poll(&mut session.log);
    session.shapes.latent.poll(&mut session.log);
    let waker = session.waker.clone();
    session
        .shapes
        .generate
        .poll(&mut state.shapes.generate, &mut session.log, waker);
    poll_export(session);
    if session.shapes.busy() {
        ui.ctx().request_repaint_after(JOB_POLL);
    }
    let settings = &mut state.shapes;
    egui::Panel::left("shapes-side")
        .resizable(true)
        .default_size(SIDE_WIDTH)
        .show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                side_panel(ui, settings, session, commands);
            });
        });
    let scene = Arc::new(build_scene(session, settings));
    settings.viewport.settings.clip = clip_plane(&settings.clip, &scene, settings);
    session.shapes.scene = scene.clone();
    viewport3d::toolbar(ui, &scene, &mut settings.viewport);
    if scene.objects.is_empty() {
        ui.add_space(20.0);
        ui.vertical_centered(|ui| {
            ui.label("Nothing to show yet: open a mesh (.obj .ply .stl), a point cloud or a volume (.nii),");
            ui.label("or press \"Add demo shapes\" for two procedural signed distance fields.");
        });
        return;
    }
    viewport3d::show(ui, "shapes-viewport", &scene, &mut settings.viewport, gpu);
}

fn side_panel(ui: &mut egui::Ui, settings: &mut ShapesSettings, session: &mut Session, commands: &mut Vec<Command>) {
    ui.heading("Shapes");
    if let Some(m) = &session.shapes.message {
        ui.colored_label(ui.visuals().warn_fg_color, m);
    }
    objects_section(ui, session, commands, &mut settings.viewport.settings);
    marching_cubes_device(ui, settings, session);
    ui.separator();
    clip_section(ui, &mut settings.clip);
    ui.separator();
    wavelet::section(ui, &mut settings.wavelet, session);
    ui.separator();
    latent::section(ui, &mut settings.latent, session);
    ui.separator();
    generate::section(ui, &mut settings.generate, session);
    ui.separator();
    export_section(ui, session);
    ui.separator();
    ui.weak("Not built yet (issue #7): image, sketch, depth and multi-view conditions for WaLa's diffusion model.");
}

/// Where iso-surfaces are meshed: the GPU toggle, or why the CPU does it.
fn marching_cubes_device(ui: &mut egui::Ui, settings: &mut ShapesSettings, session: &mut Session) {
    let rt = &mut session.shapes;
    if rt.gpu_iso.is_some() {
        let mut on_gpu = !settings.cpu_marching_cubes;
        if ui
            .checkbox(&mut on_gpu, "marching cubes on the GPU")
            .on_hover_text("The viewport's device meshes each new level; the volume stays uploaded between levels.")
            .changed()
        {
            settings.cpu_marching_cubes = !on_gpu;
            // Mesh again where the other device now does it, so its time shows.
            for iso in rt.shown.values_mut().filter_map(|s| s.iso.as_mut()) {
                iso.built = None;
            }
        }
    } else if let Some(why) = &rt.cpu_reason {
        ui.weak(format!("Marching cubes on the CPU: {why}."));
    }
}

/// Loaded objects with their iso-surface or volume-rendering controls; `render` holds the
/// volume transfer function's opacity and curve (shared by every volume).
fn objects_section(
    ui: &mut egui::Ui,
    session: &mut Session,
    commands: &mut Vec<Command>,
    render: &mut crate::render::RenderSettings,
) {
    ui.strong("Objects");
    let names: BTreeMap<u64, String> = session.assets.iter().map(|a| (a.id, a.name.clone())).collect();
    let building = session.shapes.iso_job.as_ref().map(|j| j.0);
    for (id, shown) in session.shapes.shown.iter_mut() {
        let name = names.get(id).cloned().unwrap_or_default();
        ui.horizontal(|ui| {
            ui.checkbox(&mut shown.visible, name);
            if building == Some(*id) {
                ui.spinner();
            }
        });
        if let Some(iso) = shown.iso.as_mut() {
            ui.indent(*id, |ui| {
                ui.checkbox(&mut iso.ray_march, "volume rendering (ray marching)");
                if iso.ray_march {
                    let (lo, hi) = iso.range;
                    ui.add(egui::Slider::new(&mut iso.window.0, lo..=hi).text("transparent below"));
                    ui.add(egui::Slider::new(&mut iso.window.1, lo..=hi).text("opaque at"));
                    egui::ComboBox::new(("colormap", *id), "colormap")
                        .selected_text(iso.colormap.name())
                        .show_ui(ui, |ui| {
                            for c in Colormap::ALL {
                                ui.selectable_value(&mut iso.colormap, c, c.name());
                            }
                        });
                    ui.add(
                        egui::Slider::new(&mut render.volume_opacity, 0.005..=0.5)
                            .logarithmic(true)
                            .text("opacity per voxel"),
                    );
                    let width = ui.available_width().min(280.0);
                    transfer::curve_editor(ui, &mut render.volume_curve, iso.colormap, width);
                    if ui
                        .add_enabled(
                            render.volume_curve != OpacityCurve::ramp(),
                            egui::Button::new("Reset curve"),
                        )
                        .clicked()
                    {
                        render.volume_curve = OpacityCurve::ramp();
                    }
                    return;
                }
                let (lo, hi) = iso.range;
                ui.add(egui::Slider::new(&mut iso.level, lo..=hi).text("iso-level"));
                let mut below = iso.inside == Inside::Below;
                if ui.checkbox(&mut below, "solid below the level (SDF)").changed() {
                    iso.inside = if below { Inside::Below } else { Inside::Above };
                }
                if shown.visible && iso.built.is_some() && iso.mesh.is_none() {
                    ui.weak("no surface at this level");
                } else if let Some(how) = &iso.how {
                    ui.weak(how);
                }
            });
        }
    }
    if session.shapes.shown.is_empty() {
        ui.weak("No meshes, point clouds or volumes loaded.");
    }
    ui.horizontal(|ui| {
        if ui
            .button("Add demo shapes")
            .on_hover_text("Two procedural solids (demo-data shapes) as 128³ signed distance fields")
            .clicked()
        {
            commands.push(Command::AddDemoShapes);
        }
    });
}

fn clip_section(ui: &mut egui::Ui, clip: &mut ClipSettings) {
    ui.checkbox(&mut clip.enabled, "Clip plane");
    ui.add_enabled_ui(clip.enabled, |ui| {
        ui.horizontal(|ui| {
            for (i, name) in ["X", "Y", "Z"].into_iter().enumerate() {
                ui.selectable_value(&mut clip.axis, i, name);
            }
            ui.checkbox(&mut clip.flip, "flip");
        });
        ui.add(egui::Slider::new(&mut clip.at, 0.0..=1.0).text("position"));
    });
}

/// The visible meshes, by scene id and name.
fn exportable(session: &Session) -> Vec<(u64, String, Arc<Mesh>)> {
    session
        .shapes
        .scene
        .objects
        .iter()
        .filter_map(|o| match &o.geometry {
            Geometry::Mesh(m) => Some((o.id, o.name.clone(), m.clone())),
            Geometry::Points(_) | Geometry::Volume(_) => None,
        })
        .collect()
}

fn export_section(ui: &mut egui::Ui, session: &mut Session) {
    ui.strong("Export");
    let meshes = exportable(session);
    if meshes.is_empty() {
        ui.weak("No mesh in the view.");
        return;
    }
    let busy = session.shapes.export.is_some();
    for (id, name, mesh) in meshes {
        ui.horizontal(|ui| {
            ui.label(format!("{name} ({} triangles)", mesh.triangles.len()));
            if ui
                .add_enabled(!busy, egui::Button::new("Save…"))
                .on_hover_text("OBJ, PLY, STL or GLB, with a .provenance.json beside it")
                .clicked()
            {
                let provenance = session.shapes.provenance_of(id, &name, session_inputs(session, id));
                let waker = session.waker.clone();
                session.shapes.export = Some(export_job(name.clone(), mesh.clone(), provenance, waker));
            }
        });
    }
}

/// What an exported object came from: the asset's file or the panel's own computation.
fn session_inputs(session: &Session, id: u64) -> serde_json::Value {
    match session.get(id) {
        Some(a) => serde_json::json!({"name": a.name, "path": a.path}),
        None => serde_json::Value::Null,
    }
}

impl ShapesRuntime {
    fn provenance_of(&self, id: u64, name: &str, input: serde_json::Value) -> serde_json::Value {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let how = match (id, self.shown.get(&id).and_then(|s| s.iso.as_ref())) {
            (RECONSTRUCTION_ID | BLEND_ID, _) => self.wavelet.provenance(id == BLEND_ID),
            (LATENT_ROUND_TRIP_ID | LATENT_INTERP_ID, _) => self.latent.provenance(id == LATENT_INTERP_ID),
            (GENERATED_ID, _) => self.generate.provenance(),
            (_, Some(iso)) => serde_json::json!({
                "operation": "marching cubes",
                "level": iso.level,
                "inside": format!("{:?}", iso.inside),
            }),
            _ => serde_json::json!({"operation": "as loaded"}),
        };
        serde_json::json!({
            "program": "latent-workbench",
            "version": crate::VERSION,
            "created_unix_s": created,
            "object": name,
            "input": input,
            "made_by": how,
        })
    }
}

fn export_job(
    name: String,
    mesh: Arc<Mesh>,
    provenance: serde_json::Value,
    waker: Option<jobs::Waker>,
) -> JobHandle<Option<PathBuf>> {
    let stem = crate::app::panels::file_stem(&name);
    jobs::spawn(format!("Export {name}"), waker, move |ctx| {
        let Some(path) = rfd::FileDialog::new()
            .set_title("Export mesh")
            .set_file_name(format!("{stem}.ply"))
            .add_filter("Mesh", &["obj", "ply", "stl", "glb"])
            .save_file()
        else {
            return Ok(None);
        };
        ctx.set(0.5, "writing");
        write_mesh_export(&path, &mesh, &provenance)
            .map(|()| Some(path))
            .map_err(JobError::Failed)
    })
}

/// Writes the mesh and `name.provenance.json` beside it, both atomically.
pub fn write_mesh_export(path: &std::path::Path, mesh: &Mesh, provenance: &serde_json::Value) -> Result<(), String> {
    crate::io::mesh::write_with_provenance(path, mesh, provenance).map_err(|e| e.to_string())
}

fn poll_export(session: &mut Session) {
    let Some(job) = &session.shapes.export else { return };
    let Some(result) = job.poll() else { return };
    session.shapes.export = None;
    match result {
        Ok(Some(path)) => session.log.info(format!("exported {}", path.display())),
        Ok(None) => {}
        Err(e) => session.log.error(format!("export failed: {e}")),
    }
}

/// Shows only the demo shapes and starts their wavelet round trip (A, B) once they are loaded;
/// with a WaLa-family model available, the view shows A, B, A through the autoencoder and the
/// latent interpolation instead of the tree-space results.
fn start_demo(session: &mut Session, settings: &mut ShapesSettings) {
    let demo: Vec<u64> = session
        .assets
        .iter()
        .filter(|a| a.name.starts_with(DEMO_PREFIX))
        .map(|a| a.id)
        .collect();
    if demo.len() < 2 {
        return;
    }
    for (id, shown) in session.shapes.shown.iter_mut() {
        shown.visible = demo.contains(id);
    }
    session.shapes.wavelet.a = Some(demo[0]);
    session.shapes.wavelet.b = Some(demo[1]);
    settings.viewport.settings.arrangement = crate::render::Arrangement::SideBySide;
    settings.viewport.camera.set_preset(crate::render::ViewPreset::Iso);
    wavelet::start(session, &settings.wavelet);
    if session.models.iter().any(|m| m.manifest.family == "wala") {
        settings.wavelet.show_reconstruction = false;
        settings.wavelet.show_blend = false;
        settings.latent.t = 0.5;
        latent::start(session);
    }
    // With a diffusion model registered (the shipped demo one), the demo also generates a shape
    // from the second shape's surface.
    let diffusion = crate::methods::wala::generate::DIFFUSION_FAMILY;
    if session.models.iter().any(|m| m.manifest.family == diffusion) {
        session.shapes.generate.demo_condition = Some(demo[1]);
    }
    session.shapes.demo_pending = false;
}

use crate::methods::demo_data::shapes::VIEWER_DEMO_PREFIX as DEMO_PREFIX;
pub use crate::methods::demo_data::shapes::{VIEWER_DEMO_GRID as DEMO_GRID, viewer_demo_shapes as demo_shapes};
