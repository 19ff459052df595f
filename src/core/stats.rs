//! Summary statistics, histograms and percentiles over `f32` data, ignoring non-finite values.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Statistics over the finite values of a slice. `nan_count` counts the rest (NaN and ±inf).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: usize,
    pub nan_count: usize,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub std: f64,
    /// Euclidean (L2) norm.
    pub norm: f64,
}

#[derive(Clone, Copy)]
struct Acc {
    n: usize,
    bad: usize,
    min: f64,
    max: f64,
    sum: f64,
    sum_sq: f64,
}

impl Acc {
    const EMPTY: Acc = Acc {
        n: 0,
        bad: 0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        sum: 0.0,
        sum_sq: 0.0,
    };
    fn push(mut self, v: f32) -> Self {
        if v.is_finite() {
            let v = f64::from(v);
            self.n += 1;
            self.min = self.min.min(v);
            self.max = self.max.max(v);
            self.sum += v;
            self.sum_sq += v * v;
        } else {
            self.bad += 1;
        }
        self
    }
    fn merge(self, o: Self) -> Self {
        Acc {
            n: self.n + o.n,
            bad: self.bad + o.bad,
            min: self.min.min(o.min),
            max: self.max.max(o.max),
            sum: self.sum + o.sum,
            sum_sq: self.sum_sq + o.sum_sq,
        }
    }
}

/// Chunk size for parallel reductions: big enough that per-chunk f64 sums stay exact-ish.
const CHUNK: usize = 1 << 16;

fn accumulate(values: &[f32]) -> Acc {
    values
        .par_chunks(CHUNK)
        .map(|c| c.iter().fold(Acc::EMPTY, |a, &v| a.push(v)))
        .reduce(|| Acc::EMPTY, Acc::merge)
}

/// `(min, max)` of the finite values (one pass; [`Summary::of`] also gives the moments), `None`
/// when there are none.
pub fn finite_range(values: &[f32]) -> Option<(f32, f32)> {
    let acc = accumulate(values);
    (acc.n > 0).then_some((acc.min as f32, acc.max as f32))
}

impl Summary {
    pub fn of(values: &[f32]) -> Self {
        let acc = accumulate(values);
        if acc.n == 0 {
            return Summary {
                count: 0,
                nan_count: acc.bad,
                min: f64::NAN,
                max: f64::NAN,
                mean: f64::NAN,
                std: f64::NAN,
                norm: 0.0,
            };
        }
        let n = acc.n as f64;
        let mean = acc.sum / n;
        // Second pass for the variance: the one-pass formula loses precision on MRI-like data.
        let var = values
            .par_chunks(CHUNK)
            .map(|c| {
                c.iter()
                    .filter(|v| v.is_finite())
                    .map(|&v| (f64::from(v) - mean).powi(2))
                    .sum::<f64>()
            })
            .sum::<f64>()
            / n;
        Summary {
            count: acc.n,
            nan_count: acc.bad,
            min: acc.min,
            max: acc.max,
            mean,
            std: var.sqrt(),
            norm: acc.sum_sq.sqrt(),
        }
    }
}

/// A fixed-range histogram.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub lo: f64,
    pub hi: f64,
    pub counts: Vec<u64>,
}

impl Histogram {
    /// Counts finite values into `bins` equal bins over `[lo, hi]` (values outside are dropped).
    pub fn of(values: &[f32], bins: usize, lo: f64, hi: f64) -> Self {
        let bins = bins.max(1);
        let width = if hi > lo { hi - lo } else { 1.0 };
        let counts = values
            .par_chunks(CHUNK)
            .map(|c| {
                let mut h = vec![0u64; bins];
                for &v in c {
                    let v = f64::from(v);
                    if v.is_finite() && v >= lo && v <= hi {
                        let b = (((v - lo) / width) * bins as f64) as usize;
                        h[b.min(bins - 1)] += 1;
                    }
                }
                h
            })
            .reduce(
                || vec![0u64; bins],
                |mut a, b| {
                    for (x, y) in a.iter_mut().zip(b) {
                        *x += y;
                    }
                    a
                },
            );
        Histogram { lo, hi, counts }
    }
}

