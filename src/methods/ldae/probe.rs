//! Linear probes on LDAE's semantic code (logistic regression for binary labels, ridge for continuous
//! ones), their cross-validation, and attribute manipulation along a probe direction.
//!
//! LDAE (research note §8) standardises the semantic code per dimension, `y_n = (y − μ)/σ` with the
//! *population* standard deviation of the training codes, fits `Linear(d, 1)` on `y_n`, and edits a code
//! by `y' = (y_n + s·√d·ŵ)·σ + μ` with `ŵ = w/‖w‖`. The edit moves the probe's score by exactly
//! `s·√d·‖w‖`. The published `disease_classifier.ckpt` is such a `Linear(768, 1)` (`weight` [1, 768],
//! `bias` [1]) trained with classes sorted by name, **AD = 0, CN = 1**: its weight points towards CN,
//! so a positive strength makes a scan more CN-like. [`LinearProbe::from_checkpoint`] loads it (with the
//! model's `semantic_mean`/`semantic_std`) as a probe whose positive class is CN.
//!
//! The fits here are deterministic and exact rather than LDAE's Adam/SGD epochs:
//! - both losses carry an L2 penalty `λ/2·‖w‖²` (bias unpenalised). The optimum then lies in the row
//!   space of the centred data, so each fit first takes the thin SVD `X = U·S·Vᵀ` and solves for
//!   `β` in `w = V·β` (at most `min(n, d)` unknowns, however wide the code);
//! - ridge is closed form in that basis; logistic regression is Newton's method (IRLS) with a
//!   Cholesky solve and a backtracking line search, stopped at a gradient tolerance.
//!
//! Cross-validation is k-fold, seeded, stratified for binary labels, and keeps every scan of one
//! subject in one fold when groups are given (a longitudinal cohort would otherwise leak identity
//! between folds). The standardiser is refitted on each training fold. λ can be fixed or chosen by an
//! inner cross-validation on the training part only ([`L2::Auto`]), so the outer scores stay unbiased.

use crate::core::diffusion::Rng;
use crate::core::linalg::{self, LinalgError, Matrix};
use crate::core::weights::Checkpoint;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Safetensors metadata key holding the probes' description (JSON).
pub const METADATA_KEY: &str = "latent_workbench.probes";
/// The λ grid [`L2::Auto`] searches.
pub const L2_GRID: [f64; 8] = [0.01, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5];
/// Newton iterations before logistic regression gives up.
const MAX_NEWTON_STEPS: usize = 100;
/// A standard deviation below this counts as zero (the dimension is constant; it is left unscaled
/// as scikit-learn's `StandardScaler` does, so standardising never divides by zero).
const MIN_STD: f64 = 1e-12;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no samples to fit")]
    Empty,
    #[error("sample {index} has {found} features, expected {expected}")]
    Ragged {
        index: usize,
        expected: usize,
        found: usize,
    },
    #[error("{what} has a non-finite value at index {index}")]
    NonFinite { what: &'static str, index: usize },
    #[error("{labels} labels for {samples} samples")]
    LabelCount { labels: usize, samples: usize },
    #[error("a binary probe needs both classes: {positives} positive and {negatives} negative samples")]
    OneClass { positives: usize, negatives: usize },
    #[error("cross-validation: {0}")]
    Folds(String),
    #[error("the L2 penalty must be positive and finite, got {0}")]
    BadL2(f64),
    #[error("logistic regression did not converge in {0} Newton steps")]
    NoConvergence(usize),
    #[error("the Newton system is not positive definite (degenerate data)")]
    NotPositiveDefinite,
    #[error("probe file {source_name}: {problem}")]
    File { source_name: String, problem: String },
    #[error(transparent)]
    Linalg(#[from] LinalgError),
}

type Result<T> = std::result::Result<T, ProbeError>;

/// Per-dimension standardisation `(y − μ)/σ` with the population standard deviation.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardiser {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Standardiser {
    /// Checks lengths and values; a σ of (nearly) zero is replaced by 1.
    pub fn new(mean: Vec<f64>, std: Vec<f64>) -> Result<Self> {
        if mean.is_empty() {
            return Err(ProbeError::Empty);
        }
        if mean.len() != std.len() {
            return Err(ProbeError::Ragged {
                index: 0,
                expected: mean.len(),
                found: std.len(),
            });
        }
        check_finite("standardiser mean", &mean)?;
        check_finite("standardiser std", &std)?;
        let std = std
            .into_iter()
            .map(|s| if s.abs() < MIN_STD { 1.0 } else { s.abs() })
            .collect();
        Ok(Self { mean, std })
    }

    /// μ and population σ of `codes` (rows).
    pub fn fit(codes: &[Vec<f32>]) -> Result<Self> {
        let d = check_rows(codes)?;
        let n = codes.len() as f64;
        let mut mean = vec![0.0; d];
        for row in codes {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0; d];
        for row in codes {
            for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (f64::from(v) - m).powi(2);
            }
        }
        Self::new(mean, var.into_iter().map(|s| (s / n).sqrt()).collect())
    }

    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    pub fn standardise(&self, code: &[f32]) -> Result<Vec<f64>> {
        self.check_dim(code.len())?;
        Ok(code
            .iter()
            .zip(self.mean.iter().zip(&self.std))
            .map(|(&v, (m, s))| (f64::from(v) - m) / s)
            .collect())
    }

    pub fn unstandardise(&self, z: &[f64]) -> Result<Vec<f32>> {
        self.check_dim(z.len())?;
        Ok(z.iter()
            .zip(self.mean.iter().zip(&self.std))
            .map(|(&v, (m, s))| (v * s + m) as f32)
            .collect())
    }

    fn check_dim(&self, found: usize) -> Result<()> {
        if found == self.dim() {
            Ok(())
        } else {
            Err(ProbeError::Ragged {
                index: 0,
                expected: self.dim(),
                found,
            })
        }
    }
}

/// What a probe predicts.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ProbeKind {
    /// Logistic regression; the score is the logit of `positive`.
    Binary { positive: String, negative: String },
    /// Ridge regression; the score is the predicted value.
    Continuous,
}

/// Training targets of one label.
#[derive(Clone, Debug, PartialEq)]
pub enum Labels {
    Binary {
        values: Vec<bool>,
        positive: String,
        negative: String,
    },
    Continuous(Vec<f64>),
}

