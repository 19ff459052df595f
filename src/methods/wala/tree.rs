//! WaLa's wavelet tree: the kept subbands of a 3-level DWT of a truncated SDF packed into one
//! dense `channels × C³` tensor (64 × 46³ for a 256³ grid with bior6.8), and back.
//!
//! Layout (from WaLa's `extract_full_indices` / `batch_extract_highs_from_values`, see
//! `shared/research/wala.md` §2), with `kept` detail levels (WaLa: 2 of 3; channels = 8^kept):
//!
//! - channel 0: the coarsest approximation `C0` (46³);
//! - then one block per kept detail level, finest kept level first, coarsest last. Level `e`
//!   (`e = 0` the coarsest, `R = 2^e`) has `7·R³` channels: its grid (76³ for `e = 1`) is
//!   zero-padded by `pad = (R·C − M)/2` on each side (8 for 76 → 92 = 2·46), so that coarse cell
//!   `(X, Y, Z)` owns the `R³` fine cells `(R·X + x − pad, R·Y + y − pad, R·Z + z − pad)`. The
//!   channel within the block is `((x·7 + (b−1))·R + y)·R + z` — for `R = 2`:
//!   `28·x + 4·(b−1) + 2·y + z` (x outermost, then subband, then y, z: a side effect of numpy's
//!   `meshgrid(..., indexing='xy')` in WaLa's index builder);
//! - `b = 1..=7` is pywt's detail key order ([`band_key`](super::wavelet::band_key)): 1 `daa`,
//!   2 `ada`, 3 `dda`, 4 `aad`, 5 `dad`, 6 `add`, 7 `ddd`.
//!
//! For WaLa (`kept = 2`): channels 1..=56 hold the 76³ level, 57..=63 the 46³ details, and the
//! finest level (136³) is dropped: [`decode_tree`] reconstructs it as zeros.
//!
//! Axes: the tree and the SDF are indexed like WaLa's numpy arrays, `[x, y, z]` in C order.
//! [`sdf_from_volume`] / [`volume_from_sdf`] convert from and to the x-fastest [`Volume`].

use super::wavelet::{Array3, DetailLevel, Wavelet, WaveletCoeffs, WaveletError, wavedecn, waverecn};
use crate::core::{Affine, Volume, VolumeError};
use rayon::prelude::*;

