//! Zero-shot stitching: a head fitted on space B's relative representations, applied unchanged to
//! space A's (research note §3). Nothing is fitted on A: A contributes only its own embedding of
//! the shared anchors.
//!
//! Heads are ridge regressions with a bias, solved in closed form (`core::linalg::lstsq` on the
//! ridge-augmented system), which is deterministic and needs no learning-rate tuning:
//! - classifier: ridge on one-hot targets, prediction = the largest output;
//! - decoder: ridge from the relative representation to B's absolute latent, then B's own
//!   decoder (the paper trains a relative decoder end to end; a linear bridge into a frozen
//!   decoder keeps the demo training-free).
//!
//! Before a head, each relative vector goes through a parameter-free LayerNorm over the anchor
//! axis (`head_layer_norm`), the paper's normalisation step; being per sample, it needs no
//! statistics from the other space. Baselines: the same head fitted on B's absolute latents and
//! applied to A's (only when the widths match), B's encoder/decoder and classifier on their own.

use super::anchors::{AnchorMode, select_anchors};
use super::collection::LatentCollection;
use super::compare::relative_pair;
use super::demo::SpritePair;
use super::error::{RelrepsError, Result};
use super::transform::RelativeOptions;
use crate::core::diffusion::Rng;
use crate::core::linalg::{Matrix, lstsq};
use serde::Serialize;
use std::collections::BTreeSet;

#[derive(Debug, Clone, Serialize)]
pub struct StitchOptions {
    /// Anchors, chosen among the training rows of A (the same rows in B).
    pub anchors: usize,
    pub anchor_mode: AnchorMode,
    /// Seeds the train/test split and the anchors.
    pub seed: u64,
    pub relative: RelativeOptions,
    /// Standardise every relative vector over its anchors before a head (LayerNorm, no affine).
    pub head_layer_norm: bool,
    /// Share of the rows used to fit heads; the rest is the test split every score uses.
    pub train_fraction: f64,
    /// Ridge strength relative to the mean feature variance (scale-free).
    pub ridge: f64,
    /// Label column the classifier predicts (also used by stratified anchors).
    pub label_column: String,
    /// Test samples whose reconstructions are returned (for a panel).
    pub shown: usize,
}

impl Default for StitchOptions {
    fn default() -> Self {
        Self {
            anchors: 300,
            anchor_mode: AnchorMode::Uniform,
            seed: 0,
            relative: RelativeOptions::default(),
            head_layer_norm: true,
            train_fraction: 0.5,
            ridge: 1e-2,
            label_column: "shape".into(),
            shown: 8,
        }
    }
}

/// Rows that fit the heads and rows that score them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