impl Labels {
    pub fn len(&self) -> usize {
        match self {
            Labels::Binary { values, .. } => values.len(),
            Labels::Continuous(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn kind(&self) -> ProbeKind {
        match self {
            Labels::Binary { positive, negative, .. } => ProbeKind::Binary {
                positive: positive.clone(),
                negative: negative.clone(),
            },
            Labels::Continuous(_) => ProbeKind::Continuous,
        }
    }
    fn subset(&self, idx: &[usize]) -> Labels {
        match self {
            Labels::Binary {
                values,
                positive,
                negative,
            } => Labels::Binary {
                values: idx.iter().map(|&i| values[i]).collect(),
                positive: positive.clone(),
                negative: negative.clone(),
            },
            Labels::Continuous(v) => Labels::Continuous(idx.iter().map(|&i| v[i]).collect()),
        }
    }
    fn binary(&self) -> Option<&[bool]> {
        match self {
            Labels::Binary { values, .. } => Some(values),
            Labels::Continuous(_) => None,
        }
    }
    fn check(&self, samples: usize) -> Result<()> {
        if self.len() != samples {
            return Err(ProbeError::LabelCount {
                labels: self.len(),
                samples,
            });
        }
        match self {
            Labels::Binary { values, .. } => {
                let positives = values.iter().filter(|&&v| v).count();
                let negatives = values.len() - positives;
                if positives == 0 || negatives == 0 {
                    return Err(ProbeError::OneClass { positives, negatives });
                }
            }
            Labels::Continuous(v) => check_finite("labels", v)?,
        }
        Ok(())
    }
}

/// The L2 penalty λ: fixed, or chosen from [`L2_GRID`] by inner cross-validation (log-loss for binary
/// labels, squared error for continuous ones).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum L2 {
    Fixed(f64),
    Auto,
}

/// A fitted probe: `score(y) = w · standardise(y) + b`.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearProbe {
    pub label: String,
    pub kind: ProbeKind,
    /// Weights on the standardised code.
    pub weight: Vec<f64>,
    pub bias: f64,
    pub standardiser: Standardiser,
    /// The penalty it was fitted with (`None` for a loaded third-party probe).
    pub l2: Option<f64>,
}

impl LinearProbe {
    pub fn dim(&self) -> usize {
        self.weight.len()
    }

    /// Logit of the positive class (binary) or predicted value (continuous).
    pub fn score(&self, code: &[f32]) -> Result<f64> {
        let z = self.standardiser.standardise(code)?;
        Ok(dot(&self.weight, &z) + self.bias)
    }

    /// Probability of the positive class (binary probes only).
    pub fn probability(&self, code: &[f32]) -> Result<Option<f64>> {
        Ok(match self.kind {
            ProbeKind::Binary { .. } => Some(sigmoid(self.score(code)?)),
            ProbeKind::Continuous => None,
        })
    }

    pub fn weight_norm(&self) -> f64 {
        dot(&self.weight, &self.weight).sqrt()
    }

    /// `ŵ = w/‖w‖` in standardised space (zeros for a zero weight).
    pub fn direction(&self) -> Vec<f64> {
        let norm = self.weight_norm();
        if norm > 0.0 {
            self.weight.iter().map(|w| w / norm).collect()
        } else {
            vec![0.0; self.dim()]
        }
    }

    /// LDAE's edit: `unstandardise(standardise(y) + s·√d·ŵ)`. A positive strength moves towards the
    /// positive class (binary) or a larger value (continuous); the score changes by `s·√d·‖w‖`.
    pub fn edit(&self, code: &[f32], strength: f64) -> Result<Vec<f32>> {
        if !strength.is_finite() {
            return Err(ProbeError::NonFinite {
                what: "strength",
                index: 0,
            });
        }
        let mut z = self.standardiser.standardise(code)?;
        let step = strength * (self.dim() as f64).sqrt();
        for (v, w) in z.iter_mut().zip(self.direction()) {
            *v += step * w;
        }
        self.standardiser.unstandardise(&z)
    }

    /// The score change [`LinearProbe::edit`] makes at `strength`.
    pub fn expected_score_change(&self, strength: f64) -> f64 {
        strength * (self.dim() as f64).sqrt() * self.weight_norm()
    }

