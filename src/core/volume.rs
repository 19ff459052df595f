//! `Volume`: a 3D (or 4D, as frames) scalar field with its place in the world.

use super::scalar::ScalarKind;
use serde::{Deserialize, Serialize};

/// Row-major 4×4 homogeneous transform (`world_from_voxel[row][col]`).
pub type Affine = [[f64; 4]; 4];

/// The identity transform.
pub const IDENTITY: Affine = [
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VolumeError {
    #[error("volume dims {dims:?} × {frames} frames need {expected} voxels but {found} were given")]
    LengthMismatch {
        dims: [usize; 3],
        frames: usize,
        expected: usize,
        found: usize,
    },
    #[error("volume has a zero-sized dimension: {0:?}")]
    Empty([usize; 3]),
    #[error("world_from_voxel is not invertible")]
    SingularAffine,
}

/// Voxels are stored x fastest, then y, then z, then frame (NIfTI/Fortran order), as `f32`
/// after any intensity scaling the file asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    dims: [usize; 3],
    frames: usize,
    spacing_mm: [f32; 3],
    world_from_voxel: Affine,
    data: Vec<f32>,
    /// What the file stored before conversion to `f32`.
    pub source_kind: ScalarKind,
}

impl Volume {
    /// Builds a volume, checking that `data` has exactly `dims × frames` voxels.
    pub fn new(
        dims: [usize; 3],
        frames: usize,
        spacing_mm: [f32; 3],
        world_from_voxel: Affine,
        data: Vec<f32>,
    ) -> Result<Self, VolumeError> {
        if dims.contains(&0) || frames == 0 {
            return Err(VolumeError::Empty(dims));
        }
        let expected = dims
            .iter()
            .try_fold(frames, |acc, &d| acc.checked_mul(d))
            .unwrap_or(usize::MAX);
        if data.len() != expected {
            return Err(VolumeError::LengthMismatch {
                dims,
                frames,
                expected,
                found: data.len(),
            });
        }
        Ok(Self {
            dims,
            frames,
            spacing_mm,
            world_from_voxel,
            data,
            source_kind: ScalarKind::F32,
        })
    }

    /// A volume with spacing taken from a diagonal affine, handy for tests and generated data.
    pub fn from_spacing(dims: [usize; 3], spacing_mm: [f32; 3], data: Vec<f32>) -> Result<Self, VolumeError> {
        let mut a = IDENTITY;
        for (i, s) in spacing_mm.iter().enumerate() {
            a[i][i] = f64::from(*s);
        }
        Self::new(dims, 1, spacing_mm, a, data)
    }

    pub fn with_source_kind(mut self, kind: ScalarKind) -> Self {
        self.source_kind = kind;
        self
    }

    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }
    pub fn frames(&self) -> usize {
        self.frames
    }
    /// All dimensions as a file would list them: `[x, y, z]` or `[x, y, z, t]`.
    pub fn shape(&self) -> Vec<usize> {
        let mut s = self.dims.to_vec();
        if self.frames > 1 {
            s.push(self.frames);
        }
        s
    }
    pub fn spacing_mm(&self) -> [f32; 3] {
        self.spacing_mm
    }
    pub fn world_from_voxel(&self) -> &Affine {
        &self.world_from_voxel
    }
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }
    pub fn voxels_per_frame(&self) -> usize {
        self.dims[0] * self.dims[1] * self.dims[2]
    }
    /// The voxels of one frame.
    pub fn frame(&self, t: usize) -> &[f32] {
        let n = self.voxels_per_frame();
        &self.data[t * n..(t + 1) * n]
    }
    #[inline]
    pub fn index(&self, x: usize, y: usize, z: usize) -> usize {
        x + self.dims[0] * (y + self.dims[1] * z)
    }
    /// Value at a voxel of frame `t`, or `None` outside the grid.
    pub fn get(&self, x: usize, y: usize, z: usize, t: usize) -> Option<f32> {
        if x < self.dims[0] && y < self.dims[1] && z < self.dims[2] && t < self.frames {
            Some(self.data[t * self.voxels_per_frame() + self.index(x, y, z)])
        } else {
            None
        }
    }

    /// World coordinate (mm) of a (possibly fractional) voxel index.
    pub fn world_from_voxel_point(&self, v: [f64; 3]) -> [f64; 3] {
        apply(&self.world_from_voxel, v)
    }

    /// Voxel index (fractional) of a world point, `None` when the affine is singular.
    pub fn voxel_from_world_point(&self, w: [f64; 3]) -> Option<[f64; 3]> {
        invert(&self.world_from_voxel).map(|inv| apply(&inv, w))
    }

    /// World-space centre of the grid.
    pub fn center_world(&self) -> [f64; 3] {
        let c = [
            (self.dims[0] as f64 - 1.0) / 2.0,
            (self.dims[1] as f64 - 1.0) / 2.0,
            (self.dims[2] as f64 - 1.0) / 2.0,
        ];
        self.world_from_voxel_point(c)
    }
}

/// Applies a homogeneous affine to a point.
pub fn apply(a: &Affine, p: [f64; 3]) -> [f64; 3] {
    let mut out = [0.0; 3];
    for (r, o) in out.iter_mut().enumerate() {
        *o = a[r][0] * p[0] + a[r][1] * p[1] + a[r][2] * p[2] + a[r][3];
    }
    out
}

/// Inverse of an affine whose last row is `[0 0 0 1]`; `None` if the 3×3 part is singular.
pub fn invert(a: &Affine) -> Option<Affine> {
    let m = [
        [a[0][0], a[0][1], a[0][2]],
        [a[1][0], a[1][1], a[1][2]],
        [a[2][0], a[2][1], a[2][2]],
    ];
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    if !det.is_finite() || det.abs() < 1e-12 {
        return None;
    }
    let inv_det = 1.0 / det;
    let mut r = [[0.0; 3]; 3];
    #[expect(
        clippy::needless_range_loop,
        reason = "cofactor indices read clearer than zipped iterators"
    )]
    for i in 0..3 {
        for j in 0..3 {
            let (i1, i2) = ((j + 1) % 3, (j + 2) % 3);
            let (j1, j2) = ((i + 1) % 3, (i + 2) % 3);
            r[i][j] = (m[i1][j1] * m[i2][j2] - m[i1][j2] * m[i2][j1]) * inv_det;
        }
    }
    let t = [a[0][3], a[1][3], a[2][3]];
    let mut out = IDENTITY;
    for i in 0..3 {
        out[i][..3].copy_from_slice(&r[i]);
        out[i][3] = -(r[i][0] * t[0] + r[i][1] * t[1] + r[i][2] * t[2]);
    }
    Some(out)
}

/// `a ∘ b`: the transform that applies `b` first, then `a`.
pub fn compose(a: &Affine, b: &Affine) -> Affine {
    let mut out = [[0.0; 4]; 4];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..4).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_wrong_length() {
        let e = Volume::from_spacing([2, 2, 2], [1.0; 3], vec![0.0; 7]).unwrap_err();
        assert!(matches!(
            e,
            VolumeError::LengthMismatch {
                expected: 8,
                found: 7,
                ..
            }
        ));
    }

    #[test]
    fn affine_inverse_round_trips() {
        let a: Affine = [
            [0.0, -1.5, 0.1, 10.0],
            [2.0, 0.0, 0.0, -4.0],
            [0.0, 0.2, 3.0, 7.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let inv = invert(&a).unwrap();
        let p = [1.0, 2.0, 3.0];
        let q = apply(&inv, apply(&a, p));
        for k in 0..3 {
            assert!((p[k] - q[k]).abs() < 1e-12);
        }
    }
}
