//! Resampling helpers for procedurally warped volumes on x-fastest grids (the layout of
//! [`crate::core::Volume`]): separable Gaussian smoothing, central-difference gradients and
//! trilinear sampling of several fields stored together per voxel.
//!
//! Coordinates are fractional voxel indices. Sampling clamps to the grid, so points just outside
//! read the border voxel; the generators keep a background margin so that this never matters.

use rayon::prelude::*;

/// Normalised Gaussian weights out to 3σ (at least one tap each side).
pub fn gaussian_kernel(sigma_vox: f32) -> Vec<f32> {
    let radius = ((3.0 * sigma_vox).ceil() as usize).max(1);
    let s2 = sigma_vox * sigma_vox;
    let mut w: Vec<f32> = (0..=2 * radius)
        .map(|i| {
            let x = i as f32 - radius as f32;
            (-0.5 * x * x / s2).exp()
        })
        .collect();
    let sum: f32 = w.iter().sum();
    for v in &mut w {
        *v /= sum;
    }
    w
}

/// `dst += a · src` over the shorter of the two.
fn axpy(dst: &mut [f32], a: f32, src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += a * s;
    }
}

/// Gaussian smoothing with standard deviation `sigma_vox` (in voxels) along each axis; borders
/// repeat the edge voxel. `sigma_vox <= 0` returns a copy.
pub fn smooth(data: &[f32], dims: [usize; 3], sigma_vox: f32) -> Vec<f32> {
    if sigma_vox <= 0.0 {
        return data.to_vec();
    }
    let w = gaussian_kernel(sigma_vox);
    let r = w.len() / 2;
    let [nx, ny, nz] = dims;
    let plane = nx * ny;
    let clamp = |i: usize, n: usize| i.saturating_sub(r).min(n - 1);
    // x then y inside each z-slice: slices are independent.
    let mut xy = vec![0.0f32; data.len()];
    xy.par_chunks_mut(plane)
        .zip(data.par_chunks(plane))
        .for_each(|(out, src)| {
            let mut tmp = vec![0.0f32; plane];
            for y in 0..ny {
                let line = &src[y * nx..(y + 1) * nx];
                for (x, t) in tmp[y * nx..(y + 1) * nx].iter_mut().enumerate() {
                    *t = w.iter().enumerate().map(|(k, wk)| wk * line[clamp(x + k, nx)]).sum();
                }
            }
            for y in 0..ny {
                let row = &mut out[y * nx..(y + 1) * nx];
                for (k, &wk) in w.iter().enumerate() {
                    let yy = clamp(y + k, ny);
                    axpy(row, wk, &tmp[yy * nx..(yy + 1) * nx]);
                }
            }
        });
    // z: each output slice is a weighted sum of whole input slices.
    let mut out = vec![0.0f32; data.len()];
    out.par_chunks_mut(plane).enumerate().for_each(|(z, dst)| {
        for (k, &wk) in w.iter().enumerate() {
            let zz = clamp(z + k, nz);
            axpy(dst, wk, &xy[zz * plane..(zz + 1) * plane]);
        }
    });
    out
}

/// Gradient per mm along x, y and z by central differences (one-sided at the borders).
pub fn gradient(data: &[f32], dims: [usize; 3], spacing_mm: f32) -> [Vec<f32>; 3] {
    let [nx, ny, _] = dims;
    let strides = [1, nx, nx * ny];
    let mut out: [Vec<f32>; 3] = std::array::from_fn(|_| vec![0.0; data.len()]);
    for (axis, g) in out.iter_mut().enumerate() {
        let n = dims[axis];
        let stride = strides[axis];
        g.par_chunks_mut(nx * ny).enumerate().for_each(|(z, slice)| {
            for y in 0..ny {
                for x in 0..nx {
                    let i = [x, y, z][axis];
                    let idx = x + nx * (y + ny * z);
                    let (lo, hi) = (i.saturating_sub(1), (i + 1).min(n - 1));
                    if hi == lo {
                        continue;
                    }
                    let d = data[idx + (hi - i) * stride] - data[idx - (i - lo) * stride];
                    slice[x + nx * y] = d / ((hi - lo) as f32 * spacing_mm);
                }
            }
        });
    }
    out
}

/// The eight neighbours of a point and their trilinear weights.
#[derive(Clone, Copy, Debug)]
pub struct Corners {
    index: [usize; 8],
    weight: [f32; 8],
}

