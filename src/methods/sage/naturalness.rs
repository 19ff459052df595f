//! Keeping searched latents natural (SAGE's "non-outlier" requirement) and measuring whether they
//! stayed so.
//!
//! A starting latent of a diffusion model is a draw of N(0, I): its squared norm concentrates at d
//! (the typical set), and its d entries look like d independent standard normals. The search
//! penalises (|z|²/d − 1)² and may re-project onto the sphere of radius √d after each step; every
//! result is then tested with a one-sample Kolmogorov–Smirnov test of its entries against N(0, 1).
//! The share of results that fail it is the non-Gaussian rate (NGR) the paper reports.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// How the search keeps latents natural.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Naturalness {
    /// Weight of the typical-set penalty (|z|²/d − 1)².
    pub penalty: f64,
    /// Re-project each latent onto the sphere of radius √d after every update.
    pub reproject: bool,
    /// Significance level of the normality test: p below it counts as non-Gaussian.
    pub alpha: f64,
}

impl Default for Naturalness {
    fn default() -> Self {
        Self {
            penalty: 1.0,
            reproject: true,
            alpha: 0.05,
        }
    }
}

/// (|z|²/d − 1)² per row of latents `[B, d]`, `[B]` (tracked).
pub fn typical_set_penalty(z: &Tensor) -> candle_core::Result<Tensor> {
    let d = z.dim(1)? as f64;
    (z.sqr()?.sum(1)? / d)?.affine(1.0, -1.0)?.sqr()
}

/// Each row of `[B, d]` scaled to norm √d.
pub fn project_to_typical_set(z: &Tensor) -> candle_core::Result<Tensor> {
    let d = z.dim(1)? as f64;
    let norm = z.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    z.broadcast_div(&norm)? * d.sqrt()
}

/// |z| / √d: 1 for a typical draw.
pub fn norm_ratio(z: &[f32]) -> f64 {
    let d = z.len().max(1) as f64;
    (z.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / d).sqrt()
}

/// Standard normal CDF (Abramowitz & Stegun 7.1.26 through erf, |error| < 1.5e-7).
fn normal_cdf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * (x.abs() / std::f64::consts::SQRT_2));
    let poly =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-(x * x) / 2.0).exp();
    if x >= 0.0 { 0.5 * (1.0 + erf) } else { 0.5 * (1.0 - erf) }
}

/// One-sample Kolmogorov–Smirnov test of `sample` against N(0, 1): (D, p). The p-value uses
/// Stephens' finite-sample correction of the Kolmogorov distribution,
/// λ = (√n + 0.12 + 0.11/√n)·D, p = 2 Σ_{k≥1} (−1)^{k−1} e^{−2k²λ²} (good from n ≈ 5 on).
pub fn ks_normal(sample: &[f32]) -> (f64, f64) {
    let n = sample.len();
    if n == 0 {
        return (0.0, 1.0);
    }
    let mut xs: Vec<f64> = sample.iter().map(|v| *v as f64).collect();
    xs.sort_by(f64::total_cmp);
    let nf = n as f64;
    let d = xs
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = normal_cdf(x);
            (f - i as f64 / nf).max((i + 1) as f64 / nf - f)
        })
        .fold(0.0, f64::max);
    let sq = nf.sqrt();
    let lambda = (sq + 0.12 + 0.11 / sq) * d;
    let mut p = 0.0;
    for k in 1..=100 {
        let term = (-2.0 * (k * k) as f64 * lambda * lambda).exp();
        p += if k % 2 == 1 { term } else { -term };
        if term < 1e-12 {
            break;
        }
    }
    (d, (2.0 * p).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::diffusion::Rng;

    #[test]
    fn normal_cdf_matches_known_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
        assert!((normal_cdf(-1.0) - 0.158_655_25).abs() < 1e-6);
    }

    #[test]
    fn ks_accepts_normal_draws_and_rejects_shifted_or_scaled_ones() {
        // x = linspace(-1, 1, 5): D = Φ(−1) = 0.158655 (at both ends), far from rejection.
        let x = [-1.0f32, -0.5, 0.0, 0.5, 1.0];
        let (d, p) = ks_normal(&x);
        assert!((d - 0.158_655_25).abs() < 1e-6, "{d}");
        assert!(p > 0.9, "{p}");
        // Ten draws all at 2: D = Φ(2) = 0.97725, p tiny.
        let (d, p) = ks_normal(&[2.0; 10]);
        assert!((d - 0.977_249_9).abs() < 1e-6 && p < 1e-6, "{d} {p}");
        let mut rng = Rng::new(3);
        let mut rejected = [0usize; 3];
        for _ in 0..200 {
            let z = rng.normals_f32(64);
            let shifted: Vec<f32> = z.iter().map(|v| v + 0.8).collect();
            let squeezed: Vec<f32> = z.iter().map(|v| v * 0.3).collect();
            for (k, s) in [z, shifted, squeezed].iter().enumerate() {
                rejected[k] += (ks_normal(s).1 < 0.05) as usize;
            }
        }
        // About 5 % false alarms on true draws; strong departures nearly always caught.
        assert!(rejected[0] <= 20, "{rejected:?}");
        assert!(rejected[1] >= 180 && rejected[2] >= 180, "{rejected:?}");
    }

    #[test]
    fn projection_lands_on_the_typical_sphere_and_zeroes_the_penalty() {
        let z = Tensor::new(&[[3.0f32, 4.0], [0.1, 0.0]], &candle_core::Device::Cpu).unwrap();
        let p = project_to_typical_set(&z).unwrap();
        for row in p.to_vec2::<f32>().unwrap() {
            assert!((norm_ratio(&row) - 1.0).abs() < 1e-6);
        }
        assert!(
            typical_set_penalty(&p)
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                < 1e-10
        );
        // |z|²/d = 12.5 and 0.005: ((11.5)² + (0.995)²) / 2.
        let pen = typical_set_penalty(&z)
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((pen - (11.5f32.powi(2) + 0.995f32.powi(2)) / 2.0).abs() < 1e-3, "{pen}");
    }
}
