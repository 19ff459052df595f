//! Parity of `methods::ldae::autoencoder::AutoencoderKL` with monai-generative 0.2.3's
//! `AutoencoderKL`, loaded through `core::weights` from safetensors and from a real `torch.save`
//! pickle. Fixtures: `tests/fixtures/ldae/autoencoder_*`, written by
//! `tests/fixtures/make_ldae_autoencoder.py` (see tests/fixtures/README.md).

mod common;
use common::rel_err;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Module, Tensor};
use latent_workbench::core::diffusion::{NoiseSource, Rng};
use latent_workbench::core::weights::{
    Checkpoint, CheckpointFormat, LoadOptions, WeightsError, build_model, expected_by, load_checkpoint, var_builder,
};
use latent_workbench::methods::ldae::autoencoder::{
    AutoencoderError, AutoencoderKL, LatentPosterior, from_diffusion_space, to_diffusion_space,
};
use latent_workbench::methods::ldae::config::{AutoencoderKlConfig, LDAE_SCALE_FACTOR, NumResBlocks};

/// `max|ours − torch| / max(max|torch|, 1e-6)`, as tests/ops_parity.rs.
const MAX_REL_ERR: f32 = 1e-5;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ldae")
}

fn load(file: &str) -> Checkpoint {
    let path = dir().join(file);
    load_checkpoint(&path, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{e} (run tests/fixtures/make_ldae_autoencoder.py)"))
}

fn assert_close(what: &str, ours: &Tensor, torch: &Tensor) -> f32 {
    assert_eq!(ours.dims(), torch.dims(), "{what}: shape");
    let e = rel_err(ours, torch);
    assert!(e <= MAX_REL_ERR, "{what}: relative error {e:.3e} > {MAX_REL_ERR:e}");
    e
}

/// σ per latent channel: the clamped channels sit at e^10 and e^-15, so one relative error over
/// the whole tensor would only see the largest.
fn assert_close_per_channel(what: &str, ours: &Tensor, torch: &Tensor) -> f32 {
    assert_eq!(ours.dims(), torch.dims(), "{what}: shape");
    (0..torch.dim(1).unwrap())
        .map(|c| {
            let (o, t) = (ours.narrow(1, c, 1).unwrap(), torch.narrow(1, c, 1).unwrap());
            assert_close(&format!("{what} channel {c}"), &o, &t)
        })
        .fold(0.0, f32::max)
}

fn ints(c: &Checkpoint, k: &str) -> Vec<usize> {
    let t = &c.tensors[&format!("cfg.{k}")];
    t.to_vec1::<i64>().unwrap().into_iter().map(|v| v as usize).collect()
}

/// The constructor arguments the script stored as `cfg.*` tensors.
fn config_of(c: &Checkpoint) -> AutoencoderKlConfig {
    let one = |k: &str| ints(c, k)[0];
    let flag = |k: &str| one(k) != 0;
    let res = ints(c, "num_res_blocks");
    AutoencoderKlConfig {
        spatial_dims: one("spatial_dims"),
        in_channels: one("in_channels"),
        out_channels: one("out_channels"),
        num_res_blocks: if res.len() == 1 {
            NumResBlocks::Same(res[0])
        } else {
            NumResBlocks::PerLevel(res)
        },
        num_channels: ints(c, "num_channels"),
        attention_levels: ints(c, "attention_levels").into_iter().map(|v| v != 0).collect(),
        latent_channels: one("latent_channels"),
        norm_num_groups: one("norm_num_groups"),
        norm_eps: c.tensors["cfg.norm_eps"].to_vec1::<f64>().unwrap()[0],
        with_encoder_nonlocal_attn: flag("with_encoder_nonlocal_attn"),
        with_decoder_nonlocal_attn: flag("with_decoder_nonlocal_attn"),
        ..AutoencoderKlConfig::upstream_default()
    }
}

fn is_state_dict_key(k: &str) -> bool {
    !(k.starts_with("io.") || k.starts_with("cfg."))
}

/// Compares encode (μ, σ), encode_mean, decode and reconstruct with the fixture; returns the worst error.
fn check_outputs(case: &str, ae: &AutoencoderKL, fx: &Checkpoint) -> f32 {
    let t = |k: &str| &fx.tensors[&format!("io.{k}")];
    let post = ae.encode(t("x")).unwrap();
    let mut worst = assert_close(&format!("{case} mu"), &post.mu, t("z_mu"));
    worst = worst.max(assert_close_per_channel(
        &format!("{case} sigma"),
        &post.sigma,
        t("z_sigma"),
    ));
    let mean = ae.encode_mean(t("x")).unwrap();
    assert_eq!(rel_err(&mean, &post.mu), 0.0, "{case}: encode_mean is encode's mu");
    worst = worst.max(assert_close(
        &format!("{case} decode"),
        &ae.decode(t("z")).unwrap(),
        t("decoded"),
    ));
    worst.max(assert_close(
        &format!("{case} reconstruct"),
        &ae.reconstruct(t("x")).unwrap(),
        t("reconstruction"),
    ))
}

fn check_case(case: &str) {
    let fx = load(&format!("autoencoder_{case}.safetensors"));
    let cfg = config_of(&fx);
    // Every state-dict tensor is used, and nothing else is asked for.
    let (ae, report) = build_model(&fx, DType::F32, &Device::Cpu, false, |vb| AutoencoderKL::load(vb, &cfg))
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    let unused: Vec<&str> = report.unexpected.iter().map(|f| f.key.as_str()).collect();
    assert!(
        unused.iter().all(|k| !is_state_dict_key(k)),
        "{case}: unused {unused:?}"
    );
    let requested: BTreeSet<&str> = report.requested.iter().map(|r| r.key.as_str()).collect();
    let state_dict: BTreeSet<&str> = fx
        .tensors
        .keys()
        .map(String::as_str)
        .filter(|k| is_state_dict_key(k))
        .collect();
    assert_eq!(requested, state_dict, "{case}: requested keys");

    // The plain var_builder path loads the same model.
    let ae2 = AutoencoderKL::load(var_builder(fx.clone(), DType::F32, &Device::Cpu), &cfg).unwrap();
    let worst = check_outputs(case, &ae, &fx).max(check_outputs(case, &ae2, &fx));
    eprintln!("{case}: worst relative error {worst:.2e}");
}

#[test]
fn plain_matches_monai_generative() {
    let fx = load("autoencoder_plain.safetensors");
    let cfg = config_of(&fx);
    assert_eq!(cfg.num_res_blocks, NumResBlocks::PerLevel(vec![2, 1]));
    assert!(!cfg.with_encoder_nonlocal_attn && !cfg.with_decoder_nonlocal_attn);
    // The fixture exercises both clamps of log σ² (σ = e^10 and e^-15).
    let sigma = &fx.tensors["io.z_sigma"];
    let max = sigma
        .narrow(1, 0, 1)
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let min = sigma
        .narrow(1, 1, 1)
        .unwrap()
        .min_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!((max / 10f32.exp() - 1.0).abs() < 1e-6 && (min / (-15f32).exp() - 1.0).abs() < 1e-6);
    check_case("plain");
}

#[test]
fn nonlocal_attention_matches_monai_generative() {
    let fx = load("autoencoder_nonlocal.safetensors");
    let cfg = config_of(&fx);
    assert!(cfg.with_encoder_nonlocal_attn && cfg.with_decoder_nonlocal_attn && cfg.attention_levels[1]);
    // Attention at level 1 (encoder 4, decoder 5) and the non-local blocks (encoder 6, decoder 2).
    for block in [
        "encoder.blocks.4",
        "encoder.blocks.6",
        "decoder.blocks.2",
        "decoder.blocks.5",
    ] {
        assert!(
            fx.tensors.contains_key(&format!("{block}.to_q.weight")),
            "layout of the fixture: {block}"
        );
    }
    check_case("nonlocal");
}

#[test]
fn torch_pickle_loads_and_gives_the_same_model() {
    let fx = load("autoencoder_plain.safetensors");
    let cfg = config_of(&fx);
    let pth = dir().join("autoencoder_plain.pth");
    let ckpt = load_checkpoint(&pth, &LoadOptions::default()).unwrap();
    assert_eq!(ckpt.format, CheckpointFormat::TorchZip);
    // Strict: the pickle is exactly the state dict the model asks for.
    let (ae, report) =
        AutoencoderKL::from_checkpoint(&pth, &LoadOptions::default(), &cfg, DType::F32, &Device::Cpu).unwrap();
    assert!(report.unexpected.is_empty());
    check_outputs("plain.pth", &ae, &fx);
    // Bit-identical to the model loaded from safetensors.
    let from_st = AutoencoderKL::load(var_builder(fx.clone(), DType::F32, &Device::Cpu), &cfg).unwrap();
    let x = &fx.tensors["io.x"];
    assert_eq!(
        rel_err(&ae.reconstruct(x).unwrap(), &from_st.reconstruct(x).unwrap()),
        0.0
    );
}

#[test]
fn a_wrong_config_is_reported_with_the_keys() {
    let fx = load("autoencoder_plain.safetensors");
    let pth = dir().join("autoencoder_plain.pth");
    let mut cfg = config_of(&fx);
    cfg.with_decoder_nonlocal_attn = true;
    let err = AutoencoderKL::from_checkpoint(&pth, &LoadOptions::default(), &cfg, DType::F32, &Device::Cpu)
        .map(|_| ())
        .unwrap_err();
    let AutoencoderError::Weights(WeightsError::Mismatch(report)) = &err else {
        panic!("expected a key mismatch, got {err}")
    };
    assert!(
        report.missing.iter().any(|m| m.key == "decoder.blocks.2.to_q.weight"),
        "{err}"
    );
    assert!(err.to_string().contains("autoencoder_plain.pth"), "{err}");

    cfg = config_of(&fx);
    cfg.norm_num_groups = 3;
    let err = AutoencoderKL::from_checkpoint(&pth, &LoadOptions::default(), &cfg, DType::F32, &Device::Cpu)
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, AutoencoderError::Config(_)), "{err}");
    assert!(err.to_string().contains("norm_num_groups"), "{err}");
}

