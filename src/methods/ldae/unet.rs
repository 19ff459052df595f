//! LDAE's latent denoiser and conditional decoder: PDAE's `UNet` and `ShiftUNet` (`src/ldae/nets/unet.py`,
//! `shift_unet.py`, `modules/module.py` of GabrieleLozupone/LDAE) with `dims = 3`, loading the official
//! `decoder.pth` state dict under its own key names.
//!
//! What makes this UNet particular (see `shared/research/ldae.md` §5 and `PARITY.md`):
//! - the timestep sinusoid puts the **cosine half first**, over `base_channel` dimensions;
//! - ResBlocks modulate with AdaGN, `GN(h)·(1+s)+b` with `[s, b] = Linear(SiLU(emb))`, and the shift branch's
//!   `ResBlockShift` modulates that again with the semantic code: `(1+z_s)·(…)+z_b`,
//!   `[z_s, z_b] = Linear(SiLU(label_emb(y_sem)))`;
//! - resampling happens inside ResBlocks and, in 3D, **only on the last two axes**: average pooling with a
//!   (1, 2, 2) window, nearest upsampling to (D, 2H, 2W);
//! - attention splits the 1/√C scale as 1/⁴√C on q and on k (legacy or new q/k/v head order);
//! - `ShiftUNet` shares the encoder half: from the innermost features one decoder gives ε̂ (the frozen UNet)
//!   and a second one, with its own middle block, gives the gradient estimator G.

use std::path::Path;

use candle_core::{DType, Device, Module, Result, Tensor, bail};
use candle_nn::{Linear, VarBuilder};
use thiserror::Error;

use super::unet_config::{UNET_NORM_EPS, UNET_NORM_GROUPS, UNetConfig, UNetConfigError};
use crate::core::diffusion::Denoiser;
use crate::core::ops::{Conv3d, Conv3dConfig, GroupNorm, upsample_nearest3d};
use crate::core::weights::{LoadOptions, LoadReport, WeightsError, build_model, load_checkpoint};

#[derive(Debug, Error)]
pub enum UNetError {
    #[error(transparent)]
    Config(#[from] UNetConfigError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
}

/// PDAE's `timestep_embedding(t, dim)`: `[cos(t·f), sin(t·f)]` with `f_i = exp(−ln(10⁴)·i/half)`, a zero
/// column appended when `dim` is odd. Computed in f32 in torch's order of operations, because at
/// t ≈ 1000 one rounding of the argument moves the cosine by ~6e-5.
pub fn timestep_embedding(t: &Tensor, dim: usize) -> Result<Tensor> {
    let ts = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let half = dim / 2;
    let neg_log = -(10000f64.ln() as f32);
    let freqs: Vec<f32> = (0..half).map(|i| (neg_log * i as f32 / half as f32).exp()).collect();
    let mut out = Vec::with_capacity(ts.len() * dim);
    for &tv in &ts {
        let args: Vec<f32> = freqs.iter().map(|f| tv * f).collect();
        out.extend(args.iter().map(|a| a.cos()));
        out.extend(args.iter().map(|a| a.sin()));
        if dim % 2 == 1 {
            out.push(0.0);
        }
    }
    Tensor::from_vec(out, (ts.len(), dim), t.device())
}

fn group_norm(vb: VarBuilder, channels: usize) -> Result<GroupNorm> {
    GroupNorm::load(vb, UNET_NORM_GROUPS, channels, UNET_NORM_EPS)
}

fn conv3(vb: VarBuilder, cin: usize, cout: usize) -> Result<Conv3d> {
    Conv3d::load(vb, cin, cout, [3; 3], Conv3dConfig::uniform(1, 1), true)
}

/// A 3×3×3 convolution wrapped in upstream's `zero_module`: a fresh one starts at zero, so a new
/// ResBlock is the identity and a new output head (ε̂, or the shift branch's G) predicts 0. A
/// checkpoint's values replace the zeros as for any other tensor.
fn zero_conv3(vb: VarBuilder, cin: usize, cout: usize) -> Result<Conv3d> {
    let zero = candle_nn::Init::Const(0.0);
    let weight = vb.get_with_hints((cout, cin, 3, 3, 3), "weight", zero)?;
    let bias = vb.get_with_hints(cout, "bias", zero)?;
    Ok(Conv3d::new(weight, Some(bias), Conv3dConfig::uniform(1, 1)))
}

/// `nn.Conv1d(cin, cout, 1)` over `(B, C, T)`: weight `(cout, cin, 1)`.
#[derive(Clone, Debug)]
struct PointwiseConv1d {
    weight: Tensor,
    bias: Tensor,
}

impl PointwiseConv1d {
    /// A fresh one starts as torch's `nn.Conv1d` does (weight and bias uniform in ±1/√cin), or at
    /// zero for `zero_module` layers (`start_at_zero`). Both at zero, as a bare `get` would leave
    /// `qkv` and `proj_out`, is a dead end: no gradient reaches either.
    fn load(vb: VarBuilder, cin: usize, cout: usize, start_at_zero: bool) -> Result<Self> {
        let bound = 1.0 / (cin as f64).sqrt();
        let init = if start_at_zero {
            candle_nn::Init::Const(0.0)
        } else {
            candle_nn::Init::Uniform { lo: -bound, up: bound }
        };
        let weight = vb.get_with_hints((cout, cin, 1), "weight", init)?.squeeze(2)?;
        let bias = vb.get_with_hints(cout, "bias", init)?;
        Ok(Self { weight, bias })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, t) = x.dims3()?;
        let rows = x.transpose(1, 2)?.contiguous()?.reshape((b * t, c))?;
        let y = rows.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)?;
        y.reshape((b, t, ()))?.transpose(1, 2)?.contiguous()
    }
}