/// A seeded shuffle of `0..n` cut at `train_fraction` (both parts non-empty).
pub fn split_rows(n: usize, train_fraction: f64, seed: u64) -> Result<Split> {
    if n < 2 || !(train_fraction > 0.0 && train_fraction < 1.0) {
        return Err(RelrepsError::Invalid(format!(
            "a train/test split needs at least 2 samples and a train fraction in (0, 1), got {n} and {train_fraction}"
        )));
    }
    let mut rows: Vec<usize> = (0..n).collect();
    let mut rng = Rng::new(seed ^ 0x5B17_C4ED);
    for i in (1..n).rev() {
        rows.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    let cut = ((n as f64 * train_fraction).round() as usize).clamp(1, n - 1);
    let test = rows.split_off(cut);
    Ok(Split { train: rows, test })
}

/// What every head works from: the split, the anchors and both relative representations.
#[derive(Debug, Clone)]
pub struct StitchSetup {
    pub split: Split,
    /// Anchor rows (indices into both collections), all in the training split.
    pub anchors: Vec<usize>,
    /// `n × anchors` head inputs of A and B (relative, LayerNorm-ed when asked).
    pub rel_a: Vec<f32>,
    pub rel_b: Vec<f32>,
}

impl StitchSetup {
    pub fn k(&self) -> usize {
        self.anchors.len()
    }
}

/// Splits the rows, picks anchors among A's training rows and computes both head inputs.
/// `a` and `b` must hold the same samples in the same order.
pub fn prepare(a: &LatentCollection, b: &LatentCollection, options: &StitchOptions) -> Result<StitchSetup> {
    if a.len() != b.len() {
        return Err(RelrepsError::SampleCountMismatch { a: a.len(), b: b.len() });
    }
    let split = split_rows(a.len(), options.train_fraction, options.seed)?;
    let train_a = a.select(&split.train);
    let labels = match options.anchor_mode {
        AnchorMode::Stratified => Some(train_a.column(&options.label_column)?.values.as_slice()),
        _ => None,
    };
    let picked = select_anchors(
        train_a.values(),
        train_a.len(),
        train_a.dim(),
        options.anchors,
        options.anchor_mode,
        options.seed,
        labels,
    )?;
    let anchors: Vec<usize> = picked.iter().map(|&i| split.train[i]).collect();
    let mut rel = relative_pair(a, b, &anchors, options.relative)?;
    if options.head_layer_norm {
        layer_norm_rows(&mut rel.a, anchors.len());
        layer_norm_rows(&mut rel.b, anchors.len());
    }
    Ok(StitchSetup {
        split,
        anchors,
        rel_a: rel.a,
        rel_b: rel.b,
    })
}

/// Each row minus its mean, divided by its standard deviation (LayerNorm without the affine).
pub fn layer_norm_rows(values: &mut [f32], width: usize) {
    for row in values.chunks_mut(width) {
        let n = row.len() as f64;
        let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = row.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
        let inv = 1.0 / (var + 1e-5).sqrt();
        row.iter_mut().for_each(|v| *v = ((f64::from(*v) - mean) * inv) as f32);
    }
}

/// A linear map with a bias, `y = (x − x̄)·W + ȳ`, fitted by ridge regression.
#[derive(Debug, Clone)]
pub struct RidgeHead {
    inputs: usize,
    outputs: usize,
    mean_x: Vec<f64>,
    mean_y: Vec<f64>,
    /// `inputs × outputs`.
    weights: Matrix<f64>,
}

impl RidgeHead {
    /// Fits `n × inputs` features to `n × outputs` targets; the penalty is `ridge` times the mean
    /// feature variance, so it does not depend on the features' scale. The bias is not penalised.
    pub fn fit(x: &[f32], y: &[f32], n: usize, inputs: usize, outputs: usize, ridge: f64) -> Result<Self> {
        if n == 0 || inputs == 0 || outputs == 0 || x.len() != n * inputs || y.len() != n * outputs {
            return Err(RelrepsError::Invalid(format!(
                "ridge head: {} features and {} targets do not fill {n} × {inputs} and {n} × {outputs}",
                x.len(),
                y.len()
            )));
        }
        if !(ridge >= 0.0 && ridge.is_finite()) {
            return Err(RelrepsError::Invalid(format!(
                "the ridge strength must be ≥ 0, got {ridge}"
            )));
        }
        let mean_x = column_means(x, inputs);
        let mean_y = column_means(y, outputs);
        let mut design = Matrix::<f64>::zeros(n + inputs, inputs);
        let mut total_var = 0.0;
        for (i, row) in x.chunks(inputs).enumerate() {
            let out = &mut design.data_mut()[i * inputs..(i + 1) * inputs];
            for ((o, &v), m) in out.iter_mut().zip(row).zip(&mean_x) {
                *o = f64::from(v) - m;
                total_var += *o * *o;
            }
        }
        let penalty = ridge * total_var / (n * inputs) as f64 * n as f64;
        let root = penalty.sqrt();
        for j in 0..inputs {
            design.data_mut()[(n + j) * inputs + j] = root;
        }
        let mut target = Matrix::<f64>::zeros(n + inputs, outputs);
        for (i, row) in y.chunks(outputs).enumerate() {
            let out = &mut target.data_mut()[i * outputs..(i + 1) * outputs];
            for ((o, &v), m) in out.iter_mut().zip(row).zip(&mean_y) {
                *o = f64::from(v) - m;
            }
        }
        let weights = lstsq(&design, &target, None)?;
        Ok(Self {
            inputs,
            outputs,
            mean_x,
            mean_y,
            weights,
        })
    }

    pub fn inputs(&self) -> usize {
        self.inputs
    }
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// `n × outputs` predictions for `n × inputs` features.
    pub fn predict(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        if x.len() != n * self.inputs {
            return Err(RelrepsError::WidthMismatch {
                what: "a fitted head",
                a: x.len().checked_div(n).unwrap_or(0),
                b: self.inputs,
            });
        }
        let w = self.weights.data();
        let mut out = Vec::with_capacity(n * self.outputs);
        let mut centred = vec![0f64; self.inputs];
        for row in x.chunks(self.inputs) {
            centred
                .iter_mut()
                .zip(row)
                .zip(&self.mean_x)
                .for_each(|((c, &v), m)| *c = f64::from(v) - m);
            for (o, m) in self.mean_y.iter().enumerate() {
                let dot: f64 = centred
                    .iter()
                    .enumerate()
                    .map(|(j, c)| c * w[j * self.outputs + o])
                    .sum();
                out.push((dot + m) as f32);
            }
        }
        Ok(out)
    }

    /// Index of the largest output per row (a classifier's prediction).
    pub fn predict_classes(&self, x: &[f32], n: usize) -> Result<Vec<usize>> {
        Ok(self.predict(x, n)?.chunks(self.outputs).map(argmax).collect())
    }
}

fn column_means(values: &[f32], width: usize) -> Vec<f64> {
    let mut m = vec![0f64; width];
    let rows = values.len() / width;
    for row in values.chunks(width) {
        m.iter_mut().zip(row).for_each(|(s, &v)| *s += f64::from(v));
    }
    m.iter_mut().for_each(|s| *s /= rows.max(1) as f64);
    m
}

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |best, (i, &v)| if v > best.1 { (i, v) } else { best },
        )
        .0
}

