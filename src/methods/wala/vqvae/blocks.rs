//! The building blocks of WaLa's wavelet VQ-VAE (`src/latent_model/abstract_volume_nn.py`):
//! ResBlock, average-pool downsampling, trilinear upsampling and the transformer block over the
//! latent grid's tokens, under upstream's key names. Inference only (dropout is the identity).

use candle_core::{Module, Result, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder};

use crate::core::ops::{Conv3d, Conv3dConfig, GroupNorm, scaled_dot_product_attention, upsample_trilinear3d};

/// `normalization(ch)`: `GroupNorm(32, ch)`, ε 1e-5, computed in f32.
pub const GROUPS: usize = 32;
pub const NORM_EPS: f64 = 1e-5;
/// `Attention(dim_head=64)`: the width of one head, fixed upstream.
pub const DIM_HEAD: usize = 64;
/// `MLP(expansion_factor=4)`.
const MLP_EXPANSION: usize = 4;

/// `conv_nd(3, cin, cout, 3, padding=1)`: every conv of the autoencoder has a bias.
pub fn conv3(vb: VarBuilder, cin: usize, cout: usize) -> Result<Conv3d> {
    Conv3d::load(vb, cin, cout, [3; 3], Conv3dConfig::uniform(1, 1), true)
}

/// `ResBlock(C, C′)`: `skip(x) + conv(SiLU(GN(conv(SiLU(GN(x))))))`. In WaLa's autoencoder every
/// ResBlock keeps its width, so the skip is the identity; the voxel encoder's `ResBlock_V` that
/// widens (64 → 128) has a 3³ convolution `skip_connection` instead. Dropout sits at
/// `out_layers.2`, which is why the second conv's keys are `out_layers.3`.
#[derive(Clone, Debug)]
pub struct ResBlock {
    in_norm: GroupNorm,
    in_conv: Conv3d,
    out_norm: GroupNorm,
    out_conv: Conv3d,
    skip: Option<Conv3d>,
}

impl ResBlock {
    pub fn load(vb: VarBuilder, channels: usize) -> Result<Self> {
        Self::load_widening(vb, channels, channels)
    }

    /// From `cin` to `cout` channels (a `skip_connection` conv when they differ).
    pub fn load_widening(vb: VarBuilder, cin: usize, cout: usize) -> Result<Self> {
        Ok(Self {
            in_norm: GroupNorm::load(vb.pp("in_norm"), GROUPS, cin, NORM_EPS)?,
            in_conv: conv3(vb.pp("in_conv"), cin, cout)?,
            out_norm: GroupNorm::load(vb.pp("out_layers.0"), GROUPS, cout, NORM_EPS)?,
            out_conv: conv3(vb.pp("out_layers.3"), cout, cout)?,
            skip: (cin != cout)
                .then(|| conv3(vb.pp("skip_connection"), cin, cout))
                .transpose()?,
        })
    }
}

impl Module for ResBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.in_conv.forward(&self.in_norm.forward_silu(x)?)?;
        let h = self.out_conv.forward(&self.out_norm.forward_silu(&h)?)?;
        match &self.skip {
            Some(skip) => skip.forward(x)? + h,
            None => x + h,
        }
    }
}

/// `Sequential(GroupNorm32, SiLU, conv3)`: keys `.0.*` and `.2.*`.
#[derive(Clone, Debug)]
pub struct OutConv {
    norm: GroupNorm,
    conv: Conv3d,
}

impl OutConv {
    pub fn load(vb: VarBuilder, cin: usize, cout: usize) -> Result<Self> {
        Ok(Self {
            norm: GroupNorm::load(vb.pp("0"), GROUPS, cin, NORM_EPS)?,
            conv: conv3(vb.pp("2"), cin, cout)?,
        })
    }
}

impl Module for OutConv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv.forward(&self.norm.forward_silu(x)?)
    }
}

/// `Downsample(use_conv=False)`: `AvgPool3d(3, stride 2, padding 1)` with torch's default
/// `count_include_pad=True` (every window divided by 27, padded zeros included), so `n → ⌈n/2⌉`
/// (46 → 23 → 12). The box kernel is separable: one 3-tap mean per axis.
pub fn avg_pool_3s2p1(x: &Tensor) -> Result<Tensor> {
    let mut x = x.clone();
    for axis in 2..5 {
        let n = x.dim(axis)?;
        let out = n.div_ceil(2);
        // Zero padding of one on both sides; output i averages padded[2i], padded[2i+1], padded[2i+2].
        let padded = x.pad_with_zeros(axis, 1, 1)?;
        let mut sum: Option<Tensor> = None;
        for a in 0..3u32 {
            let idx: Vec<u32> = (0..out as u32).map(|i| 2 * i + a).collect();
            let idx = Tensor::new(idx.as_slice(), x.device())?;
            let tap = padded.index_select(&idx, axis)?;
            sum = Some(match sum {
                None => tap,
                Some(s) => (s + tap)?,
            });
        }
        x = (sum.expect("three taps") / 3.0)?;
    }
    Ok(x)
}

/// `Upsample(use_conv=False)`: `F.interpolate(scale_factor=2, mode="trilinear")`, torch's default
/// `align_corners=False`.
pub fn upsample2(x: &Tensor) -> Result<Tensor> {
    let (_, _, a, b, c) = x.dims5()?;
    upsample_trilinear3d(x, [2 * a, 2 * b, 2 * c], false)
}

/// `LayerNorm` over the last axis; `affine=false` gives `elementwise_affine=False`.
fn layer_norm(vb: VarBuilder, width: usize, affine: bool) -> Result<LayerNorm> {
    if affine {
        crate::core::ops::layer_norm(vb, width, NORM_EPS)
    } else {
        crate::core::ops::plain_layer_norm(width, NORM_EPS, vb.dtype(), vb.device())
    }
}

