//! The demo LDAE trainer (`latent-workbench train ldae-demo`): LDAE's three training stages, with small
//! widths, on the synthetic longitudinal cohort at 3 mm (64×80×64).
//!
//! 1. **Autoencoder** ([`AutoencoderKL`](super::autoencoder::AutoencoderKL), MONAI layout and key
//!    names): L1 + `kl_weight`·KL on random crops, the latent sampled as upstream trains it. LDAE's
//!    perceptual (LPIPS) and patch-GAN terms are left out (no pretrained LPIPS network here, and a GAN
//!    does not converge in this budget). Afterwards the latent is normalised *inside* the network: a
//!    per-channel shift and scale is folded into `quant_conv_mu` / `quant_conv_log_sigma` and undone in
//!    `post_quant_conv` (reconstructions unchanged), chosen so that after LDAE's fixed 0.8730 factor
//!    each latent channel has unit variance over the training scans. DDIM's x̂₀ clamp, [−1, 1] for
//!    upstream's latents, is widened to match (`x0_clip` in model.toml: the 99.9 % quantile of
//!    |latent| at 0.9 of it). An autoencoder stage file from before this rule is normalised again on
//!    `--resume`, so that only stages 2–3 need retraining.
//! 2. **ε-pretraining** of PDAE's UNet on the scaled autoencoder means (deterministic μ, as the
//!    workbench encodes), linear β, T = 1000, MSE on ε.
//! 3. **Representation learning** (PDAE): the semantic encoder and the decoder's shift branch, with the
//!    UNet frozen, minimise `mean(w_t · (ε − (ε̂ + k_t·G))²)`, `k_t = −√α_t(1−ᾱ_{t−1})/√(1−ᾱ_t)`,
//!    `w_t = snr^0.1/(1+snr)` (`shared/research/ldae.md` §6). Then `semantic_mean` / `semantic_std`
//!    (population std) over the training scans' y_sem.
//!
//! Every stage runs through [`TrainLoop`] (AdamW, warm-up + cosine, clipping, per-step seeded
//! randomness, progress and cancel through the job context). A cancelled stage leaves its checkpoint;
//! a finished stage leaves `stage-<name>.safetensors` next to it, so `--resume` skips finished stages
//! and continues the interrupted one from its last checkpoint.

mod data;
mod frozen;
mod manifest;
mod stages;

pub use data::{
    CohortSplit, DEMO_COHORT_SEED, DEMO_HELDOUT_SUBJECTS, DEMO_TRAIN_SUBJECTS, Scan, ScanGeometry, cohort_scans,
    encoder_input, volume_to_tensor,
};
pub use manifest::{Grid, manifest};
pub use stages::{AE_PREFIX, AeEval, DECODER_PREFIX, ENCODER_PREFIX, REFERENCE_BLUR_VOXELS, StageReport};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use super::config::{AutoencoderKlConfig, NumResBlocks};
use super::semantic_encoder::{BackboneArgs, ConvNextShape, SemanticEncoderConfig};
use super::unet_config::UNetConfig;
use crate::core::jobs::JobContext;
use crate::core::train::{Result, TrainError, WriteFn};

/// The three networks' configurations, under upstream's argument names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DemoArchitecture {
    pub aekl: AutoencoderKlConfig,
    pub encoder: SemanticEncoderConfig,
    pub unet: UNetConfig,
    pub timesteps: usize,
    pub betas: String,
}

impl DemoArchitecture {
    /// The shipped demo model: AE channels 8/16/32 with one ResBlock per level (two downsamples,
    /// latent 3×16×20×16 for 64×80×64; the full-resolution level is kept narrow because it dominates
    /// the cost on a CPU), a ConvNeXt of widths 16/32/64/128 with one block per stage (y_sem of 128),
    /// and a UNet of base width 32 (the least its GroupNorm(32) allows) with three levels (32/64/64, one
    /// ResBlock each, no attention but the middle block's, which every LDAE UNet has). A single level
    /// put that attention on all 16·20·16 = 5120 latent voxels: 2–4 s per ε-UNet step (2.1 s in the
    /// original training run, 4 s measured on 2026-11-29), most of it spent on the 5120² attention
    /// matrix. Downsampling the last two axes twice leaves it 16·5·4 = 320 tokens (≈0.8 s per step),
    /// and in 300 steps at lr 2e-3 that UNet's ε error fell below what the single-level one reached
    /// in 600.
    pub fn demo() -> Self {
        Self {
            aekl: AutoencoderKlConfig {
                num_res_blocks: NumResBlocks::Same(1),
                num_channels: vec![8, 16, 32],
                attention_levels: vec![false; 3],
                norm_num_groups: 8,
                ..AutoencoderKlConfig::ldae()
            },
            encoder: tiny_encoder(vec![16, 32, 64, 128], 4, 64),
            unet: UNetConfig {
                base_channel: 32,
                channel_multiplier: vec![1, 2, 2],
                num_residual_blocks_of_a_block: 1,
                attention_resolutions: vec![],
                num_heads: 1,
                dropout: 0.0,
                ..UNetConfig::default()
            },
            timesteps: 1000,
            betas: "linear".into(),
        }
    }

    /// A model small enough for a test: AE 8/8 (one downsample), ConvNeXt 8/16, UNet 32 with one level.
    pub fn tiny() -> Self {
        let mut a = Self::demo();
        a.aekl.num_channels = vec![8, 8];
        a.aekl.attention_levels = vec![false; 2];
        a.aekl.norm_num_groups = 4;
        a.encoder = tiny_encoder(vec![8, 16], 2, 16);
        a.unet.channel_multiplier = vec![1];
        a
    }
}

