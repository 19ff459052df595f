//! Relative representations: the acceptance self-test (isometry invariance), the end-to-end
//! comparison on a synthetic pair with known structure, zero-shot stitching, and the `relrep`
//! command on latent files and on two (tiny, freshly trained) sprite model folders.

use latent_workbench::core::diffusion::Rng;
use latent_workbench::core::jobs::JobContext;
use latent_workbench::core::linalg::{Matrix, matmul};
use latent_workbench::core::manifest::{MANIFEST_FILE, Manifest};
use latent_workbench::core::train::encode_tensors;
use latent_workbench::methods::relreps::sprite_ae::{self, SpriteAeConfig, TrainSettings};
use latent_workbench::methods::relreps::stitch::{prepare, stitch_classifier};
use latent_workbench::methods::relreps::{
    AnchorMode, CompareOptions, LabelColumn, LatentCollection, RelativeOptions, StitchOptions, align_by_ids,
    compare_spaces, demo, isometry_self_test, random_orthogonal, sprite_pair, stitch,
};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Acceptance: a random orthogonal transform plus rescaling of a space gives absolute cosine
/// near 0 and relative cosine 1 within 1e-5 (research note §5: 1000 × 128, 300 anchors).
#[test]
fn isometry_self_test_meets_the_acceptance_bound() {
    for (scale, seed) in [(1.0, 0), (3.7, 1), (0.05, 2)] {
        let check = isometry_self_test(1000, 128, 300, scale, seed).unwrap();
        assert!(check.absolute_cosine.abs() < 0.02, "absolute cosine {check:?}");
        assert!((check.relative_cosine - 1.0).abs() < 1e-5, "relative cosine {check:?}");
        assert!(check.relative_max_abs_diff < 1e-4, "{check:?}");
    }
}

/// A translated copy breaks plain cosines but not centred ones (why `--center` exists).
#[test]
fn translation_needs_centring() {
    let (n, d) = (400, 16);
    let mut rng = Rng::new(4);
    let a = rng.normals_f32(n * d);
    let q = random_orthogonal(d, &mut rng).unwrap();
    let a64 = Matrix::new(n, d, a.iter().map(|&x| f64::from(x)).collect()).unwrap();
    let b: Vec<f32> = matmul(&a64, &q)
        .unwrap()
        .data()
        .iter()
        .map(|&x| (2.0 * x + 3.0) as f32)
        .collect();
    let sa = LatentCollection::new("a", n, d, a, None).unwrap();
    let sb = LatentCollection::new("b", n, d, b, None).unwrap();
    let opts = |center| CompareOptions {
        anchors: 64,
        relative: RelativeOptions {
            center,
            ..Default::default()
        },
        max_queries: Some(200),
        ..Default::default()
    };
    let plain = compare_spaces(&sa, &sb, &opts(false)).unwrap();
    let centred = compare_spaces(&sa, &sb, &opts(true)).unwrap();
    assert!(plain.relative.cosine < 0.9, "{:?}", plain.relative);
    assert!(centred.relative.cosine > 0.99999, "{:?}", centred.relative);
    assert!(centred.relative.jaccard > 0.99 && centred.relative.mrr > 0.99);
    // The absolute baseline is blind to the shared structure; Procrustes and CKA see it.
    let abs = centred.absolute.unwrap();
    assert!(abs.mrr < 0.1 && abs.jaccard < 0.1, "{abs:?}");
    assert!(centred.procrustes.fit.residual < 1e-4 && centred.procrustes.scores.mrr > 0.99);
    assert!((centred.cka_absolute - 1.0).abs() < 1e-5);
}

/// Two "models" of one latent structure with different widths and noise: relative scores are
/// far above chance, absolute ones are not available (widths differ), every anchor mode works.
#[test]
fn different_widths_compare_through_anchors() {
    let (n, k) = (600, 6);
    let mut rng = Rng::new(9);
    let z = rng.normals_f32(n * k); // shared factors
    let embed = |width: usize, rng: &mut Rng| {
        let w = rng.normals_f32(k * width);
        let mut out = vec![0f32; n * width];
        for i in 0..n {
            for j in 0..width {
                let s: f32 = (0..k).map(|f| z[i * k + f] * w[f * width + j]).sum();
                out[i * width + j] = s + 0.05 * rng.normal() as f32;
            }
        }
        out
    };
    let a = embed(24, &mut rng);
    let b = embed(40, &mut rng);
    let labels: Vec<String> = (0..n).map(|i| format!("c{}", i % 3)).collect();
    let mut sa = LatentCollection::new("a", n, 24, a, None).unwrap();
    let sb = LatentCollection::new("b", n, 40, b, None).unwrap();
    let csv: String = std::iter::once("id,class".to_string())
        .chain(labels.iter().enumerate().map(|(i, l)| format!("{i},{l}")))
        .collect::<Vec<_>>()
        .join("\n");
    sa.attach_labels_csv(&csv, "labels.csv").unwrap();
    let (sa, sb, _) = align_by_ids(&sa, &sb).unwrap();
    for mode in [
        AnchorMode::Uniform,
        AnchorMode::Stratified,
        AnchorMode::Fps,
        AnchorMode::Kmeans,
    ] {
        let opts = CompareOptions {
            anchors: 40,
            mode,
            label_column: Some("class".into()),
            relative: RelativeOptions {
                center: true,
                ..Default::default()
            },
            max_queries: Some(200),
            ..Default::default()
        };
        let c = compare_spaces(&sa, &sb, &opts).unwrap();
        assert!(c.absolute.is_none());
        assert_eq!(c.anchor_ids.len(), 40);
        assert!(
            c.relative.mrr > 0.5 && c.relative.jaccard > 0.3,
            "{mode:?}: {:?}",
            c.relative
        );
        assert!(c.relative.cosine > 0.8, "{mode:?}: {:?}", c.relative);
        assert!(
            c.cka_absolute > 0.5 && c.cka_relative > 0.5,
            "{mode:?}: {} {}",
            c.cka_absolute,
            c.cka_relative
        );
    }
}

