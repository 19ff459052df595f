//! MONAI-generative's 3D `AutoencoderKL` (`generative/networks/nets/autoencoderkl.py`,
//! monai-generative 0.2.3), LDAE's compression model, loading the official state dict
//! (`autoencoderkl.pth`) by its own key names:
//!
//! | part | keys |
//! |---|---|
//! | [`BlockStack::encoder`] | `encoder.blocks.N.…`: N = 0 conv, then per level `num_res_blocks` ResBlocks (each followed by an AttentionBlock on attention levels) and a Downsample except after the last level, then the non-local ResBlock/AttentionBlock/ResBlock if enabled, a GroupNorm (`encoder.blocks.N.{weight,bias}`) and a conv to `latent_channels` |
//! | [`BlockStack::decoder`] | `decoder.blocks.N.…`: conv from the latent, the non-local triple if enabled, levels in reverse order (ResBlocks, attention, Upsample except after the last), GroupNorm, conv to `out_channels` |
//! | 1×1×1 convs | `quant_conv_mu.conv.*`, `quant_conv_log_sigma.conv.*`, `post_quant_conv.conv.*` |
//!
//! The blocks themselves (ResBlock, Downsample, Upsample, AttentionBlock) are
//! [`crate::core::ops::blocks`]. Every conv is a MONAI `Convolution`, hence the `.conv` in the keys.
//!
//! **Deterministic encoding.** [`AutoencoderKL::encode_mean`] (and [`AutoencoderKL::reconstruct`],
//! as upstream's `reconstruct`) returns the posterior mean μ. Upstream's `encode_stage_2_inputs`
//! (what LDAE used to store its training latents) instead samples z = μ + σ·ε; that is
//! [`AutoencoderKL::sample`] / [`AutoencoderKL::encode_sample`] here, with ε from our seeded
//! [`Rng`](crate::core::diffusion::Rng), so a seed gives the same latent on every device.
//! LDAE scales latents by [`LDAE_SCALE_FACTOR`](super::config::LDAE_SCALE_FACTOR) before
//! diffusion: see [`to_diffusion_space`] and [`from_diffusion_space`].

use std::path::Path;

use candle_core::{DType, Device, Module, Result, Tensor, bail};
use candle_nn::VarBuilder;
use thiserror::Error;

use super::config::{AutoencoderKlConfig, ConfigError, LDAE_SCALE_FACTOR};
use crate::core::diffusion::NoiseSource;
use crate::core::ops::{AttentionBlock, Conv3d, Conv3dConfig, Downsample, GroupNorm, ResBlock, Upsample};
use crate::core::weights::{LoadOptions, LoadReport, WeightsError, build_model, load_checkpoint};

/// Failure to build an [`AutoencoderKL`] from a checkpoint file.
#[derive(Debug, Error)]
pub enum AutoencoderError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
}

/// A MONAI `Convolution(conv_only=True)` with a cubic kernel: weights under `<vb>.conv`.
fn monai_conv(vb: VarBuilder, cin: usize, cout: usize, kernel: usize, padding: usize) -> Result<Conv3d> {
    Conv3d::load(
        vb.pp("conv"),
        cin,
        cout,
        [kernel; 3],
        Conv3dConfig::uniform(1, padding),
        true,
    )
}

/// One entry of upstream's `nn.ModuleList` `blocks`. A model holds a few dozen of these, so the
/// variants' size difference costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Block {
    Conv(Conv3d),
    Res(ResBlock),
    Attention(AttentionBlock),
    Down(Downsample),
    Up(Upsample),
    Norm(GroupNorm),
}

impl Module for Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Conv(m) => m.forward(x),
            Self::Res(m) => m.forward(x),
            Self::Attention(m) => m.forward(x),
            Self::Down(m) => m.forward(x),
            Self::Up(m) => m.forward(x),
            Self::Norm(m) => m.forward(x),
        }
    }
}

/// Appends blocks under consecutive indices of `blocks.N`, as `nn.ModuleList` numbers them.
struct BlockList<'a> {
    vb: VarBuilder<'a>,
    blocks: Vec<Block>,
    groups: usize,
    eps: f64,
}

