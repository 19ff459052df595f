//! SSIM as MONAI-Generative's `SSIMMetric` (`generative/metrics/ssim.py`, 0.2.3; MONAI's own
//! `SSIMMetric` is the same code): a Gaussian window of `kernel_size` taps at offsets
//! `(1 − k)/2 … (k − 1)/2` (an even size gives ±0.5, ±1.5, …), normalised to sum 1; a **valid**
//! convolution (no padding, output `n − k + 1` per axis); `C1 = (k1·R)²`, `C2 = (k2·R)²`; biased
//! variances; the mean of the whole SSIM map. LDAE evaluates interpolation with `kernel_size = 4`,
//! σ = 1.5, R = 1 and its test step with `kernel_size = 3` (`shared/research/ldae.md` §9).
//!
//! This differs from [`super::ssim`] (scikit-image: 11-tap window, border crop of the map): the two are
//! not interchangeable when comparing with the paper.

use super::MetricError;
use crate::core::Volume;
use rayon::prelude::*;

/// Options of [`monai_ssim`]; `Default` is LDAE's interpolation evaluation (kernel 4, σ 1.5, R 1).
#[derive(Clone, Debug, PartialEq)]
pub struct MonaiSsimOptions {
    pub kernel_size: usize,
    pub sigma: f64,
    pub data_range: f64,
    pub k1: f64,
    pub k2: f64,
}

impl Default for MonaiSsimOptions {
    fn default() -> Self {
        Self {
            kernel_size: 4,
            sigma: 1.5,
            data_range: 1.0,
            k1: 0.01,
            k2: 0.03,
        }
    }
}

/// MONAI's `gaussian_1d(kernel_size, sigma)`.
pub fn monai_gaussian_kernel(kernel_size: usize, sigma: f64) -> Vec<f64> {
    let start = (1.0 - kernel_size as f64) / 2.0;
    let w: Vec<f64> = (0..kernel_size)
        .map(|i| {
            let d = (start + i as f64) / sigma;
            (-d * d / 2.0).exp()
        })
        .collect();
    let s: f64 = w.iter().sum();
    w.into_iter().map(|v| v / s).collect()
}

/// Valid 1D filtering of a C-order array of `shape` along `axis`.
fn filter_axis(src: &[f64], shape: [usize; 3], axis: usize, w: &[f64]) -> (Vec<f64>, [usize; 3]) {
    let k = w.len();
    let mut out_shape = shape;
    out_shape[axis] = shape[axis] + 1 - k;
    let [_, o1, o2] = out_shape;
    let stride_in = [shape[1] * shape[2], shape[2], 1];
    let mut out = vec![0f64; out_shape.iter().product()];
    out.par_chunks_mut(o1 * o2).enumerate().for_each(|(i0, plane)| {
        for i1 in 0..o1 {
            for i2 in 0..o2 {
                let base = i0 * stride_in[0] + i1 * stride_in[1] + i2 * stride_in[2];
                let step = stride_in[axis];
                plane[i1 * o2 + i2] = w.iter().enumerate().map(|(t, wt)| wt * src[base + t * step]).sum();
            }
        }
    });
    (out, out_shape)
}

