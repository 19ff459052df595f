//! The two blocks of `Latent_UVIT`: the time-conditioned convolutional `ResBlock` of the U-shaped
//! ends (with the gated U-skip on the way up) and the adaLN transformer block (`Cross_DiTBlock`, or
//! `DiTBlock` without the cross-attention).

use candle_core::{Module, Result, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder, linear};

use super::config::GROUPS;
use super::layers::{CrossAttention, MLP_RATIO, Mlp, SelfAttention, plain_layer_norm};
use crate::core::ops::{Conv3d, Conv3dConfig, GroupNorm};

/// `GroupNorm32`'s ε.
const GN_EPS: f64 = 1e-5;

/// `conv_nd(3, c, c', 3, padding=1)` with a bias.
pub fn conv3(vb: VarBuilder, cin: usize, cout: usize) -> Result<Conv3d> {
    Conv3d::load(vb, cin, cout, [3; 3], Conv3dConfig::uniform(1, 1), true)
}

pub fn group_norm(vb: VarBuilder, channels: usize) -> Result<GroupNorm> {
    GroupNorm::load(vb, GROUPS, channels, GN_EPS)
}

/// `(B, C)` → `(B, C, 1, 1, 1)`, to broadcast over the grid.
fn per_channel(v: &Tensor) -> Result<Tensor> {
    let (b, c) = v.dims2()?;
    v.reshape((b, c, 1, 1, 1))
}

/// How an output ResBlock merges the skip from its input twin.
#[derive(Clone, Debug)]
struct Skip {
    /// `skip_norm`.
    norm: GroupNorm,
    /// `skip_learn_f.{0,2}` (`learnable_skip_r`): a sigmoid gate per channel computed from the
    /// skip's own spatial mean; without it the two are averaged with `1/√2`.
    gate: Option<(Linear, Linear)>,
}

impl Skip {
    /// `in_norm(x)` merged with `skip_norm(skip)`, before the block's SiLU and first conv.
    fn merge(&self, h: &Tensor, skip: &Tensor) -> Result<Tensor> {
        let s = self.norm.forward(skip)?;
        match &self.gate {
            Some((down, up)) => {
                let k = candle_nn::ops::sigmoid(&up.forward(&down.forward(&s.mean((2, 3, 4))?)?.relu()?)?)?;
                h + s.broadcast_mul(&per_channel(&k)?)?
            }
            None => (h + s)? / std::f64::consts::SQRT_2,
        }
    }
}

/// `ResBlock(C, emb=H, out=C, dims=3, use_scale_shift_norm=True)`: keys `in_norm`, `in_conv`,
/// `emb_layers.1`, `out_layers.0` (norm), `out_layers.3` (conv; dropout sits at `.2`), and for
/// output blocks `skip_norm` (+ `skip_learn_f`); `linear_res_emb` with `add_condition_res_ch`.
/// Width is constant, so the residual is the block's own input.
#[derive(Clone, Debug)]
pub struct ResBlock {
    in_norm: GroupNorm,
    skip: Option<Skip>,
    in_conv: Conv3d,
    emb: Linear,
    out_norm: GroupNorm,
    res_emb: Option<Linear>,
    out_conv: Conv3d,
    channels: usize,
}

impl ResBlock {
    /// `skip`: an output block (`skip_h=True`), with the gate when `learnable_skip_r` is set.
    pub fn load(
        vb: VarBuilder,
        channels: usize,
        emb_channels: usize,
        skip: Option<Option<usize>>,
        res_emb_channels: Option<usize>,
    ) -> Result<Self> {
        let skip = skip
            .map(|r| -> Result<Skip> {
                let gate = r
                    .map(|r| -> Result<(Linear, Linear)> {
                        let f = vb.pp("skip_learn_f");
                        Ok((
                            linear(channels, channels / r, f.pp("0"))?,
                            linear(channels / r, channels, f.pp("2"))?,
                        ))
                    })
                    .transpose()?;
                Ok(Skip {
                    norm: group_norm(vb.pp("skip_norm"), channels)?,
                    gate,
                })
            })
            .transpose()?;
        Ok(Self {
            in_norm: group_norm(vb.pp("in_norm"), channels)?,
            skip,
            in_conv: conv3(vb.pp("in_conv"), channels, channels)?,
            emb: linear(emb_channels, 2 * channels, vb.pp("emb_layers.1"))?,
            out_norm: group_norm(vb.pp("out_layers.0"), channels)?,
            res_emb: res_emb_channels
                .map(|r| linear(r, channels, vb.pp("linear_res_emb")))
                .transpose()?,
            out_conv: conv3(vb.pp("out_layers.3"), channels, channels)?,
            channels,
        })
    }

