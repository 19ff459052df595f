//! LDAE preprocessing as the reference's MONAI pipeline does it (`shared/research/ldae.md` §2):
//! `Spacing(pixdim = s)` (trilinear, border padding, float64), `ResizeWithPadOrCrop(shape, mode =
//! "minimum")`, `ScaleIntensity(0, 1)` over the whole volume. No `Orientation`: LDAE relies on the
//! registration.
//!
//! **External prerequisite.** LDAE's offline steps — ANTs N4 bias correction, antspynet brain
//! extraction and SyN registration to the MNI152 1 mm template — are *not* done here; scans must
//! already be skull-stripped and registered to MNI space, or the model sees inputs unlike its training
//! data.
//!
//! Exactness notes (MONAI 1.3, unchanged in 1.6):
//! - `Spacing`: the output affine is `zoom_affine` (rotation kept, zoom replaced; Cholesky of RᵀR) and
//!   `compute_shape_offset` gives shape `round(ptp(corners_out) + 1)` (numpy rounds half to even) with the
//!   output origin at the input corner that is smallest in the output's voxel frame. Sampling maps output
//!   voxel o to input voxel `inv(A_in)·A_out·o` (MONAI's normalised-grid round trip with
//!   `align_corners = False` preserves voxel indices) and interpolates trilinearly with coordinates clamped
//!   to the volume (`grid_sample` border padding). Computed in f64 as `Spacing(dtype=float64)`.
//! - `ResizeWithPadOrCrop` crops first (`CenterSpatialCrop`: start = n//2 − size//2) then pads
//!   (`SpatialPad` symmetric: width//2 before, the rest after). Pad mode `minimum` is numpy's: each padded
//!   vector takes the minimum of the original-area vector along that axis, axes in order x, y, z with
//!   earlier axes already padded (`numpy.pad`'s `_view_roi`) — not the global minimum, though for
//!   skull-stripped scans with background both are the background value.
//! - `ScaleIntensity(minv=0, maxv=1)`: (v − min)/(max − min) over the whole volume; a constant volume
//!   becomes zeros (MONAI `rescale_array`).

use thiserror::Error;

use crate::core::volume::{Affine, Volume, VolumeError, compose, invert};

/// The target grid and scaling of LDAE's preprocessing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preprocessing {
    /// Isotropic voxel size (mm).
    pub spacing_mm: f32,
    /// Output grid (x, y, z).
    pub shape: [usize; 3],
    /// Min–max intensities to [0, 1].
    pub minmax: bool,
}

