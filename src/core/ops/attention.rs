//! Attention written with matmul + softmax, differentiable and device-agnostic (candle's fused
//! `sdpa` exists only for Metal):
//!
//! * [`scaled_dot_product_attention`] — `torch.nn.functional.scaled_dot_product_attention`;
//! * [`MultiHeadAttention`] — `torch.nn.MultiheadAttention(batch_first=True)` with its key names
//!   (`in_proj_weight`, `in_proj_bias`, `out_proj.weight`, `out_proj.bias`; or
//!   `q_proj_weight`/`k_proj_weight`/`v_proj_weight` when `kdim`/`vdim` differ);
//! * [`QkvAttention`] — separate `to_q`/`to_k`/`to_v` linears and an output linear named
//!   `to_out.0` (diffusers, LDM) or `proj_attn` (MONAI-generative's `AttentionBlock`).

use candle_core::{D, DType, Module, Result, Tensor, bail};
use candle_nn::{Init, Linear, VarBuilder};

/// Softmax over the last axis: candle_nn's fused kernel when no gradient is needed, the
/// composite (max, exp, sum, div) otherwise — the fused one has no backward.
fn softmax_last(x: &Tensor) -> Result<Tensor> {
    if x.track_op() {
        candle_nn::ops::softmax(x, D::Minus1)
    } else {
        candle_nn::ops::softmax_last_dim(x)
    }
}

/// A float tensor of `-inf` where `masked` is non-zero and `0` elsewhere.
fn bool_to_additive(masked: &Tensor, dtype: DType) -> Result<Tensor> {
    let zeros = Tensor::zeros(masked.shape(), dtype, masked.device())?;
    let ninf = Tensor::full(f32::NEG_INFINITY, masked.shape(), masked.device())?.to_dtype(dtype)?;
    masked.ne(0u32)?.where_cond(&ninf, &zeros)
}

fn is_float(dtype: DType) -> bool {
    matches!(dtype, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
}

/// `softmax(q·kᵀ·scale + mask)·v` for `q` `(…, L, E)`, `k` `(…, S, E)`, `v` `(…, S, Ev)` (usually
/// `(B, heads, seq, dim)`); returns `(…, L, Ev)`.
///
/// `scale` defaults to `1/√E`. `mask` broadcasts to `(…, L, S)` with torch's
/// `scaled_dot_product_attention` meaning: a **boolean** (u8/u32/i64) mask marks with non-zero
/// the pairs that *take part*; a **float** mask is added to the scores. A row with nothing to
/// attend to gives NaN, as torch's math path does.
pub fn scaled_dot_product_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: Option<f64>,
) -> Result<Tensor> {
    let e = q.dim(D::Minus1)?;
    if k.dim(D::Minus1)? != e {
        bail!("attention: query dim {e} but key dim {}", k.dim(D::Minus1)?)
    }
    let scale = scale.unwrap_or(1.0 / (e as f64).sqrt());
    let scores = (q.contiguous()?.matmul(&k.contiguous()?.t()?)? * scale)?;
    let scores = match mask {
        None => scores,
        Some(m) if is_float(m.dtype()) => scores.broadcast_add(&m.to_dtype(scores.dtype())?)?,
        Some(m) => {
            let allowed = m.broadcast_as(scores.shape())?.ne(0u32)?;
            let ninf = Tensor::full(f32::NEG_INFINITY, scores.shape(), scores.device())?.to_dtype(scores.dtype())?;
            allowed.where_cond(&scores, &ninf)?
        }
    };
    softmax_last(&scores)?.matmul(&v.contiguous()?)
}

/// `(B, L, heads·d)` → `(B, heads, L, d)`.
fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, l, c) = x.dims3()?;
    if !c.is_multiple_of(heads) {
        bail!("attention: {c} channels do not split into {heads} heads")
    }
    x.reshape((b, l, heads, c / heads))?.transpose(1, 2)?.contiguous()
}

/// `(B, heads, L, d)` → `(B, L, heads·d)`.
fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (b, h, l, d) = x.dims4()?;
    x.transpose(1, 2)?.reshape((b, l, h * d))
}

/// torch's default `nn.Linear` initialisation: U(±1/√fan_in) for weight and bias.
fn linear_init(fan_in: usize) -> Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform { lo: -bound, up: bound }
}

fn load_linear(vb: VarBuilder, in_dim: usize, out_dim: usize, bias: bool) -> Result<Linear> {
    let init = linear_init(in_dim);
    let w = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
    let b = if bias {
        Some(vb.get_with_hints(out_dim, "bias", init)?)
    } else {
        None
    };
    Ok(Linear::new(w, b))
}

/// `torch.nn.MultiheadAttention(embed_dim, num_heads, bias, kdim, vdim, batch_first=True)` in
/// evaluation mode (no dropout; `add_bias_kv` and `add_zero_attn` are not supported).
#[derive(Clone, Debug)]
pub struct MultiHeadAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    num_heads: usize,
    embed_dim: usize,
}

