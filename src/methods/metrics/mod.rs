//! Image-similarity metrics: SSIM, MSE and PSNR for 2D images and 3D volumes.
//!
//! # Layout of the data
//!
//! Every function takes flat `f32` slices plus `dims`, the shape listed **slowest axis first,
//! like a numpy shape**, with the data in C order (the last axis varies fastest). A numpy
//! array `arr` of shape `(Z, Y, X)` is passed as `arr.ravel()` with `dims = [Z, Y, X]`.
//!
//! A [`Volume`] stores voxels x fastest with `dims() = [x, y, z]`, so its data is already the
//! C-order array of shape `[z, y, x]`: pass `dims = [z, y, x]` (reversed), or use
//! [`compare_volumes`], which does that for you. SSIM's Gaussian is isotropic in voxels, so
//! the order of the axes does not change the value, only the layout has to be right.
//!
//! # Agreement with scikit-image
//!
//! [`ssim`] equals
//! `skimage.metrics.structural_similarity(a, b, data_range=R, gaussian_weights=True,
//! sigma=1.5, use_sample_covariance=False)` computed in float64, to that computation's own
//! rounding error (≤ 1e-8 in the fixtures; the engine centres the data, skimage does not): a Gaussian
//! filter as `scipy.ndimage.gaussian_filter` (radius `int(truncate·σ + 0.5)`, truncate 3.5),
//! the SSIM map of Wang et al. with `C1 = (K1·R)²`, `C2 = (K2·R)²`, averaged after cropping
//! `radius` voxels from every border. scikit-image computes float32 inputs in float32, which
//! loses a little precision: expect differences up to ~1e-5 against that.
//!
//! [`mse`] is `mean((a - b)²)` and [`psnr`] is `10·log10(R² / mse)` (infinite when `mse = 0`),
//! as `skimage.metrics.mean_squared_error` / `peak_signal_noise_ratio`.

mod monai;
pub mod shape;
mod ssim;

pub use monai::{MonaiSsimOptions, monai_gaussian_kernel, monai_ssim, monai_ssim_volumes};

use crate::core::Volume;
use rayon::prelude::*;
use serde::Serialize;

/// Options of [`ssim`]; the defaults are those of Wang et al. (2004) and of scikit-image with
/// `gaussian_weights=True`.
#[derive(Clone, Debug)]
pub struct SsimOptions {
    /// Dynamic range `R` of the data (`C1 = (k1·R)²`, `C2 = (k2·R)²`). `None`: the range of
    /// both inputs together, `max(a ∪ b) − min(a ∪ b)`.
    pub data_range: Option<f64>,
    /// Standard deviation of the Gaussian window, in voxels (isotropic). Default 1.5.
    pub sigma: f64,
    /// Window radius in standard deviations: radius = `int(truncate·sigma + 0.5)`. Default 3.5
    /// (an 11-voxel window with sigma 1.5).
    pub truncate: f64,
    /// Default 0.01.
    pub k1: f64,
    /// Default 0.03.
    pub k2: f64,
}

impl Default for SsimOptions {
    fn default() -> Self {
        Self {
            data_range: None,
            sigma: 1.5,
            truncate: 3.5,
            k1: 0.01,
            k2: 0.03,
        }
    }
}

impl SsimOptions {
    /// Window radius in voxels, `int(truncate·sigma + 0.5)`.
    pub fn radius(&self) -> usize {
        (self.truncate * self.sigma + 0.5) as usize
    }
    /// Side of the window, `2·radius + 1`; every axis of the data must be at least this long.
    pub fn win_size(&self) -> usize {
        2 * self.radius() + 1
    }
}

/// All three metrics of one comparison.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Similarity {
    /// Mean structural similarity (1 for identical inputs).
    pub ssim: f64,
    /// Mean squared error.
    pub mse: f64,
    /// Peak signal-to-noise ratio in dB; infinite (serialised as `null`) when `mse` is 0.
    pub psnr: f64,
    /// The data range used for SSIM and PSNR.
    pub data_range: f64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricError {
    #[error("inputs differ in shape: {a:?} vs {b:?}")]
    ShapeMismatch { a: Vec<usize>, b: Vec<usize> },
    #[error("shape {dims:?} needs {expected} values but {found} were given")]
    LengthMismatch {
        dims: Vec<usize>,
        expected: usize,
        found: usize,
    },
    #[error("SSIM needs 2 or 3 dimensions, got {dims:?}")]
    Dimensions { dims: Vec<usize> },
    #[error("shape {dims:?} is smaller than the {win_size}-voxel SSIM window along some axis")]
    TooSmall { dims: Vec<usize>, win_size: usize },
    #[error("inputs are empty")]
    Empty,
    #[error("input {input} has a non-finite value ({value}) at index {index}")]
    NonFinite { input: char, index: usize, value: f32 },
    #[error("invalid option: {0}")]
    InvalidOption(String),
}