impl Preprocessing {
    /// The published LDAE: 1.5 mm, 128×160×128, min–max.
    pub fn official() -> Self {
        Self {
            spacing_mm: 1.5,
            shape: [128, 160, 128],
            minmax: true,
        }
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum PreprocessError {
    #[error("LDAE preprocessing: expected a 3D volume, got {0} frames")]
    Frames(usize),
    #[error("LDAE preprocessing: the volume has non-finite values")]
    NonFinite,
    #[error("LDAE preprocessing: the volume's affine is singular")]
    SingularAffine,
    #[error("LDAE preprocessing: {0}")]
    Invalid(String),
    #[error(transparent)]
    Volume(#[from] VolumeError),
}

type Result<T> = std::result::Result<T, PreprocessError>;

/// Spacing, pad/crop and min–max, in LDAE's order.
pub fn preprocess(volume: &Volume, p: &Preprocessing) -> Result<Volume> {
    if volume.frames() != 1 {
        return Err(PreprocessError::Frames(volume.frames()));
    }
    if volume.data().iter().any(|v| !v.is_finite()) {
        return Err(PreprocessError::NonFinite);
    }
    let resampled = resample_to_spacing(volume, p.spacing_mm)?;
    let sized = resize_with_pad_or_crop(&resampled, p.shape)?;
    Ok(if p.minmax { min_max(sized) } else { sized })
}

/// Whether `volume` already has the grid's shape and (within 1e-3 mm) its spacing.
pub fn is_on_grid(volume: &Volume, p: &Preprocessing) -> bool {
    volume.frames() == 1
        && volume.dims() == p.shape
        && volume_spacing(volume.world_from_voxel())
            .iter()
            .all(|s| (s - f64::from(p.spacing_mm)).abs() < 1e-3)
}

/// Column norms of the affine's 3×3 part (MONAI `affine_to_spacing`).
pub fn volume_spacing(a: &Affine) -> [f64; 3] {
    std::array::from_fn(|c| (0..3).map(|r| a[r][c] * a[r][c]).sum::<f64>().sqrt())
}

/// MONAI `zoom_affine(affine, [s, s, s], diagonal=False)`: the rotation of `a` (from the Cholesky factor
/// of RᵀR) times the new zoom, no translation.
pub fn zoom_affine(a: &Affine, spacing: [f64; 3]) -> Result<Affine> {
    let r: [[f64; 3]; 3] = std::array::from_fn(|i| std::array::from_fn(|j| a[i][j]));
    // G = RᵀR, then its Cholesky factor L (G = L·Lᵀ); numpy's `cholesky(G).T` is U = Lᵀ.
    let g: [[f64; 3]; 3] = std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| r[k][i] * r[k][j]).sum()));
    let mut l = [[0f64; 3]; 3];
    for i in 0..3 {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = g[i][i] - s;
                if d <= 0.0 || !d.is_finite() {
                    return Err(PreprocessError::SingularAffine);
                }
                l[i][i] = d.sqrt();
            } else {
                l[i][j] = (g[i][j] - s) / l[j][j];
            }
        }
    }
    // U = Lᵀ (upper triangular); rotation = R·U⁻¹, by back substitution per row of R.
    let u: [[f64; 3]; 3] = std::array::from_fn(|i| std::array::from_fn(|j| l[j][i]));
    let mut rot = [[0f64; 3]; 3];
    for row in 0..3 {
        // Solve x·U = r_row for x (x is a row vector): x_j = (r_j − Σ_{k<j} x_k·U_kj) / U_jj.
        for j in 0..3 {
            let s: f64 = (0..j).map(|k| rot[row][k] * u[k][j]).sum();
            rot[row][j] = (r[row][j] - s) / u[j][j];
        }
    }
    let mut out = crate::core::volume::IDENTITY;
    for i in 0..3 {
        for j in 0..3 {
            // diag(U) > 0, so MONAI's sign(diag(zs)) is +1.
            out[i][j] = rot[i][j] * spacing[j].abs();
        }
    }
    Ok(out)
}

/// numpy's `round` (half to even).
fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 {
        2.0 * (x / 2.0).round()
    } else {
        r
    }
}

/// MONAI `compute_shape_offset(dims, in, out, scale_extent=False)`: the output shape and the output
/// origin (world position of output voxel 0).
pub fn compute_shape_offset(dims: [usize; 3], a_in: &Affine, a_out: &Affine) -> Result<([usize; 3], [f64; 3])> {
    let inv_out = invert(a_out).ok_or(PreprocessError::SingularAffine)?;
    let m = compose(&inv_out, a_in);
    let mut corners_in = Vec::with_capacity(8);
    for i in 0..8 {
        corners_in.push([
            if i & 4 != 0 { (dims[0] - 1) as f64 } else { 0.0 },
            if i & 2 != 0 { (dims[1] - 1) as f64 } else { 0.0 },
            if i & 1 != 0 { (dims[2] - 1) as f64 } else { 0.0 },
        ]);
    }
    let apply = |a: &Affine, p: [f64; 3]| -> [f64; 3] {
        std::array::from_fn(|r| a[r][0] * p[0] + a[r][1] * p[1] + a[r][2] * p[2] + a[r][3])
    };
    let out: Vec<[f64; 3]> = corners_in.iter().map(|&c| apply(&m, c)).collect();
    let mut shape = [0usize; 3];
    for ax in 0..3 {
        let (lo, hi) = out.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), c| {
            (lo.min(c[ax]), hi.max(c[ax]))
        });
        let n = round_half_even(hi - lo + 1.0);
        if !(n >= 1.0 && n.is_finite()) {
            return Err(PreprocessError::Invalid(format!("output shape along axis {ax} is {n}")));
        }
        shape[ax] = n as usize;
    }
    // The first corner (meshgrid "ij" order, last axis fastest) whose output coordinates are the smallest
    // on every axis (np.allclose(·, 0, rtol=1e-3) with atol 1e-8).
    let mut offset = None;
    for (i, c) in out.iter().enumerate() {
        let min_rel: [f64; 3] =
            std::array::from_fn(|ax| out.iter().map(|o| o[ax] - c[ax]).fold(f64::INFINITY, f64::min));
        if min_rel.iter().all(|v| v.abs() <= 1e-8) {
            offset = Some(apply(a_in, corners_in[i]));
            break;
        }
    }
    let offset = offset.unwrap_or_else(|| {
        // Centre alignment (oblique grids): A_in[:3,:3]·(dims/2) + t_in − A_out[:3,:3]·(shape/2).
        std::array::from_fn(|r| {
            (0..3).map(|c| a_in[r][c] * dims[c] as f64 / 2.0).sum::<f64>() + a_in[r][3]
                - (0..3).map(|c| a_out[r][c] * shape[c] as f64 / 2.0).sum::<f64>()
        })
    });
    Ok((shape, offset))
}

