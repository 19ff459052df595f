//! The Motion2VecSets demo model (`latent-workbench train m2vs-demo`): the reference's four
//! networks at toy scale (64 latents, width 128, 4 decoder blocks; 2-block denoisers of width 96),
//! trained in one run on the procedural deforming shapes of [`crate::methods::demo_data::motion`].
//!
//! The stages follow the reference's order and objectives (`shared/research/motion2vecsets.md`):
//!
//! 1. **shape autoencoder**: surface points of a frame → posterior sample → occupancy logits of
//!    query points; BCE on volume points + 0.1 × BCE on near-surface points + KL weight × KL
//!    (3DShape2VecSet's `loss_vol + 0.1·loss_near + kl_weight·loss_kl`, KL the mean over latents
//!    and channels, averaged over the batch). Two departures, both for our small thin shapes and
//!    short runs: half the volume points are drawn in the frame's own box ([`LOCAL_MARGIN`]), not
//!    all in the ±0.55 box, and the KL weight is [`SHAPE_KL_WEIGHT`] = 0 (see there why);
//! 2. **deformation autoencoder**: corresponding surface points of frame a and frame b → posterior
//!    sample → frame-b positions of other frame-a surface points; mean squared L2 distance + KL
//!    weight × KL, the weight [`DEFORM_KL_WEIGHT`] = 0 for the shape AE's reason;
//! 3. **shape denoiser**: EDM loss (ln σ ~ N(−1.2, 1.2²), weight (σ² + σ_d²)/(σ·σ_d)²) on the
//!    frozen shape autoencoder's posterior samples, conditioned on [`DEMO_POINTS`] surface
//!    points with Gaussian noise σ = [`SPARSE_NOISE`] (the sparse setting);
//! 4. **deformation denoiser**: EDM loss on the frozen deformation autoencoder's T − 1 latent sets
//!    of a sequence, conditioned on the frozen shape latents of its first frame and on the sparse
//!    noisy (frame 1, frame t) point pairs with the same point identities (`Observation::Paired`).
//!
//! Sequences are periodic (one motion cycle over [`DEMO_FRAMES`] frames), so training sequences
//! start at any frame (a cyclic shift); held-out sequences ([`heldout_specs`]) come from seeds
//! from [`HELDOUT_SEED_BASE`] on and are never trained on.
//!
//! One parameter set holds all four networks (keys `shape_ae.*` … as the bundle stores them);
//! each stage is one [`TrainLoop`] that updates only its network (the others get no gradient).
//! A checkpoint records the stage it was written in, so `--resume` continues in that stage.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use super::bundle::{BundleConfig, M2vsBundle};
use super::config::{AutoEncoderConfig, DenoiserConfig, Observation};
use super::{M2vsError, Posterior};
use crate::core::Mesh;
use crate::core::diffusion::{EdmConfig, Rng};
use crate::core::jobs::JobContext;
use crate::core::train::{
    AdamWConfig, Checkpoint, CheckpointPolicy, LrSchedule, Result, SeededParams, StepOutput, TrainError, TrainLoop,
    TrainReport,
};
use crate::methods::demo_data::motion::{MotionKind, MotionSpec, generate};
use crate::methods::metrics::shape::{InsideTest, surface_samples};

/// Frames per sequence (frame 1 plus 7 deformation frames), one motion cycle.
pub const DEMO_FRAMES: usize = 8;
/// Observed points per frame (both denoisers' condition).
pub const DEMO_POINTS: usize = 256;
/// Surface points per frame given to the autoencoders' encoders.
pub const AE_POINTS: usize = 512;
/// Gaussian noise of the sparse observations (the reference's σ = 0.001).
pub const SPARSE_NOISE: f32 = 0.001;
/// Marching-cubes grid of the procedural rest shapes.
pub const MESH_RESOLUTION: usize = 48;
/// Seeds of held-out sequences start here; training uses seeds `0..per_kind` for every kind.
pub const HELDOUT_SEED_BASE: u64 = 700_000;
/// Half-width of the box the volume queries are drawn from (the meshing box).
pub const QUERY_HALF_BOX: f32 = 0.55;
/// EDM's training distribution of ln σ.
pub const P_MEAN: f64 = -1.2;
pub const P_STD: f64 = 1.2;
/// 3DShape2VecSet's weight of the near-surface BCE.
pub const NEAR_WEIGHT: f64 = 0.1;
/// Standard deviation of the offsets of near-surface query points.
pub const NEAR_SIGMA: f32 = 0.01;
/// How far the shape's own box is grown for the `local` occupancy points. Our shapes fill only
/// 1–6 % of the ±0.55 box (the reference's normalised humans fill far more of theirs), so
/// uniform points alone are nearly all outside and the shape AE settled on "all outside".
pub const LOCAL_MARGIN: f32 = 0.05;

/// The demo model's four configurations.
pub fn demo_config() -> BundleConfig {
    let shape_ae = AutoEncoderConfig {
        depth: 4,
        dim: 128,
        queries_dim: 128,
        output_dim: 1,
        num_inputs: AE_POINTS,
        num_latents: 64,
        latent_dim: 8,
        heads: 4,
        dim_head: 32,
        deform: false,
    };
    let deform_ae = AutoEncoderConfig {
        queries_dim: 64,
        output_dim: 3,
        latent_dim: 32,
        deform: true,
        ..shape_ae.clone()
    };
    let shape_denoiser = DenoiserConfig {
        n_latents: 64,
        channels: 8,
        shape_dim: 8,
        n_heads: 4,
        d_head: 24,
        depth: 2,
        cond_num_inputs: DEMO_POINTS,
        is_deform: false,
        with_t: false,
        observation: Observation::Paired,
        sigma_data: 1.0,
    };
    let deform_denoiser = DenoiserConfig {
        channels: 32,
        is_deform: true,
        with_t: true,
        ..shape_denoiser.clone()
    };
    BundleConfig {
        shape_ae,
        deform_ae,
        shape_denoiser,
        deform_denoiser,
        frames: DEMO_FRAMES,
        points: DEMO_POINTS,
    }
}

