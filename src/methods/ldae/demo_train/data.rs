//! The demo model's data: the synthetic longitudinal cohort generated in memory, split by subject,
//! as tensors in the layout LDAE's MONAI pipeline gives its networks.
//!
//! **Layout.** A [`Volume`] is x-fastest; nibabel + MONAI hand LDAE's networks `(B, 1, X, Y, Z)` with
//! Z fastest, so [`volume_to_tensor`] transposes. The semantic encoder sees the axial permutation
//! `(B, 1, Z, X, Y)` ([`encoder_input`]), as LDAE's data module does (`shared/research/ldae.md` §2).
//! Intensities are min-max scaled to [0, 1] per scan (LDAE's `ScaleIntensity`).

use candle_core::{Device, Result, Tensor};
use std::ops::Range;

use crate::core::jobs::JobContext;
use crate::core::volume::{Affine, Volume};
use crate::methods::demo_data::cohort::{self, Prepared, Subject};

/// Which cohort the demo model is trained on and which subjects it never sees.
#[derive(Clone, Debug, PartialEq)]
pub struct CohortSplit {
    /// Seed of [`cohort::subjects`].
    pub seed: u64,
    /// Subject indices used for training (`sub-000`, … by index).
    pub train: Range<usize>,
    /// Subject indices held out for evaluation (same seed, disjoint from `train`).
    pub heldout: Range<usize>,
    pub months: Vec<u32>,
}

/// The shipped demo model's cohort (`demo-data cohort --seed 0 --size demo`): subjects 0–31 train,
/// 32–43 are held out (the app's demos edit and synthesise held-out subjects).
pub const DEMO_COHORT_SEED: u64 = 0;
pub const DEMO_TRAIN_SUBJECTS: Range<usize> = 0..32;
pub const DEMO_HELDOUT_SUBJECTS: Range<usize> = 32..44;

impl CohortSplit {
    /// The shipped demo model's split: [`DEMO_COHORT_SEED`], [`DEMO_TRAIN_SUBJECTS`],
    /// [`DEMO_HELDOUT_SUBJECTS`], every visit.
    pub fn demo() -> Self {
        Self {
            seed: DEMO_COHORT_SEED,
            train: DEMO_TRAIN_SUBJECTS,
            heldout: DEMO_HELDOUT_SUBJECTS,
            months: cohort::MONTHS.to_vec(),
        }
    }

    pub fn subject_ids(range: &Range<usize>) -> Vec<String> {
        range.clone().map(|i| Subject::new(0, i).id).collect()
    }
}

/// One scan: `(1, 1, X, Y, Z)` in [0, 1].
#[derive(Clone, Debug)]
pub struct Scan {
    pub subject: String,
    pub month: u32,
    pub tensor: Tensor,
    /// Where its voxels lie in the world, when known (the cohort's MNI grid): lets the trainer report
    /// measures in world coordinates such as the ventricle proxy.
    pub geometry: Option<ScanGeometry>,
}

/// A scan grid's voxel size and voxel-to-world affine (those of the [`Volume`] it came from).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScanGeometry {
    pub spacing_mm: [f32; 3],
    pub world_from_voxel: Affine,
}

impl ScanGeometry {
    pub fn of(volume: &Volume) -> Self {
        Self {
            spacing_mm: volume.spacing_mm(),
            world_from_voxel: *volume.world_from_voxel(),
        }
    }

    /// The first item of a `(B, 1, X, Y, Z)` tensor as a volume on this grid.
    pub fn volume(&self, t: &Tensor) -> std::result::Result<Volume, String> {
        let v = crate::methods::ldae::model::tensor_to_volume(t, self.spacing_mm).map_err(|e| e.to_string())?;
        let dims = v.dims();
        Volume::new(dims, 1, self.spacing_mm, self.world_from_voxel, v.into_data()).map_err(|e| e.to_string())
    }
}

/// A [`Volume`] as LDAE's networks take it: `(1, 1, X, Y, Z)`, Z fastest, min-max scaled to [0, 1]
/// (a constant volume becomes zeros).
pub fn volume_to_tensor(volume: &Volume, device: &Device) -> Result<Tensor> {
    let [nx, ny, nz] = volume.dims();
    let data = volume.frame(0);
    let (lo, hi) = data.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    });
    let scale = if hi > lo { 1.0 / (hi - lo) } else { 0.0 };
    let scaled: Vec<f32> = data.iter().map(|&v| (v - lo) * scale).collect();
    // Memory order of the volume is (Z, Y, X) slowest-first; permute to (X, Y, Z).
    Tensor::from_vec(scaled, (1, 1, nz, ny, nx), device)?
        .permute((0, 1, 4, 3, 2))?
        .contiguous()
}

/// The semantic encoder's view of `(B, 1, X, Y, Z)`: axial slices first, `(B, 1, Z, X, Y)`.
pub fn encoder_input(x: &Tensor) -> Result<Tensor> {
    x.permute((0, 1, 4, 2, 3))?.contiguous()
}

/// Generates the split's scans on the prepared grid: (training, held-out), subject then month order.
pub fn cohort_scans(
    prep: &Prepared,
    split: &CohortSplit,
    device: &Device,
    ctx: &JobContext,
) -> std::result::Result<(Vec<Scan>, Vec<Scan>), String> {
    let all = cohort::subjects(split.seed, split.train.end.max(split.heldout.end));
    let pick = |range: &Range<usize>| -> Vec<Subject> { all[range.clone()].to_vec() };
    let collect = |subjects: &[Subject]| -> std::result::Result<Vec<Scan>, String> {
        let scans = std::sync::Mutex::new(Vec::new());
        cohort::generate(prep, subjects, &split.months, ctx, |rec, volume| {
            let tensor = volume_to_tensor(&volume, device).map_err(|e| e.to_string())?;
            scans.lock().map_err(|e| e.to_string())?.push(Scan {
                subject: rec.subject.clone(),
                month: rec.month,
                tensor,
                geometry: Some(ScanGeometry::of(&volume)),
            });
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        let mut scans = scans.into_inner().map_err(|e| e.to_string())?;
        scans.sort_by(|a, b| (&a.subject, a.month).cmp(&(&b.subject, b.month)));
        Ok(scans)
    };
    Ok((collect(&pick(&split.train))?, collect(&pick(&split.heldout))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_layout_is_x_y_z_with_z_fastest() {
        // 2×3×4 volume whose value is its x-fastest index.
        let data: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let v = Volume::from_spacing([2, 3, 4], [1.0; 3], data).unwrap();
        let t = volume_to_tensor(&v, &Device::Cpu).unwrap();
        assert_eq!(t.dims(), [1, 1, 2, 3, 4]);
        let flat = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // (x=1, y=2, z=3) has x-fastest index 1 + 2·2 + 3·6 = 23 → the maximum, 1.0 after min-max; in the
        // (X, Y, Z) C-order tensor it sits at 1·12 + 2·4 + 3 = 23 too (the last element).
        assert_eq!(flat[23], 1.0);
        // (x=1, y=0, z=0): index 1 of 23.
        assert!((flat[12] - 1.0 / 23.0).abs() < 1e-7);
        let e = encoder_input(&t).unwrap();
        assert_eq!(e.dims(), [1, 1, 4, 2, 3]);
    }
}
