//! The KL autoencoders of `core/network/models_ae.py`: `KLAutoEncoder` (shape, occupancy) and
//! `KLAutoEncoder_deform` (point pairs in, absolute frame-t positions out), one type here since
//! they differ only in the point embedding's width, the encoder's input and the output head.
//!
//! The decoder is split in two: [`KlAutoEncoder::prepare`] runs the `proj` + `depth` self-attention
//! blocks, which depend only on the latents, and [`KlAutoEncoder::query`] runs the cheap query
//! cross-attention. The reference's `decode(z, queries)` does both for every query batch, so its
//! mesher repeats the expensive part once per batch; [`KlAutoEncoder::occupancy_grid`] does it
//! once per shape (or per batch with [`GridOptions::recompute_trunk`], to measure the difference).

use candle_core::{D, DType, Device, IndexOp, Module, Tensor};
use candle_nn::{Linear, VarBuilder, linear};

use super::M2vsError;
use super::config::{AutoEncoderConfig, GRID_HALF_EXTENT};
use super::layers::{PreNormAttention, PreNormFeedForward, load_point_embed};
use crate::core::diffusion::Rng;
use crate::core::ops::PointEmbed;

/// `DiagonalGaussianDistribution`'s clamp of the log-variance.
const LOGVAR_MIN: f64 = -30.0;
const LOGVAR_MAX: f64 = 20.0;

/// Farthest point sampling as `torch_cluster.fps` computes it for one cloud: start at `start`,
/// then repeatedly take the point with the largest squared distance (f32) to the chosen set, the
/// first one on ties (torch's `argmax`). The reference starts at a random point
/// (`random_start=True`); this takes the start from the caller so runs are reproducible.
pub fn farthest_point_sample(points: &[[f32; 3]], count: usize, start: usize) -> Vec<usize> {
    let n = points.len();
    if n == 0 || count == 0 {
        return Vec::new();
    }
    let start = start.min(n - 1);
    let d2 = |a: &[f32; 3], b: &[f32; 3]| {
        let (x, y, z) = (a[0] - b[0], a[1] - b[1], a[2] - b[2]);
        x * x + y * y + z * z
    };
    let mut dist: Vec<f32> = points.iter().map(|p| d2(p, &points[start])).collect();
    let mut out = Vec::with_capacity(count.min(n));
    out.push(start);
    while out.len() < count.min(n) {
        let mut best = 0;
        for (i, &d) in dist.iter().enumerate() {
            if d > dist[best] {
                best = i;
            }
        }
        out.push(best);
        for (i, p) in points.iter().enumerate() {
            dist[i] = dist[i].min(d2(p, &points[best]));
        }
    }
    out
}

/// FPS indices `(B, count)` (u32) for `(B, N, 3)` points, each cloud started at its point 0.
pub fn fps_indices(points: &Tensor, count: usize) -> Result<Tensor, M2vsError> {
    let (b, _, _) = points.dims3()?;
    let mut rows = Vec::with_capacity(b * count);
    for bi in 0..b {
        let p: Vec<[f32; 3]> = points
            .i(bi)?
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?
            .into_iter()
            .map(|r| [r[0], r[1], r[2]])
            .collect();
        rows.extend(farthest_point_sample(&p, count, 0).into_iter().map(|i| i as u32));
    }
    Ok(Tensor::from_vec(rows, (b, count), points.device())?)
}

/// `(B, N, C)` rows picked by `(B, M)` indices → `(B, M, C)`.
fn gather_rows(x: &Tensor, idx: &Tensor) -> candle_core::Result<Tensor> {
    let b = x.dim(0)?;
    let rows: Vec<Tensor> = (0..b)
        .map(|i| x.i(i)?.index_select(&idx.i(i)?, 0))
        .collect::<candle_core::Result<_>>()?;
    Tensor::stack(&rows, 0)
}

/// The encoder's diagonal Gaussian (`DiagonalGaussianDistribution`): mean and the clamped
/// log-variance, `(B, M, latent_dim)`.
#[derive(Clone, Debug)]
pub struct Posterior {
    pub mean: Tensor,
    pub logvar: Tensor,
}

impl Posterior {
    fn new(mean: Tensor, logvar: Tensor) -> candle_core::Result<Self> {
        Ok(Self {
            mean,
            logvar: logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)?,
        })
    }

    /// `exp(logvar / 2)`.
    pub fn std(&self) -> candle_core::Result<Tensor> {
        (&self.logvar * 0.5)?.exp()
    }

    /// `mean + std · noise` for a standard-normal `noise` of the mean's shape (the reference's
    /// `sample()` with its `torch.randn` replaced by the caller's tensor).
    pub fn sample_with(&self, noise: &Tensor) -> candle_core::Result<Tensor> {
        &self.mean + self.std()?.mul(&noise.to_dtype(self.mean.dtype())?)?
    }

    /// A posterior sample with noise from our seeded [`Rng`] (not torch's `randn` stream). The
    /// reference samples even at inference; the workbench shows the mean by default and offers
    /// this for fidelity.
    pub fn sample(&self, rng: &mut Rng) -> candle_core::Result<Tensor> {
        let noise = Tensor::from_vec(
            rng.normals_f32(self.mean.elem_count()),
            self.mean.shape(),
            self.mean.device(),
        )?;
        self.sample_with(&noise)
    }
}

