//! Parity of `latent_workbench::core::ops` with PyTorch: forward values and autograd gradients.
//!
//! The fixtures in `tests/fixtures/ops/` are written by `tests/fixtures/make_ops.py` (PyTorch
//! 2.15 CPU, monai-generative 0.2.3; see tests/fixtures/README.md). Each holds the inputs,
//! parameters under torch's key names, the output `out`, random loss weights `r` and the
//! gradients `grad.<name>` of `sum(out * r)`; settings are the `cfg.*` tensors.

mod common;
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{Module, VarBuilder};
use common::rel_err;
use latent_workbench::core::ops::{
    AttentionBlock, Conv3dConfig, Conv3dImpl, ConvTranspose3dConfig, Downsample, MultiHeadAttention, PointEmbed,
    ResBlock, Upsample, conv_transpose3d_with, conv3d_cpu_kernel, conv3d_with, fourier_embed, group_norm, pad3d,
    scaled_dot_product_attention, upsample_nearest3d, upsample_trilinear3d,
};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

/// Acceptance tolerance of the ops against PyTorch, in f32 on the CPU: the relative error
/// `max|ours - torch| / max(max|torch|, 1e-6)` of every output and gradient must not exceed it.
/// (1e-5 is ~100 f32 ulps of the largest value: room for a different summation order, not for
/// a wrong index or weight.)
const MAX_REL_ERR: f32 = 1e-5;

/// Gradients that are exactly zero in exact arithmetic, so that torch's value and ours are
/// both rounding noise: a bias on the keys adds `q·b` to every score of a query's row, which
/// the softmax cancels. They are checked to be negligible instead of compared.
const ANALYTICALLY_ZERO_GRADS: &[&str] = &["to_k.bias"];

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ops")
}

struct Fixture {
    name: String,
    t: HashMap<String, Tensor>,
}

impl Fixture {
    fn load(name: &str) -> Self {
        let path = fixture_dir().join(format!("{name}.safetensors"));
        let t = candle_core::safetensors::load(&path, &Device::Cpu)
            .unwrap_or_else(|e| panic!("{}: {e} (run tests/fixtures/make_ops.py)", path.display()));
        Self {
            name: name.to_string(),
            t,
        }
    }

    fn get(&self, k: &str) -> &Tensor {
        self.t.get(k).unwrap_or_else(|| panic!("{}: no tensor {k}", self.name))
    }

    fn has(&self, k: &str) -> bool {
        self.t.contains_key(k)
    }

    fn ints(&self, k: &str) -> Vec<usize> {
        self.get(&format!("cfg.{k}"))
            .to_vec1::<i64>()
            .unwrap()
            .into_iter()
            .map(|v| v as usize)
            .collect()
    }

    fn int(&self, k: &str) -> usize {
        self.ints(k)[0]
    }

    fn int3(&self, k: &str) -> [usize; 3] {
        let v = self.ints(k);
        [v[0], v[1], v[2]]
    }

    fn float(&self, k: &str) -> f64 {
        self.get(&format!("cfg.{k}")).to_vec1::<f64>().unwrap()[0]
    }

    /// A 0/1 float mask stored by the script, as candle's boolean (u8).
    fn mask_u8(&self, k: &str) -> Tensor {
        self.get(k).to_dtype(DType::U8).unwrap()
    }
}

fn assert_close(what: &str, ours: &Tensor, torch: &Tensor) -> f32 {
    assert_eq!(ours.dims(), torch.dims(), "{what}: shape");
    let e = rel_err(ours, torch);
    assert!(e <= MAX_REL_ERR, "{what}: relative error {e:.3e} > {MAX_REL_ERR:e}");
    e
}

