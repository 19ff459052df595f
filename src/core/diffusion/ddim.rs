//! DDIM sampling and deterministic DDIM inversion (Song et al. 2021), with x̂₀ clipping and the
//! PDAE/LDAE gradient-estimator shift.
//!
//! One step at schedule entry i (ᾱ = ᾱ_i, model timestep [`Schedule::model_timestep`]):
//! 1. model output → (x̂₀, ε) according to the parameterization;
//! 2. shift (optional): ε ← ε − √(1−ᾱ)·G(x_t, t, cond), x̂₀ recomputed from ε (PDAE `shift_ddim_sample`,
//!    LDAE `src/ldae/diffusion/ddim.py`; the "−" with a positive √(1−ᾱ) is the code's convention, see
//!    ldae.md §6 and §11);
//! 3. clip (optional): x̂₀ clamped to `[lo, hi]`; with `recompute_eps` ε is re-derived from the clamped
//!    x̂₀ (improved-diffusion, PDAE, LDAE; diffusers only with `use_clipped_model_output`);
//! 4. σ = η·√((1−ᾱ')/(1−ᾱ))·√(1−ᾱ/ᾱ'), x' = √ᾱ'·x̂₀ + √(1−ᾱ'−σ²)·ε + σ·z, with ᾱ' the target state's.
//!
//! Sampling moves from entry `from` down to [`End::Clean`] (ᾱ' = `final_alpha_cumprod` after entry 0:
//! improved-diffusion / diffusers with `set_alpha_to_one`) or to [`End::Index`] (PDAE/LDAE: the state of
//! entry 0 is the result). Inversion moves up from entry `from` to entry `to` with η = 0, calling the
//! model at the current entry (improved-diffusion `ddim_reverse_sample`, PDAE/LDAE `ddim_encode`).

use super::{
    Denoiser, DiffusionError, NoiseSource, Progress, Result, Schedule, axpby, eps_from_x0, invalid, noise_like,
    split_prediction, timesteps_tensor, x0_from_eps,
};
use candle_core::Tensor;

/// The PDAE/LDAE gradient estimator G(x_t, t, cond): the sampler uses ε' = ε − √(1−ᾱ_t)·G.
pub trait EpsShift {
    fn gradient(&self, x_t: &Tensor, t: &Tensor, cond: Option<&Tensor>) -> candle_core::Result<Tensor>;
}

impl<F> EpsShift for F
where
    F: Fn(&Tensor, &Tensor, Option<&Tensor>) -> candle_core::Result<Tensor>,
{
    fn gradient(&self, x_t: &Tensor, t: &Tensor, cond: Option<&Tensor>) -> candle_core::Result<Tensor> {
        self(x_t, t, cond)
    }
}

/// Where the ε shift comes from.
#[derive(Clone, Copy, Default)]
pub enum Shift<'a> {
    /// No shift.
    #[default]
    None,
    /// G from [`Denoiser::predict_with_shift`], computed in the model's forward pass (LDAE ShiftUNet).
    FromDenoiser,
    /// G from a separate function.
    Fn(&'a dyn EpsShift),
}

/// Where sampling stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Past entry 0, at ᾱ = `final_alpha_cumprod` (1 = the clean sample).
    Clean,
    /// At the state of this schedule entry (PDAE/LDAE return the state of entry 0).
    Index(usize),
}

#[derive(Clone, Copy)]
pub struct DdimOptions<'a> {
    /// 0 = deterministic DDIM, 1 = DDPM-like variance.
    pub eta: f64,
    /// Clamp x̂₀ to `[lo, hi]` (`clip_sample`, `clip_denoised`).
    pub clip: Option<(f64, f64)>,
    /// Re-derive ε from the clipped x̂₀ (improved-diffusion/PDAE/LDAE: true; diffusers' default: false).
    pub recompute_eps: bool,
    /// ᾱ of [`End::Clean`]: 1.0, or ᾱ of the first original step for diffusers' `set_alpha_to_one=False`.
    pub final_alpha_cumprod: f64,
    pub shift: Shift<'a>,
    /// LDAE's `stop_percent`: when `Some(s)`, sampling applies the shift only at entries i > s
    /// (`(i − 1) >= stop_step`); inversion always applies it. `None`: always.
    pub shift_stop: Option<usize>,
}

impl Default for DdimOptions<'_> {
    fn default() -> Self {
        Self {
            eta: 0.0,
            clip: None,
            recompute_eps: true,
            final_alpha_cumprod: 1.0,
            shift: Shift::None,
            shift_stop: None,
        }
    }
}

