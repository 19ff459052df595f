//! The 3D-aware autoencoder at toy scale: image → 2D KL latent Z → triplane (paper §3.1).
//!
//! Encoder: a small FPN-style conv net. `stages` stride-2 3×3 convs (SiLU) take the image down
//! to `image_size / 2^stages`; a 1×1 lateral conv reads the stage at the latent level and one
//! reads the deepest stage, the deepest is upsampled (nearest, ×2 per level) and added, and a 3×3
//! head turns the merge into the KL posterior's mean and log-variance (LDM style: display and
//! inference use the mean, training samples). Decoder: a 1×1 projection of Z to `d_model`
//! tokens plus a learned positional embedding, `blocks` pre-norm transformer blocks
//! (self-attention + MLP), then nearest ×2 upsampling + 3×3 conv (SiLU) until the triplane
//! resolution and a 3×3 conv to `3·C` channels, read as the `(3, C, R, R)` planes xy, xz, yz.
//! EG3D's [`OsgDecoder`] rides along under `osg.` so one file holds the whole model.
//!
//! Keys (ours; the paper publishes none). `i` counts encoder stages, `j` upsampling stages, `k`
//! transformer blocks; `E = enc_channels`, `F = fpn_channels`, `Zc = latent_channels`,
//! `D = d_model`, `T = latent_size²`:
//!
//! | key | shape |
//! |---|---|
//! | `encoder.stages.{i}.weight` / `.bias` | `(E[i], E[i−1] or 3, 3, 3)` / `(E[i],)` |
//! | `encoder.lateral.{0,1}.weight` / `.bias` | `(F, E[latent level or deepest], 1, 1)` / `(F,)` |
//! | `encoder.head.weight` / `.bias` | `(2·Zc, F, 3, 3)` / `(2·Zc,)` (mean first, then logvar) |
//! | `decoder.proj_in.weight` / `.bias` | `(D, Zc)` / `(D,)` |
//! | `decoder.pos_embed` | `(T, D)` |
//! | `decoder.blocks.{k}.norm{1,2}.weight` / `.bias` | `(D,)` |
//! | `decoder.blocks.{k}.attn.qkv.weight` / `.bias` | `(3·D, D)` / `(3·D,)` |
//! | `decoder.blocks.{k}.attn.proj.weight` / `.bias` | `(D, D)` / `(D,)` |
//! | `decoder.blocks.{k}.mlp.fc1.weight` / `.bias` | `(4·D, D)` / `(4·D,)` |
//! | `decoder.blocks.{k}.mlp.fc2.weight` / `.bias` | `(D, 4·D)` / `(D,)` |
//! | `decoder.up.{j}.weight` / `.bias` | `(U, D or U, 3, 3)` / `(U,)`, `U = up_channels` |
//! | `decoder.out.weight` / `.bias` | `(3·C, U, 3, 3)` / `(3·C,)` |
//! | `osg.net.{0,2}.*` | [`OsgDecoder`] with `n_features = C` |

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, LayerNorm, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::{DecoderConfig, OsgDecoder, Triplane, WildFusionError};

/// The autoencoder's sizes; stored in the model manifest's `[config]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoencoderConfig {
    /// Square input side in pixels (RGB in `[0, 1]`).
    pub image_size: usize,
    /// Channels of each stride-2 encoder stage.
    pub enc_channels: Vec<usize>,
    /// How many stride-2 stages sit above the latent (`latent_size = image_size / 2^this`);
    /// the stages below it only feed the FPN's top-down merge.
    pub latent_level: usize,
    pub fpn_channels: usize,
    /// Channels of the KL latent Z.
    pub latent_channels: usize,
    pub d_model: usize,
    pub heads: usize,
    pub blocks: usize,
    pub up_channels: usize,
    /// Triplane channels `C`.
    pub triplane_channels: usize,
    /// Triplane resolution `R`.
    pub triplane_resolution: usize,
    /// Side of the cube the triplane covers (EG3D's `box_warp`).
    pub box_size: f32,
    /// The triplane MLP's hidden width (EG3D: 64).
    pub osg_hidden: usize,
}

