//! The diffusion denoisers of `core/network/models_diff.py`: `LatentArrayTransformer` (AdaLN
//! transformer over a latent set) inside `EDMPrecond` (EDM preconditioning + condition encoder),
//! for shapes `(B, M, 8)` and for deformation sequences `(B, T, M, 32)`.
//!
//! Deformation block order (`BasicTransformerBlock.forward` with `is_deform`): per-frame
//! self-attention → cross-attention to the projected shape latents → observation
//! cross-attention(s) (paired tokens, or frame-1 tokens then frame-t tokens) → temporal
//! self-attention of every latent index across the T frames (`withT`) → GEGLU FF. Every
//! sub-layer is `x + f(AdaLN(x, emb))`. `CrossAttentionT` on `(B, T, N, C)` is the plain attention
//! of each `(b, t)` slice, which is how it runs here.

use candle_core::{DType, Module, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder, linear, linear_no_bias};

use super::M2vsError;
use super::condition::{Scan2Latent, Scan2LatentPairs};
use super::config::{DenoiserConfig, NOISE_CHANNELS, Observation};
use super::layers::{AdaLayerNorm, GegluFeedForward, layer_norm, noise_embedding, over_rows};
use crate::core::diffusion::{
    Denoiser, EdmConfig, EdmDenoiser, EdmPrecond, NoiseSource, Prediction, Progress, Rng, edm_sample,
};
use crate::core::ops::{QkvAttention, QkvAttentionConfig};

/// `CrossAttention` / `CrossAttentionT` (keys `to_q`, `to_k`, `to_v` without bias, `to_out.0`),
/// over the last two axes of `(…, L, C)`.
#[derive(Clone, Debug)]
struct Attn(QkvAttention);

impl Attn {
    fn load(vb: VarBuilder, cfg: &DenoiserConfig) -> candle_core::Result<Self> {
        let inner = cfg.inner_dim();
        Ok(Self(QkvAttention::load(
            vb,
            inner,
            None,
            &QkvAttentionConfig::diffusers(cfg.n_heads, cfg.d_head),
        )?))
    }

    fn forward(&self, x: &Tensor, context: Option<&Tensor>) -> candle_core::Result<Tensor> {
        match context {
            None => over_rows(x, |x| self.0.forward(x, None, None)),
            Some(c) => {
                let (l, ch) = (c.dim(candle_core::D::Minus2)?, c.dim(candle_core::D::Minus1)?);
                let c = c.reshape(((), l, ch))?;
                over_rows(x, |x| self.0.forward(x, Some(&c), None))
            }
        }
    }
}

/// `x + attn(AdaLN(x, emb), context)`.
#[derive(Clone, Debug)]
struct AdaAttn {
    norm: AdaLayerNorm,
    attn: Attn,
}

impl AdaAttn {
    fn load(vb: &VarBuilder, attn: &str, norm: &str, cfg: &DenoiserConfig) -> candle_core::Result<Self> {
        Ok(Self {
            norm: AdaLayerNorm::load(vb.pp(norm), cfg.inner_dim())?,
            attn: Attn::load(vb.pp(attn), cfg)?,
        })
    }

    fn forward(&self, x: &Tensor, emb: &Tensor, context: Option<&Tensor>) -> candle_core::Result<Tensor> {
        x + self.attn.forward(&self.norm.forward(x, emb)?, context)?
    }
}

/// Observation cross-attention(s) of a deformation block.
#[derive(Clone, Debug)]
enum ObsAttn {
    /// `attn5` to the paired tokens.
    Paired(AdaAttn),
    /// `attn5` to frame-1 tokens, `attn6` to frame-t tokens.
    Separate(AdaAttn, AdaAttn),
}

#[derive(Clone, Debug)]
struct DeformParts {
    shape: AdaAttn,
    obs: ObsAttn,
    temporal: Option<AdaAttn>,
}

/// `BasicTransformerBlock` (keys `attn1`, `attn2`, `attn3`, `attn5`, `attn6`, `norm1…6`, `ff`).
#[derive(Clone, Debug)]
struct Block {
    attn1: AdaAttn,
    /// Shape denoiser: `attn2` to the observation tokens. `None` for deformation blocks.
    cross: Option<AdaAttn>,
    deform: Option<DeformParts>,
    norm4: AdaLayerNorm,
    ff: GegluFeedForward,
}

