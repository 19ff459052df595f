//! How often the generator draws what it is asked for: the base rate a failure search is
//! measured against (a generator that fails on most draws makes failures trivial to find).

use super::classifier::ImageClassifier;
use super::generator::{Generator, GradientPath, SpriteGenerator};
use crate::core::diffusion::Rng;
use candle_core::{D, Tensor};

/// Per classifier, the share of `per_class` random draws of every class that it labels as the
/// conditioned class.
pub fn conditional_accuracy(
    generator: &dyn Generator,
    classifiers: &[&dyn ImageClassifier],
    per_class: usize,
    seed: u64,
) -> candle_core::Result<Vec<f64>> {
    let classes = generator.class_names().len();
    let d = generator.latent_dim();
    let mut correct = vec![0usize; classifiers.len()];
    let mut rng = Rng::new(seed);
    for k in 0..classes {
        let mut left = per_class;
        while left > 0 {
            let n = left.min(64);
            left -= n;
            let device = generator.condition_embedding(&[k])?.device().clone();
            let z = Tensor::from_vec(rng.normals_f32(n * d), (n, d), &device)?;
            let images = generator.generate(&z, &generator.condition_embedding(&vec![k; n])?, GradientPath::None)?;
            for (c, count) in classifiers.iter().zip(correct.iter_mut()) {
                let pred = c.logits(&images)?.argmax(D::Minus1)?.to_vec1::<u32>()?;
                *count += pred.iter().filter(|p| **p as usize == k).count();
            }
        }
    }
    let total = (classes * per_class).max(1) as f64;
    Ok(correct.into_iter().map(|c| c as f64 / total).collect())
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
