//! The relative-representation demo models: a small convolutional autoencoder on the procedural
//! sprites (`methods::demo_data::sprites`) with a shape classifier on its latent.
//!
//! Two copies trained with different seeds (and one of another width) give latent spaces that
//! encode the same factors in different coordinates: the situation relative representations fix.
//!
//! ```text
//! encoder  3×64² → conv4/2 → w×32² → conv4/2 → 2w×16² → conv4/2 → 4w×8² → conv4/2 → 4w×4² =: h
//!          → linear([flatten(h), max over the 4×4 grid of h]) → latent (latent_dim)
//! decoder  latent → linear → 4w×4² → convT2/2 → 4w×8² → 2w×16² → w×32² → 3×64², sigmoid
//! head     latent → linear(64) → ReLU → linear(classes)         (shape: square, ellipse, heart)
//! ```
//! Every layer but the last of each part is followed by ReLU. Loss: pixel MSE + `ce_weight` ×
//! cross-entropy.
//!
//! Why this encoder: with non-overlapping kernel-2 convolutions every cell of the final 4×4 grid
//! sees its own 16×16 tile, a sprite straddles several tiles, and shape accuracy stayed at ~44 %
//! (barely above chance) for 1,000 steps. Overlapping kernel-4, stride-2, padding-1 convolutions
//! give each final cell a 46-pixel receptive field (the whole sprite), and the global max over the
//! grid hands the classifier a translation-invariant summary; the plateau then breaks after
//! ~400–600 steps. PyTorch equivalent: `Conv2d(cin, cout, 4, 2, 1)` layers, then
//! `torch.cat([h.flatten(1), h.amax((2, 3))], 1)` into `enc.fc` (weight `[latent, 17·4w]`).
//!
//! Weights use PyTorch's layouts (`Conv2d` `[out, in, 4, 4]`, `ConvTranspose2d` `[in, out, 2, 2]`)
//! but the layers are computed as matrix products on channels-last tensors (space-to-depth for the
//! encoder, patch matrices for the decoder): candle's CPU convolution backward pass is ~10× slower,
//! and the demo models must train in minutes on two cores.

use crate::core::jobs::JobContext;
use crate::core::train::{
    AdamWConfig, CheckpointPolicy, LrSchedule, Result, SeededParams, StepOutput, TrainError, TrainLoop, TrainReport,
};
use crate::methods::demo_data::sprites::{self, Factors, Shape};
use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Init, Linear, VarBuilder};
use std::collections::BTreeMap;

/// Architecture (the `[config]` table of the model's manifest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpriteAeConfig {
    /// Channels of the first convolution; later ones use 2× and 4×.
    pub width: usize,
    pub latent_dim: usize,
    pub classes: usize,
}

impl SpriteAeConfig {
    pub const IMAGE_SIZE: usize = sprites::SIZE;
    const HEAD_HIDDEN: usize = 64;
    /// The encoder layout, written to manifests so that weights of an older layout are refused by
    /// name rather than by a tensor-shape mismatch.
    pub const ENCODER: &'static str = "conv4s2p1+maxpool";

    pub fn to_toml(&self) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert("architecture".into(), "sprite_ae".into());
        t.insert("width".into(), (self.width as i64).into());
        t.insert("latent_dim".into(), (self.latent_dim as i64).into());
        t.insert("classes".into(), (self.classes as i64).into());
        t.insert("image_size".into(), (Self::IMAGE_SIZE as i64).into());
        t.insert("encoder".into(), Self::ENCODER.into());
        t
    }

    /// Reads the manifest's `[config]` table; missing or wrong fields are named.
    pub fn from_toml(t: &toml::Table) -> std::result::Result<Self, String> {
        // Absent in hand-written tables: the current layout is assumed (the weights check still
        // catches a mismatch).
        if let Some(encoder) = t.get("encoder") {
            let encoder = encoder.as_str().unwrap_or_default();
            if encoder != Self::ENCODER {
                return Err(format!(
                    "config.encoder {encoder:?} is not supported (this version builds {:?}; retrain the model)",
                    Self::ENCODER
                ));
            }
        }
        let get = |k: &str| -> std::result::Result<usize, String> {
            t.get(k)
                .and_then(toml::Value::as_integer)
                .filter(|v| *v > 0)
                .map(|v| v as usize)
                .ok_or_else(|| format!("config.{k} must be a positive integer"))
        };
        Ok(Self {
            width: get("width")?,
            latent_dim: get("latent_dim")?,
            classes: get("classes")?,
        })
    }
}