    /// A probe from a checkpoint already read by `core::weights::load_checkpoint`:
    /// - our own probe file (metadata [`METADATA_KEY`]): the probe named `label`, or the only one;
    /// - a bare `Linear(d, 1)` state dict (`weight` [1, d], `bias` [1]) such as LDAE's published
    ///   `disease_classifier.ckpt`: standardised with `fallback` (the model's semantic mean/std)
    ///   unless the file carries `semantic_mean`/`semantic_std`, and labelled as LDAE's
    ///   classifier (diagnosis, positive CN, negative AD; see the module docs).
    pub fn from_checkpoint(ckpt: &Checkpoint, label: Option<&str>, fallback: Option<&Standardiser>) -> Result<Self> {
        let source_name = ckpt.source.display().to_string();
        let bad = |problem: String| ProbeError::File {
            source_name: source_name.clone(),
            problem,
        };
        let vector = |key: &str| -> Result<Option<Vec<f64>>> {
            match ckpt.tensors.get(key) {
                None => Ok(None),
                Some(t) => t
                    .to_dtype(candle_core::DType::F64)
                    .and_then(|t| t.flatten_all())
                    .and_then(|t| t.to_vec1::<f64>())
                    .map(Some)
                    .map_err(|e| bad(format!("tensor {key}: {e}"))),
            }
        };
        let entries: Vec<StoredProbe> = match ckpt.metadata.get(METADATA_KEY) {
            Some(text) => serde_json::from_str(text).map_err(|e| bad(format!("metadata {METADATA_KEY}: {e}")))?,
            None => vec![StoredProbe {
                prefix: String::new(),
                label: "diagnosis".into(),
                kind: ProbeKind::Binary {
                    positive: "CN".into(),
                    negative: "AD".into(),
                },
                l2: None,
            }],
        };
        let entry = match label {
            Some(name) => entries.iter().find(|e| e.label == name).ok_or_else(|| {
                let names: Vec<&str> = entries.iter().map(|e| e.label.as_str()).collect();
                bad(format!("no probe for label {name:?} (it has {})", names.join(", ")))
            })?,
            None if entries.len() == 1 => &entries[0],
            None => {
                let names: Vec<&str> = entries.iter().map(|e| e.label.as_str()).collect();
                return Err(bad(format!(
                    "it holds several probes ({}); pick one by label",
                    names.join(", ")
                )));
            }
        };
        let p = &entry.prefix;
        let weight = vector(&format!("{p}weight"))?.ok_or_else(|| bad(format!("no tensor {p}weight")))?;
        let bias = vector(&format!("{p}bias"))?.ok_or_else(|| bad(format!("no tensor {p}bias")))?;
        if let Some(t) = ckpt.tensors.get(&format!("{p}weight"))
            && t.dims().len() == 2
            && t.dims()[0] != 1
        {
            return Err(bad(format!(
                "weight has shape {:?}; a probe is Linear(d, 1) with weight [1, d]",
                t.dims()
            )));
        }
        if bias.len() != 1 {
            return Err(bad(format!("bias has {} values, expected 1", bias.len())));
        }
        check_finite("probe weight", &weight)?;
        check_finite("probe bias", &bias)?;
        let standardiser = match (
            vector(&format!("{p}semantic_mean"))?,
            vector(&format!("{p}semantic_std"))?,
        ) {
            (Some(mean), Some(std)) => Standardiser::new(mean, std)?,
            _ => fallback.cloned().ok_or_else(|| {
                bad("it has no semantic_mean/semantic_std; standardise with the model's (pass them)".into())
            })?,
        };
        if standardiser.dim() != weight.len() {
            return Err(bad(format!(
                "the probe has {} inputs but the standardiser {} dimensions",
                weight.len(),
                standardiser.dim()
            )));
        }
        Ok(Self {
            label: entry.label.clone(),
            kind: entry.kind.clone(),
            weight,
            bias: bias[0],
            standardiser,
            l2: entry.l2,
        })
    }
}

/// How a probe is described in the file's metadata.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
struct StoredProbe {
    prefix: String,
    label: String,
    #[serde(flatten)]
    kind: ProbeKind,
    l2: Option<f64>,
}

/// Serialises probes as safetensors: per probe `weight` [1, d], `bias` [1], `semantic_mean` [d],
/// `semantic_std` [d] (f32; the first three in the layout of a PyTorch `Linear(d, 1)`), unprefixed for
/// one probe and under `probe<i>.` for several; names and kinds go in the metadata under
/// [`METADATA_KEY`], `extra` adds more metadata (e.g. the cross-validation report).
pub fn probes_to_safetensors(probes: &[LinearProbe], extra: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let file_err = |problem: String| ProbeError::File {
        source_name: "probe output".into(),
        problem,
    };
    let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut stored = Vec::new();
    for (i, probe) in probes.iter().enumerate() {
        let prefix = if probes.len() == 1 {
            String::new()
        } else {
            format!("probe{i}.")
        };
        let d = probe.dim();
        let bytes = |v: &[f64]| -> Vec<u8> { v.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect() };
        buffers.push((format!("{prefix}weight"), vec![1, d], bytes(&probe.weight)));
        buffers.push((format!("{prefix}bias"), vec![1], bytes(&[probe.bias])));
        buffers.push((
            format!("{prefix}semantic_mean"),
            vec![d],
            bytes(&probe.standardiser.mean),
        ));
        buffers.push((format!("{prefix}semantic_std"), vec![d], bytes(&probe.standardiser.std)));
        stored.push(StoredProbe {
            prefix,
            label: probe.label.clone(),
            kind: probe.kind.clone(),
            l2: probe.l2,
        });
    }
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.as_str(), v))
                .map_err(|e| file_err(format!("tensor {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut meta: HashMap<String, String> = extra.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    meta.insert(
        METADATA_KEY.into(),
        serde_json::to_string(&stored).map_err(|e| file_err(e.to_string()))?,
    );
    safetensors::serialize(views, Some(meta)).map_err(|e| file_err(format!("safetensors encoding: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Fitting

/// Fits the standardiser on `codes`, then the probe on the standardised codes.
pub fn fit_probe(label: &str, codes: &[Vec<f32>], labels: &Labels, l2: L2, seed: u64) -> Result<LinearProbe> {
    check_rows(codes)?;
    labels.check(codes.len())?;
    let l2 = match l2 {
        L2::Fixed(l) => check_l2(l)?,
        L2::Auto => select_l2(codes, labels, None, seed)?,
    };
    let standardiser = Standardiser::fit(codes)?;
    let x = standardise_rows(&standardiser, codes)?;
    let (weight, bias) = match labels {
        Labels::Binary { values, .. } => fit_logistic(&x, values, l2)?,
        Labels::Continuous(t) => fit_ridge(&x, t, l2)?,
    };
    Ok(LinearProbe {
        label: label.to_string(),
        kind: labels.kind(),
        weight,
        bias,
        standardiser,
        l2: Some(l2),
    })
}

/// The centred data in the basis of its right singular vectors: `x − x̄ = Z·Vᵀ` with `Z = U·S`
/// (`n × r`), keeping the `r` directions with non-negligible singular values.
struct Reduced {
    mean: Vec<f64>,
    /// `n × r`, row-major.
    z: Matrix<f64>,
    /// `d × r`.
    v: Matrix<f64>,
    s: Vec<f64>,
    u: Matrix<f64>,
}

fn reduce(x: &[Vec<f64>]) -> Result<Reduced> {
    let (n, d) = (x.len(), x[0].len());
    let mut mean = vec![0.0; d];
    for row in x {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v / n as f64;
        }
    }
    let centred = Matrix::from_fn(n, d, |i, j| x[i][j] - mean[j]);
    let svd = linalg::thin_svd(&centred)?;
    let s_max = svd.s.first().copied().unwrap_or(0.0);
    let r = svd.s.iter().take_while(|&&s| s > s_max * 1e-10 && s > 0.0).count();
    let u = Matrix::from_fn(n, r, |i, j| svd.u.get(i, j));
    let v = Matrix::from_fn(d, r, |i, j| svd.v.get(i, j));
    let s: Vec<f64> = svd.s[..r].to_vec();
    let z = Matrix::from_fn(n, r, |i, j| u.get(i, j) * s[j]);
    Ok(Reduced { mean, z, v, s, u })
}

impl Reduced {
    /// `w = V·β` and the bias for uncentred inputs, `b − x̄·w`.
    fn weights(&self, beta: &[f64], bias: f64) -> (Vec<f64>, f64) {
        let d = self.v.rows();
        let w: Vec<f64> = (0..d).map(|i| dot(self.v.row(i), beta)).collect();
        let b = bias - dot(&self.mean, &w);
        (w, b)
    }
}

/// Ridge regression `min ‖x·w + b − t‖² + λ‖w‖²` (bias unpenalised), closed form in the SVD basis:
/// `β_j = s_j/(s_j² + λ)·(Uᵀ(t − t̄))_j`.
pub fn fit_ridge(x: &[Vec<f64>], t: &[f64], l2: f64) -> Result<(Vec<f64>, f64)> {
    check_rows(x)?;
    check_l2(l2)?;
    if t.len() != x.len() {
        return Err(ProbeError::LabelCount {
            labels: t.len(),
            samples: x.len(),
        });
    }
    check_finite("targets", t)?;
    let red = reduce(x)?;
    Ok(ridge_in(&red, t, l2))
}

fn ridge_in(red: &Reduced, t: &[f64], l2: f64) -> (Vec<f64>, f64) {
    let n = t.len();
    let t_mean = t.iter().sum::<f64>() / n as f64;
    let beta: Vec<f64> = (0..red.s.len())
        .map(|j| {
            let ut: f64 = (0..n).map(|i| red.u.get(i, j) * (t[i] - t_mean)).sum();
            red.s[j] / (red.s[j] * red.s[j] + l2) * ut
        })
        .collect();
    red.weights(&beta, t_mean)
}

/// L2-regularised logistic regression, `min Σ log(1 + e^{−±(x·w + b)}) + λ/2·‖w‖²` (bias
/// unpenalised), by Newton's method in the SVD basis. Deterministic; separable data converge too
/// because λ > 0 bounds the weights.
pub fn fit_logistic(x: &[Vec<f64>], y: &[bool], l2: f64) -> Result<(Vec<f64>, f64)> {
    check_rows(x)?;
    check_l2(l2)?;
    let labels = Labels::Binary {
        values: y.to_vec(),
        positive: String::new(),
        negative: String::new(),
    };
    labels.check(x.len())?;
    let red = reduce(x)?;
    let (beta, bias) = logistic_in(&red.z, y, l2)?;
    Ok(red.weights(&beta, bias))
}

/// Newton's method on `θ = (β, b)` for the features `z` (`n × r`).
fn logistic_in(z: &Matrix<f64>, y: &[bool], l2: f64) -> Result<(Vec<f64>, f64)> {
    let (n, r) = z.shape();
    let m = r + 1;
    let feature = |i: usize, j: usize| if j < r { z.get(i, j) } else { 1.0 };
    let margins = |theta: &[f64]| -> Vec<f64> {
        (0..n)
            .map(|i| dot(z.row(i), &theta[..r]) + theta[r])
            .collect::<Vec<f64>>()
    };
    let objective = |theta: &[f64], eta: &[f64]| -> f64 {
        let loss: f64 = eta
            .iter()
            .zip(y)
            .map(|(&e, &yi)| softplus(e) - if yi { e } else { 0.0 })
            .sum();
        loss + 0.5 * l2 * dot(&theta[..r], &theta[..r])
    };
    // Start from the log-odds of the base rate.
    let positives = y.iter().filter(|&&v| v).count() as f64;
    let mut theta = vec![0.0; m];
    theta[r] = (positives / (n as f64 - positives)).ln();
    let mut eta = margins(&theta);
    let mut f = objective(&theta, &eta);
    for _ in 0..MAX_NEWTON_STEPS {
        let p: Vec<f64> = eta.iter().map(|&e| sigmoid(e)).collect();
        let mut grad = vec![0.0; m];
        // H = Aᵀ·A with A = diag(√(p(1 − p)))·[z 1], through the threaded matrix product.
        let mut a = Matrix::zeros(n, m);
        for i in 0..n {
            let residual = p[i] - if y[i] { 1.0 } else { 0.0 };
            let w = (p[i] * (1.0 - p[i])).max(1e-12).sqrt();
            let row = &mut a.data_mut()[i * m..(i + 1) * m];
            for (j, (g, v)) in grad.iter_mut().zip(row.iter_mut()).enumerate() {
                let f = feature(i, j);
                *g += residual * f;
                *v = w * f;
            }
        }
        let mut hess = linalg::matmul_tn(&a, &a)?.into_data();
        for (a, (g, t)) in grad.iter_mut().zip(&theta).take(r).enumerate() {
            *g += l2 * t;
            hess[a * m + a] += l2;
        }
        let scale = 1.0 + dot(&theta, &theta).sqrt();
        if grad.iter().map(|g| g.abs()).fold(0.0, f64::max) < 1e-9 * (n as f64).max(1.0) * scale {
            return Ok((theta[..r].to_vec(), theta[r]));
        }
        let step = cholesky_solve(&mut hess, m, &grad)?;
        // Backtracking: a full Newton step is almost always accepted near the optimum.
        let mut t = 1.0;
        loop {
            let trial: Vec<f64> = theta.iter().zip(&step).map(|(a, s)| a - t * s).collect();
            let trial_eta = margins(&trial);
            let trial_f = objective(&trial, &trial_eta);
            if trial_f <= f + 1e-4 * t * -dot(&grad, &step) || t < 1e-10 {
                let moved = step.iter().map(|s| (t * s).abs()).fold(0.0, f64::max);
                let improved = f - trial_f;
                theta = trial;
                eta = trial_eta;
                f = trial_f;
                if moved < 1e-12 * scale || (improved.abs() < 1e-15 * f.abs().max(1.0) && t < 1.0) {
                    return Ok((theta[..r].to_vec(), theta[r]));
                }
                break;
            }
            t *= 0.5;
        }
    }
    Err(ProbeError::NoConvergence(MAX_NEWTON_STEPS))
}

/// Solves `H·x = g` for a symmetric positive-definite `H` whose lower triangle is filled
/// (row-major, `m × m`), in place by Cholesky.
fn cholesky_solve(h: &mut [f64], m: usize, g: &[f64]) -> Result<Vec<f64>> {
    for j in 0..m {
        let mut diag = h[j * m + j];
        for k in 0..j {
            diag -= h[j * m + k] * h[j * m + k];
        }
        if diag.is_nan() || diag <= 0.0 {
            return Err(ProbeError::NotPositiveDefinite);
        }
        let diag = diag.sqrt();
        h[j * m + j] = diag;
        for i in j + 1..m {
            let mut v = h[i * m + j];
            for k in 0..j {
                v -= h[i * m + k] * h[j * m + k];
            }
            h[i * m + j] = v / diag;
        }
    }
    let mut x = g.to_vec();
    for i in 0..m {
        for k in 0..i {
            x[i] -= h[i * m + k] * x[k];
        }
        x[i] /= h[i * m + i];
    }
    for i in (0..m).rev() {
        for k in i + 1..m {
            x[i] -= h[k * m + i] * x[k];
        }
        x[i] /= h[i * m + i];
    }
    Ok(x)
}

// ---------------------------------------------------------------------------------------------
// Cross-validation

/// Options of [`cross_validate`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CvOptions {
    pub folds: usize,
    pub seed: u64,
    pub l2: L2,
}

impl Default for CvOptions {
    fn default() -> Self {
        Self {
            folds: 5,
            seed: 0,
            l2: L2::Auto,
        }
    }
}

/// Out-of-fold scores pooled over all folds.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum CvMetrics {
    Binary {
        /// ROC-AUC of the pooled out-of-fold logits.
        roc_auc: f64,
        /// Accuracy at probability 0.5.
        accuracy: f64,
        /// Mean and population std of the per-fold AUCs (folds holding both classes).
        fold_auc_mean: f64,
        fold_auc_std: f64,
        positives: usize,
        negatives: usize,
    },
    Continuous {
        mae: f64,
        rmse: f64,
        /// 1 − SSE/SST of the pooled predictions.
        r2: f64,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CvReport {
    pub folds: usize,
    pub samples: usize,
    /// Independent units (subjects) the folds were drawn over.
    pub groups: usize,
    pub metrics: CvMetrics,
    /// λ used per outer fold.
    pub fold_l2: Vec<f64>,
    /// Out-of-fold score of each sample (logit or prediction), in input order.
    pub out_of_fold: Vec<f64>,
}

/// k-fold cross-validation of a probe: standardiser and probe refitted on each training part; with
/// `groups` (e.g. subject ids), all samples of a group share a fold.
pub fn cross_validate(
    codes: &[Vec<f32>],
    labels: &Labels,
    groups: Option<&[String]>,
    opts: &CvOptions,
) -> Result<CvReport> {
    check_rows(codes)?;
    labels.check(codes.len())?;
    let group_ids = group_indices(groups, codes.len())?;
    let n_groups = group_ids.iter().copied().max().map_or(0, |g| g + 1);
    let fold_of = assign_folds(&group_ids, labels.binary(), opts.folds, opts.seed)?;
    let mut oof = vec![f64::NAN; codes.len()];
    let mut fold_l2 = Vec::with_capacity(opts.folds);
    let mut fold_aucs = Vec::new();
    for fold in 0..opts.folds {
        let (train, test): (Vec<usize>, Vec<usize>) = (0..codes.len()).partition(|&i| fold_of[i] != fold);
        let train_codes: Vec<Vec<f32>> = train.iter().map(|&i| codes[i].clone()).collect();
        let train_labels = labels.subset(&train);
        train_labels.check(train.len()).map_err(|e| {
            ProbeError::Folds(format!(
                "the training part of fold {} cannot be fitted ({e}); use fewer folds",
                fold + 1
            ))
        })?;
        let train_groups: Option<Vec<String>> = groups.map(|g| train.iter().map(|&i| g[i].clone()).collect());
        let l2 = match opts.l2 {
            L2::Fixed(l) => check_l2(l)?,
            L2::Auto => select_l2(&train_codes, &train_labels, train_groups.as_deref(), opts.seed)?,
        };
        fold_l2.push(l2);
        let probe = fit_probe("cv", &train_codes, &train_labels, L2::Fixed(l2), opts.seed)?;
        for &i in &test {
            oof[i] = probe.score(&codes[i])?;
        }
        if let Some(y) = labels.binary() {
            let s: Vec<f64> = test.iter().map(|&i| oof[i]).collect();
            let t: Vec<bool> = test.iter().map(|&i| y[i]).collect();
            if let Some(auc) = roc_auc(&s, &t) {
                fold_aucs.push(auc);
            }
        }
    }
    let metrics = match labels {
        Labels::Binary { values, .. } => {
            let correct = oof.iter().zip(values).filter(|&(&s, &y)| (s >= 0.0) == y).count();
            let positives = values.iter().filter(|&&v| v).count();
            let (mean, std) = mean_std(&fold_aucs);
            CvMetrics::Binary {
                roc_auc: roc_auc(&oof, values).unwrap_or(f64::NAN),
                accuracy: correct as f64 / values.len() as f64,
                fold_auc_mean: mean,
                fold_auc_std: std,
                positives,
                negatives: values.len() - positives,
            }
        }
        Labels::Continuous(t) => regression_metrics(&oof, t),
    };
    Ok(CvReport {
        folds: opts.folds,
        samples: codes.len(),
        groups: n_groups,
        metrics,
        fold_l2,
        out_of_fold: oof,
    })
}

/// Picks λ from [`L2_GRID`] by an inner cross-validation (at most 5 folds) on the given samples:
/// mean log-loss for binary labels, mean squared error for continuous ones. Ties go to the larger λ.
pub fn select_l2(codes: &[Vec<f32>], labels: &Labels, groups: Option<&[String]>, seed: u64) -> Result<f64> {
    check_rows(codes)?;
    labels.check(codes.len())?;
    let group_ids = group_indices(groups, codes.len())?;
    let n_groups = group_ids.iter().copied().max().map_or(0, |g| g + 1);
    let mut folds = 5.min(n_groups);
    if let Some(y) = labels.binary() {
        // Stratified folds need each class in every training part.
        let minority = y.iter().filter(|&&v| v).count().min(y.iter().filter(|&&v| !v).count());
        folds = folds.min(minority.max(1));
    }
    if folds < 2 {
        return Ok(1.0);
    }
    let inner_seed = seed ^ 0x5EED_1A3B_0000_0001;
    let fold_of = assign_folds(&group_ids, labels.binary(), folds, inner_seed)?;
    let mut losses = vec![0.0; L2_GRID.len()];
    for fold in 0..folds {
        let (train, test): (Vec<usize>, Vec<usize>) = (0..codes.len()).partition(|&i| fold_of[i] != fold);
        let train_labels = labels.subset(&train);
        if train_labels.check(train.len()).is_err() {
            continue;
        }
        let train_codes: Vec<Vec<f32>> = train.iter().map(|&i| codes[i].clone()).collect();
        let standardiser = Standardiser::fit(&train_codes)?;
        let x = standardise_rows(&standardiser, &train_codes)?;
        let x_test: Vec<Vec<f64>> = test
            .iter()
            .map(|&i| standardiser.standardise(&codes[i]))
            .collect::<Result<_>>()?;
        let red = reduce(&x)?;
        for (k, &l2) in L2_GRID.iter().enumerate() {
            let (w, b) = match &train_labels {
                Labels::Binary { values, .. } => {
                    let (beta, bias) = logistic_in(&red.z, values, l2)?;
                    red.weights(&beta, bias)
                }
                Labels::Continuous(t) => ridge_in(&red, t, l2),
            };
            for (row, &i) in x_test.iter().zip(&test) {
                let s = dot(&w, row) + b;
                losses[k] += match labels {
                    Labels::Binary { values, .. } => softplus(s) - if values[i] { s } else { 0.0 },
                    Labels::Continuous(t) => (s - t[i]).powi(2),
                };
            }
        }
    }
    let mut best = 0;
    for (k, &loss) in losses.iter().enumerate().skip(1) {
        if loss <= losses[best] * (1.0 + 1e-9) {
            best = k;
        }
    }
    Ok(L2_GRID[best])
}

/// Dense group indices (first-seen order); every sample its own group without `groups`.
fn group_indices(groups: Option<&[String]>, n: usize) -> Result<Vec<usize>> {
    match groups {
        None => Ok((0..n).collect()),
        Some(g) => {
            if g.len() != n {
                return Err(ProbeError::LabelCount {
                    labels: g.len(),
                    samples: n,
                });
            }
            let mut seen: HashMap<&str, usize> = HashMap::new();
            Ok(g.iter()
                .map(|name| {
                    let next = seen.len();
                    *seen.entry(name.as_str()).or_insert(next)
                })
                .collect())
        }
    }
}

/// The fold (0..k) of each sample. Groups are shuffled with a seeded generator and dealt round-robin
/// into folds; with binary labels, groups are dealt class by class (a group's class is that of its
/// first sample), so every fold gets its share of each class.
pub fn assign_folds(groups: &[usize], binary: Option<&[bool]>, k: usize, seed: u64) -> Result<Vec<usize>> {
    let n_groups = groups.iter().copied().max().map_or(0, |g| g + 1);
    if k < 2 {
        return Err(ProbeError::Folds(format!("need at least 2 folds, got {k}")));
    }
    if n_groups < k {
        return Err(ProbeError::Folds(format!(
            "{k} folds need at least {k} independent samples (subjects), found {n_groups}"
        )));
    }
    let mut group_class = vec![false; n_groups];
    if let Some(y) = binary {
        let mut set = vec![false; n_groups];
        for (i, &g) in groups.iter().enumerate() {
            if !set[g] {
                set[g] = true;
                group_class[g] = y[i];
            }
        }
    }
    let mut rng = Rng::new(seed);
    let mut fold_of_group = vec![0usize; n_groups];
    let mut next = 0usize;
    let classes: &[bool] = if binary.is_some() { &[false, true] } else { &[false] };
    for &class in classes {
        let mut members: Vec<usize> = (0..n_groups).filter(|&g| group_class[g] == class).collect();
        // Fisher–Yates.
        for i in (1..members.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            members.swap(i, j);
        }
        for g in members {
            fold_of_group[g] = next % k;
            next += 1;
        }
    }
    Ok(groups.iter().map(|&g| fold_of_group[g]).collect())
}

// ---------------------------------------------------------------------------------------------
// Metrics

/// ROC-AUC as the Mann–Whitney statistic: the probability that a random positive outscores a
/// random negative, ties counting one half (average ranks). `None` without both classes.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    if scores.len() != labels.len() || scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let positives = labels.iter().filter(|&&v| v).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if labels[k] {
                rank_sum += avg_rank;
            }
        }
        i = j + 1;
    }
    let p = positives as f64;
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64))
}

