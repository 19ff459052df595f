//! The LDAE panels headless (egui_kittest): without a model they say what to do; with a tiny model
//! folder (trained a step per stage on 16³ blobs, written as `train ldae-demo` writes it) the
//! Interpolation panel synthesises through its background job, shows the scores table and re-decodes
//! a new target month from cached inversions; the Attributes panel has its strength slider, starts a
//! preview job on its own and fits a probe from a labelled CSV.

use candle_core::{Device, Tensor};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use latent_workbench::app::panels::interpolation::shared::{ScanSlot, ScanSource};
use latent_workbench::app::{Command, Launch, WorkbenchApp};
use latent_workbench::core::diffusion::Rng;
use latent_workbench::core::jobs::JobContext;
use latent_workbench::core::manifest::{self, Origin};
use latent_workbench::core::train::encode_tensors;
use latent_workbench::core::volume::Volume;
use latent_workbench::methods::ldae::demo_train::{
    self, CohortSplit, DemoArchitecture, DemoSettings, Grid, Scan, StageSteps,
};
use latent_workbench::methods::ldae::probe::{LinearProbe, ProbeKind, Standardiser};
use std::path::PathBuf;
use std::sync::OnceLock;
#[path = "common/wait.rs"]
mod wait;

const N: usize = 16;
const SPACING_MM: f32 = 12.0;

/// A smooth random volume in [0, 1]: a few Gaussian blobs.
fn blobs(seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let centres: Vec<[f32; 3]> = (0..3)
        .map(|_| [0; 3].map(|_| 4.0 + 8.0 * rng.uniform() as f32))
        .collect();
    let mut v = Vec::with_capacity(N * N * N);
    for z in 0..N {
        for y in 0..N {
            for x in 0..N {
                let p = [x as f32, y as f32, z as f32];
                let s: f32 = centres
                    .iter()
                    .map(|c| (-(0..3).map(|k| (p[k] - c[k]).powi(2)).sum::<f32>() / 12.0).exp())
                    .sum();
                v.push(s.min(1.0));
            }
        }
    }
    v
}

/// A folder holding one tiny LDAE model (`<root>/ldae-tiny`) and some scans, made once per test binary.
fn fixture() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = tempfile::tempdir().unwrap().keep();
        let scans: Vec<Scan> = (0..3)
            .map(|i| Scan {
                subject: format!("sub-{i:03}"),
                month: 0,
                tensor: Tensor::from_vec(blobs(i), (1, 1, N, N, N), &Device::Cpu).unwrap(),
                geometry: None,
            })
            .collect();
        let mut settings = DemoSettings::demo(
            StageSteps {
                ae: 1,
                unet: 1,
                repr: 1,
            },
            7,
        );
        settings.arch = DemoArchitecture::tiny();
        settings.ae_crop = [8, 8, 8];
        settings.unet_batch = 2;
        settings.eval_scans = 0;
        let model = demo_train::train(
            &settings,
            &scans,
            &[],
            &Device::Cpu,
            &JobContext::detached(),
            None,
            &|_| {},
        )
        .unwrap();
        let dir = root.join("models").join("ldae-tiny");
        std::fs::create_dir_all(&dir).unwrap();
        let bytes = encode_tensors(&model.tensors, &Default::default()).unwrap();
        std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
        let split = CohortSplit {
            seed: 0,
            train: 0..3,
            heldout: 3..3,
            months: vec![0],
        };
        let grid = Grid {
            spacing_mm: SPACING_MM,
            shape: [N; 3],
        };
        let m = demo_train::manifest("ldae-tiny", &settings.arch, grid, &split, &model, "test".into()).unwrap();
        std::fs::write(dir.join("model.toml"), toml::to_string_pretty(&m).unwrap()).unwrap();
        // Scans of two "subjects" over time, as NIfTI files.
        for i in 0..12u64 {
            let v = Volume::from_spacing([N; 3], [SPACING_MM; 3], blobs(100 + i)).unwrap();
            let name = format!("sub-{:03}_ses-M{:02}_T1w.nii.gz", i / 3, (i % 3) * 12);
            latent_workbench::io::nifti::write(&root.join(name), &v, &Default::default()).unwrap();
        }
        root
    })
}

fn scan_path(subject: u64, month: u64) -> PathBuf {
    fixture().join(format!("sub-{subject:03}_ses-M{month:02}_T1w.nii.gz"))
}

fn harness(tab: &str, with_model: bool) -> Harness<'static, WorkbenchApp> {
    let launch = Launch {
        tab: Some(tab.into()),
        ..Default::default()
    };
    let mut h = Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .build_eframe(move |cc| WorkbenchApp::new(cc, launch));
    let models = if with_model {
        manifest::scan(&[(fixture().join("models"), Origin::User)]).0
    } else {
        Vec::new()
    };
    h.state_mut().session.models = models;
    h.run_steps(2);
    h
}

