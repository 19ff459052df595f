//! Reconstruction of a mesh sequence from a sparse (or partial) point sequence, as the
//! reference's `core/eval.py` runs it (`demo/infer.py` is the same with the deformation also
//! sampled for frame 1):
//!
//! 1. the shape denoiser, conditioned on frame 1's points, samples the shape latent set;
//! 2. the shape autoencoder's decoder trunk runs once ([`KlAutoEncoder::prepare`]) and MISE meshes
//!    frame 1 from it ([`super::mesher`]);
//! 3. the deformation denoiser samples the latent sets of frames 2..T together (its temporal
//!    attention makes T free), conditioned on the shape latents and on (frame 1, frame t)
//!    observation pairs — frame 1 repeated T − 1 times as `src`, frames 2..T as `tgt`;
//! 4. per frame, the deformation decoder's trunk runs once and is queried at the frame-1 mesh
//!    vertices, giving their frame-t positions: every frame keeps frame 1's faces.
//!
//! **Coordinates.** The networks work in the reference's unit cube: the datasets express every
//! frame in frame 1's normalisation (`PointCloudSubseqField`: `(loc + scale·p − loc₀)/scale₀`, i.e.
//! frame 1's bounding-box centre at the origin and its longest side 1), and meshing uses the box
//! [−0.55, 0.55]³. [`Normalisation::AsGiven`] takes the points as already in that cube (demo data,
//! the reference's demo inputs); [`Normalisation::FirstFrameBox`] computes the same similarity
//! from frame 1's points (their box, not the unknown mesh's, so it is slightly tighter) and maps
//! the output back.
//!
//! **Deviations.** The reference samples a shape for every frame (`cond[0]` is `(T, N, 3)`) and
//! keeps the first; we sample frame 1's only (samples are independent per batch element). Seeds
//! drive our own RNG, not torch's (see `PARITY.md`).

use std::time::{Duration, Instant};

use candle_core::{DType, Device, IndexOp, Tensor};

use super::M2vsError;
use super::autoencoder::KlAutoEncoder;
use super::config::Observation;
use super::denoiser::LatentDenoiser;
use super::mesher::{DecoderField, LogitField, MeshStats, MiseOptions, mise};
use crate::core::diffusion::{Cancelled, EdmConfig};
use crate::core::jobs::JobContext;
use crate::core::motion::MAX_FRAMES;
use crate::core::{Mesh, MotionSequence};

/// The four networks of one dataset/setting, on `device`.
pub struct Models<'a> {
    pub shape_ae: &'a KlAutoEncoder,
    pub deform_ae: &'a KlAutoEncoder,
    pub shape_denoiser: &'a LatentDenoiser,
    pub deform_denoiser: &'a LatentDenoiser,
    pub device: Device,
}

impl Models<'_> {
    /// The four must fit together: roles, latent counts and channels.
    pub fn validate(&self) -> Result<(), M2vsError> {
        let (sa, da) = (self.shape_ae.config(), self.deform_ae.config());
        let (sd, dd) = (self.shape_denoiser.config(), self.deform_denoiser.config());
        let bad = |why: String| Err(M2vsError::Input(why));
        if sa.deform || sa.output_dim != 1 {
            return bad("the shape autoencoder must decode occupancy".into());
        }
        if !da.deform || da.output_dim != 3 {
            return bad("the deformation autoencoder must decode positions".into());
        }
        if sd.is_deform || !dd.is_deform {
            return bad("expected a shape denoiser and a deformation denoiser".into());
        }
        if (sd.n_latents, sd.channels) != (sa.num_latents, sa.latent_dim) {
            return bad(format!(
                "shape denoiser makes {}×{} latents, the shape autoencoder decodes {}×{}",
                sd.n_latents, sd.channels, sa.num_latents, sa.latent_dim
            ));
        }
        if (dd.n_latents, dd.channels) != (da.num_latents, da.latent_dim) {
            return bad(format!(
                "deformation denoiser makes {}×{} latents, the deformation autoencoder decodes {}×{}",
                dd.n_latents, dd.channels, da.num_latents, da.latent_dim
            ));
        }
        if (dd.n_latents, dd.shape_dim) != (sd.n_latents, sd.channels) {
            return bad(format!(
                "deformation denoiser expects {}×{} shape latents, the shape denoiser makes {}×{}",
                dd.n_latents, dd.shape_dim, sd.n_latents, sd.channels
            ));
        }
        Ok(())
    }

    /// Sparse points with correspondences (`Paired`) or partial scans without (`Separate`).
    pub fn observation(&self) -> Observation {
        self.deform_denoiser.config().observation
    }
}

