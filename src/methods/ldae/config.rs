//! Configuration of LDAE's compression model, MONAI-generative's `AutoencoderKL`, with the
//! constructor's own argument names (`generative/networks/nets/autoencoderkl.py`,
//! monai-generative 0.2.3) so that a config written for Python (`init_args` of LDAE's
//! `config/aekl.yaml`, as JSON or TOML) deserialises unchanged. Omitted fields take upstream's
//! defaults.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// LDAE multiplies autoencoder latents by this before diffusion and divides by it before
/// decoding. It is hard-coded in LDAE's code and stored in no checkpoint.
pub const LDAE_SCALE_FACTOR: f64 = 0.8730;

/// An invalid [`AutoencoderKlConfig`]: the checks upstream's constructor makes, plus the ones it
/// leaves to a crash later (zero sizes, a non-3D model).
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    #[error("AutoencoderKL: spatial_dims is {0}; only 3D models (spatial_dims = 3) are supported")]
    SpatialDims(usize),
    #[error("AutoencoderKL: num_channels is empty")]
    NoLevels,
    #[error("AutoencoderKL: {field} must be positive")]
    Zero { field: &'static str },
    #[error(
        "AutoencoderKL: every num_channels entry must be a multiple of norm_num_groups ({groups}), got {channels:?}"
    )]
    GroupsDoNotDivide { groups: usize, channels: Vec<usize> },
    #[error("AutoencoderKL: num_channels has {levels} entries but attention_levels has {attention}")]
    AttentionLevels { levels: usize, attention: usize },
    #[error("AutoencoderKL: num_channels has {levels} entries but num_res_blocks has {res_blocks}")]
    ResBlocks { levels: usize, res_blocks: usize },
    #[error("AutoencoderKL: norm_eps must be positive and finite, got {0}")]
    NormEps(f64),
}

/// `num_res_blocks`: one count for every level, or one per level (as upstream accepts both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NumResBlocks {
    Same(usize),
    PerLevel(Vec<usize>),
}

impl NumResBlocks {
    /// The count for each of `levels` levels (`ensure_tuple_rep` upstream).
    pub fn per_level(&self, levels: usize) -> Vec<usize> {
        match self {
            Self::Same(n) => vec![*n; levels],
            Self::PerLevel(v) => v.clone(),
        }
    }
}

/// The arguments of `AutoencoderKL(...)`; defaults are upstream's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoencoderKlConfig {
    pub spatial_dims: usize,
    #[serde(default = "one")]
    pub in_channels: usize,
    #[serde(default = "one")]
    pub out_channels: usize,
    #[serde(default = "default_num_res_blocks")]
    pub num_res_blocks: NumResBlocks,
    #[serde(default = "default_num_channels")]
    pub num_channels: Vec<usize>,
    #[serde(default = "default_attention_levels")]
    pub attention_levels: Vec<bool>,
    #[serde(default = "three")]
    pub latent_channels: usize,
    #[serde(default = "default_groups")]
    pub norm_num_groups: usize,
    #[serde(default = "default_eps")]
    pub norm_eps: f64,
    #[serde(default = "yes")]
    pub with_encoder_nonlocal_attn: bool,
    #[serde(default = "yes")]
    pub with_decoder_nonlocal_attn: bool,
    /// xformers' memory-efficient attention upstream: the same mathematics, so it changes
    /// nothing here (accepted so that upstream configs load).
    #[serde(default)]
    pub use_flash_attention: bool,
    /// Activation checkpointing, a training-time memory saving; ignored at inference.
    #[serde(default)]
    pub use_checkpointing: bool,
    /// Transposed convolutions instead of nearest upsampling + conv in the decoder.
    #[serde(default)]
    pub use_convtranspose: bool,
}

fn one() -> usize {
    1
}
fn three() -> usize {
    3
}
fn yes() -> bool {
    true
}
fn default_num_res_blocks() -> NumResBlocks {
    NumResBlocks::PerLevel(vec![2, 2, 2, 2])
}
fn default_num_channels() -> Vec<usize> {
    vec![32, 64, 64, 64]
}
fn default_attention_levels() -> Vec<bool> {
    vec![false, false, true, true]
}
fn default_groups() -> usize {
    32
}
fn default_eps() -> f64 {
    1e-6
}

impl AutoencoderKlConfig {
    /// LDAE's autoencoder (`config/aekl.yaml`, the MONAI brain-LDM autoencoder): 1 → 3 latent
    /// channels, channels 64/128/128/128 with two ResBlocks each, no attention anywhere (neither
    /// per level nor the non-local blocks), GroupNorm 32 groups with eps 1e-6. A 128×160×128
    /// volume gives a 3×16×20×16 latent.
    pub fn ldae() -> Self {
        Self {
            spatial_dims: 3,
            in_channels: 1,
            out_channels: 1,
            num_res_blocks: NumResBlocks::Same(2),
            num_channels: vec![64, 128, 128, 128],
            attention_levels: vec![false; 4],
            latent_channels: 3,
            norm_num_groups: 32,
            norm_eps: 1e-6,
            with_encoder_nonlocal_attn: false,
            with_decoder_nonlocal_attn: false,
            use_flash_attention: false,
            use_checkpointing: false,
            use_convtranspose: false,
        }
    }

