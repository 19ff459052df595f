//! How similar two spaces holding the same samples are (research note §4):
//!
//! - **Jaccard@k**: for sample i, the k cosine-nearest neighbours found in space B when querying
//!   with B's own vector versus with A's vector; |∩| / |∪|, averaged over the queries.
//! - **MRR@k**: query B's index with A's vector of i; 1 / rank of i itself among the top k, 0 if
//!   absent; averaged.
//! - **Mean cosine**: mean over samples of cos(a_i, b_i).
//!
//! These three need both spaces in the same coordinates (same width): relative spaces built on
//! the same anchors, or an absolute space and its Procrustes-aligned partner. The index always
//! holds every sample; queries may be a seeded subset to bound the cost (n_queries × n × d).
//!
//! - **Linear CKA** (Kornblith et al. 2019): ‖Yᵀ X‖²_F / (‖Xᵀ X‖_F ‖Yᵀ Y‖_F) on column-centred
//!   X, Y; any widths. Computed in `f64`.

use super::error::{RelrepsError, Result};
use super::kernels::{knn_unit, normalized_rows};
use crate::core::diffusion::Rng;
use crate::core::linalg::{Matrix, matmul_tn};
use rayon::prelude::*;
use serde::Serialize;

/// Retrieval and agreement scores between two same-width spaces.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MatchScores {
    pub jaccard: f64,
    pub mrr: f64,
    pub cosine: f64,
    /// Neighbourhood size used for Jaccard and MRR.
    pub k: usize,
    /// How many samples were used as queries.
    pub queries: usize,
}

/// Jaccard@k, MRR@k and mean cosine between `a` and `b` (`n × d` each, rows in correspondence).
/// `max_queries` caps the queries (a seeded uniform subset); `None` queries every sample.
pub fn match_scores(
    a: &[f32],
    b: &[f32],
    n: usize,
    d: usize,
    k: usize,
    max_queries: Option<usize>,
    seed: u64,
) -> Result<MatchScores> {
    if a.len() != n * d || b.len() != n * d {
        return Err(RelrepsError::WidthMismatch {
            what: "neighbour metrics",
            a: a.len() / n.max(1),
            b: b.len() / n.max(1),
        });
    }
    if n == 0 || d == 0 || k == 0 {
        return Err(RelrepsError::Invalid(
            "neighbour metrics need samples, features and k ≥ 1".into(),
        ));
    }
    let a = normalized_rows(a, n, d);
    let b = normalized_rows(b, n, d);
    let queries = query_subset(n, max_queries, seed);
    let gather = |m: &[f32]| {
        queries
            .iter()
            .flat_map(|&i| m[i * d..(i + 1) * d].to_vec())
            .collect::<Vec<f32>>()
    };
    let (qa, qb) = (gather(&a), gather(&b));
    let q = queries.len();
    let from_b = knn_unit(&b, n, &qb, q, d, k);
    let from_a = knn_unit(&b, n, &qa, q, d, k);
    let (mut jaccard, mut mrr, mut cosine) = (0f64, 0f64, 0f64);
    for (t, &i) in queries.iter().enumerate() {
        let own = &from_b[t];
        let cross = &from_a[t];
        let inter = own.iter().filter(|x| cross.contains(x)).count();
        let union = own.len() + cross.len() - inter;
        jaccard += inter as f64 / union.max(1) as f64;
        if let Some(rank) = cross.iter().position(|&x| x == i) {
            mrr += 1.0 / (rank + 1) as f64;
        }
        cosine += f64::from(
            qa[t * d..(t + 1) * d]
                .iter()
                .zip(&qb[t * d..(t + 1) * d])
                .map(|(x, y)| x * y)
                .sum::<f32>(),
        );
    }
    let qf = q as f64;
    Ok(MatchScores {
        jaccard: jaccard / qf,
        mrr: mrr / qf,
        cosine: cosine / qf,
        k: k.min(n),
        queries: q,
    })
}

/// Mean cosine between corresponding rows over all samples (cheap; no neighbour search).
pub fn mean_cosine(a: &[f32], b: &[f32], n: usize, d: usize) -> Result<f64> {
    if a.len() != n * d || b.len() != n * d || n == 0 {
        return Err(RelrepsError::WidthMismatch {
            what: "mean cosine",
            a: a.len() / n.max(1),
            b: b.len() / n.max(1),
        });
    }
    let total: f64 = a
        .par_chunks(d)
        .zip(b.par_chunks(d))
        .map(|(x, y)| {
            let (mut xy, mut xx, mut yy) = (0f64, 0f64, 0f64);
            for (&p, &q) in x.iter().zip(y) {
                let (p, q) = (f64::from(p), f64::from(q));
                xy += p * q;
                xx += p * p;
                yy += q * q;
            }
            if xx > 0.0 && yy > 0.0 {
                xy / (xx * yy).sqrt()
            } else {
                0.0
            }
        })
        .sum();
    Ok(total / n as f64)
}

