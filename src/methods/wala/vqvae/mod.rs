//! WaLa's wavelet VQ-VAE (`src/latent_model/wavelet_vq_model.py` and the modules it builds):
//! the packed wavelet tree `(B, 64, 46, 46, 46)` to a `(B, 4, 12, 12, 12)` latent grid and back,
//! loading the official Lightning checkpoint's `autoencoder.*` keys (or `autoencoder._orig_mod.*`
//! when upstream compiled the model).
//!
//! | upstream | here |
//! |---|---|
//! | `General_Encoder_Down_2` | [`Encoder`]: conv, 2 ResBlocks, avg-pool, 2 ResBlocks, avg-pool, 2 ResBlocks, transformer over the grid, ResBlock, GN-SiLU-conv to `e_dim` |
//! | `General_Decoder_Up_2` | [`Decoder`]: conv, ResBlock, transformer, 2 ResBlocks, trilinear ×2 and the last plane dropped (24 → 23), 2 ResBlocks, trilinear ×2, 2 ResBlocks, GN-SiLU-conv to the tree's channels |
//! | `VectorQuantizer2` | [`Quantizer`] |
//! | `decode_from_pre_quant` (what inference decodes a diffusion latent with) | [`VqVae::decode_from_pre_quant`]: nearest codes, then the decoder; no latent scaling anywhere |
//!
//! Shapes are not fixed to 46/12: the input side must be `4G − 2` for grid `G` (`grid_size`), which
//! lets parity tests run tiny configurations. See `PARITY.md`.

pub(crate) mod blocks;
mod quantizer;

use std::path::Path;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::core::ops::Conv3d;
use crate::core::weights::{LoadOptions, LoadReport, WeightsError, build_model, load_checkpoint};
use blocks::{GROUPS, GridTransformer, OutConv, ResBlock, avg_pool_3s2p1, conv3, drop_last_planes, upsample2};
pub use quantizer::{Nearest, Quantized, Quantizer};

/// Upstream's `get_encoder` / `get_decoder` fix the width and the heads (not in `args.json`), and
/// the decoder's transformer is built 128 wide whatever `hidden_channel` says.
pub const WALA_HIDDEN: usize = 128;
pub const WALA_HEADS: usize = 4;

/// The autoencoder's hyper-parameters, under `args.json`'s names where it has them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VqVaeConfig {
    /// Channels of the packed tree: 64 for WaLa's kept levels (`max_depth` 3, `max_training_level` 2).
    pub in_channels: usize,
    /// Latent channels (`e_dim`, 4 in WaLa).
    pub e_dim: usize,
    /// Codebook size (`n_e`).
    pub n_e: usize,
    /// Latent grid side (`grid_size`, 12 in WaLa).
    pub grid_size: usize,
    pub encoder_num_tran: usize,
    pub decoder_num_tran: usize,
    /// `normalize_latent == "l2_norm"`: cosine code search and unit-length codes.
    pub l2_normalize: bool,
    /// Width of every block (hard-coded 128 upstream).
    pub hidden_channel: usize,
    /// Attention heads of 64 channels each (hard-coded 4 upstream).
    pub num_heads: usize,
}

/// `args.json` key of our own for the autoencoder's block width (upstream hard-codes 128), which
/// the demo models (hidden 32) record.
pub const WORKBENCH_HIDDEN_KEY: &str = "workbench_autoencoder_hidden_channel";
/// `args.json` key of our own for the autoencoder's attention heads (upstream hard-codes 4).
pub const WORKBENCH_HEADS_KEY: &str = "workbench_autoencoder_num_heads";

/// A configuration or a tensor the autoencoder cannot take.
#[derive(Debug, Error)]
pub enum VqVaeError {
    #[error("WaLa autoencoder config: {0}")]
    Config(String),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("WaLa autoencoder: {0}")]
    Shape(String),
    #[error("WaLa autoencoder: {0}")]
    Candle(#[from] candle_core::Error),
}