/// The output grid of MONAI `Spacing(pixdim = spacing_mm)`: (affine with origin, shape).
pub fn spacing_grid(volume: &Volume, spacing_mm: f32) -> Result<(Affine, [usize; 3])> {
    if !(spacing_mm.is_finite() && spacing_mm > 0.0) {
        return Err(PreprocessError::Invalid(format!(
            "spacing must be positive, got {spacing_mm}"
        )));
    }
    let a_in = volume.world_from_voxel();
    let mut a_out = zoom_affine(a_in, [f64::from(spacing_mm); 3])?;
    let (shape, offset) = compute_shape_offset(volume.dims(), a_in, &a_out)?;
    for r in 0..3 {
        a_out[r][3] = offset[r];
    }
    Ok((a_out, shape))
}

/// MONAI `Spacing(pixdim = spacing_mm, mode = "bilinear", padding_mode = "border", align_corners = False,
/// dtype = float64)` on a 3D volume. An input already on that grid comes back unchanged (MONAI's identity
/// shortcut).
pub fn resample_to_spacing(volume: &Volume, spacing_mm: f32) -> Result<Volume> {
    let (a_out, shape) = spacing_grid(volume, spacing_mm)?;
    let a_in = volume.world_from_voxel();
    let inv_in = invert(a_in).ok_or(PreprocessError::SingularAffine)?;
    let xform = compose(&inv_in, &a_out);
    let s = spacing_mm;
    let spacing = [s; 3];
    let identity = shape == volume.dims()
        && (0..3).all(|r| (0..4).all(|c| (xform[r][c] - if r == c { 1.0 } else { 0.0 }).abs() <= 1e-6));
    if identity {
        return Ok(Volume::new(shape, 1, spacing, a_out, volume.frame(0).to_vec())?);
    }
    let [nx, ny, nz] = volume.dims();
    let src = volume.frame(0);
    let at = |x: usize, y: usize, z: usize| f64::from(src[x + nx * (y + ny * z)]);
    let axis_weights = |c: f64, n: usize| -> (usize, usize, f64) {
        let c = c.clamp(0.0, (n - 1) as f64);
        let i0 = c.floor() as usize;
        let i1 = (i0 + 1).min(n - 1);
        (i0, i1, c - i0 as f64)
    };
    let [ox, oy, oz] = shape;
    let mut out = vec![0f32; ox * oy * oz];
    use rayon::prelude::*;
    out.par_chunks_mut(ox * oy).enumerate().for_each(|(k, plane)| {
        for j in 0..oy {
            for i in 0..ox {
                let p = [i as f64, j as f64, k as f64];
                let c: [f64; 3] =
                    std::array::from_fn(|r| xform[r][0] * p[0] + xform[r][1] * p[1] + xform[r][2] * p[2] + xform[r][3]);
                let (x0, x1, fx) = axis_weights(c[0], nx);
                let (y0, y1, fy) = axis_weights(c[1], ny);
                let (z0, z1, fz) = axis_weights(c[2], nz);
                let lerp = |a: f64, b: f64, t: f64| a + (b - a) * t;
                let v00 = lerp(at(x0, y0, z0), at(x1, y0, z0), fx);
                let v10 = lerp(at(x0, y1, z0), at(x1, y1, z0), fx);
                let v01 = lerp(at(x0, y0, z1), at(x1, y0, z1), fx);
                let v11 = lerp(at(x0, y1, z1), at(x1, y1, z1), fx);
                let v = lerp(lerp(v00, v10, fy), lerp(v01, v11, fy), fz);
                plane[i + ox * j] = v as f32;
            }
        }
    });
    Ok(Volume::new(shape, 1, spacing, a_out, out)?)
}

