//! Procrustes alignment as the absolute-space baseline (latent space translation): fit an
//! orthogonal map (and isotropic scale) from A to B on the anchors only — the same shared
//! knowledge the relative transform gets — then apply it to every sample.
//!
//! Each space is centred on its anchors' mean and scaled so its anchors have unit RMS norm
//! (classical Procrustes analysis), and the narrower space is zero-padded to the wider width
//! (latentis' `ZeroPadding`), so spaces of different widths can be aligned.

use super::error::Result;
use crate::core::linalg::{Matrix, matmul, procrustes};
use rayon::prelude::*;
use serde::Serialize;

/// A fitted A → B map and the two spaces in the common coordinates.
#[derive(Debug, Clone)]
pub struct Alignment {
    /// Common width (the larger of the two).
    pub dim: usize,
    /// A mapped into B's normalised coordinates, `n × dim`.
    pub a_aligned: Vec<f32>,
    /// B in its normalised coordinates (centred, scaled, padded), `n × dim`.
    pub b_normalized: Vec<f32>,
    pub summary: AlignmentSummary,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AlignmentSummary {
    /// Isotropic scale fitted on top of the normalisation.
    pub scale: f64,
    /// ‖s·Ã·R − B̃‖ / ‖B̃‖ over the anchors (the fit).
    pub anchor_residual: f64,
    /// The same over every sample (how well the anchors' map generalises).
    pub residual: f64,
}

/// Centres on the anchors' mean, scales to unit RMS anchor norm, pads to `width`.
fn normalize_space(v: &[f32], n: usize, d: usize, anchors: &[usize], width: usize) -> Vec<f32> {
    let mut mean = vec![0f64; d];
    for &i in anchors {
        mean.iter_mut()
            .zip(&v[i * d..(i + 1) * d])
            .for_each(|(m, &x)| *m += f64::from(x));
    }
    mean.iter_mut().for_each(|m| *m /= anchors.len().max(1) as f64);
    let ms: f64 = anchors
        .iter()
        .map(|&i| {
            v[i * d..(i + 1) * d]
                .iter()
                .zip(&mean)
                .map(|(&x, m)| (f64::from(x) - m).powi(2))
                .sum::<f64>()
        })
        .sum::<f64>()
        / anchors.len().max(1) as f64;
    let inv = if ms > 0.0 { 1.0 / ms.sqrt() } else { 1.0 };
    let mut out = vec![0f32; n * width];
    out.par_chunks_mut(width).zip(v.par_chunks(d)).for_each(|(o, row)| {
        for ((dst, &x), m) in o.iter_mut().zip(row).zip(&mean) {
            *dst = ((f64::from(x) - m) * inv) as f32;
        }
    });
    out
}

fn rows(v: &[f32], width: usize, idx: &[usize]) -> Matrix<f64> {
    let data = idx
        .iter()
        .flat_map(|&i| v[i * width..(i + 1) * width].iter().map(|&x| f64::from(x)))
        .collect();
    Matrix::new(idx.len(), width, data).unwrap_or_else(|_| Matrix::zeros(0, width))
}

/// Fits on `anchors` and maps all `n` samples of `a` (`n × da`) onto `b` (`n × db`).
pub fn procrustes_align(a: &[f32], da: usize, b: &[f32], db: usize, n: usize, anchors: &[usize]) -> Result<Alignment> {
    let width = da.max(db);
    let an = normalize_space(a, n, da, anchors, width);
    let bn = normalize_space(b, n, db, anchors, width);
    let fit = procrustes(&rows(&an, width, anchors), &rows(&bn, width, anchors), true)?;
    let rot = Matrix::new(
        width,
        width,
        fit.rotation.data().iter().map(|&x| (x * fit.scale) as f32).collect(),
    )?;
    let a_all = Matrix::new(n, width, an)?;
    let a_aligned = matmul(&a_all, &rot)?.into_data();
    let (mut num, mut den) = (0f64, 0f64);
    for (x, y) in a_aligned.iter().zip(&bn) {
        num += f64::from(x - y).powi(2);
        den += f64::from(*y).powi(2);
    }
    let residual = if den > 0.0 { (num / den).sqrt() } else { num.sqrt() };
    Ok(Alignment {
        dim: width,
        a_aligned,
        b_normalized: bn,
        summary: AlignmentSummary {
            scale: fit.scale,
            anchor_residual: fit.relative_residual,
            residual,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::diffusion::Rng;

    #[test]
    fn aligns_a_permuted_scaled_translated_copy() {
        let (n, d) = (120, 5);
        let a = Rng::new(5).normals_f32(n * d);
        // b = 3·a·P + t with P a signed permutation (orthogonal), width padded to 6.
        let perm = [3, 0, 4, 1, 2];
        let mut b = vec![0f32; n * 6];
        for i in 0..n {
            for j in 0..d {
                let s = if j % 2 == 0 { 1.0 } else { -1.0 };
                b[i * 6 + perm[j]] = 3.0 * s * a[i * d + j] + 0.5 * j as f32;
            }
            b[i * 6 + 5] = 7.0;
        }
        let anchors: Vec<usize> = (0..30).collect();
        let al = procrustes_align(&a, d, &b, 6, n, &anchors).unwrap();
        assert_eq!(al.dim, 6);
        assert!(al.summary.anchor_residual < 1e-5, "{:?}", al.summary);
        assert!(al.summary.residual < 1e-5, "{:?}", al.summary);
    }
}