/// Mean SSIM of `a` and `b`, both C-order arrays of shape `dims` (2 or 3 axes, slowest first;
/// see the module docs).
///
/// Identical inputs give exactly 1 (also when they are constant, where the formula is 0/0).
pub fn ssim(a: &[f32], b: &[f32], dims: &[usize], opts: &SsimOptions) -> Result<f64, MetricError> {
    let scan = scan(a, b)?;
    ssim_scanned(a, b, dims, opts, &scan).map(|(s, _)| s)
}

/// Mean squared error, `mean((a − b)²)`, accumulated in `f64`.
pub fn mse(a: &[f32], b: &[f32]) -> Result<f64, MetricError> {
    Ok(scan(a, b)?.mse())
}

/// Peak signal-to-noise ratio `10·log10(data_range² / mse)` in dB; `+∞` when `a == b`.
pub fn psnr(a: &[f32], b: &[f32], data_range: f64) -> Result<f64, MetricError> {
    check_range(data_range)?;
    Ok(psnr_from(scan(a, b)?.mse(), data_range))
}

/// SSIM, MSE and PSNR in one pass over the inputs (see [`ssim`] for `dims`). PSNR uses the
/// same data range as SSIM.
pub fn compare(a: &[f32], b: &[f32], dims: &[usize], opts: &SsimOptions) -> Result<Similarity, MetricError> {
    let scan = scan(a, b)?;
    let (ssim, data_range) = ssim_scanned(a, b, dims, opts, &scan)?;
    let mse = scan.mse();
    Ok(Similarity {
        ssim,
        mse,
        psnr: psnr_from(mse, data_range),
        data_range,
    })
}

/// [`compare`] for two volumes of the same grid, handling their x-fastest layout. With
/// several frames, SSIM is the mean of the per-frame values (one data range for all frames)
/// and MSE/PSNR cover all voxels.
pub fn compare_volumes(a: &Volume, b: &Volume, opts: &SsimOptions) -> Result<Similarity, MetricError> {
    if a.shape() != b.shape() {
        return Err(MetricError::ShapeMismatch {
            a: a.shape(),
            b: b.shape(),
        });
    }
    let [x, y, z] = a.dims();
    let dims = [z, y, x];
    let scan = scan(a.data(), b.data())?;
    let mut opts = opts.clone();
    let data_range = resolve_range(&opts, &scan)?;
    opts.data_range = Some(data_range);
    let mut sum = 0.0;
    for t in 0..a.frames() {
        let (fa, fb) = (a.frame(t), b.frame(t));
        sum += ssim_scanned(fa, fb, &dims, &opts, &scan)?.0;
    }
    let mse = scan.mse();
    Ok(Similarity {
        ssim: sum / a.frames() as f64,
        mse,
        psnr: psnr_from(mse, data_range),
        data_range,
    })
}

fn psnr_from(mse: f64, data_range: f64) -> f64 {
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (data_range * data_range / mse).log10()
    }
}

fn check_range(r: f64) -> Result<(), MetricError> {
    if r.is_finite() && r > 0.0 {
        Ok(())
    } else {
        Err(MetricError::InvalidOption(format!(
            "data_range must be positive and finite, got {r}"
        )))
    }
}

fn resolve_range(opts: &SsimOptions, scan: &Scan) -> Result<f64, MetricError> {
    match opts.data_range {
        Some(r) => check_range(r).map(|_| r),
        None => Ok(scan.max - scan.min),
    }
}