/// Upstream `Downsample`/`Upsample` without convolution, as ResBlocks use them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resample {
    None,
    /// `AvgPool3d((1, 2, 2))`: odd sizes drop their last row (floor).
    Down,
    /// Nearest to `(D, 2H, 2W)`.
    Up,
}

impl Resample {
    fn apply(self, x: &Tensor) -> Result<Tensor> {
        let (b, c, d, h, w) = x.dims5()?;
        match self {
            Resample::None => Ok(x.clone()),
            Resample::Up => upsample_nearest3d(x, [d, 2 * h, 2 * w]),
            Resample::Down => {
                let (h2, w2) = (h / 2, w / 2);
                if h2 == 0 || w2 == 0 {
                    bail!("LDAE UNet: cannot halve a {h}×{w} plane")
                }
                let x = x.narrow(3, 0, 2 * h2)?.narrow(4, 0, 2 * w2)?.contiguous()?;
                x.reshape(vec![b, c, d, h2, 2, w2, 2])?.sum(6)?.sum(4)? * 0.25
            }
        }
    }
}

/// Upstream `ResBlock` (`emb_z == None`) and `ResBlockShift` (with the `emb_z_layers` modulation).
#[derive(Clone, Debug)]
struct ResBlock {
    in_norm: GroupNorm,
    in_conv: Conv3d,
    resample: Resample,
    emb: Linear,
    emb_z: Option<Linear>,
    out_norm: GroupNorm,
    out_conv: Conv3d,
    skip: Option<Conv3d>,
}

impl ResBlock {
    fn load(vb: VarBuilder, cin: usize, cout: usize, emb_dim: usize, resample: Resample, shift: bool) -> Result<Self> {
        let skip = if cin == cout {
            None
        } else {
            Some(Conv3d::load(
                vb.pp("skip_connection"),
                cin,
                cout,
                [1; 3],
                Conv3dConfig::default(),
                true,
            )?)
        };
        Ok(Self {
            in_norm: group_norm(vb.pp("in_layers.0"), cin)?,
            in_conv: conv3(vb.pp("in_layers.2"), cin, cout)?,
            resample,
            emb: candle_nn::linear(emb_dim, 2 * cout, vb.pp("emb_layers.1"))?,
            emb_z: if shift {
                Some(candle_nn::linear(emb_dim, 2 * cout, vb.pp("emb_z_layers.1"))?)
            } else {
                None
            },
            out_norm: group_norm(vb.pp("out_layers.0"), cout)?,
            out_conv: zero_conv3(vb.pp("out_layers.3"), cout, cout)?,
            skip,
        })
    }

