//! Trainer of the failure-search demo's generator: the class-conditional latent prior over sprite
//! factor codes (with the renderer, the demo generator).
//!
//! The classifiers are the relative-representation sprite models (`relreps-sprites-a` and `-b`
//! in the ensemble, `relreps-sprites-wide` as the held-out judge), trained by their own trainers.

use super::generator::{PRIOR_DIFFUSION_STEPS, prior_schedule};
use super::prior::{LatentPrior, PriorConfig};
use super::renderer::{self, CODE_DIM};
use crate::core::jobs::JobContext;
use crate::core::train::{
    AdamWConfig, CheckpointPolicy, LrSchedule, Result, SeededParams, TrainError, TrainLoop, TrainReport,
};
use crate::methods::demo_data::sprites::Factors;
use candle_core::{DType, Device, Tensor};
use std::collections::BTreeMap;
use std::path::Path;

/// Classes of the sprite demo (square, ellipse, heart).
pub const CLASSES: usize = 3;

/// The prior's size in the shipped demo.
pub fn demo_prior_config() -> PriorConfig {
    PriorConfig {
        latent_dim: CODE_DIM,
        width: 256,
        blocks: 4,
        classes: CLASSES,
    }
}

/// Sprites whose factor codes the prior is trained on (a fixed set, like a dataset of images).
pub const PRIOR_DATASET: usize = 16_384;
const PRIOR_BATCH: usize = 256;
/// A data seed no other demo stream uses.
const PRIOR_DATA_SEED: u64 = 0x5A6E_0001;

pub struct TrainedPrior {
    pub params: SeededParams,
    pub prior: LatentPrior,
    /// Per-dimension mean and standard deviation of the autoencoder's latents `[1, d]`.
    pub latent_mean: Tensor,
    pub latent_std: Tensor,
    pub report: TrainReport,
}

/// The factor codes of [`PRIOR_DATASET`] sprites and their shape classes.
fn code_dataset() -> Result<(Tensor, Vec<u32>)> {
    let factors: Vec<Factors> = (0..PRIOR_DATASET as u64)
        .map(|i| Factors::sample(PRIOR_DATA_SEED, i))
        .collect();
    let codes: Vec<f32> = factors.iter().flat_map(renderer::encode).collect();
    let classes = factors.iter().map(|f| f.shape.index() as u32).collect();
    Ok((
        Tensor::from_vec(codes, (PRIOR_DATASET, CODE_DIM), &Device::Cpu)?,
        classes,
    ))
}

/// Trains the class-conditional ε-prediction prior on standardised factor codes
/// (Stable Diffusion's scaled-linear schedule of [`PRIOR_DIFFUSION_STEPS`], uniform timesteps, MSE on ε).
pub fn train_prior(
    steps: usize,
    seed: u64,
    ctx: &JobContext,
    checkpoint: Option<CheckpointPolicy>,
    resume: Option<&Path>,
) -> Result<TrainedPrior> {
    if steps == 0 {
        return Err(TrainError::Invalid("steps must be at least 1".into()));
    }
    let device = Device::Cpu;
    let (z, classes) = code_dataset()?;
    let latent_mean = z.mean_keepdim(0)?;
    let latent_std = z
        .broadcast_sub(&latent_mean)?
        .sqr()?
        .mean_keepdim(0)?
        .sqrt()?
        .clamp(1e-4, f64::MAX)?;
    let data = z.broadcast_sub(&latent_mean)?.broadcast_div(&latent_std)?;
    let schedule = prior_schedule(PRIOR_DIFFUSION_STEPS).map_err(|e| TrainError::Invalid(e.to_string()))?;
    let (sqrt_ac, sqrt_1mac) = schedule.noising_coefficients();

    let config = demo_prior_config();
    let params = SeededParams::new(seed);
    let prior = LatentPrior::new(config, params.var_builder(DType::F32, &device))?;
    let lr = LrSchedule::WarmupCosine {
        peak: 1e-3,
        floor: 5e-5,
        warmup: (steps / 20).max(1),
        total: steps,
    };
    let mut meta = BTreeMap::new();
    meta.insert("architecture".to_string(), "latent_prior_mlp".to_string());
    let mut lp = TrainLoop::new(params.clone(), AdamWConfig::default(), lr, steps, seed)?
        .clip_grad_norm(1.0)
        .metadata(meta)
        .persisted(checkpoint, resume)?;
    let d = config.latent_dim;
    let report = lp.run(ctx, |_, rng| {
        let rows: Vec<u32> = (0..PRIOR_BATCH)
            .map(|_| (rng.next_u64() % PRIOR_DATASET as u64) as u32)
            .collect();
        let ts: Vec<usize> = (0..PRIOR_BATCH)
            .map(|_| (rng.next_u64() % PRIOR_DIFFUSION_STEPS as u64) as usize)
            .collect();
        let x0 = data.index_select(&Tensor::from_slice(&rows, PRIOR_BATCH, &device)?, 0)?;
        let ids: Vec<usize> = rows.iter().map(|&r| classes[r as usize] as usize).collect();
        let noise = Tensor::from_vec(rng.normals_f32(PRIOR_BATCH * d), (PRIOR_BATCH, d), &device)?;
        let a = Tensor::from_vec(
            ts.iter().map(|&t| sqrt_ac[t]).collect::<Vec<_>>(),
            (PRIOR_BATCH, 1),
            &device,
        )?;
        let b = Tensor::from_vec(
            ts.iter().map(|&t| sqrt_1mac[t]).collect::<Vec<_>>(),
            (PRIOR_BATCH, 1),
            &device,
        )?;
        let x_t = (x0.broadcast_mul(&a)? + noise.broadcast_mul(&b)?)?;
        let t = Tensor::from_vec(ts.iter().map(|&t| t as f32).collect::<Vec<_>>(), PRIOR_BATCH, &device)?;
        let eps = prior.epsilon(&x_t, &t, &prior.class_embedding(&ids)?)?;
        (eps - noise)?.sqr()?.mean_all()
    })?;
    Ok(TrainedPrior {
        params,
        prior,
        latent_mean,
        latent_std,
        report,
    })
}
