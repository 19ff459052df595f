//! The demo WaLa diffusion model (`latent-workbench train wala-shapes-diffusion`): WaLa's
//! `Latent_UVIT` with its point-cloud encoder `PointNet_Large` ([`super::uvit`], official key
//! names), small, trained on the latents that the demo autoencoder (`wala-shapes-demo`) gives
//! procedural solids, conditioned on points sampled on their surfaces. It is what lets the Shapes
//! tab's Generate run without a user's WaLa model.
//!
//! **Frame.** Generation fits a condition cloud's box to ±[`super::generate::WALA_EXTENT`] and maps the shape back
//! (`generate::Framing::Fit`, the app's default). So every training solid is placed in that frame:
//! its surface points are fitted exactly as generation fits them, and its SDF is sampled
//! analytically in the fitted frame (`sdf'(q) = s · sdf(c + q / s)`), then encoded by the
//! autoencoder. Points and latent of an example therefore describe the same shape.
//!
//! **Objective.** Upstream's training code is unpublished. This is improved-diffusion's
//! `training_losses` for the model's `START_X` mean type (uniform timesteps, MSE between the
//! network output and the clean latent) with the condition tokens zeroed for a `dp_cond` share of
//! each batch, which is the null condition generation guides against
//! ([`super::uvit::LatentDiffusion::context`]). Each step sees a fresh random subset of
//! [`TRAIN_POINTS`] of the [`STORED_POINTS`] stored per solid; generation gives 25 000 and the
//! encoder's attention pooling averages over however many it gets.

use std::collections::BTreeMap;
use std::ops::Range;

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use super::demo_train::{HELDOUT_SEED_BASE, MIN_FILL};
use super::generate::{Framing, GenerateOptions, frame_points, sample_latent};
use super::latent::{Latent, LatentModel};
use super::roundtrip::zero_surface;
use super::tree::{sdf_from_volume, truncate_sdf};
use super::uvit::{LatentDiffusion, SampleOptions, UvitConfig};
use super::vqvae::{VqVaeConfig, WORKBENCH_HEADS_KEY, WORKBENCH_HIDDEN_KEY};
use super::wavelet::Array3;
use crate::core::jobs::JobContext;
use crate::core::train::{
    AdamWConfig, CheckpointPolicy, LrSchedule, Result, SeededParams, StepOutput, TrainError, TrainLoop, TrainReport,
};
use crate::methods::demo_data::shapes::{grid_affine, random_solid};
use crate::methods::metrics::shape::{mean_nearest_distance, sample_surface};

/// Surface points kept per solid.
pub const STORED_POINTS: usize = 2048;
/// Points per solid in a training step.
pub const TRAIN_POINTS: usize = 256;
/// Points of each cloud the nearest-neighbour baseline compares (Chamfer).
const RETRIEVAL_POINTS: usize = 512;
/// Seed offset of the surface samples, so they do not share a stream with the solid's.
const POINTS_SEED: u64 = 0x9017_5EED;

/// The demo model's `args.json`: the diffusion model's keys (WaLa's names) for a `grid`³ ×
/// `e_dim` latent, and the autoencoder's (upstream's keys plus our two width keys) so the folder
/// is self-contained as WaLa's are.
pub fn demo_args(ae: &VqVaeConfig, resolution: usize) -> serde_json::Value {
    serde_json::json!({
        "network_type": "latent_uvit",
        "grid_size": ae.grid_size,
        "e_dim": ae.e_dim,
        "att_patch_size": 2,
        "att_hidden_size": 128,
        "transformer_num_blocks": 4,
        "transformer_num_heads": 4,
        "dit_block_type": "cross_dit",
        "add_condition_time_ch": true,
        "transformer_add_num_register": 2,
        "unet_model_channels": 64,
        "unet_num_res_blocks": [1],
        "use_pointcloud_conditions": true,
        "pc_encoder_type": "PointNet_Large",
        "pc_dims": 64,
        "pc_output_dim": 64,
        "num_inds": 16,
        "cond_num_mapping_layers": 1,
        "dp_cond": 0.1,
        "diffusion_beta_schedule": "linear",
        "diffusion_step": 1000,
        "diffusion_scale_ratio": 1.0,
        "diffusion_model_mean_type": "START_X",
        "diffusion_model_var_type": "FIXED_SMALL",
        "diffusion_rescale_timestep": 50,
        "max_depth": 3,
        "max_training_level": 3 - ae.coefficient_index(),
        "n_e": ae.n_e,
        "encoder_num_tran": ae.encoder_num_tran,
        "decoder_num_tran": ae.decoder_num_tran,
        "normalize_latent": if ae.l2_normalize { "l2_norm" } else { "none" },
        WORKBENCH_HIDDEN_KEY: ae.hidden_channel,
        WORKBENCH_HEADS_KEY: ae.num_heads,
        "resolution": resolution,
    })
}

