//! `VectorQuantizer2` (`src/latent_model/quantize.py`) at inference: every latent vector (the
//! channels of one grid cell) replaced by its nearest codebook entry.

use candle_core::{D, DType, Result, Tensor};
use candle_nn::VarBuilder;

/// The codebook (`quantize.embedding.weight`, `(n_e, e_dim)`) and the distance it is searched with.
#[derive(Clone, Debug)]
pub struct Quantizer {
    codebook: Tensor,
    /// `normalize="l2_norm"`: codes and latents compared (and the code returned) unit-length.
    l2: bool,
}

/// What quantising a grid gives.
#[derive(Clone, Debug)]
pub struct Quantized {
    /// `(B, e_dim, G, G, G)`, as the decoder takes it.
    pub latent: Tensor,
    /// The chosen code of every cell, `(B·G³)` in row-major `(b, d, h, w)` order (u32).
    pub indices: Tensor,
}

/// The codes chosen for a grid, row-major over `(b, d, h, w)`.
#[derive(Clone, Debug)]
pub struct Nearest {
    pub indices: Tensor,
    pub codes: Tensor,
}

/// `F.normalize(x, dim=-1)`: `x / max(‖x‖, 1e-12)`.
fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::INFINITY)?;
    x.broadcast_div(&norm)
}

impl Quantizer {
    pub fn load(vb: VarBuilder, n_e: usize, e_dim: usize, l2: bool) -> Result<Self> {
        Ok(Self {
            codebook: vb.get((n_e, e_dim), "embedding.weight")?,
            l2,
        })
    }

    pub fn codebook(&self) -> &Tensor {
        &self.codebook
    }

    /// Nearest codes of a pre-quant grid `(B, e_dim, G, G, G)`. As upstream: the expanded
    /// distance `‖z‖² + ‖e‖² − 2 z·e` (first index on ties) and the straight-through form
    /// `z + (e − z)`, which can differ from the codebook row in the last bit.
    pub fn quantize(&self, h: &Tensor) -> Result<Quantized> {
        let (b, c, g0, g1, g2) = h.dims5()?;
        let nearest = self.nearest(h)?;
        let mut z = h.permute((0, 2, 3, 4, 1))?.reshape((b * g0 * g1 * g2, c))?;
        if self.l2 {
            z = l2_normalize(&z)?;
        }
        let q = (&z + (nearest.codes - &z)?)?;
        let latent = q.reshape((b, g0, g1, g2, c))?.permute((0, 4, 1, 2, 3))?.contiguous()?;
        Ok(Quantized {
            latent,
            indices: nearest.indices,
        })
    }

    /// The nearest code of every cell of `h` `(B, e_dim, G, G, G)`: indices `(B·G³)` and the codes
    /// `(B·G³, e_dim)` (unit length under `l2_norm`), taken from the codebook so that gradients
    /// reach it (what training needs).
    pub fn nearest(&self, h: &Tensor) -> Result<Nearest> {
        let (b, c, g0, g1, g2) = h.dims5()?;
        let z = h.detach().permute((0, 2, 3, 4, 1))?.reshape((b * g0 * g1 * g2, c))?;
        let (zs, codes) = if self.l2 {
            (l2_normalize(&z)?, l2_normalize(&self.codebook.detach())?)
        } else {
            (z, self.codebook.detach())
        };
        let d = zs
            .sqr()?
            .sum_keepdim(1)?
            .broadcast_add(&codes.sqr()?.sum(1)?.unsqueeze(0)?)?
            .broadcast_sub(&(zs.matmul(&codes.t()?)? * 2.0)?)?;
        let indices = first_argmin(&d)?;
        let mut codes = self.codebook.index_select(&indices, 0)?;
        if self.l2 {
            codes = l2_normalize(&codes)?;
        }
        Ok(Nearest { indices, codes })
    }

    /// The grid of codes `indices` (`(B·G³)`, row-major) as the decoder takes it.
    pub fn lookup(&self, indices: &Tensor, grid: [usize; 4]) -> Result<Tensor> {
        let [b, g0, g1, g2] = grid;
        let mut e = self.codebook.index_select(indices, 0)?;
        if self.l2 {
            e = l2_normalize(&e)?;
        }
        e.reshape((b, g0, g1, g2, self.codebook.dim(1)?))?
            .permute((0, 4, 1, 2, 3))?
            .contiguous()
    }
}

/// Row-wise argmin with torch's tie rule (the first minimum), as u32.
fn first_argmin(d: &Tensor) -> Result<Tensor> {
    let rows = d.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    let idx: Vec<u32> = rows
        .iter()
        .map(|r| {
            let mut best = 0;
            for (i, &v) in r.iter().enumerate() {
                if v < r[best] {
                    best = i;
                }
            }
            best as u32
        })
        .collect();
    Tensor::new(idx.as_slice(), d.device())
}
