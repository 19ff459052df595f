//! Neural-network ops candle lacks, on candle tensors (any device; f32 is the reference
//! precision): 3D convolution and its transpose, zero padding, group norm for any rank, 3D
//! nearest/trilinear resampling, differentiable antialiased bilinear 2D resizing, attention
//! (functional, `nn.MultiheadAttention`, q/k/v-linear attention), the Fourier point embedding of
//! 3DShape2VecSet/Motion2VecSets, and the blocks of MONAI-generative's `AutoencoderKL`.
//!
//! Everything is differentiable through candle's autograd and agrees with PyTorch within 1e-5
//! relative error, forward and gradients (`tests/ops_parity.rs`, fixtures made by
//! `tests/fixtures/make_ops.py`; details and deviations in `src/core/ops/PARITY.md`).
//! Modules load torch's state-dict key names through a `candle_nn::VarBuilder`.

pub mod attention;
pub mod blocks;
pub mod conv3d;
mod conv3d_cpu;
pub mod fourier;
pub mod norm;
pub mod resize;
pub mod upsample3d;

pub use attention::{MultiHeadAttention, QkvAttention, QkvAttentionConfig, scaled_dot_product_attention};
pub use blocks::{AttentionBlock, Downsample, ResBlock, Upsample};
pub use conv3d::{
    Conv3d, Conv3dConfig, Conv3dImpl, ConvTranspose3d, ConvTranspose3dConfig, conv_transpose3d, conv_transpose3d_with,
    conv3d, conv3d_cpu_kernel, conv3d_with, pad3d,
};
pub use fourier::{PointEmbed, fourier_embed};
pub use norm::{GroupNorm, group_norm, layer_norm, plain_layer_norm};
pub use resize::resize_bilinear_antialias;
pub use upsample3d::{upsample_nearest3d, upsample_trilinear3d};

/// The largest absolute elementwise difference of two tensors of one shape (read as `f32`):
/// what parity tests and checks compare.
pub fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> candle_core::Result<f32> {
    (a - b)?
        .abs()?
        .max_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_scalar::<f32>()
}