impl<'a> BlockList<'a> {
    fn new(vb: VarBuilder<'a>, cfg: &AutoencoderKlConfig) -> Self {
        Self {
            vb: vb.pp("blocks"),
            blocks: Vec::new(),
            groups: cfg.norm_num_groups,
            eps: cfg.norm_eps,
        }
    }

    fn next(&self) -> VarBuilder<'a> {
        self.vb.pp(self.blocks.len().to_string())
    }

    fn conv3(&mut self, cin: usize, cout: usize) -> Result<()> {
        let b = Block::Conv(monai_conv(self.next(), cin, cout, 3, 1)?);
        self.blocks.push(b);
        Ok(())
    }

    fn res(&mut self, cin: usize, cout: usize) -> Result<()> {
        let b = Block::Res(ResBlock::load(self.next(), cin, cout, self.groups, self.eps)?);
        self.blocks.push(b);
        Ok(())
    }

    /// Upstream's AttentionBlocks are built without `num_head_channels`: one head.
    fn attention(&mut self, channels: usize) -> Result<()> {
        let b = Block::Attention(AttentionBlock::load(
            self.next(),
            channels,
            None,
            self.groups,
            self.eps,
        )?);
        self.blocks.push(b);
        Ok(())
    }

    /// ResBlock, AttentionBlock, ResBlock at the bottleneck (`with_*_nonlocal_attn`).
    fn nonlocal(&mut self, channels: usize) -> Result<()> {
        self.res(channels, channels)?;
        self.attention(channels)?;
        self.res(channels, channels)
    }

    fn norm(&mut self, channels: usize) -> Result<()> {
        let b = Block::Norm(GroupNorm::load(self.next(), self.groups, channels, self.eps)?);
        self.blocks.push(b);
        Ok(())
    }

    fn push(&mut self, b: Block) {
        self.blocks.push(b);
    }
}

/// Upstream's `Encoder` or `Decoder`: a `blocks` ModuleList run in order.
#[derive(Clone, Debug)]
pub struct BlockStack {
    blocks: Vec<Block>,
}

impl BlockStack {
    /// Upstream's `Encoder`: image → `latent_channels` feature map at 1/2^(levels−1) resolution
    /// (before `quant_conv_*`). `vb` is the encoder's root (`encoder`); blocks are read under `blocks.N`.
    pub fn encoder(vb: VarBuilder, cfg: &AutoencoderKlConfig) -> Result<Self> {
        let ch = &cfg.num_channels;
        let res_blocks = cfg.res_blocks_per_level();
        let mut list = BlockList::new(vb, cfg);
        list.conv3(cfg.in_channels, ch[0])?;
        let mut channels = ch[0];
        for (level, &out) in ch.iter().enumerate() {
            for _ in 0..res_blocks[level] {
                list.res(channels, out)?;
                channels = out;
                if cfg.attention_levels[level] {
                    list.attention(channels)?;
                }
            }
            if level + 1 < ch.len() {
                let b = Block::Down(Downsample::load(list.next(), channels)?);
                list.push(b);
            }
        }
        // Upstream uses num_channels[-1] here, which equals `channels` unless a level has zero
        // ResBlocks; keep its choice so that shapes (and key shapes) match.
        let last = ch[ch.len() - 1];
        if cfg.with_encoder_nonlocal_attn {
            list.nonlocal(last)?;
        }
        list.norm(last)?;
        list.conv3(last, cfg.latent_channels)?;
        Ok(Self { blocks: list.blocks })
    }

