//! Motion2VecSets' networks against the reference modules (`KLAutoEncoder`,
//! `KLAutoEncoder_deform`, `EDMPrecond` with `LatentArrayTransformer`, `Scan2latent`,
//! `Scan2latent_deform_timeatt` and `edm_sampler` of VVeiCao/Motion2VecSets) on tiny configurations
//! with random weights, loaded from checkpoints in the official `torch.save({'model': ...})`
//! layout (float16 weights, float32 `point_embed.basis`). Fixtures made by
//! `tests/fixtures/make_m2vs_parity.py`.
//!
//! Tolerance: the reference ran in f32 on the same f16-rounded weights, so the only differences
//! are f32 rounding in another operation order; every output is held to 1e-5 relative
//! (max |ours − torch| / max |torch|), a few times above that noise (measured values are printed
//! with `--nocapture` and recorded in `src/methods/motion2vecsets/PARITY.md`).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, IndexOp, Tensor};
use common::rel_err;
use latent_workbench::core::diffusion::EdmConfig;
use latent_workbench::methods::motion2vecsets::{
    AutoEncoderConfig, DenoiserConfig, GridOptions, KlAutoEncoder, LatentDenoiser, M2vsError, Observation,
    farthest_point_sample, load_autoencoder, load_denoiser,
};

const TOL: f32 = 1e-5;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/m2vs")
        .join(name)
}

fn io() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture("io.safetensors"), &Device::Cpu).unwrap()
}

fn get<'a>(io: &'a HashMap<String, Tensor>, name: &str) -> &'a Tensor {
    io.get(name).unwrap_or_else(|| panic!("fixture tensor {name} missing"))
}

fn check(name: &str, ours: &Tensor, reference: &Tensor) {
    let e = rel_err(&ours.to_dtype(DType::F32).unwrap(), reference);
    eprintln!("{name}: relative error {e:.2e}");
    assert!(e <= TOL, "{name}: relative error {e:.2e} > {TOL:.0e}");
}

fn shape_ae(file: &str) -> KlAutoEncoder {
    let (m, report) = load_autoencoder(&fixture(file), &AutoEncoderConfig::tiny_shape(), &Device::Cpu).unwrap();
    assert!(report.unexpected.is_empty());
    m
}

fn denoiser(file: &str, cfg: &DenoiserConfig) -> LatentDenoiser {
    load_denoiser(&fixture(file), cfg, &Device::Cpu).unwrap().0
}

fn sigmas(io: &HashMap<String, Tensor>) -> Vec<f64> {
    get(io, "sigmas").to_vec1::<f64>().unwrap()
}

/// The sampler the fixture ran: `edm_sampler(num_steps=3)`, otherwise the defaults.
fn three_steps() -> EdmConfig {
    EdmConfig {
        num_steps: 3,
        ..EdmConfig::default()
    }
}

#[test]
fn our_fps_picks_the_fixture_indices() {
    let io = io();
    for (pts, idx) in [("ae_points", "ae_fps_idx"), ("de_src", "de_fps_idx")] {
        let p = get(&io, pts);
        let want = get(&io, idx).to_dtype(DType::U32).unwrap().to_vec2::<u32>().unwrap();
        assert_eq!(want.len(), p.dim(0).unwrap());
        for (b, want) in want.iter().enumerate() {
            let cloud: Vec<[f32; 3]> = p
                .i(b)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap()
                .into_iter()
                .map(|r| [r[0], r[1], r[2]])
                .collect();
            let got: Vec<u32> = farthest_point_sample(&cloud, 16, 0)
                .into_iter()
                .map(|i| i as u32)
                .collect();
            assert_eq!(&got, want, "{pts}[{b}]");
        }
    }
}