/// Mean SSIM of `a` and `b`, C-order arrays of `dims` (2 or 3 axes, slowest first), as MONAI computes it.
pub fn monai_ssim(a: &[f32], b: &[f32], dims: &[usize], opts: &MonaiSsimOptions) -> Result<f64, MetricError> {
    if a.len() != b.len() {
        return Err(MetricError::ShapeMismatch {
            a: vec![a.len()],
            b: vec![b.len()],
        });
    }
    if a.is_empty() {
        return Err(MetricError::Empty);
    }
    if dims.len() != 2 && dims.len() != 3 {
        return Err(MetricError::Dimensions { dims: dims.to_vec() });
    }
    let expected: usize = dims.iter().product();
    if expected != a.len() {
        return Err(MetricError::LengthMismatch {
            dims: dims.to_vec(),
            expected,
            found: a.len(),
        });
    }
    if opts.kernel_size == 0 || !(opts.sigma.is_finite() && opts.sigma > 0.0) {
        return Err(MetricError::InvalidOption(format!(
            "kernel_size must be positive and sigma positive, got {} and {}",
            opts.kernel_size, opts.sigma
        )));
    }
    if !(opts.data_range.is_finite() && opts.data_range > 0.0) {
        return Err(MetricError::InvalidOption(format!(
            "data_range must be positive and finite, got {}",
            opts.data_range
        )));
    }
    if dims.iter().any(|&d| d < opts.kernel_size) {
        return Err(MetricError::TooSmall {
            dims: dims.to_vec(),
            win_size: opts.kernel_size,
        });
    }
    for (input, data) in [('a', a), ('b', b)] {
        if let Some((index, &value)) = data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(MetricError::NonFinite { input, index, value });
        }
    }
    let shape = if dims.len() == 2 {
        [1, dims[0], dims[1]]
    } else {
        [dims[0], dims[1], dims[2]]
    };
    let w = monai_gaussian_kernel(opts.kernel_size, opts.sigma);
    let axes: &[usize] = if dims.len() == 2 { &[1, 2] } else { &[0, 1, 2] };
    let smooth = |field: Vec<f64>| -> Vec<f64> {
        let (mut cur, mut s) = (field, shape);
        for &ax in axes {
            let (next, ns) = filter_axis(&cur, s, ax, &w);
            cur = next;
            s = ns;
        }
        cur
    };
    let fa: Vec<f64> = a.iter().map(|&v| f64::from(v)).collect();
    let fb: Vec<f64> = b.iter().map(|&v| f64::from(v)).collect();
    let mu_x = smooth(fa.clone());
    let mu_y = smooth(fb.clone());
    let mu_xx = smooth(fa.iter().map(|v| v * v).collect());
    let mu_yy = smooth(fb.iter().map(|v| v * v).collect());
    let mu_xy = smooth(fa.iter().zip(&fb).map(|(x, y)| x * y).collect());
    let c1 = (opts.k1 * opts.data_range).powi(2);
    let c2 = (opts.k2 * opts.data_range).powi(2);
    let n = mu_x.len();
    let sum: f64 = (0..n)
        .into_par_iter()
        .map(|i| {
            let (mx, my) = (mu_x[i], mu_y[i]);
            let sx = mu_xx[i] - mx * mx;
            let sy = mu_yy[i] - my * my;
            let sxy = mu_xy[i] - mx * my;
            let cs = (2.0 * sxy + c2) / (sx + sy + c2);
            (2.0 * mx * my + c1) / (mx * mx + my * my + c1) * cs
        })
        .sum();
    Ok(sum / n as f64)
}

/// [`monai_ssim`] of two single-frame volumes on the same grid.
pub fn monai_ssim_volumes(a: &Volume, b: &Volume, opts: &MonaiSsimOptions) -> Result<f64, MetricError> {
    if a.shape() != b.shape() {
        return Err(MetricError::ShapeMismatch {
            a: a.shape(),
            b: b.shape(),
        });
    }
    if a.frames() != 1 {
        return Err(MetricError::Dimensions { dims: a.shape() });
    }
    let [x, y, z] = a.dims();
    monai_ssim(a.data(), b.data(), &[z, y, x], opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_kernel_has_half_offsets() {
        let w = monai_gaussian_kernel(4, 1.5);
        let g = |d: f64| (-(d / 1.5).powi(2) / 2.0).exp();
        let s = 2.0 * (g(0.5) + g(1.5));
        assert!((w[0] - g(1.5) / s).abs() < 1e-15 && (w[1] - g(0.5) / s).abs() < 1e-15);
        assert_eq!(w[0], w[3]);
    }

    #[test]
    fn identical_inputs_score_one_and_shapes_are_checked() {
        let a: Vec<f32> = (0..6 * 7 * 8).map(|i| ((i * 37) % 11) as f32 / 11.0).collect();
        let s = monai_ssim(&a, &a, &[6, 7, 8], &MonaiSsimOptions::default()).unwrap();
        assert!((s - 1.0).abs() < 1e-12);
        let e = monai_ssim(&a[..12], &a[..12], &[3, 4], &MonaiSsimOptions::default()).unwrap_err();
        assert!(matches!(e, MetricError::TooSmall { .. }));
    }
}