impl VqVaeConfig {
    /// From a WaLa model's `args.json`: `e_dim`, `n_e`, `grid_size`, `encoder_num_tran`,
    /// `decoder_num_tran`, `normalize_latent`, and `max_depth` − `max_training_level` for the tree's
    /// channels (coefficient index 0 → 512, 1 → 64, 2 → 8, 3 → 1). [`WORKBENCH_HIDDEN_KEY`] and
    /// [`WORKBENCH_HEADS_KEY`] are ours (upstream hard-codes 128 and 4); absent, they take
    /// upstream's values.
    pub fn from_args_json(args: &serde_json::Value) -> std::result::Result<Self, VqVaeError> {
        let num = |key: &str| -> std::result::Result<usize, VqVaeError> {
            args.get(key)
                .and_then(serde_json::Value::as_u64)
                .map(|v| v as usize)
                .ok_or_else(|| VqVaeError::Config(format!("args.json lacks a non-negative integer `{key}`")))
        };
        let (max_depth, trained) = (num("max_depth")?, num("max_training_level")?);
        let coeff_index = max_depth
            .checked_sub(trained)
            .filter(|&c| c <= 3)
            .ok_or_else(|| {
                VqVaeError::Config(format!(
                    "max_depth {max_depth} and max_training_level {trained} give no supported tree (max_depth − max_training_level must be 0–3)"
                ))
            })?;
        let normalize = args.get("normalize_latent").and_then(serde_json::Value::as_str);
        let cfg = Self {
            in_channels: 8usize.pow(3 - coeff_index as u32),
            e_dim: num("e_dim")?,
            n_e: num("n_e")?,
            grid_size: num("grid_size")?,
            encoder_num_tran: num("encoder_num_tran").unwrap_or(0),
            decoder_num_tran: num("decoder_num_tran").unwrap_or(0),
            l2_normalize: normalize == Some("l2_norm"),
            // Not upstream keys (it hard-codes both): our demo models record their smaller widths.
            hidden_channel: num(WORKBENCH_HIDDEN_KEY).unwrap_or(WALA_HIDDEN),
            num_heads: num(WORKBENCH_HEADS_KEY).unwrap_or(WALA_HEADS),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> std::result::Result<(), VqVaeError> {
        let bad = |m: String| Err(VqVaeError::Config(m));
        if self.hidden_channel == 0 || !self.hidden_channel.is_multiple_of(GROUPS) {
            return bad(format!(
                "hidden_channel {} is not a positive multiple of GroupNorm's {GROUPS} groups",
                self.hidden_channel
            ));
        }
        if self.decoder_num_tran > 0 && self.hidden_channel != WALA_HIDDEN {
            return bad(format!(
                "the decoder's transformer is {WALA_HIDDEN} wide upstream, so decoder_num_tran > 0 needs hidden_channel {WALA_HIDDEN} (got {})",
                self.hidden_channel
            ));
        }
        if self.e_dim == 0 || self.n_e == 0 || self.grid_size == 0 || self.in_channels == 0 {
            return bad("e_dim, n_e, grid_size and the tree's channels must all be positive".into());
        }
        if (self.encoder_num_tran > 0 || self.decoder_num_tran > 0) && self.num_heads == 0 {
            return bad("a transformer needs at least one head".into());
        }
        Ok(())
    }

    /// Upstream's coefficient index of the tree's channels (`max_depth − max_training_level`;
    /// 512 → 0, 64 → 1, 8 → 2, 1 → 3), the inverse of [`VqVaeConfig::from_args_json`]'s
    /// `8^(3 − index)`.
    pub fn coefficient_index(&self) -> usize {
        (0..3)
            .find(|&c| 8usize.pow(3 - c as u32) == self.in_channels)
            .unwrap_or(3)
    }

    /// The side of the tree the encoder takes: `4G − 2` (46 for WaLa's 12).
    pub fn input_side(&self) -> usize {
        4 * self.grid_size - 2
    }
}

fn res_blocks(vb: &VarBuilder, names: &[&str], channels: usize) -> Result<Vec<ResBlock>> {
    names.iter().map(|n| ResBlock::load(vb.pp(*n), channels)).collect()
}

fn run(blocks: &[ResBlock], mut x: Tensor) -> Result<Tensor> {
    for b in blocks {
        x = b.forward(&x)?;
    }
    Ok(x)
}

/// `General_Encoder_Down_2`.
#[derive(Clone, Debug)]
pub struct Encoder {
    in_conv: Conv3d,
    /// `res_1`, `res_1_1` | `res_2`, `res_2_1` | `res_3`, `res_3_1`, one stage per resolution.
    stages: [Vec<ResBlock>; 3],
    transformer: Option<GridTransformer>,
    res_out: ResBlock,
    out_conv: OutConv,
}

impl Encoder {
    pub fn load(vb: VarBuilder, cfg: &VqVaeConfig) -> Result<Self> {
        let c = cfg.hidden_channel;
        Ok(Self {
            in_conv: conv3(vb.pp("in_conv"), cfg.in_channels, c)?,
            stages: [
                res_blocks(&vb, &["res_1", "res_1_1"], c)?,
                res_blocks(&vb, &["res_2", "res_2_1"], c)?,
                res_blocks(&vb, &["res_3", "res_3_1"], c)?,
            ],
            transformer: GridTransformer::load(vb.clone(), c, cfg.grid_size, cfg.num_heads, cfg.encoder_num_tran)?,
            res_out: ResBlock::load(vb.pp("res_out"), c)?,
            out_conv: OutConv::load(vb.pp("out_conv"), c, cfg.e_dim)?,
        })
    }
}

impl Module for Encoder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = run(&self.stages[0], self.in_conv.forward(x)?)?;
        let x = run(&self.stages[1], avg_pool_3s2p1(&x)?)?;
        let mut x = run(&self.stages[2], avg_pool_3s2p1(&x)?)?;
        if let Some(t) = &self.transformer {
            x = t.forward(&x)?;
        }
        self.out_conv.forward(&self.res_out.forward(&x)?)
    }
}

