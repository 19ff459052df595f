//! Layers shared by `Latent_UVIT` and the point-cloud encoder, under upstream's key names:
//! timm's `Attention` and `Mlp`, WaLa's `CrossAttention` (also the encoder's `MAB`), the
//! sinusoidal `TimestepEmbedder` and `Global_Proj_Layer`. Inference only (dropout is the identity).

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{Init, LayerNorm, Linear, VarBuilder, linear, linear_no_bias};

use crate::core::ops::scaled_dot_product_attention;

/// `nn.LayerNorm`'s default ε (q/k norms, patch embeddings, `Global_Proj_Layer`, PointNet).
pub const LN_EPS: f64 = 1e-5;
/// The DiT blocks' and the encoder's non-affine norms use ε 1e-6.
pub const BLOCK_LN_EPS: f64 = 1e-6;
/// timm `Mlp` hidden width = 4 × input in every block here.
pub const MLP_RATIO: usize = 4;
/// `TimestepEmbedder(frequency_embedding_size=256, max_period=10000)`.
const FREQ_SIZE: usize = 256;
const MAX_PERIOD: f64 = 10000.0;

/// Affine `nn.LayerNorm(width)`: keys `weight`, `bias` (a fresh one starts at 1 and 0, as torch's).
pub fn layer_norm(vb: VarBuilder, width: usize) -> Result<LayerNorm> {
    crate::core::ops::layer_norm(vb, width, LN_EPS)
}

/// `nn.init.trunc_normal_(zeros, 0, std)`: torch truncates at ±2 in absolute terms, which is
/// hundreds of standard deviations for the 0.01–0.02 used here, so a plain normal is the same law.
pub fn small_normal(std: f64) -> Init {
    Init::Randn { mean: 0.0, stdev: std }
}

/// `nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)`: no keys.
pub fn plain_layer_norm(vb: &VarBuilder, width: usize) -> Result<LayerNorm> {
    crate::core::ops::plain_layer_norm(width, BLOCK_LN_EPS, vb.dtype(), vb.device())
}

/// `(B, N, heads·d)` → `(B, heads, N, d)`, contiguous (the q/k norms then run on the fast path).
fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, n, c) = x.dims3()?;
    x.reshape((b, n, heads, c / heads))?.transpose(1, 2)?.contiguous()
}

/// Per-head LayerNorms on q and k (weights shared by all heads), softmax attention with torch's
/// default scale `head_dim^-½`, heads concatenated head-major.
fn attend(q: &Tensor, k: &Tensor, v: &Tensor, q_norm: &LayerNorm, k_norm: &LayerNorm) -> Result<Tensor> {
    let (b, h, n, d) = q.dims4()?;
    let o = scaled_dot_product_attention(&q_norm.forward(q)?, &k_norm.forward(k)?, v, None, None)?;
    o.transpose(1, 2)?.reshape((b, n, h * d))
}

/// timm `Attention(dim, heads, qkv_bias, qk_norm=True, norm_layer=LayerNorm)`: one `qkv` Linear
/// whose output columns are `[q | k | v]`, each split head-major; `proj` always has a bias.
#[derive(Clone, Debug)]
pub struct SelfAttention {
    qkv: Linear,
    q_norm: LayerNorm,
    k_norm: LayerNorm,
    proj: Linear,
    heads: usize,
}

impl SelfAttention {
    pub fn load(vb: VarBuilder, dim: usize, heads: usize, qkv_bias: bool) -> Result<Self> {
        let qkv = if qkv_bias {
            linear(dim, 3 * dim, vb.pp("qkv"))?
        } else {
            linear_no_bias(dim, 3 * dim, vb.pp("qkv"))?
        };
        Ok(Self {
            qkv,
            q_norm: layer_norm(vb.pp("q_norm"), dim / heads)?,
            k_norm: layer_norm(vb.pp("k_norm"), dim / heads)?,
            proj: linear(dim, dim, vb.pp("proj"))?,
            heads,
        })
    }
}

impl Module for SelfAttention {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dim = x.dim(D::Minus1)?;
        let qkv = self.qkv.forward(x)?;
        let part = |i: usize| split_heads(&qkv.narrow(D::Minus1, i * dim, dim)?, self.heads);
        let o = attend(&part(0)?, &part(1)?, &part(2)?, &self.q_norm, &self.k_norm)?;
        self.proj.forward(&o)
    }
}

/// WaLa's `CrossAttention` (DiT blocks) and the point-cloud encoder's `MAB`: the same layout,
/// `q` from the queries, `kv` from the context with columns `[k | v]`, per-head q/k norms, `proj`.
/// No residual, norm or gate: the callers add what upstream adds.
#[derive(Clone, Debug)]
pub struct CrossAttention {
    q: Linear,
    kv: Linear,
    q_norm: LayerNorm,
    k_norm: LayerNorm,
    proj: Linear,
    heads: usize,
}