/// Everything that fixes a run besides the architecture.
#[derive(Clone, Debug)]
pub struct DiffusionSettings {
    pub steps: usize,
    pub seed: u64,
    pub batch: usize,
    pub lr: f64,
    pub train_shapes: usize,
    pub heldout_shapes: usize,
    /// Sampling of the held-out check.
    pub sample: SampleOptions,
}

impl DiffusionSettings {
    pub fn demo(steps: usize, seed: u64) -> Self {
        Self {
            steps,
            seed,
            batch: 16,
            lr: 5e-4,
            train_shapes: 1024,
            heldout_shapes: 12,
            // What `wala-generate` and the Shapes tab default to (WaLa's run.py).
            sample: SampleOptions::default(),
        }
    }
}

/// One solid as the diffusion model sees it, in the fitted frame.
pub struct Example {
    /// The seed `random_solid` settled on.
    pub seed: u64,
    /// [`STORED_POINTS`] surface points, box fitted to ±[`super::generate::WALA_EXTENT`].
    pub points: Vec<[f32; 3]>,
    /// The autoencoder's pre-quant latent of the fitted solid `(1, E, G, G, G)`.
    pub latent: Latent,
    /// The fitted solid's truncated SDF on the autoencoder's grid (the truth for IoU).
    pub sdf: Array3,
}

/// The procedural solid of `seed` in the fitted frame, its points and its latent.
pub fn example(seed: u64, ae: &LatentModel) -> Result<Example> {
    let invalid = |e: &dyn std::fmt::Display| TrainError::Invalid(format!("solid {seed}: {e}"));
    let n = ae.grid;
    let (seed, shape, volume) = random_solid(seed, n, MIN_FILL).map_err(|e| invalid(&e))?;
    let mesh = zero_surface(&sdf_from_volume(&volume), grid_affine(n))
        .map_err(|e| invalid(&e))?
        .ok_or_else(|| invalid(&"no surface"))?;
    let points = sample_surface(&mesh, STORED_POINTS, seed ^ POINTS_SEED);
    let (points, centre, scale) = frame_points(points, Framing::Fit).map_err(|e| invalid(&e))?;
    let (c, s) = (centre.map(f64::from), f64::from(scale));
    let step = 2.0 / n as f64;
    let mut sdf = Array3::from_fn([n; 3], |x, y, z| {
        let p = [x, y, z].map(|i| i as f64 * step - 1.0);
        (s * shape.sdf([0, 1, 2].map(|k| c[k] + p[k] / s))) as f32
    });
    truncate_sdf(sdf.data_mut(), ae.truncation);
    let latent = ae.encode(&sdf).map_err(|e| invalid(&e))?;
    Ok(Example {
        seed,
        points,
        latent,
        sdf,
    })
}

/// The examples of `seeds`, in parallel, reporting through `ctx`.
pub fn examples(seeds: Range<u64>, ae: &LatentModel, ctx: &JobContext, what: &str) -> Result<Vec<Example>> {
    ctx.set(0.0, format!("making {} {what} solids", seeds.end - seeds.start));
    seeds
        .into_par_iter()
        .map(|s| {
            ctx.check().map_err(|_| TrainError::Cancelled)?;
            example(s, ae)
        })
        .collect()
}

/// A trained demo diffusion model and what it was trained on.
pub struct TrainedDiffusion {
    pub params: SeededParams,
    pub model: LatentDiffusion,
    pub args: serde_json::Value,
    pub train_set: Vec<Example>,
    pub report: TrainReport,
}