#[test]
fn relrep_command_prints_json() {
    let dir = tempfile::tempdir().unwrap();
    let (n, d) = (200, 8);
    let mut rng = Rng::new(21);
    let a = rng.normals_f32(n * d);
    let q = random_orthogonal(d, &mut rng).unwrap();
    let a64 = Matrix::new(n, d, a.iter().map(|&x| f64::from(x)).collect()).unwrap();
    let b = matmul(&a64, &q).unwrap();
    let write = |name: &str, rows: &mut dyn Iterator<Item = Vec<f64>>, reverse: bool| {
        let mut lines: Vec<String> = rows
            .enumerate()
            .map(|(i, r)| {
                let vals: Vec<String> = r.iter().map(|v| format!("{v:.9}")).collect();
                format!("s{i},{}", vals.join(","))
            })
            .collect();
        if reverse {
            lines.reverse(); // B lists the samples in another order: matched by id
        }
        let header: Vec<String> = (0..d).map(|j| format!("f{j}")).collect();
        let text = format!("id,{}\n{}\n", header.join(","), lines.join("\n"));
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let pa = write(
        "a.csv",
        &mut a.chunks(d).map(|r| r.iter().map(|&x| f64::from(x)).collect()),
        false,
    );
    let pb = write("b.csv", &mut b.data().chunks(d).map(<[f64]>::to_vec), true);
    let out = Command::new(env!("CARGO_BIN_EXE_latent-workbench"))
        .args([
            "relrep",
            pa.to_str().unwrap(),
            pb.to_str().unwrap(),
            "--anchors",
            "32",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["samples"], 200);
    assert!(v["relative"]["cosine"].as_f64().unwrap() > 0.99999);
    assert!(v["absolute"]["cosine"].as_f64().unwrap().abs() < 0.2);
    assert!(v["procrustes"]["residual"].as_f64().unwrap() < 1e-4);
    assert_eq!(v["anchor_ids"].as_array().unwrap().len(), 32);

    let bad = Command::new(env!("CARGO_BIN_EXE_latent-workbench"))
        .args(["relrep", pa.to_str().unwrap(), "missing.npy", "--anchors", "4"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("missing.npy"));
}

/// Two noisy linear views of the same 6 factors (widths 24 and 40), classes from the factors: a
/// head fitted on B's relative representations classifies A's nearly as well as B's own.
#[test]
fn stitching_across_widths_through_anchors() {
    let (n, k) = (1000, 6);
    let mut rng = Rng::new(17);
    let z = rng.normals_f32(n * k);
    let embed = |width: usize, rng: &mut Rng| {
        let w = rng.normals_f32(k * width);
        (0..n)
            .flat_map(|i| {
                let z = &z;
                let w = &w;
                (0..width).map(move |j| (0..k).map(|f| z[i * k + f] * w[f * width + j]).sum::<f32>())
            })
            .map(|v| v + 0.05 * rng.normal() as f32)
            .collect::<Vec<f32>>()
    };
    let a = embed(24, &mut rng);
    let b = embed(40, &mut rng);
    let class = LabelColumn {
        name: "class".into(),
        values: z
            .chunks(k)
            .map(|f| if f[0] + f[1] > 0.0 { "pos" } else { "neg" }.to_string())
            .collect(),
    };
    let mut sa = LatentCollection::new("a", n, 24, a, None).unwrap();
    let mut sb = LatentCollection::new("b", n, 40, b, None).unwrap();
    sa.set_column(class.clone()).unwrap();
    sb.set_column(class).unwrap();
    let opts = StitchOptions {
        anchors: 100,
        label_column: "class".into(),
        relative: RelativeOptions {
            center: true,
            ..Default::default()
        },
        ..StitchOptions::default()
    };
    let setup = prepare(&sa, &sb, &opts).unwrap();
    let c = stitch_classifier(&sa, &sb, &setup, &opts).unwrap();
    assert!(c.absolute_stitched.is_none(), "{c:?}");
    assert!(c.absolute_unstitched > 0.95 && c.relative_unstitched > 0.9, "{c:?}");
    assert!(c.relative_stitched > 0.85, "{c:?}");
    assert!(c.relative_stitched > c.chance + 0.3, "{c:?}");
}

/// Trains a tiny sprite model for a few steps (the `train` code path, minus the CLI) and writes
/// the folder `train` would: `model.toml` and `model.safetensors`.
fn tiny_model(root: &Path, name: &str, seed: u64) -> PathBuf {
    let config = SpriteAeConfig {
        width: 4,
        latent_dim: 8,
        classes: 3,
    };
    let settings = TrainSettings {
        batch: 16,
        ..TrainSettings::new(4, seed)
    };
    let trained = sprite_ae::train(config, settings, &JobContext::detached(), None, None).unwrap();
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let weights = encode_tensors(&trained.params.tensors(), &Default::default()).unwrap();
    std::fs::write(dir.join("model.safetensors"), weights).unwrap();
    let manifest = Manifest {
        name: name.into(),
        family: "relreps".into(),
        description: String::new(),
        weights: "model.safetensors".into(),
        sha256: String::new(),
        licence: String::new(),
        citation: String::new(),
        demo: true,
        config: config.to_toml(),
        preprocessing: Default::default(),
        latent: Default::default(),
    };
    std::fs::write(dir.join(MANIFEST_FILE), toml::to_string_pretty(&manifest).unwrap()).unwrap();
    dir
}

/// The demo on model folders, in-process and through `relrep A B --json`: encodes, compares and
/// stitches without error and returns consistent, labelled spaces. (Tiny models learn nothing
/// in 4 steps, so only the plumbing and the self-consistent numbers are checked here.)
#[test]
fn relrep_on_model_folders_runs_the_sprite_demo() {
    let root = tempfile::tempdir().unwrap();
    let da = tiny_model(root.path(), "tiny-a", 1);
    let db = tiny_model(root.path(), "tiny-b", 2);
    let pair = sprite_pair(&da, &db, 120, 99, &candle_core::Device::Cpu).unwrap();
    assert_eq!((pair.a.len(), pair.a.dim(), pair.b.dim()), (120, 8, 8));
    assert_eq!(pair.a.ids(), pair.b.ids());
    assert_eq!(
        pair.factors[7],
        latent_workbench::methods::demo_data::sprites::Factors::sample(99, 7)
    );
    assert_eq!(pair.a.column("shape").unwrap().values[7], pair.factors[7].shape.name());
    assert_eq!(pair.thumbnail(0).unwrap().len(), 64 * 64 * 3);
    let opts = StitchOptions {
        anchors: 20,
        shown: 2,
        ..StitchOptions::default()
    };
    let r = stitch(&pair, &opts).unwrap();
    assert_eq!((r.train, r.test), (60, 60));
    assert_eq!(r.anchor_ids.len(), 20);
    assert_eq!(r.decoder.samples.len(), 2);
    assert_eq!(r.decoder.samples[0].original.len(), demo::IMAGE_FLOATS);
    // A model stitched onto itself: the relative route matches the unstitched one exactly.
    let same = sprite_pair(&da, &da, 120, 99, &candle_core::Device::Cpu).unwrap();
    let s = stitch(&same, &opts).unwrap();
    assert!((s.classifier.relative_stitched - s.classifier.relative_unstitched).abs() < 1e-12);
    assert!((s.decoder.relative_stitched_mse - s.decoder.relative_unstitched_mse).abs() < 1e-9);
    assert!((s.decoder.absolute_stitched_mse.unwrap() - s.decoder.unstitched_mse).abs() < 1e-9);

    let out = Command::new(env!("CARGO_BIN_EXE_latent-workbench"))
        .args(["relrep", da.to_str().unwrap(), db.to_str().unwrap()])
        .args(["--anchors", "20", "--samples", "120", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["model_a"], "tiny-a");
    assert_eq!(v["comparison"]["samples"], 120);
    assert!(v["comparison"]["relative"]["jaccard"].as_f64().is_some());
    assert!(v["stitching"]["classifier"]["relative_stitched"].as_f64().is_some());
    assert!(v["stitching"]["decoder"]["relative_stitched_mse"].as_f64().unwrap() > 0.0);

    // One folder and one file is refused, naming both.
    let bad = Command::new(env!("CARGO_BIN_EXE_latent-workbench"))
        .args(["relrep", da.to_str().unwrap(), "x.npy"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("model folders"));
}