    /// `[scale, shift]` of a `(B, E)` embedding, each `(B, C, 1, 1, 1)`.
    fn modulation(linear: &Linear, emb: &Tensor) -> Result<(Tensor, Tensor)> {
        let e = linear.forward(&emb.silu()?)?;
        let (b, two_c) = e.dims2()?;
        let e = e.reshape((b, two_c, 1, 1, 1))?;
        let c = two_c / 2;
        Ok((e.narrow(1, 0, c)?, e.narrow(1, c, c)?))
    }

    fn forward(&self, x: &Tensor, emb: &Tensor, emb_z: Option<&Tensor>) -> Result<Tensor> {
        let h = self.in_norm.forward(x)?.silu()?;
        let h = self.in_conv.forward(&self.resample.apply(&h)?)?;
        let x = self.resample.apply(x)?;
        let (scale, shift) = Self::modulation(&self.emb, emb)?;
        let mut h = self
            .out_norm
            .forward(&h)?
            .broadcast_mul(&(scale + 1.0)?)?
            .broadcast_add(&shift)?;
        if let Some(lin) = &self.emb_z {
            let Some(z) = emb_z else {
                bail!("LDAE ResBlockShift called without the semantic embedding")
            };
            let (z_scale, z_shift) = Self::modulation(lin, z)?;
            h = h.broadcast_mul(&(z_scale + 1.0)?)?.broadcast_add(&z_shift)?;
        }
        let h = self.out_conv.forward(&h.silu()?)?;
        let skip = match &self.skip {
            Some(conv) => conv.forward(&x)?,
            None => x,
        };
        skip + h
    }
}

/// Upstream `AttentionBlock`: GroupNorm → 1×1 qkv → softmax((q/⁴√C)·(k/⁴√C)) → 1×1 projection, residual.
#[derive(Clone, Debug)]
struct AttentionBlock {
    norm: GroupNorm,
    qkv: PointwiseConv1d,
    proj_out: PointwiseConv1d,
    heads: usize,
    new_order: bool,
}