/// `Sequential(SiLU, Linear)`: the Linear is entry 1.
fn silu_linear(vb: VarBuilder, cin: usize, cout: usize) -> Result<Linear> {
    candle_nn::linear(cin, cout, vb.pp("1"))
}

/// `Attention(query_dim=C, heads, dim_head=64)`, self-attention only (as the autoencoder uses it):
/// non-affine LayerNorm of x; q, k, v = Linear(SiLU(·)); affine LayerNorms on q and k over the
/// whole inner width (all heads together); q scaled by `inner^-½` (not `dim_head^-½`) before the
/// heads are split (head i = channels `[64i, 64i + 64)`); output Linear(SiLU(·)).
#[derive(Clone, Debug)]
struct Attention {
    norm: LayerNorm,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    norm_q: LayerNorm,
    norm_k: LayerNorm,
    to_out: Linear,
    heads: usize,
}

impl Attention {
    fn load(vb: VarBuilder, width: usize, heads: usize) -> Result<Self> {
        let inner = heads * DIM_HEAD;
        Ok(Self {
            norm: layer_norm(vb.pp("norm"), width, false)?,
            to_q: silu_linear(vb.pp("to_q"), width, inner)?,
            to_k: silu_linear(vb.pp("to_k"), width, inner)?,
            to_v: silu_linear(vb.pp("to_v"), width, inner)?,
            norm_q: layer_norm(vb.pp("norm_q"), inner, true)?,
            norm_k: layer_norm(vb.pp("norm_k"), inner, true)?,
            to_out: silu_linear(vb.pp("to_out"), inner, width)?,
            heads,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, _) = x.dims3()?;
        let xn = self.norm.forward(x)?.silu()?;
        let inner = self.heads * DIM_HEAD;
        let q = self.norm_q.forward(&self.to_q.forward(&xn)?)?;
        let q = (q * (inner as f64).powf(-0.5))?;
        let k = self.norm_k.forward(&self.to_k.forward(&xn)?)?;
        let v = self.to_v.forward(&xn)?;
        let split = |t: Tensor| t.reshape((b, n, self.heads, DIM_HEAD))?.transpose(1, 2);
        let o = scaled_dot_product_attention(&split(q)?, &split(k)?, &split(v)?, None, Some(1.0))?;
        let o = o.transpose(1, 2)?.reshape((b, n, inner))?;
        self.to_out.forward(&o.silu()?)
    }
}

/// `MLP(C, expansion 4)`: LayerNorm (affine) → Linear(C, 4C) → SiLU → Linear(4C, C); the branch
/// only (the block adds the residual).
#[derive(Clone, Debug)]
struct Mlp {
    norm: LayerNorm,
    dense1: Linear,
    out: Linear,
}

impl Mlp {
    fn load(vb: VarBuilder, width: usize) -> Result<Self> {
        Ok(Self {
            norm: layer_norm(vb.pp("norm"), width, true)?,
            dense1: candle_nn::linear(width, MLP_EXPANSION * width, vb.pp("dense1"))?,
            out: candle_nn::linear(MLP_EXPANSION * width, width, vb.pp("out"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.out.forward(&self.dense1.forward(&self.norm.forward(x)?)?.silu()?)
    }
}

/// `Transformer_Block`: `x + mlp(x)`, then `x + att(x)` (MLP first).
#[derive(Clone, Debug)]
struct TransformerBlock {
    mlp: Mlp,
    att: Attention,
}

impl TransformerBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = (x + self.mlp.forward(x)?)?;
        &x + self.att.forward(&x)?
    }
}

/// The transformer stage over the latent grid: the `(B, C, G, G, G)` grid as `G³` tokens in
/// row-major `(d, h, w)` order, plus the learned `pos_emb` `(1, G³, C)`, through `t_blocks`.
#[derive(Clone, Debug)]
pub struct GridTransformer {
    pos_emb: Tensor,
    blocks: Vec<TransformerBlock>,
}

impl GridTransformer {
    /// `None` when `layers` is 0 (upstream then has neither `pos_emb` nor `t_blocks`).
    pub fn load(vb: VarBuilder, width: usize, grid: usize, heads: usize, layers: usize) -> Result<Option<Self>> {
        if layers == 0 {
            return Ok(None);
        }
        let pos_emb = vb.get((1, grid * grid * grid, width), "pos_emb")?;
        let blocks = (0..layers)
            .map(|i| {
                let vb = vb.pp(format!("t_blocks.{i}"));
                Ok(TransformerBlock {
                    mlp: Mlp::load(vb.pp("mlp"), width)?,
                    att: Attention::load(vb.pp("att"), width, heads)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Self { pos_emb, blocks }))
    }
}

impl Module for GridTransformer {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, g0, g1, g2) = x.dims5()?;
        let mut t = x.permute((0, 2, 3, 4, 1))?.reshape((b, g0 * g1 * g2, c))?;
        t = t.broadcast_add(&self.pos_emb)?;
        for block in &self.blocks {
            t = block.forward(&t)?;
        }
        t.transpose(1, 2)?.reshape((b, c, g0, g1, g2))
    }
}

/// The last plane of every spatial axis dropped (`x[..., :-1, :-1, :-1]`): the decoder's 24 → 23.
pub fn drop_last_planes(x: &Tensor) -> Result<Tensor> {
    let mut x = x.clone();
    for axis in 2..5 {
        let n = x.dim(axis)?;
        x = x.narrow(axis, 0, n.saturating_sub(1))?;
    }
    x.contiguous()
}
