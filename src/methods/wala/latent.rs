//! WaLa's learned latent as a user meets it: a shape (an SDF volume) through the wavelet tree and
//! a VQ-VAE to its latent grid, latents blended, and any latent decoded back to an SDF the way WaLa
//! decodes (nearest codes, decoder, inverse wavelet transform). The GUI and the CLI both drive this.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use super::roundtrip::{solid_iou, wala_layout};
use super::tree::{TreeLayout, WaveletTree, decode_tree, encode_sdf, truncate_sdf};
use super::vqvae::{VqVae, VqVaeConfig, VqVaeError};
use super::wavelet::Array3;
use crate::core::Volume;
use crate::core::manifest::Entry;

#[derive(Debug, thiserror::Error)]
pub enum LatentError {
    #[error("model {model}: {problem}")]
    Model { model: String, problem: String },
    #[error(transparent)]
    VqVae(#[from] VqVaeError),
    #[error("{0}")]
    Tree(String),
    #[error("WaLa latent: {0}")]
    Candle(#[from] candle_core::Error),
}

/// The data side of a WaLa-family model's manifest (`[preprocessing]`).
#[derive(Clone, Debug, Deserialize)]
struct Preprocessing {
    grid: usize,
    truncation: f32,
}

/// A loaded WaLa-family autoencoder with the grid and truncation its trees were made with.
pub struct LatentModel {
    pub name: String,
    pub sha256: String,
    pub vqvae: VqVae,
    pub grid: usize,
    pub truncation: f32,
    layout: TreeLayout,
}

/// One shape in the latent space.
#[derive(Clone)]
pub struct Latent {
    /// Pre-quant latent grid `(1, e_dim, G, G, G)` (what WaLa's diffusion works on).
    pub grid: Tensor,
}

impl Latent {
    /// `(e_dim, G, G, G)` and the values, channel-major, `[c][x][y][z]`.
    pub fn values(&self) -> Result<([usize; 4], Vec<f32>), LatentError> {
        let (_, c, a, b, d) = self.grid.dims5()?;
        Ok(([c, a, b, d], self.grid.flatten_all()?.to_vec1::<f32>()?))
    }

    /// `(1 − t)·a + t·b` of the pre-quant grids.
    pub fn lerp(a: &Latent, b: &Latent, t: f32) -> Result<Latent, LatentError> {
        let grid = ((&a.grid * (1.0 - t as f64))? + (&b.grid * t as f64)?)?;
        Ok(Latent { grid })
    }
}

/// A latent decoded: the SDF on the model's grid and the codes it snapped to.
pub struct Decoded {
    pub sdf: Array3,
    /// Codebook index of every latent cell, row-major over `(x, y, z)`.
    pub codes: Vec<u32>,
}

impl LatentModel {
    /// Loads a `family = "wala"` model folder (manifest config in [`VqVaeConfig`]'s names, weights
    /// with the official `autoencoder.` keys), checking the weights' sha256 first.
    pub fn from_entry(entry: &Entry) -> Result<Self, LatentError> {
        let name = entry.manifest.name.clone();
        let bad = |problem: String| LatentError::Model {
            model: name.clone(),
            problem,
        };
        if entry.manifest.family != "wala" {
            return Err(bad(format!("family {:?} is not wala", entry.manifest.family)));
        }
        entry.verify().map_err(|e| bad(e.to_string()))?;
        let cfg: VqVaeConfig = toml::Value::Table(entry.manifest.config.clone())
            .try_into()
            .map_err(|e| bad(format!("[config]: {e}")))?;
        let prep: Preprocessing = toml::Value::Table(entry.manifest.preprocessing.clone())
            .try_into()
            .map_err(|e| bad(format!("[preprocessing]: {e}")))?;
        Self::load(
            &entry.weights_path(),
            name.clone(),
            entry.manifest.sha256.clone(),
            cfg,
            prep.grid,
            prep.truncation,
        )
    }

    /// Loads weights in the official layout for SDFs on a `grid`³ grid truncated to `±truncation`.
    pub fn load(
        weights: &Path,
        name: String,
        sha256: String,
        cfg: VqVaeConfig,
        grid: usize,
        truncation: f32,
    ) -> Result<Self, LatentError> {
        let layout = wala_layout([grid; 3]).map_err(|e| LatentError::Tree(e.to_string()))?;
        let side = cfg.input_side();
        if layout.tree_shape() != [cfg.in_channels, side, side, side] {
            return Err(LatentError::Model {
                model: name,
                problem: format!(
                    "its {grid}³ wavelet tree is {:?} but the autoencoder takes ({}, {side}, {side}, {side})",
                    layout.tree_shape(),
                    cfg.in_channels
                ),
            });
        }
        let (vqvae, _) = VqVae::from_checkpoint(weights, &cfg, &Device::Cpu)?;
        Ok(Self {
            name,
            sha256,
            vqvae,
            grid,
            truncation,
            layout,
        })
    }

    /// The volume as this model's input SDF: resampled to its grid (trilinear, over the volume's
    /// own voxel extent) and truncated.
    pub fn input_sdf(&self, volume: &Volume) -> Result<Array3, LatentError> {
        let mut sdf = resample_cubic(volume, self.grid);
        truncate_sdf(sdf.data_mut(), self.truncation);
        Ok(sdf)
    }

    /// SDF → wavelet tree → pre-quant latent.
    pub fn encode(&self, sdf: &Array3) -> Result<Latent, LatentError> {
        let tree = encode_sdf(sdf, &self.layout).map_err(|e| LatentError::Tree(e.to_string()))?;
        let [c, a, b, d] = tree.shape();
        let x = Tensor::from_slice(tree.data(), (1, c, a, b, d), &Device::Cpu)?;
        Ok(Latent {
            grid: self.vqvae.encode(&x)?,
        })
    }

    /// Latent → nearest codes → decoder → tree → SDF on the model's grid (WaLa's decode).
    pub fn decode(&self, latent: &Latent) -> Result<Decoded, LatentError> {
        let q = self.vqvae.quantizer.quantize(&latent.grid)?;
        let y = candle_core::Module::forward(&self.vqvae.decoder, &q.latent)?;
        let (_, c, a, b, d) = y.dims5()?;
        let tree = WaveletTree::new([c, a, b, d], y.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
            .map_err(|e| LatentError::Tree(e.to_string()))?;
        let sdf = decode_tree(&tree, &self.layout).map_err(|e| LatentError::Tree(e.to_string()))?;
        Ok(Decoded {
            sdf,
            codes: q.indices.to_vec1::<u32>()?,
        })
    }

    /// IoU of the solids of `decoded` against `input` (both on the model's grid).
    pub fn iou(input: &Array3, decoded: &Array3) -> f64 {
        solid_iou(input.data(), decoded.data())
    }

    /// The voxel-to-world transform of the model's grid over `volume`'s extent (so decoded shapes
    /// sit where the input was).
    pub fn world_from_grid(&self, volume: &Volume) -> crate::core::Affine {
        let [nx, ny, nz] = volume.dims();
        let a = volume.world_from_voxel();
        let s = [nx, ny, nz].map(|n| n as f64 / self.grid.max(1) as f64);
        let mut out = *a;
        for r in 0..3 {
            for (c, sc) in s.iter().enumerate() {
                out[r][c] = a[r][c] * sc;
            }
        }
        out
    }
}

/// The volume's first frame resampled to an `n`³ grid in `[x, y, z]` order: voxel `i` of the new
/// grid at `i·N/n` of the old (the convention of grids over `[-1, 1)` with voxel `i` at
/// `2i/N − 1`, so a 128³ demo SDF gives exactly every other voxel at 64³), trilinear, clamped at
/// the far edge.
pub fn resample_cubic(volume: &Volume, n: usize) -> Array3 {
    let dims = volume.dims();
    let frame = volume.frame(0);
    if dims == [n; 3] {
        return super::tree::sdf_from_volume(volume);
    }
    let scale = dims.map(|d| d as f64 / n.max(1) as f64);
    let at = |x: usize, y: usize, z: usize| frame[volume.index(x, y, z)];
    Array3::from_fn([n; 3], |i, j, k| {
        let p = [i, j, k];
        let mut lo = [0usize; 3];
        let mut w = [0f32; 3];
        for a in 0..3 {
            let s = p[a] as f64 * scale[a];
            lo[a] = (s.floor() as usize).min(dims[a].saturating_sub(1));
            w[a] = (s - lo[a] as f64) as f32;
        }
        let hi = [0, 1, 2].map(|a| (lo[a] + 1).min(dims[a] - 1));
        let mut v = 0.0;
        for corner in 0..8 {
            let pick = |a: usize| corner >> a & 1 == 1;
            let c = [0, 1, 2].map(|a| if pick(a) { hi[a] } else { lo[a] });
            let wt: f32 = (0..3).map(|a| if pick(a) { w[a] } else { 1.0 - w[a] }).product();
            if wt != 0.0 {
                v += wt * at(c[0], c[1], c[2]);
            }
        }
        v
    })
}

/// A shared handle for the GUI's jobs.
pub type SharedModel = Arc<LatentModel>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::demo_data::shapes::{grid_affine, random_solid};

    #[test]
    fn resampling_a_doubled_grid_takes_every_other_voxel_up_to_interpolation() {
        let (_, _, v) = random_solid(3, 32, 0.01).unwrap();
        let r = resample_cubic(&v, 16);
        // 32 → 16: new voxel i sits exactly on old voxel 2i, and at the same world point.
        for (i, j, k) in [(0, 0, 0), (15, 15, 15), (5, 9, 12)] {
            assert_eq!(r.get(i, j, k), v.data()[v.index(2 * i, 2 * j, 2 * k)]);
        }
        let (a16, a32) = (grid_affine(16), grid_affine(32));
        assert_eq!(a16[0][0] * 5.0 + a16[0][3], a32[0][0] * 10.0 + a32[0][3]);
        let same = resample_cubic(&v, 32);
        assert_eq!(same.get(4, 5, 6), v.data()[v.index(4, 5, 6)]);
    }
}