/// The parity fixtures' tiny networks (for tests): 16 latents, width 32, 64 AE points, 12
/// observed points.
pub fn tiny_config(frames: usize) -> BundleConfig {
    BundleConfig {
        shape_ae: AutoEncoderConfig::tiny_shape(),
        deform_ae: AutoEncoderConfig::tiny_deform(),
        shape_denoiser: DenoiserConfig::tiny_shape(),
        deform_denoiser: DenoiserConfig::tiny_deform(Observation::Paired),
        frames,
        points: DenoiserConfig::tiny_shape().cond_num_inputs,
    }
}

/// Optimiser steps of the four stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StageSteps {
    pub shape_ae: usize,
    pub deform_ae: usize,
    pub shape_denoiser: usize,
    pub deform_denoiser: usize,
}

impl StageSteps {
    /// `total` split 20 / 40 / 15 / 25 % (each stage at least 1). The deformation autoencoder gets
    /// the largest share: it must place every point to a fraction of its motion, and without a KL
    /// term its held-out error was still falling at 3000 steps (0.119 at 1200, 0.0997 at 3000).
    pub fn split(total: usize) -> Self {
        let part = |p: usize| (total * p / 100).max(1);
        Self {
            shape_ae: part(20),
            deform_ae: part(40),
            shape_denoiser: part(15),
            deform_denoiser: part(25),
        }
    }

    pub fn total(&self) -> usize {
        self.shape_ae + self.deform_ae + self.shape_denoiser + self.deform_denoiser
    }

    fn get(&self, stage: TrainStage) -> usize {
        match stage {
            TrainStage::ShapeAe => self.shape_ae,
            TrainStage::DeformAe => self.deform_ae,
            TrainStage::ShapeDenoiser => self.shape_denoiser,
            TrainStage::DeformDenoiser => self.deform_denoiser,
        }
    }
}

/// The four training stages, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainStage {
    ShapeAe,
    DeformAe,
    ShapeDenoiser,
    DeformDenoiser,
}

impl TrainStage {
    pub const ALL: [TrainStage; 4] = [
        TrainStage::ShapeAe,
        TrainStage::DeformAe,
        TrainStage::ShapeDenoiser,
        TrainStage::DeformDenoiser,
    ];

    pub fn key(self) -> &'static str {
        match self {
            TrainStage::ShapeAe => "shape_ae",
            TrainStage::DeformAe => "deform_ae",
            TrainStage::ShapeDenoiser => "shape_denoiser",
            TrainStage::DeformDenoiser => "deform_denoiser",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|&s| s == self).unwrap_or(0)
    }
}

/// Everything that fixes a run.
#[derive(Clone, Debug)]
pub struct DemoSettings {
    pub config: BundleConfig,
    pub steps: StageSteps,
    pub seed: u64,
    /// Training sequences per motion kind (seeds `0..per_kind`).
    pub train_per_kind: usize,
    /// Held-out sequences evaluated at the end.
    pub heldout: usize,
    pub mesh_resolution: usize,
    /// Tracked surface points stored per sequence (subsets feed the encoders).
    pub surface_points: usize,
    /// Volume and near-surface occupancy points stored per frame (each).
    pub occupancy_points: usize,
    /// Occupancy queries per shape per step (half volume, half near-surface); also the
    /// deformation queries per pair.
    pub queries: usize,
    pub ae_batch: usize,
    pub denoiser_batch: usize,
    pub deform_denoiser_batch: usize,
    pub lr: f64,
    pub shape_kl_weight: f64,
    pub deform_kl_weight: f64,
}

impl DemoSettings {
    /// The shipped model's settings with `total` steps split over the stages.
    pub fn demo(total: usize, seed: u64) -> Self {
        Self {
            config: demo_config(),
            steps: StageSteps::split(total),
            seed,
            train_per_kind: 24,
            heldout: 8,
            mesh_resolution: MESH_RESOLUTION,
            surface_points: 2048,
            occupancy_points: 2048,
            queries: 1024,
            ae_batch: 8,
            denoiser_batch: 16,
            deform_denoiser_batch: 4,
            lr: 1e-3,
            shape_kl_weight: SHAPE_KL_WEIGHT,
            deform_kl_weight: DEFORM_KL_WEIGHT,
        }
    }

    /// The same run with every batch `k`× larger: on a GPU a step costs about as much at 4× the
    /// batch (it is bound by kernel launches at this size), so it sees 4× the data per step.
    pub fn with_batches_scaled(self, k: usize) -> Self {
        let k = k.max(1);
        Self {
            ae_batch: self.ae_batch * k,
            denoiser_batch: self.denoiser_batch * k,
            deform_denoiser_batch: self.deform_denoiser_batch * k,
            ..self
        }
    }

    /// Tiny networks and data for tests.
    pub fn tiny(steps: StageSteps, seed: u64) -> Self {
        Self {
            config: tiny_config(3),
            steps,
            seed,
            train_per_kind: 1,
            heldout: 2,
            mesh_resolution: 16,
            surface_points: 128,
            occupancy_points: 128,
            queries: 64,
            ae_batch: 2,
            denoiser_batch: 2,
            deform_denoiser_batch: 2,
            lr: 3e-3,
            shape_kl_weight: 1e-3,
            deform_kl_weight: 1e-3,
        }
    }

    fn validate(&self) -> Result<()> {
        self.config.validate().map_err(invalid)?;
        let c = &self.config;
        if self.steps.total() == 0 || self.train_per_kind == 0 || self.ae_batch == 0 {
            return Err(TrainError::Invalid(
                "steps, sequences and batch must be positive".into(),
            ));
        }
        if c.frames < 2 {
            return Err(TrainError::Invalid("sequences need at least two frames".into()));
        }
        if self.surface_points < c.shape_ae.num_inputs.max(c.deform_ae.num_inputs).max(c.points)
            || self.surface_points < self.queries
            || self.occupancy_points < self.queries / 2
        {
            return Err(TrainError::Invalid(
                "stored samples must cover the encoders' inputs and the queries".into(),
            ));
        }
        Ok(())
    }
}

fn invalid(e: impl std::fmt::Display) -> TrainError {
    TrainError::Invalid(e.to_string())
}

/// The candle form of a network error inside a step.
fn net<T>(r: std::result::Result<T, M2vsError>) -> candle_core::Result<T> {
    r.map_err(|e| candle_core::Error::Msg(e.to_string()))
}