/// Builds Vars for `names` (inputs and parameters) from the fixture, runs `f`, and compares the
/// output with `out` and the gradients of `sum(out * r)` with `grad.<name>`. Names without a
/// torch gradient (unused parameters) must get none here either. Returns the worst error.
fn check(fx: &Fixture, label: &str, names: &[&str], f: impl Fn(&HashMap<String, Tensor>) -> Result<Tensor>) -> f32 {
    let vars: HashMap<String, Var> = names
        .iter()
        .map(|n| (n.to_string(), Var::from_tensor(fx.get(n)).unwrap()))
        .collect();
    let ts: HashMap<String, Tensor> = vars.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
    let out = f(&ts).unwrap_or_else(|e| panic!("{} {label}: {e}", fx.name));
    let mut worst = assert_close(&format!("{} {label} out", fx.name), &out, fx.get("out"));
    let grads = (out * fx.get("r")).unwrap().sum_all().unwrap().backward().unwrap();
    let max_abs = |t: &Tensor| t.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    // Scale of this fixture's gradients, for the ones that are zero in exact arithmetic.
    let grad_scale = names
        .iter()
        .filter_map(|n| fx.t.get(&format!("grad.{n}")))
        .map(max_abs)
        .fold(0f32, f32::max);
    for n in names {
        let g = grads.get(vars[*n].as_tensor());
        let key = format!("grad.{n}");
        if ANALYTICALLY_ZERO_GRADS.contains(n) && fx.has(&key) {
            // Both sides are rounding noise; a relative comparison of noise is meaningless.
            let ours = g.map_or(0.0, max_abs);
            let torch = max_abs(fx.get(&key));
            assert!(
                ours <= MAX_REL_ERR * grad_scale && torch <= MAX_REL_ERR * grad_scale,
                "{} {label}: gradient of {n} should vanish: ours {ours:e}, torch {torch:e}, scale {grad_scale:e}",
                fx.name
            );
        } else if fx.has(&key) {
            let g = g.unwrap_or_else(|| panic!("{} {label}: no gradient for {n}", fx.name));
            worst = worst.max(assert_close(&format!("{} {label} grad {n}", fx.name), g, fx.get(&key)));
        } else if let Some(g) = g {
            let m = g.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert_eq!(m, 0.0, "{} {label}: torch has no gradient for {n} but we do", fx.name);
        }
    }
    worst
}

/// A VarBuilder over the given (Var-backed) tensors, for module loaders.
fn vb(ts: &HashMap<String, Tensor>) -> VarBuilder<'static> {
    VarBuilder::from_tensors(ts.clone(), DType::F32, &Device::Cpu)
}

/// Every implementation of conv3d available here.
fn conv_impls() -> Vec<Conv3dImpl> {
    let mut v = vec![Conv3dImpl::Auto, Conv3dImpl::CpuIm2col, Conv3dImpl::Composite];
    if conv3d_cpu_kernel().is_some() {
        v.push(Conv3dImpl::CpuDirect);
    }
    v
}

const CONV3D: &[&str] = &[
    "conv3d_basic",
    "conv3d_stride2",
    "conv3d_pad_asym",
    "conv3d_downsample",
    "conv3d_dilation2",
    "conv3d_groups2",
    "conv3d_mixed",
    "conv3d_1x1",
    "conv3d_wide",
];
const CONVT: &[&str] = &["convt_s2p1op1", "convt_groups", "convt_plain"];
const GROUP_NORM: &[&str] = &["group_norm_5d", "group_norm_3d"];
const UPSAMPLE: &[&str] = &[
    "nearest_x2",
    "nearest_odd",
    "trilinear_ac_true",
    "trilinear_ac_false",
    "trilinear_ac_false_up",
];
const SDPA: &[&str] = &["sdpa_bool_mask", "sdpa_float_mask"];
const MHA: &[&str] = &["mha_nomask", "mha_bool_masks", "mha_float_mask", "mha_kvdim"];
const FOURIER: &[&str] = &["fourier_f8", "point_embed"];
const BLOCKS: &[&str] = &[
    "block_resblock_8_16",
    "block_resblock_8_8",
    "block_downsample_8",
    "block_upsample_8",
    "block_upsample_convt_8",
    "block_attention_8",
];

