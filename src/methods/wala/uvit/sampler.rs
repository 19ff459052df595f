//! WaLa's sampler: improved-diffusion's DDPM ancestral sampling on the schedule respaced to a few
//! steps (`SpacedDiffusion(space_timesteps(T, [K]))`), with classifier-free guidance against the
//! null condition. The schedule, the respacing, the step and the guidance are the shared ones of
//! [`crate::core::diffusion`]; this file only wires WaLa's settings into them.
//!
//! Randomness comes from a [`NoiseSource`] and the starting latent from the caller, so a run can
//! be seeded ([`crate::core::diffusion::Rng`]) or replay recorded noise exactly. Upstream also
//! draws one noise tensor at the last step and multiplies it by 0; the shared sampler does not
//! draw it, which changes nothing in the result (a replayed run just leaves its last tensor unused).

use candle_core::{DType, Device, Tensor};

use super::config::{BetaScheduleName, MeanType, UvitConfig, VarType};
use super::network::LatentUvit;
use super::{LatentDiffusion, UvitError};
use crate::core::diffusion::{
    ClassifierFree, Ddpm, DdpmOptions, Denoiser, DiffusionError, NoiseSource, NullCond, Prediction, Progress, Schedule,
    VarianceType,
};

/// How to sample. Upstream's defaults for point clouds and voxels are [`SampleOptions::default`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleOptions {
    /// Respaced steps K (`diffusion_rescale_timestep`; WaLa's `run.py` default is 100).
    pub steps: usize,
    /// Guidance scale s in `ε_u + s·(ε_c − ε_u)`; used only by models trained with `dp_cond`.
    /// Upstream's point-cloud and voxel inference always use 3, whatever `--scale` says (it
    /// passes no scale and the sampler falls back to 3); image models use `--scale`.
    pub guidance: f64,
}

impl SampleOptions {
    pub const WALA_STEPS: usize = 100;
    pub const WALA_GUIDANCE: f64 = 3.0;
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            steps: Self::WALA_STEPS,
            guidance: Self::WALA_GUIDANCE,
        }
    }
}

/// The condition as the network takes it: processed tokens, and the processed null condition
/// when the model samples with guidance.
#[derive(Clone, Debug)]
pub struct Context {
    /// `process_condition(tokens)` `(B, Nc, Dc)`; `None` for an unconditional model.
    pub cond: Option<Tensor>,
    /// `process_condition(zeros)`: the mapping MLP of zeros plus `cond_pos_emb` — not a zero
    /// context. `None` when the model was trained without `dp_cond` (one pass, no guidance).
    pub null: Option<Tensor>,
}

/// What one step produced.
#[derive(Debug)]
pub struct SampleStep<'a> {
    /// Respaced index i (K−1 … 0).
    pub index: usize,
    /// The original timestep the network saw.
    pub model_timestep: usize,
    /// x̂₀ predicted at this step.
    pub pred_x0: &'a Tensor,
    /// The state after the step (the sample after the last).
    pub x: &'a Tensor,
}

/// The training schedule of `args.json` respaced to `steps` (upstream's inference
/// `SpacedDiffusion`): `timestep_map` holds the original steps the network is called with.
pub fn schedule(cfg: &UvitConfig, steps: usize) -> Result<Schedule, UvitError> {
    let t = cfg.diffusion_step;
    if steps == 0 || steps > t {
        return Err(UvitError::Config(format!(
            "cannot sample in {steps} steps from a {t}-step schedule"
        )));
    }
    let base = match cfg.diffusion_beta_schedule {
        BetaScheduleName::Linear => {
            // get_named_beta_schedule: the same expression order, so the betas match to the bit.
            let s = 1000.0 / t as f64 * cfg.diffusion_scale_ratio;
            Schedule::linear(t, s * 0.0001, s * 0.02)?
        }
        BetaScheduleName::Cosine => Schedule::cosine(t)?,
    };
    Ok(base.respaced(&steps.to_string())?)
}

/// The network as the shared samplers see it.
struct Net<'a> {
    net: &'a LatentUvit,
    prediction: Prediction,
}

impl Denoiser for Net<'_> {
    fn predict(&self, x_t: &Tensor, t: &Tensor, cond: Option<&Tensor>) -> candle_core::Result<Tensor> {
        self.net.forward(x_t, t, cond)
    }

    fn parameterization(&self) -> Prediction {
        self.prediction
    }
}