#[test]
fn shape_autoencoder_matches_the_reference() {
    let io = io();
    let ae = shape_ae("shape_ae.pth");
    let pts = get(&io, "ae_points");
    // Our FPS (start at point 0) equals the fixture's, so no indices are passed.
    let post = ae.encode(pts, None).unwrap();
    check("shape encoder mean", &post.mean, get(&io, "ae_mean"));
    check("shape encoder logvar", &post.logvar, get(&io, "ae_logvar"));
    let z = post.sample_with(get(&io, "ae_noise")).unwrap();
    check("shape posterior sample", &z, get(&io, "ae_sample"));
    let z = get(&io, "ae_sample");
    let q = get(&io, "ae_queries");
    let logits = ae.decode(z, q).unwrap().squeeze(2).unwrap();
    check("shape decoder logits", &logits, get(&io, "ae_logits"));
    // The cached trunk gives the same numbers, bit for bit.
    let prepared = ae.prepare(z).unwrap();
    let cached = ae.query(&prepared, q).unwrap().squeeze(2).unwrap();
    let diff = (&cached - &logits.to_dtype(DType::F32).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(diff, 0.0, "cached and uncached decoding differ");
}

#[test]
fn occupancy_grid_matches_the_reference_with_and_without_the_cache() {
    let io = io();
    let ae = shape_ae("shape_ae.pth");
    let z = get(&io, "ae_sample").i(..1).unwrap();
    let reference = get(&io, "grid_logits");
    let mut opts = GridOptions {
        points_per_axis: 5,
        batch: 17,
        recompute_trunk: false,
    };
    let cached = ae.occupancy_grid(&z, &opts).unwrap();
    opts.recompute_trunk = true;
    let recomputed = ae.occupancy_grid(&z, &opts).unwrap();
    assert_eq!(cached, recomputed, "the cache changed the grid");
    let n = cached.len();
    check(
        "occupancy grid 5³",
        &Tensor::from_vec(cached, n, &Device::Cpu).unwrap(),
        reference,
    );
}

#[test]
fn safetensors_with_the_official_keys_load_the_same_model() {
    let io = io();
    let a = shape_ae("shape_ae.pth");
    let b = shape_ae("shape_ae.safetensors");
    let z = get(&io, "ae_sample");
    let q = get(&io, "ae_queries");
    let (la, lb) = (a.decode(z, q).unwrap(), b.decode(z, q).unwrap());
    assert_eq!(rel_err(&la, &lb), 0.0);
}

#[test]
fn deformation_autoencoder_matches_the_reference() {
    let io = io();
    let (dae, report) = load_autoencoder(
        &fixture("deform_ae.pth"),
        &AutoEncoderConfig::tiny_deform(),
        &Device::Cpu,
    )
    .unwrap();
    assert!(report.unexpected.is_empty());
    let post = dae.encode_pairs(get(&io, "de_src"), get(&io, "de_tgt"), None).unwrap();
    check("deformation encoder mean", &post.mean, get(&io, "de_mean"));
    check("deformation encoder logvar", &post.logvar, get(&io, "de_logvar"));
    let pos = dae.decode(get(&io, "de_mean"), get(&io, "de_queries")).unwrap();
    check("deformation decoder positions", &pos, get(&io, "de_positions"));
    // Given FPS indices are used as they are (here the same ones).
    let idx = get(&io, "de_fps_idx");
    let again = dae
        .encode_pairs(get(&io, "de_src"), get(&io, "de_tgt"), Some(idx))
        .unwrap();
    check(
        "deformation encoder mean, given indices",
        &again.mean,
        get(&io, "de_mean"),
    );
}

#[test]
fn shape_denoiser_and_sampler_match_the_reference() {
    let io = io();
    let net = denoiser("shape_diff.pth", &DenoiserConfig::tiny_shape());
    let cond = net.condition_shape(get(&io, "sd_cond")).unwrap();
    check("shape condition tokens", &cond.obs, get(&io, "sd_tokens"));
    for (k, s) in sigmas(&io).into_iter().enumerate() {
        let d = net.denoise(get(&io, &format!("sd_input_{k}")), s, &cond).unwrap();
        check(
            &format!("shape denoiser σ = {s}"),
            &d,
            get(&io, &format!("sd_denoised_{k}")),
        );
    }
    let sample = net
        .sample_from_noise(get(&io, "sd_noise"), &cond, &three_steps(), &mut |_, _| Ok(()), None)
        .unwrap();
    check("shape Heun sampling, 3 steps", &sample, get(&io, "sd_sample"));
}

fn deform_case(file: &str, observation: Observation, tag: &str) {
    let io = io();
    let net = denoiser(file, &DenoiserConfig::tiny_deform(observation));
    let cond = net
        .condition_deform(get(&io, "dd_shape"), get(&io, "dd_src"), get(&io, "dd_tgt"))
        .unwrap();
    match observation {
        Observation::Paired => check("paired observation tokens", &cond.obs, get(&io, "dp_tokens")),
        Observation::Separate => {
            check("frame-1 observation tokens", &cond.obs, get(&io, "ds_tokens_src"));
            check(
                "frame-t observation tokens",
                cond.obs_tgt.as_ref().unwrap(),
                get(&io, "ds_tokens_tgt"),
            );
        }
    }
    for (k, s) in sigmas(&io).into_iter().enumerate() {
        let d = net.denoise(get(&io, &format!("dd_input_{k}")), s, &cond).unwrap();
        check(
            &format!("deformation denoiser ({tag}) σ = {s}"),
            &d,
            get(&io, &format!("{tag}_denoised_{k}")),
        );
    }
    let sample = net
        .sample_from_noise(get(&io, "dd_noise"), &cond, &three_steps(), &mut |_, _| Ok(()), None)
        .unwrap();
    check(
        &format!("deformation Heun sampling ({tag}), 3 steps"),
        &sample,
        get(&io, &format!("{tag}_sample")),
    );
}

#[test]
fn sparse_deformation_denoiser_matches_the_reference() {
    deform_case("deform_diff_sparse.pth", Observation::Paired, "dp");
}

#[test]
fn partial_deformation_denoiser_matches_the_reference() {
    deform_case("deform_diff_partial.pth", Observation::Separate, "ds");
}

#[test]
fn seeded_sampling_is_one_call_and_reproducible() {
    let io = io();
    let net = denoiser(
        "deform_diff_sparse.pth",
        &DenoiserConfig::tiny_deform(Observation::Paired),
    );
    let cond = net
        .condition_deform(get(&io, "dd_shape"), get(&io, "dd_src"), get(&io, "dd_tgt"))
        .unwrap();
    let a = net
        .sample(&cond, Some(3), 7, &three_steps(), &mut |_, _| Ok(()))
        .unwrap();
    let b = net
        .sample(&cond, Some(3), 7, &three_steps(), &mut |_, _| Ok(()))
        .unwrap();
    let c = net
        .sample(&cond, Some(3), 8, &three_steps(), &mut |_, _| Ok(()))
        .unwrap();
    assert_eq!(a.dims(), &[1, 3, 16, 8]);
    assert_eq!(rel_err(&a, &b), 0.0);
    assert!(rel_err(&a, &c) > 1e-3, "another seed gave the same sample");
}

#[test]
fn a_wrong_config_names_the_missing_keys() {
    // The partial (two observation attentions) config against the sparse checkpoint: attn6 and
    // norm6 of every block are missing, and the pair encoder's weights are the wrong width.
    let err = load_denoiser(
        &fixture("deform_diff_sparse.pth"),
        &DenoiserConfig::tiny_deform(Observation::Separate),
        &Device::Cpu,
    )
    .expect_err("a wrong config must not load");
    let msg = err.to_string();
    assert!(matches!(err, M2vsError::Weights(_)), "{msg}");
    for key in [
        "model.transformer_blocks.0.attn6.to_q.weight",
        "model.transformer_blocks.1.norm6.linear.weight",
    ] {
        assert!(msg.contains(key), "message does not name {key}: {msg}");
    }
    assert!(
        msg.contains("deform_diff_sparse.pth"),
        "message does not name the file: {msg}"
    );

    // A shape checkpoint read as a deformation autoencoder: different widths, named too.
    let err = load_autoencoder(
        &fixture("shape_ae.pth"),
        &AutoEncoderConfig::tiny_deform(),
        &Device::Cpu,
    )
    .expect_err("a shape checkpoint is not a deformation autoencoder");
    let msg = err.to_string();
    assert!(msg.contains("point_embed.mlp.weight"), "{msg}");
}

/// Every key and shape the model asks for, against the reference's `state_dict()` of the same
/// configuration (`layouts.json`).
fn assert_layout(name: &str, asked: Vec<latent_workbench::core::weights::Expected>) {
    let layouts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("layouts.json")).unwrap()).unwrap();
    let want: std::collections::BTreeMap<String, Vec<usize>> =
        serde_json::from_value(layouts[name].clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let got: std::collections::BTreeMap<String, Vec<usize>> = asked.into_iter().map(|e| (e.key, e.shape)).collect();
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{name}: not asked for {missing:?}; not in the reference {extra:?}"
    );
    for (k, shape) in &want {
        assert_eq!(&got[k], shape, "{name}: {k}");
    }
    eprintln!("{name}: {} keys as the reference", want.len());
}

#[test]
fn released_configs_ask_for_exactly_the_reference_keys() {
    use latent_workbench::core::weights::expected_by;
    for (name, cfg) in [
        ("kl_d512_m512_l8", AutoEncoderConfig::kl_d512_m512_l8()),
        ("de_kl_d512_m512_l32", AutoEncoderConfig::de_kl_d512_m512_l32()),
    ] {
        assert_layout(
            name,
            expected_by(DType::F32, |vb| KlAutoEncoder::load(vb, &cfg)).unwrap(),
        );
    }
    for (name, cfg) in [
        ("kl_d512_m512_l8_surf512_edm", DenoiserConfig::shape_surf(512)),
        (
            "de_kl_d512_m512_l32_surf512_edm_sparse",
            DenoiserConfig::deform_surf(512, true, true),
        ),
        (
            "de_kl_d512_m512_l32_surf300_edm_partial",
            DenoiserConfig::deform_surf(300, true, false),
        ),
    ] {
        assert_layout(
            name,
            expected_by(DType::F32, |vb| LatentDenoiser::load(vb, &cfg)).unwrap(),
        );
    }
}
