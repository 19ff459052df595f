//! Observation encoders of `core/network/condition_encoder.py`: `Scan2latent` (one point cloud →
//! tokens) and `Scan2latent_deform_timeatt` (corresponding frame-1 / frame-t points → pair tokens).
//! Both are one cross-attention + GEGLU block whose queries are the observed points themselves, or
//! an FPS subset of them when there are more than `num_latents` (never in the released configs:
//! 300 or 512 points for 512 latents).

use candle_core::{D, Module, Tensor};
use candle_nn::VarBuilder;

use super::M2vsError;
use super::autoencoder::fps_indices;
use super::layers::{PreNormAttention, PreNormFeedForward, load_point_embed};
use crate::core::ops::PointEmbed;

fn gather(x: &Tensor, idx: &Tensor) -> candle_core::Result<Tensor> {
    use candle_core::IndexOp;
    let rows: Vec<Tensor> = (0..x.dim(0)?)
        .map(|i| x.i(i)?.index_select(&idx.i(i)?, 0))
        .collect::<candle_core::Result<_>>()?;
    Tensor::stack(&rows, 0)
}

/// `cross_attend_blocks` of both encoders (keys `cross_attend_blocks.{0,1}.*`).
#[derive(Clone, Debug)]
struct CrossBlock {
    attn: PreNormAttention,
    ff: PreNormFeedForward,
}

impl CrossBlock {
    fn load(vb: VarBuilder, dim: usize) -> candle_core::Result<Self> {
        Ok(Self {
            attn: PreNormAttention::cross(vb.pp("0"), dim, dim)?,
            ff: PreNormFeedForward::load(vb.pp("1"), dim)?,
        })
    }

    fn forward(&self, queries: &Tensor, context: &Tensor) -> candle_core::Result<Tensor> {
        let x = (self.attn.forward(queries, Some(context))? + queries)?;
        &x + self.ff.forward(&x)?
    }
}

/// `Scan2latent(dim, num_inputs, num_latents)`: keys `point_embed.*`, `cross_attend_blocks.*`.
#[derive(Clone, Debug)]
pub struct Scan2Latent {
    point_embed: PointEmbed,
    block: CrossBlock,
    num_inputs: usize,
    num_latents: usize,
}

impl Scan2Latent {
    pub fn load(vb: VarBuilder, dim: usize, num_inputs: usize, num_latents: usize) -> candle_core::Result<Self> {
        Ok(Self {
            point_embed: load_point_embed(vb.pp("point_embed"), dim)?,
            block: CrossBlock::load(vb.pp("cross_attend_blocks"), dim)?,
            num_inputs,
            num_latents,
        })
    }

    /// `(B, num_inputs, 3)` → `(B, min(num_inputs, num_latents), dim)`.
    pub fn forward(&self, points: &Tensor) -> Result<Tensor, M2vsError> {
        match points.dims() {
            &[_, n, 3] if n == self.num_inputs => {}
            d => {
                return Err(M2vsError::Shape(format!(
                    "observed points must be (B, {}, 3), got {d:?}",
                    self.num_inputs
                )));
            }
        }
        let all = self.point_embed.forward(points)?;
        let queries = if self.num_inputs > self.num_latents {
            let idx = fps_indices(points, self.num_latents)?;
            self.point_embed.forward(&gather(points, &idx)?)?
        } else {
            all.clone()
        };
        Ok(self.block.forward(&queries, &all)?)
    }
}

/// `Scan2latent_deform_timeatt(dim, num_inputs, num_latents)`: points embedded `dim / 2` wide,
/// each pair as `cat(embed(p₁), embed(p_t))`.
#[derive(Clone, Debug)]
pub struct Scan2LatentPairs {
    point_embed: PointEmbed,
    block: CrossBlock,
    num_inputs: usize,
    num_latents: usize,
}

impl Scan2LatentPairs {
    pub fn load(vb: VarBuilder, dim: usize, num_inputs: usize, num_latents: usize) -> candle_core::Result<Self> {
        Ok(Self {
            point_embed: load_point_embed(vb.pp("point_embed"), dim / 2)?,
            block: CrossBlock::load(vb.pp("cross_attend_blocks"), dim)?,
            num_inputs,
            num_latents,
        })
    }

    /// Corresponding points `(B, T, num_inputs, 3)` on frame 1 (`src`, usually frame 1 repeated)
    /// and frame t (`tgt`) → `(B, T, N', dim)`. FPS (when needed) runs on the first frame of
    /// `src` and picks the same points in every frame, as the reference does.
    pub fn forward(&self, src: &Tensor, tgt: &Tensor) -> Result<Tensor, M2vsError> {
        let (b, t, n) = match src.dims() {
            &[b, t, n, 3] if n == self.num_inputs && tgt.dims() == src.dims() => (b, t, n),
            d => {
                return Err(M2vsError::Shape(format!(
                    "paired observations must both be (B, T, {}, 3), got {d:?} and {:?}",
                    self.num_inputs,
                    tgt.dims()
                )));
            }
        };
        let flat_src = src.reshape((b * t, n, 3))?;
        let flat_tgt = tgt.reshape((b * t, n, 3))?;
        let pair = |a: &Tensor, c: &Tensor| -> candle_core::Result<Tensor> {
            Tensor::cat(&[self.point_embed.forward(a)?, self.point_embed.forward(c)?], D::Minus1)
        };
        let all = pair(&flat_src, &flat_tgt)?;
        let queries = if self.num_inputs > self.num_latents {
            use candle_core::IndexOp;
            let idx = fps_indices(&src.i((.., 0))?.contiguous()?, self.num_latents)?;
            // The first frame's indices for every frame of the same sequence.
            let idx = idx
                .unsqueeze(1)?
                .broadcast_as((b, t, self.num_latents))?
                .reshape((b * t, self.num_latents))?;
            pair(&gather(&flat_src, &idx)?, &gather(&flat_tgt, &idx)?)?
        } else {
            all.clone()
        };
        let x = self.block.forward(&queries, &all)?;
        let (_, m, c) = x.dims3()?;
        Ok(x.reshape((b, t, m, c))?)
    }
}