/// Training sequences: seeds `0..per_kind` of every kind.
pub fn train_specs(per_kind: usize, frames: usize, resolution: usize) -> Vec<MotionSpec> {
    MotionKind::ALL
        .iter()
        .flat_map(|&kind| {
            (0..per_kind as u64).map(move |seed| MotionSpec {
                frames,
                resolution,
                seed,
                ..MotionSpec::new(kind)
            })
        })
        .collect()
}

/// `n` held-out sequences of the demo's length and resolution, the kinds in turn, seeds from
/// [`HELDOUT_SEED_BASE`].
pub fn heldout_specs(n: usize) -> Vec<MotionSpec> {
    (0..n)
        .map(|i| MotionSpec {
            frames: DEMO_FRAMES,
            resolution: MESH_RESOLUTION,
            seed: HELDOUT_SEED_BASE + i as u64,
            ..MotionSpec::new(MotionKind::ALL[i % MotionKind::ALL.len()])
        })
        .collect()
}

/// Occupancy samples of one frame: `volume` uniform points in the ±0.55 box, then `local`
/// uniform points in the frame's own box (grown by `LOCAL_MARGIN`), then points close to the
/// surface, with their inside (1) / outside (0) labels.
#[derive(Clone, Debug)]
pub struct FrameOccupancy {
    pub points: Vec<[f32; 3]>,
    pub labels: Vec<f32>,
    pub volume: usize,
    pub local: usize,
}

impl FrameOccupancy {
    /// Where the near-surface points start.
    fn near_start(&self) -> usize {
        self.volume + self.local
    }
}

/// One sequence prepared for training.
#[derive(Clone, Debug)]
pub struct SequenceData {
    pub name: String,
    /// T frames of the same tracked surface points.
    pub surface: Vec<Vec<[f32; 3]>>,
    /// Per frame (all frames, or only frame 1 when prepared for evaluation).
    pub occupancy: Vec<FrameOccupancy>,
}

/// Generates `spec` and samples it: tracked surface points (area-weighted on frame 1, followed by
/// barycentric coordinates) and occupancy labels by ray parity.
pub fn prepare_sequence(
    spec: &MotionSpec,
    surface_points: usize,
    occupancy_points: usize,
    occupancy_frames: usize,
) -> Result<SequenceData> {
    let g = generate(spec).map_err(invalid)?;
    let seq = g.sequence;
    let mut rng = Rng::new(spec.seed ^ 0x005E_ED0F_5EED ^ ((spec.kind as u64) << 40));
    let picks = surface_samples(&seq.frames[0], &seq.triangles, surface_points, &mut rng);
    if picks.len() != surface_points {
        return Err(TrainError::Invalid(format!("{} has no surface", g.name)));
    }
    let surface: Vec<Vec<[f32; 3]>> = seq
        .frames
        .iter()
        .map(|f| {
            picks
                .iter()
                .map(|&s| crate::methods::metrics::shape::sample_point(f, &seq.triangles, s))
                .collect()
        })
        .collect();
    let mut occupancy = Vec::new();
    for (t, frame) in seq.frames.iter().enumerate().take(occupancy_frames) {
        let mesh = Mesh {
            positions: frame.clone(),
            normals: Vec::new(),
            triangles: seq.triangles.clone(),
            scalars: Vec::new(),
            colors: Vec::new(),
        };
        let inside = InsideTest::new(&mesh);
        let mut points = Vec::with_capacity(3 * occupancy_points);
        for _ in 0..occupancy_points {
            points.push([0; 3].map(|_| ((rng.uniform() * 2.0 - 1.0) as f32) * QUERY_HALF_BOX));
        }
        let (lo, hi) = mesh
            .bounds()
            .ok_or_else(|| TrainError::Invalid(format!("{} frame {} is empty", g.name, t + 1)))?;
        for _ in 0..occupancy_points {
            points.push([0, 1, 2].map(|k| {
                let (a, b) = (lo[k] - LOCAL_MARGIN, hi[k] + LOCAL_MARGIN);
                a + (b - a) * rng.uniform() as f32
            }));
        }
        for _ in 0..occupancy_points {
            let s = surface[t][(rng.next_u64() % surface_points as u64) as usize];
            points.push([0, 1, 2].map(|k| s[k] + NEAR_SIGMA * rng.normal() as f32));
        }
        let labels = points
            .iter()
            .map(|&p| f32::from(u8::from(inside.contains(p))))
            .collect();
        occupancy.push(FrameOccupancy {
            points,
            labels,
            volume: occupancy_points,
            local: occupancy_points,
        });
    }
    Ok(SequenceData {
        name: g.name,
        surface,
        occupancy,
    })
}

/// `k` distinct indices below `n` (partial Fisher–Yates).
fn subset(rng: &mut Rng, n: usize, k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    let k = k.min(n);
    for i in 0..k {
        let j = i + (rng.next_u64() % (n - i) as u64) as usize;
        idx.swap(i, j);
    }
    idx.truncate(k);
    idx
}

fn below(rng: &mut Rng, n: usize) -> usize {
    (rng.next_u64() % n.max(1) as u64) as usize
}

/// Rows of points as a tensor of `dims` (their product must be 3 × the rows).
fn points_tensor(rows: Vec<[f32; 3]>, dims: &[usize], device: &Device) -> candle_core::Result<Tensor> {
    let flat: Vec<f32> = rows.into_iter().flatten().collect();
    Tensor::from_vec(flat, dims, device)
}

fn noisy(p: [f32; 3], rng: &mut Rng) -> [f32; 3] {
    p.map(|c| c + SPARSE_NOISE * rng.normal() as f32)
}

/// KL to the standard normal as the reference's `DiagonalGaussianDistribution.kl`: the **mean**
/// over latents and channels of each sample (`torch.mean(..., dim=[1, 2])`), then summed over the
/// batch and divided by its size. (Summing over the latents instead makes the KL weight 512×–2048×
/// too strong and the posterior collapses onto the prior: the first demo model did exactly that.)
fn kl(p: &Posterior) -> candle_core::Result<Tensor> {
    let terms = ((p.mean.sqr()? + p.logvar.exp()?)? - 1.0)?.sub(&p.logvar)?;
    (terms.mean_all()? * 0.5)?.reshape(())
}

/// Mean binary cross-entropy of logits against 0/1 labels, stably.
fn bce_with_logits(logits: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
    let pos = logits.relu()?;
    let soft = ((logits.abs()?.neg()?.exp()? + 1.0)?).log()?;
    ((pos - logits.mul(labels)?)? + soft)?.mean_all()
}