impl<'a> DdimOptions<'a> {
    /// LDAE/PDAE: η 0, x̂₀ clamped to [−1, 1], ε recomputed, the given shift.
    pub fn ldae(shift: Shift<'a>) -> Self {
        Self {
            clip: Some((-1.0, 1.0)),
            shift,
            ..Self::default()
        }
    }
}

/// The result of one step.
#[derive(Debug, Clone)]
pub struct DdimOutput {
    /// The new state.
    pub x: Tensor,
    /// x̂₀ after shift and clipping.
    pub pred_x0: Tensor,
    /// ε used for the step (after shift, recomputed after clipping when asked).
    pub eps: Tensor,
}

/// A DDIM sampler over a (usually respaced) schedule.
#[derive(Clone, Copy)]
pub struct Ddim<'a> {
    pub schedule: &'a Schedule,
    pub options: DdimOptions<'a>,
}

/// The prediction channels of a model output: the first half when a learned-variance model returns
/// twice the channels of `x`.
pub(crate) fn prediction_part(out: Tensor, x: &Tensor) -> candle_core::Result<Tensor> {
    let (od, xd) = (out.dims(), x.dims());
    if od.len() >= 2 && od.len() == xd.len() && od[1] == 2 * xd[1] && od[0] == xd[0] && od[2..] == xd[2..] {
        out.narrow(1, 0, xd[1])
    } else {
        Ok(out)
    }
}

impl<'a> Ddim<'a> {
    pub fn new(schedule: &'a Schedule, options: DdimOptions<'a>) -> Self {
        Self { schedule, options }
    }

    /// (x̂₀, ε) at entry `i`: model call, shift, clip, ε recomputation.
    fn predict(
        &self,
        den: &dyn Denoiser,
        x: &Tensor,
        i: usize,
        cond: Option<&Tensor>,
        use_shift: bool,
    ) -> Result<(Tensor, Tensor)> {
        let o = &self.options;
        let ac = self.schedule.alpha_cumprod(i);
        let t = timesteps_tensor(self.schedule.model_timestep(i), x.dim(0)?, x.device())?;
        let (out, g) = match (use_shift, o.shift) {
            (true, Shift::FromDenoiser) => {
                let (out, g) = den.predict_with_shift(x, &t, cond)?;
                match g {
                    Some(g) => (out, Some(g)),
                    None => return invalid("Shift::FromDenoiser with a denoiser that returns no shift"),
                }
            }
            (true, Shift::Fn(f)) => (den.predict(x, &t, cond)?, Some(f.gradient(x, &t, cond)?)),
            _ => (den.predict(x, &t, cond)?, None),
        };
        let out = prediction_part(out, x)?;
        let (mut x0, mut eps) = split_prediction(den.parameterization(), x, &out, ac)?;
        if let Some(g) = g {
            eps = (eps - g.affine((1.0 - ac).sqrt(), 0.0)?)?;
            x0 = x0_from_eps(x, &eps, ac)?;
        }
        if let Some((lo, hi)) = o.clip {
            x0 = x0.clamp(lo, hi)?;
            if o.recompute_eps {
                eps = eps_from_x0(x, &x0, ac)?;
            }
        }
        Ok((x0, eps))
    }

    fn alpha_at(&self, end: End) -> f64 {
        match end {
            End::Clean => self.options.final_alpha_cumprod,
            End::Index(j) => self.schedule.alpha_cumprod(j),
        }
    }

    /// One sampling step from entry `i` to the target `to` (entry `i − 1`, or [`End::Clean`] from
    /// entry 0). Draws noise only when σ > 0.
    pub fn step(
        &self,
        den: &dyn Denoiser,
        x: &Tensor,
        i: usize,
        to: End,
        cond: Option<&Tensor>,
        noise: Option<&mut dyn NoiseSource>,
    ) -> Result<DdimOutput> {
        let use_shift = self.options.shift_stop.is_none_or(|s| i > s);
        let (x0, eps) = self.predict(den, x, i, cond, use_shift)?;
        let ac = self.schedule.alpha_cumprod(i);
        let ac_prev = self.alpha_at(to);
        let eta = self.options.eta;
        let sigma = if eta > 0.0 {
            eta * ((1.0 - ac_prev) / (1.0 - ac)).sqrt() * (1.0 - ac / ac_prev).max(0.0).sqrt()
        } else {
            0.0
        };
        let dir = (1.0 - ac_prev - sigma * sigma).max(0.0).sqrt();
        let mut next = axpby(ac_prev.sqrt(), &x0, dir, &eps)?;
        if sigma > 0.0 {
            let Some(noise) = noise else {
                return invalid("DDIM with eta > 0 needs a noise source");
            };
            let z = noise_like(noise, x)?;
            next = (next + z.affine(sigma, 0.0)?)?;
        }
        Ok(DdimOutput {
            x: next,
            pred_x0: x0,
            eps,
        })
    }

