//! `train wala-shapes-demo`: WaLa's VQ-VAE, small, on the wavelet trees of procedural solids
//! (methods::wala::demo_train), written with the official checkpoint's `autoencoder.` key prefix so
//! that it loads through the same path as a WaLa `checkpoint.ckpt`.

use super::train::{Outcome, Request, failed, run_summary, shape_value};
use crate::core::jobs::{JobContext, JobError};
use crate::core::manifest::Manifest;
use crate::core::train::encode_tensors;
use crate::methods::wala::demo_train::{self, DEMO_GRID, DemoSettings, HELDOUT_SEED_BASE};
use crate::methods::wala::tree::WALA_TRUNCATION;
use crate::methods::wala::vqvae::CHECKPOINT_PREFIX;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// About 1.5 s per step (batch 2, 64 × 22³ trees) on 2 idle cores in a release build.
pub const DEFAULT_STEPS: usize = 1000;
const CHECKPOINT_EVERY: usize = 100;

pub fn wala_shapes_demo(req: &Request, ctx: &JobContext) -> Result<Outcome, JobError> {
    let settings = DemoSettings::demo(req.steps, req.seed);
    let policy = req.checkpoint_policy(CHECKPOINT_EVERY);
    let resume = req.resume_from();
    let trained = demo_train::train(&settings, ctx, Some(policy), resume)?;
    let eval = demo_train::evaluate(&trained.model, settings.heldout_shapes, ctx)?;
    let tensors: Vec<_> = trained
        .params
        .tensors()
        .into_iter()
        .map(|(k, t)| (format!("{CHECKPOINT_PREFIX}{k}"), t))
        .collect();
    let mut meta = BTreeMap::new();
    meta.insert("name".to_string(), req.name.to_string());
    meta.insert("seed".to_string(), req.seed.to_string());
    let weights = encode_tensors(&tensors, &meta).map_err(failed)?;
    let cfg = demo_train::demo_config();
    let description = format!(
        "Demo WaLa-family autoencoder (WaLa's VQ-VAE architecture at hidden width {}, {} codes of {}, latent {}³ × {}, \
         no transformer blocks) trained by `latent-workbench train {}` for {} steps with seed {} on the wavelet trees of \
         {} procedural solids (demo-data shapes) at {DEMO_GRID}³; on {} held-out solids the decoded shapes keep IoU \
         {:.3} ({:.3} decoded unquantised; the analytic tree alone: {:.3}), {} codes used. Procedural shapes only: not WaLa's trained model.",
        cfg.hidden_channel,
        cfg.n_e,
        cfg.e_dim,
        cfg.grid_size,
        cfg.e_dim,
        req.name,
        req.steps,
        req.seed,
        settings.train_shapes,
        eval.shapes,
        eval.iou,
        eval.unquantised_iou,
        eval.tree_iou,
        eval.codes_used,
    );
    let config = toml::Table::try_from(&cfg).map_err(failed)?;
    let mut preprocessing = toml::Table::new();
    preprocessing.insert("grid".into(), (DEMO_GRID as i64).into());
    preprocessing.insert("truncation".into(), (WALA_TRUNCATION as f64).into());
    preprocessing.insert("wavelet".into(), "bior6.8".into());
    preprocessing.insert("max_depth".into(), 3.into());
    preprocessing.insert("max_training_level".into(), 2.into());
    preprocessing.insert(
        "sdf".into(),
        "negative inside, on the grid [-1, 1)³ with voxel i at 2i/N − 1 (WaLa's vertex mapping)".into(),
    );
    let mut latent = toml::Table::new();
    latent.insert(
        "shape".into(),
        shape_value(&[cfg.e_dim, cfg.grid_size, cfg.grid_size, cfg.grid_size]),
    );
    latent.insert(
        "name".into(),
        "pre-quant latent (encoder output); decoding snaps it to the codebook".into(),
    );
    latent.insert("heldout_seed_base".into(), (HELDOUT_SEED_BASE as i64).into());
    let manifest = Manifest {
        name: req.name.to_string(),
        family: "wala".into(),
        description,
        weights: PathBuf::from("model.safetensors"),
        sha256: String::new(),
        licence: "MIT OR Apache-2.0 (trained by this project on its own procedural data; the architecture follows \
                  WaLa, whose code and weights are under the Autodesk Non-Commercial licence)"
            .into(),
        citation: "Sanghi et al., Wavelet Latent Diffusion (WaLa), arXiv:2411.08017, 2024; code: \
                   github.com/AutodeskAILab/WaLa"
            .into(),
        demo: true,
        config,
        preprocessing,
        latent,
    };
    let summary = run_summary(
        req,
        &trained.report,
        50,
        serde_json::json!({
            "heldout": eval,
            "parameters": trained.params.count(),
        }),
    );
    Ok(Outcome {
        manifest,
        weights,
        summary,
        extra_files: Vec::new(),
    })
}