/// Steps frames until `done` holds (jobs run on worker threads).
fn wait(h: &mut Harness<'static, WorkbenchApp>, what: &str, done: impl Fn(&WorkbenchApp) -> bool) {
    wait::until(h, what, done);
}

fn open(h: &mut Harness<'static, WorkbenchApp>, paths: &[PathBuf]) -> Vec<u64> {
    let before = h.state().session.assets.len();
    for p in paths {
        h.state_mut().push(Command::Open(p.clone()));
    }
    h.step();
    wait(h, "files to load", |a| !a.busy());
    let app = h.state();
    assert_eq!(app.session.assets.len(), before + paths.len());
    paths
        .iter()
        .map(|p| {
            app.session
                .assets
                .iter()
                .find(|a| a.path.as_ref() == Some(p))
                .unwrap()
                .id
        })
        .collect()
}

#[test]
fn without_a_model_both_panels_say_what_to_do() {
    for tab in ["Interpolation", "Attributes"] {
        let h = harness(tab, false);
        h.get_by_label("No LDAE model is registered.");
        h.get_by_label_contains("latent-workbench train ldae-demo");
    }
}

#[test]
fn synthesis_runs_in_a_job_shows_scores_and_reuses_inversions() {
    let mut h = harness("Interpolation", true);
    h.get_by_label_contains("Scans must already be skull-stripped");
    let ids = open(&mut h, &[scan_path(0, 0), scan_path(0, 12), scan_path(0, 24)]);
    {
        let app = h.state_mut();
        app.state.ldae.steps = 3;
        let rt = &mut app.session.interpolation;
        rt.start = ScanSlot {
            source: ScanSource::Asset(ids[0]),
            month: 0.0,
        };
        rt.truth = ScanSlot {
            source: ScanSource::Asset(ids[1]),
            month: 12.0,
        };
        rt.end = ScanSlot {
            source: ScanSource::Asset(ids[2]),
            month: 24.0,
        };
        rt.target_month = 12.0;
    }
    h.run_steps(2);
    h.get_by_label("Synthesise").click();
    h.run_steps(1);
    assert!(h.state().session.interpolation.busy(), "the synthesis runs as a job");
    wait(&mut h, "the synthesis", |a| !a.session.interpolation.busy());
    let rt = &h.state().session.interpolation;
    assert_eq!(rt.error, None);
    let r = rt.result().expect("a result");
    assert_eq!(r.synthesis.dims(), [N; 3]);
    assert!((r.alpha - 0.5).abs() < 1e-12);
    let ev = r.evaluation.expect("scores against the truth");
    for s in [
        ev.ldae.vs_truth,
        ev.nearest.vs_ae_reconstruction,
        ev.linear_blend.vs_truth,
    ] {
        assert!(s.ssim.is_finite() && s.mse.is_finite() && s.mse >= 0.0, "{s:?}");
    }
    assert_eq!(r.cached_inversions, 0);
    h.get_by_label("Scores");
    h.get_by_label("LDAE synthesis");
    h.get_by_label("Linear blend");
    h.get_by_label("Synthesis − truth axial");

    // Another target month: both inversions come from the cache.
    h.state_mut().session.interpolation.target_month = 6.0;
    h.run_steps(1);
    h.get_by_label("Synthesise").click();
    h.run_steps(1);
    wait(&mut h, "the second synthesis", |a| !a.session.interpolation.busy());
    let r = h.state().session.interpolation.result().unwrap();
    assert!((r.alpha - 0.25).abs() < 1e-12);
    assert_eq!(r.cached_inversions, 2);

    // Export writes the NIfTI and its provenance.
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("synth.nii.gz");
    let waker = h.state().session.waker.clone();
    h.state_mut().session.interpolation.export(Some(target.clone()), waker);
    wait(&mut h, "the export", |a| !a.session.interpolation.busy());
    let back = latent_workbench::io::nifti::read(&target).unwrap();
    assert_eq!(back.dims(), [N; 3]);
    let prov: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("synth.provenance.json")).unwrap()).unwrap();
    assert_eq!(prov["operation"], "interpolate");
    assert_eq!(prov["parameters"]["target_month"], 6.0);
    assert!(
        prov["inputs"]["start"]["file_sha256"]
            .as_str()
            .is_some_and(|s| s.len() == 64)
    );
}

fn random_probe(dim: usize) -> LinearProbe {
    let mut rng = Rng::new(5);
    LinearProbe {
        label: "diagnosis".into(),
        kind: ProbeKind::Binary {
            positive: "CN".into(),
            negative: "AD".into(),
        },
        weight: (0..dim).map(|_| rng.normal()).collect(),
        bias: 0.1,
        standardiser: Standardiser::new(vec![0.0; dim], vec![1.0; dim]).unwrap(),
        l2: None,
    }
}

