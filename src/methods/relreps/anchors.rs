//! Anchor selection: which samples every space is expressed against. Anchors are chosen once, in
//! one space (the source), as sample *indices*; the same indices (hence the same ids) are then
//! used in every space. All strategies are seeded and repeat exactly.
//!
//! The strategies follow the relreps experiments (research note §2): uniform random, stratified
//! round-robin over classes, farthest-point sampling and k-means-nearest, the last two on
//! L2-normalised vectors (cosine geometry).

use super::error::{RelrepsError, Result};
use super::kernels::{normalized_rows, row_dots};
use crate::core::diffusion::Rng;
use crate::core::linalg::{Transpose, gemm};
use rayon::prelude::*;
use std::collections::BTreeMap;

/// How anchors are picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnchorMode {
    /// Uniformly at random without replacement.
    Uniform,
    /// Seeded shuffle, then round-robin over the classes of a label column (relreps'
    /// `stratified_subset`): class sizes as even as the data allows.
    Stratified,
    /// Farthest-point sampling on unit vectors from a random start.
    Fps,
    /// k-means (k = anchor count, k-means++ start) on unit vectors, then the sample nearest each
    /// centroid.
    Kmeans,
}

impl AnchorMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Uniform => "uniform",
            Self::Stratified => "stratified",
            Self::Fps => "fps",
            Self::Kmeans => "kmeans",
        }
    }
}

/// Lloyd iterations at most; assignments usually settle well before.
const KMEANS_MAX_ITERS: usize = 25;
/// Rows per block in the blocked distance products (keeps a block × centroids tile in cache).
const BLOCK_ROWS: usize = 256;

/// Picks `count` distinct sample indices of the `n × d` row-major `values`. `labels` (one per
/// sample) is required by [`AnchorMode::Stratified`] and ignored otherwise.
pub fn select_anchors(
    values: &[f32],
    n: usize,
    d: usize,
    count: usize,
    mode: AnchorMode,
    seed: u64,
    labels: Option<&[String]>,
) -> Result<Vec<usize>> {
    if count == 0 {
        return Err(RelrepsError::Invalid("the anchor count must be at least 1".into()));
    }
    if count > n {
        return Err(RelrepsError::TooManyAnchors {
            asked: count,
            available: n,
        });
    }
    let mut rng = Rng::new(seed);
    match mode {
        AnchorMode::Uniform => Ok(uniform(n, count, &mut rng)),
        AnchorMode::Stratified => {
            let labels = labels.ok_or_else(|| {
                RelrepsError::Invalid("stratified anchors need a label column (--labels and --label-column)".into())
            })?;
            if labels.len() != n {
                return Err(RelrepsError::Invalid(format!(
                    "{} labels for {n} samples",
                    labels.len()
                )));
            }
            Ok(stratified(labels, count, &mut rng))
        }
        AnchorMode::Fps => Ok(farthest_point(&normalized_rows(values, n, d), n, d, count, &mut rng)),
        AnchorMode::Kmeans => kmeans_nearest(&normalized_rows(values, n, d), n, d, count, &mut rng),
    }
}

fn below(rng: &mut Rng, n: usize) -> usize {
    // n ≤ 2^53 in practice; the modulo bias of a 64-bit draw is negligible at these sizes.
    (rng.next_u64() % n as u64) as usize
}

/// Seeded Fisher–Yates shuffle of `0..n`.
fn shuffled(n: usize, rng: &mut Rng) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        idx.swap(i, below(rng, i + 1));
    }
    idx
}

fn uniform(n: usize, count: usize, rng: &mut Rng) -> Vec<usize> {
    // Partial Fisher–Yates: the first `count` positions are a uniform sample.
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..count {
        let j = i + below(rng, n - i);
        idx.swap(i, j);
    }
    idx.truncate(count);
    idx
}

fn stratified(labels: &[String], count: usize, rng: &mut Rng) -> Vec<usize> {
    let mut by_class: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for i in shuffled(labels.len(), rng) {
        by_class.entry(labels[i].as_str()).or_default().push(i);
    }
    let queues: Vec<Vec<usize>> = by_class.into_values().collect();
    let mut out = Vec::with_capacity(count);
    let mut round = 0;
    while out.len() < count {
        for q in &queues {
            if let Some(&i) = q.get(round) {
                out.push(i);
                if out.len() == count {
                    break;
                }
            }
        }
        round += 1;
    }
    out
}

