//! The relative-representation demo models: a small convolutional autoencoder on the procedural
//! sprites (`methods::demo_data::sprites`) with a shape classifier on its latent.
//!
//! Two copies trained with different seeds (and one of another width) give latent spaces that
//! encode the same factors in different coordinates: the situation relative representations fix.
//!
//! ```text
//! encoder  3×64² → conv2/2 → w×32² → conv2/2 → 2w×16² → conv2/2 → 4w×8² → conv2/2 → 4w×4²
//!          → linear → latent (latent_dim)
//! decoder  latent → linear → 4w×4² → convT2/2 → 4w×8² → 2w×16² → w×32² → 3×64², sigmoid
//! head     latent → linear(64) → ReLU → linear(classes)         (shape: square, ellipse, heart)
//! ```
//! Every layer but the last of each part is followed by ReLU. Loss: pixel MSE + `ce_weight` ×
//! cross-entropy. The convolutions have kernel 2 and stride 2 (non-overlapping patches), stored in
//! PyTorch's layouts (`Conv2d` weight `[out, in, 2, 2]`, `ConvTranspose2d` weight `[in, out, 2, 2]`)
//! but computed as patch matrix products on channels-last tensors: candle's CPU convolution
//! backward pass is ~10× slower, and the demo models must train in minutes on two cores.

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

    pub fn to_toml(&self) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert("architecture".into(), "sprite_ae".into());
        t.insert("width".into(), (self.width as i64).into());
        t.insert("latent_dim".into(), (self.latent_dim as i64).into());
        t.insert("classes".into(), (self.classes as i64).into());
        t.insert("image_size".into(), (Self::IMAGE_SIZE as i64).into());
        t
    }

    /// Reads the manifest's `[config]` table; missing or wrong fields are named.
    pub fn from_toml(t: &toml::Table) -> std::result::Result<Self, String> {
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

/// A kernel-2, stride-2 convolution (or transposed convolution) on channels-last tensors.
struct PatchConv {
    /// `[in·4, out]` for a convolution, `[in, 4·out]` for a transposed one; rows or columns ordered
    /// (ky, kx, channel).
    matrix: Tensor,
    bias: Tensor,
    out: usize,
}

impl PatchConv {
    /// `Conv2d(cin, cout, 2, stride=2)`: weight `[cout, cin, 2, 2]`.
    fn conv(cin: usize, cout: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        let w = vb.get_with_hints((cout, cin, 2, 2), "weight", candle_nn::init::DEFAULT_KAIMING_NORMAL)?;
        let bound = 1.0 / ((cin * 4) as f64).sqrt();
        let bias = vb.get_with_hints(cout, "bias", Init::Uniform { lo: -bound, up: bound })?;
        let matrix = w.permute((2, 3, 1, 0))?.reshape((4 * cin, cout))?;
        Ok(Self {
            matrix,
            bias,
            out: cout,
        })
    }

    /// `ConvTranspose2d(cin, cout, 2, stride=2)`: weight `[cin, cout, 2, 2]`.
    fn transposed(cin: usize, cout: usize, vb: VarBuilder, bias_init: Option<f64>) -> candle_core::Result<Self> {
        let w = vb.get_with_hints((cin, cout, 2, 2), "weight", candle_nn::init::DEFAULT_KAIMING_NORMAL)?;
        let bound = 1.0 / ((cout * 4) as f64).sqrt();
        let init = bias_init.map_or(Init::Uniform { lo: -bound, up: bound }, Init::Const);
        let bias = vb.get_with_hints(cout, "bias", init)?;
        let matrix = w.permute((0, 2, 3, 1))?.reshape((cin, 4 * cout))?;
        Ok(Self {
            matrix,
            bias,
            out: cout,
        })
    }

    /// `[N, H, W, C]` → `[N, H/2, W/2, out]`.
    fn down(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (n, h, w, c) = x.dims4()?;
        let patches = x
            .reshape((n, h / 2, 2, w / 2, 2, c))?
            .permute((0, 1, 3, 2, 4, 5))?
            .reshape((n * (h / 2) * (w / 2), 4 * c))?;
        patches
            .matmul(&self.matrix)?
            .broadcast_add(&self.bias)?
            .reshape((n, h / 2, w / 2, self.out))
    }

    /// `[N, H, W, C]` → `[N, 2H, 2W, out]`.
    fn up(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (n, h, w, c) = x.dims4()?;
        x.reshape((n * h * w, c))?
            .matmul(&self.matrix)?
            .reshape((n, h, w, 2, 2, self.out))?
            .permute((0, 1, 3, 2, 4, 5))?
            .reshape((n, 2 * h, 2 * w, self.out))?
            .broadcast_add(&self.bias)
    }
}

pub struct SpriteAe {
    config: SpriteAeConfig,
    enc: Vec<PatchConv>,
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
            .map(|(i, &(cin, cout))| PatchConv::conv(cin, cout, vb.pp(format!("enc.{i}"))))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let flat = 4 * w * 16;
        let enc_fc = candle_nn::linear(flat, config.latent_dim, vb.pp("enc.fc"))?;
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
        // Flatten in PyTorch's channels-first order so `enc.fc` matches nn.Flatten on NCHW.
        self.enc_fc.forward(&h.permute((0, 3, 1, 2))?.flatten_from(1)?)
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
            peak_lr: 5e-3,
            ce_weight: 0.5,
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
    let schedule = LrSchedule::WarmupCosine {
        peak: settings.peak_lr,
        floor: settings.peak_lr * 0.05,
        warmup: (settings.steps / 20).max(1),
        total: settings.steps,
    };
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

    #[test]
    fn patch_convs_equal_candle_convolutions() {
        let dev = Device::Cpu;
        let p = SeededParams::new(9);
        let vb = p.var_builder(DType::F32, &dev);
        let down = PatchConv::conv(3, 5, vb.pp("d")).unwrap();
        let up = PatchConv::transposed(5, 4, vb.pp("u"), None).unwrap();
        let t: std::collections::HashMap<_, _> = p.tensors().into_iter().collect();
        let x = Tensor::from_vec(
            crate::core::diffusion::Rng::new(1).normals_f32(2 * 3 * 8 * 6),
            (2, 3, 8, 6),
            &dev,
        )
        .unwrap();
        let reference = x
            .conv2d(&t["d.weight"], 0, 2, 1, 1)
            .unwrap()
            .broadcast_add(&t["d.bias"].reshape((1, 5, 1, 1)).unwrap())
            .unwrap();
        let ours = down
            .down(&x.permute((0, 2, 3, 1)).unwrap())
            .unwrap()
            .permute((0, 3, 1, 2))
            .unwrap();
        let diff = |a: &Tensor, b: &Tensor| {
            a.sub(b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert!(diff(&ours, &reference) < 1e-5);
        let reference_up = reference
            .conv_transpose2d(&t["u.weight"], 0, 0, 2, 1)
            .unwrap()
            .broadcast_add(&t["u.bias"].reshape((1, 4, 1, 1)).unwrap())
            .unwrap();
        let ours_up = up
            .up(&ours.permute((0, 2, 3, 1)).unwrap())
            .unwrap()
            .permute((0, 3, 1, 2))
            .unwrap();
        assert_eq!(ours_up.dims(), [2, 4, 8, 6]);
        assert!(diff(&ours_up, &reference_up) < 1e-5);
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
    }
}
