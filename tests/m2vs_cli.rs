//! `m2vs-reconstruct` and `m2vs-eval` with the shipped demo model (`models/m2vs-demo`), at few
//! sampler steps and samples: the commands' wiring, outputs and errors, not the model's quality
//! (the README's table comes from `m2vs-eval` at its defaults).

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_latent-workbench"))
}

#[test]
fn reconstruct_writes_a_tracked_glb_with_provenance_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("motion");
    let o = bin()
        .args(["demo-data", "motion", "-o"])
        .arg(&data)
        .args(["--count", "1", "--frames", "4", "--resolution", "32", "--points", "300"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let points = data.join("bending_capsule/points.npy");
    let out = dir.path().join("capsule.glb");
    let o = bin()
        .arg("m2vs-reconstruct")
        .arg(&points)
        .arg("-o")
        .arg(&out)
        .args(["--steps", "6", "--normalise", "as-given", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["provenance"]["frames"], 4);
    assert_eq!(report["provenance"]["points_per_frame"], 256);
    let glb = gltf::Gltf::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let mesh = glb.meshes().next().unwrap();
    let targets = mesh.primitives().next().unwrap().morph_targets().count();
    assert_eq!(targets, 3, "frames 2..4 as morph targets");
    assert!(dir.path().join("capsule.provenance.json").is_file());

    // Too few points per frame for the model: an error naming the file, nothing written.
    let few = data.join("few");
    let o = bin()
        .args(["demo-data", "motion", "-o"])
        .arg(&few)
        .args(["--count", "1", "--frames", "3", "--resolution", "24", "--points", "40"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let bad_out = dir.path().join("bad.glb");
    let o = bin()
        .arg("m2vs-reconstruct")
        .arg(few.join("bending_capsule/points.npy"))
        .arg("-o")
        .arg(&bad_out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("points.npy") && err.contains("40 points per frame"),
        "{err}"
    );
    assert!(!bad_out.exists());
}

#[test]
fn eval_reports_the_model_and_both_baselines_per_kind() {
    let dir = tempfile::tempdir().unwrap();
    let o = bin()
        .arg("m2vs-eval")
        .arg("-o")
        .arg(dir.path().join("out"))
        .args([
            "--per-kind",
            "1",
            "--steps",
            "6",
            "--volume-samples",
            "2000",
            "--surface-samples",
            "2000",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["sequences"].as_array().unwrap().len(), 4);
    for kind in [
        "bending_capsule",
        "twisting_bar",
        "breathing_ellipsoid",
        "walking_figure",
    ] {
        for method in ["model", "nearest_frame", "static_truth"] {
            let iou = r["by_kind"][kind][method]["iou"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&iou), "{kind} {method} {iou}");
        }
    }
    let first = r["sequences"][0]["name"].as_str().unwrap();
    for file in ["pred.glb", "truth.glb"] {
        assert!(
            dir.path().join("out").join(first).join(file).is_file(),
            "{first}/{file}"
        );
    }
    // The static truth is exact on frame 1, so its mean IoU is well above zero.
    assert!(r["all"]["static_truth"]["iou"].as_f64().unwrap() > 0.5);
}

/// The reference's `PointEmbed` multiplies by its `basis` buffer, so a shipped model must carry
/// the Fourier matrix there (our loader accepts the all-zero basis a missing buffer leaves).
#[test]
fn the_shipped_model_carries_the_reference_fourier_bases() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/m2vs-demo/model.safetensors");
    let tensors = candle_core::safetensors::load(&path, &candle_core::Device::Cpu).unwrap();
    let bases: Vec<_> = tensors
        .iter()
        .filter(|(k, _)| k.ends_with("point_embed.basis"))
        .collect();
    assert_eq!(bases.len(), 4, "both autoencoders and both condition encoders");
    for (name, t) in bases {
        let got = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want = latent_workbench::core::ops::fourier::basis(t.dim(1).unwrap() / 3);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{name}: {got:?}");
        }
    }
}
