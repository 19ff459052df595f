//! Missing-scan synthesis (`shared/research/ldae.md` §7): both scans encoded (y_sem, z0) and inverted
//! (x_T, DDIM with the shift); the semantic codes lerped, the noises slerped over the whole flattened
//! tensor (with a θ ≈ 0 guard upstream lacks); decoded with DDIM and the autoencoder. Baselines (nearest
//! scan, voxel-wise linear blend) and scores (MONAI SSIM with kernel 4 as the paper's evaluation, MSE,
//! PSNR) against the raw truth and against its autoencoder reconstruction (the paper's target).
//!
//! Inversion is the expensive half, so [`NoiseCache`] keeps each scan's (y_sem, z0, x_T) keyed by the
//! scan's content hash, the model id and the step count: another target time reuses both inversions.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::model::{Encoded, LdaeError, LdaeModel, Progress, Result};
use crate::core::diffusion::{Cancelled, lerp, slerp_flat};
use crate::core::volume::Volume;
use crate::methods::metrics::{self, MonaiSsimOptions};

/// A scan encoded and inverted: what synthesis needs of an endpoint.
#[derive(Debug, Clone)]
pub struct Inverted {
    pub encoded: Encoded,
    /// DDIM-inverted noise x_T `(1, C, x, y, z)`.
    pub x_t: Tensor,
    /// DDIM steps used for the inversion.
    pub steps: usize,
}

/// α = (target − start) / (end − start): 0 at the start scan, 1 at the end scan. Targets outside the
/// interval extrapolate (allowed, flagged by the caller).
pub fn alpha_from_months(start: f64, end: f64, target: f64) -> Result<f64> {
    if !(start.is_finite() && end.is_finite() && target.is_finite()) {
        return Err(LdaeError::Input("months must be finite numbers".into()));
    }
    if end == start {
        return Err(LdaeError::Input(format!(
            "start and end are both at month {start}; they must differ"
        )));
    }
    Ok((target - start) / (end - start))
}

/// The interpolated codes: lerp of y_sem, slerp of x_T over the whole flattened tensor (lerp when
/// the two noises are (anti)parallel, θ ≈ 0 or π, where slerp is 0/0).
pub fn interpolate_codes(start: &Inverted, end: &Inverted, alpha: f64) -> Result<(Tensor, Tensor)> {
    if start.x_t.dims() != end.x_t.dims() || start.encoded.y_sem.dims() != end.encoded.y_sem.dims() {
        return Err(LdaeError::Input(format!(
            "endpoints differ in shape: x_T {:?} vs {:?}, y_sem {:?} vs {:?}",
            start.x_t.dims(),
            end.x_t.dims(),
            start.encoded.y_sem.dims(),
            end.encoded.y_sem.dims()
        )));
    }
    let y = lerp(&start.encoded.y_sem, &end.encoded.y_sem, alpha)?;
    let x = slerp_flat(&start.x_t, &end.x_t, alpha)?;
    Ok((y, x))
}

/// Encodes (if needed) and inverts a preprocessed scan.
pub fn invert_scan(model: &LdaeModel, scan: &Volume, steps: usize, progress: Progress) -> Result<Inverted> {
    let encoded = model.encode(scan)?;
    let x_t = model.invert(&encoded, steps, progress)?;
    Ok(Inverted { encoded, x_t, steps })
}

/// The synthetic scan at `alpha` between two inverted endpoints, decoded with `steps` DDIM steps; on
/// the model grid (diagonal affine; the caller may give it the inputs' geometry).
pub fn synthesise(
    model: &LdaeModel,
    start: &Inverted,
    end: &Inverted,
    alpha: f64,
    steps: usize,
    progress: Progress,
) -> Result<Volume> {
    if !alpha.is_finite() {
        return Err(LdaeError::Input(format!("alpha must be finite, got {alpha}")));
    }
    let (y, x) = interpolate_codes(start, end, alpha)?;
    model.decode(&x, &y, steps, progress)
}

