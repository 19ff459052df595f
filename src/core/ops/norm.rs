//! Group normalisation over `(B, C, ...)` tensors of any rank ≥ 3, as `torch.nn.GroupNorm`.
//!
//! candle_nn's `GroupNorm` already handles every rank ≥ 3 correctly (it normalises the
//! `(B, groups, C/groups · ∏spatial)` view with the biased variance and `(var + eps).sqrt()`,
//! exactly torch's definition), so this wraps it, adding torch's `affine=False` case and a
//! loader with torch's key names.
//!
//! On the CPU, for contiguous f32 inference (nothing tracked for autograd), a direct two-pass
//! rayon kernel replaces it: candle's composed ops take ~4× torch's time on LDAE-sized volumes
//! (1×64×128×160×128) and a following SiLU costs another full pass, which [`group_norm_silu`]
//! fuses. Anything that needs gradients, or another device or dtype, keeps the candle path.

use candle_core::{CpuStorage, DType, Device, Module, Result, Storage, Tensor, bail};
use candle_nn::{Init, LayerNorm, VarBuilder};
use rayon::prelude::*;

/// `nn.LayerNorm(width, eps)`: keys `weight` and `bias`, exactly (no `gamma`/`beta` aliases). A
/// training backend creates them as torch does, 1 and 0: a zero weight, what a bare `get` hands
/// out, outputs zeros and, where the norm feeds q and k of an attention, also stops every
/// gradient that could move it.
pub fn layer_norm(vb: VarBuilder, width: usize, eps: f64) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        vb.get_with_hints(width, "weight", Init::Const(1.0))?,
        vb.get_with_hints(width, "bias", Init::Const(0.0))?,
        eps,
    ))
}

/// `nn.LayerNorm(width, elementwise_affine=False, eps)`: no keys.
pub fn plain_layer_norm(width: usize, eps: f64, dtype: DType, device: &Device) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        Tensor::ones(width, dtype, device)?,
        Tensor::zeros(width, dtype, device)?,
        eps,
    ))
}

/// `torch.nn.functional.group_norm(x, num_groups, weight, bias, eps)` for `x` of shape
/// `(B, C, ...)`, rank ≥ 3. `weight` and `bias` are `(C)`; `None` means 1 and 0.
pub fn group_norm(
    x: &Tensor,
    num_groups: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    group_norm_maybe_silu(x, num_groups, weight, bias, eps, false)
}

/// `silu(group_norm(x, ...))`, fused into one pass on the CPU fast path.
pub fn group_norm_silu(
    x: &Tensor,
    num_groups: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    group_norm_maybe_silu(x, num_groups, weight, bias, eps, true)
}

fn group_norm_maybe_silu(
    x: &Tensor,
    num_groups: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
    silu: bool,
) -> Result<Tensor> {
    check_shapes(x, num_groups, weight, bias)?;
    if let Some(y) = fast_cpu::group_norm(x, num_groups, weight, bias, eps, silu)? {
        return Ok(y);
    }
    let y = group_norm_candle(x, num_groups, weight, bias, eps)?;
    if silu { y.silu() } else { Ok(y) }
}

fn check_shapes(x: &Tensor, num_groups: usize, weight: Option<&Tensor>, bias: Option<&Tensor>) -> Result<()> {
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
    for t in [weight, bias].into_iter().flatten() {
        if t.dims() != [c] {
            bail!("group_norm: affine parameter of shape {:?} for {c} channels", t.dims())
        }
    }
    Ok(())
}

/// candle_nn's composed (differentiable, any-device) group norm; shapes already checked.
fn group_norm_candle(
    x: &Tensor,
    num_groups: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    let c = x.dim(1)?;
    let affine = |t: Option<&Tensor>, fill: f64| -> Result<Tensor> {
        match t {
            Some(t) => Ok(t.clone()),
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

    /// `silu(self.forward(x))`, fused on the CPU inference path.
    pub fn forward_silu(&self, x: &Tensor) -> Result<Tensor> {
        group_norm_silu(x, self.num_groups, self.weight.as_ref(), self.bias.as_ref(), self.eps)
    }
}

impl Module for GroupNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        group_norm(x, self.num_groups, self.weight.as_ref(), self.bias.as_ref(), self.eps)
    }
}

/// The direct CPU kernel: pass 1 reduces each (batch, group) slab to mean and variance, pass 2
/// writes `x·scale + shift` per channel (optionally through SiLU). Both passes are split into
/// cache-sized blocks so a batch of one with 32 groups still fills every core.
mod fast_cpu {
    use super::*;

    /// Elements per reduction/write task: large enough to amortise rayon, small enough (256 KiB)
    /// for the two sweeps of a stats block to hit cache.
    const BLOCK: usize = 1 << 16;