impl Block {
    fn load(vb: VarBuilder, cfg: &DenoiserConfig) -> candle_core::Result<Self> {
        let (cross, deform) = if cfg.is_deform {
            let obs = match cfg.observation {
                Observation::Paired => ObsAttn::Paired(AdaAttn::load(&vb, "attn5", "norm5", cfg)?),
                Observation::Separate => ObsAttn::Separate(
                    AdaAttn::load(&vb, "attn5", "norm5", cfg)?,
                    AdaAttn::load(&vb, "attn6", "norm6", cfg)?,
                ),
            };
            let temporal = if cfg.with_t {
                Some(AdaAttn::load(&vb, "attn3", "norm3", cfg)?)
            } else {
                None
            };
            let shape = AdaAttn::load(&vb, "attn2", "norm2", cfg)?;
            (None, Some(DeformParts { shape, obs, temporal }))
        } else {
            (Some(AdaAttn::load(&vb, "attn2", "norm2", cfg)?), None)
        };
        Ok(Self {
            attn1: AdaAttn::load(&vb, "attn1", "norm1", cfg)?,
            cross,
            deform,
            norm4: AdaLayerNorm::load(vb.pp("norm4"), cfg.inner_dim())?,
            ff: GegluFeedForward::load(vb.pp("ff"), cfg.inner_dim())?,
        })
    }

    fn forward(&self, x: &Tensor, emb: &Tensor, cond: &Projected) -> candle_core::Result<Tensor> {
        let mut x = self.attn1.forward(x, emb, None)?;
        if let Some(c) = &self.cross {
            x = c.forward(&x, emb, Some(&cond.obs))?;
        }
        if let Some(d) = &self.deform {
            x = d.shape.forward(&x, emb, cond.shape.as_ref())?;
            x = match &d.obs {
                ObsAttn::Paired(a) => a.forward(&x, emb, Some(&cond.obs))?,
                ObsAttn::Separate(src, tgt) => {
                    let x = src.forward(&x, emb, Some(&cond.obs))?;
                    tgt.forward(&x, emb, cond.obs_tgt.as_ref())?
                }
            };
            if let Some(t) = &d.temporal {
                // (B, T, M, C) → (B, M, T, C): each latent index attends across the frames.
                let xt = x.permute((0, 2, 1, 3))?.contiguous()?;
                let xt = t.forward(&xt, &emb.permute((0, 2, 1, 3))?, None)?;
                x = xt.permute((0, 2, 1, 3))?.contiguous()?;
            }
        }
        &x + self.ff.forward(&self.norm4.forward(&x, emb)?)?
    }
}

/// Conditions as the transformer blocks take them (shape latents already projected).
struct Projected {
    obs: Tensor,
    obs_tgt: Option<Tensor>,
    shape: Option<Tensor>,
}

/// `LatentArrayTransformer` (keys `proj_in`, `shape_cond_proj`, `transformer_blocks.{i}.*`,
/// `norm`, `proj_out`, `map_layer0`, `map_layer1`).
#[derive(Clone, Debug)]
pub struct LatentArrayTransformer {
    proj_in: Linear,
    shape_cond_proj: Option<Linear>,
    blocks: Vec<Block>,
    norm: LayerNorm,
    proj_out: Linear,
    map_layer0: Linear,
    map_layer1: Linear,
    is_deform: bool,
}

impl LatentArrayTransformer {
    pub fn load(vb: VarBuilder, cfg: &DenoiserConfig) -> candle_core::Result<Self> {
        let inner = cfg.inner_dim();
        Ok(Self {
            proj_in: linear_no_bias(cfg.channels, inner, vb.pp("proj_in"))?,
            shape_cond_proj: if cfg.is_deform {
                Some(linear_no_bias(cfg.shape_dim, inner, vb.pp("shape_cond_proj"))?)
            } else {
                None
            },
            blocks: (0..cfg.depth)
                .map(|i| Block::load(vb.pp("transformer_blocks").pp(i.to_string()), cfg))
                .collect::<candle_core::Result<_>>()?,
            norm: layer_norm(vb.pp("norm"), inner)?,
            proj_out: linear_no_bias(inner, cfg.channels, vb.pp("proj_out"))?,
            map_layer0: linear(NOISE_CHANNELS, inner, vb.pp("map_layer0"))?,
            map_layer1: linear(inner, inner, vb.pp("map_layer1"))?,
            is_deform: cfg.is_deform,
        })
    }

    /// `x` `(B, M, channels)` or `(B, T, M, channels)`, `c_noise` `(B,)`, encoded conditions.
    pub fn forward(&self, x: &Tensor, c_noise: &Tensor, cond: &Conditioning) -> candle_core::Result<Tensor> {
        let emb = noise_embedding(&c_noise.to_dtype(DType::F32)?, NOISE_CHANNELS)?;
        let emb = if self.is_deform {
            emb.unsqueeze(1)?.unsqueeze(1)?
        } else {
            emb.unsqueeze(1)?
        };
        let emb = self.map_layer0.forward(&emb)?.silu()?;
        let emb = self.map_layer1.forward(&emb)?.silu()?;
        let shape = match (&self.shape_cond_proj, &cond.shape) {
            (Some(p), Some(s)) => Some(p.forward(s)?),
            (Some(_), None) => candle_core::bail!("a deformation denoiser needs shape latents"),
            (None, _) => None,
        };
        let projected = Projected {
            obs: cond.obs.clone(),
            obs_tgt: cond.obs_tgt.clone(),
            shape,
        };
        let mut h = self.proj_in.forward(x)?;
        for b in &self.blocks {
            h = b.forward(&h, &emb, &projected)?;
        }
        self.proj_out.forward(&self.norm.forward(&h)?)
    }
}