/// A kernel-2, stride-2 transposed convolution on channels-last tensors.
struct PatchConv {
    /// The PyTorch-layout weight. It is a variable that the optimiser updates in place, so the
    /// matrix is derived from it at every call: a matrix cached at construction is a copy that
    /// never trains (the first version of this model did that and its convolutions stayed frozen).
    weight: Tensor,
    bias: Tensor,
    cin: usize,
    out: usize,
}

impl PatchConv {
    /// `ConvTranspose2d(cin, cout, 2, stride=2)`: weight `[cin, cout, 2, 2]`.
    fn transposed(cin: usize, cout: usize, vb: VarBuilder, bias_init: Option<f64>) -> candle_core::Result<Self> {
        let w = vb.get_with_hints((cin, cout, 2, 2), "weight", candle_nn::init::DEFAULT_KAIMING_NORMAL)?;
        let bound = 1.0 / ((cout * 4) as f64).sqrt();
        let init = bias_init.map_or(Init::Uniform { lo: -bound, up: bound }, Init::Const);
        let bias = vb.get_with_hints(cout, "bias", init)?;
        Ok(Self {
            weight: w,
            bias,
            cin,
            out: cout,
        })
    }

    /// `[N, H, W, C]` → `[N, 2H, 2W, out]`.
    fn up(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (n, h, w, c) = x.dims4()?;
        // Columns ordered (ky, kx, channel).
        let matrix = self.weight.permute((0, 2, 3, 1))?.reshape((self.cin, 4 * self.out))?;
        x.reshape((n * h * w, c))?
            .matmul(&matrix)?
            .reshape((n, h, w, 2, 2, self.out))?
            .permute((0, 1, 3, 2, 4, 5))?
            .reshape((n, 2 * h, 2 * w, self.out))?
            .broadcast_add(&self.bias)
    }
}

/// `Conv2d(cin, cout, 4, stride=2, padding=1)` on channels-last tensors: the padded input is cut
/// into 2×2 blocks (space-to-depth), and each output pixel reads the 2×2 neighbourhood of blocks
/// it overlaps: four matrix products of `[N·H/2·W/2, 4·cin]` by `[4·cin, out]`, summed.
struct OverlapConv {
    /// `[out, in, 4, 4]`, derived into a matrix at every call (see [`PatchConv::weight`]).
    weight: Tensor,
    bias: Tensor,
    cin: usize,
    out: usize,
}

impl OverlapConv {
    /// Weight `[cout, cin, 4, 4]` as PyTorch stores it.
    fn new(cin: usize, cout: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        let w = vb.get_with_hints((cout, cin, 4, 4), "weight", candle_nn::init::DEFAULT_KAIMING_NORMAL)?;
        let bound = 1.0 / ((cin * 16) as f64).sqrt();
        let bias = vb.get_with_hints(cout, "bias", Init::Uniform { lo: -bound, up: bound })?;
        Ok(Self {
            weight: w,
            bias,
            cin,
            out: cout,
        })
    }

    /// `[N, H, W, C]` → `[N, H/2, W/2, out]`.
    fn down(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (n, h, w, c) = x.dims4()?;
        let (hb, wb) = (h / 2 + 1, w / 2 + 1);
        // Contiguous operands throughout: candle concatenates strided tensors element by element,
        // which made this layer several times slower than its matrix products.
        let blocks = x
            .contiguous()?
            .pad_with_zeros(1, 1, 1)?
            .pad_with_zeros(2, 1, 1)?
            .reshape((n, hb, 2, wb, 2, c))?
            .permute((0, 1, 3, 2, 4, 5))?
            .reshape((n, hb, wb, 4 * c))?;
        // Kernel row ky = 2·by + dy (block offset by, row in block dy), the same for columns:
        // one `[4·cin, out]` matrix per block offset, rows ordered (dy, dx, channel).
        let matrices = self
            .weight
            .reshape((self.out, self.cin, 2, 2, 2, 2))?
            .permute((2, 4, 3, 5, 1, 0))?
            .reshape((4, 4 * self.cin, self.out))?;
        let rows = n * (h / 2) * (w / 2);
        let part = |k: usize, by: usize, bx: usize| -> candle_core::Result<Tensor> {
            blocks
                .narrow(1, by, hb - 1)?
                .narrow(2, bx, wb - 1)?
                .contiguous()?
                .reshape((rows, 4 * c))?
                .matmul(&matrices.get(k)?)
        };
        let sum = (((part(0, 0, 0)? + part(1, 0, 1)?)? + part(2, 1, 0)?)? + part(3, 1, 1)?)?;
        sum.broadcast_add(&self.bias)?.reshape((n, h / 2, w / 2, self.out))
    }
}

