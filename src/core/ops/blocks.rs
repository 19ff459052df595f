//! Building blocks of MONAI-generative's `AutoencoderKL` (`generative/networks/nets/
//! autoencoderkl.py`, monai-generative 0.2.3) for `spatial_dims = 3`, with the official state-dict
//! key names. Every convolution there is wrapped in MONAI's `Convolution`, hence the extra
//! `.conv` in the keys (`conv1.conv.weight`).
//!
//! | block | keys |
//! |---|---|
//! | [`ResBlock`] | `norm1.{weight,bias}`, `conv1.conv.{weight,bias}`, `norm2.*`, `conv2.conv.*`, `nin_shortcut.conv.*` (only when channels change) |
//! | [`Downsample`] | `conv.conv.{weight,bias}` |
//! | [`Upsample`] | `conv.conv.{weight,bias}` |
//! | [`AttentionBlock`] | `norm.*`, `to_q.*`, `to_k.*`, `to_v.*`, `proj_attn.*` (loaded, not applied: see there) |

use super::attention::{QkvAttention, QkvAttentionConfig};
use super::conv3d::{Conv3d, Conv3dConfig, ConvTranspose3d, ConvTranspose3dConfig, pad3d};
use super::norm::GroupNorm;
use super::upsample3d::upsample_nearest3d;
use candle_core::{Module, Result, Tensor, bail};
use candle_nn::VarBuilder;

/// A MONAI `Convolution(conv_only=True)`: the conv lives under `<name>.conv`.
fn monai_conv(vb: VarBuilder, cin: usize, cout: usize, k: usize, cfg: Conv3dConfig) -> Result<Conv3d> {
    Conv3d::load(vb.pp("conv"), cin, cout, [k; 3], cfg, true)
}

/// `ResBlock(spatial_dims=3, in_channels, norm_num_groups, norm_eps, out_channels)`:
/// `x + conv2(silu(norm2(conv1(silu(norm1(x))))))`, the skip through a 1×1×1 `nin_shortcut`
/// when the channel count changes.
#[derive(Clone, Debug)]
pub struct ResBlock {
    norm1: GroupNorm,
    conv1: Conv3d,
    norm2: GroupNorm,
    conv2: Conv3d,
    nin_shortcut: Option<Conv3d>,
}

impl ResBlock {
    pub fn load(
        vb: VarBuilder,
        in_channels: usize,
        out_channels: usize,
        norm_num_groups: usize,
        norm_eps: f64,
    ) -> Result<Self> {
        let same = Conv3dConfig::uniform(1, 1);
        Ok(Self {
            norm1: GroupNorm::load(vb.pp("norm1"), norm_num_groups, in_channels, norm_eps)?,
            conv1: monai_conv(vb.pp("conv1"), in_channels, out_channels, 3, same)?,
            norm2: GroupNorm::load(vb.pp("norm2"), norm_num_groups, out_channels, norm_eps)?,
            conv2: monai_conv(vb.pp("conv2"), out_channels, out_channels, 3, same)?,
            nin_shortcut: if in_channels != out_channels {
                Some(monai_conv(
                    vb.pp("nin_shortcut"),
                    in_channels,
                    out_channels,
                    1,
                    Conv3dConfig::default(),
                )?)
            } else {
                None
            },
        })
    }
}

impl Module for ResBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(&self.norm1.forward_silu(x)?)?;
        let h = self.conv2.forward(&self.norm2.forward_silu(&h)?)?;
        let skip = match &self.nin_shortcut {
            Some(c) => c.forward(x)?,
            None => x.clone(),
        };
        skip + h
    }
}

/// `Downsample(spatial_dims=3, in_channels)`: zero-pad one voxel at the far end of D, H and W
/// (`F.pad(x, (0, 1, 0, 1, 0, 1))`), then a 3×3×3 conv with stride 2 and no padding.
#[derive(Clone, Debug)]
pub struct Downsample {
    conv: Conv3d,
}