    /// `Ok(None)` when the fast path does not apply (autograd, device, dtype, layout).
    pub(super) fn group_norm(
        x: &Tensor,
        num_groups: usize,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
        silu: bool,
    ) -> Result<Option<Tensor>> {
        let params = [weight, bias].into_iter().flatten();
        let eligible = |t: &Tensor| t.device().is_cpu() && t.dtype() == candle_core::DType::F32 && !t.track_op();
        if !eligible(x) || !params.clone().all(eligible) {
            return Ok(None);
        }
        let (b, c) = (x.dim(0)?, x.dim(1)?);
        let spatial: usize = x.dims()[2..].iter().product();
        if spatial == 0 || b == 0 {
            return Ok(None);
        }
        let weight = weight.map(|t| t.to_vec1::<f32>()).transpose()?;
        let bias = bias.map(|t| t.to_vec1::<f32>()).transpose()?;
        let (storage, layout) = x.storage_and_layout();
        let Storage::Cpu(CpuStorage::F32(data)) = &*storage else {
            return Ok(None);
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            return Ok(None);
        };
        let data = &data[start..end];
        let group_len = c / num_groups * spatial;
        let stats: Vec<Moments> = data
            .par_chunks(group_len)
            .map(|g| {
                g.par_chunks(BLOCK)
                    .map(Moments::of)
                    .reduce(Moments::default, Moments::merge)
            })
            .collect();
        let channels_per_group = c / num_groups;
        let mut out = vec![0f32; data.len()];
        out.par_chunks_mut(spatial)
            .zip(data.par_chunks(spatial))
            .enumerate()
            .for_each(|(bc, (o, i))| {
                let ch = bc % c;
                let m = &stats[(bc / c) * num_groups + ch / channels_per_group];
                let inv_std = 1.0 / (m.variance() + eps).sqrt();
                let w = weight.as_ref().map_or(1.0, |w| w[ch] as f64);
                let scale = w * inv_std;
                let shift = bias.as_ref().map_or(0.0, |b| b[ch] as f64) - m.mean * scale;
                let (scale, shift) = (scale as f32, shift as f32);
                o.par_chunks_mut(BLOCK).zip(i.par_chunks(BLOCK)).for_each(|(o, i)| {
                    if silu {
                        for (o, &v) in o.iter_mut().zip(i) {
                            let y = v * scale + shift;
                            *o = y / (1.0 + exp_f32(-y));
                        }
                    } else {
                        for (o, &v) in o.iter_mut().zip(i) {
                            *o = v * scale + shift;
                        }
                    }
                });
            });
        drop(storage);
        Tensor::from_vec(out, x.shape(), x.device()).map(Some)
    }

    /// Count, mean and sum of squared deviations, merged with Chan et al.'s pairwise update so
    /// large groups keep f64 accuracy without a separate mean pass over memory.
    #[derive(Clone, Copy, Default)]
    struct Moments {
        n: f64,
        mean: f64,
        m2: f64,
    }

    impl Moments {
        fn of(block: &[f32]) -> Self {
            let n = block.len() as f64;
            let mean = lanes_sum(block, |v| v as f64) / n;
            let m2 = lanes_sum(block, |v| (v as f64 - mean).powi(2));
            Self { n, mean, m2 }
        }

        fn merge(a: Self, b: Self) -> Self {
            if a.n == 0.0 {
                return b;
            }
            if b.n == 0.0 {
                return a;
            }
            let n = a.n + b.n;
            let delta = b.mean - a.mean;
            Self {
                n,
                mean: a.mean + delta * b.n / n,
                m2: a.m2 + b.m2 + delta * delta * a.n * b.n / n,
            }
        }

        /// Biased, as torch's group norm.
        fn variance(&self) -> f64 {
            self.m2 / self.n
        }
    }