#[test]
fn bad_inputs_are_errors_and_decoding_can_stop() {
    let fx = load("autoencoder_plain.safetensors");
    let cfg = config_of(&fx);
    let ae = AutoencoderKL::load(var_builder(fx.clone(), DType::F32, &Device::Cpu), &cfg).unwrap();
    let x = &fx.tensors["io.x"];
    let z = &fx.tensors["io.z"];
    let two_channels = Tensor::cat(&[x, x], 1).unwrap();
    assert!(
        ae.encode(&two_channels)
            .unwrap_err()
            .to_string()
            .contains("(B, 1, D, H, W)")
    );
    assert!(ae.decode(x).unwrap_err().to_string().contains("(B, 3, D, H, W)"));
    assert!(ae.encode_mean(&x.squeeze(0).unwrap()).is_err());

    let total = ae.decoder().len();
    // Decoder levels reverse num_res_blocks (2, 1): conv, 1 res, up, 2 res, norm, conv.
    assert_eq!(total, 7);
    let mut seen = Vec::new();
    let err = ae
        .decode_with(z, &mut |done, n| {
            seen.push((done, n));
            if done == 3 {
                candle_core::bail!("cancelled")
            }
            Ok(())
        })
        .unwrap_err();
    assert!(err.to_string().contains("cancelled"));
    assert_eq!(seen, vec![(1, total), (2, total), (3, total)]);
}