/// Greedy farthest-point sampling; distances on unit vectors (‖a − b‖² = 2 − 2 a·b).
fn farthest_point(unit: &[f32], n: usize, d: usize, count: usize, rng: &mut Rng) -> Vec<usize> {
    let mut chosen = vec![below(rng, n)];
    let mut min_dist = vec![f32::INFINITY; n];
    while chosen.len() < count {
        let last = chosen[chosen.len() - 1];
        let a = &unit[last * d..(last + 1) * d];
        min_dist.par_iter_mut().enumerate().for_each(|(i, m)| {
            let x = &unit[i * d..(i + 1) * d];
            let dist = 2.0 - 2.0 * x.iter().zip(a).map(|(p, q)| p * q).sum::<f32>();
            *m = m.min(dist);
        });
        for &c in &chosen {
            min_dist[c] = f32::NEG_INFINITY; // never pick twice, even among duplicates
        }
        // Ties go to the lowest index, so the result does not depend on thread timing.
        let (best, _) = min_dist.iter().enumerate().fold(
            (0, f32::NEG_INFINITY),
            |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc },
        );
        chosen.push(best);
    }
    chosen
}

/// For every row of `x` (`n × d`), the index of the nearest centroid (`k × d`) and its score
/// `x·c − ‖c‖²/2` (larger is nearer), by blocked products.
fn assign(x: &[f32], n: usize, d: usize, centroids: &[f32], k: usize) -> Vec<usize> {
    let half_norms: Vec<f32> = centroids
        .chunks(d)
        .map(|c| 0.5 * c.iter().map(|v| v * v).sum::<f32>())
        .collect();
    let mut labels = vec![0usize; n];
    labels
        .par_chunks_mut(BLOCK_ROWS)
        .zip(x.par_chunks(BLOCK_ROWS * d))
        .for_each(|(lab, xb)| {
            let rows = xb.len() / d;
            let mut scores = vec![0f32; rows * k];
            // Shapes are consistent by construction.
            if gemm(
                xb,
                (rows, d),
                Transpose::No,
                centroids,
                (k, d),
                Transpose::Yes,
                &mut scores,
                1,
            )
            .is_err()
            {
                return;
            }
            for (r, l) in lab.iter_mut().enumerate() {
                let row = &scores[r * k..(r + 1) * k];
                let mut best = (0, f32::NEG_INFINITY);
                for (j, (&s, &h)) in row.iter().zip(&half_norms).enumerate() {
                    if s - h > best.1 {
                        best = (j, s - h);
                    }
                }
                *l = best.0;
            }
        });
    labels
}