/// How one axis is cropped and padded by `ResizeWithPadOrCrop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AxisPlan {
    /// First input voxel kept (`CenterSpatialCrop`: n//2 − size//2 when cropping, else 0).
    pub crop_start: usize,
    /// Input voxels kept.
    pub kept: usize,
    /// Pad voxels before and after (`SpatialPad` symmetric: width//2 before).
    pub pad_before: usize,
    pub pad_after: usize,
}

/// The crop and pad of one axis of `input` voxels to `target`.
pub fn axis_plan(input: usize, target: usize) -> AxisPlan {
    if input > target {
        AxisPlan {
            crop_start: input / 2 - target / 2,
            kept: target,
            pad_before: 0,
            pad_after: 0,
        }
    } else {
        let width = target - input;
        AxisPlan {
            crop_start: 0,
            kept: input,
            pad_before: width / 2,
            pad_after: width - width / 2,
        }
    }
}

/// MONAI `ResizeWithPadOrCrop(shape, mode="minimum")`: centre crop, then symmetric pad with numpy's
/// `minimum` mode (see the module docs); the affine follows the grid.
pub fn resize_with_pad_or_crop(volume: &Volume, shape: [usize; 3]) -> Result<Volume> {
    if shape.contains(&0) {
        return Err(PreprocessError::Invalid(format!(
            "target shape {shape:?} has a zero axis"
        )));
    }
    if volume.frames() != 1 {
        return Err(PreprocessError::Frames(volume.frames()));
    }
    let dims = volume.dims();
    let plan: [AxisPlan; 3] = std::array::from_fn(|a| axis_plan(dims[a], shape[a]));
    let [nx, ny, _] = dims;
    let [ox, oy, oz] = shape;
    let src = volume.frame(0);
    let idx = |x: usize, y: usize, z: usize| x + ox * (y + oy * z);
    let mut out = vec![0f32; ox * oy * oz];
    // Original (cropped) area.
    let lo: [usize; 3] = std::array::from_fn(|a| plan[a].pad_before);
    let hi: [usize; 3] = std::array::from_fn(|a| plan[a].pad_before + plan[a].kept);
    for z in lo[2]..hi[2] {
        for y in lo[1]..hi[1] {
            for x in lo[0]..hi[0] {
                let sx = x - lo[0] + plan[0].crop_start;
                let sy = y - lo[1] + plan[1].crop_start;
                let sz = z - lo[2] + plan[2].crop_start;
                out[idx(x, y, z)] = src[sx + nx * (sy + ny * sz)];
            }
        }
    }
    // numpy.pad "minimum", axis by axis: axes before the current one over their full (padded) range,
    // axes after it over the original area only.
    for axis in 0..3 {
        if plan[axis].pad_before == 0 && plan[axis].pad_after == 0 {
            continue;
        }
        let range = |a: usize| if a <= axis { 0..shape[a] } else { lo[a]..hi[a] };
        let (u, v) = match axis {
            0 => (1, 2),
            1 => (0, 2),
            _ => (0, 1),
        };
        for q in range(v) {
            for p in range(u) {
                let pos = |t: usize| {
                    let mut c = [0usize; 3];
                    c[axis] = t;
                    c[u] = p;
                    c[v] = q;
                    idx(c[0], c[1], c[2])
                };
                let m = (lo[axis]..hi[axis]).map(|t| out[pos(t)]).fold(f32::INFINITY, f32::min);
                for t in (0..lo[axis]).chain(hi[axis]..shape[axis]) {
                    out[pos(t)] = m;
                }
            }
        }
    }
    // Affine: output voxel o is input voxel o − pad_before + crop_start.
    let a = volume.world_from_voxel();
    let shift: [f64; 3] = std::array::from_fn(|i| plan[i].crop_start as f64 - plan[i].pad_before as f64);
    let mut affine = *a;
    for (r, row) in affine.iter_mut().enumerate().take(3) {
        row[3] = a[r][3] + (0..3).map(|c| a[r][c] * shift[c]).sum::<f64>();
    }
    Ok(Volume::new(shape, 1, volume.spacing_mm(), affine, out)?)
}