fn query_subset(n: usize, max_queries: Option<usize>, seed: u64) -> Vec<usize> {
    match max_queries {
        Some(m) if m < n => {
            let mut rng = Rng::new(seed ^ 0x5155_4552_5953); // distinct stream from the anchors'
            let mut idx: Vec<usize> = (0..n).collect();
            for i in 0..m {
                let j = i + (rng.next_u64() % (n - i) as u64) as usize;
                idx.swap(i, j);
            }
            idx.truncate(m.max(1));
            idx.sort_unstable();
            idx
        }
        _ => (0..n).collect(),
    }
}

/// Linear CKA between `x` (`n × dx`) and `y` (`n × dy`), in [0, 1]; 1 for spaces related by an
/// orthogonal map and isotropic scale.
pub fn linear_cka(x: &[f32], dx: usize, y: &[f32], dy: usize, n: usize) -> Result<f64> {
    if x.len() != n * dx || y.len() != n * dy || n < 2 {
        return Err(RelrepsError::Invalid(format!(
            "CKA needs two matrices over the same n ≥ 2 samples ({} and {} values for n = {n})",
            x.len(),
            y.len()
        )));
    }
    let xc = centred_f64(x, n, dx)?;
    let yc = centred_f64(y, n, dy)?;
    let frob2 = |m: &Matrix<f64>| m.data().iter().map(|v| v * v).sum::<f64>();
    let cross = frob2(&matmul_tn(&yc, &xc)?);
    let xx = frob2(&matmul_tn(&xc, &xc)?).sqrt();
    let yy = frob2(&matmul_tn(&yc, &yc)?).sqrt();
    if xx == 0.0 || yy == 0.0 {
        return Ok(0.0);
    }
    Ok(cross / (xx * yy))
}

fn centred_f64(v: &[f32], n: usize, d: usize) -> Result<Matrix<f64>> {
    let mut mean = vec![0f64; d];
    for row in v.chunks(d) {
        mean.iter_mut().zip(row).for_each(|(m, &x)| *m += f64::from(x));
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let data = v
        .chunks(d)
        .flat_map(|row| row.iter().zip(&mean).map(|(&x, m)| f64::from(x) - m))
        .collect();
    Ok(Matrix::new(n, d, data)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaussian(n: usize, d: usize, seed: u64) -> Vec<f32> {
        Rng::new(seed).normals_f32(n * d)
    }

    #[test]
    fn identical_spaces_score_one() {
        let a = gaussian(200, 8, 1);
        let s = match_scores(&a, &a, 200, 8, 10, None, 0).unwrap();
        assert!((s.jaccard - 1.0).abs() < 1e-12 && (s.mrr - 1.0).abs() < 1e-12);
        assert!((s.cosine - 1.0).abs() < 1e-5);
        assert!((linear_cka(&a, 8, &a, 8, 200).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn unrelated_spaces_score_low() {
        let a = gaussian(300, 8, 1);
        let b = gaussian(300, 8, 2);
        let s = match_scores(&a, &b, 300, 8, 10, Some(100), 0).unwrap();
        assert_eq!(s.queries, 100);
        assert!(s.jaccard < 0.15 && s.mrr < 0.1 && s.cosine.abs() < 0.1, "{s:?}");
        assert!(linear_cka(&a, 8, &b, 8, 300).unwrap() < 0.2);
    }

    #[test]
    fn cka_known_value() {
        // x = (−1, 0, 1), y = (1, 0, 1) centred → (−1, 0, 1), (1/3, −2/3, 1/3); yᵀx = 0 → CKA 0.
        let cka = linear_cka(&[-1.0, 0.0, 1.0], 1, &[1.0, 0.0, 1.0], 1, 3).unwrap();
        assert!(cka.abs() < 1e-12);
        // Two columns, one of them shared: CKA = 1/√2 · … computed by hand: X = [u, v], Y = [u]
        // with u ⟂ v, |u| = |v| → ‖YᵀX‖² = |u|⁴, ‖XᵀX‖ = √2 |u|², ‖YᵀY‖ = |u|² → 1/√2.
        let x = [1.0, 1.0, -1.0, 1.0, 1.0, -1.0, -1.0, -1.0];
        let y = [1.0, -1.0, 1.0, -1.0];
        let cka = linear_cka(&x, 2, &y, 1, 4).unwrap();
        assert!((cka - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12, "{cka}");
    }
}
