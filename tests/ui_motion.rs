//! The Motion tab driven headlessly (egui_kittest, no GPU: the viewport says it needs the wgpu
//! renderer, everything else runs): the demo sequences load side by side, the timeline plays,
//! steps and scrubs by button and key, the scene follows the sequence frame by frame with
//! displacement colours and trails, and an export writes a valid animated `.glb` with provenance.

use egui::Key;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use latent_workbench::app::{Launch, WorkbenchApp};
use latent_workbench::render::{Coloring, Geometry};

#[path = "common/app.rs"]
mod app;
use app::harness;

fn settle(h: &mut Harness<'static, WorkbenchApp>) {
    app::settle_until(h, |app| !app.busy() && !app.session.motion.busy());
}

fn demo() -> Harness<'static, WorkbenchApp> {
    let mut h = harness(Launch {
        tab: Some("motion".into()),
        run_demo: true,
        files: vec![],
        ..Launch::default()
    });
    settle(&mut h);
    h
}

fn time(h: &Harness<'static, WorkbenchApp>) -> f32 {
    h.state().session.motion.playback.time
}

/// The first mesh of the scene (the walking figure) and its vertices.
fn first_mesh(h: &Harness<'static, WorkbenchApp>) -> (String, Vec<[f32; 3]>, Coloring) {
    let scene = h.state().session.motion.scene();
    scene
        .objects
        .iter()
        .find_map(|o| match &o.geometry {
            Geometry::Mesh(m) => Some((o.name.clone(), m.positions.clone(), o.coloring)),
            _ => None,
        })
        .expect("a mesh in the scene")
}

#[test]
fn demo_sequences_play_step_and_scrub_with_colours_and_trails() {
    let mut h = demo();
    let app = h.state();
    assert_eq!(app.session.motion.frames(), 17);
    let objects = &app.session.motion.scene().objects;
    let meshes = objects
        .iter()
        .filter(|o| matches!(o.geometry, Geometry::Mesh(_)))
        .count();
    let trails = objects.iter().filter(|o| o.name.ends_with("trails")).count();
    assert_eq!((meshes, trails), (2, 2), "two sequences, each with its trails");
    assert_eq!(time(&h), 5.0, "the demo opens mid-stride");
    h.get_by_label("frame 6 / 17   0.42 s");

    // The scene's mesh is the sequence's frame (laid out side by side: shifted along x only).
    let (name, positions, coloring) = first_mesh(&h);
    assert!(name.contains("walking_figure"), "{name}");
    assert!(matches!(coloring, Coloring::Scalar { lo: 0.0, .. }), "{coloring:?}");
    let seq = {
        let a = h.state().session.assets.iter().find(|a| a.name == name).unwrap();
        match &a.asset {
            latent_workbench::core::Asset::Motion(m) => m.clone(),
            _ => panic!("a motion asset"),
        }
    };
    let shift = positions[0][0] - seq.frames[5][0][0];
    for (p, q) in positions.iter().zip(&seq.frames[5]) {
        assert!((p[0] - q[0] - shift).abs() < 1e-5 && p[1] == q[1] && p[2] == q[2]);
    }

    // Buttons and keys step whole frames and wrap around (looping is on).
    h.get_by_label("Next frame").click();
    h.run_steps(2);
    assert_eq!(time(&h), 6.0);
    h.key_press(Key::ArrowLeft);
    h.run_steps(2);
    h.key_press(Key::ArrowLeft);
    h.run_steps(2);
    assert_eq!(time(&h), 4.0);
    h.key_press(Key::Home);
    h.run_steps(2);
    h.key_press(Key::ArrowLeft);
    h.run_steps(2);
    assert_eq!(time(&h), 16.0, "stepping back from the first frame wraps to the last");
    let (_, last, _) = first_mesh(&h);
    assert!((last[0][1] - seq.frames[16][0][1]).abs() < 1e-6);

    // Play advances with time (kittest steps 0.25 s: 3 frames at 12 fps), Space pauses.
    h.key_press(Key::Home);
    h.run_steps(1);
    h.get_by_label("Play").click();
    h.run_steps(4);
    let t = time(&h);
    assert!(t > 1.0 && t < 16.0, "{t}");
    assert!(h.state().session.motion.playback.playing);
    h.key_press(Key::Space);
    h.run_steps(2);
    let paused = time(&h);
    h.run_steps(3);
    assert_eq!(time(&h), paused, "paused");
    // Between frames the mesh is interpolated: neither neighbour.
    let (_, between, _) = first_mesh(&h);
    if paused.fract() > 0.05 {
        assert_ne!(between[0], seq.frames[paused.floor() as usize][0]);
    }

    // Turning colours off gives solid meshes; trails off removes them.
    h.get_by_label("Colour by displacement from frame 1").click();
    h.get_by_label("Motion trails").click();
    h.run_steps(2);
    let objects = &h.state().session.motion.scene().objects;
    assert_eq!(objects.len(), 2);
    assert!(objects.iter().all(|o| matches!(o.coloring, Coloring::Solid(_))));
}

