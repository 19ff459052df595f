//! `latent-workbench train NAME`: trains a built-in demo model and writes `models/NAME/` (a
//! `model.toml` manifest and `model.safetensors`). The trainers are a table: a method adds its demo
//! models by adding rows to [`TRAINERS`].
//!
//! While training, a checkpoint is kept at `models/NAME/training-checkpoint.safetensors` (every few hundred
//! steps and on Ctrl-C); `--resume` continues from it with bit-identical results, and it is removed
//! once the model is written.

use super::{print_json, progress};
use crate::core::jobs::{JobContext, JobError};
use crate::core::manifest::{MANIFEST_FILE, Manifest};
use crate::core::train::{CheckpointPolicy, encode_tensors};
use crate::methods::relreps::sprite_ae::{self, SpriteAeConfig, TrainSettings};
use anyhow::Context;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// The built-in demo model to train (an unknown name lists the known ones).
    pub name: String,
    /// Folder that receives NAME/model.toml and NAME/model.safetensors.
    #[arg(short, long, default_value = "models")]
    pub output: PathBuf,
    /// Optimiser steps (default: the trainer's own).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Seed for initialisation and data (default: the trainer's own, which the shipped model used).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Continue from NAME/training-checkpoint.safetensors left by an interrupted run.
    #[arg(long)]
    pub resume: bool,
    #[arg(long)]
    pub json: bool,
}

/// What a trainer is asked to do.
pub struct Request {
    pub name: &'static str,
    pub steps: usize,
    pub seed: u64,
    pub checkpoint: PathBuf,
    pub resume: bool,
}

impl Request {
    /// Checkpoints to `checkpoint` every `every` steps, each written atomically.
    pub fn checkpoint_policy(&self, every: usize) -> CheckpointPolicy {
        CheckpointPolicy {
            path: self.checkpoint.clone(),
            every,
            write: write_atomic,
        }
    }

    /// The checkpoint to continue from, when `--resume` asked for it.
    pub fn resume_from(&self) -> Option<&Path> {
        self.resume.then_some(self.checkpoint.as_path())
    }
}

/// A shape in a manifest's `[latent]` table (TOML integers).
pub(super) fn shape_value(dims: &[usize]) -> toml::Value {
    toml::Value::Array(dims.iter().map(|&v| toml::Value::from(v as i64)).collect())
}

/// A trainer's report: the run's common numbers (steps, seed, where it resumed, seconds, the mean
/// loss of the last `recent` steps) and the trainer's own `extra` object merged in.
pub(super) fn run_summary(
    req: &Request,
    report: &crate::core::train::TrainReport,
    recent: usize,
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut summary = serde_json::json!({
        "steps": req.steps,
        "seed": req.seed,
        "resumed_from": report.start_step,
        "train_seconds": report.seconds,
        "final_loss": report.recent_loss(recent),
    });
    if let (Some(all), serde_json::Value::Object(own)) = (summary.as_object_mut(), extra) {
        all.extend(own);
    }
    summary
}

/// A trainer's error as the job's failure.
pub(super) fn failed(e: impl std::fmt::Display) -> JobError {
    JobError::Failed(e.to_string())
}

/// What a trainer hands back: the manifest (sha256 is filled in here), the weights file's
/// bytes, and numbers for the report.
pub struct Outcome {
    pub manifest: Manifest,
    pub weights: Vec<u8>,
    pub summary: serde_json::Value,
    /// Other files of the model folder (name, bytes), e.g. a WaLa model's `args.json`.
    pub extra_files: Vec<(String, Vec<u8>)>,
}

pub struct Trainer {
    pub name: &'static str,
    pub about: &'static str,
    pub default_steps: usize,
    pub default_seed: u64,
    pub train: fn(&Request, &JobContext) -> Result<Outcome, JobError>,
}

