//! Generators the search drives: a latent (and a condition embedding) in, images out, with a
//! choice of how gradients get from the images back to the latent.
//!
//! The demo generator, [`SpriteGenerator`], is a latent diffusion model in miniature: starting
//! noise z_T ~ N(0, I) in the standardised space of sprite factor codes, a class-conditional
//! [`LatentPrior`] denoises it with deterministic DDIM, and a differentiable renderer
//! ([`super::renderer`]) paints the sprite. The search variable is z_T, exactly as SAGE searches
//! Stable Diffusion's starting noise.

use super::classifier::{config_usize, open_entry};
use super::error::{Result, SageError};
use super::prior::{LatentPrior, PriorConfig};
use super::renderer;
use crate::core::diffusion::{Ddim, DdimOptions, End, Schedule};
use crate::core::manifest::MANIFEST_FILE;
use crate::core::weights::{LoadOptions, build_model, load_checkpoint};
use candle_core::{DType, Device, Tensor};
use std::path::Path;

/// How the gradient of a loss on the images reaches the starting latent (SAGE §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradientPath {
    /// No gradient (gradient-free modes, scoring).
    None,
    /// Plain backpropagation through every sampler step.
    Full,
    /// SAGE's approximate gradient: a residual path from the generated latent straight back to
    /// the starting noise (dL/dz_T ≈ dL/dz₀), with exact backpropagation through only the last
    /// `exact_last` sampler steps (0: the skip alone, through the decoder only).
    Skip { exact_last: usize },
}

pub trait Generator: Send + Sync {
    fn name(&self) -> &str;
    /// Length of the (flat) starting latent.
    fn latent_dim(&self) -> usize;
    /// The conditions it knows, in index order.
    fn class_names(&self) -> Vec<String>;
    /// Condition embeddings of the given classes, `[B, E]`.
    fn condition_embedding(&self, classes: &[usize]) -> candle_core::Result<Tensor>;
    /// Images `[B, 3, H, W]` in [0, 1] from starting latents `[B, d]` and condition embeddings
    /// `[B, E]`.
    fn generate(&self, z: &Tensor, cond: &Tensor, path: GradientPath) -> candle_core::Result<Tensor>;
    /// Sampler steps per generation.
    fn steps(&self) -> usize;
    /// What a report records of it: its name and sampler steps, and whatever else pins it down
    /// (a checksum, a folder, sampling settings).
    fn provenance(&self) -> serde_json::Value {
        serde_json::json!({"name": self.name(), "sampler_steps": self.steps()})
    }
    /// What the generator really drew from `z` under `cond`, as per-class shares `[B, classes]`,
    /// when it can tell (a procedural decoder knows its own factors; a learned one cannot): the
    /// ground truth that separates generator failures from classifier errors. None by default.
    fn drawn_shares(&self, z: &Tensor, cond: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let _ = (z, cond);
        Ok(None)
    }
}

/// The latent prior + sprite renderer demo generator.
pub struct SpriteGenerator {
    name: String,
    sha256: String,
    prior: LatentPrior,
    latent_mean: Tensor,
    latent_std: Tensor,
    diffusion_steps: usize,
    schedule: Schedule,
    x0_clip: Option<f64>,
    class_names: Vec<String>,
}

/// Training schedule of the prior: Stable Diffusion's scaled-linear betas (0.00085 → 0.012 over
/// 1000 steps), the setting SAGE attacks. Its last ᾱ is 0.0047, so the first DDIM step divides by
/// √ᾱ ≈ 0.07 only; the cosine schedule's last ᾱ (≈ 2e-9) would make exact backpropagation
/// through the sampler blow up by ~10⁴ at that step.
pub const PRIOR_DIFFUSION_STEPS: usize = 1000;

/// The prior's training schedule.
pub fn prior_schedule(diffusion_steps: usize) -> Result<Schedule> {
    Schedule::scaled_linear(diffusion_steps, 0.000_85, 0.012)
        .map_err(|e| SageError::Invalid(format!("prior schedule: {e}")))
}
/// x̂₀ is clamped to ±4 (standardised units; real latents lie within it 99.99 % of the time) and
/// ε re-derived from it, as improved-diffusion clips images: without it, the first step's division
/// by √ᾱ ≈ 0.07 turns the small MLP's ε errors into latents far off the data, which then compound
/// (unclipped 50-step samples reached a mean square of 5·10³ against 1 for real latents).
pub const X0_CLIP: f64 = 4.0;
/// DDIM steps per generation unless changed.
pub const DEFAULT_SAMPLE_STEPS: usize = 10;