/// Trains from the seed (or resumes) on the latents of `ae`, reporting through `ctx`.
pub fn train(
    settings: &DiffusionSettings,
    ae: &LatentModel,
    ctx: &JobContext,
    checkpoint: Option<CheckpointPolicy>,
    resume: Option<&std::path::Path>,
) -> Result<TrainedDiffusion> {
    if settings.steps == 0 || settings.batch == 0 || settings.train_shapes == 0 {
        return Err(TrainError::Invalid("steps, batch and shapes must be at least 1".into()));
    }
    let device = Device::Cpu;
    let args = demo_args(ae.vqvae.config(), ae.grid);
    let cfg = UvitConfig::from_args_json(&args).map_err(|e| TrainError::Invalid(e.to_string()))?;
    let train_set = examples(0..settings.train_shapes as u64, ae, ctx, "training")?;
    let latents = Tensor::cat(&train_set.iter().map(|e| e.latent.grid.clone()).collect::<Vec<_>>(), 0)?;
    let schedule = super::uvit::schedule(&cfg, cfg.diffusion_step).map_err(|e| TrainError::Invalid(e.to_string()))?;
    let (sqrt_ac, sqrt_1mac) = schedule.noising_coefficients();
    let drop = cfg.dp_cond.unwrap_or(0.0);

    let params = SeededParams::new(settings.seed);
    let model = LatentDiffusion::load(params.var_builder(DType::F32, &device), &cfg)?;
    let mut meta = BTreeMap::new();
    meta.insert("architecture".to_string(), "wala_latent_uvit_pointcloud".to_string());
    let mut lp = TrainLoop::new(
        params.clone(),
        AdamWConfig::default(),
        LrSchedule::warmup_cosine(settings.lr, settings.steps),
        settings.steps,
        settings.seed,
    )?
    .clip_grad_norm(1.0)
    .metadata(meta)
    .persisted(checkpoint, resume)?;
    let (n, b, t_max) = (train_set.len(), settings.batch, cfg.diffusion_step);
    let shape = latents.dims()[1..].to_vec();
    let report = lp.run(ctx, |_, rng| {
        let rows: Vec<u32> = (0..b).map(|_| (rng.next_u64() % n as u64) as u32).collect();
        let x0 = latents.index_select(&Tensor::from_slice(&rows, b, &device)?, 0)?;
        let mut pts = Vec::with_capacity(b * TRAIN_POINTS * 3);
        for &r in &rows {
            let cloud = &train_set[r as usize].points;
            for _ in 0..TRAIN_POINTS {
                pts.extend_from_slice(&cloud[(rng.next_u64() % cloud.len() as u64) as usize]);
            }
        }
        let points = Tensor::from_vec(pts, (b, TRAIN_POINTS, 3), &device)?;
        let ts: Vec<usize> = (0..b).map(|_| (rng.next_u64() % t_max as u64) as usize).collect();
        let keep: Vec<f32> = (0..b).map(|_| if rng.uniform() < drop { 0.0 } else { 1.0 }).collect();
        let per_row = |v: Vec<f32>, rank: usize| {
            let mut dims = vec![b];
            dims.extend(std::iter::repeat_n(1, rank - 1));
            Tensor::from_vec(v, dims, &device)
        };
        let a = per_row(ts.iter().map(|&t| sqrt_ac[t]).collect(), 5)?;
        let s = per_row(ts.iter().map(|&t| sqrt_1mac[t]).collect(), 5)?;
        let mut dims = vec![b];
        dims.extend(&shape);
        let noise = Tensor::from_vec(rng.normals_f32(dims.iter().product()), dims, &device)?;
        let x_t = (x0.broadcast_mul(&a)? + noise.broadcast_mul(&s)?)?;
        let err = |e: super::uvit::UvitError| candle_core::Error::Msg(e.to_string());
        let tokens = model
            .encode_points(&points)
            .map_err(err)?
            .broadcast_mul(&per_row(keep, 3)?)?;
        let processed = model.process_condition(&tokens).map_err(err)?;
        let t = Tensor::from_vec(ts.iter().map(|&t| t as f32).collect::<Vec<_>>(), b, &device)?;
        let out = model.network_output(&x_t, &t, Some(&processed)).map_err(err)?;
        Ok(StepOutput::from((out - x0)?.sqr()?.mean_all()?))
    })?;
    Ok(TrainedDiffusion {
        params,
        model,
        args,
        train_set,
        report,
    })
}

/// How well held-out solids come back from their surface points alone.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DiffusionEvaluation {
    pub shapes: usize,
    pub sampling_steps: usize,
    pub guidance: f64,
    /// Mean IoU of the generated solid (seed 0, all stored points) against the solid.
    pub generated_iou: f64,
    /// The solid's own latent decoded (what the autoencoder allows: the ceiling).
    pub autoencoder_iou: f64,
    /// Retrieval baseline: the latent of the training solid whose cloud is nearest (Chamfer).
    pub nearest_training_iou: f64,
    /// The mean training latent decoded, whatever the condition.
    pub mean_latent_iou: f64,
    /// Mean IoU between the samples of seeds 0 and 1 (1: the seed changes nothing).
    pub seed_agreement_iou: f64,
}