fn regression_metrics(pred: &[f64], truth: &[f64]) -> CvMetrics {
    let n = truth.len() as f64;
    let mae = pred.iter().zip(truth).map(|(p, t)| (p - t).abs()).sum::<f64>() / n;
    let sse: f64 = pred.iter().zip(truth).map(|(p, t)| (p - t).powi(2)).sum();
    let mean = truth.iter().sum::<f64>() / n;
    let sst: f64 = truth.iter().map(|t| (t - mean).powi(2)).sum();
    CvMetrics::Continuous {
        mae,
        rmse: (sse / n).sqrt(),
        r2: if sst > 0.0 { 1.0 - sse / sst } else { f64::NAN },
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `log(1 + eˣ)` without overflow.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt())
}

fn check_l2(l2: f64) -> Result<f64> {
    if l2 > 0.0 && l2.is_finite() {
        Ok(l2)
    } else {
        Err(ProbeError::BadL2(l2))
    }
}

fn check_finite(what: &'static str, v: &[f64]) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(ProbeError::NonFinite { what, index }),
        None => Ok(()),
    }
}

/// Rows of equal, non-zero length with finite values; returns the width.
fn check_rows<T: Copy + Into<f64>>(rows: &[Vec<T>]) -> Result<usize> {
    let d = rows.first().map(Vec::len).ok_or(ProbeError::Empty)?;
    if d == 0 {
        return Err(ProbeError::Empty);
    }
    for (index, row) in rows.iter().enumerate() {
        if row.len() != d {
            return Err(ProbeError::Ragged {
                index,
                expected: d,
                found: row.len(),
            });
        }
        if row.iter().any(|&v| !v.into().is_finite()) {
            return Err(ProbeError::NonFinite { what: "codes", index });
        }
    }
    Ok(d)
}

