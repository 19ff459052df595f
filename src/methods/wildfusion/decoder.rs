//! EG3D's `OSGDecoder`: the small MLP that turns aggregated triplane features into one raw
//! density and `output_dim` colour/feature channels.
//!
//! `FullyConnectedLayer(n_features → hidden_dim) → Softplus → FullyConnectedLayer(hidden_dim →
//! 1 + output_dim)`; channel 0 is the raw density σ (activated later by the ray marcher), the
//! rest go through `sigmoid(x)·(1 + 2·0.001) − 0.001`. EG3D's `FullyConnectedLayer` stores raw
//! parameters and scales them at run time: effective weight = `weight · lr_multiplier / √in`,
//! effective bias = `bias · lr_multiplier`; we apply the same gains at load time.
//!
//! Keys (no official WildFusion keys exist; this layout is ours, named after EG3D's module path
//! `decoder.net.{0,2}` without the `decoder.` prefix):
//!
//! | key | shape |
//! |---|---|
//! | `net.0.weight` | `(hidden_dim, n_features)` |
//! | `net.0.bias` | `(hidden_dim,)` |
//! | `net.2.weight` | `(1 + output_dim, hidden_dim)` |
//! | `net.2.bias` | `(1 + output_dim,)` |

use std::collections::HashMap;

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::WildFusionError;

/// EG3D's colour-activation margin: `sigmoid(x)·(1 + 2·ε) − ε`.
pub const COLOR_EPS: f64 = 0.001;

/// The decoder's sizes (EG3D's names: `decoder_output_dim`, `decoder_lr_mul`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DecoderConfig {
    /// Triplane channels `C`.
    pub n_features: usize,
    /// Hidden width (EG3D: 64).
    pub hidden_dim: usize,
    /// Colour/feature channels after the density (3 here: RGB, no super-resolution stage).
    pub decoder_output_dim: usize,
    pub decoder_lr_mul: f64,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        Self {
            n_features: 4,
            hidden_dim: 64,
            decoder_output_dim: 3,
            decoder_lr_mul: 1.0,
        }
    }
}

/// One fully connected layer with EG3D's run-time gains folded in.
#[derive(Clone, Debug)]
struct FullyConnected {
    /// Effective weight, transposed: `(in, out)`.
    weight_t: Tensor,
    bias: Tensor,
}

impl FullyConnected {
    fn load(vb: VarBuilder, inputs: usize, outputs: usize, lr_mul: f64) -> candle_core::Result<Self> {
        let w = vb.get((outputs, inputs), "weight")?;
        let b = vb.get(outputs, "bias")?;
        let gain = lr_mul / (inputs as f64).sqrt();
        Ok(Self {
            weight_t: (w * gain)?.t()?.contiguous()?,
            bias: (b * lr_mul)?,
        })
    }
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.weight_t)?.broadcast_add(&self.bias)
    }
}

/// `log(1 + eˣ)`, computed without overflow: `max(x, 0) + log(1 + e^−|x|)`.
pub(crate) fn softplus(x: &Tensor) -> candle_core::Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// What the decoder gives for each sample point.
#[derive(Clone, Debug)]
pub struct DecodedSamples {
    /// Raw density `(N, 1)` (before the ray marcher's activation).
    pub sigma: Tensor,
    /// Colour/features `(N, output_dim)` after EG3D's activation, in `[−0.001, 1.001]`.
    pub rgb: Tensor,
}

/// EG3D's `OSGDecoder`.
#[derive(Clone, Debug)]
pub struct OsgDecoder {
    cfg: DecoderConfig,
    fc0: FullyConnected,
    fc1: FullyConnected,
}

impl OsgDecoder {
    /// Builds the decoder from `vb` (keys in the module docs).
    pub fn load(vb: VarBuilder, cfg: &DecoderConfig) -> candle_core::Result<Self> {
        if cfg.n_features == 0 || cfg.hidden_dim == 0 || cfg.decoder_output_dim == 0 {
            candle_core::bail!("decoder sizes must be positive: {cfg:?}");
        }
        let net = vb.pp("net");
        let fc0 = FullyConnected::load(net.pp("0"), cfg.n_features, cfg.hidden_dim, cfg.decoder_lr_mul)?;
        let fc1 = FullyConnected::load(
            net.pp("2"),
            cfg.hidden_dim,
            1 + cfg.decoder_output_dim,
            cfg.decoder_lr_mul,
        )?;
        Ok(Self {
            cfg: cfg.clone(),
            fc0,
            fc1,
        })
    }

