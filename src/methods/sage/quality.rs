//! How often the generator draws what it is asked for: the base rate a failure search is
//! measured against (a generator that fails on most draws makes failures trivial to find).

use super::classifier::ImageClassifier;
use super::error::{Result, SageError};
use super::generator::{Generator, GradientPath, SpriteGenerator};
use crate::core::diffusion::Rng;
use crate::core::jobs::JobContext;
use candle_core::{D, Tensor};

/// Latent numbers per batch of draws: the demo's 11-number latents go 64 at a time, a Stable
/// Diffusion latent (16 384 numbers at 512²) one at a time, so that cancelling waits for one image.
const BATCH_NUMBERS: usize = 16_384;

/// Per classifier, the share of `per_class` random draws of every class that it labels as the
/// conditioned class. Checks `ctx` for cancellation between batches and reports progress.
pub fn conditional_accuracy(
    generator: &dyn Generator,
    classifiers: &[&dyn ImageClassifier],
    per_class: usize,
    seed: u64,
    ctx: &JobContext,
) -> Result<Vec<f64>> {
    let classes = generator.class_names().len();
    let d = generator.latent_dim();
    let batch = (BATCH_NUMBERS / d.max(1)).clamp(1, 64);
    let mut correct = vec![0usize; classifiers.len()];
    let mut rng = Rng::new(seed);
    let total_draws = (classes * per_class).max(1);
    let mut done = 0;
    for k in 0..classes {
        let mut left = per_class;
        while left > 0 {
            ctx.check().map_err(|_| SageError::Cancelled)?;
            ctx.set(
                done as f32 / total_draws as f32,
                format!("base rates: {done}/{total_draws} random draws"),
            );
            let n = left.min(batch);
            left -= n;
            done += n;
            let mut draw = || -> candle_core::Result<Vec<usize>> {
                let cond = generator.condition_embedding(&vec![k; n])?;
                let z = Tensor::from_vec(rng.normals_f32(n * d), (n, d), cond.device())?;
                let images = generator.generate(&z, &cond, GradientPath::None)?;
                classifiers
                    .iter()
                    .map(|c| {
                        let pred = c.logits(&images)?.argmax(D::Minus1)?.to_vec1::<u32>()?;
                        Ok(pred.iter().filter(|p| **p as usize == k).count())
                    })
                    .collect()
            };
            for (count, hits) in correct
                .iter_mut()
                .zip(draw().map_err(SageError::compute("base rates"))?)
            {
                *count += hits;
            }
        }
    }
    Ok(correct.into_iter().map(|c| c as f64 / total_draws as f64).collect())
}

/// The demo generator's ground truth: the share of `per_class` random draws per class whose
/// rendered shape mixture puts at least half its weight on the conditioned class.
pub fn oracle_rate(generator: &SpriteGenerator, per_class: usize, seed: u64) -> candle_core::Result<f64> {
    let classes = generator.class_names().len();
    let d = generator.latent_dim();
    let mut rng = Rng::new(seed);
    let mut hits = 0usize;
    for k in 0..classes {
        let device = generator.condition_embedding(&[k])?.device().clone();
        let z = Tensor::from_vec(rng.normals_f32(per_class * d), (per_class, d), &device)?;
        let w = generator.shape_weights(&z, &generator.condition_embedding(&vec![k; per_class])?)?;
        hits += w
            .narrow(1, k, 1)?
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .filter(|p| **p >= 0.5)
            .count();
    }
    Ok(hits as f64 / (classes * per_class).max(1) as f64)
}
