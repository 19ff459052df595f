//! 3D resampling of `(B, C, D, H, W)` tensors to a given size with PyTorch's index arithmetic
//! (`torch.nn.functional.interpolate(x, size=(d, h, w), mode="nearest" | "trilinear")`).
//!
//! Both are built from `index_select` along each axis (and, for trilinear, per-axis weight
//! tensors), so they run on any device and are differentiable (the backward of
//! `index_select` is `index_add`). Index and weight arithmetic is done in f32 like torch's CPU
//! kernels, so the picked source voxels are the same.

use candle_core::{Result, Tensor, bail};

fn check5(x: &Tensor, size: [usize; 3], what: &str) -> Result<()> {
    if x.rank() != 5 {
        bail!("{what}: expected (B, C, D, H, W), got {:?}", x.dims())
    }
    if size.contains(&0) {
        bail!("{what}: output size {size:?} must be positive")
    }
    Ok(())
}

/// torch's `nearest_idx` (UpSample.h) for a size-given interpolation.
fn nearest_index(out: usize, input: usize, output: usize) -> usize {
    if output == input {
        out
    } else if output == 2 * input {
        out >> 1
    } else {
        let scale = input as f32 / output as f32;
        ((out as f32 * scale).floor() as usize).min(input - 1)
    }
}

fn index_tensor(x: &Tensor, ids: Vec<u32>) -> Result<Tensor> {
    let n = ids.len();
    Tensor::from_vec(ids, n, x.device())
}

/// Nearest-neighbour upsampling (or downsampling) to `size = [d, h, w]`, source index
/// `min(floor(dst · in/out), in - 1)` per axis as `F.interpolate(mode="nearest")`.
/// (`scale_factor=2` in torch gives the same voxels as `size = 2·in`.)
pub fn upsample_nearest3d(x: &Tensor, size: [usize; 3]) -> Result<Tensor> {
    check5(x, size, "upsample_nearest3d")?;
    let mut y = x.clone();
    for (i, &out) in size.iter().enumerate() {
        let dim = 2 + i;
        let input = y.dim(dim)?;
        if input == out {
            continue;
        }
        let ids = (0..out).map(|o| nearest_index(o, input, out) as u32).collect();
        y = y.contiguous()?.index_select(&index_tensor(&y, ids)?, dim)?;
    }
    Ok(y)
}

/// Source indices and weights of one axis, as torch's `compute_source_index_and_lambda`.
fn linear_axis(input: usize, output: usize, align_corners: bool) -> (Vec<u32>, Vec<u32>, Vec<f32>, Vec<f32>) {
    let scale: f32 = if align_corners {
        if output > 1 {
            (input - 1) as f32 / (output - 1) as f32
        } else {
            0.0
        }
    } else {
        input as f32 / output as f32
    };
    let mut i0 = Vec::with_capacity(output);
    let mut i1 = Vec::with_capacity(output);
    let mut l0 = Vec::with_capacity(output);
    let mut l1 = Vec::with_capacity(output);
    for o in 0..output {
        let real = if align_corners {
            scale * o as f32
        } else {
            (scale * (o as f32 + 0.5) - 0.5).max(0.0)
        };
        let idx = (real.floor() as usize).min(input - 1);
        let lambda = (real - idx as f32).clamp(0.0, 1.0);
        let next = if idx < input - 1 { idx + 1 } else { idx };
        i0.push(idx as u32);
        i1.push(next as u32);
        l0.push(1.0 - lambda);
        l1.push(lambda);
    }
    (i0, i1, l0, l1)
}

/// Trilinear resampling to `size = [d, h, w]` as `F.interpolate(mode="trilinear",
/// align_corners=...)`: with `align_corners` the corner voxel centres map onto each other
/// (`src = dst·(in-1)/(out-1)`), without it `src = (dst + 0.5)·in/out - 0.5` clamped at 0.
/// Applied separably (W, then H, then D), which equals torch's 8-corner sum up to rounding.
pub fn upsample_trilinear3d(x: &Tensor, size: [usize; 3], align_corners: bool) -> Result<Tensor> {
    check5(x, size, "upsample_trilinear3d")?;
    let mut y = x.clone();
    for i in (0..3).rev() {
        let dim = 2 + i;
        let (input, output) = (y.dim(dim)?, size[i]);
        if input == output {
            continue; // torch copies the axis when the size is unchanged
        }
        let (i0, i1, l0, l1) = linear_axis(input, output, align_corners);
        let mut wshape = [1usize; 5];
        wshape[dim] = output;
        let w0 = Tensor::from_vec(l0, wshape.as_slice(), y.device())?.to_dtype(y.dtype())?;
        let w1 = Tensor::from_vec(l1, wshape.as_slice(), y.device())?.to_dtype(y.dtype())?;
        let yc = y.contiguous()?;
        let a = yc.index_select(&index_tensor(&yc, i0)?, dim)?;
        let b = yc.index_select(&index_tensor(&yc, i1)?, dim)?;
        y = (a.broadcast_mul(&w0)? + b.broadcast_mul(&w1)?)?;
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn nearest_doubles_by_repeating() {
        let x = Tensor::arange(0f32, 8.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 2, 2, 2))
            .unwrap();
        let y = upsample_nearest3d(&x, [4, 4, 4]).unwrap();
        let v = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // (z, y, x) = (3, 2, 1) reads source (1, 1, 0) = 6.
        assert_eq!(v[(3 * 4 + 2) * 4 + 1], 6.0);
        assert_eq!(nearest_index(4, 3, 5), 2); // floor(4 · 0.6)
    }

    #[test]
    fn trilinear_keeps_linear_ramps() {
        // A ramp along W stays a ramp with align_corners.
        let x = Tensor::arange(0f32, 3.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 1, 1, 3))
            .unwrap();
        let y = upsample_trilinear3d(&x, [2, 1, 5], true).unwrap();
        let v = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v, vec![0.0, 0.5, 1.0, 1.5, 2.0, 0.0, 0.5, 1.0, 1.5, 2.0]);
    }
}