/// How input points relate to the networks' unit cube.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Normalisation {
    /// Already in frame 1's unit cube (the reference's datasets and demo inputs).
    #[default]
    AsGiven,
    /// Frame 1's bounding-box centre to the origin, its longest side to 1, for every frame;
    /// the output is mapped back.
    FirstFrameBox,
}

/// The similarity `model = (world − centre) / scale` between input and network coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnitCube {
    pub centre: [f32; 3],
    pub scale: f32,
}

impl UnitCube {
    pub const IDENTITY: Self = Self {
        centre: [0.0; 3],
        scale: 1.0,
    };

    /// Frame 1's bounding box: centre and longest side (`PointCloudSubseqField.return_loc_scale`).
    pub fn of_points(points: &[[f32; 3]]) -> Result<Self, M2vsError> {
        let mut lo = [f32::INFINITY; 3];
        let mut hi = [f32::NEG_INFINITY; 3];
        for p in points {
            for a in 0..3 {
                lo[a] = lo[a].min(p[a]);
                hi[a] = hi[a].max(p[a]);
            }
        }
        let scale = (0..3).map(|a| hi[a] - lo[a]).fold(0.0, f32::max);
        if !(scale.is_finite() && scale > 0.0) {
            return Err(M2vsError::Input("frame 1's points span no volume to normalise".into()));
        }
        Ok(Self {
            centre: [0, 1, 2].map(|a| 0.5 * (lo[a] + hi[a])),
            scale,
        })
    }

    pub fn to_model(&self, p: [f32; 3]) -> [f32; 3] {
        [0, 1, 2].map(|a| (p[a] - self.centre[a]) / self.scale)
    }

    pub fn to_world(&self, p: [f32; 3]) -> [f32; 3] {
        [0, 1, 2].map(|a| p[a] * self.scale + self.centre[a])
    }
}

/// Settings of one reconstruction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PipelineOptions {
    /// Seed of the shape sample (the reference draws a random one, `random=True`).
    pub seed: u64,
    /// Seed of the deformation sample (the reference's `random=False` uses the batch index, 0).
    pub deform_seed: u64,
    /// Heun steps of both samplers (18: 35 network evaluations each).
    pub steps: usize,
    /// Frame-1 meshing (threshold logit 0 = DT4D's probability 0.5; DFAUST uses 0.3).
    pub mise: MiseOptions,
    /// Vertices per deformation-decoder call.
    pub decode_batch: usize,
    pub normalisation: Normalisation,
    /// Playback rate written into the sequence.
    pub fps: f32,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            deform_seed: 0,
            steps: 18,
            mise: MiseOptions::default(),
            decode_batch: 100_000,
            normalisation: Normalisation::AsGiven,
            fps: 12.0,
        }
    }
}

impl PipelineOptions {
    pub fn validate(&self) -> Result<(), M2vsError> {
        self.mise.validate()?;
        if self.steps == 0 || self.decode_batch == 0 {
            return Err(M2vsError::Input("steps and decode_batch must be positive".into()));
        }
        if !(self.fps.is_finite() && self.fps > 0.0) {
            return Err(M2vsError::Input(format!("frame rate {} must be positive", self.fps)));
        }
        Ok(())
    }

    fn edm(&self) -> EdmConfig {
        EdmConfig {
            num_steps: self.steps,
            ..EdmConfig::default()
        }
    }
}

/// The pipeline's stages, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    ShapeSampling,
    Meshing,
    DeformationSampling,
    Decoding,
    /// Not part of [`reconstruct`]: scoring a reconstruction against a truth
    /// ([`super::tracking::score`]), which takes as long as decoding on the demo sequences.
    Scoring,
}

