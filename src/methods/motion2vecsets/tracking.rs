//! Reconstruction and tracking of a whole sequence as a user or the evaluation asks for it: the
//! observations the networks take (a fixed number of points per frame, the same identities in
//! every frame for the sparse setting) made from whatever sequence was loaded, and the scores of
//! a reconstruction against the true mesh sequence beside two baselines.
//!
//! Baselines (they need no network):
//! - **nearest frame**: the reconstruction's own frame 1 held still for every frame, i.e. the
//!   best the model's shape alone gives without tracking (what `motion-eval` calls the
//!   nearest-frame baseline);
//! - **static truth**: the true frame-1 mesh held still, an oracle shape with no motion. A model
//!   that tracks must beat it on the later frames; it is hard to beat on frame 1.

use super::M2vsError;
use super::config::Observation;
use super::pipeline::{Models, PipelineOptions, PipelineProgress, PipelineStats, Reconstruction, Stage, reconstruct};
use crate::core::diffusion::Rng;
use crate::core::motion::MotionSequence;
use crate::methods::demo_data::motion::sample_sparse;
use crate::methods::metrics::shape::{EvalOptions, SequenceScores, evaluate_sequence, held_first_frame};

/// Makes the `count` points per frame a model takes from `seq`.
///
/// - A mesh sequence: `count` area-weighted surface points of frame 1 followed through every
///   frame by their barycentric coordinates, with Gaussian noise `noise` (the reference's
///   sparse input).
/// - A point sequence with correspondence (equal counts): `count` of its points, the same ones
///   in every frame (a seeded draw without replacement), or all of them when it has exactly
///   `count`.
/// - A point sequence without correspondence (partial scans): `count` points drawn per frame
///   independently; only the partial setting ([`Observation::Separate`]) accepts it.
pub fn observations(
    seq: &MotionSequence,
    count: usize,
    noise: f32,
    observation: Observation,
    seed: u64,
) -> Result<Vec<Vec<[f32; 3]>>, M2vsError> {
    if seq.is_empty() || count == 0 {
        return Err(M2vsError::Input("an empty sequence has nothing to reconstruct".into()));
    }
    if seq.is_mesh() {
        return Ok(sample_sparse(seq, count, noise, seed));
    }
    let mut rng = Rng::new(seed);
    match seq.corresponding() {
        Some(n) => {
            if n < count {
                return Err(M2vsError::Input(format!(
                    "the sequence has {n} points per frame; the model takes {count} (give it a denser sequence or a mesh sequence)"
                )));
            }
            let picks = draw_without_replacement(n, count, &mut rng);
            Ok(seq
                .frames
                .iter()
                .map(|f| picks.iter().map(|&i| f[i]).collect())
                .collect())
        }
        None if observation == Observation::Separate => seq
            .frames
            .iter()
            .enumerate()
            .map(|(t, f)| {
                if f.len() < count {
                    return Err(M2vsError::Input(format!(
                        "frame {} has {} points; the model takes {count}",
                        t + 1,
                        f.len()
                    )));
                }
                Ok(draw_without_replacement(f.len(), count, &mut rng)
                    .into_iter()
                    .map(|i| f[i])
                    .collect())
            })
            .collect(),
        None => Err(M2vsError::Input(
            "the frames have different point counts (no correspondence), but this model's deformation \
             network takes the same points in every frame (the sparse setting)"
                .into(),
        )),
    }
}

/// `count` distinct indices of `0..n` in ascending order (a partial Fisher–Yates shuffle).
fn draw_without_replacement(n: usize, count: usize, rng: &mut Rng) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    for i in 0..count.min(n) {
        let j = i + ((rng.uniform() * (n - i) as f64) as usize).min(n - i - 1);
        all.swap(i, j);
    }
    let mut picked = all[..count.min(n)].to_vec();
    picked.sort_unstable();
    picked
}

/// The scores of one reconstruction and of the two baselines against the truth.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrackingScores {
    pub model: SequenceScores,
    /// The reconstruction's frame 1 held still.
    pub nearest_frame: SequenceScores,
    /// The true frame 1 held still.
    pub static_truth: SequenceScores,
}

