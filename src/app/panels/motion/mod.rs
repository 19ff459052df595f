//! The Motion tab (issue #8): 4D sequences — mesh sequences of constant topology and point-cloud
//! sequences — played in the 3D viewport on one timeline (play, pause, step, scrub, loop, speed),
//! coloured by each point's displacement from the first frame, with motion trails, and exported as
//! an animated GLB (morph targets) or one OBJ/PLY per frame, with provenance.
//!
//! Sequences come from a folder of frames, a `.npz`, a T×N×3 `.npy` (any loaded array of that
//! shape plays), or "Add demo motion" (`demo-data motion`'s walking figure and bending capsule).
//! Several sequences share the timeline (each holds its last frame when shorter); side by side
//! they are laid out here from their whole-sequence boxes so that nothing shifts while playing.
//!
//! Not built yet, and said so in the panel: Motion2VecSets reconstruction from sparse or partial
//! points, WildFusion novel views, PNG-sequence export.

pub mod export;
mod timeline;

use super::viewport3d::{self, GpuStatus, ViewportState};
use crate::app::{AppState, Command, Session};
use crate::core::colormap::Colormap;
use crate::core::motion::{MotionSequence, Playback};
use crate::core::{Asset, PointCloud};
use crate::render::{Arrangement, Coloring, Geometry, Scene, SceneObject};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

const SIDE_WIDTH: f32 = 290.0;
/// Scene ids of the trails: the sequence's asset id plus this.
const TRAIL_ID_BASE: u64 = 1 << 40;
/// Largest time step one repaint may advance (a stalled frame does not jump the animation).
const MAX_DT: f32 = 0.1;

/// An axis-aligned box `(min, max)`.
type Bounds = ([f32; 3], [f32; 3]);

/// What the tab remembers across restarts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct MotionSettings {
    pub viewport: ViewportState,
    /// Colour points by their distance from where they are in the first frame.
    pub color_by_displacement: bool,
    pub colormap: Colormap,
    /// Top of the displacement colour scale as a fraction of the largest displacement.
    pub range: f32,
    pub trails: bool,
    /// Frames of history each trail shows.
    pub trail_frames: usize,
    /// Points that leave a trail.
    pub trail_points: usize,
    pub speed: f32,
    pub looping: bool,
}

impl Default for MotionSettings {
    fn default() -> Self {
        Self {
            viewport: ViewportState::default(),
            color_by_displacement: true,
            colormap: Colormap::Viridis,
            range: 1.0,
            trails: false,
            trail_frames: 6,
            trail_points: 150,
            speed: 1.0,
            looping: true,
        }
    }
}

/// One sequence in the tab.
struct Shown {
    visible: bool,
    sequence: Arc<MotionSequence>,
    /// Largest displacement from frame 0 over the sequence (the colour scale).
    max_displacement: f32,
    bounds: Option<Bounds>,
}

/// The tab's working state (not persisted).
#[derive(Default)]
pub struct MotionRuntime {
    shown: BTreeMap<u64, Shown>,
    pub playback: Playback,
    scene: Arc<Scene>,
    /// The time and display choices the scene was built for (rebuilt only when they change).
    built_for: Option<(f32, Vec<u64>, BuildChoices)>,
    export: Option<crate::core::jobs::JobHandle<Option<String>>>,
    /// `gui --tab motion --run-demo`: once the demo sequences are loaded, show them side by side
    /// at a frame with trails.
    pub demo_pending: bool,
}

#[derive(Clone, Copy, PartialEq)]
struct BuildChoices {
    color: bool,
    colormap: Colormap,
    range: f32,
    trails: Option<(usize, usize)>,
    side_by_side: bool,
}

impl MotionRuntime {
    pub fn busy(&self) -> bool {
        self.export.is_some() || self.demo_pending
    }

    /// The scene as last drawn (tests inspect it).
    pub fn scene(&self) -> &Scene {
        &self.scene
    }

    /// Frames on the timeline: the longest visible sequence.
    pub fn frames(&self) -> usize {
        self.visible().map(|(_, s)| s.sequence.len()).max().unwrap_or(0)
    }

    fn visible(&self) -> impl Iterator<Item = (&u64, &Shown)> {
        self.shown.iter().filter(|(_, s)| s.visible)
    }