impl AttentionBlock {
    fn load(vb: VarBuilder, channels: usize, cfg: &UNetConfig) -> Result<Self> {
        Ok(Self {
            norm: group_norm(vb.pp("norm"), channels)?,
            qkv: PointwiseConv1d::load(vb.pp("qkv"), channels, 3 * channels, false)?,
            // `zero_module(conv_nd(1, channels, channels, 1))` upstream.
            proj_out: PointwiseConv1d::load(vb.pp("proj_out"), channels, channels, true)?,
            heads: cfg.heads_for(channels).map_err(candle_core::Error::wrap)?,
            new_order: cfg.use_new_attention_order,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let (b, c) = (dims[0], dims[1]);
        let x = x.reshape((b, c, ()))?;
        let t = x.dim(2)?;
        let qkv = self.qkv.forward(&self.norm.forward(&x)?)?;
        let ch = c / self.heads;
        let bh = b * self.heads;
        // Legacy: (B, H·3·ch, T) → per head [q; k; v]. New: (B, 3·H·ch, T) → q, k, v, then heads.
        let (q, k, v) = if self.new_order {
            let part = |i: usize| qkv.narrow(1, i * c, c)?.reshape((bh, ch, t));
            (part(0)?, part(1)?, part(2)?)
        } else {
            let r = qkv.reshape((bh, 3 * ch, t))?;
            (r.narrow(1, 0, ch)?, r.narrow(1, ch, ch)?, r.narrow(1, 2 * ch, ch)?)
        };
        let scale = 1.0 / (ch as f64).sqrt().sqrt();
        let q = (q * scale)?.transpose(1, 2)?.contiguous()?; // (BH, T, ch)
        let k = (k * scale)?.contiguous()?; // (BH, ch, T)
        let scores = q.matmul(&k)?;
        // candle_nn's fused softmax has no backward: the composite one while training.
        let w = if scores.track_op() {
            candle_nn::ops::softmax(&scores, candle_core::D::Minus1)?
        } else {
            candle_nn::ops::softmax_last_dim(&scores)?
        }; // (BH, T, S)
        let a = v.contiguous()?.matmul(&w.t()?.contiguous()?)?; // (BH, ch, T)
        let h = self.proj_out.forward(&a.reshape((b, c, t))?)?;
        (x + h)?.reshape(dims)
    }
}

#[derive(Clone, Debug)]
enum Layer {
    Conv(Conv3d),
    Res(Box<ResBlock>),
    Attn(AttentionBlock),
}

/// Upstream `TimestepSequential`.
#[derive(Clone, Debug, Default)]
struct Sequential(Vec<Layer>);

impl Sequential {
    fn forward(&self, x: &Tensor, emb: &Tensor, emb_z: Option<&Tensor>) -> Result<Tensor> {
        let mut h = x.clone();
        for layer in &self.0 {
            h = match layer {
                Layer::Conv(c) => c.forward(&h)?,
                Layer::Res(r) => r.forward(&h, emb, emb_z)?,
                Layer::Attn(a) => a.forward(&h)?,
            };
        }
        Ok(h)
    }
}

/// The encoder half and the channel bookkeeping both decoders need.
#[derive(Clone, Debug)]
struct InputBlocks {
    blocks: Vec<Sequential>,
    /// Channels of every stored skip feature, in push order.
    skip_channels: Vec<usize>,
    /// Channels and downsampling rate after the last input block.
    channels: usize,
    ds: usize,
}

impl InputBlocks {
    fn load(vb: VarBuilder, cfg: &UNetConfig) -> Result<Self> {
        let emb_dim = cfg.time_embed_dim();
        let widths = cfg.level_channels();
        let mut ch = widths[0];
        let mut blocks = vec![Sequential(vec![Layer::Conv(conv3(
            vb.pp("0.0"),
            cfg.input_channel,
            ch,
        )?)])];
        let mut skip_channels = vec![ch];
        let mut ds = 1;
        for (level, &width) in widths.iter().enumerate() {
            for _ in 0..cfg.num_residual_blocks_of_a_block {
                let vbi = vb.pp(blocks.len().to_string());
                let mut layers = vec![Layer::Res(Box::new(ResBlock::load(
                    vbi.pp("0"),
                    ch,
                    width,
                    emb_dim,
                    Resample::None,
                    false,
                )?))];
                ch = width;
                if cfg.attention_at(ds) {
                    layers.push(Layer::Attn(AttentionBlock::load(vbi.pp("1"), ch, cfg)?));
                }
                blocks.push(Sequential(layers));
                skip_channels.push(ch);
            }
            if level + 1 != widths.len() {
                let vbi = vb.pp(blocks.len().to_string());
                blocks.push(Sequential(vec![Layer::Res(Box::new(ResBlock::load(
                    vbi.pp("0"),
                    ch,
                    ch,
                    emb_dim,
                    Resample::Down,
                    false,
                )?))]));
                skip_channels.push(ch);
                ds *= 2;
            }
        }
        Ok(Self {
            blocks,
            skip_channels,
            channels: ch,
            ds,
        })
    }

    /// The innermost features and every block's output (the skips).
    fn forward(&self, x: &Tensor, emb: &Tensor) -> Result<(Tensor, Vec<Tensor>)> {
        let mut hs = Vec::with_capacity(self.blocks.len());
        let mut h = x.clone();
        for block in &self.blocks {
            h = block.forward(&h, emb, None)?;
            hs.push(h.clone());
        }
        Ok((h, hs))
    }
}

/// A middle block, the output blocks and the output head: the ε decoder (`middle_block`, `output_blocks`,
/// `out`) or, with `shift`, the gradient estimator (`shift_middle_block`, `shift_output_blocks`, `shift_out`).
#[derive(Clone, Debug)]
struct DecoderHalf {
    middle: Sequential,
    blocks: Vec<Sequential>,
    out_norm: GroupNorm,
    out_conv: Conv3d,
}

impl DecoderHalf {
    fn load(vb: VarBuilder, cfg: &UNetConfig, enc: &InputBlocks, shift: bool, out_channels: usize) -> Result<Self> {
        let emb_dim = cfg.time_embed_dim();
        let prefix = if shift { "shift_" } else { "" };
        let mut ch = enc.channels;
        let vbm = vb.pp(format!("{prefix}middle_block"));
        let middle = Sequential(vec![
            Layer::Res(Box::new(ResBlock::load(
                vbm.pp("0"),
                ch,
                ch,
                emb_dim,
                Resample::None,
                shift,
            )?)),
            Layer::Attn(AttentionBlock::load(vbm.pp("1"), ch, cfg)?),
            Layer::Res(Box::new(ResBlock::load(
                vbm.pp("2"),
                ch,
                ch,
                emb_dim,
                Resample::None,
                shift,
            )?)),
        ]);
        let vbo = vb.pp(format!("{prefix}output_blocks"));
        let mut skips = enc.skip_channels.clone();
        let mut ds = enc.ds;
        let mut blocks = Vec::new();
        let widths = cfg.level_channels();
        for (level, &width) in widths.iter().enumerate().rev() {
            for i in 0..=cfg.num_residual_blocks_of_a_block {
                let Some(ich) = skips.pop() else {
                    bail!("LDAE UNet: skip features ran out while building the output blocks")
                };
                let vbi = vbo.pp(blocks.len().to_string());
                let mut layers = vec![Layer::Res(Box::new(ResBlock::load(
                    vbi.pp("0"),
                    ch + ich,
                    width,
                    emb_dim,
                    Resample::None,
                    shift,
                )?))];
                ch = width;
                if cfg.attention_at(ds) {
                    layers.push(Layer::Attn(AttentionBlock::load(vbi.pp("1"), ch, cfg)?));
                }
                if level > 0 && i == cfg.num_residual_blocks_of_a_block {
                    let idx = layers.len().to_string();
                    layers.push(Layer::Res(Box::new(ResBlock::load(
                        vbi.pp(idx),
                        ch,
                        ch,
                        emb_dim,
                        Resample::Up,
                        shift,
                    )?)));
                    ds /= 2;
                }
                blocks.push(Sequential(layers));
            }
        }
        let vbh = vb.pp(format!("{prefix}out"));
        Ok(Self {
            middle,
            blocks,
            out_norm: group_norm(vbh.pp("0"), ch)?,
            out_conv: zero_conv3(vbh.pp("2"), widths[0], out_channels)?,
        })
    }

    fn forward(&self, h: &Tensor, hs: &[Tensor], emb: &Tensor, emb_z: Option<&Tensor>) -> Result<Tensor> {
        if hs.len() != self.blocks.len() {
            bail!(
                "LDAE UNet: {} skip features for {} output blocks",
                hs.len(),
                self.blocks.len()
            )
        }
        let mut h = self.middle.forward(h, emb, emb_z)?;
        for (block, skip) in self.blocks.iter().zip(hs.iter().rev()) {
            h = block.forward(&Tensor::cat(&[&h, skip], 1)?, emb, emb_z)?;
        }
        self.out_conv.forward(&self.out_norm.forward(&h)?.silu()?)
    }
}

/// `time_embed`: Linear(base → 4·base), SiLU, Linear(4·base → 4·base) over the cosine-first sinusoid.
#[derive(Clone, Debug)]
struct TimeEmbed {
    lin1: Linear,
    lin2: Linear,
    dim: usize,
}

impl TimeEmbed {
    fn load(vb: VarBuilder, cfg: &UNetConfig) -> Result<Self> {
        let (base, emb) = (cfg.base_channel, cfg.time_embed_dim());
        Ok(Self {
            lin1: candle_nn::linear(base, emb, vb.pp("0"))?,
            lin2: candle_nn::linear(emb, emb, vb.pp("2"))?,
            dim: base,
        })
    }

    fn forward(&self, t: &Tensor, dtype: DType) -> Result<Tensor> {
        let s = timestep_embedding(t, self.dim)?.to_dtype(dtype)?;
        self.lin2.forward(&self.lin1.forward(&s)?.silu()?)
    }
}

fn check_input(x: &Tensor, t: &Tensor, channels: usize) -> Result<()> {
    let d = x.dims();
    if d.len() != 5 || d[1] != channels || d.contains(&0) {
        bail!("LDAE UNet: expected a non-empty (B, {channels}, D, H, W) latent, got {d:?}")
    }
    if t.dims() != [d[0]] {
        bail!("LDAE UNet: expected {} timesteps, got shape {:?}", d[0], t.dims())
    }
    Ok(())
}

/// PDAE's unconditional `UNet` (LDAE's pretrained latent denoiser; also the frozen half of the decoder).
#[derive(Clone, Debug)]
pub struct UNet {
    time_embed: TimeEmbed,
    input: InputBlocks,
    decoder: DecoderHalf,
    cfg: UNetConfig,
}

impl UNet {
    /// Builds the model from `vb` rooted at the state dict's top level (`time_embed.…`, `input_blocks.…`).
    pub fn load(vb: VarBuilder, cfg: &UNetConfig) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::wrap)?;
        let input = InputBlocks::load(vb.pp("input_blocks"), cfg)?;
        let decoder = DecoderHalf::load(vb.clone(), cfg, &input, false, cfg.output_channel())?;
        Ok(Self {
            time_embed: TimeEmbed::load(vb.pp("time_embed"), cfg)?,
            input,
            decoder,
            cfg: cfg.clone(),
        })
    }

