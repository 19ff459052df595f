//! WaLa's VQ-VAE against the reference modules (`General_Encoder_Down_2`, `VectorQuantizer2`,
//! `General_Decoder_Up_2` of AutodeskAILab/WaLa) on a tiny configuration with random weights,
//! loaded from a checkpoint in the official layout (Lightning `state_dict`, keys
//! `autoencoder._orig_mod.*`, plus a wavelet-filter buffer that is not a weight). Fixtures made by
//! `tests/fixtures/make_wala_vqvae.py`.

mod common;

use std::path::PathBuf;

use candle_core::{DType, Device, Module, Tensor};
use common::rel_err;
use latent_workbench::methods::wala::vqvae::{VqVae, VqVaeConfig, VqVaeError};

/// The fixture's configuration (see the script's docstring).
fn tiny() -> VqVaeConfig {
    VqVaeConfig {
        in_channels: 8,
        e_dim: 4,
        n_e: 16,
        grid_size: 3,
        encoder_num_tran: 1,
        decoder_num_tran: 0,
        l2_normalize: false,
        hidden_channel: 32,
        num_heads: 2,
    }
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/wala")
        .join(name)
}

fn io() -> std::collections::HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture("vqvae_tiny_io.safetensors"), &Device::Cpu).unwrap()
}

fn model(cfg: &VqVaeConfig) -> VqVae {
    let (m, report) = VqVae::from_checkpoint(&fixture("vqvae_tiny.ckpt"), cfg, &Device::Cpu).unwrap();
    // The one tensor left over is the wavelet filter the checkpoint carries as a buffer.
    let unused: Vec<&str> = report.unexpected.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(unused, ["dwt_inverse_3d.g0_dep"]);
    m
}

const TOL: f32 = 1e-5;

fn indices(t: &Tensor) -> Vec<i64> {
    t.to_dtype(DType::I64).unwrap().to_vec1().unwrap()
}

#[test]
fn encoder_quantizer_and_decoder_match_the_reference() {
    let t = io();
    let m = model(&tiny());
    let h = m.encode(&t["x"]).unwrap();
    let e = rel_err(&h, &t["h"]);
    assert!(e < TOL, "pre-quant latent: relative error {e:.2e}");
    // Quantise the reference latent, so a near-tie cannot flip a code because of float noise upstream.
    let q = m.quantizer.quantize(&t["h"]).unwrap();
    assert_eq!(indices(&q.indices), indices(&t["idx"]));
    let e = rel_err(&q.latent, &t["q"]);
    assert!(e < 1e-6, "quantised latent: relative error {e:.2e}");
    let y = m.decoder.forward(&t["q"]).unwrap();
    let e = rel_err(&y, &t["y"]);
    assert!(e < TOL, "decoded tree: relative error {e:.2e}");
    // The inference path (quantise, then decode) from the reference latent.
    let y2 = m.decode_from_pre_quant(&t["h"]).unwrap();
    assert!(rel_err(&y2, &t["y"]) < TOL);
}

#[test]
fn l2_normalised_codebook_search_matches_the_reference() {
    let t = io();
    let cfg = VqVaeConfig {
        l2_normalize: true,
        ..tiny()
    };
    let m = model(&cfg);
    let q = m.quantizer.quantize(&t["h"]).unwrap();
    assert_eq!(indices(&q.indices), indices(&t["idx_l2"]));
    assert!(rel_err(&q.latent, &t["q_l2"]) < 1e-6);
    // Cosine search picks other codes than the Euclidean one here: the test can tell them apart.
    assert_ne!(indices(&t["idx_l2"]), indices(&t["idx"]));
}

#[test]
fn wrong_shapes_and_configs_are_clear_errors() {
    let m = model(&tiny());
    let bad = Tensor::zeros((1, 8, 12, 12, 12), DType::F32, &Device::Cpu).unwrap();
    let err = m.encode(&bad).unwrap_err().to_string();
    assert!(err.contains("(B, 8, 10, 10, 10)"), "{err}");
    let err = m
        .decode_from_pre_quant(&Tensor::zeros((1, 3, 3, 3, 3), DType::F32, &Device::Cpu).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("(B, 4, 3, 3, 3)"), "{err}");
    // A codebook of another size: the key, both shapes and the file are named.
    let cfg = VqVaeConfig { n_e: 32, ..tiny() };
    let err = VqVae::from_checkpoint(&fixture("vqvae_tiny.ckpt"), &cfg, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("quantize.embedding.weight") && err.contains("vqvae_tiny.ckpt"),
        "{err}"
    );
    // Upstream's decoder transformer is 128 wide whatever the hidden width.
    let cfg = VqVaeConfig {
        decoder_num_tran: 1,
        ..tiny()
    };
    assert!(matches!(
        VqVae::from_checkpoint(&fixture("vqvae_tiny.ckpt"), &cfg, &Device::Cpu),
        Err(VqVaeError::Config(_))
    ));
}

#[test]
fn config_comes_from_args_json() {
    let args = serde_json::json!({
        "e_dim": 4, "n_e": 1024, "grid_size": 12, "encoder_num_tran": 2, "decoder_num_tran": 2,
        "max_depth": 3, "max_training_level": 2, "normalize_latent": null, "wavelet": "bior6.8"
    });
    let cfg = VqVaeConfig::from_args_json(&args).unwrap();
    assert_eq!(
        (cfg.in_channels, cfg.input_side(), cfg.hidden_channel, cfg.num_heads),
        (64, 46, 128, 4)
    );
    assert!(!cfg.l2_normalize);
    let mut args = args;
    args["max_training_level"] = 3.into();
    args["normalize_latent"] = "l2_norm".into();
    let cfg = VqVaeConfig::from_args_json(&args).unwrap();
    assert_eq!(cfg.in_channels, 512);
    assert!(cfg.l2_normalize);
    args.as_object_mut().unwrap().remove("n_e");
    let err = VqVaeConfig::from_args_json(&args).unwrap_err().to_string();
    assert!(err.contains("`n_e`"), "{err}");
}