impl Default for AutoencoderConfig {
    fn default() -> Self {
        Self {
            image_size: 64,
            enc_channels: vec![16, 32, 64, 64],
            latent_level: 3,
            fpn_channels: 64,
            latent_channels: 4,
            d_model: 64,
            heads: 4,
            blocks: 1,
            up_channels: 32,
            triplane_channels: 16,
            triplane_resolution: 32,
            box_size: 2.0,
            osg_hidden: 64,
        }
    }
}

impl AutoencoderConfig {
    /// Side of the latent Z.
    pub fn latent_size(&self) -> usize {
        self.image_size >> self.latent_level
    }

    /// How many ×2 upsampling stages take the latent to the triplane resolution.
    pub fn up_stages(&self) -> usize {
        (self.triplane_resolution / self.latent_size()).trailing_zeros() as usize
    }

    /// The triplane MLP's config.
    pub fn osg(&self) -> DecoderConfig {
        DecoderConfig {
            n_features: self.triplane_channels,
            hidden_dim: self.osg_hidden,
            decoder_output_dim: 3,
            decoder_lr_mul: 1.0,
        }
    }

    /// Checks that the sizes fit together; says which one does not.
    pub fn validate(&self) -> Result<(), WildFusionError> {
        let bad = |m: String| Err(WildFusionError::Config(m));
        let positive = [
            ("image_size", self.image_size),
            ("fpn_channels", self.fpn_channels),
            ("latent_channels", self.latent_channels),
            ("d_model", self.d_model),
            ("heads", self.heads),
            ("up_channels", self.up_channels),
            ("triplane_channels", self.triplane_channels),
            ("triplane_resolution", self.triplane_resolution),
            ("osg_hidden", self.osg_hidden),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return bad(format!("autoencoder config: {name} must be positive"));
        }
        if self.enc_channels.is_empty() || self.enc_channels.contains(&0) {
            return bad(format!(
                "autoencoder config: enc_channels must be non-empty and positive, got {:?}",
                self.enc_channels
            ));
        }
        if self.latent_level == 0 || self.latent_level > self.enc_channels.len() {
            return bad(format!(
                "autoencoder config: latent_level must be in 1..={}, got {}",
                self.enc_channels.len(),
                self.latent_level
            ));
        }
        let deepest = 1usize << self.enc_channels.len();
        if !self.image_size.is_multiple_of(deepest) {
            return bad(format!(
                "autoencoder config: image_size {} must be divisible by 2^{} (one halving per stage)",
                self.image_size,
                self.enc_channels.len()
            ));
        }
        if !self.d_model.is_multiple_of(self.heads) {
            return bad(format!(
                "autoencoder config: d_model {} must be divisible by heads {}",
                self.d_model, self.heads
            ));
        }
        let ls = self.latent_size();
        if self.triplane_resolution < ls
            || !self.triplane_resolution.is_multiple_of(ls)
            || !(self.triplane_resolution / ls).is_power_of_two()
        {
            return bad(format!(
                "autoencoder config: triplane_resolution {} must be the latent size {ls} times a power of two",
                self.triplane_resolution
            ));
        }
        if !(self.box_size.is_finite() && self.box_size > 0.0) {
            return bad(format!(
                "autoencoder config: box_size must be positive, got {}",
                self.box_size
            ));
        }
        Ok(())
    }
}

/// The KL posterior `N(mean, exp(logvar))` over Z, each `(B, Zc, h, w)`.
#[derive(Clone, Debug)]
pub struct Posterior {
    pub mean: Tensor,
    pub logvar: Tensor,
}

impl Posterior {
    /// `mean + exp(logvar/2)·noise` with the caller's standard-normal `noise` (so the caller's
    /// seeded generator decides the draw).
    pub fn sample_with(&self, noise: &Tensor) -> Result<Tensor, WildFusionError> {
        Ok((&self.mean + (self.logvar.clamp(-30.0, 20.0)? * 0.5)?.exp()?.mul(noise)?)?)
    }

    /// `KL(q ‖ N(0, I))` summed over the latent, averaged over the batch (LDM's `kl()`).
    pub fn kl(&self) -> Result<Tensor, WildFusionError> {
        let lv = self.logvar.clamp(-30.0, 20.0)?;
        let per = ((self.mean.sqr()? + lv.exp()?)? - 1.0)?.sub(&lv)?;
        let b = self.mean.dims()[0] as f64;
        Ok(((per.sum_all()? * 0.5)? / b)?)
    }
}

