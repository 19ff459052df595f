//! Linear and spherical interpolation of latents.
//!
//! slerp as in DDIM / PDAE / LDAE interpolation of x_T: θ = arccos(⟨a, b⟩/(‖a‖‖b‖)) over the flattened
//! tensor, slerp = sin((1−α)θ)/sin θ · a + sin(αθ)/sin θ · b. LDAE has no guard for θ = 0 (0/0 = NaN,
//! ldae.md §7); here the cosine is clamped to [−1, 1] and nearly parallel (or antiparallel) inputs,
//! sin θ < 1e-6, fall back to lerp.

use candle_core::{DType, Device, Tensor};

/// (1 − α)·a + α·b.
pub fn lerp(a: &Tensor, b: &Tensor, alpha: f64) -> candle_core::Result<Tensor> {
    a.affine(1.0 - alpha, 0.0)? + b.affine(alpha, 0.0)?
}

/// The tensor on the CPU in f64 (the angle is computed there: some devices lack f64).
fn host_f64(t: &Tensor) -> candle_core::Result<Tensor> {
    t.to_device(&Device::Cpu)?.to_dtype(DType::F64)
}

/// The slerp coefficients (of a, of b) for two flattened vectors.
fn coefficients(dot: f64, na: f64, nb: f64, alpha: f64) -> (f64, f64) {
    let denom = na * nb;
    if denom == 0.0 || !denom.is_finite() {
        return (1.0 - alpha, alpha);
    }
    let theta = (dot / denom).clamp(-1.0, 1.0).acos();
    let s = theta.sin();
    if s < 1e-6 {
        (1.0 - alpha, alpha)
    } else {
        (((1.0 - alpha) * theta).sin() / s, (alpha * theta).sin() / s)
    }
}

/// Spherical interpolation of each batch item (dimension 0), each flattened.
pub fn slerp(a: &Tensor, b: &Tensor, alpha: f64) -> candle_core::Result<Tensor> {
    if a.dims() != b.dims() {
        candle_core::bail!("slerp of tensors with shapes {:?} and {:?}", a.dims(), b.dims());
    }
    if a.rank() == 0 {
        return lerp(a, b, alpha);
    }
    let n = a.dim(0)?;
    let af = host_f64(&a.flatten_from(1)?)?;
    let bf = host_f64(&b.flatten_from(1)?)?;
    let dot: Vec<f64> = (&af * &bf)?.sum(1)?.to_vec1()?;
    let na: Vec<f64> = af.sqr()?.sum(1)?.sqrt()?.to_vec1()?;
    let nb: Vec<f64> = bf.sqr()?.sum(1)?.sqrt()?.to_vec1()?;
    let (ca, cb): (Vec<f64>, Vec<f64>) = (0..n).map(|i| coefficients(dot[i], na[i], nb[i], alpha)).unzip();
    let mut shape = vec![1usize; a.rank()];
    shape[0] = n;
    let ca = Tensor::from_vec(ca, shape.as_slice(), &Device::Cpu)?
        .to_dtype(a.dtype())?
        .to_device(a.device())?;
    let cb = Tensor::from_vec(cb, shape.as_slice(), &Device::Cpu)?
        .to_dtype(a.dtype())?
        .to_device(b.device())?;
    a.broadcast_mul(&ca)? + b.broadcast_mul(&cb)?
}

/// Spherical interpolation over the whole tensor flattened (LDAE's `slerp` on x_T).
pub fn slerp_flat(a: &Tensor, b: &Tensor, alpha: f64) -> candle_core::Result<Tensor> {
    if a.dims() != b.dims() {
        candle_core::bail!("slerp of tensors with shapes {:?} and {:?}", a.dims(), b.dims());
    }
    let af = host_f64(&a.flatten_all()?)?;
    let bf = host_f64(&b.flatten_all()?)?;
    let dot: f64 = (&af * &bf)?.sum_all()?.to_scalar()?;
    let na: f64 = af.sqr()?.sum_all()?.sqrt()?.to_scalar()?;
    let nb: f64 = bf.sqr()?.sum_all()?.sqrt()?.to_scalar()?;
    let (ca, cb) = coefficients(dot, na, nb, alpha);
    a.affine(ca, 0.0)? + b.affine(cb, 0.0)?
}
