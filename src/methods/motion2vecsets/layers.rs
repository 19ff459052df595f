//! The small modules both Motion2VecSets networks are built from, with the reference's key names:
//! `PreNorm`, `Attention` (fused `to_kv`), GEGLU `FeedForward` of `models_ae.py`; the GEGLU
//! `FeedForward`, `AdaLayerNorm` and `PositionalEmbedding` of `models_diff.py`; and the point
//! embedding with its `basis` buffer.

use candle_core::{D, DType, Module, Result, Tensor, bail};
use candle_nn::{LayerNorm, Linear, VarBuilder, linear, linear_no_bias};

use super::config::{LAYER_NORM_EPS, NOISE_MAX_PERIOD, POINT_EMBED_HIDDEN};
use crate::core::ops::{PointEmbed, scaled_dot_product_attention};

/// `(B, L, h·d)` → `(B·h, L, d)` as `rearrange('b n (h d) -> (b h) n d')`, kept 4-D as
/// `(B, h, L, d)` for the shared attention.
fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, l, c) = x.dims3()?;
    x.reshape((b, l, heads, c / heads))?.transpose(1, 2)?.contiguous()
}

fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (b, h, l, d) = x.dims4()?;
    x.transpose(1, 2)?.reshape((b, l, h * d))
}

/// Applies a function of `(N, L, C)` tensors to `(…, L, C)` by flattening the leading axes: the
/// deformation networks' `CrossAttentionT` is the plain attention of every `(b, t)` slice.
pub fn over_rows(x: &Tensor, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    if dims.len() < 2 {
        bail!("expected at least (L, C), got {dims:?}")
    }
    let (l, c) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    let lead: usize = dims[..dims.len() - 2].iter().product();
    let y = f(&x.reshape((lead, l, c))?)?;
    let mut out = dims[..dims.len() - 2].to_vec();
    out.extend_from_slice(&y.dims()[1..]);
    y.reshape(out)
}

/// `nn.LayerNorm(dim)` with its `weight` and `bias`.
pub fn layer_norm(vb: VarBuilder, dim: usize) -> Result<LayerNorm> {
    candle_nn::layer_norm(dim, LAYER_NORM_EPS, vb)
}

/// `nn.LayerNorm(dim, elementwise_affine=False)`: no keys.
pub fn plain_layer_norm(dim: usize, dtype: DType, device: &candle_core::Device) -> Result<LayerNorm> {
    crate::core::ops::plain_layer_norm(dim, LAYER_NORM_EPS, dtype, device)
}

/// `models_ae.Attention`: `to_q` and the fused `to_kv` without bias, `to_out` with bias, scale
/// `dim_head^-½`. Used 1-head with `dim_head = dim` for the cross-attentions and `heads × dim_head`
/// for the decoder's self-attention.
#[derive(Clone, Debug)]
pub struct AeAttention {
    to_q: Linear,
    to_kv: Linear,
    to_out: Linear,
    heads: usize,
    dim_head: usize,
}

impl AeAttention {
    pub fn load(vb: VarBuilder, query_dim: usize, context_dim: usize, heads: usize, dim_head: usize) -> Result<Self> {
        let inner = heads * dim_head;
        Ok(Self {
            to_q: linear_no_bias(query_dim, inner, vb.pp("to_q"))?,
            to_kv: linear_no_bias(context_dim, 2 * inner, vb.pp("to_kv"))?,
            to_out: linear(inner, query_dim, vb.pp("to_out"))?,
            heads,
            dim_head,
        })
    }

    /// `x` `(B, L, query_dim)`, `context` `(B, S, context_dim)` → `(B, L, query_dim)`.
    pub fn forward(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let inner = self.heads * self.dim_head;
        let q = split_heads(&self.to_q.forward(x)?, self.heads)?;
        let kv = self.to_kv.forward(context)?;
        let k = split_heads(&kv.narrow(D::Minus1, 0, inner)?, self.heads)?;
        let v = split_heads(&kv.narrow(D::Minus1, inner, inner)?, self.heads)?;
        let scale = 1.0 / (self.dim_head as f64).sqrt();
        let o = scaled_dot_product_attention(&q, &k, &v, None, Some(scale))?;
        self.to_out.forward(&merge_heads(&o)?)
    }
}