/// Every built-in demo model.
pub const TRAINERS: &[Trainer] = &[
    Trainer {
        name: "relreps-sprites-a",
        about: "sprite autoencoder + shape classifier, width 16, latent 32 (relative representations demo)",
        default_steps: RELREPS_STEPS,
        default_seed: 1,
        train: |req, ctx| relreps_sprites(req, ctx, RELREPS_BASE),
    },
    Trainer {
        name: "relreps-sprites-b",
        about: "the same architecture as relreps-sprites-a, another seed",
        default_steps: RELREPS_STEPS,
        default_seed: 2,
        train: |req, ctx| relreps_sprites(req, ctx, RELREPS_BASE),
    },
    Trainer {
        name: "relreps-sprites-wide",
        about: "sprite autoencoder of another width: width 24, latent 48",
        default_steps: RELREPS_STEPS,
        default_seed: 3,
        train: |req, ctx| relreps_sprites(req, ctx, RELREPS_WIDE),
    },
    Trainer {
        name: "ldae-demo",
        about: "small LDAE (autoencoder, ε-UNet, semantic encoder + shift branch) on the synthetic cohort at 3 mm",
        default_steps: super::train_ldae::DEFAULT_STEPS,
        default_seed: 1,
        train: super::train_ldae::ldae_demo,
    },
    Trainer {
        name: "wala-shapes-demo",
        about: "small WaLa VQ-VAE (wavelet tree → 6³ × 4 latent) on procedural solids at 64³",
        default_steps: super::train_wala::DEFAULT_STEPS,
        default_seed: 1,
        train: super::train_wala::wala_shapes_demo,
    },
    Trainer {
        name: "wala-shapes-diffusion",
        about: "small WaLa latent diffusion model (U-ViT + PointNet point-cloud condition) on wala-shapes-demo's latents",
        default_steps: super::train_wala::DIFFUSION_STEPS,
        default_seed: 1,
        train: super::train_wala::wala_shapes_diffusion,
    },
    Trainer {
        name: "m2vs-demo",
        about: "toy Motion2VecSets (shape + deformation KL AEs, two EDM denoisers) on procedural deforming shapes",
        default_steps: super::train_m2vs::DEFAULT_STEPS,
        default_seed: 1,
        train: super::train_m2vs::m2vs_demo,
    },
    Trainer {
        name: "wildfusion-demo",
        about: "toy WildFusion autoencoder (image → KL latent → triplane) trained through the differentiable renderer on analytic objects",
        default_steps: super::train_wildfusion::DEFAULT_STEPS,
        default_seed: 1,
        train: super::train_wildfusion::wildfusion_demo,
    },
    Trainer {
        name: "sage-sprites-generator",
        about: "class-conditional sprite generator for the failure search: a latent diffusion prior over relreps-sprites-wide",
        default_steps: super::train_sage::PRIOR_STEPS,
        default_seed: 4,
        train: super::train_sage::sage_sprites_generator,
    },
];

/// Shape accuracy leaves its ~45 % plateau after ~400–600 steps (see `sprite_ae`'s module doc).
/// A width-16 step costs ~0.5–0.9 CPU-core seconds (measured only on a heavily loaded machine), so
/// 1,000 steps should take ~5–8 min on two idle cores; the width-24 model costs ~1.6× more.
const RELREPS_STEPS: usize = 1000;
const RELREPS_BASE: SpriteAeConfig = SpriteAeConfig {
    width: 16,
    latent_dim: 32,
    classes: 3,
};
const RELREPS_WIDE: SpriteAeConfig = SpriteAeConfig {
    width: 24,
    latent_dim: 48,
    classes: 3,
};
const CHECKPOINT_EVERY: usize = 100;
const HELDOUT_SPRITES: usize = 1000;

pub fn find(name: &str) -> anyhow::Result<&'static Trainer> {
    TRAINERS.iter().find(|t| t.name == name).with_context(|| {
        let known: Vec<&str> = TRAINERS.iter().map(|t| t.name).collect();
        format!("unknown demo model {name:?} (known: {})", known.join(", "))
    })
}

pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::io::atomic::write_bytes(path, bytes).map_err(std::io::Error::other)
}

/// Whether `dir` holds a finished stage of a multi-stage trainer (`stage-<name>.safetensors`, as
/// `train ldae-demo` leaves them): a run stopped between two stages has no checkpoint yet resumes.
fn has_finished_stages(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("stage-") && name.ends_with(".safetensors")
        })
    })
}

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let trainer = find(&args.name)?;
    let dir = args.output.join(trainer.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Not `checkpoint.safetensors`: a WaLa model folder keeps its weights under that name.
    let checkpoint = dir.join("training-checkpoint.safetensors");
    if args.resume && !checkpoint.is_file() && !has_finished_stages(&dir) {
        anyhow::bail!(
            "nothing to resume (no checkpoint and no finished stage): {}",
            checkpoint.display()
        );
    }
    let request = Request {
        name: trainer.name,
        steps: args.steps.unwrap_or(trainer.default_steps),
        seed: args.seed.unwrap_or(trainer.default_seed),
        checkpoint: checkpoint.clone(),
        resume: args.resume,
    };
    if request.steps == 0 {
        anyhow::bail!("--steps must be at least 1");
    }
    let train = trainer.train;
    let outcome = progress::run(trainer.name, move |ctx| train(&request, ctx))?;

    let weights_path = dir.join(&outcome.manifest.weights);
    let mut manifest = outcome.manifest;
    manifest.sha256 = Sha256::digest(&outcome.weights)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    crate::io::atomic::write_bytes(&weights_path, &outcome.weights)?;
    for (name, bytes) in &outcome.extra_files {
        crate::io::atomic::write_bytes(&dir.join(name), bytes)?;
    }
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = toml::to_string_pretty(&manifest).context("cannot serialise the manifest")?;
    crate::io::atomic::write_bytes(&manifest_path, text.as_bytes())?;
    if checkpoint.is_file() {
        std::fs::remove_file(&checkpoint).with_context(|| format!("cannot remove {}", checkpoint.display()))?;
    }
    if args.json {
        let mut v = outcome.summary;
        v["name"] = trainer.name.into();
        v["dir"] = dir.display().to_string().into();
        v["sha256"] = manifest.sha256.clone().into();
        v["weights_bytes"] = outcome.weights.len().into();
        print_json(&v)?;
    } else {
        println!("{} ({}) → {}", trainer.name, trainer.about, dir.display());
        println!("{}", serde_json::to_string_pretty(&outcome.summary)?);
    }
    Ok(())
}