impl MultiHeadAttention {
    /// Reads torch's keys: `in_proj_weight` `(3E, E)` (or `q_proj_weight` `(E, E)`,
    /// `k_proj_weight` `(E, kdim)`, `v_proj_weight` `(E, vdim)` when `kdim`/`vdim` differ from
    /// `E`), `in_proj_bias` `(3E)` and `out_proj.bias` when `bias`, `out_proj.weight` `(E, E)`.
    pub fn load(
        vb: VarBuilder,
        embed_dim: usize,
        num_heads: usize,
        kdim: Option<usize>,
        vdim: Option<usize>,
        bias: bool,
    ) -> Result<Self> {
        if num_heads == 0 || !embed_dim.is_multiple_of(num_heads) {
            bail!("MultiheadAttention: embed_dim {embed_dim} must be divisible by num_heads {num_heads}")
        }
        let (kdim, vdim) = (kdim.unwrap_or(embed_dim), vdim.unwrap_or(embed_dim));
        let e = embed_dim;
        // torch: xavier_uniform_ on the projections, zero biases.
        let xavier = |fan_in: usize, fan_out: usize| {
            let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
            Init::Uniform { lo: -a, up: a }
        };
        let (wq, wk, wv) = if kdim == e && vdim == e {
            let w = vb.get_with_hints((3 * e, e), "in_proj_weight", xavier(e, 3 * e))?;
            (w.narrow(0, 0, e)?, w.narrow(0, e, e)?, w.narrow(0, 2 * e, e)?)
        } else {
            (
                vb.get_with_hints((e, e), "q_proj_weight", xavier(e, e))?,
                vb.get_with_hints((e, kdim), "k_proj_weight", xavier(kdim, e))?,
                vb.get_with_hints((e, vdim), "v_proj_weight", xavier(vdim, e))?,
            )
        };
        let (bq, bk, bv) = if bias {
            let b = vb.get_with_hints(3 * e, "in_proj_bias", Init::Const(0.0))?;
            (
                Some(b.narrow(0, 0, e)?),
                Some(b.narrow(0, e, e)?),
                Some(b.narrow(0, 2 * e, e)?),
            )
        } else {
            (None, None, None)
        };
        let vo = vb.pp("out_proj");
        let wo = vo.get_with_hints((e, e), "weight", linear_init(e))?;
        let bo = if bias {
            Some(vo.get_with_hints(e, "bias", Init::Const(0.0))?)
        } else {
            None
        };
        Ok(Self {
            q: Linear::new(wq, bq),
            k: Linear::new(wk, bk),
            v: Linear::new(wv, bv),
            out: Linear::new(wo, bo),
            num_heads,
            embed_dim,
        })
    }

    pub fn num_heads(&self) -> usize {
        self.num_heads
    }

    pub fn embed_dim(&self) -> usize {
        self.embed_dim
    }

    /// Self-attention without masks: `forward(x, x, x, None, None)`.
    pub fn forward_self(&self, x: &Tensor) -> Result<Tensor> {
        self.forward(x, x, x, None, None)
    }

    /// `query` `(B, L, E)`, `key` `(B, S, kdim)`, `value` `(B, S, vdim)` → `(B, L, E)`.
    ///
    /// Masks follow `nn.MultiheadAttention`: `attn_mask` `(L, S)` or `(B·heads, L, S)`, where a
    /// **boolean** (u8/u32/i64) non-zero entry means *not allowed* and a float entry is added;
    /// `key_padding_mask` `(B, S)`, non-zero (or float, added) for keys to ignore.
    pub fn forward(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        attn_mask: Option<&Tensor>,
        key_padding_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (b, l, _) = query.dims3()?;
        let s = key.dim(1)?;
        let h = self.num_heads;
        let q = split_heads(&self.q.forward(query)?, h)?;
        let k = split_heads(&self.k.forward(key)?, h)?;
        let v = split_heads(&self.v.forward(value)?, h)?;
        let dtype = q.dtype();
        let as_additive = |m: &Tensor| -> Result<Tensor> {
            if is_float(m.dtype()) {
                m.to_dtype(dtype)
            } else {
                bool_to_additive(m, dtype)
            }
        };
        let mut mask: Option<Tensor> = None;
        if let Some(m) = attn_mask {
            let m = as_additive(m)?;
            let m = match m.rank() {
                2 => m.reshape((1, 1, l, s))?,
                3 => m.reshape((b, h, l, s))?,
                _ => bail!(
                    "MultiheadAttention: attn_mask must be (L, S) or (B·heads, L, S), got {:?}",
                    m.dims()
                ),
            };
            mask = Some(m);
        }
        if let Some(m) = key_padding_mask {
            if m.dims() != [b, s] {
                bail!(
                    "MultiheadAttention: key_padding_mask must be ({b}, {s}), got {:?}",
                    m.dims()
                )
            }
            let m = as_additive(m)?.reshape((b, 1, 1, s))?;
            mask = Some(match mask {
                None => m,
                Some(a) => a.broadcast_add(&m)?,
            });
        }
        let o = scaled_dot_product_attention(&q, &k, &v, mask.as_ref(), None)?;
        self.out.forward(&merge_heads(&o)?)
    }
}