    /// The timeline's rate: the first visible sequence's.
    fn fps(&self) -> f32 {
        self.visible().map(|(_, s)| s.sequence.fps).next().unwrap_or(10.0)
    }
}

/// The sequence an asset holds: a motion asset, or a single T×N×3 array (T ≥ 2).
fn sequence_of(asset: &Asset) -> Option<MotionSequence> {
    match asset {
        Asset::Motion(m) => Some(m.clone()),
        Asset::Tensors(ts) => match ts.as_slice() {
            [t] if t.shape().len() == 3 && t.shape()[0] >= 2 && t.shape()[2] == 3 => {
                crate::io::motion::from_tensor(t, std::path::Path::new(&t.name)).ok()
            }
            _ => None,
        },
        _ => None,
    }
}

/// Adds new sequences (visible by default), drops removed ones.
fn sync_assets(session: &mut Session) {
    let rt = &mut session.motion;
    rt.shown.retain(|id, _| session.assets.iter().any(|a| a.id == *id));
    for a in &session.assets {
        if rt.shown.contains_key(&a.id) {
            continue;
        }
        if let Some(seq) = sequence_of(&a.asset) {
            rt.shown.insert(
                a.id,
                Shown {
                    visible: true,
                    max_displacement: seq.max_displacement(),
                    bounds: seq.bounds(),
                    sequence: Arc::new(seq),
                },
            );
            rt.built_for = None;
        }
    }
}

/// Per visible sequence, the translation that lays them out left to right by their whole-sequence
/// boxes (zero when overlaid), and the box around everything over all frames.
fn layout(rt: &MotionRuntime, side_by_side: bool) -> (Vec<[f32; 3]>, Option<Bounds>) {
    let boxes: Vec<Option<Bounds>> = rt.visible().map(|(_, s)| s.bounds).collect();
    let widest = boxes
        .iter()
        .flatten()
        .map(|(lo, hi)| hi[0] - lo[0])
        .fold(0.0f32, f32::max);
    let mut cursor = 0.0f32;
    let mut offsets = Vec::with_capacity(boxes.len());
    let mut total: Option<Bounds> = None;
    for b in &boxes {
        let off = match (b, side_by_side) {
            (Some((lo, hi)), true) => {
                let shift = cursor - lo[0];
                cursor += hi[0] - lo[0] + 0.15 * widest;
                [shift, 0.0, 0.0]
            }
            _ => [0.0; 3],
        };
        if let Some((lo, hi)) = b {
            let (lo, hi) = ([lo[0] + off[0], lo[1], lo[2]], [hi[0] + off[0], hi[1], hi[2]]);
            total = Some(match total {
                None => (lo, hi),
                Some((a, b)) => (
                    [a[0].min(lo[0]), a[1].min(lo[1]), a[2].min(lo[2])],
                    [b[0].max(hi[0]), b[1].max(hi[1]), b[2].max(hi[2])],
                ),
            });
        }
        offsets.push(off);
    }
    (offsets, total)
}

fn translate(points: &mut [[f32; 3]], off: [f32; 3]) {
    if off != [0.0; 3] {
        for p in points {
            for k in 0..3 {
                p[k] += off[k];
            }
        }
    }
}

