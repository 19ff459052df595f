//! LDAE's 2.5D semantic encoder (`AttentionSemanticEncoder`, `src/ldae/nets/attention_semantic.py` of
//! GabrieleLozupone/LDAE), loading the official `encoder.pth` under its own key names.
//!
//! A volume `(B, 1, D, H, W)` is cut into its D slices; torchvision's ConvNeXt (one-channel stem, classifier
//! reduced to its LayerNorm2d) maps each slice to a vector of `emb_chans`; the fixed sinusoidal positional
//! encoding is added; a soft attention (Linear → softmax over slices) pools them into a global vector g;
//! Q = Linear(g), K = Linear(slices), V = Linear(slices) go through an 8-head `nn.MultiheadAttention` with
//! one query token; a LayerNorm gives y_sem (768 values for LDAE's ConvNeXt-Small).
//!
//! LDAE feeds axial slices: its data module permutes the (1, x, y, z) volume to (1, z, x, y) first
//! (`shared/research/ldae.md` §2); that permutation belongs to the caller.

use std::path::Path;

use candle_core::{D, DType, Device, Module, Result, Tensor, bail};
use candle_nn::{Conv2d, Conv2dConfig, LayerNorm, Linear, VarBuilder};
use serde::{Deserialize, Serialize};
use thiserror::Error;

// `nn.LayerNorm` with its keys and torch's 1/0 start.
use crate::core::ops::{MultiHeadAttention, layer_norm as load_ln};
use crate::core::weights::{Checkpoint, LoadOptions, LoadReport, WeightsError, build_model, load_checkpoint};

/// ConvNeXt's LayerNorm ε (torchvision).
const CONVNEXT_LN_EPS: f64 = 1e-6;
/// `nn.LayerNorm` default ε (the encoder's final norm).
const TORCH_LN_EPS: f64 = 1e-5;
/// torchvision's `convnext_tiny` layer scale at construction.
const LAYER_SCALE_INIT: f64 = 1e-6;
/// The official state dict registers the backbone twice (`backbone.backbone.*` and, through
/// `SliceDistributed`, `slice_distributed.module.backbone.*`, sharing storage); this model reads the first.
pub const DUPLICATE_BACKBONE_PREFIX: &str = "slice_distributed.module.";

#[derive(Debug, Error)]
pub enum SemanticEncoderError {
    #[error("LDAE semantic encoder: {0}")]
    Config(String),
    #[error(transparent)]
    Weights(#[from] WeightsError),
}

/// Stage widths and depths of a torchvision ConvNeXt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvNextShape {
    pub dims: Vec<usize>,
    pub depths: Vec<usize>,
}

impl ConvNextShape {
    /// torchvision's `convnext_tiny|small|base|large`.
    pub fn torchvision(name: &str) -> Option<Self> {
        let (dims, depths) = match name {
            "convnext_tiny" => (vec![96, 192, 384, 768], vec![3, 3, 9, 3]),
            "convnext_small" => (vec![96, 192, 384, 768], vec![3, 3, 27, 3]),
            "convnext_base" => (vec![128, 256, 512, 1024], vec![3, 3, 27, 3]),
            "convnext_large" => (vec![192, 384, 768, 1536], vec![3, 3, 27, 3]),
            _ => return None,
        };
        Some(Self { dims, depths })
    }
}

/// `backbone_args` of the encoder config (upstream names). Only ConvNeXt backbones are supported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackboneArgs {
    /// e.g. `torchvision.models.convnext_small`.
    pub net_class_path: String,
    /// Pretrained-weights name (training only; the checkpoint holds the weights).
    #[serde(default)]
    pub weights: Option<String>,
    /// Training only.
    #[serde(default)]
    pub freeze_perc: f64,
    /// One-channel stem (LDAE: true).
    #[serde(default = "yes")]
    pub grayscale: bool,
    /// Not upstream: explicit stage widths and depths, overriding those implied by `net_class_path`
    /// (used for tiny test models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convnext: Option<ConvNextShape>,
}

fn yes() -> bool {
    true
}

fn eight() -> usize {
    8
}

fn default_attn_dropout() -> f64 {
    0.1
}