/// Options of [`QkvAttention`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QkvAttentionConfig {
    pub num_heads: usize,
    /// Channels per head (so `to_q` maps to `num_heads · head_dim`).
    pub head_dim: usize,
    /// Biases on `to_q`, `to_k`, `to_v` (MONAI: yes; diffusers/LDM: no).
    pub qkv_bias: bool,
    /// Bias on the output linear.
    pub out_bias: bool,
    /// Key prefix of the output linear: `"to_out.0"` (diffusers/LDM) or `"proj_attn"` (MONAI).
    pub out_name: String,
}

impl QkvAttentionConfig {
    /// MONAI-generative `AttentionBlock`: biases everywhere, output `proj_attn`.
    pub fn monai(channels: usize, num_heads: usize) -> Self {
        Self {
            num_heads,
            head_dim: channels / num_heads.max(1),
            qkv_bias: true,
            out_bias: true,
            out_name: "proj_attn".into(),
        }
    }

    /// diffusers / LDM `CrossAttention`: no q/k/v bias, output `to_out.0` with bias.
    pub fn diffusers(num_heads: usize, head_dim: usize) -> Self {
        Self {
            num_heads,
            head_dim,
            qkv_bias: false,
            out_bias: true,
            out_name: "to_out.0".into(),
        }
    }
}

/// Attention with separate `to_q`, `to_k`, `to_v` linears and an output linear (`to_out.0` or
/// `proj_attn`); scale `1/√head_dim`. Self-attention, or cross-attention to a `context`.
#[derive(Clone, Debug)]
pub struct QkvAttention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    num_heads: usize,
    head_dim: usize,
}

impl QkvAttention {
    /// `query_dim` → `num_heads·head_dim` for q; `context_dim` (default `query_dim`) for k and v.
    pub fn load(
        vb: VarBuilder,
        query_dim: usize,
        context_dim: Option<usize>,
        cfg: &QkvAttentionConfig,
    ) -> Result<Self> {
        if cfg.num_heads == 0 || cfg.head_dim == 0 {
            bail!("QkvAttention: num_heads and head_dim must be positive")
        }
        let inner = cfg.num_heads * cfg.head_dim;
        let ctx = context_dim.unwrap_or(query_dim);
        Ok(Self {
            to_q: load_linear(vb.pp("to_q"), query_dim, inner, cfg.qkv_bias)?,
            to_k: load_linear(vb.pp("to_k"), ctx, inner, cfg.qkv_bias)?,
            to_v: load_linear(vb.pp("to_v"), ctx, inner, cfg.qkv_bias)?,
            to_out: load_linear(vb.pp(&cfg.out_name), inner, query_dim, cfg.out_bias)?,
            num_heads: cfg.num_heads,
            head_dim: cfg.head_dim,
        })
    }

    /// `x` `(B, L, query_dim)`, `context` `(B, S, context_dim)` (default `x`), optional `mask`
    /// as in [`scaled_dot_product_attention`] → `(B, L, query_dim)`.
    pub fn forward(&self, x: &Tensor, context: Option<&Tensor>, mask: Option<&Tensor>) -> Result<Tensor> {
        self.to_out.forward(&self.attend(x, context, mask)?)
    }

    /// The attention output before the output linear: `(B, L, num_heads·head_dim)`.
    pub fn attend(&self, x: &Tensor, context: Option<&Tensor>, mask: Option<&Tensor>) -> Result<Tensor> {
        let ctx = context.unwrap_or(x);
        let q = split_heads(&self.to_q.forward(x)?, self.num_heads)?;
        let k = split_heads(&self.to_k.forward(ctx)?, self.num_heads)?;
        let v = split_heads(&self.to_v.forward(ctx)?, self.num_heads)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let o = scaled_dot_product_attention(&q, &k, &v, mask, Some(scale))?;
        merge_heads(&o)
    }
}

impl Module for QkvAttention {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        QkvAttention::forward(self, x, None, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn uniform_scores_average_the_values() {
        let dev = Device::Cpu;
        let q = Tensor::zeros((1, 1, 2, 4), DType::F32, &dev).unwrap();
        let k = Tensor::ones((1, 1, 3, 4), DType::F32, &dev).unwrap();
        let v = Tensor::arange(0f32, 6.0, &dev).unwrap().reshape((1, 1, 3, 2)).unwrap();
        let o = scaled_dot_product_attention(&q, &k, &v, None, None).unwrap();
        assert_eq!(
            o.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![2.0, 3.0, 2.0, 3.0]
        );
        // A boolean mask that keeps only the last key.
        let m = Tensor::new(&[[0u8, 0, 1]], &dev).unwrap();
        let o = scaled_dot_product_attention(&q, &k, &v, Some(&m), None).unwrap();
        assert_eq!(
            o.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![4.0, 5.0, 4.0, 5.0]
        );
    }
}