pub struct SpriteAe {
    config: SpriteAeConfig,
    enc: Vec<OverlapConv>,
    enc_fc: Linear,
    dec_fc: Linear,
    dec: Vec<PatchConv>,
    head_hidden: Linear,
    head_out: Linear,
}

impl SpriteAe {
    /// Builds the model, creating or loading its tensors through `vb` (names as in the manifest's
    /// weights file: `enc.0.weight`, …, `head.out.bias`).
    pub fn new(config: SpriteAeConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let w = config.width;
        let enc_channels = [(3, w), (w, 2 * w), (2 * w, 4 * w), (4 * w, 4 * w)];
        let enc = enc_channels
            .iter()
            .enumerate()
            .map(|(i, &(cin, cout))| OverlapConv::new(cin, cout, vb.pp(format!("enc.{i}"))))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let flat = 4 * w * 16;
        let enc_fc = candle_nn::linear(flat + 4 * w, config.latent_dim, vb.pp("enc.fc"))?;
        let dec_fc = candle_nn::linear(config.latent_dim, flat, vb.pp("dec.fc"))?;
        let dec_channels = [(4 * w, 4 * w), (4 * w, 2 * w), (2 * w, w), (w, 3)];
        let dec = dec_channels
            .iter()
            .enumerate()
            .map(|(i, &(cin, cout))| {
                // The sprites are mostly black: start the output near sigmoid(−3) ≈ 0.05 instead of
                // 0.5, which otherwise costs hundreds of steps of bias drift.
                let bias = (i == 3).then_some(-3.0);
                PatchConv::transposed(cin, cout, vb.pp(format!("dec.{i}")), bias)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let head_hidden = candle_nn::linear(config.latent_dim, SpriteAeConfig::HEAD_HIDDEN, vb.pp("head.hidden"))?;
        let head_out = candle_nn::linear(SpriteAeConfig::HEAD_HIDDEN, config.classes, vb.pp("head.out"))?;
        Ok(Self {
            config,
            enc,
            enc_fc,
            dec_fc,
            dec,
            head_hidden,
            head_out,
        })
    }

    pub fn config(&self) -> SpriteAeConfig {
        self.config
    }

    /// Images `[N, 3, 64, 64]` in [0, 1] → latents `[N, latent_dim]`.
    pub fn encode(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.permute((0, 2, 3, 1))?;
        for conv in &self.enc {
            h = conv.down(&h)?.relu()?;
        }
        let (n, gh, gw, c) = h.dims4()?;
        let pooled = h.reshape((n, gh * gw, c))?.max(1)?;
        // Flatten in PyTorch's channels-first order so `enc.fc` matches nn.Flatten on NCHW.
        let flat = h.permute((0, 3, 1, 2))?.flatten_from(1)?;
        self.enc_fc.forward(&Tensor::cat(&[&flat, &pooled], 1)?)
    }

    /// Latents → images `[N, 3, 64, 64]` in (0, 1).
    pub fn decode(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        let n = z.dim(0)?;
        let mut h = self
            .dec_fc
            .forward(z)?
            .relu()?
            .reshape((n, 4 * self.config.width, 4, 4))?
            .permute((0, 2, 3, 1))?;
        let last = self.dec.len() - 1;
        for (i, conv) in self.dec.iter().enumerate() {
            h = conv.up(&h)?;
            if i < last {
                h = h.relu()?;
            }
        }
        candle_nn::ops::sigmoid(&h.permute((0, 3, 1, 2))?)
    }

    /// Latents → shape logits `[N, classes]`.
    pub fn classify(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        self.head_out.forward(&self.head_hidden.forward(z)?.relu()?)
    }
}

/// How a demo model is trained.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainSettings {
    pub steps: usize,
    pub batch: usize,
    pub peak_lr: f64,
    pub ce_weight: f64,
    pub seed: u64,
}

impl TrainSettings {
    pub fn new(steps: usize, seed: u64) -> Self {
        Self {
            steps,
            batch: 64,
            peak_lr: 2e-3,
            ce_weight: 2.0,
            seed,
        }
    }
}

/// Seed of the held-out evaluation sprites: no training stream uses it.
pub const EVAL_DATA_SEED: u64 = 0xE7A1_5EED;

/// A batch tensor `[N, 3, 64, 64]` and its shape labels `[N]` (u32).
pub fn batch(factors: &[Factors], device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    let (pixels, labels) = sprites::batch_chw(factors);
    let n = factors.len();
    let s = sprites::SIZE;
    let x = Tensor::from_vec(pixels, (n, 3, s, s), device)?;
    let y = Tensor::from_vec(labels, n, device)?;
    Ok((x, y))
}

/// Held-out scores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Eval {
    pub accuracy: f64,
    pub mse: f64,
    pub samples: usize,
}

