//! The demo generator's latent prior: a class-conditional ε-prediction MLP over an autoencoder's
//! standardised latent (a latent diffusion model in miniature: the sprite autoencoder plays Stable
//! Diffusion's VAE, this net its UNet, the class embedding its text condition).
//!
//! Layout (weight names in the model file): `z_in` (d → width), `t_in` (sinusoidal timestep
//! features → width), `cond.weight` (classes × width, the condition embedding table), `blocks.i.fc1`
//! / `blocks.i.fc2` (residual SiLU blocks with a LayerNorm `blocks.i.norm`), `out` (width → d).
//! The condition enters as a width-sized embedding vector, so a search can replace a class's row
//! by a free vector (SAGE's adversarial condition embedding).

use crate::core::diffusion::Denoiser;
use candle_core::{D, DType, Module, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder};

/// Frequencies of the sinusoidal timestep features.
const TIME_FEATURES: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PriorConfig {
    pub latent_dim: usize,
    pub width: usize,
    pub blocks: usize,
    pub classes: usize,
}

impl PriorConfig {
    pub fn to_toml(&self) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert("architecture".into(), "latent_prior_mlp".into());
        t.insert("latent_dim".into(), (self.latent_dim as i64).into());
        t.insert("width".into(), (self.width as i64).into());
        t.insert("blocks".into(), (self.blocks as i64).into());
        t.insert("classes".into(), (self.classes as i64).into());
        t
    }

    pub fn from_toml(t: &toml::Table) -> std::result::Result<Self, String> {
        let get = |k: &str| {
            t.get(k)
                .and_then(toml::Value::as_integer)
                .filter(|v| *v > 0)
                .map(|v| v as usize)
                .ok_or_else(|| format!("[config] needs a positive integer `{k}`"))
        };
        Ok(Self {
            latent_dim: get("latent_dim")?,
            width: get("width")?,
            blocks: get("blocks")?,
            classes: get("classes")?,
        })
    }
}

struct Block {
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

pub struct LatentPrior {
    config: PriorConfig,
    z_in: Linear,
    t_in: Linear,
    cond: Tensor,
    blocks: Vec<Block>,
    out: Linear,
}

impl LatentPrior {
    pub fn new(config: PriorConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let w = config.width;
        let blocks = (0..config.blocks)
            .map(|i| {
                let vb = vb.pp(format!("blocks.{i}"));
                Ok(Block {
                    norm: candle_nn::layer_norm(w, 1e-5, vb.pp("norm"))?,
                    fc1: candle_nn::linear(w, 2 * w, vb.pp("fc1"))?,
                    fc2: candle_nn::linear(2 * w, w, vb.pp("fc2"))?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            config,
            z_in: candle_nn::linear(config.latent_dim, w, vb.pp("z_in"))?,
            t_in: candle_nn::linear(2 * TIME_FEATURES, w, vb.pp("t_in"))?,
            cond: vb.get_with_hints(
                (config.classes, w),
                "cond.weight",
                candle_nn::Init::Randn { mean: 0.0, stdev: 1.0 },
            )?,
            blocks,
            out: candle_nn::linear(w, config.latent_dim, vb.pp("out"))?,
        })
    }

    pub fn config(&self) -> PriorConfig {
        self.config
    }

    /// The embedding rows of the given classes, `[B, width]`.
    pub fn class_embedding(&self, classes: &[usize]) -> candle_core::Result<Tensor> {
        let ids: Vec<u32> = classes.iter().map(|&c| c as u32).collect();
        let ids = Tensor::from_vec(ids, classes.len(), self.cond.device())?;
        self.cond.index_select(&ids, 0)
    }

    /// ε for standardised latents `z_t` `[B, d]` at timesteps `t` `[B]` with condition embeddings
    /// `cond` `[B, width]`.
    pub fn epsilon(&self, z_t: &Tensor, t: &Tensor, cond: &Tensor) -> candle_core::Result<Tensor> {
        let half = TIME_FEATURES;
        let freqs: Vec<f32> = (0..half)
            .map(|i| (-(10_000f32.ln()) * i as f32 / half as f32).exp())
            .collect();
        let freqs = Tensor::from_vec(freqs, (1, half), t.device())?;
        let args = t.to_dtype(DType::F32)?.unsqueeze(1)?.broadcast_mul(&freqs)?;
        let temb = Tensor::cat(&[args.sin()?, args.cos()?], D::Minus1)?;
        let mut h = ((self.z_in.forward(z_t)? + self.t_in.forward(&temb)?)? + cond)?;
        for b in &self.blocks {
            let r = b.fc2.forward(&b.fc1.forward(&b.norm.forward(&h)?)?.silu()?)?;
            h = (h + r)?;
        }
        self.out.forward(&h.silu()?)
    }
}

impl Denoiser for LatentPrior {
    fn predict(&self, x_t: &Tensor, t: &Tensor, cond: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let cond =
            cond.ok_or_else(|| candle_core::Error::Msg("the latent prior needs a condition embedding".into()))?;
        self.epsilon(x_t, t, cond)
    }
}