/// Encoded conditions for one batch, computed once per sampling run (the reference re-encodes
/// them at every network call; the result is the same).
#[derive(Clone, Debug)]
pub struct Conditioning {
    /// Shape denoiser: `(B, N, C)` observation tokens. Deformation: `(B, T, N, C)` paired tokens
    /// or frame-1 tokens.
    pub obs: Tensor,
    /// Deformation without correspondences: frame-t tokens `(B, T, N, C)`.
    pub obs_tgt: Option<Tensor>,
    /// Deformation: the shape latents `(B, T, M, shape_dim)` (the reference repeats one set per frame).
    pub shape: Option<Tensor>,
}

/// What a condition encoder a checkpoint holds.
#[derive(Clone, Debug)]
enum CondEncoder {
    Scan(Scan2Latent),
    Pairs(Scan2LatentPairs),
}

/// `EDMPrecond`: the transformer under `model.*` and its condition encoder under `cond_enc.*`.
#[derive(Clone, Debug)]
pub struct LatentDenoiser {
    cfg: DenoiserConfig,
    pub model: LatentArrayTransformer,
    cond_enc: CondEncoder,
}

/// The transformer with fixed conditions, as the shared EDM code calls a network.
struct Bound<'a> {
    net: &'a LatentArrayTransformer,
    cond: &'a Conditioning,
}

impl Denoiser for Bound<'_> {
    fn predict(&self, x_t: &Tensor, t: &Tensor, _: Option<&Tensor>) -> candle_core::Result<Tensor> {
        self.net.forward(x_t, t, self.cond)
    }

    /// EDM's F(c_in·x, c_noise); the preconditioning around it ignores this.
    fn parameterization(&self) -> Prediction {
        Prediction::Sample
    }
}