/// The scene at the current time: each visible sequence's frame (interpolated between frames),
/// coloured by displacement when asked, and its trails.
fn build_scene(session: &Session, choices: &BuildChoices) -> Scene {
    let rt = &session.motion;
    let time = rt.playback.time;
    let (offsets, _) = layout(rt, choices.side_by_side);
    let mut scene = Scene::default();
    for ((id, s), off) in rt.visible().zip(offsets) {
        let name = session.get(*id).map_or_else(String::new, |a| a.name.clone());
        let seq = &s.sequence;
        let scalars = if choices.color {
            seq.displacement_at(time)
        } else {
            Vec::new()
        };
        let geometry = match seq.mesh_at(time) {
            Some(mut mesh) => {
                translate(&mut mesh.positions, off);
                mesh.scalars = scalars;
                Geometry::Mesh(Arc::new(mesh))
            }
            None => {
                let mut cloud = seq.cloud_at(time);
                translate(&mut cloud.points, off);
                cloud.scalars = scalars;
                Geometry::Points(Arc::new(cloud))
            }
        };
        let mut object = SceneObject::new(*id, name.clone(), geometry);
        if choices.color && s.max_displacement > 0.0 {
            object.coloring = Coloring::Scalar {
                colormap: choices.colormap,
                lo: 0.0,
                hi: (choices.range * s.max_displacement).max(1e-6),
            };
        }
        scene.objects.push(object);
        if let Some((length, count)) = choices.trails {
            let (mut points, ages) = seq.trails(time, count, length, 3);
            if !points.is_empty() {
                translate(&mut points, off);
                // Coloured by freshness: bright at the head, fading to dark `length` frames back.
                let freshness = ages.iter().map(|a| length as f32 - a).collect();
                let cloud = PointCloud {
                    points,
                    scalars: freshness,
                    ..Default::default()
                };
                let mut trail = SceneObject::new(
                    id + TRAIL_ID_BASE,
                    format!("{name} trails"),
                    Geometry::Points(Arc::new(cloud)),
                );
                trail.coloring = Coloring::Scalar {
                    colormap: Colormap::Magma,
                    lo: 0.0,
                    hi: length as f32,
                };
                scene.objects.push(trail);
            }
        }
    }
    scene
}

pub fn ui(
    ui: &mut egui::Ui,
    state: &mut AppState,
    session: &mut Session,
    commands: &mut Vec<Command>,
    gpu: &GpuStatus,
) {
    sync_assets(session);
    let settings = &mut state.motion;
    if session.motion.demo_pending {
        start_demo(session, settings);
    }
    export::poll(session);
    if session.motion.busy() {
        ui.ctx().request_repaint_after(std::time::Duration::from_millis(100));
    }
    egui::Panel::left("motion-side")
        .resizable(true)
        .default_size(SIDE_WIDTH)
        .show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| side_panel(ui, settings, session, commands));
        });

    let frames = session.motion.frames();
    let fps = session.motion.fps();
    let rt = &mut session.motion;
    rt.playback.speed = settings.speed;
    rt.playback.looping = settings.looping;
    if rt.playback.playing {
        let dt = ui.input(|i| i.stable_dt).min(MAX_DT);
        rt.playback.advance(dt, fps, frames);
        ui.ctx().request_repaint();
    }
    egui::Panel::bottom("motion-timeline").show(ui, |ui| {
        if frames == 0 {
            ui.weak("No sequence to play.");
        } else {
            timeline::bar(ui, &mut rt.playback, frames, fps);
        }
    });
    settings.speed = rt.playback.speed;
    settings.looping = rt.playback.looping;

    let choices = BuildChoices {
        color: settings.color_by_displacement,
        colormap: settings.colormap,
        range: settings.range,
        trails: settings
            .trails
            .then_some((settings.trail_frames, settings.trail_points)),
        side_by_side: settings.viewport.settings.arrangement == Arrangement::SideBySide,
    };
    let visible: Vec<u64> = session.motion.visible().map(|(id, _)| *id).collect();
    let key = (session.motion.playback.time, visible, choices);
    if session.motion.built_for.as_ref() != Some(&key) {
        session.motion.scene = Arc::new(build_scene(session, &choices));
        session.motion.built_for = Some(key);
    }
    let scene = session.motion.scene.clone();
    let (_, bounds) = layout(&session.motion, choices.side_by_side);
    settings.viewport.fixed_bounds = bounds;
    viewport3d::toolbar(ui, &scene, &mut settings.viewport);
    if scene.objects.is_empty() {
        ui.add_space(20.0);
        ui.vertical_centered(|ui| {
            ui.label("Nothing to play yet: open a folder of frames (.ply .obj .stl), a .npz or a T×N×3 .npy,");
            ui.label("or press \"Add demo motion\" for a walking figure and a bending capsule.");
        });
        return;
    }
    // The layout above already placed the sequences; the renderer must not shift them again.
    let arrangement = settings.viewport.settings.arrangement;
    settings.viewport.settings.arrangement = Arrangement::Overlay;
    viewport3d::show(ui, "motion-viewport", &scene, &mut settings.viewport, gpu);
    settings.viewport.settings.arrangement = arrangement;
}