#[test]
fn conv3d_matches_torch() {
    for name in CONV3D {
        let fx = Fixture::load(name);
        let cfg = Conv3dConfig {
            stride: fx.int3("stride"),
            padding: fx.int3("padding"),
            dilation: fx.int3("dilation"),
            groups: fx.int("groups"),
        };
        let pads = fx.has("cfg.pads").then(|| {
            let p = fx.ints("pads");
            [[p[0], p[1]], [p[2], p[3]], [p[4], p[5]]]
        });
        let mut names = vec!["x", "weight"];
        if fx.has("bias") {
            names.push("bias");
        }
        for imp in conv_impls() {
            let e = check(&fx, &format!("{imp:?}"), &names, |t| {
                let x = match pads {
                    Some(p) => pad3d(&t["x"], p)?,
                    None => t["x"].clone(),
                };
                conv3d_with(&x, &t["weight"], t.get("bias"), &cfg, imp)
            });
            eprintln!("{name} {imp:?}: max rel err {e:.2e}");
        }
    }
}

#[test]
fn conv_transpose3d_matches_torch() {
    for name in CONVT {
        let fx = Fixture::load(name);
        let cfg = ConvTranspose3dConfig {
            stride: fx.int3("stride"),
            padding: fx.int3("padding"),
            output_padding: fx.int3("output_padding"),
            dilation: fx.int3("dilation"),
            groups: fx.int("groups"),
        };
        let mut names = vec!["x", "weight"];
        if fx.has("bias") {
            names.push("bias");
        }
        for imp in conv_impls() {
            let e = check(&fx, &format!("{imp:?}"), &names, |t| {
                conv_transpose3d_with(&t["x"], &t["weight"], t.get("bias"), &cfg, imp)
            });
            eprintln!("{name} {imp:?}: max rel err {e:.2e}");
        }
    }
}

#[test]
fn group_norm_matches_torch() {
    for name in GROUP_NORM {
        let fx = Fixture::load(name);
        let (g, eps) = (fx.int("num_groups"), fx.float("eps"));
        let e = check(&fx, "", &["x", "weight", "bias"], |t| {
            group_norm(&t["x"], g, Some(&t["weight"]), Some(&t["bias"]), eps)
        });
        eprintln!("{name}: max rel err {e:.2e}");
        // The module reads torch's keys.
        let c = fx.get("weight").dim(0).unwrap();
        check(&fx, "module", &["x", "weight", "bias"], |t| {
            latent_workbench::core::ops::GroupNorm::load(vb(t), g, c, eps)?.forward(&t["x"])
        });
    }
}

#[test]
fn upsampling_matches_torch() {
    for name in UPSAMPLE {
        let fx = Fixture::load(name);
        let size = fx.int3("size");
        let ac = fx.get("cfg.align_corners").to_vec1::<i64>().unwrap()[0];
        let e = check(&fx, "", &["x"], |t| match ac {
            -1 => upsample_nearest3d(&t["x"], size),
            ac => upsample_trilinear3d(&t["x"], size, ac == 1),
        });
        eprintln!("{name}: max rel err {e:.2e}");
    }
}

#[test]
fn scaled_dot_product_attention_matches_torch() {
    for name in SDPA {
        let fx = Fixture::load(name);
        let (mask, scale) = if fx.has("cfg.scale") {
            (fx.mask_u8("mask"), Some(fx.float("scale")))
        } else {
            (fx.get("mask").clone(), None)
        };
        let e = check(&fx, "", &["q", "k", "v"], |t| {
            scaled_dot_product_attention(&t["q"], &t["k"], &t["v"], Some(&mask), scale)
        });
        eprintln!("{name}: max rel err {e:.2e}");
    }
}

#[test]
fn multihead_attention_matches_torch() {
    for name in MHA {
        let fx = Fixture::load(name);
        let (e_dim, heads, kdim, vdim) = (fx.int("embed_dim"), fx.int("num_heads"), fx.int("kdim"), fx.int("vdim"));
        let attn_mask = fx.has("attn_mask").then(|| {
            if fx.int("attn_mask_is_bool") == 1 {
                fx.mask_u8("attn_mask")
            } else {
                fx.get("attn_mask").clone()
            }
        });
        let kpm = fx.has("key_padding_mask").then(|| fx.mask_u8("key_padding_mask"));
        let params: Vec<&str> =
            fx.t.keys()
                .filter(|k| k.contains("proj"))
                .filter(|k| !k.starts_with("grad."))
                .map(|k| k.as_str())
                .collect();
        let mut names = vec!["query", "key", "value"];
        names.extend(params);
        let e = check(&fx, "", &names, |t| {
            let m = MultiHeadAttention::load(vb(t), e_dim, heads, Some(kdim), Some(vdim), true)?;
            m.forward(&t["query"], &t["key"], &t["value"], attn_mask.as_ref(), kpm.as_ref())
        });
        eprintln!("{name}: max rel err {e:.2e}");
    }
}