#[test]
fn export_writes_an_animated_glb_and_frames_with_provenance() {
    use latent_workbench::app::panels::motion::export::{Format, write_export};
    let h = demo();
    let app = h.state();
    let a = app
        .session
        .assets
        .iter()
        .find(|a| a.name.contains("bending_capsule"))
        .unwrap();
    let latent_workbench::core::Asset::Motion(seq) = &a.asset else {
        panic!()
    };
    let dir = tempfile::tempdir().unwrap();
    let provenance = serde_json::json!({"made_by": {"operation": "motion export"}});
    let glb = dir.path().join("capsule.glb");
    let said = write_export(&glb, seq, Format::Glb, &provenance).unwrap();
    assert!(said.contains("17 frames"), "{said}");
    let parsed = gltf::Gltf::from_slice(&std::fs::read(&glb).unwrap()).unwrap();
    let prim = parsed.document.meshes().next().unwrap().primitives().next().unwrap();
    assert_eq!(prim.morph_targets().count(), 16);
    assert!(dir.path().join("capsule.provenance.json").exists());
    let frames = dir.path().join("frames");
    write_export(&frames, seq, Format::Frames("obj"), &provenance).unwrap();
    assert_eq!(
        std::fs::read_dir(&frames).unwrap().count(),
        18,
        "17 OBJs and provenance.json"
    );
}

#[test]
fn png_export_renders_the_view_as_shown() {
    use latent_workbench::app::panels::motion::export::write_png_views;
    use latent_workbench::render::motion;
    if let Err(e) = latent_workbench::render::Gpu::headless() {
        assert!(
            std::env::var("LW_REQUIRE_RENDER").as_deref() != Ok("1"),
            "no adapter: {e}"
        );
        return;
    }
    let h = demo();
    let app = h.state();
    let shown = app.session.motion.visible_sequences();
    assert_eq!(shown.len(), 2);
    let settings = &app.state.motion;
    let views = motion::turntable_views(5.0, settings.viewport.camera, 3);
    let dir = tempfile::tempdir().unwrap();
    let provenance = serde_json::json!({"made_by": {"operation": "turntable"}});
    let said = write_png_views(
        dir.path(),
        &shown,
        &settings.style(),
        &settings.viewport.settings,
        &views,
        &provenance,
    )
    .unwrap();
    assert!(said.starts_with("3 PNG images"), "{said}");
    for name in ["frame_0000.png", "frame_0002.png", "provenance.json"] {
        assert!(dir.path().join(name).exists(), "{name}");
    }
}

#[test]
fn reconstruct_and_track_with_the_demo_model_adds_a_scored_sequence() {
    let mut h = demo();
    if !h.state().session.models.iter().any(|m| m.manifest.name == "m2vs-demo") {
        panic!("models/m2vs-demo ships with the repository");
    }
    h.get_by_label("Reconstruct and track (Motion2VecSets)");
    // Few sampler steps: this checks the wiring, not the quality (m2vs-eval does that).
    h.state_mut().state.motion.reconstruct.steps = 6;
    let before = h.state().session.assets.len();
    h.get_by_label("Reconstruct").click();
    h.run();
    assert!(
        h.state().session.motion.reconstruct.busy(),
        "the job runs in the background"
    );
    settle(&mut h);
    let app = h.state();
    assert_eq!(app.session.motion.reconstruct.error, None);
    assert_eq!(app.session.assets.len(), before + 1);
    let added = app.session.assets.last().unwrap();
    assert!(added.name.ends_with("(m2vs-demo)"), "{}", added.name);
    let seq = match &added.asset {
        latent_workbench::core::Asset::Motion(m) => m,
        other => panic!("{}", other.kind()),
    };
    // Tracking deforms frame 1's mesh: one topology for every frame of the input.
    assert!(seq.is_mesh() && seq.len() == 17, "{} frames", seq.len());
    assert!(seq.frames.iter().all(|f| f.len() == seq.frames[0].len()));
    let done = app.session.motion.reconstruct.last.as_ref().unwrap();
    let scores = done.scores.as_ref().expect("a mesh input is scored");
    assert_eq!(scores.model.frames.len(), 17);
    assert!(scores.model.mean.iou.is_finite() && scores.model.mean.iou > 0.0);
}