/// Shape accuracy and reconstruction MSE on `n` sprites of [`EVAL_DATA_SEED`].
pub fn evaluate(model: &SpriteAe, n: usize, device: &Device) -> candle_core::Result<Eval> {
    let (mut correct, mut sq_err, mut pixels) = (0usize, 0f64, 0usize);
    let chunk = 100;
    for start in (0..n).step_by(chunk) {
        let factors: Vec<Factors> = (start..(start + chunk).min(n))
            .map(|i| Factors::sample(EVAL_DATA_SEED, i as u64))
            .collect();
        let (x, y) = batch(&factors, device)?;
        let z = model.encode(&x)?;
        let pred = model.classify(&z)?.argmax(D::Minus1)?.to_vec1::<u32>()?;
        correct += pred.iter().zip(y.to_vec1::<u32>()?).filter(|(p, t)| **p == *t).count();
        let recon = model.decode(&z)?;
        sq_err += (recon - &x)?
            .sqr()?
            .sum_all()?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
        pixels += x.elem_count();
    }
    Ok(Eval {
        accuracy: correct as f64 / n.max(1) as f64,
        mse: sq_err / pixels.max(1) as f64,
        samples: n,
    })
}

/// A trained model with how it got there.
pub struct Trained {
    pub params: SeededParams,
    pub model: SpriteAe,
    pub report: TrainReport,
}

/// Trains from the seed (or resumes from `resume`), reporting through `ctx`.
pub fn train(
    config: SpriteAeConfig,
    settings: TrainSettings,
    ctx: &JobContext,
    checkpoint: Option<CheckpointPolicy>,
    resume: Option<&std::path::Path>,
) -> Result<Trained> {
    if settings.steps == 0 || settings.batch == 0 {
        return Err(TrainError::Invalid("steps and batch must be at least 1".into()));
    }
    let device = Device::Cpu;
    let params = SeededParams::new(settings.seed);
    let model = SpriteAe::new(config, params.var_builder(DType::F32, &device))?;
    let schedule = LrSchedule::warmup_cosine(settings.peak_lr, settings.steps);
    let adamw = AdamWConfig {
        weight_decay: 1e-4,
        ..AdamWConfig::default()
    };
    let mut meta = BTreeMap::new();
    meta.insert("architecture".to_string(), "sprite_ae".to_string());
    meta.insert(
        "config".to_string(),
        format!(
            "width={} latent_dim={} classes={}",
            config.width, config.latent_dim, config.classes
        ),
    );
    let mut lp = TrainLoop::new(params.clone(), adamw, schedule, settings.steps, settings.seed)?
        .clip_grad_norm(1.0)
        .metadata(meta);
    if let Some(policy) = checkpoint {
        lp = lp.checkpoints(policy);
    }
    if let Some(path) = resume {
        let ck = crate::core::train::Checkpoint::read(path)?;
        lp.resume(&ck, path)?;
    }
    let data_seed = settings.seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
    let report = lp.run(ctx, |step, _rng| {
        let first = (step * settings.batch) as u64;
        let factors: Vec<Factors> = (0..settings.batch as u64)
            .map(|i| Factors::sample(data_seed, first + i))
            .collect();
        let (x, y) = batch(&factors, &device)?;
        let z = model.encode(&x)?;
        let mse = (model.decode(&z)? - &x)?.sqr()?.mean_all()?;
        let logits = model.classify(&z)?;
        let ce = candle_nn::loss::cross_entropy(&logits, &y)?;
        let loss = (&mse + (&ce * settings.ce_weight)?)?;
        let acc = logits
            .argmax(D::Minus1)?
            .eq(&y)?
            .to_dtype(DType::F32)?
            .mean_all()?
            .to_scalar::<f32>()?;
        Ok(StepOutput {
            loss,
            extra: vec![("mse", mse.to_scalar::<f32>()?), ("acc", acc)],
        })
    })?;
    Ok(Trained { params, model, report })
}