fn sample_posterior(p: &Posterior, rng: &mut Rng) -> candle_core::Result<Tensor> {
    let noise = Tensor::from_vec(rng.normals_f32(p.mean.elem_count()), p.mean.shape(), p.mean.device())?;
    p.sample_with(&noise)
}

/// EDM's training loss for clean latents `y` (batch first) with a σ per batch element.
fn edm_loss(
    denoiser: &super::LatentDenoiser,
    y: &Tensor,
    cond: &super::Conditioning,
    rng: &mut Rng,
) -> candle_core::Result<Tensor> {
    let b = y.dim(0)?;
    let sd = denoiser.config().sigma_data;
    let sigmas: Vec<f64> = (0..b).map(|_| (P_MEAN + P_STD * rng.normal()).exp()).collect();
    let mut bshape = vec![1usize; y.rank()];
    bshape[0] = b;
    let col = |f: &dyn Fn(f64) -> f64| -> candle_core::Result<Tensor> {
        let v: Vec<f32> = sigmas.iter().map(|&s| f(s) as f32).collect();
        Tensor::from_vec(v, bshape.as_slice(), y.device())
    };
    let sigma = col(&|s| s)?;
    let c_skip = col(&|s| sd * sd / (s * s + sd * sd))?;
    let c_out = col(&|s| s * sd / (s * s + sd * sd).sqrt())?;
    let c_in = col(&|s| 1.0 / (s * s + sd * sd).sqrt())?;
    let weight = col(&|s| (s * s + sd * sd) / (s * sd).powi(2))?;
    let c_noise = Tensor::from_vec(
        sigmas.iter().map(|&s| (s.ln() / 4.0) as f32).collect::<Vec<_>>(),
        b,
        y.device(),
    )?;
    let eps = Tensor::from_vec(rng.normals_f32(y.elem_count()), y.shape(), y.device())?;
    let x = (y + eps.broadcast_mul(&sigma)?)?;
    let f = denoiser.model.forward(&x.broadcast_mul(&c_in)?, &c_noise, cond)?;
    let d = (x.broadcast_mul(&c_skip)? + f.broadcast_mul(&c_out)?)?;
    (d - y)?.sqr()?.broadcast_mul(&weight)?.mean_all()
}

/// Initial bias of both autoencoders' `logvar_fc` (its weight starts at zero): every posterior
/// starts with σ = e^(−4) ≈ 0.02.
///
/// With the default init, `logvar_fc` of the encoder's unnormalised features gives log-variances
/// of many units either side of 0 (σ up to e^10 at the reference's clamp), so the decoder sees
/// mostly noise, learns to ignore the latents, and the encoder then
/// gets no gradient: in 600 steps the shape autoencoder decodes empty space for every held-out
/// shape (IoU 0.000), where the same run decoding the posterior mean reaches 0.32. Starting
/// narrow lets the latents carry the shape from the first step. A KL term (the reference's weight
/// 10⁻³ on the per-dimension mean) would then pull σ towards 1; the demo runs without one
/// ([`SHAPE_KL_WEIGHT`], [`DEFORM_KL_WEIGHT`]), so its posteriors stay this narrow.
pub const LOGVAR_BIAS_INIT: f32 = -8.0;

/// The demo's shape-AE KL weight: none (the reference uses 1e-3). Adam moves `logvar_fc` at its
/// learning rate however small the KL's gradient, and its inputs are large, so with any weight
/// (1e-3, 1e-5, or 1e-3 switched on halfway) the posteriors widened to the prior within a few
/// hundred steps and the decoder stopped reading the latents: held-out shape-AE IoU 0.000 after
/// 600 steps, against 0.437 with no KL (scratch runs, 4 held-out sequences). The posterior stays
/// as narrow as it starts (`LOGVAR_BIAS_INIT`), a near-deterministic autoencoder.
pub const SHAPE_KL_WEIGHT: f64 = 0.0;

/// The demo's deformation-AE KL weight: none either (the reference uses 1e-3), for the same
/// reason. With 1e-3 the deformation AE's training loss stopped falling at 0.026 by step 500
/// (the KL had widened the posteriors to the prior) and it moved held-out frame-1 points 0.279 from
/// their frame-t positions, more than three times the 0.086 of not moving them; with no KL the
/// same 1200-step stage reached 0.119 and was still falling (scratch runs of the stage alone,
/// seed 1, the 8 held-out sequences of [`evaluate`]). With 256 latents instead of 64 the same
/// stage reached 0.112 at four times the cost, so the demo keeps 64.
pub const DEFORM_KL_WEIGHT: f64 = 0.0;

/// Writes the reference's Fourier matrix into every `point_embed.basis` buffer. Our embedding
/// ignores the buffer, but a fresh parameter set holds zeros there, and a saved model with a zero
/// basis would embed every point alike in the reference's PyTorch code.
fn fill_point_embed_bases(params: &SeededParams) -> Result<()> {
    for (name, var) in params.named_vars() {
        if name.ends_with("point_embed.basis") {
            let (rows, cols) = var.as_tensor().dims2()?;
            let basis = crate::core::ops::fourier::basis(cols / 3);
            var.set(&Tensor::from_vec(basis, (rows, cols), var.device())?)?;
        }
    }
    Ok(())
}

fn start_posteriors_narrow(params: &SeededParams) -> Result<()> {
    for (name, var) in params.named_vars() {
        let start = match name.as_str() {
            "shape_ae.logvar_fc.bias" | "deform_ae.logvar_fc.bias" => f64::from(LOGVAR_BIAS_INIT),
            "shape_ae.logvar_fc.weight" | "deform_ae.logvar_fc.weight" => 0.0,
            _ => continue,
        };
        var.set(&var.as_tensor().ones_like()?.affine(start, 0.0)?)?;
    }
    Ok(())
}

/// Loss and report of one stage.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StageResult {
    pub stage: &'static str,
    pub steps: usize,
    /// Step this run started the stage from (a resumed stage > 0; a stage finished before the
    /// checkpoint was written is skipped: `ran = 0`).
    pub start_step: usize,
    pub ran: usize,
    pub seconds: f64,
    /// Mean loss of the last 50 steps run (NaN if none ran here).
    pub final_loss: f32,
    pub first_loss: f32,
    pub seconds_per_step: f64,
    #[serde(skip)]
    pub losses: Vec<f32>,
}