fn tiny_encoder(dims: Vec<usize>, num_heads: usize, seq_len: usize) -> SemanticEncoderConfig {
    let emb = *dims.last().unwrap_or(&0);
    let depths = vec![1; dims.len()];
    SemanticEncoderConfig {
        backbone_args: BackboneArgs {
            net_class_path: "torchvision.models.convnext_tiny".into(),
            weights: None,
            freeze_perc: 0.0,
            grayscale: true,
            convnext: Some(ConvNextShape { dims, depths }),
        },
        emb_chans: emb,
        num_heads,
        attn_dropout: 0.0,
        seq_len,
    }
}

/// Optimiser steps of each stage.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StageSteps {
    pub ae: usize,
    pub unet: usize,
    pub repr: usize,
}

impl StageSteps {
    pub fn total(&self) -> usize {
        self.ae + self.unet + self.repr
    }
}

/// Everything that fixes a run besides the data.
#[derive(Clone, Debug)]
pub struct DemoSettings {
    pub arch: DemoArchitecture,
    pub steps: StageSteps,
    pub seed: u64,
    /// Random crop `(X, Y, Z)` for the autoencoder stage (multiples of the AE's downsampling factor;
    /// the full volume when larger than it).
    pub ae_crop: [usize; 3],
    pub ae_batch: usize,
    pub unet_batch: usize,
    pub repr_batch: usize,
    pub lr_ae: f64,
    pub lr_unet: f64,
    pub lr_repr: f64,
    /// Weight of the KL term (upstream: 1e-7 on the summed KL).
    pub kl_weight: f64,
    /// Initial value of ConvNeXt's layer scale (torchvision: 1e-6, for long training).
    pub layer_scale_init: f64,
    /// Held-out scans reconstructed by the autoencoder for the report (0: none).
    pub eval_scans: usize,
}

impl DemoSettings {
    pub fn demo(steps: StageSteps, seed: u64) -> Self {
        Self {
            arch: DemoArchitecture::demo(),
            steps,
            seed,
            // The whole 64×80×64 scan, not a crop: GroupNorm's statistics over a crop differ from those
            // over the whole scan, and an autoencoder trained on 32×40×32 crops reconstructed the
            // brain of a full scan 3–4× worse (L1 0.17 against 0.06) than the same region cropped.
            ae_crop: [64, 80, 64],
            ae_batch: 1,
            unet_batch: 1,
            repr_batch: 1,
            lr_ae: 1e-3,
            // 5e-4 left the ε error at t = 400 at 0.038 after 300 steps; 2e-3 reached 0.024.
            lr_unet: 2e-3,
            lr_repr: 3e-4,
            kl_weight: 1e-7,
            layer_scale_init: 0.1,
            eval_scans: 10,
        }
    }
}

/// Where checkpoints go and whether to continue from them.
#[derive(Clone, Debug)]
pub struct Persistence {
    /// The interrupted stage's checkpoint (TrainLoop format, metadata `stage`).
    pub checkpoint: PathBuf,
    /// Folder of the finished stages' `stage-<name>.safetensors`.
    pub dir: PathBuf,
    /// Checkpoint every this many steps.
    pub every: usize,
    pub write: WriteFn,
    pub resume: bool,
}

impl Persistence {
    pub fn stage_file(&self, stage: &str) -> PathBuf {
        self.dir.join(format!("stage-{stage}.safetensors"))
    }

    /// Every stage file a run may leave behind (removed once the model is written).
    pub fn stage_files(&self) -> Vec<PathBuf> {
        stages::STAGES.iter().map(|s| self.stage_file(s)).collect()
    }
}

/// A trained demo model.
pub struct DemoLdae {
    /// Every tensor of model.safetensors, named `autoencoderkl.*`, `encoder.*`, `decoder.*`,
    /// `semantic_mean`, `semantic_std`.
    pub tensors: Vec<(String, Tensor)>,
    pub stages: Vec<StageReport>,
    pub ae_eval: Option<AeEval>,
    /// Shape of one diffusion latent `(C, X', Y', Z')`.
    pub latent_shape: Vec<usize>,
    /// Per-channel shift and scale folded into the autoencoder (see the module docs).
    pub latent_shift: Vec<f32>,
    pub latent_scale: Vec<f32>,
    /// DDIM's x̂₀ clamp bound for these latents ([`LdaeConfig::x0_clip`](super::model::LdaeConfig)).
    pub x0_clip: f32,
}

/// Runs the three stages on `train` (and evaluates the autoencoder on `heldout`); `log` receives a line
/// per finished stage.
pub fn train(
    settings: &DemoSettings,
    train: &[Scan],
    heldout: &[Scan],
    device: &Device,
    ctx: &JobContext,
    persist: Option<&Persistence>,
    log: &dyn Fn(&str),
) -> Result<DemoLdae> {
    if train.is_empty() {
        return Err(TrainError::Invalid("no training scans".into()));
    }
    if settings.steps.ae == 0 || settings.steps.unet == 0 || settings.steps.repr == 0 {
        return Err(TrainError::Invalid("every stage needs at least one step".into()));
    }
    settings
        .arch
        .aekl
        .validate()
        .map_err(|e| TrainError::Invalid(e.to_string()))?;
    settings
        .arch
        .unet
        .validate()
        .map_err(|e| TrainError::Invalid(e.to_string()))?;
    settings
        .arch
        .encoder
        .validate()
        .map_err(|e| TrainError::Invalid(e.to_string()))?;
    stages::run_all(settings, train, heldout, device, ctx, persist, log)
}