impl Stage {
    /// A reconstruction, then its scores against the truth.
    pub const SCORED_RECONSTRUCTION: &'static [Stage] = &[
        Stage::ShapeSampling,
        Stage::Meshing,
        Stage::DeformationSampling,
        Stage::Decoding,
        Stage::Scoring,
    ];
    /// The stages of [`reconstruct`]: the scored list without its last stage, scoring.
    pub const RECONSTRUCTION: &'static [Stage] = match Self::SCORED_RECONSTRUCTION.split_last() {
        Some((_, reconstruction)) => reconstruction,
        None => &[],
    };

    pub fn label(self) -> &'static str {
        match self {
            Stage::ShapeSampling => "sampling the shape",
            Stage::Meshing => "meshing frame 1",
            Stage::DeformationSampling => "sampling the deformations",
            Stage::Decoding => "decoding the frames",
            Stage::Scoring => "scoring against the truth",
        }
    }
}

/// Progress: `(stage, done, total)` before every unit of work (sampler step, decoder call) and
/// once with `done == total` at a sampler's end; `Err(Cancelled)` stops the pipeline before its
/// next network call. Meshing reports points evaluated against the dense grid's count (MISE does
/// not know its total in advance).
pub type PipelineProgress<'a> = &'a mut dyn FnMut(Stage, usize, usize) -> Result<(), Cancelled>;

/// A progress callback for a background job that runs `stages` in order
/// ([`Stage::RECONSTRUCTION`] or [`Stage::SCORED_RECONSTRUCTION`]); they share the bar equally.
pub fn job_progress<'a>(
    ctx: &'a JobContext,
    stages: &'static [Stage],
) -> impl FnMut(Stage, usize, usize) -> Result<(), Cancelled> + 'a {
    job_progress_within(ctx, stages, 0.0..1.0, String::new())
}

/// As [`job_progress`], on the part `range` of the bar (one sequence of several), each message
/// after `prefix`.
pub fn job_progress_within<'a>(
    ctx: &'a JobContext,
    stages: &'static [Stage],
    range: std::ops::Range<f32>,
    prefix: String,
) -> impl FnMut(Stage, usize, usize) -> Result<(), Cancelled> + 'a {
    let part = ctx.within(range.start, range.end - range.start);
    let count = stages.len().max(1) as f32;
    move |stage, done, total| {
        let i = stages.iter().position(|s| *s == stage).unwrap_or(0);
        let within = if total == 0 {
            1.0
        } else {
            (done as f32 / total as f32).min(1.0)
        };
        part.set(
            (i as f32 + within) / count,
            format!("{prefix}{} {done}/{total}", stage.label()),
        );
        part.check().map_err(|_| Cancelled)
    }
}

/// Wall-clock time per stage and what the decoders were asked.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PipelineStats {
    pub shape_sampling: Duration,
    pub meshing: Duration,
    pub deformation_sampling: Duration,
    pub decoding: Duration,
    /// Frame-1 MISE: points evaluated, decoder calls, resolution.
    pub mesh: MeshStats,
    /// Deformation-decoder calls over frames 2..T, and the vertices they decoded.
    pub deform_decoder_calls: usize,
    pub deform_points: usize,
}

impl PipelineStats {
    pub fn total(&self) -> Duration {
        self.shape_sampling + self.meshing + self.deformation_sampling + self.decoding
    }
}

/// A reconstructed sequence (in the input's coordinates) and its latents.
#[derive(Clone, Debug)]
pub struct Reconstruction {
    /// T frames of the frame-1 mesh's vertices, with its faces.
    pub sequence: MotionSequence,
    /// Frame 1 as MISE meshed it (with its normals), in the input's coordinates.
    pub frame1: Mesh,
    /// `(1, M, shape channels)`.
    pub shape_latents: Tensor,
    /// `(1, T − 1, M, deformation channels)`; `None` for a single frame.
    pub deformation_latents: Option<Tensor>,
    /// Input ↔ network coordinates.
    pub cube: UnitCube,
    pub stats: PipelineStats,
}