#[test]
fn sampling_is_seeded_and_scaled_by_sigma() {
    let fx = load("autoencoder_plain.safetensors");
    let cfg = config_of(&fx);
    let ae = AutoencoderKL::load(var_builder(fx.clone(), DType::F32, &Device::Cpu), &cfg).unwrap();
    let x = &fx.tensors["io.x"];
    let post = ae.encode(x).unwrap();
    let a = ae.encode_sample(x, &mut Rng::new(7)).unwrap();
    let b = ae.sample(&post, &mut Rng::new(7)).unwrap();
    let c = ae.sample(&post, &mut Rng::new(8)).unwrap();
    assert_eq!(rel_err(&a, &b), 0.0, "same seed, same sample");
    assert!(rel_err(&c, &b) > 1e-3, "another seed, another sample");
    let eps = Rng::new(7).randn(post.mu.dims(), DType::F32, &Device::Cpu).unwrap();
    let expected = (&post.mu + (&eps * &post.sigma).unwrap()).unwrap();
    assert_close("mu + sigma * eps", &b, &expected);

    // A unit posterior gives standard normal samples around mu.
    let n = 3 * 16 * 20 * 16;
    let unit = LatentPosterior {
        mu: Tensor::full(2f32, (1, 3, 16, 20, 16), &Device::Cpu).unwrap(),
        sigma: Tensor::full(0.5f32, (1, 3, 16, 20, 16), &Device::Cpu).unwrap(),
    };
    let s = ae.sample(&unit, &mut Rng::new(1)).unwrap().flatten_all().unwrap();
    let s: Vec<f32> = s.to_vec1().unwrap();
    let mean = s.iter().sum::<f32>() / n as f32;
    let var = s.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
    assert!(
        (mean - 2.0).abs() < 0.02 && (var.sqrt() - 0.5).abs() < 0.02,
        "mean {mean} std {}",
        var.sqrt()
    );

    let scaled = to_diffusion_space(&post.mu).unwrap();
    assert_close("scale", &scaled, &(&post.mu * LDAE_SCALE_FACTOR).unwrap());
    assert_close("unscale", &from_diffusion_space(&scaled).unwrap(), &post.mu);
}