/// Steps of the shipped diffusion model (see `models/README.md` for its time and numbers).
pub const DIFFUSION_STEPS: usize = 3000;
const DIFFUSION_CHECKPOINT_EVERY: usize = 200;
/// The autoencoder whose latents the diffusion model learns (it is copied into the checkpoint).
const DIFFUSION_AUTOENCODER: &str = "wala-shapes-demo";

/// `train wala-shapes-diffusion`: a WaLa model folder as upstream publishes one (`args.json` +
/// `checkpoint.safetensors` holding `network.`, `encoder.` and the autoencoder's `autoencoder.`
/// keys), with a `model.toml` so the registry finds it.
pub fn wala_shapes_diffusion(req: &Request, ctx: &JobContext) -> Result<Outcome, JobError> {
    use crate::methods::wala::demo_diffusion::{self, DiffusionSettings, STORED_POINTS, TRAIN_POINTS};
    use crate::methods::wala::generate::{ARGS_FILE, CHECKPOINT_FILES};
    use crate::methods::wala::latent::LatentModel;
    let entry = crate::core::manifest::find_entry(DIFFUSION_AUTOENCODER, "wala").map_err(failed)?;
    let ae = LatentModel::from_entry(&entry).map_err(failed)?;
    let ae_tensors = candle_core::safetensors::load(entry.weights_path(), &candle_core::Device::Cpu).map_err(failed)?;
    let settings = DiffusionSettings::demo(req.steps, req.seed);
    let policy = req.checkpoint_policy(DIFFUSION_CHECKPOINT_EVERY);
    let trained = demo_diffusion::train(&settings, &ae, ctx, Some(policy), req.resume_from())?;
    let eval = demo_diffusion::evaluate(&trained.model, &ae, &trained.train_set, &settings, ctx)?;
    let mut tensors = trained.params.tensors();
    let mut ae_keys: Vec<_> = ae_tensors.into_iter().collect();
    ae_keys.sort_by(|a, b| a.0.cmp(&b.0));
    tensors.extend(ae_keys);
    let mut meta = BTreeMap::new();
    meta.insert("name".to_string(), req.name.to_string());
    meta.insert("seed".to_string(), req.seed.to_string());
    meta.insert("autoencoder".to_string(), entry.manifest.name.clone());
    meta.insert("autoencoder_sha256".to_string(), entry.manifest.sha256.clone());
    let weights = encode_tensors(&tensors, &meta).map_err(failed)?;
    let args = serde_json::to_vec_pretty(&trained.args).map_err(failed)?;
    let description = format!(
        "Demo WaLa latent diffusion model (WaLa's Latent_UVIT at width 128 with 4 cross-attention blocks, PointNet_Large \
         point-cloud condition, x₀ prediction, classifier-free guidance) trained by `latent-workbench train {}` for {} \
         steps with seed {} on the latents that {} gives {} procedural solids, each conditioned on {} of {} points on \
         its surface. On {} held-out solids, sampled in {} steps with guidance {}: IoU {:.3} against the solid; the \
         solid's own latent decoded (the autoencoder's ceiling) {:.3}, the nearest training solid's latent {:.3}, the \
         mean latent {:.3}. Procedural shapes only: not WaLa's trained model.",
        req.name,
        req.steps,
        req.seed,
        entry.manifest.name,
        settings.train_shapes,
        TRAIN_POINTS,
        STORED_POINTS,
        eval.shapes,
        eval.sampling_steps,
        eval.guidance,
        eval.generated_iou,
        eval.autoencoder_iou,
        eval.nearest_training_iou,
        eval.mean_latent_iou,
    );
    let mut preprocessing = toml::Table::new();
    preprocessing.insert(
        "condition".into(),
        "points on the surface, their box fitted to ±0.9 (the app's default framing)".into(),
    );
    preprocessing.insert("autoencoder".into(), entry.manifest.name.clone().into());
    preprocessing.insert("autoencoder_sha256".into(), entry.manifest.sha256.clone().into());
    let mut latent = toml::Table::new();
    let cfg = ae.vqvae.config();
    latent.insert(
        "shape".into(),
        shape_value(&[cfg.e_dim, cfg.grid_size, cfg.grid_size, cfg.grid_size]),
    );
    latent.insert("name".into(), "pre-quant latent of the autoencoder".into());
    let manifest = Manifest {
        name: req.name.to_string(),
        family: "wala-diffusion".into(),
        description,
        weights: PathBuf::from(CHECKPOINT_FILES[1]),
        sha256: String::new(),
        licence: entry.manifest.licence.clone(),
        citation: entry.manifest.citation.clone(),
        demo: true,
        config: toml::Table::new(),
        preprocessing,
        latent,
    };
    let summary = run_summary(
        req,
        &trained.report,
        100,
        serde_json::json!({
            "heldout": eval,
            "parameters": trained.params.count(),
        }),
    );
    Ok(Outcome {
        manifest,
        weights,
        summary,
        extra_files: vec![(ARGS_FILE.to_string(), args)],
    })
}