fn standardise_rows(st: &Standardiser, codes: &[Vec<f32>]) -> Result<Vec<Vec<f64>>> {
    codes.iter().map(|c| st.standardise(c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaussian_rows(n: usize, d: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| (0..d).map(|_| rng.normal() as f32).collect()).collect()
    }

    #[test]
    fn standardiser_uses_population_std_and_round_trips() {
        let codes = vec![vec![1.0, 5.0], vec![3.0, 5.0], vec![5.0, 5.0]];
        let st = Standardiser::fit(&codes).unwrap();
        assert_eq!(st.mean, vec![3.0, 5.0]);
        // Population std of 1, 3, 5 is sqrt(8/3); the constant column keeps σ = 1.
        assert!((st.std[0] - (8.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(st.std[1], 1.0);
        let z = st.standardise(&[5.0, 6.0]).unwrap();
        assert!((z[0] - 2.0 / (8.0f64 / 3.0).sqrt()).abs() < 1e-12 && z[1] == 1.0);
        assert_eq!(st.unstandardise(&z).unwrap(), vec![5.0, 6.0]);
        assert!(matches!(st.standardise(&[1.0]), Err(ProbeError::Ragged { .. })));
    }

    #[test]
    fn auc_matches_hand_computed_value_with_ties() {
        // Positives 0.9, 0.5, 0.3; negatives 0.5, 0.2. Pairs: (0.9>0.5) (0.9>0.2) (0.5=0.5 → ½)
        // (0.5>0.2) (0.3<0.5) (0.3>0.2) → 4.5 / 6.
        let s = [0.9, 0.5, 0.5, 0.3, 0.2];
        let y = [true, true, false, true, false];
        assert!((roc_auc(&s, &y).unwrap() - 0.75).abs() < 1e-12);
        assert_eq!(roc_auc(&[1.0, 2.0], &[true, true]), None);
        assert_eq!(roc_auc(&[1.0, 2.0], &[false, true]), Some(1.0));
        assert_eq!(roc_auc(&[2.0, 1.0], &[false, true]), Some(0.0));
    }

    #[test]
    fn separable_data_give_auc_one() {
        // Class decided by the sign of one coordinate among 20, with a wide margin.
        let mut codes = gaussian_rows(100, 20, 3);
        let mut y = Vec::new();
        for (i, row) in codes.iter_mut().enumerate() {
            let positive = i % 2 == 0;
            row[7] = if positive {
                4.0 + row[7].abs()
            } else {
                -4.0 - row[7].abs()
            };
            y.push(positive);
        }
        let labels = Labels::Binary {
            values: y,
            positive: "A".into(),
            negative: "B".into(),
        };
        let report = cross_validate(
            &codes,
            &labels,
            None,
            &CvOptions {
                folds: 5,
                seed: 1,
                l2: L2::Fixed(1.0),
            },
        )
        .unwrap();
        let CvMetrics::Binary { roc_auc, accuracy, .. } = report.metrics else {
            panic!("binary metrics expected")
        };
        assert!(roc_auc > 0.999 && accuracy > 0.98, "auc {roc_auc} acc {accuracy}");
        let probe = fit_probe("x", &codes, &labels, L2::Fixed(1.0), 0).unwrap();
        let dir = probe.direction();
        let top = (0..20).max_by(|&a, &b| dir[a].abs().total_cmp(&dir[b].abs())).unwrap();
        assert_eq!(top, 7);
        assert!(dir[7] > 0.0, "the weight must point to the positive class");
    }

    #[test]
    fn random_labels_give_chance_auc() {
        let codes = gaussian_rows(80, 10, 5);
        let mut rng = Rng::new(9);
        let labels = Labels::Binary {
            values: (0..80).map(|_| rng.uniform() < 0.5).collect(),
            positive: "A".into(),
            negative: "B".into(),
        };
        let report = cross_validate(&codes, &labels, None, &CvOptions::default()).unwrap();
        let CvMetrics::Binary { roc_auc, .. } = report.metrics else {
            panic!()
        };
        assert!((roc_auc - 0.5).abs() < 0.2, "{roc_auc}");
    }

    #[test]
    fn logistic_matches_the_first_order_condition() {
        // At the optimum: Σ (p − y) x + λ w = 0 and Σ (p − y) = 0.
        let x: Vec<Vec<f64>> = gaussian_rows(30, 50, 11)
            .into_iter()
            .map(|r| r.into_iter().map(f64::from).collect())
            .collect();
        let y: Vec<bool> = x.iter().map(|r| r[0] + 0.5 * r[1] > 0.2).collect();
        let l2 = 0.7;
        let (w, b) = fit_logistic(&x, &y, l2).unwrap();
        let mut g = vec![0.0; 50];
        let mut gb = 0.0;
        for (row, &yi) in x.iter().zip(&y) {
            let r = sigmoid(dot(&w, row) + b) - if yi { 1.0 } else { 0.0 };
            gb += r;
            for (gj, xj) in g.iter_mut().zip(row) {
                *gj += r * xj;
            }
        }
        for (gj, wj) in g.iter_mut().zip(&w) {
            *gj += l2 * wj;
        }
        assert!(gb.abs() < 1e-6, "{gb}");
        assert!(g.iter().all(|v| v.abs() < 1e-6), "{g:?}");
    }

    #[test]
    fn ridge_recovers_a_known_weight() {
        let d = 6;
        let codes = gaussian_rows(400, d, 21);
        let truth = [1.5, -2.0, 0.0, 0.5, 3.0, -1.0];
        let mut rng = Rng::new(4);
        let t: Vec<f64> = codes
            .iter()
            .map(|r| 10.0 + r.iter().zip(&truth).map(|(&x, w)| f64::from(x) * w).sum::<f64>() + 0.01 * rng.normal())
            .collect();
        let x: Vec<Vec<f64>> = codes
            .iter()
            .map(|r| r.iter().map(|&v| f64::from(v)).collect())
            .collect();
        let (w, b) = fit_ridge(&x, &t, 1e-6).unwrap();
        for (a, e) in w.iter().zip(&truth) {
            assert!((a - e).abs() < 0.01, "{w:?}");
        }
        assert!((b - 10.0).abs() < 0.01);
        // Through the probe: weights live in standardised space, so predictions must still match.
        let labels = Labels::Continuous(t.clone());
        let probe = fit_probe("age", &codes, &labels, L2::Fixed(1e-6), 0).unwrap();
        let pred = probe.score(&codes[3]).unwrap();
        assert!((pred - t[3]).abs() < 0.05, "{pred} vs {}", t[3]);
        let report = cross_validate(&codes, &labels, None, &CvOptions::default()).unwrap();
        let CvMetrics::Continuous { mae, rmse, r2 } = report.metrics else {
            panic!()
        };
        assert!(mae < 0.05 && rmse < 0.05 && r2 > 0.999, "{mae} {rmse} {r2}");
        // A heavy penalty shrinks towards the mean.
        let (w_big, b_big) = fit_ridge(&x, &t, 1e9).unwrap();
        assert!(w_big.iter().all(|v| v.abs() < 1e-3));
        assert!((b_big - t.iter().sum::<f64>() / t.len() as f64).abs() < 1e-3);
    }

    #[test]
    fn edit_moves_score_by_strength_sqrt_d_norm() {
        let codes = gaussian_rows(50, 16, 2);
        let y: Vec<bool> = codes.iter().map(|r| r[0] - r[3] > 0.0).collect();
        let labels = Labels::Binary {
            values: y,
            positive: "AD".into(),
            negative: "CN".into(),
        };
        let probe = fit_probe("diagnosis", &codes, &labels, L2::Fixed(1.0), 0).unwrap();
        for s in [2.5, -1.0] {
            let edited = probe.edit(&codes[0], s).unwrap();
            let change = probe.score(&edited).unwrap() - probe.score(&codes[0]).unwrap();
            let expected = s * 4.0 * probe.weight_norm();
            assert!(
                (change - expected).abs() < 1e-4 * expected.abs(),
                "{change} vs {expected}"
            );
            assert!((probe.expected_score_change(s) - expected).abs() < 1e-12);
        }
        // In standardised space the move is exactly s·√d along ŵ.
        let a = probe.standardiser.standardise(&codes[1]).unwrap();
        let b = probe
            .standardiser
            .standardise(&probe.edit(&codes[1], 1.0).unwrap())
            .unwrap();
        let moved: f64 = a.iter().zip(&b).map(|(x, y)| (y - x).powi(2)).sum::<f64>().sqrt();
        assert!((moved - 4.0).abs() < 1e-4, "{moved}");
    }

    #[test]
    fn stratified_grouped_folds_keep_groups_together_and_balance_classes() {
        // 12 subjects × 3 visits; subjects alternate classes.
        let groups: Vec<usize> = (0..36).map(|i| i / 3).collect();
        let y: Vec<bool> = groups.iter().map(|g| g % 2 == 0).collect();
        let folds = assign_folds(&groups, Some(&y), 3, 7).unwrap();
        for g in 0..12 {
            let f: Vec<usize> = (0..36).filter(|&i| groups[i] == g).map(|i| folds[i]).collect();
            assert!(f.iter().all(|&x| x == f[0]));
        }
        for fold in 0..3 {
            let pos = (0..36).filter(|&i| folds[i] == fold && y[i]).count();
            let neg = (0..36).filter(|&i| folds[i] == fold && !y[i]).count();
            assert_eq!((pos, neg), (6, 6));
        }
        assert_eq!(folds, assign_folds(&groups, Some(&y), 3, 7).unwrap());
        assert_ne!(folds, assign_folds(&groups, Some(&y), 3, 8).unwrap());
        assert!(matches!(assign_folds(&groups, None, 13, 0), Err(ProbeError::Folds(_))));
    }

    #[test]
    fn auto_l2_prefers_heavy_penalty_for_noise_and_light_for_signal() {
        let codes = gaussian_rows(60, 30, 8);
        let mut rng = Rng::new(1);
        let noise = Labels::Continuous((0..60).map(|_| rng.normal()).collect());
        let signal = Labels::Continuous(codes.iter().map(|r| f64::from(r[0] + r[1])).collect());
        let heavy = select_l2(&codes, &noise, None, 0).unwrap();
        let light = select_l2(&codes, &signal, None, 0).unwrap();
        assert!(heavy >= 100.0 && light <= 1.0, "{heavy} {light}");
    }

    #[test]
    fn probe_file_round_trips_and_loads_a_bare_linear() {
        let codes = gaussian_rows(20, 4, 2);
        let labels = Labels::Continuous(codes.iter().map(|r| f64::from(r[2])).collect());
        let probe = fit_probe("age", &codes, &labels, L2::Fixed(0.5), 0).unwrap();
        let bytes = probes_to_safetensors(std::slice::from_ref(&probe), &BTreeMap::new()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        let ckpt = crate::core::weights::load_checkpoint(&path, &Default::default()).unwrap();
        let back = LinearProbe::from_checkpoint(&ckpt, None, None).unwrap();
        assert_eq!(back.label, "age");
        assert_eq!(back.kind, ProbeKind::Continuous);
        assert!((back.score(&codes[0]).unwrap() - probe.score(&codes[0]).unwrap()).abs() < 1e-4);
        // Without metadata: LDAE's classifier convention, standardised with the fallback.
        let w = candle_core::Tensor::new(&[[1.0f32, 0.0, 0.0, 0.0]], &candle_core::Device::Cpu).unwrap();
        let b = candle_core::Tensor::new(&[0.5f32], &candle_core::Device::Cpu).unwrap();
        let bare = Checkpoint {
            tensors: [("weight".to_string(), w), ("bias".to_string(), b)]
                .into_iter()
                .collect(),
            source: "disease_classifier.ckpt".into(),
            format: crate::core::weights::CheckpointFormat::TorchZip,
            metadata: BTreeMap::new(),
        };
        assert!(matches!(
            LinearProbe::from_checkpoint(&bare, None, None),
            Err(ProbeError::File { .. })
        ));
        let st = Standardiser::new(vec![1.0; 4], vec![2.0; 4]).unwrap();
        let cls = LinearProbe::from_checkpoint(&bare, None, Some(&st)).unwrap();
        assert_eq!(
            cls.kind,
            ProbeKind::Binary {
                positive: "CN".into(),
                negative: "AD".into()
            }
        );
        assert!((cls.score(&[5.0, 0.0, 0.0, 0.0]).unwrap() - 2.5).abs() < 1e-12);
    }
}
