//! Diffusion toolkit generic over a denoiser: noise schedules and timestep respacing, DDPM and DDIM
//! sampling (with DDIM inversion and the PDAE/LDAE gradient-estimator shift), classifier-free guidance,
//! the EDM second-order (Heun) sampler, lerp/slerp, and a seeded noise generator of our own.
//!
//! Conventions shared by every sampler here:
//! - A model is a [`Denoiser`]: `predict(x_t, t, cond)` where `t` is an F32 tensor of shape `(B,)` holding
//!   the timestep the network was trained with (the *original* index of a respaced schedule, see
//!   [`Schedule::model_timestep`]); its output is ε, x̂₀ or v according to [`Denoiser::parameterization`].
//! - Schedules are computed in f64 (as improved-diffusion / PDAE / LDAE do in numpy) and enter the tensor
//!   arithmetic as scalars, so the state keeps the dtype of the starting tensor (F32 usually).
//! - Randomness comes only from a [`NoiseSource`] (normally [`Rng`] or [`BatchRng`]), never from candle's
//!   global generator: a seed gives the same noise on every device and in every dtype, and a run with the
//!   same seed repeats exactly on the same device.
//! - Samplers report progress through a [`Progress`] callback called before every step and once at the
//!   end; returning `Err(Cancelled)` stops the run before the next model evaluation.
//!   [`job_progress`] adapts a [`JobContext`].

mod ddim;
mod ddpm;
mod edm;
mod guidance;
mod interp;
mod rng;
mod schedule;

pub use ddim::{Ddim, DdimOptions, DdimOutput, End, EpsShift, Shift, q_sample};
pub use ddpm::{Ddpm, DdpmOptions, DdpmOutput, VarianceType};
pub use edm::{EdmConfig, EdmDenoiser, EdmPrecond, edm_sample, edm_sigmas};
pub use guidance::{ClassifierFree, NullCond};
pub use interp::{lerp, slerp, slerp_flat};
pub use rng::{BatchRng, NoiseSource, Rng};
pub use schedule::{
    BetaSchedule, Schedule, ldae_timesteps, leading_timesteps, linspace, pdae_timesteps, space_timesteps,
};

use crate::core::jobs::{JobContext, JobError};
use candle_core::{Device, Tensor};

/// What a denoiser's output means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prediction {
    /// The added noise ε (DDPM, improved-diffusion, PDAE/LDAE).
    Epsilon,
    /// The clean sample x₀ directly.
    Sample,
    /// v = √ᾱ·ε − √(1−ᾱ)·x₀ (Salimans & Ho 2022).
    VPrediction,
}

/// A diffusion model, as the samplers see it.
pub trait Denoiser {
    /// The model output for the noisy batch `x_t` at timesteps `t` (F32, shape `(B,)`, the values the
    /// network was trained with) and an optional condition. DDPM models with a learned variance return
    /// `2·C` channels along dimension 1 (prediction first, variance values second).
    fn predict(&self, x_t: &Tensor, t: &Tensor, cond: Option<&Tensor>) -> candle_core::Result<Tensor>;

    /// What [`Denoiser::predict`] returns.
    fn parameterization(&self) -> Prediction {
        Prediction::Epsilon
    }

    /// The prediction together with a PDAE-style gradient-estimator output G(x_t, t, cond) computed in the
    /// same forward pass (LDAE's ShiftUNet returns both). Used by [`Shift::FromDenoiser`]; the default
    /// returns no G.
    fn predict_with_shift(
        &self,
        x_t: &Tensor,
        t: &Tensor,
        cond: Option<&Tensor>,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        Ok((self.predict(x_t, t, cond)?, None))
    }
}

impl<D: Denoiser + ?Sized> Denoiser for &D {
    fn predict(&self, x_t: &Tensor, t: &Tensor, cond: Option<&Tensor>) -> candle_core::Result<Tensor> {
        (**self).predict(x_t, t, cond)
    }
    fn parameterization(&self) -> Prediction {
        (**self).parameterization()
    }
    fn predict_with_shift(
        &self,
        x_t: &Tensor,
        t: &Tensor,
        cond: Option<&Tensor>,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        (**self).predict_with_shift(x_t, t, cond)
    }
}

/// A [`Denoiser`] made from a closure `(x_t, t, cond) -> output`.
pub struct FnDenoiser<F> {
    f: F,
    prediction: Prediction,
}

impl<F> FnDenoiser<F>
where
    F: Fn(&Tensor, &Tensor, Option<&Tensor>) -> candle_core::Result<Tensor>,
{
    pub fn new(prediction: Prediction, f: F) -> Self {
        Self { f, prediction }
    }
}

