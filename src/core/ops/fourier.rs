//! Fourier point embedding of 3DShape2VecSet / Motion2VecSets (`PointEmbed` in
//! `core/network/models_ae.py` of VVeiCao/Motion2VecSets; research note
//! `shared/research/motion2vecsets.md` §2 and §15).
//!
//! Frequencies `e_k = 2^k·π`, k = 0..F-1. For a point (x, y, z) the projections are laid out
//! per axis — `[x·e_0 … x·e_{F-1}, y·e_0 … y·e_{F-1}, z·e_0 … z·e_{F-1}]` (the reference computes
//! them as `einsum("bnd,de->bne", p, basis)` with a block-diagonal 3×3F basis) — and the
//! embedding is `[sin(all 3F), cos(all 3F)]`, followed by the raw `(x, y, z)` when the input is
//! included: 6F (+3) values, 51 for the reference's F = 8 (`hidden_dim = 48`).

use candle_core::{D, Module, Result, Tensor, bail};
use candle_nn::{Init, Linear, VarBuilder};

/// The reference's frequencies in f32: `float(2^k) · float32(π)` (exact powers of two times π
/// rounded to f32, as `torch.pow(2, arange(F)).float() * np.pi` gives).
fn frequencies(num_freqs: usize) -> Vec<f32> {
    (0..num_freqs)
        .map(|k| (2f32).powi(k as i32) * std::f32::consts::PI)
        .collect()
}

/// The reference's `basis` buffer `(3, 3F)`, row-major: block-diagonal, row `a` holding
/// `2^k·π` in columns `a·F + k`. The embedding computes its projections without it; checkpoints
/// carry it, and the reference's own code multiplies by it.
pub fn basis(num_freqs: usize) -> Vec<f32> {
    let f = frequencies(num_freqs);
    let mut out = vec![0f32; 3 * 3 * num_freqs];
    for axis in 0..3 {
        for (k, &e) in f.iter().enumerate() {
            out[axis * 3 * num_freqs + axis * num_freqs + k] = e;
        }
    }
    out
}

/// `(B, N, 3)` points → `(B, N, 6F)` or `(B, N, 6F + 3)` with `include_input`: sin block, cos
/// block, then the raw coordinates (see the module docs for the layout). Differentiable in the
/// points; any float dtype and device.
pub fn fourier_embed(points: &Tensor, num_freqs: usize, include_input: bool) -> Result<Tensor> {
    let (b, n, d) = points.dims3()?;
    if d != 3 {
        bail!("fourier_embed: expected (B, N, 3) points, got {:?}", points.dims())
    }
    if num_freqs == 0 {
        bail!("fourier_embed: num_freqs must be positive")
    }
    let f =
        Tensor::from_vec(frequencies(num_freqs), (1, 1, 1, num_freqs), points.device())?.to_dtype(points.dtype())?;
    // (B, N, 3, 1) · (1, 1, 1, F) → (B, N, 3F), axis-major like the reference's basis.
    let proj = points
        .unsqueeze(D::Minus1)?
        .broadcast_mul(&f)?
        .reshape((b, n, 3 * num_freqs))?;
    let mut parts = vec![proj.sin()?, proj.cos()?];
    if include_input {
        parts.push(points.clone());
    }
    Tensor::cat(&parts, D::Minus1)
}

/// The reference `PointEmbed(hidden_dim, dim)` module: `mlp(cat(fourier_embed(p, hidden_dim/6),
/// p))`, keys `mlp.weight` `(dim, hidden_dim + 3)` and `mlp.bias` `(dim)` (the `basis` buffer in
/// checkpoints is the fixed frequency matrix and is not needed).
#[derive(Clone, Debug)]
pub struct PointEmbed {
    num_freqs: usize,
    mlp: Linear,
}

impl PointEmbed {
    /// `hidden_dim` must be a multiple of 6 (48 in 3DShape2VecSet / Motion2VecSets).
    pub fn load(vb: VarBuilder, hidden_dim: usize, dim: usize) -> Result<Self> {
        if hidden_dim == 0 || !hidden_dim.is_multiple_of(6) {
            bail!("PointEmbed: hidden_dim {hidden_dim} must be a positive multiple of 6")
        }
        let fan_in = hidden_dim + 3;
        let bound = 1.0 / (fan_in as f64).sqrt();
        let init = Init::Uniform { lo: -bound, up: bound };
        let vm = vb.pp("mlp");
        let w = vm.get_with_hints((dim, fan_in), "weight", init)?;
        let b = vm.get_with_hints(dim, "bias", init)?;
        Ok(Self {
            num_freqs: hidden_dim / 6,
            mlp: Linear::new(w, Some(b)),
        })
    }

    pub fn num_freqs(&self) -> usize {
        self.num_freqs
    }
}

impl Module for PointEmbed {
    fn forward(&self, points: &Tensor) -> Result<Tensor> {
        self.mlp.forward(&fourier_embed(points, self.num_freqs, true)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn layout_is_sin_then_cos_then_input() {
        let p = Tensor::new(&[[[0.25f32, 0.5, -0.125]]], &Device::Cpu).unwrap();
        let e = fourier_embed(&p, 2, true)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(e.len(), 15);
        let pi = std::f32::consts::PI;
        // sin(y·2π) sits at index 3 (x·π, x·2π, y·π, y·2π, …).
        assert!((e[3] - (0.5f32 * 2.0 * pi).sin()).abs() < 1e-6);
        // cos(z·π) at 6 + 4.
        assert!((e[10] - (-0.125f32 * pi).cos()).abs() < 1e-6);
        assert_eq!(&e[12..], &[0.25, 0.5, -0.125]);
    }
}