impl Corners {
    /// Neighbours of fractional voxel position `p`, clamped to the grid.
    #[inline]
    pub fn at(dims: [usize; 3], p: [f32; 3]) -> Self {
        let mut i0 = [0usize; 3];
        let mut i1 = [0usize; 3];
        let mut f = [0f32; 3];
        for a in 0..3 {
            let max = (dims[a] - 1) as f32;
            let c = p[a].clamp(0.0, max);
            let fl = c.floor();
            i0[a] = fl as usize;
            i1[a] = (i0[a] + 1).min(dims[a] - 1);
            f[a] = c - fl;
        }
        let (nx, nxy) = (dims[0], dims[0] * dims[1]);
        let mut index = [0; 8];
        let mut weight = [0.0; 8];
        for (k, (idx, w)) in index.iter_mut().zip(&mut weight).enumerate() {
            let (bx, by, bz) = (k & 1, (k >> 1) & 1, (k >> 2) & 1);
            let x = if bx == 1 { i1[0] } else { i0[0] };
            let y = if by == 1 { i1[1] } else { i0[1] };
            let z = if bz == 1 { i1[2] } else { i0[2] };
            *idx = x + nx * y + nxy * z;
            let wx = if bx == 1 { f[0] } else { 1.0 - f[0] };
            let wy = if by == 1 { f[1] } else { 1.0 - f[1] };
            let wz = if bz == 1 { f[2] } else { 1.0 - f[2] };
            *w = wx * wy * wz;
        }
        Self { index, weight }
    }

    /// Interpolates a scalar field.
    #[inline]
    pub fn sample(&self, field: &[f32]) -> f32 {
        self.index.iter().zip(&self.weight).map(|(&i, &w)| w * field[i]).sum()
    }

    /// Interpolates `N` fields stored together per voxel.
    #[inline]
    pub fn sample_n<const N: usize>(&self, fields: &[[f32; N]]) -> [f32; N] {
        let mut out = [0.0; N];
        for (&i, &w) in self.index.iter().zip(&self.weight) {
            for (o, v) in out.iter_mut().zip(&fields[i]) {
                *o += w * v;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_keeps_the_mean_and_spreads_a_spike() {
        let dims = [9, 8, 7];
        let mut data = vec![0.0; 9 * 8 * 7];
        data[4 + 9 * (4 + 8 * 3)] = 1.0;
        let s = smooth(&data, dims, 1.0);
        let total: f32 = s.iter().sum();
        assert!((total - 1.0).abs() < 1e-4, "{total}");
        let centre = s[4 + 9 * (4 + 8 * 3)];
        let side = s[5 + 9 * (4 + 8 * 3)];
        // Separable Gaussian: neighbour / centre = exp(-1/2) along one axis.
        assert!((side / centre - (-0.5f32).exp()).abs() < 1e-3, "{side} {centre}");
    }

    #[test]
    fn gradient_of_a_ramp_is_its_slope() {
        let dims = [5, 4, 3];
        let data: Vec<f32> = (0..60)
            .map(|i| {
                let (x, y, z) = (i % 5, (i / 5) % 4, i / 20);
                2.0 * x as f32 - y as f32 + 0.5 * z as f32
            })
            .collect();
        let [gx, gy, gz] = gradient(&data, dims, 2.0);
        for i in 0..60 {
            assert!((gx[i] - 1.0).abs() < 1e-6);
            assert!((gy[i] + 0.5).abs() < 1e-6);
            assert!((gz[i] - 0.25).abs() < 1e-6);
        }
    }

    #[test]
    fn trilinear_reproduces_a_linear_field() {
        let dims = [4, 4, 4];
        let f = |x: f32, y: f32, z: f32| 1.0 + x + 2.0 * y - 3.0 * z;
        let data: Vec<f32> = (0..64)
            .map(|i| f((i % 4) as f32, ((i / 4) % 4) as f32, (i / 16) as f32))
            .collect();
        let p = [1.25, 2.5, 0.75];
        let c = Corners::at(dims, p);
        assert!((c.sample(&data) - f(p[0], p[1], p[2])).abs() < 1e-5);
        let pairs: Vec<[f32; 2]> = data.iter().map(|&v| [v, -v]).collect();
        let [a, b] = c.sample_n(&pairs);
        assert!((a + b).abs() < 1e-5);
        // Outside the grid the border is repeated.
        assert!((Corners::at(dims, [-5.0, 0.0, 0.0]).sample(&data) - f(0.0, 0.0, 0.0)).abs() < 1e-6);
    }
}
