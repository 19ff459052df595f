//! The LDAE probe, manipulation and interpolation-evaluation commands end to end on a tiny random model
//! (the same tiny model as `tests/ldae_pipeline.rs`, written here again because test crates do not share
//! code): a labelled set of 16³ scans, `probe` fits and saves a logistic and a ridge probe, `manipulate`
//! edits a scan with the saved probe, `interpolate-eval` scores two cases of a tiny cohort folder.
//! The weights are random, so the tests check behaviour and consistency, not quality.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use latent_workbench::core::diffusion::Rng;
use latent_workbench::core::manifest::{Manifest, sha256_file};
use latent_workbench::core::volume::Volume;
use latent_workbench::core::weights::{LoadOptions, expected_by, load_checkpoint};
use latent_workbench::io::nifti::{self, WriteOptions};
use latent_workbench::methods::ldae::config::{AutoencoderKlConfig, NumResBlocks};
use latent_workbench::methods::ldae::model::{LdaeConfig, LdaeFiles};
use latent_workbench::methods::ldae::preprocess;
use latent_workbench::methods::ldae::probe::{LinearProbe, ProbeKind};
use latent_workbench::methods::ldae::semantic_encoder::{
    BackboneArgs, ConvNextShape, SemanticEncoder, SemanticEncoderConfig, positional_encoding,
};
use latent_workbench::methods::ldae::unet::ShiftUNet;
use latent_workbench::methods::ldae::unet_config::UNetConfig;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ldae")
}

fn tiny_config() -> LdaeConfig {
    LdaeConfig {
        // The `plain` case of make_ldae_autoencoder.py.
        aekl: AutoencoderKlConfig {
            num_res_blocks: NumResBlocks::PerLevel(vec![2, 1]),
            num_channels: vec![4, 8],
            attention_levels: vec![false, false],
            norm_num_groups: 2,
            ..AutoencoderKlConfig::ldae()
        },
        encoder: SemanticEncoderConfig {
            backbone_args: BackboneArgs {
                net_class_path: "torchvision.models.convnext_tiny".into(),
                weights: None,
                freeze_perc: 0.0,
                grayscale: true,
                convnext: Some(ConvNextShape {
                    dims: vec![8, 16],
                    depths: vec![1, 1],
                }),
            },
            emb_chans: 16,
            num_heads: 2,
            attn_dropout: 0.0,
            seq_len: 16,
        },
        unet: UNetConfig {
            base_channel: 32,
            channel_multiplier: vec![1],
            num_residual_blocks_of_a_block: 1,
            attention_resolutions: vec![],
            num_heads: 1,
            dropout: 0.0,
            ..UNetConfig::default()
        },
        timesteps: 1000,
        betas: "linear".into(),
        spacing_mm: 3.0,
        shape: [16, 16, 16],
    }
}

