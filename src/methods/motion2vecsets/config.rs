//! Network configurations with the reference's argument names and defaults
//! (`create_autoencoder` / `KLAutoEncoder(_deform)` in `core/network/models_ae.py`, `EDMPrecond` in
//! `core/network/models_diff.py`), plus tiny variants for tests.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Fourier features of the point embedding (`PointEmbed(hidden_dim=48)`: 8 frequencies × 3 axes ×
/// sin/cos), fixed in the reference.
pub const POINT_EMBED_HIDDEN: usize = 48;
/// Channels of the noise embedding (`LatentArrayTransformer(t_channels=256)`, fixed in `EDMPrecond`).
pub const NOISE_CHANNELS: usize = 256;
/// `PositionalEmbedding(max_positions=10000)`.
pub const NOISE_MAX_PERIOD: f64 = 10_000.0;
/// `nn.LayerNorm`'s default ε, used by every LayerNorm of both papers' modules.
pub const LAYER_NORM_EPS: f64 = 1e-5;
/// Half-width of the meshing box (`box_size = 1.1` in the reference generator, motion2vecsets.md §7).
pub const GRID_HALF_EXTENT: f64 = 0.55;

/// A configuration the networks cannot be built from.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("Motion2VecSets config: `{field}` must be positive")]
    Zero { field: &'static str },
    #[error("Motion2VecSets config: `{field}` = {value} must be even (it is split into two halves)")]
    Odd { field: &'static str, value: usize },
    #[error("Motion2VecSets config: `queries_dim` = {queries_dim} must be {expected} (the point embedding's width)")]
    QueriesDim { queries_dim: usize, expected: usize },
    #[error("Motion2VecSets config: num_latents {num_latents} > num_inputs {num_inputs} (FPS keeps a subset)")]
    TooManyLatents { num_latents: usize, num_inputs: usize },
    #[error("Motion2VecSets config: {0}")]
    Invalid(String),
}

fn positive(field: &'static str, v: usize) -> Result<(), ConfigError> {
    if v == 0 {
        Err(ConfigError::Zero { field })
    } else {
        Ok(())
    }
}

/// `KLAutoEncoder` (shape, `deform = false`) or `KLAutoEncoder_deform` (`deform = true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoEncoderConfig {
    /// Self-attention blocks of the decoder (24).
    pub depth: usize,
    /// Width of the latent tokens (512).
    pub dim: usize,
    /// Width of the query embedding: `dim` for shapes, `dim / 2` for deformations.
    pub queries_dim: usize,
    /// 1 (occupancy logit) or 3 (position).
    pub output_dim: usize,
    /// Points given to the encoder (2048).
    pub num_inputs: usize,
    /// Latent tokens (512).
    pub num_latents: usize,
    /// Channels per latent token (8 shape, 32 deformation).
    pub latent_dim: usize,
    /// Heads and head width of the decoder's self-attention (8 × 64).
    pub heads: usize,
    pub dim_head: usize,
    /// Paired-point encoder and position decoder (`KLAutoEncoder_deform`).
    pub deform: bool,
}

impl AutoEncoderConfig {
    /// `kl_d512_m512_l8`: the shape autoencoder.
    pub fn kl_d512_m512_l8() -> Self {
        Self {
            depth: 24,
            dim: 512,
            queries_dim: 512,
            output_dim: 1,
            num_inputs: 2048,
            num_latents: 512,
            latent_dim: 8,
            heads: 8,
            dim_head: 64,
            deform: false,
        }
    }

    /// `de_kl_d512_m512_l32`: the deformation autoencoder.
    pub fn de_kl_d512_m512_l32() -> Self {
        Self {
            queries_dim: 256,
            output_dim: 3,
            latent_dim: 32,
            deform: true,
            ..Self::kl_d512_m512_l8()
        }
    }

    /// The parity fixture's shape autoencoder: width 32, 2 blocks of 2 heads × 16, 16 latents of 4
    /// channels from 64 points.
    pub fn tiny_shape() -> Self {
        Self {
            depth: 2,
            dim: 32,
            queries_dim: 32,
            output_dim: 1,
            num_inputs: 64,
            num_latents: 16,
            latent_dim: 4,
            heads: 2,
            dim_head: 16,
            deform: false,
        }
    }

    /// The parity fixture's deformation autoencoder (queries 16 wide, 8 channels per latent).
    pub fn tiny_deform() -> Self {
        Self {
            queries_dim: 16,
            output_dim: 3,
            latent_dim: 8,
            deform: true,
            ..Self::tiny_shape()
        }
    }

    /// Width of one point embedding: `dim` (shape) or `dim / 2` (each point of a pair).
    pub fn embed_dim(&self) -> usize {
        if self.deform { self.dim / 2 } else { self.dim }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("depth", self.depth)?;
        positive("dim", self.dim)?;
        positive("output_dim", self.output_dim)?;
        positive("num_inputs", self.num_inputs)?;
        positive("num_latents", self.num_latents)?;
        positive("latent_dim", self.latent_dim)?;
        positive("heads", self.heads)?;
        positive("dim_head", self.dim_head)?;
        if self.deform && !self.dim.is_multiple_of(2) {
            return Err(ConfigError::Odd {
                field: "dim",
                value: self.dim,
            });
        }
        // The decoder's queries are embedded by the same `point_embed` as the encoder's points.
        if self.queries_dim != self.embed_dim() {
            return Err(ConfigError::QueriesDim {
                queries_dim: self.queries_dim,
                expected: self.embed_dim(),
            });
        }
        if self.num_latents > self.num_inputs {
            return Err(ConfigError::TooManyLatents {
                num_latents: self.num_latents,
                num_inputs: self.num_inputs,
            });
        }
        Ok(())
    }
}

