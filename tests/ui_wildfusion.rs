//! The Views (WildFusion) tab driven headlessly (egui_kittest): the banner says what the demo is,
//! the first view renders in a background job, and a new yaw lands as a new, different render.

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use latent_workbench::app::{Launch, WorkbenchApp};
use latent_workbench::methods::wildfusion::AnalyticObject;

#[path = "common/app.rs"]
mod app;
use app::harness;

const BANNER: &str = "WildFusion reimplementation from the paper (no official code or weights exist); the demo draws analytic triplanes: no trained autoencoder ships.";
const SIZE: usize = 64;

/// Steps until a render of the full test size has landed and nothing runs or waits.
fn settle(h: &mut Harness<'static, WorkbenchApp>) {
    app::settle_until(h, |app| {
        let rt = &app.session.wildfusion;
        assert!(rt.error().is_none(), "render failed: {:?}", rt.error());
        !app.busy() && !rt.busy() && rt.rendered() == Some((SIZE, SIZE))
    });
}

#[test]
fn views_tab_renders_in_the_background_and_follows_the_camera() {
    let mut h = harness(Launch {
        tab: Some("wildfusion".into()),
        files: vec![],
        ..Launch::default()
    });
    {
        let s = &mut h.state_mut().state.wildfusion;
        s.resolution = SIZE;
        s.samples_per_ray = 16;
        s.yaw_deg = 0.0;
        s.pitch_deg = 0.0;
        s.object_a = AnalyticObject::Box;
        s.t = 0.0;
    }
    settle(&mut h);
    h.get_by_label(BANNER);
    h.get_by_label("Reset view (P0)");

    let rt = &h.state().session.wildfusion;
    let first = rt.rendered_view().expect("a first render").clone();
    assert_eq!(first.rgb.len(), SIZE * SIZE * 3);
    assert_eq!(first.camera.yaw_deg, 0.0);
    let covered = first.opacity.iter().filter(|&&o| o > 0.5).count();
    assert!(
        covered > SIZE * SIZE / 20,
        "the object covers part of the view ({covered} px)"
    );
    let renders = rt.renders();

    // A new yaw (beyond the range: it is clamped) renders again, from the new camera.
    h.state_mut().state.wildfusion.yaw_deg = 90.0;
    h.step();
    assert!(h.state().session.wildfusion.busy(), "the change starts a render");
    settle(&mut h);
    let rt = &h.state().session.wildfusion;
    assert!(rt.renders() > renders);
    let second = rt.rendered_view().unwrap();
    assert_eq!(second.camera.yaw_deg, 35.0, "yaw is clamped into view space");
    assert_eq!((second.width, second.height), (SIZE, SIZE));
    let changed = first
        .rgb
        .iter()
        .zip(&second.rgb)
        .filter(|(a, b)| (*a - *b).abs() > 0.02)
        .count();
    assert!(changed > 0, "a different view gives a different image");
}