impl Downsample {
    pub fn load(vb: VarBuilder, channels: usize) -> Result<Self> {
        Ok(Self {
            conv: monai_conv(vb.pp("conv"), channels, channels, 3, Conv3dConfig::uniform(2, 0))?,
        })
    }
}

impl Module for Downsample {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv.forward(&pad3d(x, [[0, 1]; 3])?)
    }
}

/// `Upsample(spatial_dims=3, in_channels, use_convtranspose)`: nearest ×2 on all three axes then a
/// 3×3×3 conv (padding 1); or, with `use_convtranspose`, a transposed conv (kernel 3, stride 2,
/// padding 1, output padding 1).
#[derive(Clone, Debug)]
pub enum Upsample {
    Nearest(Conv3d),
    Transposed(ConvTranspose3d),
}

impl Upsample {
    pub fn load(vb: VarBuilder, channels: usize, use_convtranspose: bool) -> Result<Self> {
        if use_convtranspose {
            let cfg = ConvTranspose3dConfig {
                stride: [2; 3],
                padding: [1; 3],
                output_padding: [1; 3],
                ..Default::default()
            };
            Ok(Self::Transposed(ConvTranspose3d::load(
                vb.pp("conv").pp("conv"),
                channels,
                channels,
                [3; 3],
                cfg,
                true,
            )?))
        } else {
            Ok(Self::Nearest(monai_conv(
                vb.pp("conv"),
                channels,
                channels,
                3,
                Conv3dConfig::uniform(1, 1),
            )?))
        }
    }
}

impl Module for Upsample {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Nearest(conv) => {
                let (_, _, d, h, w) = x.dims5()?;
                conv.forward(&upsample_nearest3d(x, [2 * d, 2 * h, 2 * w])?)
            }
            Self::Transposed(conv) => conv.forward(x),
        }
    }
}

/// `AttentionBlock(spatial_dims=3, num_channels, num_head_channels, norm_num_groups, norm_eps)`:
/// group norm, self-attention over the flattened voxels (heads of `num_head_channels`, or one
/// head), residual.
///
/// monai-generative 0.2.3 creates `proj_attn` but its `forward` never applies it, so trained
/// checkpoints carry an unused (untrained) `proj_attn`. [`AttentionBlock::load`] loads it and, to
/// reproduce those models, skips it as well; [`AttentionBlock::with_proj_attn`] turns it on
/// (for checkpoints from a fixed implementation).
#[derive(Clone, Debug)]
pub struct AttentionBlock {
    norm: GroupNorm,
    attn: QkvAttention,
    apply_proj_attn: bool,
}

impl AttentionBlock {
    pub fn load(
        vb: VarBuilder,
        channels: usize,
        num_head_channels: Option<usize>,
        norm_num_groups: usize,
        norm_eps: f64,
    ) -> Result<Self> {
        let heads = match num_head_channels {
            Some(0) => bail!("AttentionBlock: num_head_channels must be positive"),
            Some(hc) if !channels.is_multiple_of(hc) => {
                bail!("AttentionBlock: {hc} channels per head do not divide {channels}")
            }
            Some(hc) => channels / hc,
            None => 1,
        };
        Ok(Self {
            norm: GroupNorm::load(vb.pp("norm"), norm_num_groups, channels, norm_eps)?,
            attn: QkvAttention::load(vb, channels, None, &QkvAttentionConfig::monai(channels, heads))?,
            apply_proj_attn: false,
        })
    }

    /// Whether `proj_attn` is applied after the attention (default `false`, as monai-generative).
    pub fn with_proj_attn(mut self, apply: bool) -> Self {
        self.apply_proj_attn = apply;
        self
    }
}

impl Module for AttentionBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, d, h, w) = x.dims5()?;
        let seq = self.norm.forward(x)?.reshape((b, c, d * h * w))?.transpose(1, 2)?;
        let o = if self.apply_proj_attn {
            self.attn.forward(&seq, None, None)?
        } else {
            self.attn.attend(&seq, None, None)?
        };
        let o = o.transpose(1, 2)?.reshape((b, c, d, h, w))?;
        o + x
    }
}
