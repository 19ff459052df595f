//! WaLa's latent diffusion model: `Latent_UVIT` (`src/latent_model/latent_uvit_utils.py`), the
//! diffusion wrapper's condition path (`continous_diffusion_interface.get_model`), the
//! point-cloud condition encoder `PointNet_Large`, and the respaced DDPM sampler with
//! classifier-free guidance — what WaLa runs to turn a condition into a `(B, 4, 12, 12, 12)`
//! latent for the VQ-VAE's `decode_from_pre_quant`.
//!
//! | upstream | here |
//! |---|---|
//! | `Latent_UVIT` | [`LatentUvit`] (`network.rs`; blocks in `blocks.rs`, layers in `layers.rs`) |
//! | `get_model.process_condition` (mapping MLP + `cond_pos_emb`) | [`LatentDiffusion::process_condition`] |
//! | `get_model.inference` (null condition = processed zeros, CFG in one 2B batch) | [`LatentDiffusion::context`], [`LatentDiffusion::sample`] (`sampler.rs`) |
//! | `PointNet_Large` | [`PointNetLarge`] (`pointnet.rs`) |
//! | `SpacedDiffusion(space_timesteps(T, [K]))`, `p_sample_loop` | [`schedule`] and the shared [`crate::core::diffusion::Ddpm`] |
//!
//! | `Encoder_Down_2` and upstream's voxel JSON | [`VoxelEncoder`], [`VoxelGrid`] (`voxels.rs`) |
//!
//! Not ported: the plain DiT (`network_type "latent_dit"`), `PointNet_Simple`, and the
//! image/depth/multi-view conditions (DINOv2, camera embeddings). See `PARITY.md`.

mod blocks;
pub mod config;
mod layers;
mod network;
mod pointnet;
mod sampler;
pub mod voxels;

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder, linear};
use thiserror::Error;

use crate::core::diffusion::DiffusionError;
use crate::core::weights::{LoadOptions, LoadReport, WeightsError, build_model, load_checkpoint};
pub use config::{BetaScheduleName, Condition, MeanType, UvitConfig, VarType};
pub use network::LatentUvit;
pub use pointnet::PointNetLarge;
pub use sampler::{Context, SampleOptions, SampleStep, schedule};
pub use voxels::{VoxelEncoder, VoxelGrid};

/// Where the diffusion wrapper's keys sit in a WaLa `checkpoint.ckpt`.
pub const NETWORK_PREFIX: &str = "network.";
/// Where the condition encoder's keys sit.
pub const ENCODER_PREFIX: &str = "encoder.";
/// What `torch.compile` inserts after either (released models are trained compiled).
const COMPILED_PREFIX: &str = "_orig_mod.";