    /// Upstream's `Decoder`: latent (after `post_quant_conv`) → image, **no output activation**.
    /// `vb` is the decoder's root (`decoder`); blocks are read under `blocks.N`.
    pub fn decoder(vb: VarBuilder, cfg: &AutoencoderKlConfig) -> Result<Self> {
        let rev_ch: Vec<usize> = cfg.num_channels.iter().rev().copied().collect();
        let rev_attention: Vec<bool> = cfg.attention_levels.iter().rev().copied().collect();
        let rev_res: Vec<usize> = cfg.res_blocks_per_level().into_iter().rev().collect();
        let mut list = BlockList::new(vb, cfg);
        list.conv3(cfg.latent_channels, rev_ch[0])?;
        if cfg.with_decoder_nonlocal_attn {
            list.nonlocal(rev_ch[0])?;
        }
        let mut channels = rev_ch[0];
        for (level, &out) in rev_ch.iter().enumerate() {
            for _ in 0..rev_res[level] {
                list.res(channels, out)?;
                channels = out;
                if rev_attention[level] {
                    list.attention(channels)?;
                }
            }
            if level + 1 < rev_ch.len() {
                let b = Block::Up(Upsample::load(list.next(), channels, cfg.use_convtranspose)?);
                list.push(b);
            }
        }
        list.norm(channels)?;
        list.conv3(channels, cfg.out_channels)?;
        Ok(Self { blocks: list.blocks })
    }

    /// Number of blocks (`len(encoder.blocks)` / `len(decoder.blocks)`).
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// [`Module::forward`] with `on_block(done, total)` called after each block, for progress and
    /// cancellation: an error from it stops the pass (see [`AutoencoderKL::decode_with`]).
    pub fn forward_with(&self, x: &Tensor, on_block: &mut dyn FnMut(usize, usize) -> Result<()>) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, b) in self.blocks.iter().enumerate() {
            h = b.forward(&h)?;
            on_block(i + 1, self.blocks.len())?;
        }
        Ok(h)
    }
}

impl Module for BlockStack {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, &mut |_, _| Ok(()))
    }
}

/// The encoder's diagonal Gaussian posterior, as upstream's `encode` returns it.
#[derive(Clone, Debug)]
pub struct LatentPosterior {
    /// μ, `(B, latent_channels, d, h, w)`.
    pub mu: Tensor,
    /// σ = exp(clamp(log σ², −30, 20) / 2), same shape.
    pub sigma: Tensor,
}

/// MONAI-generative's `AutoencoderKL` (3D).
#[derive(Clone, Debug)]
pub struct AutoencoderKL {
    encoder: BlockStack,
    decoder: BlockStack,
    quant_conv_mu: Conv3d,
    quant_conv_log_sigma: Conv3d,
    post_quant_conv: Conv3d,
    cfg: AutoencoderKlConfig,
}