/// SSIM given a finished [`Scan`] of the whole inputs (which may cover more than `a`/`b`, as
/// in [`compare_volumes`]). Returns the value and the data range used.
fn ssim_scanned(
    a: &[f32],
    b: &[f32],
    dims: &[usize],
    opts: &SsimOptions,
    scan: &Scan,
) -> Result<(f64, f64), MetricError> {
    if !(opts.sigma.is_finite() && opts.sigma > 0.0) {
        return Err(MetricError::InvalidOption(format!(
            "sigma must be positive, got {}",
            opts.sigma
        )));
    }
    if !(opts.truncate.is_finite() && opts.truncate >= 0.0) {
        return Err(MetricError::InvalidOption(format!(
            "truncate must be non-negative, got {}",
            opts.truncate
        )));
    }
    if !(opts.k1.is_finite() && opts.k1 >= 0.0 && opts.k2.is_finite() && opts.k2 >= 0.0) {
        return Err(MetricError::InvalidOption(format!(
            "k1 and k2 must be non-negative, got {} and {}",
            opts.k1, opts.k2
        )));
    }
    if dims.len() != 2 && dims.len() != 3 {
        return Err(MetricError::Dimensions { dims: dims.to_vec() });
    }
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .unwrap_or(usize::MAX);
    if expected != a.len() {
        return Err(MetricError::LengthMismatch {
            dims: dims.to_vec(),
            expected,
            found: a.len(),
        });
    }
    let win_size = opts.win_size();
    if dims.iter().any(|&d| d < win_size) {
        return Err(MetricError::TooSmall {
            dims: dims.to_vec(),
            win_size,
        });
    }
    let data_range = resolve_range(opts, scan)?;
    if data_range == 0.0 {
        // Both inputs are the same constant: identical, although the formula would be 0/0.
        return Ok((1.0, 0.0));
    }
    let w = ssim::gaussian_kernel(opts.sigma, opts.truncate);
    let shape = if dims.len() == 2 {
        [1, dims[0], dims[1]]
    } else {
        [dims[0], dims[1], dims[2]]
    };
    let params = ssim::Params {
        shape,
        w: &w,
        three_d: dims.len() == 3,
        center: 0.5 * (scan.min + scan.max),
        c1: (opts.k1 * data_range).powi(2),
        c2: (opts.k2 * data_range).powi(2),
    };
    Ok((ssim::mean_ssim(a, b, &params), data_range))
}

/// One pass over both inputs: range of the union, sum of squared differences, and a check
/// that every value is finite.
struct Scan {
    min: f64,
    max: f64,
    sse: f64,
    len: usize,
}

impl Scan {
    fn mse(&self) -> f64 {
        self.sse / self.len as f64
    }
}

fn scan(a: &[f32], b: &[f32]) -> Result<Scan, MetricError> {
    if a.len() != b.len() {
        return Err(MetricError::ShapeMismatch {
            a: vec![a.len()],
            b: vec![b.len()],
        });
    }
    if a.is_empty() {
        return Err(MetricError::Empty);
    }
    const CHUNK: usize = 1 << 15;
    struct Part {
        min: f32,
        max: f32,
        sse: f64,
        bad: Option<(char, usize, f32)>,
    }
    let parts: Vec<Part> = a
        .par_chunks(CHUNK)
        .zip(b.par_chunks(CHUNK))
        .enumerate()
        .map(|(ci, (ca, cb))| {
            let (min, max, sse, finite) = scan_chunk(ca, cb);
            let bad = if finite {
                None
            } else {
                ca.iter()
                    .zip(cb)
                    .enumerate()
                    .find_map(|(i, (&x, &y))| {
                        if !x.is_finite() {
                            Some(('a', i, x))
                        } else if !y.is_finite() {
                            Some(('b', i, y))
                        } else {
                            None
                        }
                    })
                    .map(|(c, i, v)| (c, ci * CHUNK + i, v))
            };
            Part { min, max, sse, bad }
        })
        .collect();
    let mut out = Scan {
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        sse: 0.0,
        len: a.len(),
    };
    for p in &parts {
        if let Some((input, index, value)) = p.bad {
            return Err(MetricError::NonFinite { input, index, value });
        }
        out.min = out.min.min(f64::from(p.min));
        out.max = out.max.max(f64::from(p.max));
        out.sse += p.sse;
    }
    Ok(out)
}

/// Range, sum of squared differences and finiteness of one chunk of both inputs.
fn scan_chunk(ca: &[f32], cb: &[f32]) -> (f32, f32, f64, bool) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: avx2 was just detected.
        return unsafe { scan_chunk_avx2(ca, cb) };
    }
    scan_kernel(ca, cb)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn scan_chunk_avx2(ca: &[f32], cb: &[f32]) -> (f32, f32, f64, bool) {
    scan_kernel(ca, cb)
}