    /// Loads the ε network from a checkpoint: a UNet state dict, or the official `decoder.pth`, whose
    /// shift-branch tensors are then left unused (listed in the report). Missing or misshapen tensors
    /// are errors naming every key.
    pub fn from_checkpoint(
        path: &Path,
        opts: &LoadOptions,
        cfg: &UNetConfig,
        dtype: DType,
        device: &Device,
    ) -> std::result::Result<(Self, LoadReport), UNetError> {
        cfg.validate()?;
        let ckpt = load_checkpoint(path, opts)?;
        Ok(build_model(&ckpt, dtype, device, false, |vb| Self::load(vb, cfg))?)
    }

    pub fn config(&self) -> &UNetConfig {
        &self.cfg
    }

    /// ε̂ (and the variance values with `learn_sigma`) for latents `x` `(B, C, D, H, W)` at timesteps `t`
    /// `(B,)` (the original, un-respaced indices).
    pub fn forward(&self, x: &Tensor, t: &Tensor) -> Result<Tensor> {
        check_input(x, t, self.cfg.input_channel)?;
        let emb = self.time_embed.forward(t, x.dtype())?;
        let (h, hs) = self.input.forward(x, &emb)?;
        self.decoder.forward(&h, &hs, &emb, None)
    }
}

impl Denoiser for UNet {
    /// The model is unconditional: `cond` is not used.
    fn predict(&self, x_t: &Tensor, t: &Tensor, _cond: Option<&Tensor>) -> Result<Tensor> {
        self.forward(x_t, t)
    }
}