impl StageResult {
    fn of(stage: TrainStage, report: &TrainReport) -> Self {
        let ran = report.losses.len();
        Self {
            stage: stage.key(),
            steps: report.steps,
            start_step: report.start_step,
            ran,
            seconds: report.seconds,
            final_loss: report.recent_loss(50),
            first_loss: report.losses.first().copied().unwrap_or(f32::NAN),
            seconds_per_step: if ran > 0 { report.seconds / ran as f64 } else { 0.0 },
            losses: report.losses.clone(),
        }
    }
}

/// A trained model.
pub struct Trained {
    pub params: SeededParams,
    pub bundle: M2vsBundle,
    pub stages: Vec<StageResult>,
    pub data_seconds: f64,
    pub sequences: usize,
}

impl Trained {
    /// The tensors as the bundle's file holds them (`shape_ae.…` etc.).
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.params.tensors()
    }
}

const STAGE_KEY: &str = "stage";

/// Trains the four networks in order (or resumes from `resume`), reporting through `ctx`.
pub fn train(
    settings: &DemoSettings,
    ctx: &JobContext,
    checkpoint: Option<CheckpointPolicy>,
    resume: Option<&Path>,
) -> Result<Trained> {
    settings.validate()?;
    // The process's inference device: the CPU, or a GPU in a `cuda`/`metal` build (`LW_DEVICE=cpu`
    // forces the CPU). Data are drawn on the CPU either way, so a run's batches do not depend on it.
    let device = crate::core::device::device().device.clone();
    let cfg = &settings.config;
    let clock = std::time::Instant::now();
    let specs = train_specs(settings.train_per_kind, cfg.frames, settings.mesh_resolution);
    ctx.set(0.0, format!("generating {} training sequences", specs.len()));
    let data: Vec<SequenceData> = specs
        .par_iter()
        .map(|s| prepare_sequence(s, settings.surface_points, settings.occupancy_points, cfg.frames))
        .collect::<Result<_>>()?;
    let data_seconds = clock.elapsed().as_secs_f64();
    ctx.check().map_err(|_| TrainError::Cancelled)?;

    let params = SeededParams::new(settings.seed);
    let bundle =
        M2vsBundle::from_var_builder(cfg, params.var_builder(DType::F32, &device), &device).map_err(invalid)?;
    start_posteriors_narrow(&params)?;
    fill_point_embed_bases(&params)?;
    let resume_ck = match resume {
        Some(p) => Some((Checkpoint::read(p)?, p)),
        None => None,
    };
    let resume_stage = match &resume_ck {
        None => None,
        Some((ck, p)) => {
            let key = ck.metadata.get(STAGE_KEY).cloned().unwrap_or_default();
            let stage = TrainStage::ALL
                .into_iter()
                .find(|s| s.key() == key)
                .ok_or_else(|| TrainError::Checkpoint {
                    path: p.to_path_buf(),
                    problem: format!("names no known stage ({key:?})"),
                })?;
            Some(stage)
        }
    };

    let mut stages = Vec::new();
    for stage in TrainStage::ALL {
        let steps = settings.steps.get(stage);
        if let Some(r) = resume_stage
            && stage.index() < r.index()
        {
            stages.push(StageResult::of(
                stage,
                &TrainReport {
                    start_step: steps,
                    steps,
                    ..TrainReport::default()
                },
            ));
            continue;
        }
        let stage_seed = settings.seed.wrapping_add(0x9E37_79B9 * (stage.index() as u64 + 1));
        let mut meta = BTreeMap::new();
        meta.insert("architecture".to_string(), "motion2vecsets_demo".to_string());
        meta.insert(STAGE_KEY.to_string(), stage.key().to_string());
        let schedule = LrSchedule::warmup_cosine(settings.lr, steps);
        let mut lp = TrainLoop::new(params.clone(), AdamWConfig::default(), schedule, steps, stage_seed)?
            .clip_grad_norm(1.0)
            .metadata(meta);
        if let Some(policy) = &checkpoint {
            lp = lp.checkpoints(policy.clone());
        }
        if let (Some(r), Some((ck, p))) = (resume_stage, &resume_ck)
            && r == stage
        {
            lp.resume(ck, p)?;
        }
        ctx.set(
            0.0,
            format!("stage {}/4: {}", stage.index() + 1, stage.key().replace('_', " ")),
        );
        let b = &bundle;
        let report = match stage {
            TrainStage::ShapeAe => lp.run(ctx, |_, rng| shape_ae_step(b, &data, settings, rng))?,
            TrainStage::DeformAe => lp.run(ctx, |_, rng| deform_ae_step(b, &data, settings, rng))?,
            TrainStage::ShapeDenoiser => lp.run(ctx, |_, rng| shape_denoiser_step(b, &data, settings, rng))?,
            TrainStage::DeformDenoiser => lp.run(ctx, |_, rng| deform_denoiser_step(b, &data, settings, rng))?,
        };
        stages.push(StageResult::of(stage, &report));
    }
    Ok(Trained {
        params,
        bundle,
        stages,
        data_seconds,
        sequences: data.len(),
    })
}

/// Encoder input of frame `t`: `AE_POINTS`-style subset `idx` of the tracked points.
fn gather(data: &SequenceData, t: usize, idx: &[usize]) -> Vec<[f32; 3]> {
    idx.iter().map(|&i| data.surface[t][i]).collect()
}