#[test]
fn fourier_embedding_matches_torch() {
    let fx = Fixture::load("fourier_f8");
    let f = fx.int("num_freqs");
    let e = check(&fx, "", &["points"], |t| {
        fourier_embed(&t["points"], f, fx.int("include_input") == 1)
    });
    eprintln!("fourier_f8: max rel err {e:.2e}");

    let fx = Fixture::load("point_embed");
    let (hidden, dim) = (fx.int("hidden_dim"), fx.int("dim"));
    let e = check(&fx, "", &["points", "mlp.weight", "mlp.bias"], |t| {
        PointEmbed::load(vb(t), hidden, dim)?.forward(&t["points"])
    });
    eprintln!("point_embed: max rel err {e:.2e}");
    // The checkpoint's `basis` buffer is the block-diagonal 2^k·π matrix our embedding assumes.
    let basis = fx.get("basis");
    let eye = Tensor::eye(3, DType::F32, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let via_basis = fourier_embed(&eye, hidden / 6, false).unwrap();
    let proj = basis.unsqueeze(0).unwrap();
    let want = Tensor::cat(&[proj.sin().unwrap(), proj.cos().unwrap()], 2).unwrap();
    assert_close("point_embed basis", &via_basis, &want);
}

#[test]
fn monai_autoencoderkl_blocks_match_torch() {
    for name in BLOCKS {
        let fx = Fixture::load(name);
        let (groups, eps) = (fx.int("norm_num_groups"), fx.float("norm_eps"));
        let params: Vec<String> =
            fx.t.keys()
                .filter(|k| *k != "x" && *k != "out" && *k != "r" && !k.starts_with("grad.") && !k.starts_with("cfg."))
                .cloned()
                .collect();
        let mut names = vec!["x"];
        names.extend(params.iter().map(|s| s.as_str()));
        let e = check(&fx, "", &names, |t| {
            let v = vb(t);
            let m: Box<dyn Module> = match *name {
                "block_resblock_8_16" | "block_resblock_8_8" => Box::new(ResBlock::load(
                    v,
                    fx.int("in_channels"),
                    fx.int("out_channels"),
                    groups,
                    eps,
                )?),
                "block_downsample_8" => Box::new(Downsample::load(v, fx.int("channels"))?),
                "block_upsample_8" | "block_upsample_convt_8" => {
                    Box::new(Upsample::load(v, fx.int("channels"), fx.int("use_convtranspose") == 1)?)
                }
                "block_attention_8" => Box::new(AttentionBlock::load(
                    v,
                    fx.int("channels"),
                    Some(fx.int("num_head_channels")),
                    groups,
                    eps,
                )?),
                other => panic!("unknown block {other}"),
            };
            m.forward(&t["x"])
        });
        eprintln!("{name}: max rel err {e:.2e}");
    }
}

#[test]
fn every_fixture_is_checked() {
    let known: BTreeSet<&str> = [CONV3D, CONVT, GROUP_NORM, UPSAMPLE, SDPA, MHA, FOURIER, BLOCKS]
        .iter()
        .flat_map(|s| s.iter().copied())
        .collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".safetensors").map(str::to_string))
        .collect();
    let on_disk_ref: BTreeSet<&str> = on_disk.iter().map(|s| s.as_str()).collect();
    assert_eq!(known, on_disk_ref, "fixtures on disk vs cases in this test");
    let bytes: u64 = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(bytes < 3 << 20, "fixtures take {bytes} bytes (keep them under 3 MiB)");
}
