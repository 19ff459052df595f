//! Motion2VecSets (Cao et al., CVPR 2024, arXiv 2401.06614; code `VVeiCao/Motion2VecSets`): 4D
//! latent vector-set diffusion. A sequence is one shape latent set for frame 1 plus one
//! deformation latent set per later frame; two KL autoencoders decode them (occupancy for the
//! shape, absolute frame-t positions of frame-1 points for a deformation), and two EDM denoisers
//! generate them from sparse or partial point-cloud observations. Research note:
//! `shared/research/motion2vecsets.md`; parity record: `PARITY.md` beside this file.
//!
//! | upstream | here |
//! |---|---|
//! | `KLAutoEncoder` (`kl_d512_m512_l8`), `KLAutoEncoder_deform` (`de_kl_d512_m512_l32`) | [`KlAutoEncoder`] (`autoencoder.rs`) |
//! | `PreNorm`, `Attention`, GEGLU `FeedForward`, `PointEmbed` (+ `basis`) | `layers.rs` (embedding from `core::ops::fourier`) |
//! | `Scan2latent`, `Scan2latent_deform_timeatt` | [`Scan2Latent`], [`Scan2LatentPairs`] (`condition.rs`) |
//! | `LatentArrayTransformer`, `BasicTransformerBlock`, `AdaLayerNorm`, `PositionalEmbedding` | [`LatentArrayTransformer`] (`denoiser.rs`) |
//! | `EDMPrecond`, `edm_sampler` | [`LatentDenoiser`] over `core::diffusion::{EdmPrecond, edm_sample}` |
//! | `libmise.MISE`, `Generator3D` (`im2mesh/utils/onet_generator.py`) | [`mesher`]: [`mise`], `mesh_dense`, `mesh_grid` |
//! | `core/eval.py` / `demo/infer.py` reconstruction | [`pipeline`]: [`reconstruct`] → `MotionSequence` |
//!
//! Checkpoints: the official `torch.save({'model': state_dict})` files (`*_shape_ae.pth`,
//! `*_deform_ae.pth`, `*_shape_diff_*.pth`, `*_deform_diff_*.pth`), or safetensors with the same
//! keys, load strictly with [`load_autoencoder`] and [`load_denoiser`].

mod autoencoder;
pub mod bundle;
mod condition;
pub mod config;
pub mod demo_train;
mod denoiser;
mod layers;
pub mod mesher;
pub mod pipeline;
pub mod tracking;

use std::path::Path;

use candle_core::{DType, Device};
use thiserror::Error;

use crate::core::diffusion::DiffusionError;
use crate::core::jobs::JobError;
use crate::core::weights::{LoadOptions, LoadReport, WeightsError, build_model, load_checkpoint};
pub use autoencoder::{
    GridOptions, KlAutoEncoder, Posterior, PreparedLatents, farthest_point_sample, fps_indices, grid_points,
};
pub use bundle::{BundleConfig, FAMILY, M2vsBundle};
pub use condition::{Scan2Latent, Scan2LatentPairs};
pub use config::{AutoEncoderConfig, ConfigError, DenoiserConfig, Observation};
pub use denoiser::{Conditioning, LatentArrayTransformer, LatentDenoiser};
pub use mesher::{DecoderField, ExtractedMesh, LogitField, MeshStats, MiseOptions, mise};
pub use pipeline::{Models, PipelineOptions, PipelineStats, Reconstruction, Stage, reconstruct};

/// Why a Motion2VecSets network could not be built or run.
#[derive(Debug, Error)]
pub enum M2vsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("Motion2VecSets: {0}")]
    Shape(String),
    /// The sampler failed; its cancellation becomes [`M2vsError::Cancelled`] instead.
    #[error("Motion2VecSets: {0}")]
    Diffusion(DiffusionError),
    #[error("Motion2VecSets: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("Motion2VecSets mesher: {0}")]
    Mesher(String),
    #[error("Motion2VecSets: bad input: {0}")]
    Input(String),
    /// Stopped on request (a progress callback said so); not a failure.
    #[error("cancelled")]
    Cancelled,
}

/// One cancellation, whichever stage noticed it (sampler, mesher or decoder).
impl From<DiffusionError> for M2vsError {
    fn from(e: DiffusionError) -> Self {
        match e {
            DiffusionError::Cancelled => M2vsError::Cancelled,
            other => M2vsError::Diffusion(other),
        }
    }
}

impl From<M2vsError> for JobError {
    fn from(e: M2vsError) -> Self {
        match e {
            M2vsError::Cancelled => JobError::Cancelled,
            other => JobError::Failed(other.to_string()),
        }
    }
}

/// The official files hold the state dict under `model`, with the keys `nn.Module.state_dict()`
/// gives. Only wrappers that add a prefix to every key are undone (`DataParallel`,
/// `torch.compile`); `model.` must stay, since the denoisers' own keys start with it.
fn load_options() -> LoadOptions {
    LoadOptions {
        strip_prefixes: vec!["module.".into(), "_orig_mod.".into()],
        ..LoadOptions::default()
    }
}

/// A shape or deformation autoencoder from an official checkpoint (or safetensors with its
/// keys), strictly: a missing, misshapen or unused tensor is an error naming the file and keys.
pub fn load_autoencoder(
    path: &Path,
    cfg: &AutoEncoderConfig,
    device: &Device,
) -> Result<(KlAutoEncoder, LoadReport), M2vsError> {
    cfg.validate()?;
    let ckpt = load_checkpoint(path, &load_options())?;
    Ok(build_model(&ckpt, DType::F32, device, true, |vb| {
        KlAutoEncoder::load(vb, cfg)
    })?)
}

/// A shape or deformation denoiser (`EDMPrecond`: `model.*`, `cond_enc.*`), strictly.
pub fn load_denoiser(
    path: &Path,
    cfg: &DenoiserConfig,
    device: &Device,
) -> Result<(LatentDenoiser, LoadReport), M2vsError> {
    cfg.validate()?;
    let ckpt = load_checkpoint(path, &load_options())?;
    Ok(build_model(&ckpt, DType::F32, device, true, |vb| {
        LatentDenoiser::load(vb, cfg)
    })?)
}
