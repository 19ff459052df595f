//! WaLa's voxel condition: the `Encoder_Down_2` network (`src/latent_model/voxels_network.py`)
//! that turns a 16³ occupancy grid into `voxel_dim³` condition tokens, and upstream's voxel JSON
//! (`dataset_utils.get_voxel_data_json`: `resolution`, `occupancy` index triples, `color`).
//!
//! Upstream fixes the widths: a 3³ conv to 64 channels, `ResBlock_V` to 128 (its skip a 3³ conv),
//! two more at 128, `AvgPool3d(3, 2, 1)` (16 → 8), three more, then GroupNorm-SiLU-conv to
//! `voxel_context_dim`; `extract_input_features` permutes `(B, C, X, Y, Z)` to
//! `(B, X·Y·Z, C)`, x slowest.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::core::ops::Conv3d;
use crate::methods::wala::vqvae::blocks::{OutConv, ResBlock, avg_pool_3s2p1, conv3};

/// `Encoder_Down_2`'s fixed widths.
const FIRST_WIDTH: usize = 64;
const HIDDEN: usize = 128;

/// `Encoder_Down_2(channel_in=1, channel_out=voxel_context_dim)`; keys `in_conv`, `res_1`…`res_6`,
/// `out_conv.{0,2}` (under the checkpoint's `encoder.`).
#[derive(Clone, Debug)]
pub struct VoxelEncoder {
    in_conv: Conv3d,
    before: Vec<ResBlock>,
    after: Vec<ResBlock>,
    out_conv: OutConv,
}

impl VoxelEncoder {
    pub fn load(vb: VarBuilder, context_dim: usize) -> Result<Self> {
        let res = |i: usize, cin: usize| ResBlock::load_widening(vb.pp(format!("res_{i}")), cin, HIDDEN);
        Ok(Self {
            in_conv: conv3(vb.pp("in_conv"), 1, FIRST_WIDTH)?,
            before: vec![res(1, FIRST_WIDTH)?, res(2, HIDDEN)?, res(3, HIDDEN)?],
            after: vec![res(4, HIDDEN)?, res(5, HIDDEN)?, res(6, HIDDEN)?],
            out_conv: OutConv::load(vb.pp("out_conv"), HIDDEN, context_dim)?,
        })
    }

    /// Condition tokens `(B, X·Y·Z, C)` of occupancy grids `(B, 1, R, R, R)` (`X = ⌈R/2⌉`).
    pub fn tokens(&self, grids: &Tensor) -> Result<Tensor> {
        let features = self.forward(grids)?;
        let (b, c, x, y, z) = features.dims5()?;
        features.permute((0, 2, 3, 4, 1))?.reshape((b, x * y * z, c))
    }
}

impl Module for VoxelEncoder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.in_conv.forward(x)?;
        for block in &self.before {
            x = block.forward(&x)?;
        }
        x = avg_pool_3s2p1(&x)?;
        for block in &self.after {
            x = block.forward(&x)?;
        }
        self.out_conv.forward(&x)
    }
}

/// An occupancy grid, `[x][y][z]` (z fastest), as upstream's voxel JSON gives it.
#[derive(Clone, Debug, PartialEq)]
pub struct VoxelGrid {
    pub resolution: usize,
    pub occupancy: Vec<f32>,
}

impl VoxelGrid {
    /// Upstream's `make_a_grid` on a voxel JSON: cells at the `occupancy` triples set to 1;
    /// indices equal to `resolution` fall in the plane upstream allocates and then drops (so they
    /// are ignored); anything else out of range, or a malformed file, is an error that says what.
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let r = v
            .get("resolution")
            .and_then(serde_json::Value::as_u64)
            .filter(|&r| (1..=256).contains(&r))
            .ok_or("needs a `resolution` between 1 and 256")? as usize;
        let cells = v
            .get("occupancy")
            .and_then(serde_json::Value::as_array)
            .ok_or("needs an `occupancy` list of [x, y, z] triples")?;
        let mut occupancy = vec![0f32; r * r * r];
        for (n, cell) in cells.iter().enumerate() {
            let idx: Vec<u64> = cell
                .as_array()
                .filter(|a| a.len() == 3)
                .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
                .filter(|i: &Vec<u64>| i.len() == 3)
                .ok_or_else(|| format!("occupancy[{n}] is not three non-negative integers"))?;
            if idx.iter().any(|&i| i as usize > r) {
                return Err(format!("occupancy[{n}] = {idx:?} lies outside the {r}³ grid"));
            }
            if idx.iter().any(|&i| i as usize == r) {
                continue;
            }
            occupancy[(idx[0] as usize * r + idx[1] as usize) * r + idx[2] as usize] = 1.0;
        }
        Ok(Self {
            resolution: r,
            occupancy,
        })
    }

    /// `(1, 1, R, R, R)`.
    pub fn tensor(&self, device: &candle_core::Device) -> Result<Tensor> {
        let r = self.resolution;
        Tensor::from_slice(&self.occupancy, (1, 1, r, r, r), device)
    }

    /// Occupied cells.
    pub fn count(&self) -> usize {
        self.occupancy.iter().filter(|&&v| v > 0.5).count()
    }

    /// Centre of cell `i` of an `r`-cell axis over `[-1, 1]`.
    pub fn cell_centre(r: usize, i: usize) -> f32 {
        -1.0 + (i as f32 + 0.5) * 2.0 / r as f32
    }

    /// The occupied cells' centres over `[-1, 1]³`, `[x, y, z]`.
    pub fn occupied_centres(&self) -> Vec<[f32; 3]> {
        let r = self.resolution;
        let c = |i: usize| Self::cell_centre(r, i);
        (0..self.occupancy.len())
            .filter(|&i| self.occupancy[i] > 0.5)
            .map(|i| [c(i / (r * r)), c((i / r) % r), c(i % r)])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_grids_follow_make_a_grid_and_name_their_problems() {
        let g = VoxelGrid::from_json(r#"{"resolution": 4, "occupancy": [[1, 2, 3], [4, 0, 0]], "color": []}"#).unwrap();
        assert_eq!(g.count(), 1);
        assert_eq!(g.occupancy[(4 + 2) * 4 + 3], 1.0);
        for (bad, says) in [
            ("{", "not JSON"),
            (r#"{"occupancy": []}"#, "resolution"),
            (r#"{"resolution": 4}"#, "occupancy"),
            (r#"{"resolution": 4, "occupancy": [[1, 2]]}"#, "occupancy[0]"),
            (r#"{"resolution": 4, "occupancy": [[1, 2, 5]]}"#, "outside"),
        ] {
            let e = VoxelGrid::from_json(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