fn same_grid(a: &Volume, b: &Volume) -> Result<()> {
    if a.dims() != b.dims() || a.frames() != 1 || b.frames() != 1 {
        return Err(LdaeError::Input(format!(
            "scans must share one 3D grid, got {:?} and {:?}",
            a.shape(),
            b.shape()
        )));
    }
    Ok(())
}

/// Baseline: the scan nearer in time (the start on a tie).
pub fn nearest_scan(start: &Volume, end: &Volume, alpha: f64) -> Result<Volume> {
    same_grid(start, end)?;
    Ok(if alpha <= 0.5 { start.clone() } else { end.clone() })
}

/// Baseline: (1 − α)·start + α·end voxel by voxel (geometry of the start).
pub fn linear_blend(start: &Volume, end: &Volume, alpha: f64) -> Result<Volume> {
    same_grid(start, end)?;
    let mut out = start.clone();
    for (o, &e) in out.data_mut().iter_mut().zip(end.data()) {
        *o = ((1.0 - alpha) * f64::from(*o) + alpha * f64::from(e)) as f32;
    }
    Ok(out)
}

/// SSIM (MONAI, kernel 4, σ 1.5, data range 1 — LDAE's interpolation evaluation), MSE and PSNR (data
/// range 1) of a prediction against a reference on the same grid.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Scores {
    pub ssim: f64,
    pub mse: f64,
    /// Infinite when MSE is 0 (JSON writers should print `null`).
    pub psnr: f64,
}

/// [`Scores`] of `pred` against `reference`.
pub fn score(pred: &Volume, reference: &Volume) -> Result<Scores> {
    same_grid(pred, reference)?;
    let ssim = metrics::monai_ssim_volumes(pred, reference, &MonaiSsimOptions::default())
        .map_err(|e| LdaeError::Input(format!("SSIM: {e}")))?;
    let mse = metrics::mse(pred.data(), reference.data()).map_err(|e| LdaeError::Input(format!("MSE: {e}")))?;
    let psnr = if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (1.0 / mse).log10()
    };
    Ok(Scores { ssim, mse, psnr })
}

/// Scores of one method against the raw truth and against the truth's autoencoder reconstruction.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct MethodScores {
    pub vs_truth: Scores,
    pub vs_ae_reconstruction: Scores,
}

/// The three methods scored.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Evaluation {
    pub ldae: MethodScores,
    pub nearest: MethodScores,
    pub linear_blend: MethodScores,
}

/// Scores the synthesis and both baselines against `truth` and `truth_ae` (its autoencoder
/// reconstruction, [`LdaeModel::reconstruct_ae`]). All volumes on the model grid.
pub fn evaluate(
    synthesis: &Volume,
    start: &Volume,
    end: &Volume,
    alpha: f64,
    truth: &Volume,
    truth_ae: &Volume,
) -> Result<Evaluation> {
    let both = |v: &Volume| -> Result<MethodScores> {
        Ok(MethodScores {
            vs_truth: score(v, truth)?,
            vs_ae_reconstruction: score(v, truth_ae)?,
        })
    };
    Ok(Evaluation {
        ldae: both(synthesis)?,
        nearest: both(&nearest_scan(start, end, alpha)?)?,
        linear_blend: both(&linear_blend(start, end, alpha)?)?,
    })
}

/// sha256 (hex) of a preprocessed volume: grid, affine and voxels. Two files with the same content give
/// the same key wherever they live.
pub fn volume_key(v: &Volume) -> String {
    let mut h = Sha256::new();
    for d in v.shape() {
        h.update((d as u64).to_le_bytes());
    }
    for row in v.world_from_voxel() {
        for x in row {
            h.update(x.to_le_bytes());
        }
    }
    for x in v.data() {
        h.update(x.to_le_bytes());
    }
    format!("{:x}", h.finalize())
}

/// What a cached inversion is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NoiseKey {
    /// Content hash of the scan ([`volume_key`] of the preprocessed scan, or a file's sha256).
    pub scan: String,
    /// [`LdaeModel::id`].
    pub model: String,
    pub steps: usize,
}

impl NoiseKey {
    pub fn new(scan: impl Into<String>, model: &LdaeModel, steps: usize) -> Self {
        Self {
            scan: scan.into(),
            model: model.id().to_string(),
            steps,
        }
    }