    /// Upstream's defaults for a 3D model (`AutoencoderKL(spatial_dims=3)`).
    pub fn upstream_default() -> Self {
        Self {
            spatial_dims: 3,
            in_channels: 1,
            out_channels: 1,
            num_res_blocks: default_num_res_blocks(),
            num_channels: default_num_channels(),
            attention_levels: default_attention_levels(),
            latent_channels: 3,
            norm_num_groups: 32,
            norm_eps: 1e-6,
            with_encoder_nonlocal_attn: true,
            with_decoder_nonlocal_attn: true,
            use_flash_attention: false,
            use_checkpointing: false,
            use_convtranspose: false,
        }
    }

    /// Checks what upstream's constructor checks, plus what would otherwise fail later.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.spatial_dims != 3 {
            return Err(ConfigError::SpatialDims(self.spatial_dims));
        }
        if self.num_channels.is_empty() {
            return Err(ConfigError::NoLevels);
        }
        for (field, v) in [
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("latent_channels", self.latent_channels),
            ("norm_num_groups", self.norm_num_groups),
        ] {
            if v == 0 {
                return Err(ConfigError::Zero { field });
            }
        }
        if self.num_channels.contains(&0) {
            return Err(ConfigError::Zero { field: "num_channels" });
        }
        if self
            .num_channels
            .iter()
            .any(|c| !c.is_multiple_of(self.norm_num_groups))
        {
            return Err(ConfigError::GroupsDoNotDivide {
                groups: self.norm_num_groups,
                channels: self.num_channels.clone(),
            });
        }
        let levels = self.levels();
        if self.attention_levels.len() != levels {
            return Err(ConfigError::AttentionLevels {
                levels,
                attention: self.attention_levels.len(),
            });
        }
        if let NumResBlocks::PerLevel(v) = &self.num_res_blocks
            && v.len() != levels
        {
            return Err(ConfigError::ResBlocks {
                levels,
                res_blocks: v.len(),
            });
        }
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0) {
            return Err(ConfigError::NormEps(self.norm_eps));
        }
        Ok(())
    }

    /// Number of resolution levels (`len(num_channels)`).
    pub fn levels(&self) -> usize {
        self.num_channels.len()
    }

    /// ResBlocks per level, one entry per level.
    pub fn res_blocks_per_level(&self) -> Vec<usize> {
        self.num_res_blocks.per_level(self.levels())
    }

    /// Spatial down-sampling factor between image and latent: `2^(levels - 1)`.
    pub fn downsample_factor(&self) -> usize {
        1 << self.levels().saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_field_names_and_defaults_deserialise() {
        let cfg: AutoencoderKlConfig = serde_json::from_str(
            r#"{"spatial_dims": 3, "in_channels": 1, "out_channels": 1, "num_channels": [64, 128, 128, 128],
                "latent_channels": 3, "num_res_blocks": 2, "norm_num_groups": 32, "norm_eps": 1e-6,
                "attention_levels": [false, false, false, false],
                "with_encoder_nonlocal_attn": false, "with_decoder_nonlocal_attn": false}"#,
        )
        .unwrap();
        assert_eq!(cfg, AutoencoderKlConfig::ldae());
        cfg.validate().unwrap();
        assert_eq!(cfg.downsample_factor(), 8);
        assert_eq!(cfg.res_blocks_per_level(), vec![2; 4]);

        let d: AutoencoderKlConfig = serde_json::from_str(r#"{"spatial_dims": 3}"#).unwrap();
        assert_eq!(d, AutoencoderKlConfig::upstream_default());
        let per: AutoencoderKlConfig =
            serde_json::from_str(r#"{"spatial_dims": 3, "num_res_blocks": [1, 2, 1, 3]}"#).unwrap();
        assert_eq!(per.res_blocks_per_level(), vec![1, 2, 1, 3]);
        // Round trip keeps upstream's names.
        let back: AutoencoderKlConfig = serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
        assert!(serde_json::from_str::<AutoencoderKlConfig>(r#"{"spatial_dims": 3, "num_chanels": [8]}"#).is_err());
    }

    #[test]
    fn invalid_configs_are_refused_like_upstream() {
        let base = AutoencoderKlConfig::ldae();
        let with = |f: &dyn Fn(&mut AutoencoderKlConfig)| {
            let mut c = base.clone();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(with(&|c| c.spatial_dims = 2), ConfigError::SpatialDims(2));
        assert!(matches!(
            with(&|c| c.num_channels[1] = 100),
            ConfigError::GroupsDoNotDivide { groups: 32, .. }
        ));
        assert!(matches!(
            with(&|c| {
                c.attention_levels.pop();
            }),
            ConfigError::AttentionLevels {
                levels: 4,
                attention: 3
            }
        ));
        assert!(matches!(
            with(&|c| c.num_res_blocks = NumResBlocks::PerLevel(vec![2, 2])),
            ConfigError::ResBlocks {
                levels: 4,
                res_blocks: 2
            }
        ));
        assert_eq!(
            with(&|c| c.latent_channels = 0),
            ConfigError::Zero {
                field: "latent_channels"
            }
        );
        assert!(matches!(with(&|c| c.norm_eps = 0.0), ConfigError::NormEps(_)));
        assert_eq!(with(&|c| c.num_channels.clear()), ConfigError::NoLevels);
        let msg = with(&|c| c.num_channels[0] = 48).to_string();
        assert!(msg.contains("norm_num_groups (32)"), "{msg}");
    }
}