#[test]
fn attribute_slider_starts_a_preview_that_moves_the_score() {
    let mut h = harness("Attributes", true);
    h.get_by_label("No probe yet: fit one from a labelled set or load a file.");
    let ids = open(&mut h, &[scan_path(1, 0)]);
    let dim = DemoArchitecture::tiny().encoder.emb_chans;
    {
        let app = h.state_mut();
        app.state.ldae.preview_steps = 2;
        let rt = &mut app.session.attributes;
        rt.set_probe(random_probe(dim), "test");
        rt.scan = ScanSlot {
            source: ScanSource::Asset(ids[0]),
            month: 0.0,
        };
        rt.strength = 2.0;
    }
    assert!(
        h.query_all_by_label("strength s").count() >= 1,
        "the strength slider is shown"
    );
    // The preview starts after a short debounce and runs on a worker thread.
    wait(&mut h, "the preview to start", |a| {
        a.session.attributes.previewing() || a.session.attributes.shown().is_some()
    });
    wait(&mut h, "the preview", |a| !a.session.attributes.busy());
    let rt = &h.state().session.attributes;
    assert_eq!(rt.error, None);
    let e = rt.shown().expect("a preview");
    assert_eq!((e.steps, e.edited.dims()), (2, [N; 3]));
    let expected = rt.probe().unwrap().expected_score_change(2.0);
    assert!(
        (e.score_after - e.score_before - expected).abs() < 1e-3 * expected.abs().max(1.0),
        "the edit moves the score by s·√d·‖w‖"
    );
    h.get_by_label_contains("probe score");
    h.get_by_label("Edited − reconstruction axial");
}

#[test]
fn a_probe_is_fitted_from_a_labelled_csv() {
    let root = fixture();
    let csv = root.join("labels.csv");
    let mut text = String::from("subject,file,group,score\n");
    for i in 0..12u64 {
        let file = format!("sub-{:03}_ses-M{:02}_T1w.nii.gz", i / 3, (i % 3) * 12);
        let group = if i % 2 == 0 { "A" } else { "B" };
        text.push_str(&format!("s{i},{file},{group},{}\n", i as f64 * 0.5));
    }
    std::fs::write(&csv, text).unwrap();
    let mut h = harness("Attributes", true);
    {
        let app = h.state_mut();
        let (settings, rt) = (&mut app.state.ldae, &mut app.session.attributes);
        rt.open_csv(&csv, settings);
        settings.label_column = Some("group".into());
    }
    h.run_steps(2);
    h.get_by_label("Fit probe").click();
    h.run_steps(1);
    wait(&mut h, "the fit", |a| !a.session.attributes.busy());
    let rt = &h.state().session.attributes;
    assert_eq!(rt.error, None);
    let p = rt.probe().expect("a fitted probe");
    assert_eq!(p.label, "group");
    assert_eq!(
        p.kind,
        ProbeKind::Binary {
            positive: "B".into(),
            negative: "A".into()
        }
    );
    let r = rt.report().expect("a CV report");
    assert_eq!(r.samples, 12);
    h.get_by_label_contains("5-fold CV over 12 subjects");
}

#[test]
fn the_demo_fits_a_diagnosis_probe_on_generated_scans_and_previews_an_edit() {
    let mut h = harness("Attributes", true);
    {
        let app = h.state_mut();
        app.state.ldae.preview_steps = 2;
        let dir = fixture().join("models").join("ldae-tiny");
        app.session.attributes.run_demo(Some(dir), None);
    }
    h.step();
    wait(&mut h, "the demo fit and its preview", |a| {
        !a.session.attributes.busy() && a.session.attributes.shown().is_some()
    });
    let app = h.state();
    let rt = &app.session.attributes;
    assert_eq!(rt.error, None);
    let p = rt.probe().expect("a fitted probe");
    assert_eq!(p.label, "diagnosis");
    assert_eq!(
        p.kind,
        ProbeKind::Binary {
            positive: "AD".into(),
            negative: "CN".into()
        }
    );
    // Subjects 0–31 of the cohort, CN (index % 3 == 0: 11) and AD (index % 3 == 2: 10), three visits each.
    assert_eq!(rt.report().expect("a CV report").samples, 63);
    let scan = app
        .session
        .assets
        .iter()
        .find(|a| a.name == "sub-033 M00 (synthetic CN)")
        .expect("the demo scan joins the session");
    assert_eq!(rt.scan.source, ScanSource::Asset(scan.id));
    let e = rt.shown().unwrap();
    assert_eq!(e.strength, 2.5);
    assert!(e.score_after > e.score_before, "the edit moves toward AD");
    h.get_by_label_contains("fitted on 63 synthetic demo scans");
}