fn conv(vb: VarBuilder, cin: usize, cout: usize, k: usize, stride: usize) -> candle_core::Result<Conv2d> {
    let cfg = Conv2dConfig {
        padding: k / 2,
        stride,
        ..Default::default()
    };
    candle_nn::conv2d(cin, cout, k, cfg, vb)
}

struct Encoder {
    stages: Vec<Conv2d>,
    lateral_latent: Conv2d,
    lateral_deep: Conv2d,
    head: Conv2d,
    latent_level: usize,
}

impl Encoder {
    fn load(vb: VarBuilder, cfg: &AutoencoderConfig) -> candle_core::Result<Self> {
        let mut stages = Vec::new();
        let mut cin = 3;
        for (i, &c) in cfg.enc_channels.iter().enumerate() {
            stages.push(conv(vb.pp("stages").pp(i.to_string()), cin, c, 3, 2)?);
            cin = c;
        }
        let lat = vb.pp("lateral");
        let at = cfg.enc_channels[cfg.latent_level - 1];
        let deep = *cfg.enc_channels.last().expect("validated non-empty");
        Ok(Self {
            stages,
            lateral_latent: conv(lat.pp("0"), at, cfg.fpn_channels, 1, 1)?,
            lateral_deep: conv(lat.pp("1"), deep, cfg.fpn_channels, 1, 1)?,
            head: conv(vb.pp("head"), cfg.fpn_channels, 2 * cfg.latent_channels, 3, 1)?,
            latent_level: cfg.latent_level,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let mut h = x.clone();
        let mut at_latent = None;
        for (i, s) in self.stages.iter().enumerate() {
            h = s.forward(&h)?.silu()?;
            if i + 1 == self.latent_level {
                at_latent = Some(h.clone());
            }
        }
        let at_latent = at_latent.expect("latent_level validated within the stages");
        let (_, _, lh, lw) = at_latent.dims4()?;
        // Top-down merge: the deepest stage carries the most context; nearest upsampling brings
        // it to the latent level (a no-op when the latent is the deepest stage).
        let deep = self.lateral_deep.forward(&h)?.upsample_nearest2d(lh, lw)?;
        let merged = (self.lateral_latent.forward(&at_latent)? + deep)?;
        let out = self.head.forward(&merged)?;
        let zc = out.dims()[1] / 2;
        Ok((out.narrow(1, 0, zc)?, out.narrow(1, zc, zc)?))
    }
}

struct Block {
    norm1: LayerNorm,
    qkv: Linear,
    proj: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
}

impl Block {
    fn load(vb: VarBuilder, d: usize, heads: usize) -> candle_core::Result<Self> {
        Ok(Self {
            norm1: candle_nn::layer_norm(d, 1e-5, vb.pp("norm1"))?,
            qkv: candle_nn::linear(d, 3 * d, vb.pp("attn").pp("qkv"))?,
            proj: candle_nn::linear(d, d, vb.pp("attn").pp("proj"))?,
            norm2: candle_nn::layer_norm(d, 1e-5, vb.pp("norm2"))?,
            fc1: candle_nn::linear(d, 4 * d, vb.pp("mlp").pp("fc1"))?,
            fc2: candle_nn::linear(4 * d, d, vb.pp("mlp").pp("fc2"))?,
            heads,
        })
    }

    /// `x`: `(B, T, D)`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let hd = d / self.heads;
        let qkv = self
            .qkv
            .forward(&self.norm1.forward(x)?)?
            .reshape((b, t, 3, self.heads, hd))?
            .permute((2, 0, 3, 1, 4))?; // (3, B, H, T, hd)
        let q = qkv.get(0)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let att = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?;
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        let y = att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))?;
        let x = (x + self.proj.forward(&y)?)?;
        let m = self
            .fc2
            .forward(&self.fc1.forward(&self.norm2.forward(&x)?)?.gelu_erf()?)?;
        x + m
    }
}

