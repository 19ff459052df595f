//! Headless UI tests (egui_kittest, no display, no GPU): every tab opens, the viewer responds
//! to scrolling, keys, window/level drags and clicks, files load through jobs and bad files
//! become notifications.

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use latent_workbench::app::{Command, Launch, Tab, WorkbenchApp};
use latent_workbench::core::slice::Plane;

#[path = "common/app.rs"]
mod app;
use app::harness;

/// Steps until no load job is running (jobs finish on worker threads).
fn settle(h: &mut Harness<'static, WorkbenchApp>) {
    app::settle_until(h, |app| !app.busy());
}

/// The app on its built-in demo volume, showing the Viewer.
fn demo() -> Harness<'static, WorkbenchApp> {
    let mut h = harness(Launch {
        tab: Some("viewer".into()),
        ..Launch::default()
    });
    settle(&mut h);
    h
}

#[test]
fn opens_on_interpolation_when_an_ldae_model_is_registered() {
    let mut h = harness(Launch::default());
    settle(&mut h);
    let has_ldae = h.state().session.models.iter().any(|m| m.manifest.family == "ldae");
    assert!(has_ldae, "the shipped models/ldae-demo is registered");
    h.get_by_label_contains("missing-scan synthesis (LDAE)");
    // The demo volume is loaded all the same.
    assert!(h.state().session.active_volume().is_some());
}

#[test]
fn every_tab_opens() {
    let mut h = demo();
    for tab in Tab::ALL {
        h.get_by_label(tab.title()).click();
        h.run_steps(2);
        match tab {
            Tab::Viewer => {
                h.get_by_label("Axial view");
            }
            Tab::Data => {
                h.get_by_label("Open...");
            }
            Tab::Inspector => {
                h.get_by_label("L2 norm");
            }
            Tab::Log => {
                h.get_by_label_contains("messages,");
            }
            Tab::Stitching => {
                h.get_by_label("Stitching: relative representations");
            }
            Tab::Interpolation => {
                h.get_by_label("Interpolation: missing-scan synthesis (LDAE)");
            }
            Tab::Attributes => {
                h.get_by_label("Attributes: manipulation along a probe (LDAE)");
            }
            Tab::Shapes => {
                h.get_by_label("Wavelet tree (WaLa, stage 1)");
            }
            Tab::FailureSearch => {
                h.get_by_label("Failure search: adversarial search of a generator (SAGE)");
            }
            Tab::Motion => {
                h.get_by_label("Motion (4D)");
            }
            Tab::WildFusion => {
                h.get_by_label("Reset view (P0)");
            }
        }
    }
}

#[test]
fn demo_volume_is_shown_on_start() {
    let h = demo();
    let app = h.state();
    let (_, v) = app.session.active_volume().expect("the demo volume is active");
    assert_eq!(v.dims(), [131, 155, 126]);
    assert_eq!(v.source_kind.name(), "uint8");
    for name in ["Axial view", "Coronal view", "Sagittal view"] {
        assert_eq!(h.get_by_label(name).accesskit_node().role(), Role::Canvas);
    }
}

fn axial_index(h: &Harness<'static, WorkbenchApp>) -> usize {
    let app = h.state();
    let (_, v) = app.session.active_volume().unwrap();
    app.session.viewer.cursor_voxel(v)[Plane::Axial.normal_axis()]
}

#[test]
fn wheel_and_keys_scroll_slices() {
    let mut h = demo();
    let start = axial_index(&h);
    let center = h.get_by_label("Axial view").rect().center();
    h.hover_at(center);
    h.run_steps(1);
    for _ in 0..3 {
        h.event(egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Line,
            delta: egui::vec2(0.0, 1.0),
            modifiers: egui::Modifiers::NONE,
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Wheel,
        });
        h.run_steps(1);
    }
    assert_eq!(axial_index(&h), start + 3, "three wheel notches move three slices");
    h.key_press(egui::Key::ArrowDown);
    h.run_steps(1);
    assert_eq!(axial_index(&h), start + 2);
    h.key_press(egui::Key::PageDown);
    h.run_steps(1);
    assert_eq!(axial_index(&h), start - 8);
    // The hover readout names voxel, world position and value.
    let text = h.state().session.viewer.hover_text.clone().expect("hover readout");
    assert!(text.contains("world (") && text.contains("value"), "{text}");
}