/// PDAE's `ShiftUNet`: the frozen UNet plus the gradient-estimator branch G conditioned on `y_sem`.
/// `forward` returns (ε̂, G); LDAE's sampler uses ε̂ − √(1−ᾱ)·G
/// ([`crate::core::diffusion::Shift::FromDenoiser`]).
#[derive(Clone, Debug)]
pub struct ShiftUNet {
    unet: UNet,
    label_emb: Linear,
    shift: DecoderHalf,
    latent_dim: usize,
}

impl ShiftUNet {
    /// `latent_dim` is the semantic code's width (the encoder's `emb_chans`, 768 in LDAE).
    pub fn load(vb: VarBuilder, cfg: &UNetConfig, latent_dim: usize) -> Result<Self> {
        if latent_dim == 0 {
            bail!("LDAE ShiftUNet: latent_dim must be positive")
        }
        let unet = UNet::load(vb.clone(), cfg)?;
        let shift = DecoderHalf::load(vb.clone(), cfg, &unet.input, true, cfg.input_channel)?;
        Ok(Self {
            label_emb: candle_nn::linear(latent_dim, cfg.time_embed_dim(), vb.pp("label_emb"))?,
            unet,
            shift,
            latent_dim,
        })
    }

    /// Loads the official `decoder.pth` (or a conversion), requiring every tensor and no other.
    pub fn from_checkpoint(
        path: &Path,
        opts: &LoadOptions,
        cfg: &UNetConfig,
        latent_dim: usize,
        dtype: DType,
        device: &Device,
    ) -> std::result::Result<(Self, LoadReport), UNetError> {
        cfg.validate()?;
        let ckpt = load_checkpoint(path, opts)?;
        Ok(build_model(&ckpt, dtype, device, true, |vb| {
            Self::load(vb, cfg, latent_dim)
        })?)
    }