/// The output of the decoder's latent-only part (`proj` then the self-attention blocks) for
/// `B` latent sets: `(B, M, dim)`. Query it as often as needed.
#[derive(Clone, Debug)]
pub struct PreparedLatents {
    pub tokens: Tensor,
}

/// How [`KlAutoEncoder::occupancy_grid`] evaluates the grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GridOptions {
    /// Points per axis, spanning `[-0.55, 0.55]` with both ends included (the reference's MISE
    /// starts at 32 cells = 33 points).
    pub points_per_axis: usize,
    /// Query points per decoder call (the reference's generator uses 100 000).
    pub batch: usize,
    /// Run the latent-only part of the decoder again for every batch, as the reference's
    /// `decode(z, queries)` does; off by default (same numbers, much faster).
    pub recompute_trunk: bool,
}

impl Default for GridOptions {
    fn default() -> Self {
        Self {
            points_per_axis: 33,
            batch: 100_000,
            recompute_trunk: false,
        }
    }
}

/// `KLAutoEncoder` / `KLAutoEncoder_deform` with the reference's keys (`point_embed.*`,
/// `cross_attend_blocks.{0,1}.*`, `mean_fc`, `logvar_fc`, `proj`, `layers.{i}.{0,1}.*`,
/// `decoder_cross_attn.*`, `to_outputs`).
#[derive(Clone, Debug)]
pub struct KlAutoEncoder {
    cfg: AutoEncoderConfig,
    point_embed: PointEmbed,
    cross_attn: PreNormAttention,
    cross_ff: PreNormFeedForward,
    mean_fc: Linear,
    logvar_fc: Linear,
    proj: Linear,
    layers: Vec<(PreNormAttention, PreNormFeedForward)>,
    decoder_cross_attn: PreNormAttention,
    to_outputs: Linear,
}