    /// `e^x` in f32 to ~2 ulp, branch-free so the SiLU loop vectorises (libm's `expf` is a scalar
    /// call per element and was half the fused kernel's time). Cephes' range reduction
    /// `x = n·ln2 + r`, |r| ≤ ln2/2, and its degree-6 polynomial; `x` is clamped to the range whose
    /// `2^n` is a normal f32, which SiLU's `y / (1 + e^-y)` tolerates at both ends.
    #[inline(always)]
    pub(super) fn exp_f32(x: f32) -> f32 {
        const ROUND: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer in the low mantissa bits.
        let x = x.clamp(-87.3, 88.3);
        let t = x * std::f32::consts::LOG2_E + ROUND;
        let n = t - ROUND;
        let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits());
        let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
        let mut p = 1.987_569_1e-4_f32;
        p = p * r + 1.398_199_9e-3;
        p = p * r + 8.333_452e-3;
        p = p * r + 4.166_579_6e-2;
        p = p * r + 0.166_666_65;
        p = p * r + 0.5;
        let e = p * r * r + r + 1.0;
        e * f32::from_bits(n_bits.wrapping_add(127) << 23)
    }

    /// Sum of `f(v)` with eight independent accumulators, so the loop vectorises.
    fn lanes_sum(block: &[f32], f: impl Fn(f32) -> f64) -> f64 {
        let mut acc = [0f64; 8];
        let chunks = block.chunks_exact(8);
        let tail: f64 = chunks.remainder().iter().map(|&v| f(v)).sum();
        for c in chunks {
            for (a, &v) in acc.iter_mut().zip(c) {
                *a += f(v);
            }
        }
        acc.iter().sum::<f64>() + tail
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

    fn max_rel_err(a: &Tensor, b: &Tensor) -> f32 {
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
        a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
    }

    #[test]
    fn fast_cpu_path_matches_candle_path() {
        let dev = Device::Cpu;
        // Off-centre values (mean 3) so a naive E[x²]−E[x]² variance would show.
        let x = (Tensor::randn(0f32, 2.0, (2, 8, 5, 6, 7), &dev).unwrap() + 3.0).unwrap();
        let w = Tensor::randn(1f32, 0.5, 8, &dev).unwrap();
        let b = Tensor::randn(0f32, 0.5, 8, &dev).unwrap();
        for (weight, bias) in [(Some(&w), Some(&b)), (None, None)] {
            for silu in [false, true] {
                let fast = fast_cpu::group_norm(&x, 4, weight, bias, 1e-6, silu).unwrap();
                let fast = fast.expect("contiguous untracked f32 CPU input takes the fast path");
                let mut want = group_norm_candle(&x, 4, weight, bias, 1e-6).unwrap();
                if silu {
                    want = want.silu().unwrap();
                }
                let err = max_rel_err(&fast, &want);
                assert!(err < 1e-5, "affine {} silu {silu}: rel err {err}", weight.is_some());
            }
        }
    }

    #[test]
    fn tracked_or_strided_inputs_take_the_candle_path_and_still_agree() {
        let dev = Device::Cpu;
        let var = candle_core::Var::randn(0f32, 1.0, (1, 4, 3, 4, 5), &dev).unwrap();
        assert!(
            fast_cpu::group_norm(var.as_tensor(), 2, None, None, 1e-5, true)
                .unwrap()
                .is_none()
        );
        let y = group_norm_silu(var.as_tensor(), 2, None, None, 1e-5).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert!(
            grads.get(var.as_tensor()).is_some(),
            "gradient must flow through the candle path"
        );

        let strided = Tensor::randn(0f32, 1.0, (1, 4, 5, 4, 3), &dev)
            .unwrap()
            .transpose(2, 4)
            .unwrap();
        assert!(
            fast_cpu::group_norm(&strided, 2, None, None, 1e-5, false)
                .unwrap()
                .is_none()
        );
        let got = group_norm(&strided, 2, None, None, 1e-5).unwrap();
        let want = group_norm(&strided.contiguous().unwrap(), 2, None, None, 1e-5).unwrap();
        assert!(max_rel_err(&got, &want) < 1e-5);
    }

    /// LDAE decoder size; run with
    /// `cargo test --release --lib core::ops::norm::tests::timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn timing_at_ldae_decoder_size() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (1, 64, 128, 160, 128), &dev).unwrap();
        let w = Tensor::randn(1f32, 0.5, 64, &dev).unwrap();
        let b = Tensor::randn(0f32, 0.5, 64, &dev).unwrap();
        let time = |label: &str, f: &dyn Fn() -> Tensor| {
            let _ = f();
            let t = std::time::Instant::now();
            let reps = 3;
            for _ in 0..reps {
                std::hint::black_box(f());
            }
            println!("{label}: {:.3} s", t.elapsed().as_secs_f64() / reps as f64);
        };
        time("candle group_norm", &|| {
            group_norm_candle(&x, 32, Some(&w), Some(&b), 1e-6).unwrap()
        });
        time("candle group_norm + silu", &|| {
            group_norm_candle(&x, 32, Some(&w), Some(&b), 1e-6)
                .unwrap()
                .silu()
                .unwrap()
        });
        time("fast group_norm", &|| {
            group_norm(&x, 32, Some(&w), Some(&b), 1e-6).unwrap()
        });
        time("fast group_norm_silu", &|| {
            group_norm_silu(&x, 32, Some(&w), Some(&b), 1e-6).unwrap()
        });
    }

    #[test]
    fn vectorisable_exp_is_accurate_where_unclamped() {
        for i in -8_700..=8_800 {
            let x = i as f32 * 0.01;
            let (got, want) = (fast_cpu::exp_f32(x) as f64, (x as f64).exp());
            assert!(((got - want) / want).abs() < 1e-6, "exp({x}) = {got}, want {want}");
        }
        assert!(fast_cpu::exp_f32(-200.0) < 1e-37 && fast_cpu::exp_f32(200.0) > 1e38);
    }
}
