//! Whether an LDAE decoder reads its semantic code: PDAE's noise-prediction error on encoded scans
//! with each scan's own code, with another scan's code, and with the shift branch left out.
//!
//! Manipulation and interpolation move y_sem and rely on the shift branch turning that move into a
//! change of the decoded scan. A decoder whose error is the same with any scan's code has learnt a
//! correction of the ε-UNet that ignores the code, and then no edit of the code can change what is
//! decoded, however well a linear probe separates the codes. This measures exactly that, on the
//! loss the shift branch was trained with (unweighted here, per timestep), next to the error of a
//! predictor with no network at all (the other scans' mean latent) for scale.

use candle_core::{DType, Tensor};
use serde::Serialize;

use super::model::{Encoded, LdaeError, LdaeModel, Progress, Result};
use crate::core::diffusion::{Rng, Schedule, eps_from_x0, q_sample};

/// PDAE's coefficient of the shift G in the ε prediction, `ε̂ + k_t·G`:
/// `k_t = −√α_t·(1 − ᾱ_{t−1}) / √(1 − ᾱ_t)` (`shared/research/ldae.md` §6).
pub fn pdae_shift_coefficient(schedule: &Schedule, t: usize) -> f64 {
    let alpha = 1.0 - schedule.betas()[t];
    -(alpha.sqrt()) * (1.0 - schedule.alpha_cumprod_prev(t)) / (1.0 - schedule.alpha_cumprod(t)).sqrt()
}

/// Mean squared ε error per timestep, over the scans.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CodeUse {
    pub scans: usize,
    pub timesteps: Vec<usize>,
    /// Each scan decoded with its own code.
    pub own_code: Vec<f64>,
    /// Each scan decoded with the code of the scan half the list away (a different scan).
    pub other_code: Vec<f64>,
    /// The frozen ε-UNet alone, without the shift branch.
    pub no_shift: Vec<f64>,
    /// A reference without any network: the ε implied by taking the clean latent to be the mean
    /// latent of the other scans, `(x_t − √ᾱ·mean) / √(1 − ᾱ)`. An ε-UNet worse than this has not
    /// learnt the data's mean yet, and its errors, common to every scan, then dominate what the
    /// shift branch is trained on.
    pub mean_latent: Vec<f64>,
}

impl CodeUse {
    /// How much worse another scan's code does than the scan's own, relative to the own-code error,
    /// averaged over the timesteps: about 0 when the decoder ignores the code.
    pub fn other_code_penalty(&self) -> f64 {
        let n = self.timesteps.len().max(1) as f64;
        self.own_code
            .iter()
            .zip(&self.other_code)
            .map(|(own, other)| (other - own) / own.max(f64::MIN_POSITIVE))
            .sum::<f64>()
            / n
    }
}

/// Measures [`CodeUse`] on `encoded` scans (at least two) at `timesteps` of the training schedule,
/// with one noise draw per scan and timestep from `seed`; `progress` gets one tick per scan.
pub fn code_use(
    model: &LdaeModel,
    encoded: &[Encoded],
    timesteps: &[usize],
    seed: u64,
    progress: Progress,
) -> Result<CodeUse> {
    let cfg = model.config();
    if encoded.len() < 2 {
        return Err(LdaeError::Input(format!(
            "comparing codes needs at least two scans, got {}",
            encoded.len()
        )));
    }
    if let Some(&t) = timesteps.iter().find(|&&t| t >= cfg.timesteps) {
        return Err(LdaeError::Input(format!(
            "timestep {t} is outside the model's 0..{}",
            cfg.timesteps
        )));
    }
    let schedule = Schedule::named(&cfg.betas, cfg.timesteps).map_err(|e| LdaeError::Config(e.to_string()))?;
    let n = encoded.len();
    let mut sums = vec![[0f64; 4]; timesteps.len()];
    let mut rng = Rng::new(seed);
    let device = model.device();
    let latents = encoded
        .iter()
        .map(|e| e.z0.to_dtype(DType::F32))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let total = latents.iter().skip(1).try_fold(latents[0].clone(), |acc, z| acc + z)?;
    for (i, enc) in encoded.iter().enumerate() {
        let codes = Tensor::cat(&[&enc.y_sem, &encoded[(i + n / 2) % n].y_sem], 0)?;
        let z0 = &latents[i];
        let others_mean = ((&total - z0)? / (n - 1) as f64)?;
        for (k, &t) in timesteps.iter().enumerate() {
            let noise = Tensor::from_vec(rng.normals_f32(z0.elem_count()), z0.dims(), device)?;
            let x_t = q_sample(&schedule, z0, t, &noise)?;
            let tt = Tensor::new(&[t as f32], device)?;
            let k_t = pdae_shift_coefficient(&schedule, t);
            let mse = |pred: Tensor| -> Result<f64> {
                Ok((&noise - pred)?
                    .sqr()?
                    .mean_all()?
                    .to_dtype(DType::F64)?
                    .to_scalar::<f64>()?)
            };
            let (eps, g) = model.decoder().forward_codes(&x_t, &tt, &codes)?;
            sums[k][0] += mse(eps.broadcast_add(&(g.narrow(0, 0, 1)? * k_t)?)?)?;
            sums[k][1] += mse(eps.broadcast_add(&(g.narrow(0, 1, 1)? * k_t)?)?)?;
            sums[k][2] += mse(eps)?;
            sums[k][3] += mse(eps_from_x0(&x_t, &others_mean, schedule.alpha_cumprod(t))?)?;
        }
        progress(i + 1, n)?;
    }
    let column = |j: usize| sums.iter().map(|s| s[j] / n as f64).collect();
    Ok(CodeUse {
        scans: n,
        timesteps: timesteps.to_vec(),
        own_code: column(0),
        other_code: column(1),
        no_shift: column(2),
        mean_latent: column(3),
    })
}