/// The rows `rows` of a row-major matrix of width `width`, in that order.
pub fn gather(values: &[f32], width: usize, rows: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * width);
    for &i in rows {
        out.extend_from_slice(&values[i * width..(i + 1) * width]);
    }
    out
}

fn accuracy(predicted: &[usize], truth: &[usize]) -> f64 {
    let hits = predicted.iter().zip(truth).filter(|(p, t)| p == t).count();
    hits as f64 / truth.len().max(1) as f64
}

/// Classifier stitching scores (accuracy on the test split).
#[derive(Debug, Clone, Serialize)]
pub struct ClassifierStitch {
    pub label_column: String,
    pub classes: Vec<String>,
    /// Frequency of the most common class in the test split.
    pub chance: f64,
    /// Head fitted on B's relative representations, applied to B's.
    pub relative_unstitched: f64,
    /// The same head applied to A's relative representations (zero-shot stitching).
    pub relative_stitched: f64,
    /// Head fitted on B's absolute latents, applied to B's.
    pub absolute_unstitched: f64,
    /// That head applied to A's absolute latents; `None` when the widths differ.
    pub absolute_stitched: Option<f64>,
}

/// Fits the classifier heads on B's training rows and scores them on the test rows.
pub fn stitch_classifier(
    a: &LatentCollection,
    b: &LatentCollection,
    setup: &StitchSetup,
    options: &StitchOptions,
) -> Result<ClassifierStitch> {
    let names = &b.column(&options.label_column)?.values;
    let classes: Vec<String> = names.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
    if classes.len() < 2 {
        return Err(RelrepsError::Invalid(format!(
            "label column '{}' of {} has a single class; nothing to classify",
            options.label_column, b.source
        )));
    }
    let label: Vec<usize> = names.iter().map(|n| classes.binary_search(n).unwrap_or(0)).collect();
    let (train, test) = (&setup.split.train, &setup.split.test);
    let truth: Vec<usize> = test.iter().map(|&i| label[i]).collect();
    let mut one_hot = vec![0f32; train.len() * classes.len()];
    for (r, &i) in train.iter().enumerate() {
        one_hot[r * classes.len() + label[i]] = 1.0;
    }
    let fit = |x: &[f32], width: usize| {
        RidgeHead::fit(
            &gather(x, width, train),
            &one_hot,
            train.len(),
            width,
            classes.len(),
            options.ridge,
        )
    };
    let score = |head: &RidgeHead, x: &[f32], width: usize| -> Result<f64> {
        let predicted = head.predict_classes(&gather(x, width, test), test.len())?;
        Ok(accuracy(&predicted, &truth))
    };
    let k = setup.k();
    let rel_head = fit(&setup.rel_b, k)?;
    let abs_head = fit(b.values(), b.dim())?;
    let mut counts = vec![0usize; classes.len()];
    truth.iter().for_each(|&t| counts[t] += 1);
    Ok(ClassifierStitch {
        label_column: options.label_column.clone(),
        chance: counts.iter().copied().max().unwrap_or(0) as f64 / truth.len().max(1) as f64,
        classes,
        relative_unstitched: score(&rel_head, &setup.rel_b, k)?,
        relative_stitched: score(&rel_head, &setup.rel_a, k)?,
        absolute_unstitched: score(&abs_head, b.values(), b.dim())?,
        absolute_stitched: if a.dim() == b.dim() {
            Some(score(&abs_head, a.values(), a.dim())?)
        } else {
            None
        },
    })
}