    /// A file-name-safe digest of the whole key (for an on-disk copy).
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.scan.as_bytes());
        h.update([0]);
        h.update(self.model.as_bytes());
        h.update([0]);
        h.update((self.steps as u64).to_le_bytes());
        format!("{:x}", h.finalize())
    }
}

/// Inversions kept in memory (and, through [`NoiseCache::to_bytes`]/[`NoiseCache::entry_from_bytes`], on
/// disk by the caller).
#[derive(Default)]
pub struct NoiseCache {
    entries: HashMap<NoiseKey, Inverted>,
    hits: usize,
    misses: usize,
}

impl NoiseCache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// (hits, misses) of [`NoiseCache::get_or_invert`].
    pub fn stats(&self) -> (usize, usize) {
        (self.hits, self.misses)
    }

    pub fn get(&self, key: &NoiseKey) -> Option<&Inverted> {
        self.entries.get(key)
    }

    pub fn insert(&mut self, key: NoiseKey, value: Inverted) {
        self.entries.insert(key, value);
    }

    /// The cached inversion of `scan` under `key`, or a fresh one (stored).
    pub fn get_or_invert(
        &mut self,
        model: &LdaeModel,
        key: NoiseKey,
        scan: &Volume,
        progress: Progress,
    ) -> Result<Inverted> {
        if let Some(hit) = self.entries.get(&key) {
            self.hits += 1;
            progress(1, 1)?;
            return Ok(hit.clone());
        }
        self.misses += 1;
        let inv = invert_scan(model, scan, key.steps, progress)?;
        self.entries.insert(key, inv.clone());
        Ok(inv)
    }

    /// One entry as safetensors bytes (`y_sem`, `z0`, `x_t`, steps in the metadata).
    pub fn to_bytes(entry: &Inverted) -> Result<Vec<u8>> {
        let f32s = |t: &Tensor| -> Result<(Vec<usize>, Vec<u8>)> {
            let t = t.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
            let v = t.flatten_all()?.to_vec1::<f32>()?;
            Ok((t.dims().to_vec(), v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        };
        let parts = [
            ("y_sem", f32s(&entry.encoded.y_sem)?),
            ("z0", f32s(&entry.encoded.z0)?),
            ("x_t", f32s(&entry.x_t)?),
        ];
        let views: Vec<(&str, safetensors::tensor::TensorView)> = parts
            .iter()
            .map(|(name, (shape, bytes))| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .map(|v| (*name, v))
                    .map_err(|e| LdaeError::Input(format!("noise cache entry: {e}")))
            })
            .collect::<Result<_>>()?;
        let meta = HashMap::from([("steps".to_string(), entry.steps.to_string())]);
        safetensors::serialize(views, Some(meta)).map_err(|e| LdaeError::Input(format!("noise cache entry: {e}")))
    }

    /// An entry from [`NoiseCache::to_bytes`], on `device`.
    pub fn entry_from_bytes(bytes: &[u8], device: &Device) -> Result<Inverted> {
        let bad = |m: String| LdaeError::Input(format!("noise cache entry: {m}"));
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
        let steps = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("steps"))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no steps".into()))?;
        let all = candle_core::safetensors::load_buffer(bytes, device)?;
        let get = |k: &str| all.get(k).cloned().ok_or_else(|| bad(format!("no tensor {k}")));
        Ok(Inverted {
            encoded: Encoded {
                y_sem: get("y_sem")?,
                z0: get("z0")?,
            },
            x_t: get("x_t")?,
            steps,
        })
    }
}

/// A progress callback that forwards `(done, total)` into a sub-range `[from, from + span)` of an overall
/// fraction, for callers that chain inversions and decoding under one bar.
pub fn sub_progress<'a>(
    outer: &'a mut dyn FnMut(f64) -> std::result::Result<(), Cancelled>,
    from: f64,
    span: f64,
) -> impl FnMut(usize, usize) -> std::result::Result<(), Cancelled> + 'a {
    move |done, total| {
        let f = if total == 0 { 1.0 } else { done as f64 / total as f64 };
        outer(from + span * f)
    }
}
