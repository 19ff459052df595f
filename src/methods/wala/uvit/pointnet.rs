//! WaLa's point-cloud condition encoder `PointNet_Large` (`src/latent_model/points_network.py`):
//! a per-point MLP, attention pooling onto `num_inds` learned induced points, four transformer
//! blocks. Keys are those under the checkpoint's `encoder.`.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, LayerNorm, Linear, VarBuilder, linear};

use super::config::POINTNET_HEADS;
use super::layers::{CrossAttention, MLP_RATIO, Mlp, SelfAttention, layer_norm, plain_layer_norm};

/// Widths of the per-point MLP before `linear4`, hard-coded upstream.
const WIDTHS: [usize; 4] = [3, 64, 256, 1024];
/// `t_blocks`: the default `depth=4`, which the trainer does not override.
const DEPTH: usize = 4;

/// `DiTBlock_Basic` of the encoder: pre-norm self-attention (no qkv bias) and MLP, both
/// residual, non-affine norms with ε 1e-6 — no modulation.
#[derive(Clone, Debug)]
struct BasicBlock {
    norm: LayerNorm,
    attn: SelfAttention,
    mlp: Mlp,
}

impl Module for BasicBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.norm.forward(x)?)?)?;
        &x + self.mlp.forward(&self.norm.forward(&x)?)?
    }
}

/// `PointNet_Large(output_dim=Dc, pc_dims=P, num_inds=Nc, num_heads=16)`: points `(B, N, 3)`
/// (used as given: upstream normalises nothing) → condition tokens `(B, Nc, Dc)`.
#[derive(Clone, Debug)]
pub struct PointNetLarge {
    /// `linear{1..4}` each followed by `ln{1..4}` and SiLU.
    point_mlp: Vec<(Linear, LayerNorm)>,
    /// `pooling.I` `(1, Nc, P)`.
    induced: Tensor,
    /// `pooling.mab0`.
    pool_attn: CrossAttention,
    /// `pooling.norm` (non-affine) and `pooling.mlp` (P → 4P → Dc).
    pool_norm: LayerNorm,
    pool_mlp: Mlp,
    blocks: Vec<BasicBlock>,
}

impl PointNetLarge {
    pub fn load(vb: VarBuilder, context_dim: usize, pc_dims: usize, num_inds: usize) -> Result<Self> {
        let mut widths = WIDTHS.to_vec();
        widths.push(pc_dims);
        let point_mlp = (0..4)
            .map(|i| {
                Ok((
                    linear(widths[i], widths[i + 1], vb.pp(format!("linear{}", i + 1)))?,
                    layer_norm(vb.pp(format!("ln{}", i + 1)), widths[i + 1])?,
                ))
            })
            .collect::<Result<_>>()?;
        let pool = vb.pp("pooling");
        let blocks = (0..DEPTH)
            .map(|i| {
                let b = vb.pp(format!("t_blocks.{i}"));
                Ok(BasicBlock {
                    norm: plain_layer_norm(&b, context_dim)?,
                    attn: SelfAttention::load(b.pp("attn"), context_dim, POINTNET_HEADS, false)?,
                    mlp: Mlp::load(b.pp("mlp"), context_dim, MLP_RATIO * context_dim, context_dim)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            point_mlp,
            // `nn.init.xavier_uniform_(self.I)`: torch's fans of a (1, Nc, P) tensor are Nc·P and P.
            induced: pool.get_with_hints((1, num_inds, pc_dims), "I", {
                let bound = (6.0 / ((num_inds * pc_dims + pc_dims) as f64)).sqrt();
                Init::Uniform { lo: -bound, up: bound }
            })?,
            pool_attn: CrossAttention::load(pool.pp("mab0"), pc_dims, pc_dims, POINTNET_HEADS)?,
            pool_norm: plain_layer_norm(&pool, pc_dims)?,
            // The pooling MLP also projects to the context width.
            pool_mlp: Mlp::load(pool.pp("mlp"), pc_dims, MLP_RATIO * pc_dims, context_dim)?,
            blocks,
        })
    }
}

impl Module for PointNetLarge {
    fn forward(&self, points: &Tensor) -> Result<Tensor> {
        let mut x = points.clone();
        for (lin, ln) in &self.point_mlp {
            x = ln.forward(&lin.forward(&x)?)?.silu()?;
        }
        let (b, (_, n, p)) = (x.dim(0)?, self.induced.dims3()?);
        let queries = self.induced.broadcast_as((b, n, p))?.contiguous()?;
        // The induced attention block has no residual anywhere: its output replaces the queries.
        let h = self.pool_attn.forward(&queries, &x)?;
        let mut h = self.pool_mlp.forward(&self.pool_norm.forward(&h)?)?;
        for block in &self.blocks {
            h = block.forward(&h)?;
        }
        Ok(h)
    }
}