fn default_seq_len() -> usize {
    128
}

/// `enc_args` of LDAE's configs (upstream names); `Default` is the published encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SemanticEncoderConfig {
    pub backbone_args: BackboneArgs,
    pub emb_chans: usize,
    #[serde(default = "eight")]
    pub num_heads: usize,
    /// Training only.
    #[serde(default = "default_attn_dropout")]
    pub attn_dropout: f64,
    /// Length of the positional-encoding table (the most slices accepted).
    #[serde(default = "default_seq_len")]
    pub seq_len: usize,
}

impl Default for SemanticEncoderConfig {
    fn default() -> Self {
        Self {
            backbone_args: BackboneArgs {
                net_class_path: "torchvision.models.convnext_small".into(),
                weights: Some("torchvision.models.ConvNeXt_Small_Weights.DEFAULT".into()),
                freeze_perc: 0.0,
                grayscale: true,
                convnext: None,
            },
            emb_chans: 768,
            num_heads: 8,
            attn_dropout: 0.1,
            seq_len: 128,
        }
    }
}

impl SemanticEncoderConfig {
    /// The ConvNeXt shape: the explicit one, or the one `net_class_path` names.
    pub fn convnext_shape(&self) -> std::result::Result<ConvNextShape, SemanticEncoderError> {
        let b = &self.backbone_args;
        let shape = match &b.convnext {
            Some(s) => s.clone(),
            None => {
                let name = b.net_class_path.rsplit('.').next().unwrap_or_default();
                ConvNextShape::torchvision(name).ok_or_else(|| {
                    SemanticEncoderError::Config(format!(
                        "backbone {:?} is not supported (torchvision convnext_tiny/small/base/large only)",
                        b.net_class_path
                    ))
                })?
            }
        };
        Ok(shape)
    }

    pub fn validate(&self) -> std::result::Result<(), SemanticEncoderError> {
        let err = |m: String| Err(SemanticEncoderError::Config(m));
        let s = self.convnext_shape()?;
        if s.dims.is_empty() || s.dims.len() != s.depths.len() || s.dims.contains(&0) {
            return err(format!(
                "invalid ConvNeXt stages: dims {:?}, depths {:?}",
                s.dims, s.depths
            ));
        }
        if s.dims.last() != Some(&self.emb_chans) {
            return err(format!(
                "the backbone gives {} features per slice but emb_chans is {}",
                s.dims.last().copied().unwrap_or(0),
                self.emb_chans
            ));
        }
        if self.num_heads == 0 || !self.emb_chans.is_multiple_of(self.num_heads) {
            return err(format!(
                "emb_chans {} is not divisible by {} heads",
                self.emb_chans, self.num_heads
            ));
        }
        if self.seq_len == 0 {
            return err("seq_len must be positive".into());
        }
        Ok(())
    }
}

/// torchvision `LayerNorm2d`: LayerNorm over the channels of `(N, C, H, W)`.
fn layer_norm_2d(ln: &LayerNorm, x: &Tensor) -> Result<Tensor> {
    ln.forward(&x.permute((0, 2, 3, 1))?)?.permute((0, 3, 1, 2))
}

/// `ln.forward(x)`, except that while training (a gradient is tracked) the composite LayerNorm is used:
/// candle_nn's fused kernel, which it picks for contiguous inputs, has no backward.
fn layer_norm(ln: &LayerNorm, x: &Tensor) -> Result<Tensor> {
    match ln.bias() {
        Some(bias) if x.track_op() || ln.weight().track_op() => {
            candle_nn::ops::layer_norm_slow(x, ln.weight(), bias, ln.eps() as f32)
        }
        _ => ln.forward(x),
    }
}

/// torchvision `CNBlock`: depthwise 7×7 → LayerNorm → Linear(C, 4C) → GELU → Linear(4C, C) → ×layer_scale,
/// residual (stochastic depth is the identity in evaluation).
#[derive(Clone, Debug)]
struct CnBlock {
    dwconv: Conv2d,
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    layer_scale: Tensor,
}