/// `PreNorm(dim, Attention, context_dim)`: keys `norm`, `norm_context` (cross-attention only),
/// `fn.*`. Self-attention when built without a context norm.
#[derive(Clone, Debug)]
pub struct PreNormAttention {
    norm: LayerNorm,
    norm_context: Option<LayerNorm>,
    attn: AeAttention,
}

impl PreNormAttention {
    /// Cross-attention from `query_dim` to `context_dim`, one head as wide as `context_dim`
    /// (the reference's `Attention(q, c, heads=1, dim_head=c)`).
    pub fn cross(vb: VarBuilder, query_dim: usize, context_dim: usize) -> Result<Self> {
        Ok(Self {
            norm: layer_norm(vb.pp("norm"), query_dim)?,
            norm_context: Some(layer_norm(vb.pp("norm_context"), context_dim)?),
            attn: AeAttention::load(vb.pp("fn"), query_dim, context_dim, 1, context_dim)?,
        })
    }

    /// Self-attention (`Attention(dim, heads, dim_head)`; DropPath is the identity at inference).
    pub fn self_attn(vb: VarBuilder, dim: usize, heads: usize, dim_head: usize) -> Result<Self> {
        Ok(Self {
            norm: layer_norm(vb.pp("norm"), dim)?,
            norm_context: None,
            attn: AeAttention::load(vb.pp("fn"), dim, dim, heads, dim_head)?,
        })
    }

    /// The pre-normed attention without the residual; `context` is ignored for self-attention.
    pub fn forward(&self, x: &Tensor, context: Option<&Tensor>) -> Result<Tensor> {
        let xn = self.norm.forward(x)?;
        match (&self.norm_context, context) {
            (Some(nc), Some(c)) => self.attn.forward(&xn, &nc.forward(c)?),
            (Some(_), None) => bail!("PreNorm cross-attention needs a context"),
            (None, _) => self.attn.forward(&xn, &xn),
        }
    }
}

/// `x * gelu(gates)` with `x, gates = h.chunk(2, -1)` and the exact (erf) GELU of `F.gelu`.
fn geglu(h: &Tensor) -> Result<Tensor> {
    let half = h.dim(D::Minus1)? / 2;
    h.narrow(D::Minus1, 0, half)?
        .mul(&h.narrow(D::Minus1, half, half)?.gelu_erf()?)
}

/// `PreNorm(dim, models_ae.FeedForward(dim))`: keys `norm`, `fn.net.0` (dim → 8·dim),
/// `fn.net.2` (4·dim → dim).
#[derive(Clone, Debug)]
pub struct PreNormFeedForward {
    norm: LayerNorm,
    proj_in: Linear,
    proj_out: Linear,
}

impl PreNormFeedForward {
    pub fn load(vb: VarBuilder, dim: usize) -> Result<Self> {
        let f = vb.pp("fn").pp("net");
        Ok(Self {
            norm: layer_norm(vb.pp("norm"), dim)?,
            proj_in: linear(dim, dim * 4 * 2, f.pp("0"))?,
            proj_out: linear(dim * 4, dim, f.pp("2"))?,
        })
    }
}

impl Module for PreNormFeedForward {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.proj_out
            .forward(&geglu(&self.proj_in.forward(&self.norm.forward(x)?)?)?)
    }
}

/// `models_diff.FeedForward(dim, glu=True)`: keys `net.0.proj` (dim → 8·dim), `net.2`.
#[derive(Clone, Debug)]
pub struct GegluFeedForward {
    proj_in: Linear,
    proj_out: Linear,
}

impl GegluFeedForward {
    pub fn load(vb: VarBuilder, dim: usize) -> Result<Self> {
        let inner = dim * 4;
        Ok(Self {
            proj_in: linear(dim, inner * 2, vb.pp("net").pp("0").pp("proj"))?,
            proj_out: linear(inner, dim, vb.pp("net").pp("2"))?,
        })
    }
}

impl Module for GegluFeedForward {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.proj_out.forward(&geglu(&self.proj_in.forward(x)?)?)
    }
}

/// `AdaLayerNorm`: `LayerNorm(x) · (1 + scale) + shift` with `scale, shift = linear(emb).chunk(2)`
/// (scale first). The reference's unused `silu` member has no weights; the embedding it gets has
/// already been through SiLU in `LatentArrayTransformer`.
#[derive(Clone, Debug)]
pub struct AdaLayerNorm {
    linear: Linear,
    norm: LayerNorm,
}