/// TSDF truncation in normalised units (the shape spans about ±0.9 of the [-1, 1] cube), the
/// value WaLa's lineage (Neural Wavelet-domain Diffusion) clips at: ≈ 12.8 voxels at 256³.
/// WaLa's inference code does not truncate (its training code is not released), but its default
/// `low_avg = 2.20` matches the DC gain of 3 levels × 3 axes of bior6.8 (√2⁹ ≈ 22.6) times 0.1,
/// so 0.1 is the best-supported choice.
pub const WALA_TRUNCATION: f32 = 0.1;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TreeError {
    #[error("the tree keeps {kept} detail levels but the transform has only {levels}")]
    TooManyKept { kept: usize, levels: usize },
    #[error(
        "detail level of shape {level:?} cannot be packed under a {coarse:?} coarse grid at {ratio}× (needs an even, non-negative padding)"
    )]
    Padding {
        level: [usize; 3],
        coarse: [usize; 3],
        ratio: usize,
    },
    #[error("tree tensor has shape {found:?}, the layout needs {expected:?}")]
    TreeShape { expected: [usize; 4], found: Vec<usize> },
    #[error("coefficients do not match the layout: {0}")]
    Coeffs(String),
    #[error(transparent)]
    Wavelet(#[from] WaveletError),
    #[error(transparent)]
    Volume(#[from] VolumeError),
}

/// The geometry of a tree: the input grid, the transform's level shapes and how many detail
/// levels are kept.
#[derive(Clone, Debug, PartialEq)]
pub struct TreeLayout {
    pub wavelet: Wavelet,
    /// The SDF grid (256³ for WaLa).
    pub input: [usize; 3],
    /// Shapes of each level's coefficients, finest first (WaLa's `shape_list[1..]`: 136, 76, 46).
    pub level_shapes: Vec<[usize; 3]>,
    /// Detail levels kept in the tree, counted from the coarsest (WaLa's `max_training_level`).
    pub kept: usize,
}

impl TreeLayout {
    pub fn new(wavelet: Wavelet, input: [usize; 3], levels: usize, kept: usize) -> Result<Self, TreeError> {
        if kept > levels {
            return Err(TreeError::TooManyKept { kept, levels });
        }
        if input.contains(&0) {
            return Err(WaveletError::Empty(input).into());
        }
        let mut level_shapes = Vec::with_capacity(levels);
        let mut s = input;
        for _ in 0..levels {
            s = s.map(|n| wavelet.coeff_len(n));
            level_shapes.push(s);
        }
        let layout = Self {
            wavelet,
            input,
            level_shapes,
            kept,
        };
        for e in 0..kept {
            layout.padding(e)?;
        }
        Ok(layout)
    }

    /// WaLa's configuration: 256³, bior6.8, 3 levels, 2 kept → 64 × 46³.
    pub fn wala() -> Self {
        Self {
            wavelet: Wavelet::bior6_8(),
            input: [256; 3],
            level_shapes: vec![[136; 3], [76; 3], [46; 3]],
            kept: 2,
        }
    }

    pub fn levels(&self) -> usize {
        self.level_shapes.len()
    }

    /// The coarse grid `C` (46³), or the input when there are no levels.
    pub fn coarse(&self) -> [usize; 3] {
        self.level_shapes.last().copied().unwrap_or(self.input)
    }

    /// `8^kept`: 1, 8, 64 or 512.
    pub fn channels(&self) -> usize {
        1 << (3 * self.kept)
    }

    /// Shape of the packed tensor: `[channels, C0, C1, C2]`.
    pub fn tree_shape(&self) -> [usize; 4] {
        let c = self.coarse();
        [self.channels(), c[0], c[1], c[2]]
    }

    /// The channels of each level in the packed tree: the low-pass channel first, then each kept
    /// detail level from the coarsest (7 channels) to the finest kept (7·8^e).
    pub fn level_channels(&self) -> Vec<std::ops::Range<usize>> {
        let details = (0..self.kept).map(|e| {
            let start = self.block_start(e);
            start..start + (7 << (3 * e))
        });
        std::iter::once(0..1).chain(details).collect()
    }

    /// Shape of detail level `e` (0 = coarsest).
    fn detail_shape(&self, e: usize) -> [usize; 3] {
        self.level_shapes[self.levels() - 1 - e]
    }

    /// Per-axis zero padding of detail level `e` inside the `2^e·C` grid.
    fn padding(&self, e: usize) -> Result<[usize; 3], TreeError> {
        let (level, coarse, ratio) = (self.detail_shape(e), self.coarse(), 1usize << e);
        let mut pad = [0; 3];
        for a in 0..3 {
            let room = coarse[a] * ratio;
            if room < level[a] || (room - level[a]) % 2 != 0 {
                return Err(TreeError::Padding { level, coarse, ratio });
            }
            pad[a] = (room - level[a]) / 2;
        }
        Ok(pad)
    }

    /// First channel of detail level `e`'s block: finer kept levels come first.
    fn block_start(&self, e: usize) -> usize {
        1 + (e + 1..self.kept).map(|f| 7 << (3 * f)).sum::<usize>()
    }
}

/// A packed tree: `[channels, C0, C1, C2]` in C order.
#[derive(Clone, Debug, PartialEq)]
pub struct WaveletTree {
    shape: [usize; 4],
    data: Vec<f32>,
}

impl WaveletTree {
    pub fn new(shape: [usize; 4], data: Vec<f32>) -> Result<Self, TreeError> {
        if data.len() != shape.iter().product::<usize>() {
            return Err(TreeError::TreeShape {
                expected: shape,
                found: vec![data.len()],
            });
        }
        Ok(Self { shape, data })
    }
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }
    /// One channel's `C³` values.
    pub fn channel(&self, ch: usize) -> &[f32] {
        let n = self.shape[1] * self.shape[2] * self.shape[3];
        &self.data[ch * n..(ch + 1) * n]
    }
}

/// Where tree channel `ch` of the block of detail level `e` (`R = 2^e`) reads from: subband
/// `b − 1` and the offset `(x, y, z)` inside each coarse cell's `R³` block.
fn channel_source(within: usize, ratio: usize) -> (usize, [usize; 3]) {
    let z = within % ratio;
    let y = within / ratio % ratio;
    let band = within / (ratio * ratio) % 7;
    let x = within / (ratio * ratio * 7);
    (band, [x, y, z])
}

/// Packs `wavedecn`'s output (with at least `layout.levels()` levels) into the tree.
pub fn pack(c: &WaveletCoeffs, layout: &TreeLayout) -> Result<WaveletTree, TreeError> {
    let levels = layout.levels();
    let coarse = layout.coarse();
    if c.approx.shape() != coarse || c.details.len() != levels {
        return Err(TreeError::Coeffs(format!(
            "expected {levels} levels over a {coarse:?} approximation, got {} over {:?}",
            c.details.len(),
            c.approx.shape()
        )));
    }
    let cell = coarse.iter().product::<usize>();
    let mut data = vec![0.0f32; layout.channels() * cell];
    data[..cell].copy_from_slice(c.approx.data());
    for e in 0..layout.kept {
        let level = &c.details[e];
        let bands = level
            .bands
            .as_ref()
            .ok_or_else(|| TreeError::Coeffs(format!("detail level {e} (coarsest = 0) is kept but was dropped")))?;
        if level.shape != layout.detail_shape(e) || bands.len() != 7 {
            return Err(TreeError::Coeffs(format!(
                "detail level {e}: expected 7 bands of {:?}, got {} of {:?}",
                layout.detail_shape(e),
                bands.len(),
                level.shape
            )));
        }
        let (ratio, pad, start) = (1usize << e, layout.padding(e)?, layout.block_start(e));
        let block = &mut data[start * cell..(start + (7 << (3 * e))) * cell];
        block.par_chunks_mut(cell).enumerate().for_each(|(within, out)| {
            let (band, off) = channel_source(within, ratio);
            let src = &bands[band];
            let m = src.shape();
            for (i, v) in out.iter_mut().enumerate() {
                let cc = [i / (coarse[1] * coarse[2]), i / coarse[2] % coarse[1], i % coarse[2]];
                let fine = [0, 1, 2].map(|a| (cc[a] * ratio + off[a]).checked_sub(pad[a]).filter(|&f| f < m[a]));
                if let [Some(f0), Some(f1), Some(f2)] = fine {
                    *v = src.get(f0, f1, f2);
                }
            }
        });
    }
    WaveletTree::new(layout.tree_shape(), data)
}