/// Checks `observations` (T frames) against the denoisers and the setting.
fn check_observations(models: &Models, observations: &[Vec<[f32; 3]>]) -> Result<(), M2vsError> {
    let t = observations.len();
    if t == 0 || t > MAX_FRAMES {
        return Err(M2vsError::Input(format!("{t} frames; 1..={MAX_FRAMES} are accepted")));
    }
    let n_shape = models.shape_denoiser.config().cond_num_inputs;
    if observations[0].len() != n_shape {
        return Err(M2vsError::Input(format!(
            "frame 1 has {} points; the shape denoiser takes {n_shape}",
            observations[0].len()
        )));
    }
    let n_deform = models.deform_denoiser.config().cond_num_inputs;
    for (i, f) in observations.iter().enumerate() {
        // Frame 1 is the deformation denoiser's `src` in every pair, so it must fit it too.
        if t > 1 && f.len() != n_deform {
            return Err(M2vsError::Input(format!(
                "frame {} has {} points; the deformation denoiser takes {n_deform}",
                i + 1,
                f.len()
            )));
        }
        if let Some(j) = f.iter().position(|p| !p.iter().all(|c| c.is_finite())) {
            return Err(M2vsError::Input(format!("frame {}, point {j} is not finite", i + 1)));
        }
    }
    Ok(())
}

fn points_tensor(frames: &[Vec<[f32; 3]>], device: &Device) -> Result<Tensor, M2vsError> {
    let n = frames.first().map_or(0, Vec::len);
    let flat: Vec<f32> = frames.iter().flatten().flatten().copied().collect();
    Ok(Tensor::from_vec(flat, (1, frames.len(), n, 3), device)?)
}

/// Stage 1: the shape latent set `(1, M, C)` from frame 1's points (network coordinates).
pub fn sample_shape(
    models: &Models,
    frame1: &[[f32; 3]],
    opts: &PipelineOptions,
    progress: PipelineProgress,
) -> Result<Tensor, M2vsError> {
    let flat: Vec<f32> = frame1.iter().flatten().copied().collect();
    let obs = Tensor::from_vec(flat, (1, frame1.len(), 3), &models.device)?;
    let cond = models.shape_denoiser.condition_shape(&obs)?;
    let mut step = |d, t| progress(Stage::ShapeSampling, d, t);
    let z = models
        .shape_denoiser
        .sample(&cond, None, opts.seed, &opts.edm(), &mut step)?;
    Ok(z.to_dtype(DType::F32)?)
}

/// Stage 2: frame 1's mesh (network coordinates) from the shape latents, the decoder trunk run
/// once and MISE querying it; cancellation is checked before every decoder call.
pub fn mesh_shape(
    models: &Models,
    shape_latents: &Tensor,
    mise_opts: &MiseOptions,
    progress: PipelineProgress,
) -> Result<super::mesher::ExtractedMesh, M2vsError> {
    let prepared = models.shape_ae.prepare(shape_latents)?;
    let mut decoder = DecoderField::new(models.shape_ae, &prepared)?;
    let dense = (mise_opts.resolution() + 1).pow(3);
    let mut done = 0usize;
    let mut field = |p: &[[f32; 3]]| -> Result<Vec<f32>, M2vsError> {
        progress(Stage::Meshing, done, dense).map_err(|_| M2vsError::Cancelled)?;
        done += p.len();
        decoder.logits(p)
    };
    mise(&mut field, mise_opts)
}

/// Stage 3: deformation latents `(1, T − 1, M, C)` for frames 2..T of `frames` (network
/// coordinates), conditioned on the shape latents and the (frame 1, frame t) observations.
pub fn sample_deformations(
    models: &Models,
    shape_latents: &Tensor,
    frames: &[Vec<[f32; 3]>],
    opts: &PipelineOptions,
    progress: PipelineProgress,
) -> Result<Tensor, M2vsError> {
    if frames.len() < 2 {
        return Err(M2vsError::Input("deformations need at least two frames".into()));
    }
    let later = frames.len() - 1;
    let src: Vec<Vec<[f32; 3]>> = vec![frames[0].clone(); later];
    let src = points_tensor(&src, &models.device)?;
    let tgt = points_tensor(&frames[1..], &models.device)?;
    let cond = models.deform_denoiser.condition_deform(shape_latents, &src, &tgt)?;
    let mut step = |d, t| progress(Stage::DeformationSampling, d, t);
    let d = models
        .deform_denoiser
        .sample(&cond, Some(later), opts.deform_seed, &opts.edm(), &mut step)?;
    Ok(d.to_dtype(DType::F32)?)
}