/// Reconstructions of one test sample (planar images of [`super::demo::IMAGE_FLOATS`] floats when
/// B is a sprite model; see [`super::demo::image_rgb8`] for display).
#[derive(Debug, Clone)]
pub struct ReconSample {
    /// Row in both collections.
    pub row: usize,
    pub id: String,
    pub original: Vec<f32>,
    /// B's encoder → B's decoder.
    pub unstitched: Vec<f32>,
    /// B's relative representation → bridge → B's decoder.
    pub relative_unstitched: Vec<f32>,
    /// A's relative representation → B's bridge → B's decoder.
    pub relative_stitched: Vec<f32>,
    /// A's latent straight into B's decoder (equal widths only).
    pub absolute_stitched: Option<Vec<f32>>,
}

/// Decoder stitching scores: mean squared error per output value on the test split, and how
/// well each route reproduces B's latent (R², 1 = exact).
#[derive(Debug, Clone, Serialize)]
pub struct DecoderStitch {
    pub unstitched_mse: f64,
    pub relative_unstitched_mse: f64,
    pub relative_stitched_mse: f64,
    pub absolute_stitched_mse: Option<f64>,
    pub relative_unstitched_latent_r2: f64,
    pub relative_stitched_latent_r2: f64,
    pub absolute_stitched_latent_r2: Option<f64>,
    /// The first `options.shown` test samples (not serialised).
    #[serde(skip)]
    pub samples: Vec<ReconSample>,
}

/// The decoder bridge: ridge from B's head inputs (relative representations) to B's absolute
/// latents, fitted on the training rows. `bridge.predict(&rel_a_rows, m)` gives latents for B's
/// decoder from A's relative representations.
pub fn fit_bridge(b: &LatentCollection, setup: &StitchSetup, options: &StitchOptions) -> Result<RidgeHead> {
    let train = &setup.split.train;
    let (k, d) = (setup.k(), b.dim());
    RidgeHead::fit(
        &gather(&setup.rel_b, k, train),
        &gather(b.values(), d, train),
        train.len(),
        k,
        d,
        options.ridge,
    )
}

/// Decodes `m × dim` latents (row-major, `m` given) into `m × out` outputs.
pub type DecodeFn<'a> = dyn Fn(&[f32], usize) -> Result<Vec<f32>> + 'a;

