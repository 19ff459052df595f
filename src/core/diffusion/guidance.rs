//! Classifier-free guidance (Ho & Salimans 2022) as a [`Denoiser`] wrapper:
//! out = out_uncond + w·(out_cond − out_uncond). WaLa: `eps_u + s·(eps_c − eps_u)` with a zero (or learned)
//! null condition (wala.md §4). Guidance is linear in the model output, so it applies equally to ε, x̂₀
//! and v predictions. For learned-variance models only the first `guided_channels` channels are guided;
//! the rest (the variance values) are taken from the conditional pass, as GLIDE / guided-diffusion do.

use super::{Denoiser, Prediction};
use candle_core::Tensor;

/// The "no condition" input of the unconditional pass.
#[derive(Debug, Clone)]
pub enum NullCond {
    /// A zero tensor shaped like the condition.
    Zeros,
    /// A learned null embedding, broadcast to the condition's shape (e.g. `cond_zero_emb`).
    Tensor(Tensor),
    /// Call the model with `cond = None` (cannot be batched with the conditional pass).
    Absent,
}

pub struct ClassifierFree<'a> {
    pub inner: &'a dyn Denoiser,
    /// Guidance scale w: 0 = unconditional, 1 = conditional, > 1 = guided.
    pub scale: f64,
    pub null: NullCond,
    /// Run both passes as one batch of 2B (one model call) when the null condition allows it.
    pub batched: bool,
    /// Guide only the first this-many channels of dimension 1 (learned-variance models); `None`: all.
    pub guided_channels: Option<usize>,
}

impl<'a> ClassifierFree<'a> {
    /// Guidance with a zero null condition, batched.
    pub fn new(inner: &'a dyn Denoiser, scale: f64) -> Self {
        Self {
            inner,
            scale,
            null: NullCond::Zeros,
            batched: true,
            guided_channels: None,
        }
    }

    fn null_for(&self, cond: &Tensor) -> candle_core::Result<Option<Tensor>> {
        match &self.null {
            NullCond::Zeros => Ok(Some(cond.zeros_like()?)),
            NullCond::Tensor(n) => Ok(Some(
                n.to_dtype(cond.dtype())?
                    .to_device(cond.device())?
                    .broadcast_as(cond.shape())?
                    .contiguous()?,
            )),
            NullCond::Absent => Ok(None),
        }
    }

    fn combine(&self, cond_out: &Tensor, uncond_out: &Tensor) -> candle_core::Result<Tensor> {
        let w = self.scale;
        match self.guided_channels {
            Some(c) if cond_out.rank() >= 2 && cond_out.dim(1)? > c => {
                let rest = cond_out.dim(1)? - c;
                let gc = cond_out.narrow(1, 0, c)?;
                let gu = uncond_out.narrow(1, 0, c)?;
                let guided = (&gu + (gc - &gu)?.affine(w, 0.0)?)?;
                Tensor::cat(&[guided, cond_out.narrow(1, c, rest)?], 1)
            }
            _ => uncond_out + (cond_out - uncond_out)?.affine(w, 0.0)?,
        }
    }
}

impl Denoiser for ClassifierFree<'_> {
    fn predict(&self, x_t: &Tensor, t: &Tensor, cond: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let Some(cond) = cond else {
            return self.inner.predict(x_t, t, None);
        };
        if self.scale == 1.0 {
            return self.inner.predict(x_t, t, Some(cond));
        }
        let null = self.null_for(cond)?;
        match null {
            Some(null) if self.batched => {
                let b = x_t.dim(0)?;
                let xx = Tensor::cat(&[x_t, x_t], 0)?;
                let tt = Tensor::cat(&[t, t], 0)?;
                let cc = Tensor::cat(&[cond, &null], 0)?;
                let out = self.inner.predict(&xx, &tt, Some(&cc))?;
                self.combine(&out.narrow(0, 0, b)?, &out.narrow(0, b, b)?)
            }
            null => {
                let c = self.inner.predict(x_t, t, Some(cond))?;
                let u = self.inner.predict(x_t, t, null.as_ref())?;
                self.combine(&c, &u)
            }
        }
    }

    fn parameterization(&self) -> Prediction {
        self.inner.parameterization()
    }
}
