//! The tiny LDAE shared by `tests/ldae_pipeline.rs` and `tests/ldae_probe.rs` (included there with
//! `#[path]`, since each test file is its own crate).
//!
//! The autoencoder is `tests/fixtures/ldae/autoencoder_plain.pth` (a real `torch.save` of
//! MONAI-generative's AutoencoderKL, channels 4/8); the semantic encoder (ConvNeXt 8/16, y_sem of 16)
//! and the ShiftUNet (base 32, one level) get seeded random weights under their official key names
//! (found with `expected_by`), the encoder file with the duplicate `slice_distributed.module.*` copy the
//! official `encoder.pth` carries; the statistics are bare-tensor `.pt` files as LDAE ships them
//! (`make_ldae_pipeline.py`). Volumes are 16³ at 3 mm; latents 3×8³.
#![allow(dead_code)] // each including test uses part of it

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use latent_workbench::core::diffusion::Rng;
use latent_workbench::core::manifest::{Manifest, sha256_file};
use latent_workbench::core::volume::Volume;
use latent_workbench::core::weights::{LoadOptions, expected_by, load_checkpoint};
use latent_workbench::methods::ldae::config::{AutoencoderKlConfig, NumResBlocks};
use latent_workbench::methods::ldae::model::{LdaeConfig, LdaeFiles};
use latent_workbench::methods::ldae::preprocess;
use latent_workbench::methods::ldae::semantic_encoder::{
    BackboneArgs, ConvNextShape, SemanticEncoder, SemanticEncoderConfig, positional_encoding,
};
use latent_workbench::methods::ldae::unet::ShiftUNet;
use latent_workbench::methods::ldae::unet_config::UNetConfig;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ldae")
}

pub fn tiny_config() -> LdaeConfig {
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
        x0_clip: 1.0,
    }
}

/// Seeded random tensors for every key a constructor asks for: N(0, 0.1²), LayerNorm/GroupNorm gains
/// around 1, the positional table as upstream builds it.
pub fn random_weights<M>(
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

pub struct TinyModel {
    /// Keeps the files alive for the test.
    pub _tmp: tempfile::TempDir,
    /// The official-layout files.
    pub files: LdaeFiles,
    /// The model folder (model.toml + model.safetensors).
    pub dir: PathBuf,
}

/// Writes the tiny model both as separate files in the official layout and as a model folder.
pub fn tiny_model() -> TinyModel {
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
    TinyModel { _tmp: tmp, files, dir }
}

/// A smooth 16³ "scan" in [0, 1] on the model grid, different per seed.
pub fn scan(seed: u64) -> Volume {
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