/// Seeded random tensors for every key a constructor asks for: N(0, 0.1²), LayerNorm/GroupNorm gains
/// around 1, the positional table as upstream builds it.
fn random_weights<M>(
    seed: u64,
    build: impl FnOnce(candle_nn::VarBuilder<'static>) -> candle_core::Result<M>,
) -> HashMap<String, Tensor> {
    let mut rng = Rng::new(seed);
    let mut out = HashMap::new();
    for e in expected_by(DType::F32, build).unwrap() {
        let n: usize = e.shape.iter().product();
        let t = if e.key.ends_with("positional_encoding.pe") {
            positional_encoding(e.shape[1], e.shape[2], &Device::Cpu).unwrap()
        } else {
            let gain = e.shape.len() == 1 && (e.key.contains("norm") || e.key.ends_with("gamma"));
            let v: Vec<f32> = rng
                .normals_f32(n)
                .into_iter()
                .map(|x| if gain { 1.0 + 0.1 * x } else { 0.1 * x })
                .collect();
            Tensor::from_vec(v, e.shape.as_slice(), &Device::Cpu).unwrap()
        };
        out.insert(e.key, t);
    }
    out
}

struct TinyModel {
    _tmp: tempfile::TempDir,
    /// The official-layout files (unused here; the commands take the folder).
    _files: LdaeFiles,
    dir: PathBuf,
}

/// Writes the tiny model both as separate files in the official layout and as a model folder.
fn tiny_model() -> TinyModel {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config();
    let enc_cfg = cfg.encoder.clone();
    let mut encoder = random_weights(11, |vb| SemanticEncoder::load(vb, &enc_cfg));
    // The official encoder.pth registers the backbone a second time (shared storage upstream).
    let dup: Vec<(String, Tensor)> = encoder
        .iter()
        .filter(|(k, _)| k.starts_with("backbone."))
        .map(|(k, t)| (format!("slice_distributed.module.{k}"), t.clone()))
        .collect();
    encoder.extend(dup);
    let unet_cfg = cfg.unet.clone();
    let decoder = random_weights(12, |vb| ShiftUNet::load(vb, &unet_cfg, 16));
    let enc_path = tmp.path().join("encoder.safetensors");
    let dec_path = tmp.path().join("decoder.safetensors");
    candle_core::safetensors::save(&encoder, &enc_path).unwrap();
    candle_core::safetensors::save(&decoder, &dec_path).unwrap();
    let files = LdaeFiles {
        autoencoderkl: fixtures().join("autoencoder_plain.pth"),
        encoder: enc_path,
        decoder: dec_path,
        semantic_mean: Some(fixtures().join("semantic_mean_tiny.pt")),
        semantic_std: Some(fixtures().join("semantic_std_tiny.pt")),
    };

    // The same tensors under the folder's prefixes, in one file.
    let mut all: HashMap<String, Tensor> = HashMap::new();
    let ae = load_checkpoint(&files.autoencoderkl, &LoadOptions::default()).unwrap();
    for (k, t) in ae.tensors {
        all.insert(format!("autoencoderkl.{k}"), t.to_dtype(DType::F32).unwrap());
    }
    for (k, t) in &encoder {
        all.insert(format!("encoder.{k}"), t.clone());
    }
    for (k, t) in &decoder {
        all.insert(format!("decoder.{k}"), t.clone());
    }
    for (key, path) in [
        ("semantic_mean", files.semantic_mean.as_ref().unwrap()),
        ("semantic_std", files.semantic_std.as_ref().unwrap()),
    ] {
        let c = load_checkpoint(path, &LoadOptions::default()).unwrap();
        all.insert(key.into(), c.tensors.values().next().unwrap().clone());
    }
    let dir = tmp.path().join("ldae-tiny");
    std::fs::create_dir_all(&dir).unwrap();
    let weights = dir.join("model.safetensors");
    candle_core::safetensors::save(&all, &weights).unwrap();
    let toml::Value::Table(mut config) = toml::Value::try_from(&cfg).unwrap() else {
        panic!("LdaeConfig is not a table")
    };
    // As the demo trainer writes it: the grid also under [preprocessing]; drop it from [config] to check
    // the fallback.
    config.remove("spacing_mm");
    let mut preprocessing = toml::Table::new();
    preprocessing.insert("spacing_mm".into(), toml::Value::Float(3.0));
    preprocessing.insert("shape".into(), toml::Value::try_from([16, 16, 16]).unwrap());
    preprocessing.insert("minmax".into(), true.into());
    let manifest = Manifest {
        name: "ldae-tiny".into(),
        family: "ldae".into(),
        description: "test model (random weights)".into(),
        weights: PathBuf::from("model.safetensors"),
        sha256: sha256_file(&weights).unwrap(),
        licence: String::new(),
        citation: String::new(),
        demo: true,
        config,
        preprocessing,
        latent: toml::Table::new(),
    };
    std::fs::write(dir.join("model.toml"), toml::to_string(&manifest).unwrap()).unwrap();
    TinyModel {
        _tmp: tmp,
        _files: files,
        dir,
    }
}

/// A smooth 16³ "scan" in [0, 1] on the model grid, different per seed.
fn scan(seed: u64) -> Volume {
    let mut rng = Rng::new(seed);
    let c: Vec<f64> = (0..6).map(|_| rng.uniform()).collect();
    let data: Vec<f32> = (0..16 * 16 * 16)
        .map(|i| {
            let (x, y, z) = ((i % 16) as f64, ((i / 16) % 16) as f64, (i / 256) as f64);
            let r = ((x - 7.5).powi(2) + (y - 7.5).powi(2) + (z - 7.5).powi(2)).sqrt();
            let v = (1.0 - r / (6.0 + 2.0 * c[0])).max(0.0) * (0.7 + 0.3 * (c[1] * x + c[2] * y - c[3] * z).sin());
            v as f32
        })
        .collect();
    preprocess::min_max(Volume::from_spacing([16; 3], [3.0; 3], data).unwrap())
}

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
        "--json",
    ]);
    assert!(ok, "{err}");
    let v = json(&out);
    assert_eq!(v["scans"], 15);
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