/// The inverse of [`pack`]: kept levels from the tree, the others as dropped (zeros).
pub fn unpack(tree: &WaveletTree, layout: &TreeLayout) -> Result<WaveletCoeffs, TreeError> {
    if tree.shape() != layout.tree_shape() {
        return Err(TreeError::TreeShape {
            expected: layout.tree_shape(),
            found: tree.shape().to_vec(),
        });
    }
    let coarse = layout.coarse();
    let approx = Array3::new(coarse, tree.channel(0).to_vec())?;
    let mut details = Vec::with_capacity(layout.levels());
    for e in 0..layout.levels() {
        let shape = layout.detail_shape(e);
        if e >= layout.kept {
            details.push(DetailLevel { shape, bands: None });
            continue;
        }
        let (ratio, pad, start) = (1usize << e, layout.padding(e)?, layout.block_start(e));
        let bands = (0..7)
            .map(|band| {
                Array3::from_fn(shape, |f0, f1, f2| {
                    let p = [f0 + pad[0], f1 + pad[1], f2 + pad[2]];
                    let (cell, off) = (p.map(|v| v / ratio), p.map(|v| v % ratio));
                    let within = ((off[0] * 7 + band) * ratio + off[1]) * ratio + off[2];
                    tree.channel(start + within)[(cell[0] * coarse[1] + cell[1]) * coarse[2] + cell[2]]
                })
            })
            .collect();
        details.push(DetailLevel {
            shape,
            bands: Some(bands),
        });
    }
    Ok(WaveletCoeffs { approx, details })
}

/// SDF → tree: `wavedecn` with the layout's wavelet (mode zero) and [`pack`]. Truncate first
/// ([`truncate_sdf`]) to follow WaLa.
pub fn encode_sdf(sdf: &Array3, layout: &TreeLayout) -> Result<WaveletTree, TreeError> {
    if sdf.shape() != layout.input {
        return Err(TreeError::Coeffs(format!(
            "SDF grid {:?} is not the layout's {:?}",
            sdf.shape(),
            layout.input
        )));
    }
    pack(&wavedecn(sdf, &layout.wavelet, layout.levels()), layout)
}

/// Tree → SDF: [`unpack`], `waverecn` with the dropped levels as zeros, cropped to the input grid
/// (only odd grid sizes need the crop).
pub fn decode_tree(tree: &WaveletTree, layout: &TreeLayout) -> Result<Array3, TreeError> {
    let full = waverecn(&unpack(tree, layout)?, &layout.wavelet)?;
    Ok(full.cropped(layout.input))
}

/// Clips an SDF to `±truncation` in place (a truncated SDF, TSDF); NaN stays NaN.
pub fn truncate_sdf(values: &mut [f32], truncation: f32) {
    values
        .par_iter_mut()
        .for_each(|v| *v = v.clamp(-truncation, truncation));
}

/// A volume's first frame as an array indexed `[x, y, z]` (C order, z fastest), the order
/// numpy/nibabel (and so WaLa) index a grid in.
pub fn sdf_from_volume(volume: &Volume) -> Array3 {
    let [nx, ny, _] = volume.dims();
    let data = volume.data();
    Array3::from_fn(volume.dims(), |x, y, z| data[x + nx * (y + ny * z)])
}

/// An `[x, y, z]` array as a one-frame volume with the given voxel-to-world transform.
pub fn volume_from_sdf(sdf: &Array3, world_from_voxel: Affine) -> Result<Volume, TreeError> {
    let [nx, ny, nz] = sdf.shape();
    let mut data = vec![0.0f32; nx * ny * nz];
    data.par_chunks_mut(nx * ny).enumerate().for_each(|(z, plane)| {
        for (r, v) in plane.iter_mut().enumerate() {
            *v = sdf.get(r % nx, r / nx, z);
        }
    });
    let spacing = [0, 1, 2].map(|a| {
        let col = [world_from_voxel[0][a], world_from_voxel[1][a], world_from_voxel[2][a]];
        col.iter().map(|c| c * c).sum::<f64>().sqrt() as f32
    });
    Ok(Volume::new([nx, ny, nz], 1, spacing, world_from_voxel, data)?)
}