impl LatentDiffusion {
    /// [`schedule`] for this model.
    pub fn schedule(&self, steps: usize) -> Result<Schedule, UvitError> {
        schedule(self.config(), steps)
    }

    /// Standard normal starting latents `(batch, E, G, G, G)` from `noise` (f32).
    pub fn initial_noise(
        &self,
        batch: usize,
        noise: &mut dyn NoiseSource,
        device: &Device,
    ) -> Result<Tensor, UvitError> {
        Ok(noise.randn(&self.latent_shape(batch), DType::F32, device)?)
    }

    /// Runs `f` with the denoiser the sampler calls: the network, wrapped in classifier-free
    /// guidance when the context has a null condition.
    fn with_denoiser<R>(&self, ctx: &Context, guidance: f64, f: impl FnOnce(&dyn Denoiser) -> R) -> R {
        let prediction = match self.config().diffusion_model_mean_type {
            MeanType::StartX => Prediction::Sample,
            _ => Prediction::Epsilon,
        };
        let net = Net {
            net: &self.network,
            prediction,
        };
        match &ctx.null {
            Some(null) => f(&ClassifierFree {
                null: NullCond::Tensor(null.clone()),
                ..ClassifierFree::new(&net, guidance)
            }),
            None => f(&net),
        }
    }

    fn check_context(&self, x: &Tensor, ctx: &Context) -> Result<(), UvitError> {
        self.check_latent(x)?;
        let b = x.dim(0)?;
        for t in [&ctx.cond, &ctx.null].into_iter().flatten() {
            self.check_processed(t)?;
            if t.dim(0)? != b {
                return Err(UvitError::Shape(format!(
                    "the context holds {} conditions for {b} latents",
                    t.dim(0)?
                )));
            }
        }
        if ctx.null.is_some() && ctx.cond.is_none() {
            return Err(UvitError::Shape("a null condition without a condition".into()));
        }
        Ok(())
    }

    /// One model evaluation as the sampler makes it: the (guided) network output at latents `x`
    /// and original timesteps `t` (`(B,)`, any numeric dtype).
    pub fn guided_output(&self, x: &Tensor, t: &Tensor, ctx: &Context, guidance: f64) -> Result<Tensor, UvitError> {
        self.check_context(x, ctx)?;
        let t = t.to_dtype(DType::F32)?;
        Ok(self.with_denoiser(ctx, guidance, |den| den.predict(x, &t, ctx.cond.as_ref()))?)
    }

    /// Samples latents `(B, E, G, G, G)` from `x_t` (the starting noise, e.g.
    /// [`LatentDiffusion::initial_noise`]). The result is the pre-quant latent that
    /// `VqVae::decode_from_pre_quant` takes, unscaled.
    pub fn sample(
        &self,
        ctx: &Context,
        x_t: &Tensor,
        opts: &SampleOptions,
        noise: &mut dyn NoiseSource,
        progress: Progress,
    ) -> Result<Tensor, UvitError> {
        self.sample_traced(ctx, x_t, opts, noise, progress, &mut |_| {})
    }

    /// [`LatentDiffusion::sample`], handing every step's x̂₀ and state to `on_step`.
    pub fn sample_traced(
        &self,
        ctx: &Context,
        x_t: &Tensor,
        opts: &SampleOptions,
        noise: &mut dyn NoiseSource,
        progress: Progress,
        on_step: &mut dyn FnMut(SampleStep),
    ) -> Result<Tensor, UvitError> {
        self.check_context(x_t, ctx)?;
        let schedule = self.schedule(opts.steps)?;
        let variance = match self.config().diffusion_model_var_type {
            VarType::FixedLarge => VarianceType::FixedLarge,
            // validate() refuses the learned types.
            _ => VarianceType::FixedSmall,
        };
        // clip_denoised=False at inference: latents are not confined to [−1, 1].
        let ddpm = Ddpm::new(&schedule, DdpmOptions { variance, clip: None });
        let total = schedule.len();
        self.with_denoiser(ctx, opts.guidance, |den| {
            let mut x = x_t.clone();
            for (done, i) in (0..total).rev().enumerate() {
                progress(done, total).map_err(DiffusionError::from)?;
                let out = ddpm.step(den, &x, i, ctx.cond.as_ref(), noise)?;
                on_step(SampleStep {
                    index: i,
                    model_timestep: schedule.timestep_map()[i],
                    pred_x0: &out.pred_x0,
                    x: &out.x,
                });
                x = out.x;
            }
            progress(total, total).map_err(DiffusionError::from)?;
            Ok(x)
        })
    }
}