    /// The ε network alone.
    pub fn unet(&self) -> &UNet {
        &self.unet
    }

    pub fn latent_dim(&self) -> usize {
        self.latent_dim
    }

    /// (ε̂, G) for latents `x` `(B, C, D, H, W)`, timesteps `t` `(B,)` and semantic codes `y` `(B, latent_dim)`.
    pub fn forward(&self, x: &Tensor, t: &Tensor, y: &Tensor) -> Result<(Tensor, Tensor)> {
        check_input(x, t, self.unet.cfg.input_channel)?;
        if y.dims() != [x.dim(0)?, self.latent_dim] {
            bail!(
                "LDAE ShiftUNet: expected a ({}, {}) semantic code, got {:?}",
                x.dim(0)?,
                self.latent_dim,
                y.dims()
            )
        }
        let (emb, h, hs, eps) = self.trunk(x, t)?;
        let z = self.label_emb.forward(&y.to_dtype(x.dtype())?)?;
        let g = self.shift.forward(&h, &hs, &emb, Some(&z))?;
        Ok((eps, g))
    }

    /// Everything of a forward pass that does not read the semantic code: the time embedding, the
    /// input half's output and skips, and ε̂ (inputs already checked).
    fn trunk(&self, x: &Tensor, t: &Tensor) -> Result<(Tensor, Tensor, Vec<Tensor>, Tensor)> {
        let emb = self.unet.time_embed.forward(t, x.dtype())?;
        let (h, hs) = self.unet.input.forward(x, &emb)?;
        let eps = self.unet.decoder.forward(&h, &hs, &emb, None)?;
        Ok((emb, h, hs, eps))
    }

    /// ε̂ `(1, …)` and one G per code, `(K, …)`, for a single latent `x` `(1, C, D, H, W)` at one
    /// timestep `t` `(1,)` and codes `ys` `(K, latent_dim)`. The same as [`Self::forward`] once per
    /// code, but the ε network and the input half shared by both branches run once: only the shift
    /// branch reads the code.
    pub fn forward_codes(&self, x: &Tensor, t: &Tensor, ys: &Tensor) -> Result<(Tensor, Tensor)> {
        check_input(x, t, self.unet.cfg.input_channel)?;
        if x.dim(0)? != 1 {
            bail!(
                "LDAE ShiftUNet: forward_codes takes one latent, got a batch of {}",
                x.dim(0)?
            )
        }
        let (k, dim) = ys.dims2()?;
        if k == 0 || dim != self.latent_dim {
            bail!(
                "LDAE ShiftUNet: expected (K ≥ 1, {}) semantic codes, got {:?}",
                self.latent_dim,
                ys.dims()
            )
        }
        let (emb, h, hs, eps) = self.trunk(x, t)?;
        let z = self.label_emb.forward(&ys.to_dtype(x.dtype())?)?;
        let per_code = |v: &Tensor| -> Result<Tensor> { Tensor::cat(&vec![v; k], 0) };
        let hs = hs.iter().map(per_code).collect::<Result<Vec<_>>>()?;
        let g = self.shift.forward(&per_code(&h)?, &hs, &per_code(&emb)?, Some(&z))?;
        Ok((eps, g))
    }
}

impl Denoiser for ShiftUNet {
    /// ε̂ only (the UNet half; `cond` is not needed).
    fn predict(&self, x_t: &Tensor, t: &Tensor, _cond: Option<&Tensor>) -> Result<Tensor> {
        self.unet.forward(x_t, t)
    }

