//! The whole comparison of two spaces holding the same samples: anchors chosen in A, relative
//! transforms of both, then absolute vs relative vs Procrustes-aligned scores and CKA. Also the
//! isometry self-test of the acceptance criteria (research note §5).

use super::align::{AlignmentSummary, procrustes_align};
use super::anchors::{AnchorMode, select_anchors};
use super::collection::LatentCollection;
use super::error::{RelrepsError, Result};
use super::similarity::{MatchScores, linear_cka, match_scores, mean_cosine};
use super::transform::{RelativeOptions, RelativeProjector};
use crate::core::diffusion::Rng;
use crate::core::linalg::{Matrix, matmul, thin_svd};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct CompareOptions {
    pub anchors: usize,
    pub mode: AnchorMode,
    pub seed: u64,
    /// Label column for stratified anchors.
    pub label_column: Option<String>,
    pub relative: RelativeOptions,
    /// Neighbourhood size for Jaccard@k and MRR@k.
    pub k: usize,
    /// Cap on the neighbour-metric queries (the index always holds every sample).
    pub max_queries: Option<usize>,
}

impl Default for CompareOptions {
    fn default() -> Self {
        Self {
            anchors: 300,
            mode: AnchorMode::Uniform,
            seed: 0,
            label_column: None,
            relative: RelativeOptions::default(),
            k: 10,
            max_queries: Some(2000),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcrustesScores {
    #[serde(flatten)]
    pub fit: AlignmentSummary,
    pub scores: MatchScores,
}

/// Everything the CLI prints and the comparison panel shows as numbers.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub samples: usize,
    pub dim_a: usize,
    pub dim_b: usize,
    pub options: CompareOptions,
    /// Anchor sample indices (rows of both aligned spaces) and their ids.
    pub anchor_indices: Vec<usize>,
    pub anchor_ids: Vec<String>,
    /// Absolute-space scores; `None` when the widths differ (no common coordinates).
    pub absolute: Option<MatchScores>,
    pub relative: MatchScores,
    pub procrustes: ProcrustesScores,
    pub cka_absolute: f64,
    pub cka_relative: f64,
}

/// Both spaces' relative representations on the same anchor rows.
pub struct RelativePair {
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub anchors: usize,
}

/// Relative transforms of two aligned spaces (`a.ids() == b.ids()`) on anchor rows `anchors`.
pub fn relative_pair(
    a: &LatentCollection,
    b: &LatentCollection,
    anchors: &[usize],
    options: RelativeOptions,
) -> Result<RelativePair> {
    check_aligned(a, b)?;
    let project = |s: &LatentCollection| -> Result<Vec<f32>> {
        let anchor_rows = s.select(anchors);
        let p = RelativeProjector::fit(anchor_rows.values(), anchors.len(), s.dim(), options)?;
        p.transform(s.values(), s.len())
    };
    Ok(RelativePair {
        a: project(a)?,
        b: project(b)?,
        anchors: anchors.len(),
    })
}

fn check_aligned(a: &LatentCollection, b: &LatentCollection) -> Result<()> {
    if a.len() != b.len() {
        return Err(RelrepsError::SampleCountMismatch { a: a.len(), b: b.len() });
    }
    if a.ids() != b.ids() {
        return Err(RelrepsError::Invalid(format!(
            "{} and {} list their samples in different orders; align them by id first",
            a.source, b.source
        )));
    }
    Ok(())
}

/// Compares two aligned spaces (use [`super::align_by_ids`] first). Anchors are chosen in A.
pub fn compare_spaces(a: &LatentCollection, b: &LatentCollection, options: &CompareOptions) -> Result<Comparison> {
    check_aligned(a, b)?;
    let n = a.len();
    let labels = match &options.label_column {
        Some(c) => Some(a.column(c)?.values.as_slice()),
        None => None,
    };
    let anchors = select_anchors(
        a.values(),
        n,
        a.dim(),
        options.anchors,
        options.mode,
        options.seed,
        labels,
    )?;
    let rel = relative_pair(a, b, &anchors, options.relative)?;
    let k = options.anchors;
    let scores =
        |x: &[f32], y: &[f32], d: usize| match_scores(x, y, n, d, options.k, options.max_queries, options.seed);
    let absolute = if a.dim() == b.dim() {
        Some(scores(a.values(), b.values(), a.dim())?)
    } else {
        None
    };
    let relative = scores(&rel.a, &rel.b, k)?;
    let al = procrustes_align(a.values(), a.dim(), b.values(), b.dim(), n, &anchors)?;
    let procrustes = ProcrustesScores {
        fit: al.summary,
        scores: scores(&al.a_aligned, &al.b_normalized, al.dim)?,
    };
    Ok(Comparison {
        samples: n,
        dim_a: a.dim(),
        dim_b: b.dim(),
        options: options.clone(),
        anchor_ids: anchors.iter().map(|&i| a.ids()[i].clone()).collect(),
        anchor_indices: anchors,
        absolute,
        relative,
        procrustes,
        cka_absolute: linear_cka(a.values(), a.dim(), b.values(), b.dim(), n)?,
        cka_relative: linear_cka(&rel.a, k, &rel.b, k, n)?,
    })
}

/// Result of [`isometry_self_test`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct IsometryCheck {
    /// Mean cos(a_i, b_i) between the space and its rotated, rescaled copy: ≈ 0.
    pub absolute_cosine: f64,
    /// The same between their relative representations: 1.
    pub relative_cosine: f64,
    /// Largest element-wise difference of the two relative representations.
    pub relative_max_abs_diff: f64,
}

/// A random orthogonal `d × d` matrix (U·Vᵀ of a Gaussian matrix's SVD).
pub fn random_orthogonal(d: usize, rng: &mut Rng) -> Result<Matrix<f64>> {
    let g = Matrix::new(d, d, (0..d * d).map(|_| rng.normal()).collect())?;
    let svd = thin_svd(&g)?;
    Ok(matmul(&svd.u, &svd.v.transpose())?)
}

/// The relreps demo check: Gaussian latents `n × d`, B = scale · A · Q with Q random orthogonal;
/// relative vectors to `anchors` uniform anchors must agree while the absolute ones do not.
pub fn isometry_self_test(n: usize, d: usize, anchors: usize, scale: f32, seed: u64) -> Result<IsometryCheck> {
    let mut rng = Rng::new(seed);
    let a = rng.normals_f32(n * d);
    let q = random_orthogonal(d, &mut rng)?;
    let a64 = Matrix::new(n, d, a.iter().map(|&x| f64::from(x)).collect())?;
    let b: Vec<f32> = matmul(&a64, &q)?.data().iter().map(|&x| x as f32 * scale).collect();
    let sa = LatentCollection::new("self-test A", n, d, a, None)?;
    let sb = LatentCollection::new("self-test B", n, d, b, None)?;
    let idx = select_anchors(sa.values(), n, d, anchors, AnchorMode::Uniform, seed, None)?;
    let rel = relative_pair(&sa, &sb, &idx, RelativeOptions::default())?;
    Ok(IsometryCheck {
        absolute_cosine: mean_cosine(sa.values(), sb.values(), n, d)?,
        relative_cosine: mean_cosine(&rel.a, &rel.b, n, anchors)?,
        relative_max_abs_diff: rel
            .a
            .iter()
            .zip(&rel.b)
            .map(|(x, y)| f64::from((x - y).abs()))
            .fold(0.0, f64::max),
    })
}