impl KlAutoEncoder {
    /// `vb` at the state dict's root. The config is validated first.
    pub fn load(vb: VarBuilder, cfg: &AutoEncoderConfig) -> candle_core::Result<Self> {
        cfg.validate().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let dim = cfg.dim;
        let blocks = vb.pp("cross_attend_blocks");
        let layers = (0..cfg.depth)
            .map(|i| {
                let l = vb.pp("layers").pp(i.to_string());
                Ok((
                    PreNormAttention::self_attn(l.pp("0"), dim, cfg.heads, cfg.dim_head)?,
                    PreNormFeedForward::load(l.pp("1"), dim)?,
                ))
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            point_embed: load_point_embed(vb.pp("point_embed"), cfg.embed_dim())?,
            cross_attn: PreNormAttention::cross(blocks.pp("0"), dim, dim)?,
            cross_ff: PreNormFeedForward::load(blocks.pp("1"), dim)?,
            mean_fc: linear(dim, cfg.latent_dim, vb.pp("mean_fc"))?,
            logvar_fc: linear(dim, cfg.latent_dim, vb.pp("logvar_fc"))?,
            proj: linear(cfg.latent_dim, dim, vb.pp("proj"))?,
            layers,
            decoder_cross_attn: PreNormAttention::cross(vb.pp("decoder_cross_attn"), cfg.queries_dim, dim)?,
            to_outputs: linear(cfg.queries_dim, cfg.output_dim, vb.pp("to_outputs"))?,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &AutoEncoderConfig {
        &self.cfg
    }

    fn check_points(&self, p: &Tensor, what: &str) -> Result<(usize, usize), M2vsError> {
        match p.dims() {
            &[b, n, 3] if n >= self.cfg.num_latents => Ok((b, n)),
            d => Err(M2vsError::Shape(format!(
                "{what} must be (B, N ≥ {}, 3), got {d:?}",
                self.cfg.num_latents
            ))),
        }
    }

    /// FPS indices `(B, num_latents)`, computed here when not given, checked when given.
    fn indices(&self, points: &Tensor, given: Option<&Tensor>) -> Result<Tensor, M2vsError> {
        let (b, n) = (points.dim(0)?, points.dim(1)?);
        match given {
            None => fps_indices(points, self.cfg.num_latents),
            Some(idx) => {
                if idx.dims() != [b, self.cfg.num_latents] {
                    return Err(M2vsError::Shape(format!(
                        "FPS indices must be (B, {}), got {:?}",
                        self.cfg.num_latents,
                        idx.dims()
                    )));
                }
                let idx = idx.to_dtype(DType::U32)?;
                let max = idx.max_all()?.to_scalar::<u32>()? as usize;
                if max >= n {
                    return Err(M2vsError::Shape(format!("FPS index {max} out of range for {n} points")));
                }
                Ok(idx)
            }
        }
    }

    /// Cross-attention of the sampled embeddings to all of them, FF, then mean / log-variance.
    fn encode_embeddings(&self, sampled: &Tensor, all: &Tensor) -> candle_core::Result<Posterior> {
        let x = (self.cross_attn.forward(sampled, Some(all))? + sampled)?;
        let x = (self.cross_ff.forward(&x)? + &x)?;
        Posterior::new(self.mean_fc.forward(&x)?, self.logvar_fc.forward(&x)?)
    }

    /// Shape encoder: `(B, N, 3)` surface points → posterior over `(B, M, latent_dim)`. The
    /// `M = num_latents` query points are picked by FPS (from point 0, see
    /// [`farthest_point_sample`]) unless `fps` gives their indices `(B, M)`.
    pub fn encode(&self, points: &Tensor, fps: Option<&Tensor>) -> Result<Posterior, M2vsError> {
        if self.cfg.deform {
            return Err(M2vsError::Shape(
                "a deformation autoencoder encodes point pairs (encode_pairs)".into(),
            ));
        }
        self.check_points(points, "points")?;
        let idx = self.indices(points, fps)?;
        let sampled = self.point_embed.forward(&gather_rows(points, &idx)?)?;
        let all = self.point_embed.forward(points)?;
        Ok(self.encode_embeddings(&sampled, &all)?)
    }

    /// Deformation encoder: corresponding points `(B, N, 3)` on frame 1 (`src`) and frame t
    /// (`tgt`); FPS on the frame-1 points picks the same pairs in both; each pair is embedded as
    /// `cat(embed(p), embed(q))`.
    pub fn encode_pairs(&self, src: &Tensor, tgt: &Tensor, fps: Option<&Tensor>) -> Result<Posterior, M2vsError> {
        if !self.cfg.deform {
            return Err(M2vsError::Shape(
                "a shape autoencoder encodes single points (encode)".into(),
            ));
        }
        self.check_points(src, "frame-1 points")?;
        if tgt.dims() != src.dims() {
            return Err(M2vsError::Shape(format!(
                "frame-t points {:?} must match frame-1 points {:?}",
                tgt.dims(),
                src.dims()
            )));
        }
        let idx = self.indices(src, fps)?;
        let embed_pair = |a: &Tensor, b: &Tensor| -> candle_core::Result<Tensor> {
            Tensor::cat(&[self.point_embed.forward(a)?, self.point_embed.forward(b)?], D::Minus1)
        };
        let sampled = embed_pair(&gather_rows(src, &idx)?, &gather_rows(tgt, &idx)?)?;
        let all = embed_pair(src, tgt)?;
        Ok(self.encode_embeddings(&sampled, &all)?)
    }

    /// The decoder's latent-only part for `(B, M, latent_dim)` latents: `proj`, then the
    /// self-attention blocks (pre-LN, residual; DropPath is the identity at inference).
    pub fn prepare(&self, latents: &Tensor) -> Result<PreparedLatents, M2vsError> {
        match latents.dims() {
            &[_, _, l] if l == self.cfg.latent_dim => {}
            d => {
                return Err(M2vsError::Shape(format!(
                    "latents must be (B, M, {}), got {d:?}",
                    self.cfg.latent_dim
                )));
            }
        }
        let mut x = self.proj.forward(latents)?;
        for (attn, ff) in &self.layers {
            x = (attn.forward(&x, None)? + &x)?;
            x = (ff.forward(&x)? + &x)?;
        }
        Ok(PreparedLatents { tokens: x })
    }

    /// Query points `(B, Q, 3)` (or `(1, Q, 3)`, shared by every set) against prepared latents
    /// → `(B, Q, output_dim)`: occupancy logits (shape) or absolute positions at the latents'
    /// frame (deformation).
    pub fn query(&self, prepared: &PreparedLatents, points: &Tensor) -> Result<Tensor, M2vsError> {
        let b = prepared.tokens.dim(0)?;
        let points = match points.dims() {
            &[pb, _, 3] if pb == b => points.clone(),
            &[1, q, 3] => points.broadcast_as((b, q, 3))?.contiguous()?,
            d => return Err(M2vsError::Shape(format!("queries must be ({b} or 1, Q, 3), got {d:?}"))),
        };
        let q = self.point_embed.forward(&points)?;
        let h = self.decoder_cross_attn.forward(&q, Some(&prepared.tokens))?;
        Ok(self.to_outputs.forward(&h)?)
    }

    /// The reference's `decode(z, queries)`: [`prepare`](Self::prepare) then [`query`](Self::query).
    pub fn decode(&self, latents: &Tensor, points: &Tensor) -> Result<Tensor, M2vsError> {
        self.query(&self.prepare(latents)?, points)
    }

    /// Occupancy logits of one shape `(1, M, latent_dim)` on the regular grid of
    /// [`grid_points`], x fastest: element `x + n·(y + n·z)` is the logit at
    /// `(c_x, c_y, c_z)` with `c_i = -0.55 + 1.1·i/(n−1)`.
    pub fn occupancy_grid(&self, latents: &Tensor, opts: &GridOptions) -> Result<Vec<f32>, M2vsError> {
        if self.cfg.deform || self.cfg.output_dim != 1 {
            return Err(M2vsError::Shape("occupancy grids come from a shape autoencoder".into()));
        }
        if latents.dim(0)? != 1 {
            return Err(M2vsError::Shape(format!(
                "one shape at a time, got {:?}",
                latents.dims()
            )));
        }
        if opts.points_per_axis < 2 || opts.batch == 0 {
            return Err(M2vsError::Shape(format!("bad grid options {opts:?}")));
        }
        let n = opts.points_per_axis;
        let total = n * n * n;
        let cached = if opts.recompute_trunk {
            None
        } else {
            Some(self.prepare(latents)?)
        };
        let mut out = Vec::with_capacity(total);
        let mut start = 0;
        while start < total {
            let end = (start + opts.batch).min(total);
            let pts = grid_points(n, start, end, latents.device())?;
            let prepared = match &cached {
                Some(p) => p.clone(),
                None => self.prepare(latents)?,
            };
            out.extend(
                self.query(&prepared, &pts)?
                    .flatten_all()?
                    .to_dtype(DType::F32)?
                    .to_vec1::<f32>()?,
            );
            start = end;
        }
        Ok(out)
    }
}

/// Grid points `start..end` (flat index `x + n·(y + n·z)`) of the `n³` grid over
/// `[-0.55, 0.55]³` as `(1, end − start, 3)` f32.
pub fn grid_points(n: usize, start: usize, end: usize, device: &Device) -> candle_core::Result<Tensor> {
    let step = 2.0 * GRID_HALF_EXTENT / (n - 1) as f64;
    let c = |i: usize| (-GRID_HALF_EXTENT + step * i as f64) as f32;
    let mut v = Vec::with_capacity(3 * (end - start));
    for flat in start..end {
        let (x, y, z) = (flat % n, (flat / n) % n, flat / (n * n));
        v.extend_from_slice(&[c(x), c(y), c(z)]);
    }
    Tensor::from_vec(v, (1, end - start, 3), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fps_takes_the_farthest_point_first_index_on_ties() {
        let p = [
            [0.0, 0.0, 0.0],
            [1.0, 0.0, 0.0],
            [0.0, 2.0, 0.0],
            [0.0, -2.0, 0.0],
            [0.1, 0.0, 0.0],
        ];
        // From 0: farthest are 2 and 3 (tie at 4) → 2; then 3 (distance 4 from 2 is 16, from 0 is 4).
        assert_eq!(farthest_point_sample(&p, 4, 0), vec![0, 2, 3, 1]);
        assert_eq!(farthest_point_sample(&p, 9, 0).len(), 5);
    }

    #[test]
    fn grid_points_are_x_fastest_and_span_the_box() {
        let g = grid_points(3, 0, 27, &Device::Cpu).unwrap().to_vec3::<f32>().unwrap();
        assert_eq!(g[0][0], [-0.55, -0.55, -0.55]);
        assert_eq!(g[0][1], [0.0, -0.55, -0.55]);
        assert_eq!(g[0][3], [-0.55, 0.0, -0.55]);
        assert_eq!(g[0][26], [0.55, 0.55, 0.55]);
    }

    #[test]
    fn posterior_sample_is_mean_plus_std_times_noise() {
        let dev = Device::Cpu;
        let mean = Tensor::new(&[[[1.0f32, 2.0]]], &dev).unwrap();
        let logvar = Tensor::new(&[[[0.0f32, 100.0]]], &dev).unwrap();
        let p = Posterior::new(mean, logvar).unwrap();
        let noise = Tensor::new(&[[[1.0f32, 1.0]]], &dev).unwrap();
        let s = p
            .sample_with(&noise)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(s[0], 2.0);
        // logvar clamped to 20 → std e^10.
        assert!((s[1] - (2.0 + 10f32.exp())).abs() < 1.0);
    }
}
