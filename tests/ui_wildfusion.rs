//! The Views (WildFusion) tab driven headlessly (egui_kittest): the banner says what the demo is,
//! the first view renders in a background job, and a new yaw lands as a new, different render;
//! with an autoencoder the objects are encoded, blended in Z and decoded, once per object and
//! blend (turning the camera encodes nothing).

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use latent_workbench::app::panels::wildfusion::{EncoderWork, LatentSource};
use latent_workbench::app::{Launch, WorkbenchApp};
use latent_workbench::core::manifest::Entry;
use latent_workbench::methods::wildfusion::AnalyticObject;

#[path = "common/app.rs"]
mod app;
use app::harness;
#[path = "common/model_folder.rs"]
mod model_folder;
#[path = "common/wildfusion.rs"]
mod wildfusion;

const BANNER: &str = "WildFusion reimplementation from the paper (no official code or weights exist). Latents: analytic triplanes, or images encoded by a WildFusion-family autoencoder (none ships: the toy that `train wildfusion-demo` makes learns only the mean object).";
const SIZE: usize = 64;

/// Steps until a render of the full test size has landed and nothing runs or waits.
fn settle(h: &mut Harness<'static, WorkbenchApp>) {
    app::settle_until(h, |app| {
        let rt = &app.session.wildfusion;
        assert!(rt.error().is_none(), "render failed: {:?}", rt.error());
        !app.busy() && !rt.busy() && rt.rendered() == Some((SIZE, SIZE))
    });
}

/// The tab at the test size, a box from P0, with exactly `models` as its WildFusion-family models.
fn views_tab(models: &[Entry]) -> Harness<'static, WorkbenchApp> {
    let mut h = harness(Launch {
        tab: Some("wildfusion".into()),
        files: vec![],
        ..Launch::default()
    });
    let app = h.state_mut();
    app.session.models.retain(|m| m.manifest.family != "wildfusion");
    app.session.models.extend(models.iter().cloned());
    let s = &mut app.state.wildfusion;
    s.resolution = SIZE;
    s.samples_per_ray = 16;
    s.yaw_deg = 0.0;
    s.pitch_deg = 0.0;
    s.object_a = AnalyticObject::Box;
    s.t = 0.0;
    h
}

#[test]
fn views_tab_renders_in_the_background_and_follows_the_camera() {
    let mut h = views_tab(&[]);
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

#[test]
fn an_autoencoder_encodes_both_objects_once_and_the_camera_only_renders() {
    let dir = tempfile::tempdir().unwrap();
    let entry = wildfusion::random_wildfusion_model(dir.path(), "wildfusion-random", 4);
    let mut h = views_tab(&[entry]);
    h.state_mut().state.wildfusion.object_b = AnalyticObject::Torus;
    settle(&mut h);
    let analytic = h.state().session.wildfusion.rendered_view().unwrap().clone();
    assert!(h.state().session.wildfusion.encoder_inputs().is_empty());

    {
        let s = &mut h.state_mut().state.wildfusion;
        s.source = LatentSource::Encoded;
        s.t = 0.5;
    }
    settle(&mut h);
    let rt = &h.state().session.wildfusion;
    let q = rt.rendered_request().unwrap();
    assert_eq!(q.encoder.as_ref().unwrap().0.manifest.name, "wildfusion-random");
    assert_eq!(rt.encoder_inputs(), vec![AnalyticObject::Box, AnalyticObject::Torus]);
    let work = EncoderWork {
        models_loaded: 1,
        images_encoded: 2,
        triplanes_decoded: 1,
    };
    assert_eq!(rt.encoder_work(), work);
    let encoded = rt.rendered_view().unwrap().clone();
    assert!(
        encoded.rgb.iter().zip(&analytic.rgb).any(|(a, b)| (a - b).abs() > 0.02),
        "a random autoencoder's triplane is not the analytic box"
    );
    h.get_by_label_contains("Encoded by wildfusion-random");

    // A new camera renders the cached triplane again: nothing is encoded or decoded.
    h.state_mut().state.wildfusion.yaw_deg = 20.0;
    settle(&mut h);
    let rt = &h.state().session.wildfusion;
    assert_eq!(rt.rendered_view().unwrap().camera.yaw_deg, 20.0);
    assert_eq!(rt.encoder_work(), work);

    // A new blend decodes once more and encodes nothing new.
    h.state_mut().state.wildfusion.t = 0.75;
    settle(&mut h);
    let w = h.state().session.wildfusion.encoder_work();
    assert_eq!((w.images_encoded, w.triplanes_decoded), (2, 2));
}

#[test]
fn the_encoded_source_without_a_model_says_how_to_make_one_and_draws_analytic_latents() {
    let mut h = views_tab(&[]);
    h.state_mut().state.wildfusion.source = LatentSource::Encoded;
    settle(&mut h);
    h.get_by_label_contains("No WildFusion-family model found");
    let rt = &h.state().session.wildfusion;
    assert!(rt.rendered_request().unwrap().encoder.is_none());
    assert!(rt.encoder_inputs().is_empty());
}
