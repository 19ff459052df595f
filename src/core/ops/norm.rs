//! Group normalisation over `(B, C, ...)` tensors of any rank ≥ 3, as `torch.nn.GroupNorm`.
//!
//! candle_nn's `GroupNorm` already handles every rank ≥ 3 correctly (it normalises the
//! `(B, groups, C/groups · ∏spatial)` view with the biased variance and `(var + eps).sqrt()`,
//! exactly torch's definition), so this wraps it, adding torch's `affine=False` case and a
//! loader with torch's key names.

use candle_core::{Module, Result, Tensor, bail};
use candle_nn::{Init, VarBuilder};

/// `torch.nn.functional.group_norm(x, num_groups, weight, bias, eps)` for `x` of shape
/// `(B, C, ...)`, rank ≥ 3. `weight` and `bias` are `(C)`; `None` means 1 and 0.
pub fn group_norm(
    x: &Tensor,
    num_groups: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    if x.rank() < 3 {
        bail!(
            "group_norm: expected (B, C, ...) with at least one spatial axis, got {:?}",
            x.dims()
        )
    }
    let c = x.dim(1)?;
    if num_groups == 0 || !c.is_multiple_of(num_groups) {
        bail!("group_norm: {num_groups} groups do not divide {c} channels")
    }
    let affine = |t: Option<&Tensor>, fill: f64| -> Result<Tensor> {
        match t {
            Some(t) if t.dims() == [c] => Ok(t.clone()),
            Some(t) => bail!("group_norm: affine parameter of shape {:?} for {c} channels", t.dims()),
            None => (Tensor::ones(c, x.dtype(), x.device())? * fill)?.to_dtype(x.dtype()),
        }
    };
    let gn = candle_nn::GroupNorm::new(affine(weight, 1.0)?, affine(bias, 0.0)?, c, num_groups, eps)?;
    gn.forward(x)
}

/// `torch.nn.GroupNorm(num_groups, num_channels, eps, affine=True)`: keys `weight`, `bias` (C).
#[derive(Clone, Debug)]
pub struct GroupNorm {
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    num_groups: usize,
    eps: f64,
}

impl GroupNorm {
    pub fn new(weight: Option<Tensor>, bias: Option<Tensor>, num_groups: usize, eps: f64) -> Self {
        Self {
            weight,
            bias,
            num_groups,
            eps,
        }
    }

    /// Reads `weight` and `bias` (torch's init 1 and 0 when a `VarMap` creates them).
    pub fn load(vb: VarBuilder, num_groups: usize, num_channels: usize, eps: f64) -> Result<Self> {
        if num_groups == 0 || !num_channels.is_multiple_of(num_groups) {
            bail!("GroupNorm: {num_groups} groups do not divide {num_channels} channels")
        }
        let weight = vb.get_with_hints(num_channels, "weight", Init::Const(1.0))?;
        let bias = vb.get_with_hints(num_channels, "bias", Init::Const(0.0))?;
        Ok(Self::new(Some(weight), Some(bias), num_groups, eps))
    }

    /// `affine=False`: no parameters.
    pub fn without_affine(num_groups: usize, eps: f64) -> Self {
        Self::new(None, None, num_groups, eps)
    }

    pub fn num_groups(&self) -> usize {
        self.num_groups
    }

    pub fn eps(&self) -> f64 {
        self.eps
    }
}

impl Module for GroupNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        group_norm(x, self.num_groups, self.weight.as_ref(), self.bias.as_ref(), self.eps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn five_d_matches_a_direct_computation() {
        let x = Tensor::arange(0f32, 2.0 * 4.0 * 3.0 * 2.0 * 2.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 4, 3, 2, 2))
            .unwrap()
            .sin()
            .unwrap();
        let y = group_norm(&x, 2, None, None, 1e-6).unwrap();
        // Group 0 of batch 1 = channels 0..2 of batch 1.
        let g = x
            .get(1)
            .unwrap()
            .narrow(0, 0, 2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let n = g.len() as f64;
        let mean = g.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = g.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let want: Vec<f64> = g.iter().map(|&v| (v as f64 - mean) / (var + 1e-6).sqrt()).collect();
        let got = y
            .get(1)
            .unwrap()
            .narrow(0, 0, 2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for (a, b) in got.iter().zip(&want) {
            assert!((*a as f64 - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}