/// Held-out solids (seeds from [`HELDOUT_SEED_BASE`], as the autoencoder's check) generated
/// from their points, against the autoencoder ceiling and two baselines.
pub fn evaluate(
    model: &LatentDiffusion,
    ae: &LatentModel,
    train_set: &[Example],
    settings: &DiffusionSettings,
    ctx: &JobContext,
) -> Result<DiffusionEvaluation> {
    let device = Device::Cpu;
    let k = settings.heldout_shapes;
    let heldout = examples(HELDOUT_SEED_BASE..HELDOUT_SEED_BASE + k as u64, ae, ctx, "held-out")?;
    let latents = Tensor::cat(&train_set.iter().map(|e| e.latent.grid.clone()).collect::<Vec<_>>(), 0)?;
    let mean = Latent {
        grid: latents.mean_keepdim(0)?,
    };
    let invalid = |e: &dyn std::fmt::Display| TrainError::Invalid(e.to_string());
    let iou = |latent: &Latent, truth: &Array3| -> Result<f64> {
        let decoded = ae.decode(latent).map_err(|e| invalid(&e))?;
        Ok(LatentModel::iou(truth, &decoded.sdf))
    };
    let mut sums = [0.0f64; 5];
    for (i, ex) in heldout.iter().enumerate() {
        ctx.check().map_err(|_| TrainError::Cancelled)?;
        ctx.set(
            i as f32 / k.max(1) as f32,
            format!("generating held-out solid {}/{k}", i + 1),
        );
        let flat: Vec<f32> = ex.points.iter().flatten().copied().collect();
        let points = Tensor::from_vec(flat, (1, ex.points.len(), 3), &device)?;
        let tokens = model.encode_points(&points).map_err(|e| invalid(&e))?;
        let sample = |seed: u64| -> Result<Latent> {
            let options = GenerateOptions {
                sample: settings.sample,
                seed,
            };
            sample_latent(model, Some(&tokens), &options, &device, &mut |_, _| Ok(())).map_err(|e| invalid(&e))
        };
        let (first, second) = (sample(0)?, sample(1)?);
        let nearest = nearest_training(&ex.points, train_set);
        let first_sdf = ae.decode(&first).map_err(|e| invalid(&e))?.sdf;
        sums[0] += LatentModel::iou(&ex.sdf, &first_sdf);
        sums[1] += iou(&ex.latent, &ex.sdf)?;
        sums[2] += iou(&train_set[nearest].latent, &ex.sdf)?;
        sums[3] += iou(&mean, &ex.sdf)?;
        sums[4] += iou(&second, &first_sdf)?;
    }
    let m = |s: f64| s / k.max(1) as f64;
    Ok(DiffusionEvaluation {
        shapes: k,
        sampling_steps: settings.sample.steps,
        guidance: settings.sample.guidance,
        generated_iou: m(sums[0]),
        autoencoder_iou: m(sums[1]),
        nearest_training_iou: m(sums[2]),
        mean_latent_iou: m(sums[3]),
        seed_agreement_iou: m(sums[4]),
    })
}