/// Most values a percentile estimate looks at; beyond this it samples with a fixed stride,
/// which keeps auto window/level instant on 256³ volumes.
const PERCENTILE_SAMPLE: usize = 1 << 20;

/// Percentiles (each in 0–100) of the finite values, by selection on a strided sample.
/// Returns NaN for each when there is no finite value.
pub fn percentiles(values: &[f32], ps: &[f64]) -> Vec<f64> {
    let stride = values.len().div_ceil(PERCENTILE_SAMPLE).max(1);
    let mut sample: Vec<f32> = values
        .iter()
        .step_by(stride)
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    if sample.is_empty() {
        return vec![f64::NAN; ps.len()];
    }
    let last = sample.len() - 1;
    ps.iter()
        .map(|p| {
            let rank = ((p / 100.0).clamp(0.0, 1.0) * last as f64).round() as usize;
            let (_, v, _) = sample.select_nth_unstable_by(rank, f32::total_cmp);
            f64::from(*v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finite_range_skips_non_finite_values() {
        assert_eq!(finite_range(&[f32::NAN, 2.0, -1.0]), Some((-1.0, 2.0)));
        assert_eq!(finite_range(&[f32::NAN]), None);
    }

    #[test]
    fn summary_ignores_nan() {
        let s = Summary::of(&[1.0, 2.0, f32::NAN, 3.0]);
        assert_eq!(s.count, 3);
        assert_eq!(s.nan_count, 1);
        assert_eq!((s.min, s.max, s.mean), (1.0, 3.0, 2.0));
        assert!((s.std - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((s.norm - 14f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn histogram_and_percentiles() {
        let v: Vec<f32> = (0..=100).map(|i| i as f32).collect();
        let h = Histogram::of(&v, 10, 0.0, 100.0);
        assert_eq!(h.counts.iter().sum::<u64>(), 101);
        assert_eq!(h.counts[0], 10);
        assert_eq!(percentiles(&v, &[0.0, 50.0, 99.0]), vec![0.0, 50.0, 99.0]);
    }
}

/// 2D planes of an array for display, one per channel.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelPlanes {
    pub rows: usize,
    pub cols: usize,
    /// One `rows × cols` row-major plane per channel.
    pub planes: Vec<Vec<f32>>,
    /// Channels that exist beyond `planes` (only the first `max_channels` are taken).
    pub omitted: usize,
}

/// Splits a C-order array of `shape` into per-channel planes: the last two axes are rows and
/// columns; with 4 or more axes the third-from-last is a depth axis and its middle is taken;
/// all leading axes are flattened into channels.
pub fn channel_planes(values: &[f32], shape: &[usize], max_channels: usize) -> ChannelPlanes {
    let n = shape.len();
    let (channels, depth, rows, cols) = match n {
        0 => (1, 1, 1, 1),
        1 => (1, 1, 1, shape[0]),
        2 => (1, 1, shape[0], shape[1]),
        3 => (shape[0], 1, shape[1], shape[2]),
        _ => (
            shape[..n - 3].iter().product(),
            shape[n - 3],
            shape[n - 2],
            shape[n - 1],
        ),
    };
    let plane = rows * cols;
    let mid = depth / 2;
    let take = channels.min(max_channels);
    let planes = (0..take)
        .map(|c| {
            let start = (c * depth + mid) * plane;
            values
                .get(start..start + plane)
                .map_or_else(|| vec![f32::NAN; plane], <[f32]>::to_vec)
        })
        .collect();
    ChannelPlanes {
        rows,
        cols,
        planes,
        omitted: channels - take,
    }
}

#[cfg(test)]
mod plane_tests {
    use super::*;

    #[test]
    fn middle_depth_of_each_channel() {
        // shape (2 channels, 3 depth, 1 row, 2 cols)
        let v: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let p = channel_planes(&v, &[2, 3, 1, 2], 8);
        assert_eq!((p.rows, p.cols, p.omitted), (1, 2, 0));
        assert_eq!(p.planes, vec![vec![2.0, 3.0], vec![8.0, 9.0]]);
        assert_eq!(channel_planes(&v, &[12], 8).planes[0].len(), 12);
        assert_eq!(channel_planes(&v, &[12, 1, 1], 4).omitted, 8);
    }
}
