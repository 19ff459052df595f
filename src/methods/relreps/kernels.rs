//! Row-wise loops shared by the relreps modules: norms, normalisation, dot products and a
//! blocked cosine k-nearest-neighbour search. Parallel over rows with rayon.

use crate::core::linalg::{Transpose, gemm};
use rayon::prelude::*;

/// Rows per query block in the k-NN search: a block × index tile of scores stays a few MB.
const KNN_BLOCK: usize = 64;

/// L2 norm of a slice, accumulated in `f32` lanes (auto-vectorised) — exact enough for scaling.
pub(crate) fn norm(x: &[f32]) -> f32 {
    x.iter().map(|v| v * v).sum::<f32>().sqrt()
}

/// Scales a row to unit L2 norm; a zero row stays zero (its cosine to anything is taken as 0).
pub(crate) fn normalize_in_place(x: &mut [f32]) {
    let n = norm(x);
    if n > 0.0 {
        let inv = 1.0 / n;
        x.iter_mut().for_each(|v| *v *= inv);
    }
}

/// A copy of the `n × d` matrix with every row at unit L2 norm.
pub(crate) fn normalized_rows(values: &[f32], n: usize, d: usize) -> Vec<f32> {
    debug_assert_eq!(values.len(), n * d);
    let mut out = values.to_vec();
    out.par_chunks_mut(d.max(1)).for_each(normalize_in_place);
    out
}

/// `x_i · c` for every row of the `n × d` matrix.
pub(crate) fn row_dots(values: &[f32], n: usize, d: usize, c: &[f32]) -> Vec<f32> {
    debug_assert_eq!(values.len(), n * d);
    values
        .par_chunks(d.max(1))
        .map(|x| x.iter().zip(c).map(|(p, q)| p * q).sum())
        .collect()
}

/// For each query row, the indices of its `k` most cosine-similar index rows, most similar
/// first (ties broken by the lower index). Both inputs must already be unit rows of width `d`.
pub(crate) fn knn_unit(index: &[f32], n: usize, queries: &[f32], q: usize, d: usize, k: usize) -> Vec<Vec<usize>> {
    let k = k.min(n);
    let mut out = vec![Vec::new(); q];
    out.par_chunks_mut(KNN_BLOCK)
        .zip(queries.par_chunks(KNN_BLOCK * d))
        .for_each(|(res, qb)| {
            let rows = qb.len() / d;
            let mut scores = vec![0f32; rows * n];
            if gemm(
                qb,
                (rows, d),
                Transpose::No,
                index,
                (n, d),
                Transpose::Yes,
                &mut scores,
                1,
            )
            .is_err()
            {
                return;
            }
            for (r, slot) in res.iter_mut().enumerate() {
                *slot = top_k(&scores[r * n..(r + 1) * n], k);
            }
        });
    out
}

/// Indices of the `k` largest values, largest first; equal values in index order.
pub(crate) fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    let cmp = |&a: &usize, &b: &usize| scores[b].total_cmp(&scores[a]).then(a.cmp(&b));
    if k < idx.len() {
        idx.select_nth_unstable_by(k, cmp);
        idx.truncate(k);
    }
    idx.sort_unstable_by(cmp);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_and_breaks_ties() {
        assert_eq!(top_k(&[0.1, 0.9, 0.5, 0.9], 3), vec![1, 3, 2]);
        assert_eq!(top_k(&[1.0, 2.0], 5), vec![1, 0]);
    }

    #[test]
    fn knn_finds_itself_first() {
        let v = normalized_rows(&[1.0, 0.0, 0.0, 1.0, 1.0, 1.0, -1.0, 0.0], 4, 2);
        let nn = knn_unit(&v, 4, &v, 4, 2, 2);
        assert_eq!(nn[0], vec![0, 2]);
        assert_eq!(nn[1], vec![1, 2]);
        assert_eq!(nn[3][0], 3);
    }
}