/// `General_Decoder_Up_2` (`odd_or_even="odd"`, the only form upstream builds).
#[derive(Clone, Debug)]
pub struct Decoder {
    in_conv: Conv3d,
    res_in: ResBlock,
    transformer: Option<GridTransformer>,
    /// `res_1`, `res_1_1` | `res_2`, `res_2_1` | `res_3`, `res_3_1`.
    stages: [Vec<ResBlock>; 3],
    out_conv: OutConv,
}

impl Decoder {
    pub fn load(vb: VarBuilder, cfg: &VqVaeConfig) -> Result<Self> {
        let c = cfg.hidden_channel;
        Ok(Self {
            in_conv: conv3(vb.pp("in_conv"), cfg.e_dim, c)?,
            res_in: ResBlock::load(vb.pp("res_in"), c)?,
            transformer: GridTransformer::load(
                vb.clone(),
                WALA_HIDDEN,
                cfg.grid_size,
                cfg.num_heads,
                cfg.decoder_num_tran,
            )?,
            stages: [
                res_blocks(&vb, &["res_1", "res_1_1"], c)?,
                res_blocks(&vb, &["res_2", "res_2_1"], c)?,
                res_blocks(&vb, &["res_3", "res_3_1"], c)?,
            ],
            out_conv: OutConv::load(vb.pp("out_conv"), c, cfg.in_channels)?,
        })
    }
}

impl Module for Decoder {
    fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let mut x = self.res_in.forward(&self.in_conv.forward(z)?)?;
        if let Some(t) = &self.transformer {
            x = t.forward(&x)?;
        }
        let x = run(&self.stages[0], x)?;
        let x = run(&self.stages[1], drop_last_planes(&upsample2(&x)?)?)?;
        let x = run(&self.stages[2], upsample2(&x)?)?;
        self.out_conv.forward(&x)
    }
}