#[test]
fn right_drag_changes_window_level() {
    let mut h = demo();
    let id = h.state().session.active.unwrap();
    let before = h.state().session.viewer.windows[&id];
    let c = h.get_by_label("Coronal view").rect().center();
    h.hover_at(c);
    h.event(egui::Event::PointerButton {
        pos: c,
        button: egui::PointerButton::Secondary,
        pressed: true,
        modifiers: egui::Modifiers::NONE,
    });
    h.run_steps(1);
    for k in 1..=6 {
        h.hover_at(c + egui::vec2(10.0 * k as f32, -5.0 * k as f32));
        h.run_steps(1);
    }
    h.event(egui::Event::PointerButton {
        pos: c + egui::vec2(60.0, -30.0),
        button: egui::PointerButton::Secondary,
        pressed: false,
        modifiers: egui::Modifiers::NONE,
    });
    h.run_steps(1);
    let after = h.state().session.viewer.windows[&id];
    let (wb, wa) = (before.1 - before.0, after.1 - after.0);
    assert!(
        wa > wb * 1.2,
        "dragging right widens the window: {before:?} -> {after:?}"
    );
    assert!(
        0.5 * (after.0 + after.1) > 0.5 * (before.0 + before.1),
        "dragging up raises the level"
    );
}

#[test]
fn click_moves_the_crosshair_in_world_space() {
    let mut h = demo();
    let r = h.get_by_label("Sagittal view").rect();
    let before = h.state().session.viewer.cursor_world.unwrap();
    h.get_by_label("Sagittal view").hover();
    h.run_steps(1);
    let p = r.center() + egui::vec2(r.width() * 0.1, -r.height() * 0.1);
    h.hover_at(p);
    h.event(egui::Event::PointerButton {
        pos: p,
        button: egui::PointerButton::Primary,
        pressed: true,
        modifiers: egui::Modifiers::NONE,
    });
    h.event(egui::Event::PointerButton {
        pos: p,
        button: egui::PointerButton::Primary,
        pressed: false,
        modifiers: egui::Modifiers::NONE,
    });
    h.run_steps(2);
    let after = h.state().session.viewer.cursor_world.unwrap();
    // Sagittal shows y across and z up; x (the slice) stays put.
    assert_eq!(before[0], after[0]);
    assert!(after[1] > before[1], "clicked right of centre: anterior");
    assert!(after[2] > before[2], "clicked above centre: superior");
}

#[test]
fn files_load_through_jobs_and_bad_files_notify() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("vol.nii.gz");
    let v =
        latent_workbench::core::Volume::from_spacing([8, 9, 10], [1.0, 2.0, 3.0], (0..720).map(|i| i as f32).collect())
            .unwrap();
    latent_workbench::io::nifti::write(&good, &v, &Default::default()).unwrap();
    let bad = dir.path().join("broken.nii.gz");
    std::fs::write(&bad, b"\x1f\x8b\x08\x00 this is not gzip").unwrap();

    let mut h = demo();
    h.state_mut().push(Command::Open(good.clone()));
    h.state_mut().push(Command::Open(bad.clone()));
    h.step();
    settle(&mut h);
    let app = h.state();
    assert_eq!(app.session.assets.len(), 2, "demo + the good file");
    let (_, shown) = app.session.active_volume().unwrap();
    assert_eq!(shown.dims(), [8, 9, 10], "a newly opened volume is shown");
    assert!(app.state.recent_files.contains(&good));
    let errors: Vec<_> = app.session.log.errors().map(|e| e.message.clone()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("broken.nii.gz"),
        "the error names the file: {}",
        errors[0]
    );
    assert!(!app.session.log.toasts.is_empty(), "and is shown as a notification");
}

#[test]
fn overlay_and_png_export() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = demo();
    h.state_mut().push(Command::LoadDemo);
    h.run_steps(2);
    let ids: Vec<u64> = h.state().session.assets.iter().map(|a| a.id).collect();
    h.state_mut().push(Command::SetActive(ids[0]));
    h.state_mut().push(Command::SetOverlay(Some(ids[1])));
    let out = dir.path().join("axial.png");
    h.state_mut().push(Command::SaveViewPng {
        plane: Plane::Axial,
        path: Some(out.clone()),
    });
    h.run_steps(3);
    let img = latent_workbench::io::image::read(&out).expect("the PNG was written");
    assert_eq!((img.width(), img.height()), (131, 155));
}

#[test]
fn unknown_tab_name_falls_back_to_viewer() {
    assert_eq!(Tab::from_name("latent inspector"), Some(Tab::Inspector));
    assert_eq!(Tab::from_name("failure-search"), Some(Tab::FailureSearch));
    assert_eq!(Tab::from_name("nope"), None);
}