fn shape_ae_step(
    b: &M2vsBundle,
    data: &[SequenceData],
    s: &DemoSettings,
    rng: &mut Rng,
) -> candle_core::Result<StepOutput> {
    let dev = &b.device;
    let n_in = s.config.shape_ae.num_inputs;
    // Half the queries in space (half of those in the whole box, half in the shape's own box),
    // half near the surface.
    let half = s.queries / 2;
    let in_box = half / 2;
    let (mut inputs, mut queries, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..s.ae_batch {
        let seq = &data[below(rng, data.len())];
        let t = below(rng, seq.occupancy.len());
        inputs.extend(gather(seq, t, &subset(rng, s.surface_points, n_in)));
        let occ = &seq.occupancy[t];
        let shifted = |idx: Vec<usize>, start: usize| idx.into_iter().map(move |i| i + start);
        let vol = subset(rng, occ.volume, in_box);
        let local = shifted(subset(rng, occ.local, half - in_box), occ.volume);
        let near = shifted(subset(rng, occ.points.len() - occ.near_start(), half), occ.near_start());
        for i in vol.into_iter().chain(local).chain(near) {
            queries.push(occ.points[i]);
            labels.push(occ.labels[i]);
        }
    }
    let bsz = s.ae_batch;
    let x = points_tensor(inputs, &[bsz, n_in, 3], dev)?;
    let q = points_tensor(queries, &[bsz, 2 * half, 3], dev)?;
    let y = Tensor::from_vec(labels, (bsz, 2 * half), dev)?;
    let post = net(b.shape_ae.encode(&x, None))?;
    let z = sample_posterior(&post, rng)?;
    let logits = net(b.shape_ae.decode(&z, &q))?.squeeze(2)?;
    let vol = bce_with_logits(&logits.narrow(1, 0, half)?, &y.narrow(1, 0, half)?)?;
    let near = bce_with_logits(&logits.narrow(1, half, half)?, &y.narrow(1, half, half)?)?;
    let kl = kl(&post)?;
    let loss = ((&vol + (&near * NEAR_WEIGHT)?)? + (&kl * s.shape_kl_weight)?)?;
    let acc = logits
        .ge(0.0)?
        .to_dtype(DType::F32)?
        .eq(&y)?
        .to_dtype(DType::F32)?
        .mean_all()?
        .to_scalar::<f32>()?;
    Ok(StepOutput {
        loss,
        extra: vec![
            ("bce_vol", vol.to_scalar::<f32>()?),
            ("kl", kl.to_scalar::<f32>()?),
            ("acc", acc),
        ],
    })
}

/// A (start, target) frame pair of a periodic sequence, target ≠ start.
fn frame_pair(rng: &mut Rng, frames: usize) -> (usize, usize) {
    let a = below(rng, frames);
    (a, (a + 1 + below(rng, frames - 1)) % frames)
}

fn deform_ae_step(
    b: &M2vsBundle,
    data: &[SequenceData],
    s: &DemoSettings,
    rng: &mut Rng,
) -> candle_core::Result<StepOutput> {
    let dev = &b.device;
    let n_in = s.config.deform_ae.num_inputs;
    let (mut src, mut tgt, mut q, mut q_tgt) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..s.ae_batch {
        let seq = &data[below(rng, data.len())];
        let (a, t) = frame_pair(rng, seq.surface.len());
        let idx = subset(rng, s.surface_points, n_in);
        src.extend(gather(seq, a, &idx));
        tgt.extend(gather(seq, t, &idx));
        let qi = subset(rng, s.surface_points, s.queries);
        q.extend(gather(seq, a, &qi));
        q_tgt.extend(gather(seq, t, &qi));
    }
    let bsz = s.ae_batch;
    let src = points_tensor(src, &[bsz, n_in, 3], dev)?;
    let tgt = points_tensor(tgt, &[bsz, n_in, 3], dev)?;
    let q = points_tensor(q, &[bsz, s.queries, 3], dev)?;
    let q_tgt = points_tensor(q_tgt, &[bsz, s.queries, 3], dev)?;
    let post = net(b.deform_ae.encode_pairs(&src, &tgt, None))?;
    let z = sample_posterior(&post, rng)?;
    let pred = net(b.deform_ae.decode(&z, &q))?;
    let sq = (pred - &q_tgt)?.sqr()?.sum_keepdim(2)?;
    let l2 = sq.mean_all()?;
    let dist = sq.sqrt()?.mean_all()?.to_scalar::<f32>()?;
    let kl = kl(&post)?;
    let loss = (&l2 + (&kl * s.deform_kl_weight)?)?;
    Ok(StepOutput {
        loss,
        extra: vec![("dist", dist), ("kl", kl.to_scalar::<f32>()?)],
    })
}

fn shape_denoiser_step(
    b: &M2vsBundle,
    data: &[SequenceData],
    s: &DemoSettings,
    rng: &mut Rng,
) -> candle_core::Result<StepOutput> {
    let dev = &b.device;
    let n_in = s.config.shape_ae.num_inputs;
    let n_obs = s.config.points;
    let bsz = s.denoiser_batch;
    let (mut inputs, mut obs) = (Vec::new(), Vec::new());
    for _ in 0..bsz {
        let seq = &data[below(rng, data.len())];
        let t = below(rng, seq.surface.len());
        inputs.extend(gather(seq, t, &subset(rng, s.surface_points, n_in)));
        let o = gather(seq, t, &subset(rng, s.surface_points, n_obs));
        obs.extend(o.into_iter().map(|p| noisy(p, rng)));
    }
    let x = points_tensor(inputs, &[bsz, n_in, 3], dev)?;
    let post = net(b.shape_ae.encode(&x, None))?;
    let y = sample_posterior(&post, rng)?.detach();
    let obs = points_tensor(obs, &[bsz, n_obs, 3], dev)?;
    let cond = net(b.shape_denoiser.condition_shape(&obs))?;
    Ok(edm_loss(&b.shape_denoiser, &y, &cond, rng)?.into())
}

fn deform_denoiser_step(
    b: &M2vsBundle,
    data: &[SequenceData],
    s: &DemoSettings,
    rng: &mut Rng,
) -> candle_core::Result<StepOutput> {
    let dev = &b.device;
    let n_in = s.config.deform_ae.num_inputs;
    let n_shape = s.config.shape_ae.num_inputs;
    let n_obs = s.config.points;
    let frames = s.config.frames;
    let later = frames - 1;
    let bsz = s.deform_denoiser_batch;
    let (mut shape_in, mut src, mut tgt, mut obs_src, mut obs_tgt) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..bsz {
        let seq = &data[below(rng, data.len())];
        let start = below(rng, seq.surface.len());
        let order: Vec<usize> = (0..frames).map(|j| (start + j) % seq.surface.len()).collect();
        shape_in.extend(gather(seq, order[0], &subset(rng, s.surface_points, n_shape)));
        let idx = subset(rng, s.surface_points, n_in);
        let first = gather(seq, order[0], &idx);
        let oi = subset(rng, s.surface_points, n_obs);
        let first_obs: Vec<[f32; 3]> = gather(seq, order[0], &oi).into_iter().map(|p| noisy(p, rng)).collect();
        for &f in &order[1..] {
            src.extend(first.iter().copied());
            tgt.extend(gather(seq, f, &idx));
            obs_src.extend(first_obs.iter().copied());
            obs_tgt.extend(gather(seq, f, &oi).into_iter().map(|p| noisy(p, rng)));
        }
    }
    let shape_x = points_tensor(shape_in, &[bsz, n_shape, 3], dev)?;
    let shape = sample_posterior(&net(b.shape_ae.encode(&shape_x, None))?, rng)?.detach();
    let src = points_tensor(src, &[bsz * later, n_in, 3], dev)?;
    let tgt = points_tensor(tgt, &[bsz * later, n_in, 3], dev)?;
    let post = net(b.deform_ae.encode_pairs(&src, &tgt, None))?;
    let d = sample_posterior(&post, rng)?.detach();
    let (_, m, c) = d.dims3()?;
    let y = d.reshape((bsz, later, m, c))?;
    let obs_src = points_tensor(obs_src, &[bsz, later, n_obs, 3], dev)?;
    let obs_tgt = points_tensor(obs_tgt, &[bsz, later, n_obs, 3], dev)?;
    let cond = net(b.deform_denoiser.condition_deform(&shape, &obs_src, &obs_tgt))?;
    Ok(edm_loss(&b.deform_denoiser, &y, &cond, rng)?.into())
}

/// Held-out numbers measured cheaply at the end of training.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Evaluation {
    pub sequences: usize,
    /// Shape autoencoder, frame 1: encode (posterior mean) → decode; IoU of the occupancy of the
    /// uniform volume points against the mesh's.
    pub shape_ae_iou: f64,
    /// Deformation autoencoder: mean distance of decoded frame-t positions of frame-1 surface
    /// points to the true ones, over frames 2..T (posterior mean).
    pub deform_ae_l2: f64,
    /// Shape denoiser (Heun, `steps`) from the sparse noisy frame-1 points, decoded by the
    /// shape autoencoder: IoU as above.
    pub sampled_shape_iou: f64,
    /// Deformation denoiser (given the sampled shape latents and the sparse pairs), decoded by
    /// the deformation autoencoder: mean distance as above.
    pub sampled_deform_l2: f64,
    /// The same distance for "no motion" (frame-1 positions kept): the trivial baseline.
    pub static_l2: f64,
    pub sampler_steps: usize,
}