    /// One deterministic inversion step from entry `i` to entry `i + 1` (η = 0, shift always applied).
    pub fn invert_step(&self, den: &dyn Denoiser, x: &Tensor, i: usize, cond: Option<&Tensor>) -> Result<DdimOutput> {
        if i + 1 >= self.schedule.len() {
            return invalid(format!("no entry after {i} to invert to"));
        }
        let (x0, eps) = self.predict(den, x, i, cond, true)?;
        let ac_next = self.schedule.alpha_cumprod(i + 1);
        let next = axpby(ac_next.sqrt(), &x0, (1.0 - ac_next).sqrt(), &eps)?;
        Ok(DdimOutput {
            x: next,
            pred_x0: x0,
            eps,
        })
    }

    /// Samples from the last entry to the clean state.
    pub fn sample(
        &self,
        den: &dyn Denoiser,
        x_t: &Tensor,
        cond: Option<&Tensor>,
        noise: Option<&mut dyn NoiseSource>,
        progress: Progress,
    ) -> Result<Tensor> {
        self.sample_range(den, x_t, cond, self.last()?, End::Clean, noise, progress)
    }

    /// Samples from the state of entry `from` down to `to`.
    #[allow(clippy::too_many_arguments)]
    pub fn sample_range(
        &self,
        den: &dyn Denoiser,
        x: &Tensor,
        cond: Option<&Tensor>,
        from: usize,
        to: End,
        mut noise: Option<&mut dyn NoiseSource>,
        progress: Progress,
    ) -> Result<Tensor> {
        if from >= self.schedule.len() {
            return invalid(format!("entry {from} is outside a schedule of {}", self.schedule.len()));
        }
        let stop = match to {
            End::Clean => 0,
            End::Index(j) if j <= from => j + 1,
            End::Index(j) => return invalid(format!("cannot sample from entry {from} down to entry {j}")),
        };
        let total = from + 1 - stop;
        let mut x = x.clone();
        for (done, i) in (stop..=from).rev().enumerate() {
            progress(done, total)?;
            let target = if i == 0 { End::Clean } else { End::Index(i - 1) };
            x = self.step(den, &x, i, target, cond, reborrow(&mut noise))?.x;
        }
        progress(total, total)?;
        Ok(x)
    }

    /// Deterministic inversion from entry 0 (the clean state, LDAE/PDAE convention) to the last entry.
    pub fn invert(&self, den: &dyn Denoiser, x0: &Tensor, cond: Option<&Tensor>, progress: Progress) -> Result<Tensor> {
        self.invert_range(den, x0, cond, 0, self.last()?, progress)
    }

    /// Deterministic inversion from the state of entry `from` up to entry `to`.
    pub fn invert_range(
        &self,
        den: &dyn Denoiser,
        x: &Tensor,
        cond: Option<&Tensor>,
        from: usize,
        to: usize,
        progress: Progress,
    ) -> Result<Tensor> {
        if to >= self.schedule.len() || from > to {
            return invalid(format!("cannot invert from entry {from} to entry {to}"));
        }
        let total = to - from;
        let mut x = x.clone();
        for (done, i) in (from..to).enumerate() {
            progress(done, total)?;
            x = self.invert_step(den, &x, i, cond)?.x;
        }
        progress(total, total)?;
        Ok(x)
    }

    fn last(&self) -> Result<usize> {
        match self.schedule.len() {
            0 => Err(DiffusionError::Invalid("empty schedule".into())),
            n => Ok(n - 1),
        }
    }
}

/// Reborrows an optional noise source for one call (a plain `as_deref_mut` would keep the borrow alive).
fn reborrow<'b>(n: &'b mut Option<&mut dyn NoiseSource>) -> Option<&'b mut dyn NoiseSource> {
    match n {
        Some(n) => Some(&mut **n),
        None => None,
    }
}

/// x_t = √ᾱ_i·x₀ + √(1−ᾱ_i)·noise: the forward process at entry `i` (e.g. to re-noise a sample).
pub fn q_sample(schedule: &Schedule, x0: &Tensor, i: usize, noise: &Tensor) -> candle_core::Result<Tensor> {
    let ac = schedule.alpha_cumprod(i);
    axpby(ac.sqrt(), x0, (1.0 - ac).sqrt(), noise)
}
