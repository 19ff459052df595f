//! The LDAE probe, manipulation and interpolation-evaluation commands end to end on a tiny random model
//! (`tests/common/ldae.rs`, shared with `tests/ldae_pipeline.rs`): a labelled set of 16³ scans, `probe`
//! fits and saves a logistic and a ridge probe, `manipulate` edits a scan with the saved probe, `interpolate-eval` scores two cases of a tiny cohort folder.
//! The weights are random, so the tests check behaviour and consistency, not quality.

use std::path::{Path, PathBuf};
use std::process::Command;

use latent_workbench::core::weights::{LoadOptions, load_checkpoint};
use latent_workbench::io::nifti::{self, WriteOptions};
use latent_workbench::methods::ldae::probe::{LinearProbe, ProbeKind};

#[path = "common/ldae.rs"]
mod tiny_ldae;
use tiny_ldae::{scan, tiny_model};

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_latent-workbench"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"))
}

/// A labelled set: 4 subjects × 3 visits, alternating AD/CN (plus one MCI subject to be dropped), with
/// an age column; writes the scans and `labels.csv` (paths relative to it) and a `cohort.csv`.
fn labelled_set(dir: &Path) -> PathBuf {
    let mut csv = String::from("subject,month,age,diagnosis,path\n");
    let mut cohort = String::from("subject,month,age,diagnosis,disease_factor,file\n");
    for s in 0..5u64 {
        let dx = ["CN", "AD", "CN", "AD", "MCI"][s as usize];
        for (k, month) in [0u32, 6, 12].iter().enumerate() {
            let file = format!("sub-{s:03}_ses-M{month:02}_T1w.nii.gz");
            nifti::write(&dir.join(&file), &scan(10 * s + k as u64), &WriteOptions::default()).unwrap();
            let age = 60.0 + 3.0 * s as f64 + f64::from(*month) / 12.0;
            csv.push_str(&format!("sub-{s:03},{month},{age},{dx},{file}\n"));
            cohort.push_str(&format!("sub-{s:03},{month},{age},{dx},0.5,{file}\n"));
        }
    }
    std::fs::write(dir.join("cohort.csv"), cohort).unwrap();
    let path = dir.join("labels.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

#[test]
fn probe_manipulate_and_interpolate_eval_end_to_end() {
    let tiny = tiny_model();
    let model = tiny.dir.to_str().unwrap();
    let data = tempfile::tempdir().unwrap();
    let csv = labelled_set(data.path());
    let probe_path = data.path().join("probe.safetensors");
    let (ok, out, err) = run(&[
        "probe",
        "--model",
        model,
        "--csv",
        csv.to_str().unwrap(),
        "--label",
        "diagnosis",
        "--label",
        "age",
        "--folds",
        "2",
        "--l2",
        "1",
        "-o",
        probe_path.to_str().unwrap(),
        "--code-use",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v = json(&out);
    assert_eq!(v["scans"], 15);
    // The decoder check: 8 of the 15 scans at a tenth, four and seven tenths of the schedule.
    let code_use = &v["code_use"];
    assert_eq!(code_use["scans"], 8);
    assert_eq!(code_use["timesteps"], serde_json::json!([100, 400, 700]));
    for key in ["own_code", "other_code", "no_shift", "mean_latent"] {
        let errors = code_use[key].as_array().unwrap();
        assert!(
            errors.len() == 3 && errors.iter().all(|e| e.as_f64().unwrap() > 0.0),
            "{code_use}"
        );
    }
    assert!(code_use["other_code_penalty"].as_f64().unwrap().is_finite());
    assert_eq!(v["y_sem_dim"], 16);
    let dx = &v["probes"][0];
    assert_eq!(
        (dx["positive"].as_str(), dx["negative"].as_str()),
        (Some("AD"), Some("CN"))
    );
    assert_eq!(dx["dropped"]["MCI"], 3);
    assert_eq!(dx["cv"]["samples"], 12);
    assert_eq!(dx["cv"]["groups"], 4);
    let auc = dx["cv"]["roc_auc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&auc));
    let age = &v["probes"][1];
    assert_eq!(age["kind"], "continuous");
    assert!(
        age["cv"]["mae"].as_f64().unwrap() >= 0.0
            && age["cv"]["rmse"].as_f64().unwrap() >= age["cv"]["mae"].as_f64().unwrap()
    );

    // The saved file loads through core::weights as two probes.
    let ckpt = load_checkpoint(&probe_path, &LoadOptions::default()).unwrap();
    let p = LinearProbe::from_checkpoint(&ckpt, Some("diagnosis"), None).unwrap();
    assert_eq!(p.dim(), 16);
    assert!(matches!(p.kind, ProbeKind::Binary { ref positive, .. } if positive == "AD"));
    assert!(
        LinearProbe::from_checkpoint(&ckpt, None, None).is_err(),
        "two probes need a label"
    );

    // Manipulation with the saved probe: the edited code moves the score by s·√d·‖w‖.
    let out_path = data.path().join("edited.nii.gz");
    let scan_path = data.path().join("sub-000_ses-M00_T1w.nii.gz");
    let (ok, out, err) = run(&[
        "manipulate",
        "--model",
        model,
        "--scan",
        scan_path.to_str().unwrap(),
        "--probe",
        probe_path.to_str().unwrap(),
        "--label",
        "diagnosis",
        "--strength",
        "-1.5",
        "--steps",
        "2",
        "-o",
        out_path.to_str().unwrap(),
        "--json",
    ]);
    assert!(ok, "{err}");
    let v = json(&out);
    let s = &v["score"];
    let change = s["edited_code"].as_f64().unwrap() - s["input"].as_f64().unwrap();
    let expected = s["expected_change"].as_f64().unwrap();
    assert!(
        expected < 0.0 && (change - expected).abs() < 1e-3 * expected.abs().max(1.0),
        "{s}"
    );
    assert!(s["output_reencoded"].as_f64().unwrap().is_finite());
    for key in ["input_region_mean", "unedited_region_mean", "edited_region_mean"] {
        assert!(
            v["ventricle_proxy"].get(key).is_some(),
            "{key} missing: {}",
            v["ventricle_proxy"]
        );
    }
    assert_eq!(v["towards"], "CN");
    let edited = nifti::read(&out_path).unwrap();
    assert_eq!(edited.dims(), [16, 16, 16]);
    assert!(data.path().join("edited.provenance.json").is_file());

    // Interpolation evaluation on the cohort folder: two cases, grouped by gap.
    let (ok, out, err) = run(&[
        "interpolate-eval",
        "--model",
        model,
        "--cohort",
        data.path().to_str().unwrap(),
        "--steps",
        "2",
        "--max-cases",
        "2",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v = json(&out);
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    assert_eq!(
        (
            cases[0]["start"].as_u64(),
            cases[0]["target"].as_u64(),
            cases[0]["end"].as_u64()
        ),
        (Some(0), Some(6), Some(12))
    );
    assert_eq!(v["by_time_gap"][0]["gap_months"], 12);
    assert_eq!(v["by_prediction_gap"][0]["gap_months"], 6);
    let ssim = cases[0]["scores"]["ldae"]["vs_ae_reconstruction"]["ssim"]
        .as_f64()
        .unwrap();
    assert!(ssim.is_finite() && ssim <= 1.0);
}

#[test]
fn bad_inputs_fail_with_one_line() {
    let tiny = tiny_model();
    let model = tiny.dir.to_str().unwrap();
    let data = tempfile::tempdir().unwrap();
    let csv = labelled_set(data.path());
    let (ok, _, err) = run(&[
        "probe",
        "--model",
        model,
        "--csv",
        csv.to_str().unwrap(),
        "--label",
        "nope",
    ]);
    assert!(!ok && err.contains("nope"), "{err}");
    let (ok, _, err) = run(&[
        "manipulate",
        "--model",
        model,
        "--scan",
        "missing.nii.gz",
        "--probe",
        csv.to_str().unwrap(),
        "--strength",
        "1",
        "-o",
        "x.nii.gz",
    ]);
    assert!(!ok && !err.is_empty());
    let (ok, _, err) = run(&["interpolate-eval", "--model", model]);
    assert!(!ok && err.contains("held-out"), "{err}");
}
