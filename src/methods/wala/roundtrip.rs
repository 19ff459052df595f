//! The wavelet stage of WaLa as a user meets it: SDF → truncated → wavelet tree → SDF, with what
//! it costs (values kept, errors, IoU of the solids), and shapes blended in tree space.
//!
//! This is WaLa's first, analytic stage only; the VQ-VAE that turns the tree into the 12³ × 4
//! latent, and the diffusion model on that latent, are separate (not built yet).

use super::tree::{TreeError, TreeLayout, WaveletTree, decode_tree, encode_sdf, truncate_sdf};
use super::wavelet::{Array3, Wavelet};

/// WaLa's transform (bior6.8, 3 levels, the 2 coarsest detail levels kept) on any grid; at 256³
/// it is [`TreeLayout::wala`].
pub fn wala_layout(grid: [usize; 3]) -> Result<TreeLayout, TreeError> {
    TreeLayout::new(Wavelet::bior6_8(), grid, 3, 2)
}

/// What a round trip kept and lost.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RoundTripReport {
    pub grid: [usize; 3],
    pub tree_shape: [usize; 4],
    /// Input voxels over tree values (WaLa at 256³: 16.8 M / 6.2 M ≈ 2.7).
    pub compression: f64,
    pub truncation: Option<f32>,
    /// Against the (truncated) input SDF.
    pub max_abs_error: f32,
    pub rms_error: f32,
    /// Intersection over union of the solids (SDF < 0) of input and reconstruction.
    pub iou: f64,
}

pub struct RoundTrip {
    pub tree: WaveletTree,
    pub decoded: Array3,
    pub report: RoundTripReport,
}

/// Encodes `sdf` (negative inside), optionally truncated to `±truncation` first as WaLa's
/// lineage does, decodes it again and measures the difference.
pub fn round_trip(sdf: &Array3, truncation: Option<f32>) -> Result<RoundTrip, TreeError> {
    let layout = wala_layout(sdf.shape())?;
    let mut input = sdf.clone();
    if let Some(t) = truncation {
        truncate_sdf(input.data_mut(), t);
    }
    let tree = encode_sdf(&input, &layout)?;
    let decoded = decode_tree(&tree, &layout)?;
    let (max_abs_error, rms_error) = errors(input.data(), decoded.data());
    let report = RoundTripReport {
        grid: sdf.shape(),
        tree_shape: tree.shape(),
        compression: input.data().len() as f64 / tree.data().len() as f64,
        truncation,
        max_abs_error,
        rms_error,
        iou: solid_iou(input.data(), decoded.data()),
    };
    Ok(RoundTrip { tree, decoded, report })
}

/// The solid's surface: marching cubes at 0 of an `[x, y, z]` SDF placed by `world_from_voxel`
/// (negative inside); `None` when there is no surface. How every decoded WaLa shape becomes a mesh.
pub fn zero_surface(
    sdf: &Array3,
    world_from_voxel: crate::core::Affine,
) -> Result<Option<crate::core::Mesh>, TreeError> {
    use crate::methods::isosurface::{Inside, IsoOptions, marching_cubes};
    let volume = super::tree::volume_from_sdf(sdf, world_from_voxel)?;
    let mesh = marching_cubes(
        &volume,
        &IsoOptions {
            level: 0.0,
            inside: Inside::Below,
            frame: 0,
        },
    );
    Ok((!mesh.triangles.is_empty()).then_some(mesh))
}

/// `(1 − t)·a + t·b`, coefficient by coefficient (the transform is linear, so this equals
/// blending the decoded SDFs; it is the tree-space baseline a latent interpolation improves on).
pub fn lerp_trees(a: &WaveletTree, b: &WaveletTree, t: f32) -> Result<WaveletTree, TreeError> {
    if a.shape() != b.shape() {
        return Err(TreeError::TreeShape {
            expected: a.shape(),
            found: b.shape().to_vec(),
        });
    }
    let data = a.data().iter().zip(b.data()).map(|(x, y)| x + t * (y - x)).collect();
    WaveletTree::new(a.shape(), data)
}

/// Decodes a tree made by [`round_trip`] (or [`lerp_trees`] of two of them) on `grid`.
pub fn decode(tree: &WaveletTree, grid: [usize; 3]) -> Result<Array3, TreeError> {
    decode_tree(tree, &wala_layout(grid)?)
}

fn errors(a: &[f32], b: &[f32]) -> (f32, f32) {
    let (max, sum_sq) = a.iter().zip(b).fold((0.0f32, 0.0f64), |(m, s), (x, y)| {
        let d = x - y;
        (m.max(d.abs()), s + (d as f64) * (d as f64))
    });
    (max, (sum_sq / a.len().max(1) as f64).sqrt() as f32)
}

/// IoU of `{a < 0}` and `{b < 0}`; 1 when both are empty.
pub fn solid_iou(a: &[f32], b: &[f32]) -> f64 {
    let (mut inter, mut union) = (0usize, 0usize);
    for (x, y) in a.iter().zip(b) {
        let (ia, ib) = (*x < 0.0, *y < 0.0);
        inter += (ia && ib) as usize;
        union += (ia || ib) as usize;
    }
    if union == 0 { 1.0 } else { inter as f64 / union as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ball(n: usize, r: f32, cx: f32) -> Array3 {
        Array3::from_fn([n; 3], |x, y, z| {
            let p = [x, y, z].map(|i| 2.0 * i as f32 / n as f32 - 1.0);
            ((p[0] - cx).powi(2) + p[1].powi(2) + p[2].powi(2)).sqrt() - r
        })
    }

    #[test]
    fn a_smooth_ball_survives_the_round_trip() {
        let rt = round_trip(&ball(64, 0.5, 0.0), Some(0.1)).unwrap();
        assert_eq!(rt.report.tree_shape[0], 64);
        assert!(rt.report.iou > 0.97, "{:?}", rt.report);
        assert!(rt.report.rms_error < 0.01, "{:?}", rt.report);
        // WaLa's own grid: 256³ into 64 × 46³.
        assert!((wala_layout([256; 3]).unwrap().tree_shape() == [64, 46, 46, 46]));
    }

    #[test]
    fn lerp_of_trees_is_the_lerp_of_the_sdfs() {
        let a = round_trip(&ball(32, 0.4, -0.3), None).unwrap();
        let b = round_trip(&ball(32, 0.4, 0.3), None).unwrap();
        let mid = decode(&lerp_trees(&a.tree, &b.tree, 0.5).unwrap(), [32; 3]).unwrap();
        for ((m, x), y) in mid.data().iter().zip(a.decoded.data()).zip(b.decoded.data()) {
            assert!((m - 0.5 * (x + y)).abs() < 1e-4);
        }
        assert_eq!(solid_iou(&[1.0, 1.0], &[2.0, 3.0]), 1.0);
        assert_eq!(solid_iou(&[-1.0, 1.0], &[-2.0, -3.0]), 0.5);
    }
}