impl AdaLayerNorm {
    pub fn load(vb: VarBuilder, dim: usize) -> Result<Self> {
        Ok(Self {
            linear: linear(dim, 2 * dim, vb.pp("linear"))?,
            norm: plain_layer_norm(dim, vb.dtype(), vb.device())?,
        })
    }

    /// `x` `(…, L, C)`, `emb` broadcastable to it (`(B, 1, C)` or `(B, 1, 1, C)`).
    pub fn forward(&self, x: &Tensor, emb: &Tensor) -> Result<Tensor> {
        let e = self.linear.forward(emb)?;
        let c = x.dim(D::Minus1)?;
        let scale = e.narrow(D::Minus1, 0, c)?;
        let shift = e.narrow(D::Minus1, c, c)?;
        self.norm
            .forward(x)?
            .broadcast_mul(&(scale + 1.0)?)?
            .broadcast_add(&shift)
    }
}

/// `PositionalEmbedding(channels, max_positions=1e4, endpoint=False)`: for each value `x`,
/// `[cos(x·f_i)…, sin(x·f_i)…]` with `f_i = (1/1e4)^(i / (channels/2))` computed in f32 as torch does.
pub fn noise_embedding(c_noise: &Tensor, channels: usize) -> Result<Tensor> {
    let half = channels / 2;
    let base = (1.0 / NOISE_MAX_PERIOD) as f32;
    let freqs: Vec<f32> = (0..half).map(|i| base.powf(i as f32 / half as f32)).collect();
    let f = Tensor::from_vec(freqs, (1, half), c_noise.device())?.to_dtype(c_noise.dtype())?;
    let x = c_noise.flatten_all()?.unsqueeze(1)?.broadcast_mul(&f)?;
    Tensor::cat(&[x.cos()?, x.sin()?], 1)
}

/// The reference's `PointEmbed(dim=dim)` with strict keys: `mlp.*` and the `basis` buffer
/// `(3, 3F)` = `(3, 24)` (block-diagonal `2^k·π`, projections before sin/cos), which must hold
/// the fixed frequencies the embedding computes: a checkpoint with another basis would be
/// another network. An all-zero basis is what the collecting loader hands out for a missing or
/// misshapen tensor, which it reports itself, so it is not checked here.
pub fn load_point_embed(vb: VarBuilder, dim: usize) -> Result<PointEmbed> {
    let f = POINT_EMBED_HIDDEN / 6;
    let basis = vb.get((3, 3 * f), "basis")?.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    let all_zero = basis.iter().flatten().all(|&v| v == 0.0);
    let reference = crate::core::ops::fourier::basis(f);
    for (axis, row) in basis.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            let expect = reference[axis * 3 * f + j];
            if !all_zero && (v - expect).abs() > 1e-3 * expect.abs().max(1.0) {
                bail!(
                    "point_embed.basis[{axis}][{j}] = {v}, expected {expect}: not the Fourier basis of the reference's PointEmbed"
                )
            }
        }
    }
    PointEmbed::load(vb, POINT_EMBED_HIDDEN, dim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn noise_embedding_is_cos_then_sin() {
        let t = Tensor::new(&[0.5f32], &Device::Cpu).unwrap();
        let e = noise_embedding(&t, 8).unwrap().to_vec2::<f32>().unwrap();
        // freqs 1, 1e-1, 1e-2, 1e-3
        assert!((e[0][0] - 0.5f32.cos()).abs() < 1e-6);
        assert!((e[0][1] - 0.05f32.cos()).abs() < 1e-6);
        assert!((e[0][4] - 0.5f32.sin()).abs() < 1e-6);
        assert!((e[0][7] - 0.0005f32.sin()).abs() < 1e-6);
    }

    #[test]
    fn over_rows_keeps_leading_axes() {
        let x = Tensor::arange(0f32, 24.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 3, 2, 2))
            .unwrap();
        let y = over_rows(&x, |t| {
            assert_eq!(t.dims(), &[6, 2, 2]);
            t.sum_keepdim(2)
        })
        .unwrap();
        assert_eq!(y.dims(), &[2, 3, 2, 1]);
    }
}