impl CnBlock {
    fn load(vb: VarBuilder, c: usize) -> Result<Self> {
        let dw_cfg = Conv2dConfig {
            padding: 3,
            groups: c,
            ..Default::default()
        };
        Ok(Self {
            dwconv: candle_nn::conv2d(c, c, 7, dw_cfg, vb.pp("block.0"))?,
            norm: load_ln(vb.pp("block.2"), c, CONVNEXT_LN_EPS)?,
            fc1: candle_nn::linear(c, 4 * c, vb.pp("block.3"))?,
            fc2: candle_nn::linear(4 * c, c, vb.pp("block.5"))?,
            // torchvision's CNBlock starts it at 1e-6 (a checkpoint overrides it).
            layer_scale: vb.get_with_hints((c, 1, 1), "layer_scale", candle_nn::Init::Const(LAYER_SCALE_INIT))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.dwconv.forward(x)?.permute((0, 2, 3, 1))?;
        let h = self
            .fc2
            .forward(&self.fc1.forward(&self.norm.forward(&h)?)?.gelu_erf()?)?;
        let h = h.permute((0, 3, 1, 2))?.broadcast_mul(&self.layer_scale)?;
        x + h
    }
}

/// torchvision `ConvNeXt` with `classifier[-1]` replaced by the identity: `features`, global average
/// pooling, `classifier.0` (LayerNorm2d), flatten.
#[derive(Clone, Debug)]
struct ConvNext {
    stem: Conv2d,
    stem_norm: LayerNorm,
    stages: Vec<Vec<CnBlock>>,
    /// Between stage i and i+1: LayerNorm2d and a 2×2 stride-2 convolution.
    downsamples: Vec<(LayerNorm, Conv2d)>,
    head_norm: LayerNorm,
}

impl ConvNext {
    fn load(vb: VarBuilder, shape: &ConvNextShape, in_channels: usize) -> Result<Self> {
        let f = vb.pp("features");
        let stride = |s: usize| Conv2dConfig {
            stride: s,
            ..Default::default()
        };
        let stem = candle_nn::conv2d(in_channels, shape.dims[0], 4, stride(4), f.pp("0.0"))?;
        let stem_norm = load_ln(f.pp("0.1"), shape.dims[0], CONVNEXT_LN_EPS)?;
        let mut stages = Vec::new();
        let mut downsamples = Vec::new();
        for (i, (&c, &depth)) in shape.dims.iter().zip(&shape.depths).enumerate() {
            let fs = f.pp((1 + 2 * i).to_string());
            stages.push(
                (0..depth)
                    .map(|j| CnBlock::load(fs.pp(j.to_string()), c))
                    .collect::<Result<_>>()?,
            );
            if let Some(&next) = shape.dims.get(i + 1) {
                let fd = f.pp((2 + 2 * i).to_string());
                downsamples.push((
                    load_ln(fd.pp("0"), c, CONVNEXT_LN_EPS)?,
                    candle_nn::conv2d(c, next, 2, stride(2), fd.pp("1"))?,
                ));
            }
        }
        let last = *shape.dims.last().unwrap_or(&0);
        Ok(Self {
            stem,
            stem_norm,
            stages,
            downsamples,
            head_norm: load_ln(vb.pp("classifier.0"), last, CONVNEXT_LN_EPS)?,
        })
    }

    /// `(N, C_in, H, W)` → `(N, emb)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = layer_norm_2d(&self.stem_norm, &self.stem.forward(x)?)?;
        for (i, stage) in self.stages.iter().enumerate() {
            for block in stage {
                h = block.forward(&h)?;
            }
            if let Some((norm, conv)) = self.downsamples.get(i) {
                // The 2×2 stride-2 conv never reads an odd last row/column (torch floors too); dropping it
                // first gives the same output and keeps candle's conv2d backward, which assumes no
                // leftover, shape-correct.
                let (_, _, hh, ww) = h.dims4()?;
                let h_even = h.narrow(2, 0, hh - hh % 2)?.narrow(3, 0, ww - ww % 2)?;
                h = conv.forward(&layer_norm_2d(norm, &h_even)?)?;
            }
        }
        // AdaptiveAvgPool2d(1), LayerNorm2d over (N, C, 1, 1) = LayerNorm over C.
        let pooled = h.mean(D::Minus1)?.mean(D::Minus1)?;
        layer_norm(&self.head_norm, &pooled)
    }
}

/// LDAE's `AttentionSemanticEncoder` in evaluation mode.
#[derive(Clone, Debug)]
pub struct SemanticEncoder {
    backbone: ConvNext,
    positional: Tensor,
    soft_attention: Linear,
    query: Linear,
    key: Linear,
    value: Linear,
    cross_attention: MultiHeadAttention,
    final_norm: LayerNorm,
    cfg: SemanticEncoderConfig,
    in_channels: usize,
}

impl SemanticEncoder {
    /// Builds the encoder from `vb` rooted at the state dict's top level (`backbone.backbone.features.…`,
    /// `positional_encoding.pe`, …). The duplicate `slice_distributed.module.*` keys are not read (see
    /// [`drop_duplicate_backbone`]).
    pub fn load(vb: VarBuilder, cfg: &SemanticEncoderConfig) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::wrap)?;
        let shape = cfg.convnext_shape().map_err(candle_core::Error::wrap)?;
        let e = cfg.emb_chans;
        let in_channels = if cfg.backbone_args.grayscale { 1 } else { 3 };
        Ok(Self {
            backbone: ConvNext::load(vb.pp("backbone.backbone"), &shape, in_channels)?,
            positional: vb.get((1, cfg.seq_len, e), "positional_encoding.pe")?,
            soft_attention: candle_nn::linear(e, 1, vb.pp("soft_attention.linear"))?,
            query: candle_nn::linear(e, e, vb.pp("query_projection"))?,
            key: candle_nn::linear(e, e, vb.pp("key_projection"))?,
            value: candle_nn::linear(e, e, vb.pp("value_projection"))?,
            cross_attention: MultiHeadAttention::load(vb.pp("cross_attention"), e, cfg.num_heads, None, None, true)?,
            final_norm: load_ln(vb.pp("layer_norm_after_attention"), e, TORCH_LN_EPS)?,
            cfg: cfg.clone(),
            in_channels,
        })
    }

    /// Loads the official `encoder.pth` (or a conversion), requiring every tensor of the model; the
    /// duplicate backbone copy is dropped first.
    pub fn from_checkpoint(
        path: &Path,
        opts: &LoadOptions,
        cfg: &SemanticEncoderConfig,
        dtype: DType,
        device: &Device,
    ) -> std::result::Result<(Self, LoadReport), SemanticEncoderError> {
        cfg.validate()?;
        let mut ckpt = load_checkpoint(path, opts)?;
        drop_duplicate_backbone(&mut ckpt);
        Ok(build_model(&ckpt, dtype, device, true, |vb| Self::load(vb, cfg))?)
    }

    pub fn config(&self) -> &SemanticEncoderConfig {
        &self.cfg
    }

    /// Per-slice backbone features `(B, D, emb_chans)` of a volume `(B, C, D, H, W)` (`SliceDistributed`).
    pub fn slice_features(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, d, h, w) = x.dims5()?;
        if c != self.in_channels || d == 0 || d > self.cfg.seq_len {
            bail!(
                "LDAE semantic encoder: expected (B, {}, D, H, W) with 1 ≤ D ≤ {} slices, got {:?}",
                self.in_channels,
                self.cfg.seq_len,
                x.dims()
            )
        }
        // Upstream views the contiguous (B, C, D, H, W) memory as (B·D, C, H, W): for C = 1 these are the
        // D slices in order.
        let slices = x.contiguous()?.reshape((b * d, c, h, w))?;
        self.backbone.forward(&slices)?.reshape((b, d, ()))
    }

    /// y_sem `(B, emb_chans)` of a volume `(B, 1, D, H, W)` (D slices along the third axis).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let s = self.slice_features(x)?;
        let (b, d, e) = s.dims3()?;
        let s = s.broadcast_add(&self.positional.narrow(1, 0, d)?.to_dtype(s.dtype())?)?;
        // Soft attention: one score per slice, softmax over the slices, weighted mean.
        let scores = self.soft_attention.forward(&s)?.reshape((b, 1, d))?;
        // candle_nn's fused softmax has no backward: the composite one while training.
        let weights = if scores.track_op() {
            candle_nn::ops::softmax(&scores, D::Minus1)?
        } else {
            candle_nn::ops::softmax_last_dim(&scores)?
        };
        let g = weights.matmul(&s)?; // (B, 1, E)
        let q = self.query.forward(&g)?;
        let k = self.key.forward(&s)?;
        let v = self.value.forward(&s)?;
        let y = self.cross_attention.forward(&q, &k, &v, None, None)?;
        layer_norm(&self.final_norm, &y)?.reshape((b, e))
    }
}

