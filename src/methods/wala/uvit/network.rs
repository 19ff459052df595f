//! `Latent_UVIT` (`src/latent_model/latent_uvit_utils.py`): ResBlocks at the latent grid's
//! resolution, a patch transformer in the middle, ResBlocks back up with LIFO skips. Keys are
//! those under the wrapper's `unet.`.

use candle_core::{Module, Result, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder, linear};

use super::blocks::{DitBlock, ResBlock, conv3, group_norm};
use super::config::UvitConfig;
use super::layers::{GlobalProj, SiluMlp, TimestepEmbedder, layer_norm, small_normal};
use crate::core::ops::{Conv3d, GroupNorm};

/// The grid ↔ token layout of `to_patch_att_embedding_{input,output}` (einops
/// `b c (h p1) (w p2) (l p3) <-> b (h w l) (p1 p2 p3 c)`): tokens in `(h, w, l)` order with `l`
/// fastest, features in `(p1, p2, p3, c)` order with the **channel fastest**.
#[derive(Clone, Copy, Debug)]
struct Patches {
    /// Patches per side `a = G/p`.
    side: usize,
    patch: usize,
    channels: usize,
}

impl Patches {
    fn tokens(self, x: &Tensor) -> Result<Tensor> {
        let (a, p, c) = (self.side, self.patch, self.channels);
        let b = x.dim(0)?;
        // (b, c, h, p1, w, p2, l, p3) → (b, h, w, l, p1, p2, p3, c)
        x.reshape(vec![b, c, a, p, a, p, a, p])?
            .permute([0, 2, 4, 6, 3, 5, 7, 1])?
            .reshape((b, a * a * a, p * p * p * c))
    }

    fn grid(self, t: &Tensor) -> Result<Tensor> {
        let (a, p, c) = (self.side, self.patch, self.channels);
        let b = t.dim(0)?;
        // (b, h, w, l, p1, p2, p3, c) → (b, c, h, p1, w, p2, l, p3)
        t.reshape(vec![b, a, a, a, p, p, p, c])?
            .permute([0, 7, 1, 4, 2, 5, 3, 6])?
            .reshape((b, c, a * p, a * p, a * p))
    }
}

/// `Latent_UVIT` in evaluation mode (`learn_sigma=False`: the output has the input's channels).
#[derive(Clone, Debug)]
pub struct LatentUvit {
    t_embedder: TimestepEmbedder,
    /// `res_cond_proj_layer` (`add_condition_res_ch`).
    res_cond_proj: Option<GlobalProj>,
    /// `Some(None)`: conditional with an identity `context_mlp` (plain DiT blocks);
    /// `Some(Some(_))`: `cross_dit`; `None`: unconditional.
    context_mlp: Option<Option<SiluMlp>>,
    /// `global_proj`, used when `add_condition_time_ch` is truthy.
    global_proj: Option<GlobalProj>,
    conv_in: Conv3d,
    input_blocks: Vec<ResBlock>,
    patches: Patches,
    patch_in_norm: LayerNorm,
    patch_in: Linear,
    pos_emb: Tensor,
    register_emb: Option<Tensor>,
    blocks: Vec<DitBlock>,
    patch_out_norm: LayerNorm,
    patch_out: Linear,
    output_blocks: Vec<ResBlock>,
    out_norm: GroupNorm,
    out_conv: Conv3d,
}