    /// (ε̂, G) with `cond` = y_sem `(B, latent_dim)`, which is required.
    fn predict_with_shift(&self, x_t: &Tensor, t: &Tensor, cond: Option<&Tensor>) -> Result<(Tensor, Option<Tensor>)> {
        let Some(y) = cond else {
            bail!("LDAE ShiftUNet: the gradient estimator needs the semantic code y_sem as the condition")
        };
        let (eps, g) = self.forward(x_t, t, y)?;
        Ok((eps, Some(g)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_attention_starts_with_qkv_live_and_proj_out_at_zero() {
        let params = crate::core::train::SeededParams::new(2);
        let vb = params.var_builder(candle_core::DType::F32, &Device::Cpu);
        let qkv = PointwiseConv1d::load(vb.pp("qkv"), 8, 24, false).unwrap();
        let proj = PointwiseConv1d::load(vb.pp("proj_out"), 8, 8, true).unwrap();
        let max = |t: &Tensor| t.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        let bound = 1.0 / 8f32.sqrt();
        assert!(max(&qkv.weight) > 0.5 * bound && max(&qkv.weight) <= bound);
        assert!(max(&qkv.bias) > 0.0);
        assert_eq!((max(&proj.weight), max(&proj.bias)), (0.0, 0.0));
    }

    #[test]
    fn a_fresh_shift_unet_predicts_zero_as_upstream_zero_module_convs_make_it() {
        let params = crate::core::train::SeededParams::new(3);
        let vb = params.var_builder(candle_core::DType::F32, &Device::Cpu);
        let cfg = UNetConfig {
            base_channel: 32,
            channel_multiplier: vec![1, 2],
            num_residual_blocks_of_a_block: 1,
            attention_resolutions: vec![],
            num_heads: 1,
            dropout: 0.0,
            ..UNetConfig::default()
        };
        let net = ShiftUNet::load(vb, &cfg, 8).unwrap();
        let x = Tensor::randn(0f32, 1.0, (1, cfg.input_channel, 2, 4, 4), &Device::Cpu).unwrap();
        let t = Tensor::new(&[500f32], &Device::Cpu).unwrap();
        let y = Tensor::randn(0f32, 1.0, (1, 8), &Device::Cpu).unwrap();
        let (eps, g) = net.forward(&x, &t, &y).unwrap();
        let max = |t: &Tensor| t.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!((max(&eps), max(&g)), (0.0, 0.0));
        // Only the output heads and the ResBlocks' last convolutions start at zero: the rest is live,
        // so one step of training moves the heads off zero.
        let h = net
            .unet
            .input
            .forward(&x, &net.unet.time_embed.forward(&t, DType::F32).unwrap())
            .unwrap()
            .0;
        assert!(max(&h) > 0.0);
    }

    #[test]
    fn sinusoid_puts_cosine_first() {
        let t = Tensor::new(&[0f32, 2.0], &Device::Cpu).unwrap();
        let e = timestep_embedding(&t, 5).unwrap().to_vec2::<f32>().unwrap();
        // t = 0: cos = 1, sin = 0, then the zero pad column.
        assert_eq!(e[0], vec![1.0, 1.0, 0.0, 0.0, 0.0]);
        // First frequency is exactly 1.
        assert!((e[1][0] - 2f32.cos()).abs() < 1e-7 && (e[1][2] - 2f32.sin()).abs() < 1e-7);
        assert_eq!(e[1][4], 0.0);
    }

    #[test]
    fn resampling_touches_only_the_last_two_axes() {
        let x = Tensor::arange(0f32, 2.0 * 3.0 * 5.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 2, 3, 5))
            .unwrap();
        let down = Resample::Down.apply(&x).unwrap();
        assert_eq!(down.dims(), [1, 1, 2, 1, 2]);
        // Mean of rows 0-1, columns 0-1 of the first slice: (0 + 1 + 5 + 6) / 4.
        assert_eq!(down.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0], 3.0);
        let up = Resample::Up.apply(&down).unwrap();
        assert_eq!(up.dims(), [1, 1, 2, 2, 4]);
    }
}
