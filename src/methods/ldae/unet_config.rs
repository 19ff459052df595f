//! Configuration of LDAE's latent denoiser (`UNet`) and conditional decoder (`ShiftUNet`), PDAE modules
//! run with `dims = 3`, under the constructor's own argument names (`unet_args` of LDAE's
//! `config/ldae_*.yaml`), so a config written for Python deserialises unchanged. `Default` is the
//! published LDAE model.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// PDAE's `normalization(channels)`: `GroupNorm(32, channels)` with torch's default ε.
pub const UNET_NORM_GROUPS: usize = 32;
pub const UNET_NORM_EPS: f64 = 1e-5;

/// An invalid [`UNetConfig`]: the checks upstream makes, plus the ones it leaves to a crash later.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum UNetConfigError {
    #[error("LDAE UNet: dims is {0}; only the 3D model (dims = 3) is supported")]
    Dims(usize),
    #[error("LDAE UNet: {field} must be positive")]
    Zero { field: &'static str },
    #[error("LDAE UNet: channel_multiplier is empty")]
    NoLevels,
    #[error(
        "LDAE UNet: every level width (base_channel × multiplier) must be a multiple of {UNET_NORM_GROUPS}, got {0:?}"
    )]
    GroupsDoNotDivide(Vec<usize>),
    #[error("LDAE UNet: width {channels} is not divisible by head_channel {head_channel}")]
    HeadChannel { channels: usize, head_channel: usize },
    #[error("LDAE UNet: width {channels} is not divisible by {heads} heads")]
    Heads { channels: usize, heads: usize },
    #[error("LDAE UNet: class-conditional models (num_class) are not supported; LDAE does not use them")]
    ClassConditional,
}

/// The arguments of PDAE's `UNet(...)` / `ShiftUNet(...)` (`latent_dim` of the latter is the encoder's
/// `emb_chans` and is passed separately). `dropout` is accepted and ignored (evaluation only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UNetConfig {
    pub input_channel: usize,
    pub base_channel: usize,
    pub channel_multiplier: Vec<usize>,
    pub num_residual_blocks_of_a_block: usize,
    /// Downsampling rates (1, 2, 4, …) at which blocks carry attention.
    pub attention_resolutions: Vec<usize>,
    pub num_heads: usize,
    /// Channels per head; −1 means "use `num_heads`".
    pub head_channel: i64,
    /// false: upstream's `QKVAttentionLegacy` (split heads, then q/k/v); true: `QKVAttention`.
    pub use_new_attention_order: bool,
    #[serde(default)]
    pub dropout: f64,
    #[serde(default = "three")]
    pub dims: usize,
    /// Output `2 × input_channel` (ε and variance values) instead of `input_channel`.
    #[serde(default)]
    pub learn_sigma: bool,
    #[serde(default)]
    pub num_class: Option<usize>,
}

fn three() -> usize {
    3
}

impl Default for UNetConfig {
    /// `unet_args` of LDAE's `ldae_pretrain.yaml` / `ldae_repr_learn.yaml`.
    fn default() -> Self {
        Self {
            input_channel: 3,
            base_channel: 256,
            channel_multiplier: vec![1, 2, 3],
            num_residual_blocks_of_a_block: 2,
            attention_resolutions: vec![2, 4],
            num_heads: 1,
            head_channel: -1,
            use_new_attention_order: false,
            dropout: 0.1,
            dims: 3,
            learn_sigma: false,
            num_class: None,
        }
    }
}

impl UNetConfig {
    pub fn validate(&self) -> Result<(), UNetConfigError> {
        if self.dims != 3 {
            return Err(UNetConfigError::Dims(self.dims));
        }
        if self.num_class.is_some() {
            return Err(UNetConfigError::ClassConditional);
        }
        for (field, v) in [
            ("input_channel", self.input_channel),
            ("base_channel", self.base_channel),
            ("num_residual_blocks_of_a_block", self.num_residual_blocks_of_a_block),
        ] {
            if v == 0 {
                return Err(UNetConfigError::Zero { field });
            }
        }
        if self.channel_multiplier.is_empty() {
            return Err(UNetConfigError::NoLevels);
        }
        let widths = self.level_channels();
        if widths.iter().any(|&c| c == 0 || !c.is_multiple_of(UNET_NORM_GROUPS)) {
            return Err(UNetConfigError::GroupsDoNotDivide(widths));
        }
        for &c in widths.iter() {
            self.heads_for(c)?;
        }
        Ok(())
    }

    /// The width of every level: `base_channel × multiplier`.
    pub fn level_channels(&self) -> Vec<usize> {
        self.channel_multiplier.iter().map(|m| m * self.base_channel).collect()
    }

    /// The timestep-embedding width, `4 × base_channel`.
    pub fn time_embed_dim(&self) -> usize {
        4 * self.base_channel
    }

    /// Output channels of `out` (doubled with `learn_sigma`).
    pub fn output_channel(&self) -> usize {
        if self.learn_sigma {
            2 * self.input_channel
        } else {
            self.input_channel
        }
    }

    /// Whether blocks at downsampling rate `ds` carry attention.
    pub fn attention_at(&self, ds: usize) -> bool {
        self.attention_resolutions.contains(&ds)
    }

    /// The number of heads of an attention block over `channels` (upstream `AttentionBlock.__init__`).
    pub fn heads_for(&self, channels: usize) -> Result<usize, UNetConfigError> {
        let heads = if self.head_channel == -1 {
            self.num_heads
        } else {
            let hc = usize::try_from(self.head_channel).unwrap_or(0);
            if hc == 0 || !channels.is_multiple_of(hc) {
                return Err(UNetConfigError::HeadChannel {
                    channels,
                    head_channel: hc,
                });
            }
            channels / hc
        };
        if heads == 0 || !channels.is_multiple_of(heads) {
            return Err(UNetConfigError::Heads { channels, heads });
        }
        Ok(heads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldae_yaml_deserialises_to_the_default() {
        let json = r#"{"input_channel": 3, "base_channel": 256, "channel_multiplier": [1, 2, 3],
            "num_residual_blocks_of_a_block": 2, "attention_resolutions": [2, 4], "num_heads": 1,
            "head_channel": -1, "use_new_attention_order": false, "dropout": 0.1, "dims": 3}"#;
        let cfg: UNetConfig = serde_json::from_str(json).unwrap();
        assert_eq!(cfg, UNetConfig::default());
        cfg.validate().unwrap();
        assert_eq!(cfg.level_channels(), vec![256, 512, 768]);
        assert_eq!(cfg.time_embed_dim(), 1024);
    }

    #[test]
    fn invalid_configs_are_refused() {
        let bad = |f: fn(&mut UNetConfig)| {
            let mut c = UNetConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(bad(|c| c.dims = 2), UNetConfigError::Dims(2));
        assert!(matches!(
            bad(|c| c.base_channel = 48),
            UNetConfigError::GroupsDoNotDivide(_)
        ));
        assert!(matches!(
            bad(|c| c.head_channel = 100),
            UNetConfigError::HeadChannel { .. }
        ));
        assert!(matches!(bad(|c| c.num_heads = 0), UNetConfigError::Heads { .. }));
        assert_eq!(bad(|c| c.num_class = Some(2)), UNetConfigError::ClassConditional);
        assert!(matches!(
            bad(|c| c.channel_multiplier.clear()),
            UNetConfigError::NoLevels
        ));
    }
}