/// A configuration, checkpoint or tensor the diffusion model cannot take.
#[derive(Debug, Error)]
pub enum UvitError {
    #[error("WaLa diffusion config: {0}")]
    Config(String),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("WaLa diffusion: {0}")]
    Shape(String),
    #[error("WaLa diffusion: {0}")]
    Diffusion(#[from] DiffusionError),
    #[error("WaLa diffusion: {0}")]
    Candle(#[from] candle_core::Error),
}

/// The wrapper's `process_condition` for point-cloud and voxel tokens: `cond_mapping_network`
/// (Linear + SiLU layers, keys `cond_mapping_network.{l}.0`), then `+ cond_pos_emb`.
#[derive(Clone, Debug)]
pub struct ConditionPath {
    mapping: Vec<Linear>,
    pos_emb: Tensor,
}

impl ConditionPath {
    fn load(vb: VarBuilder, context_dim: usize, tokens: usize, layers: usize) -> candle_core::Result<Self> {
        Ok(Self {
            mapping: (0..layers)
                .map(|l| linear(context_dim, context_dim, vb.pp(format!("cond_mapping_network.{l}.0"))))
                .collect::<candle_core::Result<_>>()?,
            pos_emb: vb.get_with_hints((1, tokens, context_dim), "cond_pos_emb", layers::small_normal(0.02))?,
        })
    }
}

impl Module for ConditionPath {
    fn forward(&self, tokens: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = tokens.clone();
        for l in &self.mapping {
            x = l.forward(&x)?.silu()?;
        }
        x.broadcast_add(&self.pos_emb)
    }
}

/// A WaLa diffusion model as `checkpoint.ckpt` holds it: the wrapper (`network.*`: condition
/// path and `unet`) and the condition encoder (`encoder.*`).
#[derive(Clone, Debug)]
pub struct LatentDiffusion {
    pub network: LatentUvit,
    /// `None` for an unconditional model.
    pub condition: Option<ConditionPath>,
    /// The point-cloud encoder (`None` for other conditions).
    pub encoder: Option<PointNetLarge>,
    /// The voxel encoder `Encoder_Down_2` (`None` for other conditions).
    pub voxel_encoder: Option<VoxelEncoder>,
    cfg: UvitConfig,
}

impl LatentDiffusion {
    /// `vb` at the checkpoint's root (keys `network.*`, `encoder.*`). The config must have been
    /// validated.
    pub fn load(vb: VarBuilder, cfg: &UvitConfig) -> candle_core::Result<Self> {
        let condition = cfg.condition().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let net = vb.pp("network");
        let path = match (condition.context_dim(), condition.tokens()) {
            (Some(dc), Some(nc)) => Some(ConditionPath::load(
                net.clone(),
                dc,
                nc,
                cfg.cond_num_mapping_layers.unwrap_or(0),
            )?),
            _ => None,
        };
        let encoder = match condition {
            Condition::PointCloud {
                context_dim,
                tokens,
                pc_dims,
            } => Some(PointNetLarge::load(vb.pp("encoder"), context_dim, pc_dims, tokens)?),
            _ => None,
        };
        let voxel_encoder = match condition {
            Condition::Voxel { context_dim, .. } => Some(VoxelEncoder::load(vb.pp("encoder"), context_dim)?),
            _ => None,
        };
        Ok(Self {
            network: LatentUvit::load(net.pp("unet"), cfg)?,
            condition: path,
            encoder,
            voxel_encoder,
            cfg: cfg.clone(),
        })
    }

    /// From a WaLa checkpoint (Lightning `.ckpt` with `state_dict`, or safetensors with the same
    /// keys): the `network.` and `encoder.` parts, each with or without `_orig_mod.`. Other parts
    /// (the autoencoder, image encoders) are skipped; tensors of these parts that the model does
    /// not use are listed in the report. Unlike upstream (`strict=False`), a missing or misshapen
    /// weight is an error that names it and the file.
    pub fn from_checkpoint(path: &Path, cfg: &UvitConfig, device: &Device) -> Result<(Self, LoadReport), UvitError> {
        cfg.validate()?;
        let mut ckpt = load_checkpoint(path, &LoadOptions::default())?;
        // Normalised name → (key in the file, tensor), so a clash can name both original keys.
        let mut kept: BTreeMap<String, (String, Tensor)> = BTreeMap::new();
        for (key, tensor) in std::mem::take(&mut ckpt.tensors) {
            let Some(prefix) = [NETWORK_PREFIX, ENCODER_PREFIX]
                .into_iter()
                .find(|p| key.starts_with(p))
            else {
                continue;
            };
            let rest = &key[prefix.len()..];
            let name = format!("{prefix}{}", rest.strip_prefix(COMPILED_PREFIX).unwrap_or(rest));
            if let Some((first, _)) = kept.get(&name) {
                return Err(WeightsError::DuplicateKey {
                    path: path.to_path_buf(),
                    key: name,
                    first: first.clone(),
                    second: key,
                }
                .into());
            }
            kept.insert(name, (key, tensor));
        }
        ckpt.tensors = kept.into_iter().map(|(name, (_, t))| (name, t)).collect();
        Ok(build_model(&ckpt, DType::F32, device, false, |vb| Self::load(vb, cfg))?)
    }

    pub fn config(&self) -> &UvitConfig {
        &self.cfg
    }

    /// `(batch, E, G, G, G)`.
    pub fn latent_shape(&self, batch: usize) -> [usize; 5] {
        let g = self.cfg.grid_size;
        [batch, self.cfg.e_dim, g, g, g]
    }

    fn check_latent(&self, x: &Tensor) -> Result<(), UvitError> {
        match x.dims() {
            [b, rest @ ..] if rest == &self.latent_shape(*b)[1..] => Ok(()),
            dims => {
                let [_, e, g, ..] = self.latent_shape(0);
                Err(UvitError::Shape(format!(
                    "a latent is (B, {e}, {g}, {g}, {g}), got {dims:?}"
                )))
            }
        }
    }

    /// Condition tokens `(B, Nc, Dc)`, before or after `process_condition` (same shape).
    fn check_tokens(&self, t: &Tensor, what: &str) -> Result<(), UvitError> {
        let cond = self.cfg.condition()?;
        let (Some(dc), Some(nc)) = (cond.context_dim(), cond.tokens()) else {
            return Err(UvitError::Shape(format!("this model is unconditional but got {what}")));
        };
        match t.dims() {
            [_, n, d] if (*n, *d) == (nc, dc) => Ok(()),
            dims => Err(UvitError::Shape(format!("{what} are (B, {nc}, {dc}), got {dims:?}"))),
        }
    }

    fn check_processed(&self, t: &Tensor) -> Result<(), UvitError> {
        self.check_tokens(t, "processed condition tokens")
    }

    /// Point cloud(s) `(B, N, 3)` → condition tokens `(B, Nc, Dc)` (`PointNet_Large`).
    pub fn encode_points(&self, points: &Tensor) -> Result<Tensor, UvitError> {
        let enc = self
            .encoder
            .as_ref()
            .ok_or_else(|| UvitError::Config("this model is not conditioned on point clouds".into()))?;
        match points.dims() {
            [_, n, 3] if *n > 0 => Ok(enc.forward(&points.to_dtype(DType::F32)?)?),
            dims => Err(UvitError::Shape(format!("points are (B, N, 3), got {dims:?}"))),
        }
    }

    /// Occupancy grids `(B, 1, R, R, R)` → condition tokens `(B, voxel_dim³, Dc)`
    /// (`Encoder_Down_2`, then `extract_input_features`' permute and flatten).
    pub fn encode_voxels(&self, grids: &Tensor) -> Result<Tensor, UvitError> {
        let enc = self
            .voxel_encoder
            .as_ref()
            .ok_or_else(|| UvitError::Config("this model is not conditioned on voxels".into()))?;
        let want = self.cfg.voxel_dim.unwrap_or(0);
        match grids.dims() {
            [_, 1, a, b, c] if [*a, *b, *c].iter().all(|&n| n.div_ceil(2) == want) => {
                Ok(enc.tokens(&grids.to_dtype(DType::F32)?)?)
            }
            dims => Err(UvitError::Shape(format!(
                "voxel grids are (B, 1, R, R, R) with R = {} (voxel_dim {want}), got {dims:?}",
                2 * want
            ))),
        }
    }

    /// The wrapper's `process_condition` of encoder tokens `(B, Nc, Dc)`.
    pub fn process_condition(&self, tokens: &Tensor) -> Result<Tensor, UvitError> {
        self.check_tokens(tokens, "condition tokens")?;
        let path = self
            .condition
            .as_ref()
            .ok_or_else(|| UvitError::Shape("this model is unconditional".into()))?;
        Ok(path.forward(tokens)?)
    }

    /// The context for sampling from encoder tokens (`None` for an unconditional model): the
    /// processed tokens, and with `dp_cond` the processed **zero tokens** as the null condition.
    pub fn context(&self, tokens: Option<&Tensor>) -> Result<Context, UvitError> {
        let Some(tokens) = tokens else {
            return match self.condition {
                None => Ok(Context { cond: None, null: None }),
                Some(_) => Err(UvitError::Shape("this model needs condition tokens".into())),
            };
        };
        let cond = self.process_condition(tokens)?;
        let null = self
            .cfg
            .guided()
            .then(|| self.process_condition(&tokens.zeros_like()?))
            .transpose()?;
        Ok(Context { cond: Some(cond), null })
    }

    /// The network output (ε for `EPSILON` models) for latents `x` `(B, E, G, G, G)`, original
    /// timesteps `t` `(B,)` and processed condition tokens (`None` when unconditional); no
    /// guidance.
    pub fn network_output(&self, x: &Tensor, t: &Tensor, processed: Option<&Tensor>) -> Result<Tensor, UvitError> {
        self.check_latent(x)?;
        let b = x.dim(0)?;
        if t.dims() != [b] {
            return Err(UvitError::Shape(format!(
                "timesteps are ({b},) for {b} latents, got {:?}",
                t.dims()
            )));
        }
        match (processed, &self.condition) {
            (Some(c), Some(_)) => {
                self.check_processed(c)?;
                if c.dim(0)? != b {
                    return Err(UvitError::Shape(format!("{} conditions for {b} latents", c.dim(0)?)));
                }
            }
            (None, None) => {}
            (Some(_), None) => return Err(UvitError::Shape("this model is unconditional".into())),
            (None, Some(_)) => return Err(UvitError::Shape("this model needs condition tokens".into())),
        }
        Ok(self.network.forward(x, t, processed)?)
    }
}
