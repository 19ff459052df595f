//! PCA to 2-D for the side-by-side comparison view: centre, covariance (`d × d`, blocked gemm),
//! its SVD (symmetric, so singular vectors are eigenvectors), project on the top two. Signs are
//! fixed (largest-magnitude loading positive) so the picture does not flip between runs.

use super::error::{RelrepsError, Result};
use crate::core::linalg::{Matrix, Transpose, gemm, thin_svd};
use rayon::prelude::*;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Pca2 {
    /// `n` points, (PC1, PC2).
    pub points: Vec<[f32; 2]>,
    /// Fraction of the total variance each component explains.
    pub explained: [f64; 2],
}

/// Projects the `n × d` row-major matrix onto its first two principal components (a 1-D space
/// gets a zero second coordinate).
pub fn pca_2d(values: &[f32], n: usize, d: usize) -> Result<Pca2> {
    if n < 2 || d == 0 || values.len() != n * d {
        return Err(RelrepsError::Invalid(format!(
            "PCA needs n ≥ 2 samples of d ≥ 1 features, got {n} × {d}"
        )));
    }
    let mut mean = vec![0f64; d];
    for row in values.chunks(d) {
        mean.iter_mut().zip(row).for_each(|(m, &x)| *m += f64::from(x));
    }
    let mean: Vec<f32> = mean.iter().map(|m| (m / n as f64) as f32).collect();
    let mut centred = values.to_vec();
    centred
        .par_chunks_mut(d)
        .for_each(|row| row.iter_mut().zip(&mean).for_each(|(x, m)| *x -= m));
    let mut cov = vec![0f32; d * d];
    gemm(
        &centred,
        (n, d),
        Transpose::Yes,
        &centred,
        (n, d),
        Transpose::No,
        &mut cov,
        0,
    )?;
    let cov = Matrix::new(d, d, cov.iter().map(|&c| f64::from(c) / (n - 1) as f64).collect())?;
    let svd = thin_svd(&cov)?;
    let total: f64 = svd.s.iter().sum();
    let comps = d.min(2);
    let mut axes = [vec![0f32; d], vec![0f32; d]];
    for (c, axis) in axes.iter_mut().enumerate().take(comps) {
        let col: Vec<f64> = (0..d).map(|i| svd.u.get(i, c)).collect();
        let sign = col
            .iter()
            .fold(0f64, |best, &v| if v.abs() > best.abs() { v } else { best })
            .signum();
        for (a, v) in axis.iter_mut().zip(col) {
            *a = (v * sign) as f32;
        }
    }
    let points = centred
        .par_chunks(d)
        .map(|row| {
            let dot = |axis: &[f32]| row.iter().zip(axis).map(|(x, a)| x * a).sum::<f32>();
            [dot(&axes[0]), dot(&axes[1])]
        })
        .collect();
    let frac = |i: usize| {
        if total > 0.0 && i < svd.s.len() {
            svd.s[i] / total
        } else {
            0.0
        }
    };
    Ok(Pca2 {
        points,
        explained: [frac(0), frac(1)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_dominant_axes() {
        // Points spread 10× along (1,1,0)/√2 and 1× along z, plus an offset.
        let mut v = Vec::new();
        for i in 0..50 {
            let t = (i as f32 - 24.5) / 10.0;
            let z = if i % 2 == 0 { 0.1 } else { -0.1 };
            v.extend_from_slice(&[5.0 + 10.0 * t, -3.0 + 10.0 * t, 2.0 + z]);
        }
        let p = pca_2d(&v, 50, 3).unwrap();
        assert!(p.explained[0] > 0.99);
        let expect = 10.0 * std::f32::consts::SQRT_2 * (-24.5 / 10.0);
        assert!((p.points[0][0].abs() - expect.abs()).abs() < 1e-3, "{:?}", p.points[0]);
        // PC2 is z (±0.1), slightly tilted because parity and t correlate a little here.
        assert!(
            (p.points[0][1].abs() - 0.1).abs() < 1e-2,
            "{:?} {:?}",
            p.points[0],
            p.explained
        );
    }
}