    /// Loads a checkpoint (safetensors, `.pth`, `.ckpt`) strictly with the keys above.
    pub fn load_file(
        path: &std::path::Path,
        cfg: &DecoderConfig,
        device: &Device,
    ) -> Result<(Self, crate::core::weights::LoadReport), WildFusionError> {
        use crate::core::weights::{LoadOptions, build_model, load_checkpoint};
        let ckpt = load_checkpoint(path, &LoadOptions::default())?;
        Ok(build_model(&ckpt, DType::F32, device, true, |vb| Self::load(vb, cfg))?)
    }

    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    /// Aggregated features `(N, n_features)` → raw density and activated colour.
    pub fn forward(&self, features: &Tensor) -> Result<DecodedSamples, WildFusionError> {
        match features.dims() {
            &[_, c] if c == self.cfg.n_features => {}
            d => {
                return Err(WildFusionError::Shape(format!(
                    "decoder wants (N, {}) features, got {d:?}",
                    self.cfg.n_features
                )));
            }
        }
        let h = softplus(&self.fc0.forward(features)?)?;
        let out = self.fc1.forward(&h)?;
        let sigma = out.narrow(D::Minus1, 0, 1)?;
        let logits = out.narrow(D::Minus1, 1, self.cfg.decoder_output_dim)?;
        let rgb = ((candle_nn::ops::sigmoid(&logits)? * (1.0 + 2.0 * COLOR_EPS))? - COLOR_EPS)?;
        Ok(DecodedSamples { sigma, rgb })
    }

    /// The fixed, hand-set decoder the analytic demo uses: it passes feature `k` through to
    /// output `k` (density first, then colour logits), up to an error below `1e-5` for features
    /// above `−(PASS_OFFSET − 12)`; far below that the output saturates at `−PASS_OFFSET`
    /// (still "empty" for the density). Hidden unit `k` computes `softplus(f_k + PASS_OFFSET)`
    /// and the output layer subtracts the offset again; the other hidden units are unused.
    /// Built through [`OsgDecoder::load`] from raw tensors, so the loading path is the one a
    /// trained checkpoint takes.
    pub fn analytic_passthrough(cfg: &DecoderConfig) -> Result<Self, WildFusionError> {
        let vb = VarBuilder::from_tensors(passthrough_tensors(cfg)?, DType::F32, &Device::Cpu);
        Ok(Self::load(vb, cfg)?)
    }
}

/// The raw parameters (keys `net.{0,2}.*`) of [`OsgDecoder::analytic_passthrough`], on the CPU:
/// a trainer that keeps the decoder fixed writes them into its parameter set so that the saved
/// model holds the decoder it was trained through.
pub fn passthrough_tensors(cfg: &DecoderConfig) -> Result<HashMap<String, Tensor>, WildFusionError> {
    let c = cfg.n_features;
    let out = 1 + cfg.decoder_output_dim;
    if c != out {
        return Err(WildFusionError::Config(format!(
            "a pass-through decoder needs n_features = 1 + decoder_output_dim, got {c} and {out}"
        )));
    }
    if cfg.hidden_dim < c {
        return Err(WildFusionError::Config(format!(
            "a pass-through decoder needs hidden_dim ≥ {c}, got {}",
            cfg.hidden_dim
        )));
    }
    let lr = cfg.decoder_lr_mul;
    // Raw parameters such that the effective ones (after EG3D's gains) are the identity.
    let g0 = (c as f64).sqrt() / lr;
    let g1 = (cfg.hidden_dim as f64).sqrt() / lr;
    let mut w0 = vec![0f32; cfg.hidden_dim * c];
    let mut b0 = vec![0f32; cfg.hidden_dim];
    let mut w1 = vec![0f32; out * cfg.hidden_dim];
    let mut b1 = vec![0f32; out];
    for k in 0..c {
        w0[k * c + k] = g0 as f32;
        b0[k] = (PASS_OFFSET / lr) as f32;
        w1[k * cfg.hidden_dim + k] = g1 as f32;
        b1[k] = (-PASS_OFFSET / lr) as f32;
    }
    let dev = Device::Cpu;
    let tensors = HashMap::from([
        (
            "net.0.weight".to_string(),
            Tensor::from_vec(w0, (cfg.hidden_dim, c), &dev)?,
        ),
        ("net.0.bias".to_string(), Tensor::from_vec(b0, cfg.hidden_dim, &dev)?),
        (
            "net.2.weight".to_string(),
            Tensor::from_vec(w1, (out, cfg.hidden_dim), &dev)?,
        ),
        ("net.2.bias".to_string(), Tensor::from_vec(b1, out, &dev)?),
    ]);
    Ok(tensors)
}

/// The pass-through decoder's hidden offset: `softplus(x + 30) − 30 = x` to within `e^(x−30)`.
pub const PASS_OFFSET: f64 = 30.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passthrough_is_identity_and_colour_activation_is_eg3d() {
        let cfg = DecoderConfig::default();
        let dec = OsgDecoder::analytic_passthrough(&cfg).unwrap();
        let f = Tensor::new(&[[2.5f32, 0.0, 1.0, -1.0], [-10.0, 3.0, -3.0, 0.5]], &Device::Cpu).unwrap();
        let out = dec.forward(&f).unwrap();
        let sigma = out.sigma.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(
            (sigma[0] - 2.5).abs() < 1e-4 && (sigma[1] + 10.0).abs() < 1e-4,
            "{sigma:?}"
        );
        let rgb = out.rgb.to_vec2::<f32>().unwrap();
        let act = |x: f32| 1.0 / (1.0 + (-x).exp()) * 1.002 - 0.001;
        for (row, feats) in rgb.iter().zip([[0.0, 1.0, -1.0], [3.0, -3.0, 0.5]]) {
            for (got, x) in row.iter().zip(feats) {
                assert!((got - act(x)).abs() < 1e-5, "{got} vs {}", act(x));
            }
        }
    }
}