fn side_panel(ui: &mut egui::Ui, settings: &mut MotionSettings, session: &mut Session, commands: &mut Vec<Command>) {
    ui.heading("Motion (4D)");
    ui.strong("Sequences");
    let names: BTreeMap<u64, String> = session.assets.iter().map(|a| (a.id, a.name.clone())).collect();
    for (id, shown) in session.motion.shown.iter_mut() {
        let seq = &shown.sequence;
        ui.checkbox(&mut shown.visible, names.get(id).cloned().unwrap_or_default());
        ui.indent(*id, |ui| {
            let what = if seq.is_mesh() {
                format!("{} vertices, {} faces", seq.frames[0].len(), seq.triangles.len())
            } else {
                match seq.corresponding() {
                    Some(n) => format!("{n} points per frame"),
                    None => "points without correspondence".into(),
                }
            };
            ui.weak(format!("{} frames at {} fps · {what}", seq.len(), seq.fps));
            if seq.corresponding().is_some() {
                ui.weak(format!("largest displacement {:.4}", shown.max_displacement));
            } else {
                ui.weak("counts differ between frames: no displacement colours or trails");
            }
        });
    }
    if session.motion.shown.is_empty() {
        ui.weak("No sequences loaded.");
    }
    ui.horizontal(|ui| {
        if ui
            .button("Add demo motion")
            .on_hover_text("A walking stick figure and a bending capsule (demo-data motion), 17 frames each")
            .clicked()
        {
            commands.push(Command::AddDemoMotion);
        }
        if ui
            .button("Open sequence folder…")
            .on_hover_text("A folder with one .ply/.obj/.stl per frame, in the order of the numbers in their names")
            .clicked()
        {
            commands.push(Command::OpenFolderDialog);
        }
    });
    ui.separator();
    ui.strong("Display");
    ui.checkbox(
        &mut settings.color_by_displacement,
        "Colour by displacement from frame 1",
    );
    ui.add_enabled_ui(settings.color_by_displacement, |ui| {
        egui::ComboBox::from_label("colormap")
            .selected_text(settings.colormap.name())
            .show_ui(ui, |ui| {
                for c in Colormap::ALL {
                    ui.selectable_value(&mut settings.colormap, c, c.name());
                }
            });
        ui.add(egui::Slider::new(&mut settings.range, 0.05..=1.0).text("scale top (× largest)"));
    });
    ui.checkbox(&mut settings.trails, "Motion trails");
    ui.add_enabled_ui(settings.trails, |ui| {
        ui.add(egui::Slider::new(&mut settings.trail_frames, 1..=16).text("frames of history"));
        ui.add(
            egui::Slider::new(&mut settings.trail_points, 10..=1000)
                .logarithmic(true)
                .text("points"),
        );
    });
    ui.separator();
    export::section(ui, session);
    ui.separator();
    ui.weak(
        "Not built yet (issue #8): reconstruction and tracking with Motion2VecSets from sparse or partial \
         points, WildFusion novel views, PNG-sequence and turntable export.",
    );
}

/// Shows the demo sequences side by side at mid-stride with trails once they are loaded.
fn start_demo(session: &mut Session, settings: &mut MotionSettings) {
    let demo: Vec<u64> = session
        .assets
        .iter()
        .filter(|a| a.name.starts_with(DEMO_PREFIX))
        .map(|a| a.id)
        .collect();
    if demo.is_empty() {
        return;
    }
    for (id, shown) in session.motion.shown.iter_mut() {
        shown.visible = demo.contains(id);
    }
    settings.viewport.settings.arrangement = Arrangement::SideBySide;
    settings.viewport.camera.set_preset(crate::render::ViewPreset::Iso);
    settings.color_by_displacement = true;
    settings.trails = true;
    session.motion.playback = Playback {
        time: 5.0,
        playing: false,
        ..session.motion.playback
    };
    session.motion.demo_pending = false;
}

use crate::methods::demo_data::motion::VIEWER_DEMO_PREFIX as DEMO_PREFIX;
pub use crate::methods::demo_data::motion::viewer_demo_sequences as demo_sequences;