impl AutoencoderKL {
    /// Builds the model from `vb` rooted at the state dict's top level (`encoder.…`,
    /// `quant_conv_mu.…`). An invalid `cfg` is an error (its message from [`ConfigError`]).
    pub fn load(vb: VarBuilder, cfg: &AutoencoderKlConfig) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::wrap)?;
        let latent = cfg.latent_channels;
        Ok(Self {
            encoder: BlockStack::encoder(vb.pp("encoder"), cfg)?,
            decoder: BlockStack::decoder(vb.pp("decoder"), cfg)?,
            quant_conv_mu: monai_conv(vb.pp("quant_conv_mu"), latent, latent, 1, 0)?,
            quant_conv_log_sigma: monai_conv(vb.pp("quant_conv_log_sigma"), latent, latent, 1, 0)?,
            post_quant_conv: monai_conv(vb.pp("post_quant_conv"), latent, latent, 1, 0)?,
            cfg: cfg.clone(),
        })
    }

    /// Loads a checkpoint file (the official `autoencoderkl.pth`, a `.safetensors` conversion, or
    /// a Lightning `.ckpt` with `select_prefix: Some("vae.")` in `opts`), requiring every tensor
    /// of the model and no other: a wrong config is reported with every missing, unexpected and
    /// misshapen key.
    pub fn from_checkpoint(
        path: &Path,
        opts: &LoadOptions,
        cfg: &AutoencoderKlConfig,
        dtype: DType,
        device: &Device,
    ) -> std::result::Result<(Self, LoadReport), AutoencoderError> {
        cfg.validate()?;
        let ckpt = load_checkpoint(path, opts)?;
        Ok(build_model(&ckpt, dtype, device, true, |vb| Self::load(vb, cfg))?)
    }

    pub fn config(&self) -> &AutoencoderKlConfig {
        &self.cfg
    }

    pub fn encoder(&self) -> &BlockStack {
        &self.encoder
    }

    pub fn decoder(&self) -> &BlockStack {
        &self.decoder
    }

    fn check_input(&self, x: &Tensor, channels: usize, what: &str) -> Result<()> {
        let dims = x.dims();
        if dims.len() != 5 || dims[1] != channels || dims.contains(&0) {
            bail!("AutoencoderKL {what}: expected a non-empty (B, {channels}, D, H, W) tensor, got {dims:?}")
        }
        Ok(())
    }

    /// Upstream's `encode`: μ and σ of the posterior. A spatial size divisible by
    /// [`AutoencoderKlConfig::downsample_factor`] (8 for LDAE) comes back exactly after decoding;
    /// other sizes are accepted as upstream accepts them (each Downsample halves, rounding down).
    pub fn encode(&self, x: &Tensor) -> Result<LatentPosterior> {
        self.check_input(x, self.cfg.in_channels, "encode")?;
        let h = self.encoder.forward(x)?;
        let mu = self.quant_conv_mu.forward(&h)?;
        let log_var = self.quant_conv_log_sigma.forward(&h)?.clamp(-30f32, 20f32)?;
        let sigma = (log_var * 0.5)?.exp()?;
        Ok(LatentPosterior { mu, sigma })
    }

    /// The posterior mean μ only: LDAE's latent of an image, deterministic (what this workbench
    /// uses; upstream's `encode_stage_2_inputs` samples instead, see [`Self::encode_sample`]).
    pub fn encode_mean(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x, self.cfg.in_channels, "encode")?;
        self.quant_conv_mu.forward(&self.encoder.forward(x)?)
    }

    /// Upstream's `sampling`: z = μ + σ·ε with ε ~ N(0, 1) drawn from `noise` (seed a
    /// [`Rng`](crate::core::diffusion::Rng) for a reproducible sample).
    pub fn sample(&self, posterior: &LatentPosterior, noise: &mut dyn NoiseSource) -> Result<Tensor> {
        let mu = &posterior.mu;
        let eps = noise.randn(mu.dims(), mu.dtype(), mu.device())?;
        mu + (eps * &posterior.sigma)?
    }

    /// Upstream's `encode_stage_2_inputs`: encode, then [`Self::sample`].
    pub fn encode_sample(&self, x: &Tensor, noise: &mut dyn NoiseSource) -> Result<Tensor> {
        let posterior = self.encode(x)?;
        self.sample(&posterior, noise)
    }

    /// Upstream's `decode`: `post_quant_conv`, then the decoder. `z` is in autoencoder space
    /// (divide LDAE's diffusion latents by the scale factor first: [`from_diffusion_space`]).
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        self.decode_with(z, &mut |_, _| Ok(()))
    }

    /// [`Self::decode`] calling `on_block(done, total)` after each decoder block, e.g. to report
    /// progress and to stop early when it returns an error (a cancelled job).
    pub fn decode_with(&self, z: &Tensor, on_block: &mut dyn FnMut(usize, usize) -> Result<()>) -> Result<Tensor> {
        self.check_input(z, self.cfg.latent_channels, "decode")?;
        self.decoder.forward_with(&self.post_quant_conv.forward(z)?, on_block)
    }

    /// Upstream's `reconstruct`: decode(μ).
    pub fn reconstruct(&self, x: &Tensor) -> Result<Tensor> {
        self.decode(&self.encode_mean(x)?)
    }
}

/// Autoencoder latent → LDAE diffusion latent: z · 0.8730.
pub fn to_diffusion_space(z: &Tensor) -> Result<Tensor> {
    z * LDAE_SCALE_FACTOR
}

/// LDAE diffusion latent → autoencoder latent (before [`AutoencoderKL::decode`]): z / 0.8730.
pub fn from_diffusion_space(z: &Tensor) -> Result<Tensor> {
    z / LDAE_SCALE_FACTOR
}
