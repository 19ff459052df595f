//! EDM (Karras et al. 2022) second-order Heun sampler and preconditioning, as Motion2VecSets uses them
//! (motion2vecsets.md §5; `edm_sampler` and `EDMPrecond.forward` in `core/network/models_diff.py`).
//!
//! - σ schedule: σ_i = (σ_max^{1/ρ} + i/(N−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ for i < N, then σ_N = 0.
//!   Motion2VecSets: N = 18, σ_min 0.002, σ_max 80, ρ 7, no churn (35 network evaluations).
//! - Step i: γ = min(S_churn/N, √2 − 1) when S_min ≤ σ_i ≤ S_max (else 0); σ̂ = σ_i(1 + γ);
//!   x̂ = x + √(σ̂² − σ_i²)·S_noise·z; Euler x' = x̂ + (σ_{i+1} − σ̂)·d, d = (x̂ − D(x̂; σ̂))/σ̂; for
//!   i < N−1 the Heun correction x' = x̂ + (σ_{i+1} − σ̂)·(d + d')/2 with d' = (x' − D(x'; σ_{i+1}))/σ_{i+1}.
//!   The state starts as latents·σ_0 and is kept in f64 by default, as the reference does.
//! - Preconditioning ([`EdmPrecond`], σ_data = 1 in Motion2VecSets): D(x; σ) = c_skip·x + c_out·F(c_in·x,
//!   c_noise) with c_skip = σ_d²/(σ² + σ_d²), c_out = σ·σ_d/√(σ² + σ_d²), c_in = 1/√(σ² + σ_d²),
//!   c_noise = ln(σ)/4; the network F runs in F32 (the reference casts x and σ to float32 before
//!   it, so the coefficients are computed in f32 too unless the network runs in F64).
//!
//! Noise is drawn only on steps with γ > 0 (the reference draws on every step and multiplies by 0).

use super::{Denoiser, NoiseSource, Progress, Result, invalid, noise_like, timesteps_tensor};
use candle_core::{DType, Tensor};

/// A denoiser D(x; σ) returning the denoised estimate at noise level σ (shared by the batch).
pub trait EdmDenoiser {
    fn denoise(&self, x: &Tensor, sigma: f64, cond: Option<&Tensor>) -> candle_core::Result<Tensor>;
}

impl<F> EdmDenoiser for F
where
    F: Fn(&Tensor, f64, Option<&Tensor>) -> candle_core::Result<Tensor>,
{
    fn denoise(&self, x: &Tensor, sigma: f64, cond: Option<&Tensor>) -> candle_core::Result<Tensor> {
        self(x, sigma, cond)
    }
}

/// EDM preconditioning around a raw network F. The network is called as a [`Denoiser`] with
/// `x_t = c_in·x` (in `net_dtype`) and `t = c_noise` (F32, shape `(B,)`); its parameterization is ignored.
pub struct EdmPrecond<'a> {
    pub net: &'a dyn Denoiser,
    pub sigma_data: f64,
    /// The dtype the network runs in (F32 in Motion2VecSets).
    pub net_dtype: DType,
}

impl<'a> EdmPrecond<'a> {
    /// σ_data = 1, network in F32 (Motion2VecSets).
    pub fn new(net: &'a dyn Denoiser) -> Self {
        Self {
            net,
            sigma_data: 1.0,
            net_dtype: DType::F32,
        }
    }
}

impl EdmDenoiser for EdmPrecond<'_> {
    fn denoise(&self, x: &Tensor, sigma: f64, cond: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let (c_skip, c_out, c_in, c_noise) = if self.net_dtype == DType::F64 {
            precond_coefficients(sigma, self.sigma_data)
        } else {
            // The reference casts σ to float32 and computes the coefficients in float32; over a
            // Heun run the f64 values alone move a sample by ~2e-5 relative (Motion2VecSets
            // fixtures), so they are rounded the same way here.
            let (a, b, c, d) = precond_coefficients_f32(sigma as f32, self.sigma_data as f32);
            (f64::from(a), f64::from(b), f64::from(c), f64::from(d))
        };
        let xn = x.to_dtype(self.net_dtype)?;
        let t = timesteps_tensor(c_noise, x.dim(0)?, x.device())?;
        let f = self.net.predict(&xn.affine(c_in, 0.0)?, &t, cond)?;
        xn.affine(c_skip, 0.0)? + f.to_dtype(self.net_dtype)?.affine(c_out, 0.0)?
    }
}

/// `(c_skip, c_out, c_in, c_noise)` at σ (`EDMPrecond.forward`), in f64.
fn precond_coefficients(sigma: f64, sigma_data: f64) -> (f64, f64, f64, f64) {
    let s2 = sigma * sigma + sigma_data * sigma_data;
    (
        sigma_data * sigma_data / s2,
        sigma * sigma_data / s2.sqrt(),
        1.0 / s2.sqrt(),
        sigma.ln() / 4.0,
    )
}