impl LatentUvit {
    /// `vb` at the wrapper's `unet`. The config must have been validated.
    pub fn load(vb: VarBuilder, cfg: &UvitConfig) -> Result<Self> {
        let condition = cfg.condition().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let context_dim = condition.context_dim();
        let (h, c, p) = (cfg.att_hidden_size, cfg.unet_model_channels, cfg.att_patch_size);
        let res_ch = cfg.add_condition_res_ch;
        let a = cfg.patch_grid();
        let patch_features = p * p * p * c;
        let n_res = cfg.num_res_blocks();
        let res_blocks = |prefix: &str, skip: Option<Option<usize>>| -> Result<Vec<ResBlock>> {
            (0..n_res)
                .map(|i| ResBlock::load(vb.pp(format!("{prefix}.{i}")), c, h, skip, res_ch))
                .collect()
        };
        let res_cond_proj = match (res_ch, context_dim) {
            (Some(r), Some(dc)) => Some(GlobalProj::load(vb.pp("res_cond_proj_layer"), dc, r, h)?),
            _ => None,
        };
        let context_mlp = context_dim
            .map(|dc| {
                cfg.cross_attention()
                    .then(|| SiluMlp::load(vb.pp("context_mlp"), dc, h, h))
                    .transpose()
            })
            .transpose()?;
        let global_proj = match context_dim {
            Some(dc) if cfg.add_condition_time_ch => Some(GlobalProj::load(vb.pp("global_proj"), dc, h, h)?),
            _ => None,
        };
        let r = cfg.transformer_add_num_register;
        Ok(Self {
            t_embedder: TimestepEmbedder::load(vb.pp("t_embedder"), h)?,
            res_cond_proj,
            context_mlp,
            global_proj,
            conv_in: conv3(vb.pp("conv_in"), cfg.e_dim, c)?,
            input_blocks: res_blocks("input_blocks", None)?,
            patches: Patches {
                side: a,
                patch: p,
                channels: c,
            },
            patch_in_norm: layer_norm(vb.pp("to_patch_att_embedding_input.1"), patch_features)?,
            patch_in: linear(patch_features, h, vb.pp("to_patch_att_embedding_input.2"))?,
            // A frozen sin-cos table (`with_fix_pos`) is stored like a learned one: always loaded.
            pos_emb: vb.get_with_hints((1, a * a * a, h), "pos_emb", small_normal(0.01))?,
            register_emb: (r > 0)
                .then(|| vb.get_with_hints((1, r, h), "register_emb", small_normal(0.01)))
                .transpose()?,
            blocks: (0..cfg.transformer_num_blocks)
                .map(|i| {
                    DitBlock::load(
                        vb.pp(format!("blocks.{i}")),
                        h,
                        cfg.transformer_num_heads,
                        cfg.cross_attention(),
                    )
                })
                .collect::<Result<_>>()?,
            patch_out_norm: layer_norm(vb.pp("to_patch_att_embedding_output.0"), h)?,
            patch_out: linear(h, patch_features, vb.pp("to_patch_att_embedding_output.1"))?,
            output_blocks: res_blocks("output_blocks", Some(cfg.learnable_skip_r))?,
            out_norm: group_norm(vb.pp("out.0"), c)?,
            out_conv: conv3(vb.pp("out.2"), c, cfg.e_dim)?,
        })
    }

    /// The network output (ε or x̂₀) for latents `x` `(B, E, G, G, G)` at the original timesteps
    /// `t` `(B,)`, given the processed condition tokens `(B, Nc, Dc)` (the wrapper's
    /// `process_condition`; `None` for an unconditional model).
    pub fn forward(&self, x: &Tensor, t: &Tensor, latent_codes: Option<&Tensor>) -> Result<Tensor> {
        let temb = self.t_embedder.forward(t)?;
        let need_codes =
            || latent_codes.ok_or_else(|| candle_core::Error::Msg("this WaLa network needs condition tokens".into()));
        let res_emb = self
            .res_cond_proj
            .as_ref()
            .map(|p| p.forward(need_codes()?))
            .transpose()?;
        let context = match &self.context_mlp {
            None => None,
            Some(None) => Some(need_codes()?.clone()),
            Some(Some(mlp)) => Some(mlp.forward(need_codes()?)?),
        };
        // Only the transformer blocks see the pooled condition; the ResBlocks get pure time.
        let att_t = match &self.global_proj {
            Some(g) => (&temb + g.forward(need_codes()?)?)?,
            None => temb.clone(),
        };

        let mut h = self.conv_in.forward(x)?;
        let mut skips = Vec::with_capacity(self.input_blocks.len());
        for block in &self.input_blocks {
            h = block.forward(&h, &temb, None, res_emb.as_ref())?;
            skips.push(h.clone());
        }
        let tokens = self.patches.tokens(&h)?;
        let mut z = self
            .patch_in
            .forward(&self.patch_in_norm.forward(&tokens)?)?
            .broadcast_add(&self.pos_emb)?;
        let n_tokens = z.dim(1)?;
        // Registers are appended after the position embedding (they get none) and dropped after.
        if let Some(reg) = &self.register_emb {
            let (b, (_, r, hd)) = (z.dim(0)?, reg.dims3()?);
            z = Tensor::cat(&[z, reg.broadcast_as((b, r, hd))?.contiguous()?], 1)?;
        }
        for block in &self.blocks {
            z = block.forward(&z, &att_t, context.as_ref())?;
        }
        let z = z.narrow(1, 0, n_tokens)?;
        let mut h = self
            .patches
            .grid(&self.patch_out.forward(&self.patch_out_norm.forward(&z)?)?)?;
        for block in &self.output_blocks {
            let skip = skips
                .pop()
                .ok_or_else(|| candle_core::Error::Msg("Latent_UVIT: more output than input blocks".into()))?;
            h = block.forward(&h, &temb, Some(&skip), res_emb.as_ref())?;
        }
        self.out_conv.forward(&self.out_norm.forward_silu(&h)?)
    }
}