/// Which observation cross-attention a deformation denoiser has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Observation {
    /// Sparse input with correspondences (`is_corr = True`): one cross-attention to tokens of
    /// (frame-1 point, frame-t point) pairs from `Scan2latent_deform_timeatt`.
    Paired,
    /// Partial scans without correspondences (`is_corr = False`): cross-attention to frame-1
    /// tokens, then to frame-t tokens, both from `Scan2latent`.
    Separate,
}

/// `EDMPrecond` with its `LatentArrayTransformer` and condition encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenoiserConfig {
    /// Latent tokens (512).
    pub n_latents: usize,
    /// Channels of the latents being denoised (8 shape, 32 deformation).
    pub channels: usize,
    /// Channels of the shape latents a deformation denoiser is conditioned on (8).
    pub shape_dim: usize,
    pub n_heads: usize,
    pub d_head: usize,
    /// Transformer blocks (12).
    pub depth: usize,
    /// Observed points per frame (300 DFAUST, 512 DT4D).
    pub cond_num_inputs: usize,
    /// Deformation denoiser (`is_deform`).
    pub is_deform: bool,
    /// Temporal self-attention across frames (`withT`, `time_attn` in the configs).
    #[serde(rename = "withT")]
    pub with_t: bool,
    /// Observation path of a deformation denoiser (`is_corr`); ignored for shapes.
    pub observation: Observation,
    /// `EDMPrecond`'s σ_data (1).
    pub sigma_data: f64,
}

impl DenoiserConfig {
    /// `kl_d512_m512_l8_surf{300,512}_edm`: the shape denoiser.
    pub fn shape_surf(cond_num_inputs: usize) -> Self {
        Self {
            n_latents: 512,
            channels: 8,
            shape_dim: 8,
            n_heads: 8,
            d_head: 64,
            depth: 12,
            cond_num_inputs,
            is_deform: false,
            with_t: false,
            observation: Observation::Paired,
            sigma_data: 1.0,
        }
    }

    /// `de_kl_d512_m512_l32_surf{300,512}_edm(withT, is_corr)`: the deformation denoiser. The
    /// released configs use `withT = True` (`time_attn`).
    pub fn deform_surf(cond_num_inputs: usize, with_t: bool, is_corr: bool) -> Self {
        Self {
            channels: 32,
            is_deform: true,
            with_t,
            observation: if is_corr {
                Observation::Paired
            } else {
                Observation::Separate
            },
            ..Self::shape_surf(cond_num_inputs)
        }
    }

    /// The parity fixture's shape denoiser: width 32 (2 heads × 16), 2 blocks, 16 latents of 4
    /// channels, 12 observed points.
    pub fn tiny_shape() -> Self {
        Self {
            n_latents: 16,
            channels: 4,
            shape_dim: 4,
            n_heads: 2,
            d_head: 16,
            depth: 2,
            cond_num_inputs: 12,
            is_deform: false,
            with_t: false,
            observation: Observation::Paired,
            sigma_data: 1.0,
        }
    }

    /// The parity fixture's deformation denoiser (8 channels, temporal attention on).
    pub fn tiny_deform(observation: Observation) -> Self {
        Self {
            channels: 8,
            is_deform: true,
            with_t: true,
            observation,
            ..Self::tiny_shape()
        }
    }

    /// Transformer width `n_heads · d_head`.
    pub fn inner_dim(&self) -> usize {
        self.n_heads * self.d_head
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("n_latents", self.n_latents)?;
        positive("channels", self.channels)?;
        positive("shape_dim", self.shape_dim)?;
        positive("n_heads", self.n_heads)?;
        positive("d_head", self.d_head)?;
        positive("depth", self.depth)?;
        positive("cond_num_inputs", self.cond_num_inputs)?;
        if self.is_deform && self.observation == Observation::Paired && !self.inner_dim().is_multiple_of(2) {
            return Err(ConfigError::Odd {
                field: "n_heads * d_head",
                value: self.inner_dim(),
            });
        }
        if !(self.sigma_data > 0.0 && self.sigma_data.is_finite()) {
            return Err(ConfigError::Invalid(format!(
                "sigma_data {} must be positive",
                self.sigma_data
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_configs_validate() {
        AutoEncoderConfig::kl_d512_m512_l8().validate().unwrap();
        AutoEncoderConfig::de_kl_d512_m512_l32().validate().unwrap();
        AutoEncoderConfig::tiny_shape().validate().unwrap();
        AutoEncoderConfig::tiny_deform().validate().unwrap();
        DenoiserConfig::shape_surf(300).validate().unwrap();
        DenoiserConfig::deform_surf(512, true, false).validate().unwrap();
        assert_eq!(DenoiserConfig::shape_surf(512).inner_dim(), 512);
        assert_eq!(AutoEncoderConfig::de_kl_d512_m512_l32().embed_dim(), 256);
    }

    #[test]
    fn bad_configs_are_typed_errors() {
        let mut c = AutoEncoderConfig::kl_d512_m512_l8();
        c.queries_dim = 256;
        assert_eq!(
            c.validate(),
            Err(ConfigError::QueriesDim {
                queries_dim: 256,
                expected: 512
            })
        );
        let mut c = AutoEncoderConfig::tiny_shape();
        c.num_latents = 65;
        assert!(matches!(c.validate(), Err(ConfigError::TooManyLatents { .. })));
        let mut d = DenoiserConfig::tiny_shape();
        d.depth = 0;
        assert_eq!(d.validate(), Err(ConfigError::Zero { field: "depth" }));
    }
}