impl CrossAttention {
    /// Queries of width `dim`, context of width `context_dim`, `dim` wide inside and out.
    pub fn load(vb: VarBuilder, dim: usize, context_dim: usize, heads: usize) -> Result<Self> {
        Ok(Self {
            q: linear(dim, dim, vb.pp("q"))?,
            kv: linear(context_dim, 2 * dim, vb.pp("kv"))?,
            q_norm: layer_norm(vb.pp("q_norm"), dim / heads)?,
            k_norm: layer_norm(vb.pp("k_norm"), dim / heads)?,
            proj: linear(dim, dim, vb.pp("proj"))?,
            heads,
        })
    }

    pub fn forward(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let q = split_heads(&self.q.forward(x)?, self.heads)?;
        let kv = self.kv.forward(context)?;
        let dim = kv.dim(D::Minus1)? / 2;
        let k = split_heads(&kv.narrow(D::Minus1, 0, dim)?, self.heads)?;
        let v = split_heads(&kv.narrow(D::Minus1, dim, dim)?, self.heads)?;
        self.proj.forward(&attend(&q, &k, &v, &self.q_norm, &self.k_norm)?)
    }
}

/// timm `Mlp` with `GELU(approximate="tanh")`: `fc2(gelu(fc1(x)))` (candle's `gelu` is the tanh
/// form).
#[derive(Clone, Debug)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    pub fn load(vb: VarBuilder, cin: usize, hidden: usize, cout: usize) -> Result<Self> {
        Ok(Self {
            fc1: linear(cin, hidden, vb.pp("fc1"))?,
            fc2: linear(hidden, cout, vb.pp("fc2"))?,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.gelu()?)
    }
}

/// `Sequential(Linear, SiLU, Linear)`: keys `.0` and `.2`.
#[derive(Clone, Debug)]
pub struct SiluMlp {
    l0: Linear,
    l2: Linear,
}

impl SiluMlp {
    pub fn load(vb: VarBuilder, cin: usize, hidden: usize, cout: usize) -> Result<Self> {
        Ok(Self {
            l0: linear(cin, hidden, vb.pp("0"))?,
            l2: linear(hidden, cout, vb.pp("2"))?,
        })
    }
}

impl Module for SiluMlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.l2.forward(&self.l0.forward(x)?.silu()?)
    }
}

/// `TimestepEmbedder(H)`: GLIDE's sinusoidal embedding of the (original, unscaled) timestep,
/// **cos half first**, then `mlp.0`, SiLU, `mlp.2`.
#[derive(Clone, Debug)]
pub struct TimestepEmbedder {
    mlp: SiluMlp,
    /// `exp(−ln(10⁴)·i/128)`, i < 128, as a `(1, 128)` row.
    freqs: Tensor,
}

impl TimestepEmbedder {
    pub fn load(vb: VarBuilder, hidden: usize) -> Result<Self> {
        let half = FREQ_SIZE / 2;
        // Upstream computes the frequencies in f32, op by op; at t ≈ 1000 one ulp of a frequency
        // moves the phase by ~6e-5, so they are rounded the same way here rather than in f64.
        let c = -(MAX_PERIOD.ln() as f32);
        let freqs: Vec<f32> = (0..half).map(|i| (c * i as f32 / half as f32).exp()).collect();
        Ok(Self {
            mlp: SiluMlp::load(vb.pp("mlp"), FREQ_SIZE, hidden, hidden)?,
            freqs: Tensor::from_vec(freqs, (1, half), vb.device())?.to_dtype(vb.dtype())?,
        })
    }

    /// `t`: `(B,)` timesteps of any float or integer dtype; returns `(B, H)`.
    pub fn forward(&self, t: &Tensor) -> Result<Tensor> {
        let args = t
            .to_dtype(self.freqs.dtype())?
            .unsqueeze(1)?
            .broadcast_mul(&self.freqs)?;
        let emb = Tensor::cat(&[args.cos()?, args.sin()?], 1)?;
        self.mlp.forward(&emb)
    }
}

/// `Global_Proj_Layer(in, out, hidden)`: two Linear → LayerNorm → SiLU layers per token
/// (`proj_layer.{0,1,3,4}`), the **mean over tokens**, then Linear → SiLU → Linear (`mlp.{0,2}`).
/// Turns condition tokens `(B, Nc, in)` into one vector `(B, out)`.
#[derive(Clone, Debug)]
pub struct GlobalProj {
    lin0: Linear,
    ln1: LayerNorm,
    lin3: Linear,
    ln4: LayerNorm,
    mlp: SiluMlp,
}

impl GlobalProj {
    pub fn load(vb: VarBuilder, cin: usize, cout: usize, hidden: usize) -> Result<Self> {
        let p = vb.pp("proj_layer");
        Ok(Self {
            lin0: linear(cin, hidden, p.pp("0"))?,
            ln1: layer_norm(p.pp("1"), hidden)?,
            lin3: linear(hidden, hidden, p.pp("3"))?,
            ln4: layer_norm(p.pp("4"), hidden)?,
            mlp: SiluMlp::load(vb.pp("mlp"), hidden, cout, cout)?,
        })
    }
}

impl Module for GlobalProj {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.ln1.forward(&self.lin0.forward(x)?)?.silu()?;
        let y = self.ln4.forward(&self.lin3.forward(&y)?)?.silu()?;
        self.mlp.forward(&y.mean(1)?)
    }
}