fn kmeans_nearest(unit: &[f32], n: usize, d: usize, k: usize, rng: &mut Rng) -> Result<Vec<usize>> {
    // k-means++ seeding: each next centre drawn with probability ∝ squared distance.
    let mut centres = vec![below(rng, n)];
    let mut min_dist = vec![f32::INFINITY; n];
    while centres.len() < k {
        let last = centres[centres.len() - 1];
        let a = &unit[last * d..(last + 1) * d];
        min_dist.par_iter_mut().enumerate().for_each(|(i, m)| {
            let x = &unit[i * d..(i + 1) * d];
            let dist = (2.0 - 2.0 * x.iter().zip(a).map(|(p, q)| p * q).sum::<f32>()).max(0.0);
            *m = m.min(dist);
        });
        let total: f64 = min_dist.iter().map(|&v| f64::from(v)).sum();
        let next = if total > 0.0 {
            let mut target = rng.uniform() * total;
            let mut pick = n - 1;
            for (i, &v) in min_dist.iter().enumerate() {
                target -= f64::from(v);
                if target < 0.0 {
                    pick = i;
                    break;
                }
            }
            pick
        } else {
            below(rng, n) // all points coincide with a centre
        };
        centres.push(next);
    }
    let mut centroids: Vec<f32> = centres
        .iter()
        .flat_map(|&i| unit[i * d..(i + 1) * d].to_vec())
        .collect();
    let mut labels = assign(unit, n, d, &centroids, k);
    for _ in 0..KMEANS_MAX_ITERS {
        let mut sums = vec![0f64; k * d];
        let mut counts = vec![0usize; k];
        for (i, &l) in labels.iter().enumerate() {
            counts[l] += 1;
            for (s, &v) in sums[l * d..(l + 1) * d].iter_mut().zip(&unit[i * d..(i + 1) * d]) {
                *s += f64::from(v);
            }
        }
        for ((centroid, sum), &count) in centroids.chunks_mut(d).zip(sums.chunks(d)).zip(&counts) {
            if count > 0 {
                // An empty cluster keeps its old centroid.
                for (c, &s) in centroid.iter_mut().zip(sum) {
                    *c = (s / count as f64) as f32;
                }
            }
        }
        let next = assign(unit, n, d, &centroids, k);
        let settled = next == labels;
        labels = next;
        if settled {
            break;
        }
    }
    // The sample nearest each centroid; a sample already taken goes to the next-nearest.
    let mut taken = vec![false; n];
    let mut out = Vec::with_capacity(k);
    for c in centroids.chunks(d) {
        let dots = row_dots(unit, n, d, c);
        let best = (0..n)
            .filter(|&i| !taken[i])
            .fold(None, |acc: Option<(usize, f32)>, i| match acc {
                Some((_, s)) if s >= dots[i] => acc,
                _ => Some((i, dots[i])),
            })
            .map(|(i, _)| i)
            .ok_or_else(|| RelrepsError::Invalid("k-means ran out of samples".into()))?;
        taken[best] = true;
        out.push(best);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs(per: usize, seed: u64) -> (Vec<f32>, Vec<String>) {
        // Four tight clusters on the axes of R^4.
        let mut rng = Rng::new(seed);
        let mut v = Vec::new();
        let mut labels = Vec::new();
        for c in 0..4 {
            for _ in 0..per {
                for j in 0..4 {
                    let base = if j == c { 1.0 } else { 0.0 };
                    v.push(base + 0.01 * rng.normal() as f32);
                }
                labels.push(format!("class{c}"));
            }
        }
        (v, labels)
    }

    #[test]
    fn all_modes_give_distinct_repeatable_indices() {
        let (v, labels) = blobs(25, 1);
        for mode in [
            AnchorMode::Uniform,
            AnchorMode::Stratified,
            AnchorMode::Fps,
            AnchorMode::Kmeans,
        ] {
            let a = select_anchors(&v, 100, 4, 8, mode, 42, Some(&labels)).unwrap();
            let b = select_anchors(&v, 100, 4, 8, mode, 42, Some(&labels)).unwrap();
            assert_eq!(a, b, "{mode:?} is not repeatable");
            let mut s = a.clone();
            s.sort_unstable();
            s.dedup();
            assert_eq!(s.len(), 8, "{mode:?} repeated an anchor");
        }
    }

    #[test]
    fn geometry_aware_modes_cover_every_cluster() {
        let (v, labels) = blobs(25, 2);
        for mode in [AnchorMode::Stratified, AnchorMode::Fps, AnchorMode::Kmeans] {
            let a = select_anchors(&v, 100, 4, 4, mode, 7, Some(&labels)).unwrap();
            let mut classes: Vec<&str> = a.iter().map(|&i| labels[i].as_str()).collect();
            classes.sort_unstable();
            assert_eq!(classes, ["class0", "class1", "class2", "class3"], "{mode:?}");
        }
    }

    #[test]
    fn bad_requests_are_errors() {
        let (v, _) = blobs(2, 3);
        assert!(matches!(
            select_anchors(&v, 8, 4, 9, AnchorMode::Uniform, 0, None),
            Err(RelrepsError::TooManyAnchors { .. })
        ));
        assert!(select_anchors(&v, 8, 4, 2, AnchorMode::Stratified, 0, None).is_err());
        assert!(select_anchors(&v, 8, 4, 0, AnchorMode::Fps, 0, None).is_err());
    }
}