/// Removes the second registration of the backbone (`slice_distributed.module.*`) that the official
/// `encoder.pth` carries next to `backbone.*`, so that a strict load sees every remaining key used.
pub fn drop_duplicate_backbone(ckpt: &mut Checkpoint) {
    ckpt.tensors.retain(|k, _| !k.starts_with(DUPLICATE_BACKBONE_PREFIX));
}

/// The fixed sinusoidal table of upstream `PositionalEncoding` (`pe[p, 2i] = sin(p·f_i)`,
/// `pe[p, 2i+1] = cos(p·f_i)`, `f_i = exp(−2i·ln(10⁴)/d)`), shape `(1, len, d)`: for building an encoder
/// without a checkpoint; the official state dict stores the table.
pub fn positional_encoding(len: usize, d: usize, device: &Device) -> Result<Tensor> {
    let mut pe = vec![0f32; len * d];
    // torch: an f32 tensor times the f64 constant rounded to f32, as upstream builds it.
    let c = (-(10000f64.ln() / d as f64)) as f32;
    for p in 0..len {
        for i in (0..d).step_by(2) {
            let f = (i as f32 * c).exp();
            let a = p as f32 * f;
            pe[p * d + i] = a.sin();
            if i + 1 < d {
                pe[p * d + i + 1] = a.cos();
            }
        }
    }
    Tensor::from_vec(pe, (1, len, d), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_convnext_block_starts_as_torchvisions() {
        let params = crate::core::train::SeededParams::new(4);
        let vb = params.var_builder(candle_core::DType::F32, &candle_core::Device::Cpu);
        let block = CnBlock::load(vb, 8).unwrap();
        let scale = block.layer_scale.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(scale.iter().all(|&v| v == LAYER_SCALE_INIT as f32), "{scale:?}");
        let w = block.norm.weight().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(w.iter().all(|&v| v == 1.0), "LayerNorm weight starts at 1: {w:?}");
    }

    #[test]
    fn default_config_is_convnext_small_with_768_features() {
        let cfg = SemanticEncoderConfig::default();
        cfg.validate().unwrap();
        assert_eq!(cfg.convnext_shape().unwrap().depths, vec![3, 3, 27, 3]);
        let json = r#"{"backbone_args": {"net_class_path": "torchvision.models.convnext_small",
            "weights": "torchvision.models.ConvNeXt_Small_Weights.DEFAULT", "freeze_perc": 0.0,
            "grayscale": true}, "emb_chans": 768, "seq_len": 128}"#;
        let parsed: SemanticEncoderConfig = serde_json::from_str(json).unwrap();
        assert_eq!(parsed.emb_chans, 768);
        assert_eq!(parsed.num_heads, 8);
        parsed.validate().unwrap();
    }

    #[test]
    fn mismatched_configs_are_refused() {
        let mut cfg = SemanticEncoderConfig {
            emb_chans: 512,
            ..Default::default()
        };
        assert!(cfg.validate().is_err());
        cfg.emb_chans = 768;
        cfg.backbone_args.net_class_path = "torchvision.models.resnet50".into();
        assert!(cfg.validate().unwrap_err().to_string().contains("resnet50"));
    }

    #[test]
    fn positional_table_starts_with_sin_zero_cos_one() {
        let pe = positional_encoding(3, 4, &Device::Cpu)
            .unwrap()
            .to_vec3::<f32>()
            .unwrap();
        assert_eq!(pe[0][0], vec![0.0, 1.0, 0.0, 1.0]);
        assert!((pe[0][1][0] - 1f32.sin()).abs() < 1e-7);
    }
}