    /// `emb`: the pure time embedding `(B, H)`; `skip`: the matching input block's output (output
    /// blocks only); `res_emb`: `res_cond_proj_layer(condition)` `(B, rc)` when configured.
    pub fn forward(&self, x: &Tensor, emb: &Tensor, skip: Option<&Tensor>, res_emb: Option<&Tensor>) -> Result<Tensor> {
        let h = match (&self.skip, skip) {
            (Some(s), Some(skip)) => s.merge(&self.in_norm.forward(x)?, skip)?.silu()?,
            (None, None) => self.in_norm.forward_silu(x)?,
            _ => {
                candle_core::bail!("ResBlock: a skip tensor is given to an input block or missing from an output block")
            }
        };
        let h = self.in_conv.forward(&h)?;
        // GLIDE's scale-shift norm: the embedding's first C channels scale, the next C shift.
        let e = self.emb.forward(&emb.silu()?)?;
        let c = self.channels;
        let scale = per_channel(&(e.narrow(1, 0, c)? + 1.0)?)?;
        let shift = per_channel(&e.narrow(1, c, c)?)?;
        let mut h = self
            .out_norm
            .forward(&h)?
            .broadcast_mul(&scale)?
            .broadcast_add(&shift)?;
        if let Some(lin) = &self.res_emb {
            let r = res_emb.ok_or_else(|| candle_core::Error::Msg("ResBlock: res_emb is missing".into()))?;
            h = h.broadcast_mul(&per_channel(&lin.forward(r)?)?)?;
        }
        x + self.out_conv.forward(&h.silu()?)?
    }
}

/// `x·(1 + scale) + shift` with per-sample `(B, H)` modulation over the tokens.
fn modulate(x: &Tensor, shift: &Tensor, scale: &Tensor) -> Result<Tensor> {
    x.broadcast_mul(&(scale.unsqueeze(1)? + 1.0)?)?
        .broadcast_add(&shift.unsqueeze(1)?)
}

/// `Cross_DiTBlock(H, H, heads, mlp_ratio=4)` (or `DiTBlock` when `cross` is `None`): adaLN-Zero
/// self-attention and MLP with non-affine norms (ε 1e-6), and between them an **un-normalised,
/// un-modulated, un-gated** cross-attention to the condition tokens.
#[derive(Clone, Debug)]
pub struct DitBlock {
    norm: LayerNorm,
    attn: SelfAttention,
    cross: Option<CrossAttention>,
    mlp: Mlp,
    /// `adaLN_modulation.1` (after a SiLU): H → 6H.
    ada: Linear,
    hidden: usize,
}

impl DitBlock {
    pub fn load(vb: VarBuilder, hidden: usize, heads: usize, cross: bool) -> Result<Self> {
        Ok(Self {
            norm: plain_layer_norm(&vb, hidden)?,
            attn: SelfAttention::load(vb.pp("attn"), hidden, heads, true)?,
            // The context reaching the blocks went through `context_mlp` first, so it is H wide.
            cross: cross
                .then(|| CrossAttention::load(vb.pp("cross_attn"), hidden, hidden, heads))
                .transpose()?,
            mlp: Mlp::load(vb.pp("mlp"), hidden, MLP_RATIO * hidden, hidden)?,
            // adaLN-Zero: `initialize_weights` zeroes this layer, so a fresh block starts as the
            // identity (the gates are 0).
            ada: {
                let vb = vb.pp("adaLN_modulation.1");
                let zero = candle_nn::Init::Const(0.0);
                Linear::new(
                    vb.get_with_hints((6 * hidden, hidden), "weight", zero)?,
                    Some(vb.get_with_hints(6 * hidden, "bias", zero)?),
                )
            },
            hidden,
        })
    }

    /// `x` `(B, T+R, H)`, `c` the block conditioning `(B, H)`, `context` `(B, Nc, H)`.
    pub fn forward(&self, x: &Tensor, c: &Tensor, context: Option<&Tensor>) -> Result<Tensor> {
        let m = self.ada.forward(&c.silu()?)?;
        // Chunk order: shift, scale, gate for the attention, then the same for the MLP.
        let chunk = |i: usize| m.narrow(1, i * self.hidden, self.hidden);
        let (shift_msa, scale_msa, gate_msa) = (chunk(0)?, chunk(1)?, chunk(2)?);
        let (shift_mlp, scale_mlp, gate_mlp) = (chunk(3)?, chunk(4)?, chunk(5)?);
        let a = self
            .attn
            .forward(&modulate(&self.norm.forward(x)?, &shift_msa, &scale_msa)?)?;
        let mut x = (x + a.broadcast_mul(&gate_msa.unsqueeze(1)?)?)?;
        if let Some(cross) = &self.cross {
            let ctx =
                context.ok_or_else(|| candle_core::Error::Msg("cross-attention block without a context".into()))?;
            x = (&x + cross.forward(&x, ctx)?)?;
        }
        let f = self
            .mlp
            .forward(&modulate(&self.norm.forward(&x)?, &shift_mlp, &scale_mlp)?)?;
        &x + f.broadcast_mul(&gate_mlp.unsqueeze(1)?)?
    }
}