/// Scores `recon` against `truth` (both mesh sequences in the same coordinates), reporting
/// `(Stage::Scoring, done, 3)` before each of the three sequences it scores.
pub fn score(
    recon: &MotionSequence,
    truth: &MotionSequence,
    opts: &EvalOptions,
    progress: PipelineProgress,
) -> Result<TrackingScores, M2vsError> {
    let mut eval = |done: usize, pred: &MotionSequence| {
        progress(Stage::Scoring, done, 3).map_err(|_| M2vsError::Cancelled)?;
        evaluate_sequence(pred, truth, opts)
            .ok_or_else(|| M2vsError::Input("scoring needs a mesh sequence as the truth".into()))
    };
    let scores = TrackingScores {
        model: eval(0, recon)?,
        nearest_frame: eval(1, &held_first_frame(recon))?,
        static_truth: eval(2, &held_first_frame(truth))?,
    };
    progress(Stage::Scoring, 3, 3).map_err(|_| M2vsError::Cancelled)?;
    Ok(scores)
}

/// One held-out sequence: its observations reconstructed, then scored.
pub struct Tracked {
    pub reconstruction: Reconstruction,
    pub scores: TrackingScores,
}

/// Reconstructs `truth` from `points` observed points per frame (noise σ `noise`) and scores it.
pub fn reconstruct_and_score(
    models: &Models,
    truth: &MotionSequence,
    noise: f32,
    opts: &PipelineOptions,
    eval: &EvalOptions,
    progress: PipelineProgress,
) -> Result<Tracked, M2vsError> {
    let count = models.shape_denoiser.config().cond_num_inputs;
    let obs = observations(truth, count, noise, models.observation(), opts.seed ^ 0x5EED_0B5E)?;
    let reconstruction = reconstruct(models, &obs, opts, progress)?;
    let scores = score(&reconstruction.sequence, truth, eval, progress)?;
    Ok(Tracked { reconstruction, scores })
}

/// Seconds per stage, for reports.
pub fn stage_seconds(stats: &PipelineStats) -> [(&'static str, f64); 5] {
    [
        ("shape_sampling", stats.shape_sampling.as_secs_f64()),
        ("meshing", stats.meshing.as_secs_f64()),
        ("deformation_sampling", stats.deformation_sampling.as_secs_f64()),
        ("decoding", stats.decoding.as_secs_f64()),
        ("total", stats.total().as_secs_f64()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points_seq(counts: &[usize]) -> MotionSequence {
        MotionSequence {
            frames: counts
                .iter()
                .enumerate()
                .map(|(t, &n)| (0..n).map(|i| [i as f32, t as f32, 0.0]).collect())
                .collect(),
            triangles: Vec::new(),
            fps: 10.0,
        }
    }

    #[test]
    fn corresponding_points_keep_their_identity_across_frames() {
        let seq = points_seq(&[50, 50, 50]);
        let obs = observations(&seq, 20, 0.0, Observation::Paired, 3).unwrap();
        assert_eq!(obs.len(), 3);
        for f in &obs {
            assert_eq!(f.len(), 20);
        }
        // Same point (x = index) in every frame, distinct indices.
        for (a, b) in obs[0].iter().zip(&obs[2]) {
            assert_eq!(a[0], b[0]);
        }
        let mut xs: Vec<i32> = obs[0].iter().map(|p| p[0] as i32).collect();
        xs.dedup();
        assert_eq!(xs.len(), 20);
    }

    #[test]
    fn too_few_or_ragged_points_are_refused_with_the_reason() {
        let e = observations(&points_seq(&[10, 10]), 20, 0.0, Observation::Paired, 0).unwrap_err();
        assert!(e.to_string().contains("10 points per frame"), "{e}");
        let e = observations(&points_seq(&[30, 40]), 20, 0.0, Observation::Paired, 0).unwrap_err();
        assert!(e.to_string().contains("sparse setting"), "{e}");
        let ok = observations(&points_seq(&[30, 40]), 20, 0.0, Observation::Separate, 0).unwrap();
        assert_eq!(ok.iter().map(Vec::len).collect::<Vec<_>>(), [20, 20]);
    }
}
