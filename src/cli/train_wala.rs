//! `train wala-shapes-demo`: WaLa's VQ-VAE, small, on the wavelet trees of procedural solids
//! (methods::wala::demo_train), written with the official checkpoint's `autoencoder.` key prefix so
//! that it loads through the same path as a WaLa `checkpoint.ckpt`.

use super::train::{Outcome, Request, failed};
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
        toml::Value::Array(
            [cfg.e_dim, cfg.grid_size, cfg.grid_size, cfg.grid_size]
                .map(|v| toml::Value::from(v as i64))
                .to_vec(),
        ),
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
    let summary = serde_json::json!({
        "steps": req.steps,
        "seed": req.seed,
        "resumed_from": trained.report.start_step,
        "train_seconds": trained.report.seconds,
        "final_loss": trained.report.recent_loss(50),
        "heldout": eval,
        "parameters": trained.params.count(),
    });
    Ok(Outcome {
        manifest,
        weights,
        summary,
    })
}