/// Lane arrays so the loop vectorises; plain comparisons (not NaN-aware min/max) since
/// non-finite inputs are refused anyway. No fused multiply-add, so every build rounds alike.
#[inline(always)]
fn scan_kernel(ca: &[f32], cb: &[f32]) -> (f32, f32, f64, bool) {
    const L: usize = 8;
    let mut mn = [f32::INFINITY; L];
    let mut mx = [f32::NEG_INFINITY; L];
    let mut sse = [0.0f64; L];
    let mut fin = [true; L];
    let mut step = |x: f32, y: f32, l: usize| {
        fin[l] &= x.is_finite() & y.is_finite();
        let (lo, hi) = if x < y { (x, y) } else { (y, x) };
        mn[l] = if lo < mn[l] { lo } else { mn[l] };
        mx[l] = if hi > mx[l] { hi } else { mx[l] };
        let d = f64::from(x) - f64::from(y);
        sse[l] += d * d;
    };
    let (ea, eb) = (ca.chunks_exact(L), cb.chunks_exact(L));
    let (ra, rb) = (ea.remainder(), eb.remainder());
    for (xa, xb) in ea.zip(eb) {
        for l in 0..L {
            step(xa[l], xb[l], l);
        }
    }
    for (l, (&x, &y)) in ra.iter().zip(rb).enumerate() {
        step(x, y, l);
    }
    let min = mn.iter().copied().fold(f32::INFINITY, f32::min);
    let max = mx.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    (min, max, sse.iter().sum(), fin.iter().all(|&f| f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_matches_scipy() {
        // scipy.ndimage._filters._gaussian_kernel1d(1.5, 0, 5)
        let w = ssim::gaussian_kernel(1.5, 3.5);
        assert_eq!(w.len(), 11);
        let expect = [
            0.001_028_380_084_479_11,
            0.007_598_758_135_239_19,
            0.036_000_772_128_430_83,
            0.109_360_689_509_700_02,
            0.213_005_537_711_253_7,
            0.266_011_724_861_794_36,
        ];
        for (i, e) in expect.iter().enumerate() {
            assert!((w[i] - e).abs() < 1e-12, "tap {i}: {} vs {e}", w[i]);
            assert!((w[10 - i] - e).abs() < 1e-12);
        }
    }

    /// Straightforward reference: full-size reflect-mode filtering, then crop.
    fn naive_ssim(a: &[f32], b: &[f32], dims: &[usize], r: f64) -> f64 {
        let w = ssim::gaussian_kernel(1.5, 3.5);
        let rad = (w.len() - 1) / 2;
        let shape: Vec<usize> = dims.to_vec();
        let n: usize = shape.iter().product();
        let filt = |src: &[f64]| -> Vec<f64> {
            let mut cur = src.to_vec();
            for ax in 0..shape.len() {
                let stride: usize = shape[ax + 1..].iter().product();
                let len = shape[ax];
                let mut next = vec![0.0; n];
                for (i, v) in next.iter_mut().enumerate() {
                    let pos = (i / stride) % len;
                    let base = i - pos * stride;
                    let mut s = 0.0;
                    for (t, wt) in w.iter().enumerate() {
                        let mut p = pos as isize + t as isize - rad as isize;
                        if p < 0 {
                            p = -p - 1;
                        }
                        if p >= len as isize {
                            p = 2 * len as isize - p - 1;
                        }
                        s += wt * cur[base + p as usize * stride];
                    }
                    *v = s;
                }
                cur = next;
            }
            cur
        };
        let fa: Vec<f64> = a.iter().map(|&x| f64::from(x)).collect();
        let fb: Vec<f64> = b.iter().map(|&x| f64::from(x)).collect();
        let ux = filt(&fa);
        let uy = filt(&fb);
        let uxx = filt(&fa.iter().map(|x| x * x).collect::<Vec<_>>());
        let uyy = filt(&fb.iter().map(|x| x * x).collect::<Vec<_>>());
        let uxy = filt(&fa.iter().zip(&fb).map(|(x, y)| x * y).collect::<Vec<_>>());
        let (c1, c2) = ((0.01 * r).powi(2), (0.03 * r).powi(2));
        let mut sum = 0.0;
        let mut count = 0usize;
        'outer: for i in 0..n {
            let mut rem = i;
            for ax in (0..shape.len()).rev() {
                let p = rem % shape[ax];
                rem /= shape[ax];
                if p < rad || p + rad >= shape[ax] {
                    continue 'outer;
                }
            }
            let (vx, vy, vxy) = (uxx[i] - ux[i] * ux[i], uyy[i] - uy[i] * uy[i], uxy[i] - ux[i] * uy[i]);
            sum +=
                (2.0 * ux[i] * uy[i] + c1) * (2.0 * vxy + c2) / ((ux[i] * ux[i] + uy[i] * uy[i] + c1) * (vx + vy + c2));
            count += 1;
        }
        sum / count as f64
    }

    fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32) / (1u64 << 24) as f32
            })
            .collect()
    }

    #[test]
    fn engine_matches_naive_reference() {
        for dims in [vec![23usize, 31], vec![13, 17, 40], vec![12, 11, 35]] {
            let n: usize = dims.iter().product();
            let a = pseudo_random(n, 1);
            let b: Vec<f32> = a.iter().zip(pseudo_random(n, 2)).map(|(x, y)| x + 0.3 * y).collect();
            let opts = SsimOptions {
                data_range: Some(1.3),
                ..Default::default()
            };
            let fast = ssim(&a, &b, &dims, &opts).unwrap();
            let slow = naive_ssim(&a, &b, &dims, 1.3);
            assert!((fast - slow).abs() < 1e-12, "{dims:?}: {fast} vs {slow}");
        }
    }
}