impl SpriteGenerator {
    /// Loads a `family = "sage"`, `architecture = "latent_prior_mlp"` folder.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let entry = open_entry(dir, "latent_prior_mlp")?;
        let manifest_path = dir.join(MANIFEST_FILE);
        let bad = |problem: String| SageError::model(&manifest_path, problem);
        let config = PriorConfig::from_toml(&entry.manifest.config).map_err(bad)?;
        let diffusion_steps = config_usize(&entry, "diffusion_steps")?;
        if config.latent_dim != renderer::CODE_DIM {
            return Err(bad(format!(
                "latent_dim {} but the sprite renderer takes codes of {}",
                config.latent_dim,
                renderer::CODE_DIM
            )));
        }
        let checkpoint = load_checkpoint(&entry.weights_path(), &LoadOptions::default())?;
        let d = config.latent_dim;
        let ((prior, latent_mean, latent_std), _) = build_model(&checkpoint, DType::F32, device, true, |vb| {
            Ok((
                LatentPrior::new(config, vb.clone())?,
                vb.get((1, d), "latent_mean")?,
                vb.get((1, d), "latent_std")?,
            ))
        })?;
        let class_names = crate::methods::relreps::sprite_ae::class_names()
            .into_iter()
            .map(str::to_string)
            .collect();
        Self::from_parts(
            entry.manifest.name.clone(),
            entry.manifest.sha256.clone(),
            prior,
            latent_mean,
            latent_std,
            diffusion_steps,
            class_names,
        )
    }

    /// A generator from its pieces (the trainer evaluates one before it is written).
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        name: String,
        sha256: String,
        prior: LatentPrior,
        latent_mean: Tensor,
        latent_std: Tensor,
        diffusion_steps: usize,
        class_names: Vec<String>,
    ) -> Result<Self> {
        let schedule = sample_schedule(diffusion_steps, DEFAULT_SAMPLE_STEPS)?;
        Ok(Self {
            name,
            sha256,
            prior,
            latent_mean,
            latent_std,
            diffusion_steps,
            schedule,
            x0_clip: Some(X0_CLIP),
            class_names,
        })
    }

    /// The same generator sampling with `steps` DDIM steps.
    pub fn with_steps(mut self, steps: usize) -> Result<Self> {
        self.schedule = sample_schedule(self.diffusion_steps, steps)?;
        Ok(self)
    }

    /// The same generator clamping x̂₀ to ±`clip` (None: no clamp; gradient checks use it, since a
    /// clamp makes the sampler piecewise).
    pub fn with_x0_clip(mut self, clip: Option<f64>) -> Self {
        self.x0_clip = clip;
        self
    }

    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

/// The training schedule respaced to `steps` evenly spaced DDIM entries.
pub fn sample_schedule(diffusion_steps: usize, steps: usize) -> Result<Schedule> {
    let err = |e: crate::core::diffusion::DiffusionError| SageError::Invalid(format!("sampler schedule: {e}"));
    prior_schedule(diffusion_steps)?
        .respaced(&steps.to_string())
        .map_err(err)
}

impl Generator for SpriteGenerator {
    fn name(&self) -> &str {
        &self.name
    }
    fn latent_dim(&self) -> usize {
        self.prior.config().latent_dim
    }
    fn class_names(&self) -> Vec<String> {
        self.class_names.clone()
    }
    fn condition_embedding(&self, classes: &[usize]) -> candle_core::Result<Tensor> {
        self.prior.class_embedding(classes)
    }
    fn steps(&self) -> usize {
        self.schedule.len()
    }
    fn provenance(&self) -> serde_json::Value {
        serde_json::json!({"name": self.name, "sha256": self.sha256, "sampler_steps": self.steps()})
    }

    fn generate(&self, z: &Tensor, cond: &Tensor, path: GradientPath) -> candle_core::Result<Tensor> {
        self.decode_standardised(&self.denoise(z, cond, path)?)
    }

    /// The renderer's shape mixture: its shapes are the classes, in the same order.
    fn drawn_shares(&self, z: &Tensor, cond: &Tensor) -> candle_core::Result<Option<Tensor>> {
        self.shape_weights(z, cond).map(Some)
    }
}

impl SpriteGenerator {
    /// The prior's clean standardised latent z₀ from starting noise `z` `[B, d]`, tracked as `path`
    /// says.
    pub fn denoise(&self, z: &Tensor, cond: &Tensor, path: GradientPath) -> candle_core::Result<Tensor> {
        let ddim = Ddim::new(
            &self.schedule,
            DdimOptions {
                clip: self.x0_clip.map(|c| (-c, c)),
                ..DdimOptions::default()
            },
        );
        let n = self.schedule.len();
        let exact_below = match path {
            GradientPath::Skip { exact_last } => exact_last.min(n),
            _ => n,
        };
        // The residual path: a tensor equal to the detached state whose gradient w.r.t. z is the
        // identity, so dL/dz_T equals dL/d(state) at the point where exact backpropagation starts.
        let skip = |x: &Tensor| x.detach() + (z - z.detach())?;
        let mut x = match path {
            GradientPath::Full => z.clone(),
            _ => z.detach(),
        };
        let mut joined = false;
        for i in (0..n).rev() {
            if matches!(path, GradientPath::Skip { .. }) && !joined && i < exact_below {
                x = skip(&x)?;
                joined = true;
            }
            let to = if i == 0 { End::Clean } else { End::Index(i - 1) };
            x = ddim
                .step(&self.prior, &x, i, to, Some(cond), None)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?
                .x;
        }
        if matches!(path, GradientPath::Skip { .. }) && !joined {
            x = skip(&x)?;
        }
        Ok(x)
    }

    /// The renderer's shape mixture weights `[B, 3]` of the sprites drawn from `z`: the ground
    /// truth of what the demo generator drew (a weight ≥ ½ is one clear shape).
    pub fn shape_weights(&self, z: &Tensor, cond: &Tensor) -> candle_core::Result<Tensor> {
        let codes = self
            .denoise(z, cond, GradientPath::None)?
            .broadcast_mul(&self.latent_std)?
            .broadcast_add(&self.latent_mean)?;
        renderer::shape_weights(&codes)
    }

    /// Images from standardised codes: undo the standardisation, render.
    pub fn decode_standardised(&self, z0: &Tensor) -> candle_core::Result<Tensor> {
        renderer::render(&z0.broadcast_mul(&self.latent_std)?.broadcast_add(&self.latent_mean)?)
    }
}
