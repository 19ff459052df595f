//! DDPM ancestral sampling as improved-diffusion's `p_sample` on a (respaced) schedule — the sampler
//! WaLa uses (`space_timesteps(1000, [k])`, ε or x₀ model, optional classifier-free guidance).
//!
//! At entry i with β_i, ᾱ_i, ᾱ_{i−1} (1 before entry 0):
//! - x̂₀ from the model output, optionally clamped (`clip_denoised`);
//! - posterior mean μ = β_i·√ᾱ_{i−1}/(1−ᾱ_i)·x̂₀ + (1−ᾱ_{i−1})·√(1−β_i)/(1−ᾱ_i)·x_t;
//! - posterior variance β̃_i = β_i·(1−ᾱ_{i−1})/(1−ᾱ_i);
//! - log-variance: fixed small ln β̃_i, fixed large ln β_i, learned = the model's extra channels,
//!   learned range = interpolation between ln β̃_i and ln β_i by (v+1)/2;
//! - x_{i−1} = μ + exp(½·logvar)·z, without noise at entry 0.

use super::ddim::prediction_part;
use super::{
    Denoiser, NoiseSource, Progress, Result, Schedule, axpby, invalid, noise_like, split_prediction, timesteps_tensor,
};
use candle_core::Tensor;

/// improved-diffusion's `ModelVarType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VarianceType {
    /// Posterior variance β̃_t.
    #[default]
    FixedSmall,
    /// β_t.
    FixedLarge,
    /// The model returns the log-variance in its second `C` channels (improved-diffusion `LEARNED`).
    Learned,
    /// The model returns v ∈ [−1, 1] in its second `C` channels: logvar = lerp(ln β̃_t, ln β_t, (v+1)/2).
    LearnedRange,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DdpmOptions {
    pub variance: VarianceType,
    /// Clamp x̂₀ to `[lo, hi]` (improved-diffusion `clip_denoised`, diffusers `clip_sample`). Leave `None`
    /// for latents that are not confined to [−1, 1].
    pub clip: Option<(f64, f64)>,
}

/// The result of one step.
#[derive(Debug, Clone)]
pub struct DdpmOutput {
    pub x: Tensor,
    pub pred_x0: Tensor,
    pub mean: Tensor,
}

#[derive(Debug, Clone, Copy)]
pub struct Ddpm<'a> {
    pub schedule: &'a Schedule,
    pub options: DdpmOptions,
}

impl<'a> Ddpm<'a> {
    pub fn new(schedule: &'a Schedule, options: DdpmOptions) -> Self {
        Self { schedule, options }
    }

    /// One ancestral step from entry `i` to entry `i − 1` (to the clean sample from entry 0). Noise is
    /// drawn only for i > 0.
    pub fn step(
        &self,
        den: &dyn Denoiser,
        x: &Tensor,
        i: usize,
        cond: Option<&Tensor>,
        noise: &mut dyn NoiseSource,
    ) -> Result<DdpmOutput> {
        let s = self.schedule;
        let beta = s.betas()[i];
        let ac = s.alpha_cumprod(i);
        let ac_prev = s.alpha_cumprod_prev(i);
        let t = timesteps_tensor(s.model_timestep(i), x.dim(0)?, x.device())?;
        let out = den.predict(x, &t, cond)?;
        let learned = matches!(
            self.options.variance,
            VarianceType::Learned | VarianceType::LearnedRange
        );
        let (pred, var_values) = if learned {
            let c = x.dim(1)?;
            if out.rank() < 2 || out.dim(1)? != 2 * c {
                return invalid(format!(
                    "a learned-variance model must return {} channels, got shape {:?}",
                    2 * c,
                    out.dims()
                ));
            }
            (out.narrow(1, 0, c)?, Some(out.narrow(1, c, c)?))
        } else {
            (prediction_part(out, x)?, None)
        };
        let (mut x0, _) = split_prediction(den.parameterization(), x, &pred, ac)?;
        if let Some((lo, hi)) = self.options.clip {
            x0 = x0.clamp(lo, hi)?;
        }
        let coef_x0 = beta * ac_prev.sqrt() / (1.0 - ac);
        let coef_xt = (1.0 - ac_prev) * (1.0 - beta).sqrt() / (1.0 - ac);
        let mean = axpby(coef_x0, &x0, coef_xt, x)?;
        if i == 0 {
            return Ok(DdpmOutput {
                x: mean.clone(),
                pred_x0: x0,
                mean,
            });
        }
        let log_post = (beta * (1.0 - ac_prev) / (1.0 - ac)).max(1e-20).ln();
        let log_beta = beta.ln();
        let z = noise_like(noise, x)?;
        let scaled = match (self.options.variance, var_values) {
            (VarianceType::FixedSmall, _) => z.affine((0.5 * log_post).exp(), 0.0)?,
            (VarianceType::FixedLarge, _) => z.affine((0.5 * log_beta).exp(), 0.0)?,
            (VarianceType::Learned, Some(v)) => (v.affine(0.5, 0.0)?.exp()? * z)?,
            (VarianceType::LearnedRange, Some(v)) => {
                // frac·ln β + (1 − frac)·ln β̃ with frac = (v + 1)/2, as one affine map of v
                let a = 0.5 * (log_beta - log_post);
                let b = 0.5 * (log_beta + log_post);
                (v.affine(0.5 * a, 0.5 * b)?.exp()? * z)?
            }
            _ => unreachable!("learned variance values are present for learned variance types"),
        };
        Ok(DdpmOutput {
            x: (&mean + scaled)?,
            pred_x0: x0,
            mean,
        })
    }

    /// Samples from the last entry down to the clean sample.
    pub fn sample(
        &self,
        den: &dyn Denoiser,
        x_t: &Tensor,
        cond: Option<&Tensor>,
        noise: &mut dyn NoiseSource,
        progress: Progress,
    ) -> Result<Tensor> {
        if self.schedule.is_empty() {
            return invalid("empty schedule");
        }
        self.sample_from(den, x_t, cond, self.schedule.len() - 1, noise, progress)
    }

    /// Samples from the state of entry `from` down to the clean sample (e.g. after re-noising with
    /// [`super::q_sample`] for a partial "resample from t").
    pub fn sample_from(
        &self,
        den: &dyn Denoiser,
        x: &Tensor,
        cond: Option<&Tensor>,
        from: usize,
        noise: &mut dyn NoiseSource,
        progress: Progress,
    ) -> Result<Tensor> {
        if from >= self.schedule.len() {
            return invalid(format!("entry {from} is outside a schedule of {}", self.schedule.len()));
        }
        let total = from + 1;
        let mut x = x.clone();
        for (done, i) in (0..=from).rev().enumerate() {
            progress(done, total)?;
            x = self.step(den, &x, i, cond, noise)?.x;
        }
        progress(total, total)?;
        Ok(x)
    }
}