struct Decoder {
    proj_in: Linear,
    pos_embed: Tensor,
    blocks: Vec<Block>,
    up: Vec<Conv2d>,
    out: Conv2d,
}

impl Decoder {
    fn load(vb: VarBuilder, cfg: &AutoencoderConfig) -> candle_core::Result<Self> {
        let d = cfg.d_model;
        let tokens = cfg.latent_size() * cfg.latent_size();
        let pos_embed = vb.get_with_hints(
            (tokens, d),
            "pos_embed",
            candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 },
        )?;
        let blocks = (0..cfg.blocks)
            .map(|k| Block::load(vb.pp("blocks").pp(k.to_string()), d, cfg.heads))
            .collect::<candle_core::Result<_>>()?;
        let mut up = Vec::new();
        let mut cin = d;
        for j in 0..cfg.up_stages() {
            up.push(conv(vb.pp("up").pp(j.to_string()), cin, cfg.up_channels, 3, 1)?);
            cin = cfg.up_channels;
        }
        Ok(Self {
            proj_in: candle_nn::linear(cfg.latent_channels, d, vb.pp("proj_in"))?,
            pos_embed,
            blocks,
            up,
            out: conv(vb.pp("out"), cin, 3 * cfg.triplane_channels, 3, 1)?,
        })
    }

    /// `z`: `(B, Zc, h, w)` → planes `(B, 3, C, R, R)`.
    fn forward(&self, z: &Tensor, c: usize) -> candle_core::Result<Tensor> {
        let (b, zc, h, w) = z.dims4()?;
        let tokens = z.reshape((b, zc, h * w))?.transpose(1, 2)?;
        let mut x = self.proj_in.forward(&tokens)?.broadcast_add(&self.pos_embed)?;
        for blk in &self.blocks {
            x = blk.forward(&x)?;
        }
        let d = x.dims()[2];
        let mut y = x.transpose(1, 2)?.reshape((b, d, h, w))?;
        for u in &self.up {
            let (_, _, yh, yw) = y.dims4()?;
            y = u.forward(&y.upsample_nearest2d(2 * yh, 2 * yw)?)?.silu()?;
        }
        let y = self.out.forward(&y)?;
        let (_, _, r, _) = y.dims4()?;
        y.reshape((b, 3, c, r, r))
    }
}

/// The toy WildFusion autoencoder: encoder, latent → triplane decoder and the triplane MLP.
pub struct Autoencoder {
    cfg: AutoencoderConfig,
    encoder: Encoder,
    decoder: Decoder,
    osg: OsgDecoder,
}

impl Autoencoder {
    /// Builds the model from `vb` (keys in the module docs). With a `VarMap`-backed builder the
    /// parameters are created with candle's default initialisations, which is how training starts.
    pub fn load(vb: VarBuilder, cfg: &AutoencoderConfig) -> Result<Self, WildFusionError> {
        cfg.validate()?;
        Ok(Self {
            cfg: cfg.clone(),
            encoder: Encoder::load(vb.pp("encoder"), cfg)?,
            decoder: Decoder::load(vb.pp("decoder"), cfg)?,
            osg: OsgDecoder::load(vb.pp("osg"), &cfg.osg())?,
        })
    }

    /// Loads a checkpoint strictly: a missing, unexpected or mis-shaped key is an error that names it.
    pub fn load_file(
        path: &std::path::Path,
        cfg: &AutoencoderConfig,
        device: &Device,
    ) -> Result<Self, WildFusionError> {
        use crate::core::weights::{LoadOptions, build_model, load_checkpoint};
        cfg.validate()?;
        let ckpt = load_checkpoint(path, &LoadOptions::default())?;
        let (model, _) = build_model(&ckpt, DType::F32, device, true, |vb| {
            Self::load(vb, cfg).map_err(|e| match e {
                WildFusionError::Candle(c) => c,
                other => candle_core::Error::Msg(other.to_string()),
            })
        })?;
        Ok(model)
    }

    pub fn config(&self) -> &AutoencoderConfig {
        &self.cfg
    }

    /// The triplane MLP that reads this model's triplanes.
    pub fn osg(&self) -> &OsgDecoder {
        &self.osg
    }