/// IoU of two occupancy vectors.
fn iou(pred: &[bool], truth: &[bool]) -> f64 {
    let both = pred.iter().zip(truth).filter(|(a, b)| **a && **b).count();
    let either = pred.iter().zip(truth).filter(|(a, b)| **a || **b).count();
    if either == 0 { 1.0 } else { both as f64 / either as f64 }
}

/// Evaluates `bundle` on `n` held-out sequences ([`heldout_specs`], at `settings`' sampling).
pub fn evaluate(
    bundle: &M2vsBundle,
    settings: &DemoSettings,
    n: usize,
    sampler_steps: usize,
    ctx: &JobContext,
) -> Result<Evaluation> {
    let cfg = &settings.config;
    let dev = &bundle.device;
    let specs: Vec<MotionSpec> = heldout_specs(n)
        .into_iter()
        .map(|s| MotionSpec {
            frames: cfg.frames,
            resolution: settings.mesh_resolution,
            ..s
        })
        .collect();
    let edm = EdmConfig {
        num_steps: sampler_steps,
        ..EdmConfig::default()
    };
    let (mut ae_iou, mut ae_l2, mut s_iou, mut s_l2, mut st_l2) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let e = |r: std::result::Result<Tensor, M2vsError>| r.map_err(invalid);
    for (i, spec) in specs.iter().enumerate() {
        ctx.check().map_err(|_| TrainError::Cancelled)?;
        ctx.set(
            i as f32 / n.max(1) as f32,
            format!("evaluating held-out sequence {}", i + 1),
        );
        let seq = prepare_sequence(spec, settings.surface_points, settings.occupancy_points, 1)?;
        let mut rng = Rng::new(spec.seed);
        let occ = &seq.occupancy[0];
        let vol = points_tensor(occ.points[..occ.volume].to_vec(), &[1, occ.volume, 3], dev)?;
        let truth: Vec<bool> = occ.labels[..occ.volume].iter().map(|&l| l > 0.5).collect();
        let occ_iou = |z: &Tensor| -> Result<f64> {
            let logits = e(bundle.shape_ae.decode(z, &vol))?.flatten_all()?.to_vec1::<f32>()?;
            let pred: Vec<bool> = logits.iter().map(|&l| l > 0.0).collect();
            Ok(iou(&pred, &truth))
        };
        let n_in = cfg.shape_ae.num_inputs;
        let x = points_tensor(
            gather(&seq, 0, &subset(&mut rng, settings.surface_points, n_in)),
            &[1, n_in, 3],
            dev,
        )?;
        let z = bundle.shape_ae.encode(&x, None).map_err(invalid)?.mean;
        ae_iou += occ_iou(&z)?;

        // Queries: the tracked surface points of frame 1, truth: the same points at frame t.
        let qn = settings.queries.min(settings.surface_points);
        let qi = subset(&mut rng, settings.surface_points, qn);
        let q = points_tensor(gather(&seq, 0, &qi), &[1, qn, 3], dev)?;
        let later = cfg.frames - 1;
        let truth_at =
            |t: usize| -> candle_core::Result<Tensor> { points_tensor(gather(&seq, t, &qi), &[1, qn, 3], dev) };
        let mean_dist = |pred: &Tensor, t: usize| -> Result<f64> {
            let d = (pred - truth_at(t)?)?.sqr()?.sum_keepdim(2)?.sqrt()?.mean_all()?;
            Ok(f64::from(d.to_scalar::<f32>()?))
        };
        let idx = subset(&mut rng, settings.surface_points, cfg.deform_ae.num_inputs);
        let n_d = cfg.deform_ae.num_inputs;
        for t in 1..cfg.frames {
            let src = points_tensor(gather(&seq, 0, &idx), &[1, n_d, 3], dev)?;
            let tgt = points_tensor(gather(&seq, t, &idx), &[1, n_d, 3], dev)?;
            let dz = bundle.deform_ae.encode_pairs(&src, &tgt, None).map_err(invalid)?.mean;
            ae_l2 += mean_dist(&e(bundle.deform_ae.decode(&dz, &q))?, t)? / later as f64;
            st_l2 += mean_dist(&q, t)? / later as f64;
        }

        // The denoisers from the sparse noisy observation, as the pipeline runs them.
        let obs: Vec<Vec<[f32; 3]>> = {
            let oi = subset(&mut rng, settings.surface_points, cfg.points);
            (0..cfg.frames)
                .map(|t| gather(&seq, t, &oi).into_iter().map(|p| noisy(p, &mut rng)).collect())
                .collect()
        };
        let o1 = points_tensor(obs[0].clone(), &[1, cfg.points, 3], dev)?;
        let cond = bundle.shape_denoiser.condition_shape(&o1).map_err(invalid)?;
        let mut quiet = |_: usize, _: usize| -> std::result::Result<(), crate::core::diffusion::Cancelled> { Ok(()) };
        let shape = e(bundle.shape_denoiser.sample(&cond, None, spec.seed, &edm, &mut quiet))?.to_dtype(DType::F32)?;
        s_iou += occ_iou(&shape)?;
        let src: Vec<[f32; 3]> = (0..later).flat_map(|_| obs[0].iter().copied()).collect();
        let tgt: Vec<[f32; 3]> = obs[1..].iter().flatten().copied().collect();
        let src = points_tensor(src, &[1, later, cfg.points, 3], dev)?;
        let tgt = points_tensor(tgt, &[1, later, cfg.points, 3], dev)?;
        let cond = bundle
            .deform_denoiser
            .condition_deform(&shape, &src, &tgt)
            .map_err(invalid)?;
        let d = e(bundle.deform_denoiser.sample(&cond, Some(later), 0, &edm, &mut quiet))?.to_dtype(DType::F32)?;
        for t in 1..cfg.frames {
            let dz = d.narrow(1, t - 1, 1)?.squeeze(1)?.contiguous()?;
            s_l2 += mean_dist(&e(bundle.deform_ae.decode(&dz, &q))?, t)? / later as f64;
        }
    }
    let k = n.max(1) as f64;
    Ok(Evaluation {
        sequences: n,
        shape_ae_iou: ae_iou / k,
        deform_ae_l2: ae_l2 / k,
        sampled_shape_iou: s_iou / k,
        sampled_deform_l2: s_l2 / k,
        static_l2: st_l2 / k,
        sampler_steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_split_covers_the_total_and_specs_are_disjoint() {
        let s = StageSteps::split(1000);
        assert_eq!(s.total(), 1000);
        let train: Vec<u64> = train_specs(3, 8, 16).iter().map(|s| s.seed).collect();
        assert!(heldout_specs(8).iter().all(|h| !train.contains(&h.seed)));
        assert_eq!(heldout_specs(8)[0].frames, DEMO_FRAMES);
        demo_config().validate().unwrap();
    }

    #[test]
    fn kl_is_the_per_sample_mean_over_latents_and_channels() {
        // Two samples of 2 latents × 3 channels; the reference's value by hand:
        // 0.5 · mean(μ² + e^logvar − 1 − logvar) per sample, summed, / batch.
        let dev = Device::Cpu;
        let mu = [0.5f32, -1.0, 0.0, 2.0, 0.1, -0.3, 1.0, 1.0, 0.0, 0.0, -2.0, 0.5];
        let lv = [0.0f32, -1.0, 0.5, 0.2, -0.2, 0.0, 1.0, -0.5, 0.0, 0.3, 0.0, -2.0];
        let post = Posterior {
            mean: Tensor::from_slice(&mu, (2, 2, 3), &dev).unwrap(),
            logvar: Tensor::from_slice(&lv, (2, 2, 3), &dev).unwrap(),
        };
        let per = |r: std::ops::Range<usize>| {
            let n = r.len() as f64;
            r.map(|i| {
                let (m, l) = (f64::from(mu[i]), f64::from(lv[i]));
                m * m + l.exp() - 1.0 - l
            })
            .sum::<f64>()
                * 0.5
                / n
        };
        let want = (per(0..6) + per(6..12)) / 2.0;
        let got = f64::from(kl(&post).unwrap().to_scalar::<f32>().unwrap());
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }

    #[test]
    fn posteriors_start_narrow_whatever_the_input() {
        let dev = Device::Cpu;
        let cfg = tiny_config(3);
        let params = SeededParams::new(5);
        let b = M2vsBundle::from_var_builder(&cfg, params.var_builder(DType::F32, &dev), &dev).unwrap();
        start_posteriors_narrow(&params).unwrap();
        let n = cfg.shape_ae.num_inputs;
        let mut rng = Rng::new(3);
        let pts = Tensor::from_vec(rng.normals_f32(2 * n * 3), (2, n, 3), &dev).unwrap();
        for post in [
            b.shape_ae.encode(&pts, None).unwrap(),
            b.deform_ae.encode_pairs(&pts, &pts, None).unwrap(),
        ] {
            let lv = post.logvar.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(lv.iter().all(|&v| v == LOGVAR_BIAS_INIT), "{lv:?}");
        }
    }

    #[test]
    fn a_fresh_parameter_set_saves_the_reference_fourier_bases() {
        let dev = Device::Cpu;
        let params = SeededParams::new(5);
        M2vsBundle::from_var_builder(&tiny_config(3), params.var_builder(DType::F32, &dev), &dev).unwrap();
        fill_point_embed_bases(&params).unwrap();
        let bases: Vec<_> = params
            .tensors()
            .into_iter()
            .filter(|(k, _)| k.ends_with("point_embed.basis"))
            .collect();
        assert!(!bases.is_empty());
        for (name, t) in bases {
            let (rows, cols) = t.dims2().unwrap();
            let got = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(rows, 3, "{name}");
            assert_eq!(got, crate::core::ops::fourier::basis(cols / 3), "{name}");
            // Row 1 holds y's frequencies 2^k·π in its own block only.
            let f = cols / 3;
            assert_eq!(got[cols + f], std::f32::consts::PI, "{name}");
            assert_eq!(got[cols], 0.0, "{name}");
        }
    }

    #[test]
    fn subsets_are_distinct() {
        let mut rng = Rng::new(1);
        let mut s = subset(&mut rng, 10, 10);
        s.sort_unstable();
        assert_eq!(s, (0..10).collect::<Vec<_>>());
    }
}