/// Scores every route through `bridge` (B relative → B latent, from [`fit_bridge`]) on the test
/// rows. `decode_b` maps `m × dim_b` latents to `m × out` outputs; `targets` gives the true outputs
/// of the listed rows (e.g. the input images).
pub fn stitch_decoder(
    a: &LatentCollection,
    b: &LatentCollection,
    setup: &StitchSetup,
    bridge: &RidgeHead,
    options: &StitchOptions,
    decode_b: &DecodeFn<'_>,
    targets: &dyn Fn(&[usize]) -> Vec<f32>,
) -> Result<DecoderStitch> {
    let test = &setup.split.test;
    let (k, d) = (setup.k(), b.dim());
    let truth_latent = gather(b.values(), d, test);
    let via_b = bridge.predict(&gather(&setup.rel_b, k, test), test.len())?;
    let via_a = bridge.predict(&gather(&setup.rel_a, k, test), test.len())?;
    let a_raw = (a.dim() == d).then(|| gather(a.values(), d, test));
    let routes: Vec<&[f32]> = [Some(&truth_latent), Some(&via_b), Some(&via_a), a_raw.as_ref()]
        .into_iter()
        .flatten()
        .map(Vec::as_slice)
        .collect();
    let mut sq = vec![0f64; routes.len()];
    let mut count = 0usize;
    let mut samples: Vec<ReconSample> = Vec::new();
    // Chunks keep the decoded images of a few hundred samples in memory at a time.
    const CHUNK: usize = 250;
    for (c, rows) in test.chunks(CHUNK).enumerate() {
        let start = c * CHUNK;
        let target = targets(rows);
        let per = target.len() / rows.len();
        count += target.len();
        let mut decoded = Vec::with_capacity(routes.len());
        for (r, route) in routes.iter().enumerate() {
            let out = decode_b(&route[start * d..(start + rows.len()) * d], rows.len())?;
            if out.len() != target.len() {
                return Err(RelrepsError::WidthMismatch {
                    what: "decoder outputs and targets",
                    a: out.len() / rows.len(),
                    b: per,
                });
            }
            sq[r] += out
                .iter()
                .zip(&target)
                .map(|(&x, &y)| f64::from(x - y).powi(2))
                .sum::<f64>();
            decoded.push(out);
        }
        for (j, &row) in rows.iter().enumerate() {
            if samples.len() >= options.shown {
                break;
            }
            let pick = |r: usize| decoded[r][j * per..(j + 1) * per].to_vec();
            samples.push(ReconSample {
                row,
                id: b.ids()[row].clone(),
                original: target[j * per..(j + 1) * per].to_vec(),
                unstitched: pick(0),
                relative_unstitched: pick(1),
                relative_stitched: pick(2),
                absolute_stitched: a_raw.is_some().then(|| pick(3)),
            });
        }
    }
    let mse = |r: usize| sq[r] / count.max(1) as f64;
    Ok(DecoderStitch {
        unstitched_mse: mse(0),
        relative_unstitched_mse: mse(1),
        relative_stitched_mse: mse(2),
        absolute_stitched_mse: a_raw.as_ref().map(|_| mse(3)),
        relative_unstitched_latent_r2: r_squared(&via_b, &truth_latent, d),
        relative_stitched_latent_r2: r_squared(&via_a, &truth_latent, d),
        absolute_stitched_latent_r2: a_raw.as_deref().map(|x| r_squared(x, &truth_latent, d)),
        samples,
    })
}

/// `1 − Σ(ŷ − y)² / Σ(y − ȳ)²` over all columns (column means of `y`).
fn r_squared(predicted: &[f32], truth: &[f32], width: usize) -> f64 {
    let mean = column_means(truth, width);
    let (mut residual, mut total) = (0f64, 0f64);
    for (p, t) in predicted.chunks(width).zip(truth.chunks(width)) {
        for ((&p, &t), m) in p.iter().zip(t).zip(&mean) {
            residual += f64::from(p - t).powi(2);
            total += (f64::from(t) - m).powi(2);
        }
    }
    if total > 0.0 { 1.0 - residual / total } else { 0.0 }
}

/// Accuracy of the models' own classifier heads on the test split.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct OwnHeads {
    /// A's classifier on A's latents.
    pub a: f64,
    /// B's classifier on B's latents.
    pub b: f64,
    /// B's classifier on A's latents (absolute stitching of the real head; equal widths only).
    pub b_on_a: Option<f64>,
}

/// Everything the stitching panel and `relrep` on model folders report.
#[derive(Debug, Clone, Serialize)]
pub struct StitchReport {
    pub model_a: String,
    pub model_b: String,
    pub samples: usize,
    pub train: usize,
    pub test: usize,
    pub options: StitchOptions,
    pub anchor_ids: Vec<String>,
    pub classifier: ClassifierStitch,
    pub own_heads: OwnHeads,
    pub decoder: DecoderStitch,
}

/// What [`stitch_fitted`] fitted besides its report, for callers that go on decoding through the
/// same heads (the Stitching panel's reconstructions of a selection).
pub struct Fitted {
    pub report: StitchReport,
    pub setup: StitchSetup,
    pub bridge: RidgeHead,
}

/// Classifier and decoder stitching of the demo pair: heads on B, applied to A.
pub fn stitch(pair: &SpritePair, options: &StitchOptions) -> Result<StitchReport> {
    Ok(stitch_fitted(pair, options)?.report)
}