    /// Images `(B, 3, S, S)` in `[0, 1]` → the KL posterior over Z. The encoder sees `2·x − 1`.
    pub fn encode(&self, images: &Tensor) -> Result<Posterior, WildFusionError> {
        let s = self.cfg.image_size;
        match images.dims() {
            &[_, 3, h, w] if h == s && w == s => {}
            d => {
                return Err(WildFusionError::Shape(format!(
                    "the encoder wants (B, 3, {s}, {s}) images, got {d:?}"
                )));
            }
        }
        let x = ((images * 2.0)? - 1.0)?;
        let (mean, logvar) = self.encoder.forward(&x)?;
        Ok(Posterior { mean, logvar })
    }

    /// Z `(B, Zc, h, w)` → planes `(B, 3, C, R, R)` (kept as one tensor so gradients flow).
    pub fn decode_planes(&self, z: &Tensor) -> Result<Tensor, WildFusionError> {
        let (ls, zc) = (self.cfg.latent_size(), self.cfg.latent_channels);
        match z.dims() {
            &[_, c, h, w] if c == zc && h == ls && w == ls => {}
            d => {
                return Err(WildFusionError::Shape(format!(
                    "the decoder wants (B, {zc}, {ls}, {ls}) latents, got {d:?}"
                )));
            }
        }
        Ok(self.decoder.forward(z, self.cfg.triplane_channels)?)
    }

    /// Z → one [`Triplane`] per batch item, for the renderer and the tab.
    pub fn decode(&self, z: &Tensor) -> Result<Vec<Triplane>, WildFusionError> {
        let planes = self.decode_planes(z)?;
        (0..planes.dims()[0])
            .map(|i| Triplane::new(planes.get(i)?.contiguous()?, self.cfg.box_size))
            .collect()
    }

