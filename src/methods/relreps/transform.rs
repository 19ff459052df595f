//! The relative transform: each sample becomes its cosine similarity to every anchor
//! (Moschella et al.; research note §1). Options are explicit because users ask exactly what was
//! normalised (relreps issue #23):
//!
//! - `center`: subtract the anchors' mean from samples and anchors first ("centred cosine");
//!   adds invariance to translations of the space.
//! - `standardize`: also divide every feature by the anchors' standard deviation (unbiased;
//!   near-zero deviations count as 1, like latentis' `STDScaling`); adds invariance to per-axis
//!   rescaling. Implies centring.
//! - `output`: what happens to the similarity vector afterwards: nothing (the paper's raw
//!   cosines) or L2 normalisation (the frozen-encoder stitching notebook).
//!
//! Statistics come from the anchors only, so a space's transform depends on nothing but its
//! own anchor embeddings. Implementation: rows in blocks spread over rayon's threads; each block
//! is prepared (centre, scale, normalise) into a thread-local buffer and multiplied with the
//! prepared anchors by faer's single-threaded gemm, writing straight into its slice of the output.

use super::error::{RelrepsError, Result};
use super::kernels::normalize_in_place;
use crate::core::linalg::{Transpose, gemm};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Post-projection normalisation of the similarity vector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputNorm {
    /// Raw cosines in [-1, 1] (the paper's setting before any learned LayerNorm).
    #[default]
    None,
    /// Each similarity vector scaled to unit L2 norm.
    L2,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelativeOptions {
    pub center: bool,
    pub standardize: bool,
    pub output: OutputNorm,
}

/// Deviations below this count as constant features (scaled by 1, not blown up).
const MIN_STD: f64 = 1e-8;
/// Rows per chunk (one rayon task): large enough that packing the anchors once per chunk is
/// negligible next to the product (512 measured slower), small enough that the buffer stays a few MB.
const CHUNK_ROWS: usize = 2048;

/// The anchors of one space, prepared once; `transform` then maps any samples of that space.
#[derive(Debug, Clone)]
pub struct RelativeProjector {
    options: RelativeOptions,
    dim: usize,
    count: usize,
    /// Prepared anchors, `count × dim`, unit rows.
    anchors: Vec<f32>,
    mean: Option<Vec<f32>>,
    inv_std: Option<Vec<f32>>,
}

impl RelativeProjector {
    /// `anchors`: `count × dim`, row-major, in the same space as the samples to transform.
    pub fn fit(anchors: &[f32], count: usize, dim: usize, options: RelativeOptions) -> Result<Self> {
        if count == 0 || dim == 0 || anchors.len() != count * dim {
            return Err(RelrepsError::Invalid(format!(
                "anchor matrix of {} values is not {count} × {dim} (both positive)",
                anchors.len()
            )));
        }
        let center = options.center || options.standardize;
        let mean = center.then(|| {
            let mut m = vec![0f64; dim];
            for a in anchors.chunks(dim) {
                m.iter_mut().zip(a).for_each(|(s, &v)| *s += f64::from(v));
            }
            m.iter().map(|s| (s / count as f64) as f32).collect::<Vec<f32>>()
        });
        let inv_std = match (&mean, options.standardize) {
            (Some(mean), true) => {
                let mut var = vec![0f64; dim];
                for a in anchors.chunks(dim) {
                    for ((s, &v), &m) in var.iter_mut().zip(a).zip(mean) {
                        *s += (f64::from(v) - f64::from(m)).powi(2);
                    }
                }
                let dof = (count.max(2) - 1) as f64;
                Some(
                    var.iter()
                        .map(|s| {
                            let sd = (s / dof).sqrt();
                            if sd > MIN_STD { (1.0 / sd) as f32 } else { 1.0 }
                        })
                        .collect(),
                )
            }
            _ => None,
        };
        let mut out = Self {
            options,
            dim,
            count,
            anchors: Vec::new(),
            mean,
            inv_std,
        };
        let mut prepared = anchors.to_vec();
        prepared.chunks_mut(dim).for_each(|row| out.prepare_row(row));
        out.anchors = prepared;
        Ok(out)
    }

    pub fn anchor_count(&self) -> usize {
        self.count
    }
    pub fn dim(&self) -> usize {
        self.dim
    }
    pub fn options(&self) -> RelativeOptions {
        self.options
    }

    fn prepare_row(&self, row: &mut [f32]) {
        if let Some(mean) = &self.mean {
            row.iter_mut().zip(mean).for_each(|(v, m)| *v -= m);
        }
        if let Some(inv) = &self.inv_std {
            row.iter_mut().zip(inv).for_each(|(v, s)| *v *= s);
        }
        normalize_in_place(row);
    }

    /// The relative representation of `n` samples (`n × dim`, row-major): `n × anchor_count`.
    pub fn transform(&self, samples: &[f32], n: usize) -> Result<Vec<f32>> {
        let mut out = vec![0f32; n * self.count];
        self.transform_into(samples, n, &mut out)?;
        Ok(out)
    }

    /// As [`transform`](Self::transform), writing into a caller-owned `n × anchor_count` buffer.
    pub fn transform_into(&self, samples: &[f32], n: usize, out: &mut [f32]) -> Result<()> {
        let (d, k) = (self.dim, self.count);
        if samples.len() != n * d || out.len() != n * k {
            return Err(RelrepsError::Invalid(format!(
                "relative transform: {} sample values for {n} × {d}, {} output slots for {n} × {k}",
                samples.len(),
                out.len()
            )));
        }
        // Chunks of rows, one per rayon task: each task prepares its rows (centre, scale,
        // normalise) into a thread-local buffer that stays in cache, and a single-threaded gemm
        // writes the chunk's output rows in place. Splitting the rows across threads beats one
        // threaded gemm per chunk: no synchronisation inside the product and no shared
        // prepared copy of the samples in memory.
        out.par_chunks_mut(CHUNK_ROWS * k)
            .zip(samples.par_chunks(CHUNK_ROWS * d))
            .try_for_each_init(
                || vec![0f32; CHUNK_ROWS.min(n) * d],
                |block, (dst, src)| -> Result<()> {
                    let rows = src.len() / d;
                    let block = &mut block[..rows * d];
                    for (b, s) in block.chunks_mut(d).zip(src.chunks(d)) {
                        b.copy_from_slice(s);
                        self.prepare_row(b);
                    }
                    gemm(
                        block,
                        (rows, d),
                        Transpose::No,
                        &self.anchors,
                        (k, d),
                        Transpose::Yes,
                        dst,
                        1,
                    )?;
                    if self.options.output == OutputNorm::L2 {
                        dst.chunks_mut(k).for_each(normalize_in_place);
                    }
                    Ok(())
                },
            )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        dot / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt())
    }

    #[test]
    fn plain_cosines_match_a_direct_computation() {
        let anchors = [1.0, 0.0, 0.0, 2.0, 1.0, 1.0];
        let x: Vec<f32> = (0..300 * 2).map(|i| ((i * 37 % 11) as f32) - 5.0).collect();
        let p = RelativeProjector::fit(&anchors, 3, 2, RelativeOptions::default()).unwrap();
        let r = p.transform(&x, 300).unwrap();
        for i in [0, 17, 255, 256, 299] {
            for j in 0..3 {
                let want = if x[2 * i] == 0.0 && x[2 * i + 1] == 0.0 {
                    0.0
                } else {
                    cos(&x[2 * i..2 * i + 2], &anchors[2 * j..2 * j + 2])
                };
                assert!((r[i * 3 + j] - want).abs() < 1e-6, "row {i} anchor {j}");
            }
        }
    }

    #[test]
    fn centring_removes_translation_and_standardising_removes_axis_scaling() {
        let anchors: Vec<f32> = (0..20 * 3).map(|i| ((i * 7919 % 23) as f32) / 7.0).collect();
        let x: Vec<f32> = (0..50 * 3).map(|i| ((i * 104_729 % 31) as f32) / 5.0).collect();
        let shift = |v: &[f32]| {
            v.iter()
                .enumerate()
                .map(|(i, &a)| a + [3.0, -2.0, 10.0][i % 3])
                .collect::<Vec<_>>()
        };
        let scale = |v: &[f32]| {
            v.iter()
                .enumerate()
                .map(|(i, &a)| a * [1.0, 5.0, 0.2][i % 3])
                .collect::<Vec<_>>()
        };
        let opts = |center, standardize| RelativeOptions {
            center,
            standardize,
            output: OutputNorm::None,
        };
        let run = |a: &[f32], x: &[f32], o| RelativeProjector::fit(a, 20, 3, o).unwrap().transform(x, 50).unwrap();
        let max_diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max);
        let base = run(&anchors, &x, opts(false, false));
        assert!(max_diff(&base, &run(&shift(&anchors), &shift(&x), opts(false, false))) > 0.1);
        let c = run(&anchors, &x, opts(true, false));
        assert!(max_diff(&c, &run(&shift(&anchors), &shift(&x), opts(true, false))) < 1e-4);
        assert!(max_diff(&c, &run(&scale(&anchors), &scale(&x), opts(true, false))) > 0.05);
        let s = run(&anchors, &x, opts(false, true));
        assert!(
            max_diff(
                &s,
                &run(&scale(&shift(&anchors)), &scale(&shift(&x)), opts(false, true))
            ) < 1e-4
        );
    }

    #[test]
    fn l2_output_has_unit_rows() {
        let anchors = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let p = RelativeProjector::fit(
            &anchors,
            3,
            2,
            RelativeOptions {
                output: OutputNorm::L2,
                ..Default::default()
            },
        )
        .unwrap();
        let r = p.transform(&[3.0, 4.0, -1.0, 2.0], 2).unwrap();
        for row in r.chunks(3) {
            assert!((row.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-6);
        }
        assert!(p.transform(&[1.0; 3], 2).is_err());
    }
}