/// Stage 4: each frame's positions of `vertices` (frame-1 mesh, network coordinates) from its
/// deformation latents `(1, T − 1, M, C)`; one decoder trunk per frame, queried in batches.
pub fn decode_frames(
    models: &Models,
    deformation_latents: &Tensor,
    vertices: &[[f32; 3]],
    batch: usize,
    progress: PipelineProgress,
) -> Result<DecodedFrames, M2vsError> {
    let later = match deformation_latents.dims() {
        &[1, t, _, _] => t,
        d => {
            return Err(M2vsError::Shape(format!(
                "deformation latents must be (1, T, M, C), got {d:?}"
            )));
        }
    };
    if batch == 0 {
        return Err(M2vsError::Input("decode batch must be positive".into()));
    }
    let total = later * vertices.len();
    let mut frames = Vec::with_capacity(later);
    let mut calls = 0;
    for f in 0..later {
        let prepared = models
            .deform_ae
            .prepare(&deformation_latents.i((.., f))?.contiguous()?)?;
        let mut out = Vec::with_capacity(vertices.len());
        for chunk in vertices.chunks(batch) {
            progress(Stage::Decoding, f * vertices.len() + out.len(), total).map_err(|_| M2vsError::Cancelled)?;
            let flat: Vec<f32> = chunk.iter().flatten().copied().collect();
            let q = Tensor::from_vec(flat, (1, chunk.len(), 3), &models.device)?;
            let pos = models
                .deform_ae
                .query(&prepared, &q)?
                .to_dtype(DType::F32)?
                .to_vec3::<f32>()?;
            out.extend(pos.into_iter().flatten().map(|r| [r[0], r[1], r[2]]));
            calls += 1;
        }
        frames.push(out);
    }
    progress(Stage::Decoding, total, total).map_err(|_| M2vsError::Cancelled)?;
    Ok(DecodedFrames {
        frames,
        decoder_calls: calls,
    })
}

/// Frames 2..T's vertex positions and the deformation-decoder calls they took.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedFrames {
    pub frames: Vec<Vec<[f32; 3]>>,
    pub decoder_calls: usize,
}