/// The relative-representation sprite models.
fn relreps_sprites(req: &Request, ctx: &JobContext, config: SpriteAeConfig) -> Result<Outcome, JobError> {
    let settings = TrainSettings::new(req.steps, req.seed);
    let policy = req.checkpoint_policy(CHECKPOINT_EVERY);
    let trained = sprite_ae::train(config, settings, ctx, Some(policy), req.resume_from())?;
    ctx.set(1.0, "evaluating on held-out sprites");
    let eval = sprite_ae::evaluate(&trained.model, HELDOUT_SPRITES, &candle_core::Device::Cpu)
        .map_err(|e| JobError::Failed(e.to_string()))?;
    let mut meta = BTreeMap::new();
    meta.insert("name".to_string(), req.name.to_string());
    meta.insert("seed".to_string(), req.seed.to_string());
    let weights = encode_tensors(&trained.params.tensors(), &meta).map_err(|e| JobError::Failed(e.to_string()))?;
    let report = &trained.report;
    let description = format!(
        "Demo sprite autoencoder with a shape classifier (width {}, latent {}), trained by `latent-workbench train {}` \
         for {} steps with seed {} on procedural sprites; held-out shape accuracy {:.1} %, reconstruction MSE {:.5} \
         ({} sprites of seed {:#x}).",
        config.width,
        config.latent_dim,
        req.name,
        req.steps,
        req.seed,
        eval.accuracy * 100.0,
        eval.mse,
        eval.samples,
        sprite_ae::EVAL_DATA_SEED,
    );
    let mut preprocessing = toml::Table::new();
    preprocessing.insert(
        "input".into(),
        "rgb image 64×64, planar [N, 3, 64, 64], values in [0, 1]".into(),
    );
    preprocessing.insert("dataset".into(), "latent-workbench demo-data sprites".into());
    preprocessing.insert(
        "classes".into(),
        toml::Value::Array(sprite_ae::class_names().into_iter().map(toml::Value::from).collect()),
    );
    let mut latent = toml::Table::new();
    latent.insert(
        "shape".into(),
        toml::Value::Array(vec![(config.latent_dim as i64).into()]),
    );
    latent.insert("name".into(), "enc.fc output (absolute latent)".into());
    let manifest = Manifest {
        name: req.name.to_string(),
        family: "relreps".into(),
        description,
        weights: PathBuf::from("model.safetensors"),
        sha256: String::new(),
        licence: "MIT OR Apache-2.0 (trained by this project on its own synthetic data)".into(),
        citation: "Moschella, Maiorca, Fumero, Norelli, Locatello, Rodolà. Relative representations enable \
                   zero-shot latent space communication. ICLR 2023."
            .into(),
        demo: true,
        config: config.to_toml(),
        preprocessing,
        latent,
    };
    let summary = run_summary(
        req,
        report,
        50,
        serde_json::json!({
            "heldout_accuracy": eval.accuracy,
            "heldout_mse": eval.mse,
            "heldout_samples": eval.samples,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_with_a_finished_stage_is_resumable_and_one_without_is_not() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!has_finished_stages(dir.path()));
        std::fs::write(dir.path().join("model.safetensors"), b"x").unwrap();
        std::fs::write(dir.path().join("stage-ae.txt"), b"x").unwrap();
        assert!(!has_finished_stages(dir.path()), "neither is a finished stage");
        std::fs::write(dir.path().join("stage-ae.safetensors"), b"x").unwrap();
        assert!(has_finished_stages(dir.path()));
        assert!(!has_finished_stages(&dir.path().join("missing")));
    }
}
