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
//! "Reconstruct and track" runs a Motion2VecSets-family model on a loaded sequence
//! (`reconstruct.rs`). WildFusion novel views have their own tab (`panels/wildfusion`).

pub mod export;
pub mod reconstruct;
mod timeline;

use super::viewport3d::{self, GpuStatus, ViewportState};
use crate::app::{AppState, Command, Session};
use crate::core::Asset;
use crate::core::colormap::Colormap;
use crate::core::motion::{MotionSequence, Playback};
use crate::render::motion::{self, MotionStyle, ShownSequence};
use crate::render::{Arrangement, Scene};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

const SIDE_WIDTH: f32 = 290.0;
/// Largest time step one repaint may advance (a stalled frame does not jump the animation).
const MAX_DT: f32 = 0.1;

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
    pub reconstruct: reconstruct::ReconstructSettings,
}

impl MotionSettings {
    /// How the scene draws the sequences.
    pub fn style(&self) -> MotionStyle {
        MotionStyle {
            displacement: self.color_by_displacement.then_some((self.colormap, self.range)),
            trails: self.trails.then_some((self.trail_frames, self.trail_points)),
            side_by_side: self.viewport.settings.arrangement == Arrangement::SideBySide,
        }
    }
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
            reconstruct: reconstruct::ReconstructSettings::default(),
        }
    }
}

/// One sequence in the tab.
struct Shown {
    visible: bool,
    shown: ShownSequence,
}

/// The tab's working state (not persisted).
#[derive(Default)]
pub struct MotionRuntime {
    shown: BTreeMap<u64, Shown>,
    pub playback: Playback,
    scene: Arc<Scene>,
    /// The time and display choices the scene was built for (rebuilt only when they change).
    built_for: Option<(f32, Vec<u64>, MotionStyle)>,
    export: Option<crate::core::jobs::JobHandle<Option<String>>>,
    /// `gui --tab motion --run-demo`: once the demo sequences are loaded, show them side by side
    /// at a frame with trails.
    pub demo_pending: bool,
    pub reconstruct: reconstruct::ReconstructRuntime,
}

impl MotionRuntime {
    pub fn busy(&self) -> bool {
        self.export.is_some() || self.demo_pending || self.reconstruct.busy()
    }

    /// Every sequence in the tab, shown or not, in id order.
    pub fn sequence_ids(&self) -> Vec<u64> {
        self.shown.keys().copied().collect()
    }

    /// The sequence of asset `id`, if the tab has it.
    pub fn sequence_of_id(&self, id: u64) -> Option<MotionSequence> {
        self.shown.get(&id).map(|s| (*s.shown.sequence).clone())
    }

    /// The scene as last drawn (tests inspect it).
    pub fn scene(&self) -> &Scene {
        &self.scene
    }

    /// Frames on the timeline: the longest visible sequence.
    pub fn frames(&self) -> usize {
        self.visible().map(|(_, s)| s.shown.sequence.len()).max().unwrap_or(0)
    }

    fn visible(&self) -> impl Iterator<Item = (&u64, &Shown)> {
        self.shown.iter().filter(|(_, s)| s.visible)
    }

    /// The visible sequences, in id order.
    pub fn visible_sequences(&self) -> Vec<ShownSequence> {
        self.visible().map(|(_, s)| s.shown.clone()).collect()
    }

    /// The timeline's rate: the first visible sequence's.
    fn fps(&self) -> f32 {
        self.visible().map(|(_, s)| s.shown.sequence.fps).next().unwrap_or(10.0)
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
                    shown: ShownSequence::new(a.id, a.name.clone(), Arc::new(seq)),
                },
            );
            rt.built_for = None;
        }
    }
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
    reconstruct::poll(session);
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

    let style = settings.style();
    let shown = session.motion.visible_sequences();
    let key = (
        session.motion.playback.time,
        shown.iter().map(|s| s.id).collect(),
        style,
    );
    if session.motion.built_for.as_ref() != Some(&key) {
        session.motion.scene = Arc::new(motion::scene_at(&shown, session.motion.playback.time, &style));
        session.motion.built_for = Some(key);
    }
    let scene = session.motion.scene.clone();
    let (_, bounds) = motion::layout(&shown, style.side_by_side);
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
    for (id, entry) in session.motion.shown.iter_mut() {
        let seq = &entry.shown.sequence;
        ui.checkbox(&mut entry.visible, names.get(id).cloned().unwrap_or_default());
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
                ui.weak(format!("largest displacement {:.4}", entry.shown.max_displacement));
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
    reconstruct::section(ui, &mut settings.reconstruct, session);
    ui.separator();
    export::section(ui, session, settings);
    ui.separator();
    ui.weak("WildFusion novel views (issue #8) have their own tab: Views (WildFusion).");
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