/// Class names in label order.
pub fn class_names() -> Vec<&'static str> {
    Shape::ALL.iter().map(|s| s.name()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        crate::core::ops::max_abs_diff(a, b).unwrap()
    }

    #[test]
    fn matrix_convolutions_equal_candle_convolutions() {
        let dev = Device::Cpu;
        let p = SeededParams::new(4);
        let vb = p.var_builder(DType::F32, &dev);
        let down = OverlapConv::new(3, 5, vb.pp("d")).unwrap();
        let up = PatchConv::transposed(5, 4, vb.pp("u"), None).unwrap();
        let t: std::collections::HashMap<_, _> = p.tensors().into_iter().collect();
        let x = Tensor::from_vec(
            crate::core::diffusion::Rng::new(2).normals_f32(2 * 3 * 8 * 6),
            (2, 3, 8, 6),
            &dev,
        )
        .unwrap();
        let nhwc = |t: &Tensor| t.permute((0, 2, 3, 1)).unwrap();
        let nchw = |t: &Tensor| t.permute((0, 3, 1, 2)).unwrap();
        let reference = x
            .conv2d(&t["d.weight"], 1, 2, 1, 1)
            .unwrap()
            .broadcast_add(&t["d.bias"].reshape((1, 5, 1, 1)).unwrap())
            .unwrap();
        let ours = nchw(&down.down(&nhwc(&x)).unwrap());
        assert_eq!(ours.dims(), [2, 5, 4, 3]);
        assert!(max_abs_diff(&ours, &reference) < 1e-5);
        let reference_up = reference
            .conv_transpose2d(&t["u.weight"], 0, 0, 2, 1)
            .unwrap()
            .broadcast_add(&t["u.bias"].reshape((1, 4, 1, 1)).unwrap())
            .unwrap();
        let ours_up = nchw(&up.up(&nhwc(&ours)).unwrap());
        assert_eq!(ours_up.dims(), [2, 4, 8, 6]);
        assert!(max_abs_diff(&ours_up, &reference_up) < 1e-5);
    }

    /// The optimiser updates variables in place: layers must read them at every call.
    #[test]
    fn layers_follow_in_place_weight_updates() {
        let cfg = SpriteAeConfig {
            width: 2,
            latent_dim: 4,
            classes: 3,
        };
        let p = SeededParams::new(3);
        let m = SpriteAe::new(cfg, p.var_builder(DType::F32, &Device::Cpu)).unwrap();
        let f: Vec<Factors> = (0..2).map(|i| Factors::sample(5, i)).collect();
        let (x, _) = batch(&f, &Device::Cpu).unwrap();
        let (z0, y0) = (m.encode(&x).unwrap(), m.decode(&m.encode(&x).unwrap()).unwrap());
        for (name, var) in p.named_vars() {
            if name == "enc.0.weight" || name == "dec.3.weight" {
                var.set(&(var.as_tensor() * 3.0).unwrap()).unwrap();
            }
        }
        assert!(max_abs_diff(&m.encode(&x).unwrap(), &z0) > 1e-4);
        assert!(max_abs_diff(&m.decode(&z0).unwrap(), &y0) > 1e-4);
    }

    #[test]
    fn shapes_and_parameter_names() {
        let cfg = SpriteAeConfig {
            width: 4,
            latent_dim: 8,
            classes: 3,
        };
        let p = SeededParams::new(1);
        let m = SpriteAe::new(cfg, p.var_builder(DType::F32, &Device::Cpu)).unwrap();
        let f: Vec<Factors> = (0..2).map(|i| Factors::sample(5, i)).collect();
        let (x, _) = batch(&f, &Device::Cpu).unwrap();
        let z = m.encode(&x).unwrap();
        assert_eq!(z.dims(), [2, 8]);
        assert_eq!(m.decode(&z).unwrap().dims(), [2, 3, 64, 64]);
        assert_eq!(m.classify(&z).unwrap().dims(), [2, 3]);
        let names: Vec<String> = p.named_vars().into_iter().map(|(k, _)| k).collect();
        assert!(names.contains(&"enc.0.weight".to_string()) && names.contains(&"head.out.bias".to_string()));
        assert_eq!(SpriteAeConfig::from_toml(&cfg.to_toml()).unwrap(), cfg);
        let mut bad = cfg.to_toml();
        bad.remove("width");
        assert!(SpriteAeConfig::from_toml(&bad).unwrap_err().contains("config.width"));
        let mut old = cfg.to_toml();
        old.insert("encoder".into(), "conv2s2".into());
        assert!(SpriteAeConfig::from_toml(&old).unwrap_err().contains("config.encoder"));
        old.remove("encoder");
        assert_eq!(SpriteAeConfig::from_toml(&old).unwrap(), cfg);
    }
}