impl<F> Denoiser for FnDenoiser<F>
where
    F: Fn(&Tensor, &Tensor, Option<&Tensor>) -> candle_core::Result<Tensor>,
{
    fn predict(&self, x_t: &Tensor, t: &Tensor, cond: Option<&Tensor>) -> candle_core::Result<Tensor> {
        (self.f)(x_t, t, cond)
    }
    fn parameterization(&self) -> Prediction {
        self.prediction
    }
}

/// The sampler was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// Progress callback: `(steps done, total steps)`, called before every step and once with
/// `(total, total)` at the end. `Err(Cancelled)` stops the sampler before its next model evaluation.
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize) -> std::result::Result<(), Cancelled>;

/// A progress callback reporting to a background job (`ctx.set(fraction, "label k/n")`) and stopping once
/// the job is cancelled.
pub fn job_progress<'a>(
    ctx: &'a JobContext,
    label: &'a str,
) -> impl FnMut(usize, usize) -> std::result::Result<(), Cancelled> + 'a {
    move |done, total| {
        let fraction = if total == 0 { 1.0 } else { done as f32 / total as f32 };
        ctx.set(fraction, format!("{label} {done}/{total}"));
        ctx.check().map_err(|_| Cancelled)
    }
}

/// Errors of the diffusion toolkit.
#[derive(Debug, thiserror::Error)]
pub enum DiffusionError {
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<Cancelled> for DiffusionError {
    fn from(_: Cancelled) -> Self {
        DiffusionError::Cancelled
    }
}

impl From<DiffusionError> for JobError {
    fn from(e: DiffusionError) -> Self {
        match e {
            DiffusionError::Cancelled => JobError::Cancelled,
            other => JobError::Failed(other.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, DiffusionError>;

pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(DiffusionError::Invalid(msg.into()))
}

/// The timestep tensor the samplers pass to a [`Denoiser`]: `value` repeated `batch` times, F32, `(B,)`.
pub fn timesteps_tensor(value: f64, batch: usize, device: &Device) -> candle_core::Result<Tensor> {
    Tensor::full(value as f32, batch, device)
}

/// x̂₀ and ε from a model output, for a state with cumulative ᾱ = `alpha_cumprod`.
pub(crate) fn split_prediction(
    prediction: Prediction,
    x_t: &Tensor,
    out: &Tensor,
    alpha_cumprod: f64,
) -> candle_core::Result<(Tensor, Tensor)> {
    let sa = alpha_cumprod.sqrt();
    let s1 = (1.0 - alpha_cumprod).sqrt();
    match prediction {
        Prediction::Epsilon => Ok((x0_from_eps(x_t, out, alpha_cumprod)?, out.clone())),
        Prediction::Sample => Ok((out.clone(), eps_from_x0(x_t, out, alpha_cumprod)?)),
        Prediction::VPrediction => {
            let x0 = (x_t.affine(sa, 0.0)? - out.affine(s1, 0.0)?)?;
            let eps = (out.affine(sa, 0.0)? + x_t.affine(s1, 0.0)?)?;
            Ok((x0, eps))
        }
    }
}

/// x̂₀ = √(1/ᾱ)·x_t − √(1/ᾱ − 1)·ε (improved-diffusion's form).
pub(crate) fn x0_from_eps(x_t: &Tensor, eps: &Tensor, alpha_cumprod: f64) -> candle_core::Result<Tensor> {
    x_t.affine((1.0 / alpha_cumprod).sqrt(), 0.0)? - eps.affine((1.0 / alpha_cumprod - 1.0).sqrt(), 0.0)?
}

/// ε = (√(1/ᾱ)·x_t − x̂₀) / √(1/ᾱ − 1).
pub(crate) fn eps_from_x0(x_t: &Tensor, x0: &Tensor, alpha_cumprod: f64) -> candle_core::Result<Tensor> {
    let denom = (1.0 / alpha_cumprod - 1.0).sqrt();
    (x_t.affine((1.0 / alpha_cumprod).sqrt(), 0.0)? - x0)?.affine(1.0 / denom, 0.0)
}

/// `a·x + b·y` with scalar coefficients.
pub(crate) fn axpby(a: f64, x: &Tensor, b: f64, y: &Tensor) -> candle_core::Result<Tensor> {
    x.affine(a, 0.0)? + y.affine(b, 0.0)?
}

/// Draws standard normal noise like `x` (same shape, dtype and device).
pub(crate) fn noise_like(source: &mut dyn NoiseSource, x: &Tensor) -> candle_core::Result<Tensor> {
    source.randn(x.dims(), x.dtype(), x.device())
}