    /// One image `(3, S, S)` → its posterior mean Z `(1, Zc, h, w)` (what display and
    /// interpolation use, as in LDM).
    pub fn encode_mean(&self, image: &Tensor) -> Result<Tensor, WildFusionError> {
        Ok(self.encode(&image.unsqueeze(0)?)?.mean)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::VarMap;

    fn max_abs_diff(a: Tensor, b: Tensor) -> f32 {
        crate::core::ops::max_abs_diff(&a, &b).unwrap()
    }

    fn small() -> AutoencoderConfig {
        AutoencoderConfig {
            image_size: 32,
            enc_channels: vec![8, 8, 16],
            latent_level: 2,
            fpn_channels: 8,
            latent_channels: 4,
            d_model: 16,
            heads: 2,
            blocks: 1,
            up_channels: 8,
            triplane_channels: 6,
            triplane_resolution: 16,
            box_size: 2.0,
            osg_hidden: 16,
        }
    }

    fn build(cfg: &AutoencoderConfig) -> (VarMap, Autoencoder) {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let ae = Autoencoder::load(vb, cfg).unwrap();
        (vm, ae)
    }

    fn image(cfg: &AutoencoderConfig, b: usize) -> Tensor {
        let n = b * 3 * cfg.image_size * cfg.image_size;
        let v: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32) / 100.0).collect();
        Tensor::from_vec(v, (b, 3, cfg.image_size, cfg.image_size), &Device::Cpu).unwrap()
    }

    #[test]
    fn shapes_through_encode_and_decode() {
        let cfg = small();
        let (_, ae) = build(&cfg);
        let post = ae.encode(&image(&cfg, 2)).unwrap();
        assert_eq!(post.mean.dims(), &[2, 4, 8, 8]);
        assert_eq!(post.logvar.dims(), &[2, 4, 8, 8]);
        let planes = ae.decode_planes(&post.mean).unwrap();
        assert_eq!(planes.dims(), &[2, 3, 6, 16, 16]);
        let tps = ae.decode(&post.mean).unwrap();
        assert_eq!(tps.len(), 2);
        assert_eq!((tps[0].channels(), tps[0].resolution()), (6, 16));
        assert!(ae.encode(&image(&small_other_size(), 1)).is_err());
        assert!(
            ae.decode_planes(&Tensor::zeros((1, 3, 8, 8), DType::F32, &Device::Cpu).unwrap())
                .is_err()
        );
    }

    fn small_other_size() -> AutoencoderConfig {
        AutoencoderConfig {
            image_size: 64,
            ..small()
        }
    }

    #[test]
    fn default_config_is_valid_and_bad_ones_say_why() {
        AutoencoderConfig::default().validate().unwrap();
        assert_eq!(AutoencoderConfig::default().latent_size(), 8);
        assert_eq!(AutoencoderConfig::default().up_stages(), 2);
        let e = AutoencoderConfig { heads: 3, ..small() }.validate().unwrap_err();
        assert!(e.to_string().contains("heads"), "{e}");
        let e = AutoencoderConfig {
            triplane_resolution: 12,
            ..small()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("triplane_resolution"), "{e}");
    }

    #[test]
    fn same_weights_same_outputs() {
        let cfg = small();
        let (vm, ae) = build(&cfg);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ae.safetensors");
        vm.save(&path).unwrap();
        let again = Autoencoder::load_file(&path, &cfg, &Device::Cpu).unwrap();
        let img = image(&cfg, 1);
        let z1 = ae.encode(&img).unwrap().mean;
        let z2 = again.encode(&img).unwrap().mean;
        let p1 = ae.decode_planes(&z1).unwrap();
        let p2 = again.decode_planes(&z2).unwrap();
        let dz = max_abs_diff(z1, z2);
        let dp = max_abs_diff(p1.clone(), p2);
        assert_eq!((dz, dp), (0.0, 0.0));
        // Not a constant map: another image gives another latent.
        let other = (image(&cfg, 1) * 0.5).unwrap();
        let z3 = ae.encode(&other).unwrap().mean;
        let d3 = max_abs_diff(ae.decode_planes(&z3).unwrap(), p1);
        assert!(d3 > 0.0);
    }

    #[test]
    fn strict_loading_names_the_bad_key() {
        let cfg = small();
        let (vm, _) = build(&cfg);
        let dir = tempfile::tempdir().unwrap();
        let mut tensors: std::collections::HashMap<String, Tensor> = vm
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        let save = |t: &std::collections::HashMap<String, Tensor>, name: &str| {
            let p = dir.path().join(name);
            candle_core::safetensors::save(t, &p).unwrap();
            p
        };
        let err = |p: std::path::PathBuf| {
            Autoencoder::load_file(&p, &cfg, &Device::Cpu)
                .err()
                .unwrap()
                .to_string()
        };

        let mut missing = tensors.clone();
        missing.remove("decoder.pos_embed");
        let e = err(save(&missing, "missing.safetensors"));
        assert!(e.contains("decoder.pos_embed"), "{e}");

        let mut extra = tensors.clone();
        extra.insert(
            "decoder.extra".into(),
            Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap(),
        );
        let e = err(save(&extra, "extra.safetensors"));
        assert!(e.contains("decoder.extra"), "{e}");

        tensors.insert(
            "encoder.head.bias".into(),
            Tensor::zeros(7, DType::F32, &Device::Cpu).unwrap(),
        );
        let e = err(save(&tensors, "shape.safetensors"));
        assert!(e.contains("encoder.head.bias"), "{e}");
    }

    #[test]
    fn kl_is_zero_at_the_prior_and_sampling_uses_the_noise() {
        let dev = Device::Cpu;
        let post = Posterior {
            mean: Tensor::zeros((2, 4, 2, 2), DType::F32, &dev).unwrap(),
            logvar: Tensor::zeros((2, 4, 2, 2), DType::F32, &dev).unwrap(),
        };
        assert!(post.kl().unwrap().to_scalar::<f32>().unwrap().abs() < 1e-6);
        let noise = Tensor::ones((2, 4, 2, 2), DType::F32, &dev).unwrap();
        let s = post.sample_with(&noise).unwrap();
        assert_eq!(s.sum_all().unwrap().to_scalar::<f32>().unwrap(), 32.0);
        let shifted = Posterior {
            mean: Tensor::ones((2, 4, 2, 2), DType::F32, &dev).unwrap(),
            ..post
        };
        // KL of N(1, 1) against N(0, 1) is 1/2 per element; 16 elements per item.
        assert!((shifted.kl().unwrap().to_scalar::<f32>().unwrap() - 8.0).abs() < 1e-5);
    }
}