/// The same in f32, rounding where torch's float32 tensors do.
fn precond_coefficients_f32(sigma: f32, sigma_data: f32) -> (f32, f32, f32, f32) {
    let s2 = sigma * sigma + sigma_data * sigma_data;
    (
        sigma_data * sigma_data / s2,
        sigma * sigma_data / s2.sqrt(),
        1.0 / s2.sqrt(),
        sigma.ln() / 4.0,
    )
}

/// Sampler settings; the default is Motion2VecSets' (`edm_sampler` defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdmConfig {
    pub num_steps: usize,
    pub sigma_min: f64,
    pub sigma_max: f64,
    pub rho: f64,
    pub s_churn: f64,
    pub s_min: f64,
    pub s_max: f64,
    pub s_noise: f64,
    /// Dtype of the sampler state (F64 as the reference; F32 where the device lacks f64, e.g. Metal).
    pub dtype: DType,
}

impl Default for EdmConfig {
    fn default() -> Self {
        Self {
            num_steps: 18,
            sigma_min: 0.002,
            sigma_max: 80.0,
            rho: 7.0,
            s_churn: 0.0,
            s_min: 0.0,
            s_max: f64::INFINITY,
            s_noise: 1.0,
            dtype: DType::F64,
        }
    }
}

/// The N + 1 noise levels σ_0 = σ_max > … > σ_{N−1} = σ_min > σ_N = 0.
pub fn edm_sigmas(num_steps: usize, sigma_min: f64, sigma_max: f64, rho: f64) -> Vec<f64> {
    let (a, b) = (sigma_max.powf(1.0 / rho), sigma_min.powf(1.0 / rho));
    let mut s: Vec<f64> = match num_steps {
        0 => Vec::new(),
        1 => vec![sigma_max],
        n => (0..n)
            .map(|i| (a + i as f64 / (n - 1) as f64 * (b - a)).powf(rho))
            .collect(),
    };
    s.push(0.0);
    s
}

/// Heun sampling from unit-variance `latents` (scaled by σ_max here). Returns the sample in the latents'
/// dtype. `noise` is needed only when `s_churn > 0`.
pub fn edm_sample(
    den: &dyn EdmDenoiser,
    latents: &Tensor,
    cond: Option<&Tensor>,
    cfg: &EdmConfig,
    mut noise: Option<&mut dyn NoiseSource>,
    progress: Progress,
) -> Result<Tensor> {
    let n = cfg.num_steps;
    if n == 0 {
        return invalid("EDM sampling needs at least one step");
    }
    if !(cfg.sigma_min > 0.0 && cfg.sigma_max > cfg.sigma_min && cfg.rho > 0.0) {
        return invalid(format!(
            "bad EDM noise range: sigma_min {}, sigma_max {}, rho {}",
            cfg.sigma_min, cfg.sigma_max, cfg.rho
        ));
    }
    let sig = edm_sigmas(n, cfg.sigma_min, cfg.sigma_max, cfg.rho);
    let out_dtype = latents.dtype();
    let mut x = latents.to_dtype(cfg.dtype)?.affine(sig[0], 0.0)?;
    for i in 0..n {
        progress(i, n)?;
        let (t_cur, t_next) = (sig[i], sig[i + 1]);
        let gamma = if cfg.s_min <= t_cur && t_cur <= cfg.s_max {
            (cfg.s_churn / n as f64).min(std::f64::consts::SQRT_2 - 1.0)
        } else {
            0.0
        };
        let t_hat = t_cur + gamma * t_cur;
        let x_hat = if gamma > 0.0 {
            let Some(src) = noise.as_deref_mut() else {
                return invalid("EDM sampling with S_churn > 0 needs a noise source");
            };
            let z = noise_like(src, &x)?;
            (&x + z.affine((t_hat * t_hat - t_cur * t_cur).sqrt() * cfg.s_noise, 0.0)?)?
        } else {
            x
        };
        let denoised = den.denoise(&x_hat, t_hat, cond)?.to_dtype(cfg.dtype)?;
        let d_cur = (&x_hat - denoised)?.affine(1.0 / t_hat, 0.0)?;
        let mut x_next = (&x_hat + d_cur.affine(t_next - t_hat, 0.0)?)?;
        if i < n - 1 {
            let denoised = den.denoise(&x_next, t_next, cond)?.to_dtype(cfg.dtype)?;
            let d_prime = (&x_next - denoised)?.affine(1.0 / t_next, 0.0)?;
            let slope = (d_cur + d_prime)?.affine(0.5, 0.0)?;
            x_next = (&x_hat + slope.affine(t_next - t_hat, 0.0)?)?;
        }
        x = x_next;
    }
    progress(n, n)?;
    Ok(x.to_dtype(out_dtype)?)
}