/// MONAI `ScaleIntensity(minv=0, maxv=1)`: (v − min)/(max − min); constant → zeros.
pub fn min_max(mut volume: Volume) -> Volume {
    let (lo, hi) = volume
        .data()
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let data = volume.data_mut();
    if hi > lo {
        let (lo, range) = (f64::from(lo), f64::from(hi) - f64::from(lo));
        for v in data.iter_mut() {
            *v = ((f64::from(*v) - lo) / range) as f32;
        }
    } else {
        data.iter_mut().for_each(|v| *v = 0.0);
    }
    volume
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_start_and_pad_split_follow_monai() {
        // CenterSpatialCrop: start = n//2 − size//2.
        assert_eq!(axis_plan(131, 128).crop_start, 65 - 64);
        assert_eq!(axis_plan(10, 7).crop_start, 5 - 3);
        assert_eq!(axis_plan(9, 4).crop_start, 4 - 2);
        // SpatialPad symmetric: floor half before.
        let p = axis_plan(121, 128);
        assert_eq!((p.pad_before, p.pad_after, p.kept), (3, 4, 121));
        assert_eq!(
            axis_plan(128, 128),
            AxisPlan {
                crop_start: 0,
                kept: 128,
                pad_before: 0,
                pad_after: 0
            }
        );
    }

    #[test]
    fn numpy_round_is_half_to_even() {
        assert_eq!(round_half_even(2.5), 2.0);
        assert_eq!(round_half_even(3.5), 4.0);
        assert_eq!(round_half_even(3.4999), 3.0);
        assert_eq!(round_half_even(110.7), 111.0);
    }

    #[test]
    fn spacing_shape_of_a_raw_t1() {
        // LDAE's sample_t1: 188×256×190 at 0.88 mm → (187·0.88/1.5 + 1) = 110.7 → 111, etc.
        let v = Volume::from_spacing([188, 256, 190], [0.88; 3], vec![0.0; 188 * 256 * 190]).unwrap();
        let (a, shape) = spacing_grid(&v, 1.5).unwrap();
        let expect = |n: usize| ((n - 1) as f64 * 0.88f32 as f64 / 1.5 + 1.0).round() as usize;
        assert_eq!(shape, [expect(188), expect(256), expect(190)]);
        assert_eq!(a[0][0], 1.5);
    }

    #[test]
    fn minimum_padding_is_per_vector() {
        // 2×1×1 volume [5, 3] padded to 4×3×1: along x each row takes its own minimum (3), then along y
        // the padded rows take the minimum of each x column (which already holds the x padding).
        let v = Volume::from_spacing([2, 1, 1], [1.0; 3], vec![5.0, 3.0]).unwrap();
        let out = resize_with_pad_or_crop(&v, [4, 3, 1]).unwrap();
        assert_eq!(&out.data()[4..8], &[3.0, 5.0, 3.0, 3.0]);
        assert_eq!(&out.data()[0..4], &[3.0, 5.0, 3.0, 3.0]);
        // Origin moves back by the pad before.
        assert_eq!(out.world_from_voxel()[0][3], -1.0);
        assert_eq!(out.world_from_voxel()[1][3], -1.0);
    }

    #[test]
    fn constant_volume_scales_to_zeros() {
        let v = Volume::from_spacing([2, 2, 2], [1.0; 3], vec![7.0; 8]).unwrap();
        assert!(min_max(v).data().iter().all(|&x| x == 0.0));
    }
}
