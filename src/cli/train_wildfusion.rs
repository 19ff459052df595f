//! `train wildfusion-demo`: the toy WildFusion autoencoder (image → 2D KL latent → triplane)
//! trained through the differentiable renderer on analytic objects
//! (methods::wildfusion::demo_train), written under the keys `Autoencoder::load_file` reads.

use super::train::{Outcome, Request, failed, shape_value};
use crate::core::jobs::{JobContext, JobError};
use crate::core::manifest::Manifest;
use crate::core::train::encode_tensors;
use crate::methods::wildfusion::demo_train::{
    self, ANALYTIC_RESOLUTION, DemoSettings, HELDOUT_SEED_BASE, NOVEL_VIEWS, SCALE_RANGE, TINT,
};
use crate::methods::wildfusion::{P0, VIEW_RANGE};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Optimiser steps of the default run.
pub const DEFAULT_STEPS: usize = 3000;
const CHECKPOINT_EVERY: usize = 100;

pub fn wildfusion_demo(req: &Request, ctx: &JobContext) -> Result<Outcome, JobError> {
    let settings = DemoSettings::demo(req.steps, req.seed);
    let policy = req.checkpoint_policy(CHECKPOINT_EVERY);
    let resume = req.resume_from();
    let trained = demo_train::train(&settings, ctx, Some(policy), resume)?;
    let clock = std::time::Instant::now();
    let eval = demo_train::evaluate(&trained.model, &settings, settings.heldout, ctx).map_err(failed)?;
    let eval_seconds = clock.elapsed().as_secs_f64();
    let mut meta = BTreeMap::new();
    meta.insert("name".to_string(), req.name.to_string());
    meta.insert("seed".to_string(), req.seed.to_string());
    let weights = encode_tensors(&trained.tensors(), &meta).map_err(failed)?;
    let cfg = &settings.config;
    let ls = cfg.latent_size();
    let report = &trained.report;
    // No arrows in the text: the app shows it and its font has no glyph for them.
    let description = format!(
        "Toy WildFusion-family 3D-aware autoencoder ({0}×{0} RGB image, FPN encoder, {1}×{2}×{2} KL latent, \
         {3}-block transformer + CNN, triplane 3×{4}×{5}×{5}), trained by `latent-workbench train {6}` with seed {7} \
         for {8} steps (batches of {9}) on {10} scenes of analytic objects only (sphere, box, cylinder, torus; scale \
         {11}–{12}, colour tint ±{13}), NOT on real images: the loss is the MSE of the differentiable volume render \
         ({14}×{14}, {15} samples per ray) of the predicted triplane against the input view (P0 in view space) and one \
         of {16} novel views within ±{17}° yaw / ±{18}° pitch, plus {19} × KL. The triplane MLP is fixed to the \
         analytic pass-through decoder (features = density and RGB logits). Final loss {20:.5}. On {21} held-out \
         scenes, novel-view PSNR {22:.2} dB (input view {23:.2} dB) against {24:.2} dB for an all-background image \
         and {25:.2} dB for the mean training triplane. No GAN, no depth guidance, no super-resolution.",
        cfg.image_size,
        cfg.latent_channels,
        ls,
        cfg.blocks,
        cfg.triplane_channels,
        cfg.triplane_resolution,
        req.name,
        req.seed,
        settings.steps,
        settings.batch,
        trained.scenes,
        SCALE_RANGE.0,
        SCALE_RANGE.1,
        TINT,
        settings.render_size,
        settings.samples_per_ray,
        NOVEL_VIEWS,
        VIEW_RANGE.yaw_deg,
        VIEW_RANGE.pitch_deg,
        settings.kl_weight,
        report.recent_loss(50),
        eval.scenes,
        eval.novel_psnr,
        eval.input_view_psnr,
        eval.background_psnr,
        eval.mean_triplane_psnr,
    );
    let mut preprocessing = toml::Table::new();
    preprocessing.insert(
        "input".into(),
        format!(
            "rgb image {0}×{0}, planar [N, 3, {0}, {0}], values in [0, 1] (the encoder sees 2x − 1); the triplane \
             is in view space: P0 (yaw 0, pitch 0, radius {1}, fov {2}°) is the input view",
            cfg.image_size, P0.radius, P0.fov_deg
        )
        .into(),
    );
    preprocessing.insert(
        "dataset".into(),
        format!(
            "analytic triplanes (methods::wildfusion::analytic, {ANALYTIC_RESOLUTION}² planes) rendered by render_view"
        )
        .into(),
    );
    preprocessing.insert("heldout_seed_base".into(), (HELDOUT_SEED_BASE as i64).into());
    let mut latent = toml::Table::new();
    latent.insert("shape".into(), shape_value(&[cfg.latent_channels, ls, ls]));
    latent.insert("name".into(), "2D KL latent Z (posterior mean)".into());
    let manifest = Manifest {
        name: req.name.to_string(),
        family: "wildfusion".into(),
        description,
        weights: PathBuf::from("model.safetensors"),
        sha256: String::new(),
        licence: "MIT OR Apache-2.0 (trained by this project on its own analytic data; WildFusion publishes no code)"
            .into(),
        citation: "Schwarz, Kim, Gao, Fidler, Geiger, Kreis. WildFusion: Learning 3D-Aware Latent Diffusion Models \
                   in View Space. ICLR 2024 (arXiv 2311.13570)"
            .into(),
        demo: true,
        config: toml::Table::try_from(cfg).map_err(failed)?,
        preprocessing,
        latent,
    };
    let summary = serde_json::json!({
        "steps": req.steps,
        "seed": req.seed,
        "resumed_from": report.start_step,
        "data_seconds": trained.data_seconds,
        "train_seconds": report.seconds,
        "eval_seconds": eval_seconds,
        "final_loss": report.recent_loss(50),
        "scenes": trained.scenes,
        "heldout": eval,
        "parameters": trained.params.count(),
    });
    Ok(Outcome {
        manifest,
        weights,
        summary,
        extra_files: Vec::new(),
    })
}