impl LatentDenoiser {
    /// `vb` at the state dict's root. The config is validated first.
    pub fn load(vb: VarBuilder, cfg: &DenoiserConfig) -> candle_core::Result<Self> {
        cfg.validate().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let dim = cfg.inner_dim();
        let enc = vb.pp("cond_enc");
        let cond_enc = if cfg.is_deform && cfg.observation == Observation::Paired {
            CondEncoder::Pairs(Scan2LatentPairs::load(enc, dim, cfg.cond_num_inputs, cfg.n_latents)?)
        } else {
            CondEncoder::Scan(Scan2Latent::load(enc, dim, cfg.cond_num_inputs, cfg.n_latents)?)
        };
        Ok(Self {
            model: LatentArrayTransformer::load(vb.pp("model"), cfg)?,
            cond_enc,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &DenoiserConfig {
        &self.cfg
    }

    fn scan(&self) -> Result<&Scan2Latent, M2vsError> {
        match &self.cond_enc {
            CondEncoder::Scan(s) => Ok(s),
            CondEncoder::Pairs(_) => Err(M2vsError::Shape("this denoiser takes paired observations".into())),
        }
    }

    /// Shape denoiser condition: the frame-1 observation `(B, N, 3)`.
    pub fn condition_shape(&self, points: &Tensor) -> Result<Conditioning, M2vsError> {
        if self.cfg.is_deform {
            return Err(M2vsError::Shape(
                "a deformation denoiser needs shape latents and a sequence".into(),
            ));
        }
        Ok(Conditioning {
            obs: self.scan()?.forward(points)?,
            obs_tgt: None,
            shape: None,
        })
    }

    /// Deformation denoiser condition: shape latents `(B, M, shape_dim)` (used for every frame)
    /// or `(B, T, M, shape_dim)`, and the observations `(B, T, N, 3)` of frame 1 (`src`, as
    /// `eval.py` builds it: frame 1 repeated T times) and of the T target frames (`tgt`).
    pub fn condition_deform(&self, shape: &Tensor, src: &Tensor, tgt: &Tensor) -> Result<Conditioning, M2vsError> {
        if !self.cfg.is_deform {
            return Err(M2vsError::Shape(
                "a shape denoiser is conditioned on one point cloud".into(),
            ));
        }
        let (b, t) = match src.dims() {
            &[b, t, _, 3] => (b, t),
            d => {
                return Err(M2vsError::Shape(format!(
                    "observations must be (B, T, N, 3), got {d:?}"
                )));
            }
        };
        let (m, l) = (self.cfg.n_latents, self.cfg.shape_dim);
        let shape = match shape.dims() {
            &[sb, sm, sl] if (sb, sm, sl) == (b, m, l) => {
                shape.unsqueeze(1)?.broadcast_as((b, t, m, l))?.contiguous()?
            }
            &[sb, st, sm, sl] if (sb, st, sm, sl) == (b, t, m, l) => shape.clone(),
            d => {
                return Err(M2vsError::Shape(format!(
                    "shape latents must be ({b}, {m}, {l}) or ({b}, {t}, {m}, {l}), got {d:?}"
                )));
            }
        };
        let (obs, obs_tgt) = match &self.cond_enc {
            CondEncoder::Pairs(p) => (p.forward(src, tgt)?, None),
            CondEncoder::Scan(s) => {
                if tgt.dims() != src.dims() {
                    return Err(M2vsError::Shape(format!(
                        "frame-1 {:?} and frame-t {:?} observations differ in shape",
                        src.dims(),
                        tgt.dims()
                    )));
                }
                let n = src.dim(2)?;
                let enc = |p: &Tensor| -> Result<Tensor, M2vsError> {
                    let e = s.forward(&p.reshape((b * t, n, 3))?)?;
                    let (_, k, c) = e.dims3()?;
                    Ok(e.reshape((b, t, k, c))?)
                };
                (enc(src)?, Some(enc(tgt)?))
            }
        };
        Ok(Conditioning {
            obs,
            obs_tgt,
            shape: Some(shape),
        })
    }

    /// `(B, M, channels)` (shape) or `(B, T, M, channels)` (deformation).
    fn check_latents(&self, x: &Tensor) -> Result<(), M2vsError> {
        let (m, c) = (self.cfg.n_latents, self.cfg.channels);
        let ok = match *x.dims() {
            [_, xm, xc] => !self.cfg.is_deform && (xm, xc) == (m, c),
            [_, _, xm, xc] => self.cfg.is_deform && (xm, xc) == (m, c),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            let want = if self.cfg.is_deform {
                format!("(B, T, {m}, {c})")
            } else {
                format!("(B, {m}, {c})")
            };
            Err(M2vsError::Shape(format!("latents must be {want}, got {:?}", x.dims())))
        }
    }

    /// `EDMPrecond.forward`: the denoised estimate D(x; σ) for one σ shared by the batch.
    pub fn denoise(&self, x: &Tensor, sigma: f64, cond: &Conditioning) -> Result<Tensor, M2vsError> {
        self.check_latents(x)?;
        if !(sigma > 0.0 && sigma.is_finite()) {
            return Err(M2vsError::Shape(format!("σ must be positive, got {sigma}")));
        }
        let bound = Bound { net: &self.model, cond };
        let mut pre = EdmPrecond::new(&bound);
        pre.sigma_data = self.cfg.sigma_data;
        Ok(pre.denoise(x, sigma, None)?)
    }

    /// `edm_sampler` from unit-variance `noise` (what the reference draws with `randn`): Heun in
    /// f64 with `steps` (Motion2VecSets: `EdmConfig::default()`, 18 steps, no churn).
    pub fn sample_from_noise(
        &self,
        noise: &Tensor,
        cond: &Conditioning,
        steps: &EdmConfig,
        progress: Progress,
        churn_noise: Option<&mut dyn NoiseSource>,
    ) -> Result<Tensor, M2vsError> {
        self.check_latents(noise)?;
        let bound = Bound { net: &self.model, cond };
        let mut pre = EdmPrecond::new(&bound);
        pre.sigma_data = self.cfg.sigma_data;
        Ok(edm_sample(&pre, noise, None, steps, churn_noise, progress)?)
    }

    /// One call from conditions to a sample: the starting noise comes from our seeded [`Rng`]
    /// (so a seed does not reproduce torch's `randn` stream). `frames` is `None` for shapes and
    /// `Some(T)` for deformation sequences; the batch size is the conditions'.
    pub fn sample(
        &self,
        cond: &Conditioning,
        frames: Option<usize>,
        seed: u64,
        steps: &EdmConfig,
        progress: Progress,
    ) -> Result<Tensor, M2vsError> {
        let b = cond.obs.dim(0)?;
        let (m, c) = (self.cfg.n_latents, self.cfg.channels);
        let dims: Vec<usize> = match frames {
            Some(t) => vec![b, t, m, c],
            None => vec![b, m, c],
        };
        let mut rng = Rng::new(seed);
        let count = dims.iter().product();
        let noise = Tensor::from_vec(rng.normals_f32(count), dims, cond.obs.device())?;
        let churn: &mut dyn NoiseSource = &mut rng;
        self.sample_from_noise(&noise, cond, steps, progress, Some(churn))
    }
}