/// The training solid whose cloud is nearest to `points` in symmetric Chamfer distance (on the
/// first [`RETRIEVAL_POINTS`] of each cloud, which are a random subset).
fn nearest_training(points: &[[f32; 3]], train_set: &[Example]) -> usize {
    let q = &points[..points.len().min(RETRIEVAL_POINTS)];
    let distances: Vec<f64> = train_set
        .par_iter()
        .map(|e| {
            let p = &e.points[..e.points.len().min(RETRIEVAL_POINTS)];
            mean_nearest_distance(q, p) + mean_nearest_distance(p, q)
        })
        .collect();
    (0..distances.len())
        .min_by(|&a, &b| distances[a].total_cmp(&distances[b]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::super::generate::WALA_EXTENT;
    use super::*;

    #[test]
    fn the_args_describe_a_point_cloud_model_and_the_demo_autoencoder() {
        let ae = super::super::demo_train::demo_config();
        let args = demo_args(&ae, 64);
        let cfg = UvitConfig::from_args_json(&args).unwrap();
        assert!(matches!(
            cfg.condition().unwrap(),
            super::super::uvit::Condition::PointCloud { .. }
        ));
        assert_eq!((cfg.grid_size, cfg.e_dim), (ae.grid_size, ae.e_dim));
        assert_eq!(VqVaeConfig::from_args_json(&args).unwrap(), ae);
    }

    /// The regression of the first shipped model, whose condition changed nothing: every affine
    /// LayerNorm started (and, in the q/k norms, stayed) at weight 0, so the point encoder gave the
    /// same tokens for any cloud and attention was uniform. A fresh model must start as torch's.
    #[test]
    fn a_fresh_model_starts_with_live_norms_and_its_condition_matters() {
        let args = demo_args(&super::super::demo_train::demo_config(), 64);
        let cfg = UvitConfig::from_args_json(&args).unwrap();
        let params = SeededParams::new(5);
        let model = LatentDiffusion::load(params.var_builder(DType::F32, &Device::Cpu), &cfg).unwrap();
        let dead: Vec<String> = params
            .tensors()
            .into_iter()
            .filter(|(_, t)| t.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() == 0.0)
            .map(|(k, _)| k)
            .filter(|k| !k.ends_with(".bias") && !k.contains("adaLN_modulation"))
            .collect();
        assert!(
            dead.iter()
                .all(|k| !k.contains("norm") && !k.contains(".ln") && !k.ends_with("_emb") && !k.ends_with(".I")),
            "parameters that start at zero: {dead:?}"
        );
        let cloud = |stretch: f32| {
            let pts: Vec<f32> = (0..64)
                .flat_map(|i| {
                    let a = i as f32 * 0.7;
                    [a.cos() * stretch, a.sin(), (i as f32 / 32.0) - 1.0]
                })
                .collect();
            Tensor::from_vec(pts, (1, 64, 3), &Device::Cpu).unwrap()
        };
        let rms = |t: &Tensor| t.sqr().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap().sqrt();
        let (a, b) = (
            model.encode_points(&cloud(1.0)).unwrap(),
            model.encode_points(&cloud(0.3)).unwrap(),
        );
        assert!(
            rms(&(&a - &b).unwrap()) > 1e-3 * rms(&a),
            "the tokens ignore the points"
        );
        let x = Tensor::ones(
            (1, cfg.e_dim, cfg.grid_size, cfg.grid_size, cfg.grid_size),
            DType::F32,
            &Device::Cpu,
        )
        .unwrap();
        let t = Tensor::new(&[500f32], &Device::Cpu).unwrap();
        let out = |tokens: &Tensor| {
            let c = model.process_condition(tokens).unwrap();
            model.network_output(&x, &t, Some(&c)).unwrap()
        };
        let (oa, ob) = (out(&a), out(&b));
        assert!(
            rms(&(&oa - &ob).unwrap()) > 1e-4 * rms(&oa),
            "the output ignores the condition"
        );
    }

    #[test]
    fn the_fitted_frame_holds_the_points_on_the_solids_surface() {
        // A random autoencoder is enough to check the data path: the frame and the SDF.
        let ae_cfg = super::super::demo_train::demo_config();
        let params = SeededParams::new(3);
        let vq = super::super::vqvae::VqVae::load(params.var_builder(DType::F32, &Device::Cpu), &ae_cfg).unwrap();
        let dir = std::env::temp_dir().join(format!("lw-wala-diffusion-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ae.safetensors");
        let tensors: std::collections::HashMap<String, Tensor> = params
            .tensors()
            .into_iter()
            .map(|(k, t)| (format!("{}{k}", super::super::vqvae::CHECKPOINT_PREFIX), t))
            .collect();
        candle_core::safetensors::save(&tensors, &path).unwrap();
        drop(vq);
        let ae = LatentModel::load(&path, "random".into(), String::new(), ae_cfg, 64, 0.1).unwrap();
        let ex = example(7, &ae).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        let max = ex.points.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!((max - WALA_EXTENT).abs() < 1e-4, "{max}");
        // Every point lies on the fitted solid's surface: its SDF there is ~0 (trilinear on the
        // grid, so within about a voxel).
        let n = ex.sdf.shape()[0];
        let voxel = 2.0 / n as f32;
        let mut worst = 0.0f32;
        for p in ex.points.iter().step_by(37) {
            let i = p.map(|v| (((v + 1.0) / voxel).round() as usize).min(n - 1));
            worst = worst.max(ex.sdf.get(i[0], i[1], i[2]).abs());
        }
        assert!(worst < 1.5 * voxel, "worst |sdf| at a point {worst} (voxel {voxel})");
        assert_eq!(ex.latent.grid.dims(), &[1, 4, 6, 6, 6]);
    }
}