/// [`stitch`], keeping the split, anchors and decoder bridge it fitted.
pub fn stitch_fitted(pair: &SpritePair, options: &StitchOptions) -> Result<Fitted> {
    let (a, b) = (&pair.a, &pair.b);
    let setup = prepare(a, b, options)?;
    let classifier = stitch_classifier(a, b, &setup, options)?;
    let test = &setup.split.test;
    let truth: Vec<usize> = test.iter().map(|&i| pair.factors[i].shape.index()).collect();
    let own = |model: &super::demo::SpriteModel, space: &LatentCollection| -> Result<f64> {
        let z = gather(space.values(), space.dim(), test);
        Ok(accuracy(&model.classify(&z, test.len())?, &truth))
    };
    let own_heads = OwnHeads {
        a: own(&pair.model_a, a)?,
        b: own(&pair.model_b, b)?,
        b_on_a: if a.dim() == b.dim() {
            Some(own(&pair.model_b, a)?)
        } else {
            None
        },
    };
    let decode = |z: &[f32], n: usize| pair.model_b.decode(z, n);
    let targets = |rows: &[usize]| pair.images(rows);
    let bridge = fit_bridge(b, &setup, options)?;
    let decoder = stitch_decoder(a, b, &setup, &bridge, options, &decode, &targets)?;
    let report = StitchReport {
        model_a: pair.model_a.name().to_string(),
        model_b: pair.model_b.name().to_string(),
        samples: a.len(),
        train: setup.split.train.len(),
        test: test.len(),
        options: options.clone(),
        anchor_ids: setup.anchors.iter().map(|&i| a.ids()[i].clone()).collect(),
        classifier,
        own_heads,
        decoder,
    };
    Ok(Fitted { report, setup, bridge })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::linalg::matmul;
    use crate::methods::relreps::random_orthogonal;

    /// `n × d` Gaussian space labelled by which of three fixed directions it leans to most, and
    /// its copy `scale · A · Q` with `Q` random orthogonal.
    fn rotated_pair(n: usize, d: usize, scale: f32, seed: u64) -> (LatentCollection, LatentCollection) {
        let mut rng = Rng::new(seed);
        let a = rng.normals_f32(n * d);
        let q = random_orthogonal(d, &mut rng).unwrap();
        let a64 = Matrix::new(n, d, a.iter().map(|&x| f64::from(x)).collect()).unwrap();
        let b: Vec<f32> = matmul(&a64, &q)
            .unwrap()
            .data()
            .iter()
            .map(|&x| x as f32 * scale)
            .collect();
        let label = |row: &[f32]| {
            let scores = [row[0] + row[1], row[2] - row[0], -row[1] - row[2]];
            argmax(&scores)
        };
        let names = ["p", "q", "r"];
        let column = super::super::LabelColumn {
            name: "class".into(),
            values: a.chunks(d).map(|r| names[label(r)].to_string()).collect(),
        };
        let mut sa = LatentCollection::new("a", n, d, a, None).unwrap();
        let mut sb = LatentCollection::new("b", n, d, b, None).unwrap();
        sa.set_column(column.clone()).unwrap();
        sb.set_column(column).unwrap();
        (sa, sb)
    }

    fn options() -> StitchOptions {
        StitchOptions {
            anchors: 64,
            label_column: "class".into(),
            shown: 3,
            ..StitchOptions::default()
        }
    }

    #[test]
    fn split_is_seeded_disjoint_and_complete() {
        let s = split_rows(10, 0.3, 4).unwrap();
        assert_eq!((s.train.len(), s.test.len()), (3, 7));
        let mut all: Vec<usize> = s.train.iter().chain(&s.test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(s, split_rows(10, 0.3, 4).unwrap());
        assert_ne!(s, split_rows(10, 0.3, 5).unwrap());
        assert!(split_rows(1, 0.5, 0).is_err() && split_rows(10, 1.0, 0).is_err());
    }

    #[test]
    fn ridge_recovers_a_linear_map() {
        let (n, i, o) = (200, 5, 2);
        let mut rng = Rng::new(3);
        let x = rng.normals_f32(n * i);
        let y: Vec<f32> = x
            .chunks(i)
            .flat_map(|r| [2.0 * r[0] - r[3] + 1.5, 0.5 * r[4] - 3.0])
            .collect();
        let head = RidgeHead::fit(&x, &y, n, i, o, 0.0).unwrap();
        let p = head.predict(&x, n).unwrap();
        let err = p.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(err < 1e-4, "{err}");
        // A heavy ridge shrinks the slopes towards zero: every prediction falls back to the mean.
        let flat = RidgeHead::fit(&x, &y, n, i, o, 1e6).unwrap().predict(&x, n).unwrap();
        let mean = column_means(&y, o);
        for row in flat.chunks(o) {
            assert!((f64::from(row[0]) - mean[0]).abs() < 1e-3, "{row:?} {mean:?}");
            assert!((f64::from(row[1]) - mean[1]).abs() < 1e-3, "{row:?} {mean:?}");
        }
        assert!(RidgeHead::fit(&x, &y, n, i + 1, o, 0.1).is_err());
        assert!(head.predict(&x[..4], 1).is_err());
    }

    /// Acceptance-style check: under a rotation plus rescaling, the head fitted on B's relative
    /// representations classifies A's exactly as B's; the absolute head does not transfer.
    #[test]
    fn relative_heads_survive_an_isometry_absolute_ones_do_not() {
        let (a, b) = rotated_pair(1200, 16, 2.5, 11);
        let opts = options();
        let setup = prepare(&a, &b, &opts).unwrap();
        assert!(setup.anchors.iter().all(|i| setup.split.train.contains(i)));
        let c = stitch_classifier(&a, &b, &setup, &opts).unwrap();
        assert!(c.relative_unstitched > 0.85, "{c:?}");
        assert!((c.relative_stitched - c.relative_unstitched).abs() < 1e-9, "{c:?}");
        assert!(c.absolute_unstitched > 0.9, "{c:?}");
        let abs = c.absolute_stitched.unwrap();
        assert!(abs < 0.6 && abs < c.relative_stitched - 0.3, "{c:?}");
        assert!(c.chance < 0.5 && c.classes == ["p", "q", "r"], "{c:?}");
    }

    #[test]
    fn relative_bridge_into_a_decoder_survives_an_isometry() {
        let (a, b) = rotated_pair(800, 12, 0.7, 5);
        let opts = options();
        let setup = prepare(&a, &b, &opts).unwrap();
        // "Decoder": a fixed linear map of B's latent to 20 outputs; targets = B's true outputs.
        let mut rng = Rng::new(8);
        let m = rng.normals_f32(12 * 20);
        let m = &m;
        let decode = |z: &[f32], n: usize| -> Result<Vec<f32>> {
            Ok((0..n)
                .flat_map(|i| (0..20).map(move |o| (0..12).map(|j| z[i * 12 + j] * m[j * 20 + o]).sum::<f32>()))
                .collect())
        };
        let decode = &decode;
        let targets = |rows: &[usize]| decode(&gather(b.values(), 12, rows), rows.len()).unwrap();
        let bridge = fit_bridge(&b, &setup, &opts).unwrap();
        let d = stitch_decoder(&a, &b, &setup, &bridge, &opts, decode, &targets).unwrap();
        assert!(d.unstitched_mse < 1e-9, "{d:?}");
        let rel_gap = (d.relative_stitched_mse - d.relative_unstitched_mse).abs() / d.relative_unstitched_mse;
        assert!(rel_gap < 1e-4, "{d:?}");
        assert!(d.relative_stitched_latent_r2 > 0.5, "{d:?}");
        let abs = d.absolute_stitched_mse.unwrap();
        assert!(abs > 5.0 * d.relative_stitched_mse, "{d:?}");
        assert!(d.absolute_stitched_latent_r2.unwrap() < 0.0, "{d:?}");
        assert_eq!(d.samples.len(), 3);
        assert_eq!(d.samples[0].row, setup.split.test[0]);
        assert_eq!(d.samples[0].original.len(), 20);
    }

    #[test]
    fn mismatched_inputs_are_typed_errors() {
        let (a, b) = rotated_pair(100, 4, 1.0, 1);
        let short = b.select(&(0..50).collect::<Vec<_>>());
        assert!(matches!(
            prepare(&a, &short, &options()),
            Err(RelrepsError::SampleCountMismatch { .. })
        ));
        let opts = StitchOptions {
            label_column: "colour".into(),
            anchors: 10,
            ..options()
        };
        let setup = prepare(&a, &b, &opts).unwrap();
        assert!(matches!(
            stitch_classifier(&a, &b, &setup, &opts),
            Err(RelrepsError::NoSuchColumn { .. })
        ));
    }
}