#[derive(serde::Deserialize)]
struct Keys {
    args: AutoencoderKlConfig,
    parameters: usize,
    keys: Vec<(String, Vec<usize>)>,
}

/// LDAE's full-size configuration asks for exactly the keys and shapes of upstream's state dict
/// (and so of the official `autoencoderkl.pth`), without loading 55 MB.
#[test]
fn ldae_config_has_the_official_keys() {
    let path: &Path = &dir().join("autoencoder_ldae_keys.json");
    let k: Keys = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // The upstream constructor arguments deserialise into our config unchanged.
    assert_eq!(k.args, AutoencoderKlConfig::ldae());
    let expected = expected_by(DType::F32, |vb| AutoencoderKL::load(vb, &AutoencoderKlConfig::ldae())).unwrap();
    let ours: BTreeMap<String, Vec<usize>> = expected.into_iter().map(|e| (e.key, e.shape)).collect();
    let torch: BTreeMap<String, Vec<usize>> = k.keys.into_iter().collect();
    assert_eq!(ours, torch);
    let params: usize = ours.values().map(|s| s.iter().product::<usize>()).sum();
    assert_eq!(params, k.parameters);

    // 128×160×128 → 16×20×16: the encoder and decoder have upstream's block counts.
    let cfg = AutoencoderKlConfig::ldae();
    assert_eq!(cfg.downsample_factor(), 8);
    let ae = AutoencoderKL::load(candle_nn::VarBuilder::zeros(DType::F32, &Device::Cpu), &cfg).unwrap();
    assert_eq!((ae.encoder().len(), ae.decoder().len()), (14, 14));
    // Shape flow on a small input (zero weights: only the shapes matter here).
    let x = Tensor::zeros((1, 1, 16, 24, 8), DType::F32, &Device::Cpu).unwrap();
    let z = ae.encode_mean(&x).unwrap();
    assert_eq!(z.dims(), &[1, 3, 2, 3, 1]);
    assert_eq!(ae.decoder().forward(&z).unwrap().dims(), &[1, 1, 16, 24, 8]);
}