/// The autoencoder: `encoder`, `decoder`, `quantize` as upstream names them.
#[derive(Clone, Debug)]
pub struct VqVae {
    pub encoder: Encoder,
    pub decoder: Decoder,
    pub quantizer: Quantizer,
    cfg: VqVaeConfig,
}

/// Where the autoencoder's keys sit in a WaLa `checkpoint.ckpt`.
pub const CHECKPOINT_PREFIX: &str = "autoencoder.";
/// What `torch.compile` inserts after it.
const COMPILED_PREFIX: &str = "_orig_mod.";

impl VqVae {
    pub fn load(vb: VarBuilder, cfg: &VqVaeConfig) -> Result<Self> {
        Ok(Self {
            encoder: Encoder::load(vb.pp("encoder"), cfg)?,
            decoder: Decoder::load(vb.pp("decoder"), cfg)?,
            quantizer: Quantizer::load(vb.pp("quantize"), cfg.n_e, cfg.e_dim, cfg.l2_normalize)?,
            cfg: cfg.clone(),
        })
    }

    /// From a WaLa checkpoint (Lightning `.ckpt` with `state_dict`, or safetensors with the same
    /// keys): the `autoencoder.` part, with or without `_orig_mod.`. Like upstream, tensors the
    /// autoencoder does not use (the wavelet filters stored as buffers) are ignored; unlike
    /// upstream (`strict=False`), a missing or misshapen weight is an error that names it.
    pub fn from_checkpoint(
        path: &Path,
        cfg: &VqVaeConfig,
        device: &Device,
    ) -> std::result::Result<(Self, LoadReport), VqVaeError> {
        cfg.validate()?;
        let opts = LoadOptions {
            select_prefix: Some(CHECKPOINT_PREFIX.into()),
            ..LoadOptions::default()
        };
        let mut ckpt = load_checkpoint(path, &opts)?;
        ckpt.tensors = std::mem::take(&mut ckpt.tensors)
            .into_iter()
            .map(|(k, t)| (k.strip_prefix(COMPILED_PREFIX).map(str::to_owned).unwrap_or(k), t))
            .collect();
        Ok(build_model(&ckpt, DType::F32, device, false, |vb| Self::load(vb, cfg))?)
    }

    pub fn config(&self) -> &VqVaeConfig {
        &self.cfg
    }

    fn check_input(&self, x: &Tensor) -> std::result::Result<(), VqVaeError> {
        let side = self.cfg.input_side();
        let want = [self.cfg.in_channels, side, side, side];
        match x.dims() {
            [_, rest @ ..] if rest == want => Ok(()),
            dims => Err(VqVaeError::Shape(format!(
                "the encoder takes a tree of shape (B, {}, {side}, {side}, {side}), got {dims:?}",
                self.cfg.in_channels
            ))),
        }
    }

    /// The pre-quant latent grid `(B, e_dim, G, G, G)` of a packed tree (what WaLa's diffusion
    /// model works on).
    pub fn encode(&self, tree: &Tensor) -> std::result::Result<Tensor, VqVaeError> {
        self.check_input(tree)?;
        Ok(self.encoder.forward(tree)?)
    }

    /// Nearest codes, then the decoder: how WaLa decodes a generated latent.
    pub fn decode_from_pre_quant(&self, h: &Tensor) -> std::result::Result<Tensor, VqVaeError> {
        let side = self.cfg.grid_size;
        match h.dims() {
            [_, c, a, b, d] if *c == self.cfg.e_dim && [*a, *b, *d] == [side; 3] => {}
            dims => {
                return Err(VqVaeError::Shape(format!(
                    "a latent grid is (B, {}, {side}, {side}, {side}), got {dims:?}",
                    self.cfg.e_dim
                )));
            }
        }
        let q = self.quantizer.quantize(h)?;
        Ok(self.decoder.forward(&q.latent)?)
    }
}