/// The whole reconstruction of `observations` (T frames of points; with correspondences for the
/// sparse setting). See the module documentation for the stages and coordinates.
pub fn reconstruct(
    models: &Models,
    observations: &[Vec<[f32; 3]>],
    opts: &PipelineOptions,
    progress: PipelineProgress,
) -> Result<Reconstruction, M2vsError> {
    models.validate()?;
    opts.validate()?;
    check_observations(models, observations)?;
    let cube = match opts.normalisation {
        Normalisation::AsGiven => UnitCube::IDENTITY,
        Normalisation::FirstFrameBox => UnitCube::of_points(&observations[0])?,
    };
    let frames: Vec<Vec<[f32; 3]>> = observations
        .iter()
        .map(|f| f.iter().map(|&p| cube.to_model(p)).collect())
        .collect();
    let mut stats = PipelineStats::default();

    let clock = Instant::now();
    let shape = sample_shape(models, &frames[0], opts, progress)?;
    stats.shape_sampling = clock.elapsed();

    let clock = Instant::now();
    let extracted = mesh_shape(models, &shape, &opts.mise, progress)?;
    stats.meshing = clock.elapsed();
    stats.mesh = extracted.stats;
    let mut frame1 = extracted.mesh;
    if frame1.triangles.is_empty() {
        return Err(M2vsError::Mesher(format!(
            "the sampled shape has no surface at threshold {} (its logits are all on one side)",
            opts.mise.threshold
        )));
    }

    let mut deformation_latents = None;
    let mut later = Vec::new();
    if frames.len() > 1 {
        let clock = Instant::now();
        let d = sample_deformations(models, &shape, &frames, opts, progress)?;
        stats.deformation_sampling = clock.elapsed();
        let clock = Instant::now();
        let DecodedFrames {
            frames: decoded,
            decoder_calls: calls,
        } = decode_frames(models, &d, &frame1.positions, opts.decode_batch, progress)?;
        stats.decoding = clock.elapsed();
        stats.deform_decoder_calls = calls;
        stats.deform_points = decoded.iter().map(Vec::len).sum();
        later = decoded;
        deformation_latents = Some(d);
    }

    for p in frame1.positions.iter_mut() {
        *p = cube.to_world(*p);
    }
    let mut seq_frames = Vec::with_capacity(frames.len());
    seq_frames.push(frame1.positions.clone());
    seq_frames.extend(
        later
            .into_iter()
            .map(|f| f.into_iter().map(|p| cube.to_world(p)).collect()),
    );
    let sequence = MotionSequence {
        frames: seq_frames,
        triangles: frame1.triangles.clone(),
        fps: opts.fps,
    };
    Ok(Reconstruction {
        sequence,
        frame1,
        shape_latents: shape,
        deformation_latents,
        cube,
        stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_cube_maps_frame_one_box_to_the_unit_cube_and_back() {
        let pts = [[1.0, 2.0, 3.0], [3.0, 2.5, 3.5], [2.0, 3.0, 4.0]];
        let c = UnitCube::of_points(&pts).unwrap();
        assert_eq!(c.centre, [2.0, 2.5, 3.5]);
        assert_eq!(c.scale, 2.0);
        let m: Vec<[f32; 3]> = pts.iter().map(|&p| c.to_model(p)).collect();
        for a in 0..3 {
            let lo = m.iter().map(|p| p[a]).fold(f32::INFINITY, f32::min);
            let hi = m.iter().map(|p| p[a]).fold(f32::NEG_INFINITY, f32::max);
            assert!((lo + hi).abs() < 1e-6 && hi <= 0.5 + 1e-6);
        }
        assert_eq!(m[0][0], -0.5);
        for (&p, &q) in pts.iter().zip(&m) {
            assert_eq!(c.to_world(q), p);
        }
        assert!(UnitCube::of_points(&[[1.0; 3], [1.0; 3]]).is_err());
    }

    #[test]
    fn job_progress_spreads_the_stages_and_stops_when_cancelled() {
        let ctx = JobContext::detached();
        let mut p = job_progress(&ctx, Stage::RECONSTRUCTION);
        p(Stage::Meshing, 1, 2).unwrap();
        assert!((ctx.progress().fraction() - 0.375).abs() < 1e-6);
        assert!(ctx.progress().message().starts_with("meshing frame 1 1/2"));
        ctx.progress().cancel();
        assert_eq!(p(Stage::Decoding, 0, 1), Err(Cancelled));
    }

    #[test]
    fn a_scored_reconstruction_leaves_the_last_share_of_the_bar_to_scoring() {
        let ctx = JobContext::detached();
        let mut p = job_progress_within(&ctx, Stage::SCORED_RECONSTRUCTION, 0.5..1.0, "a: ".into());
        p(Stage::Decoding, 2, 2).unwrap();
        assert!((ctx.progress().fraction() - 0.9).abs() < 1e-6);
        p(Stage::Scoring, 1, 3).unwrap();
        assert!((ctx.progress().fraction() - (0.9 + 0.1 / 3.0)).abs() < 1e-6);
        assert_eq!(ctx.progress().message(), "a: scoring against the truth 1/3");
    }

    #[test]
    fn options_are_checked() {
        assert!(PipelineOptions::default().validate().is_ok());
        for o in [
            PipelineOptions {
                steps: 0,
                ..Default::default()
            },
            PipelineOptions {
                fps: 0.0,
                ..Default::default()
            },
            PipelineOptions {
                decode_batch: 0,
                ..Default::default()
            },
        ] {
            assert!(matches!(o.validate(), Err(M2vsError::Input(_))), "{o:?}");
        }
    }
}
