//! The panel's background work, run as one `core::jobs` job: load two spaces (the sprite demo
//! pair or two latent files), align them by id and project each to 2-D (PCA), then compare them
//! through shared anchors and stitch. Loading is cached: changing an analysis setting reruns only
//! the analysis on the spaces already loaded.

use crate::core::jobs::{JobContext, JobError};
use crate::methods::demo_data::sprites::Factors;
use crate::methods::relreps::demo::{self, SpritePair};
use crate::methods::relreps::stitch::{self, RidgeHead, StitchOptions, StitchReport, StitchSetup};
use crate::methods::relreps::{
    AnchorMode, CompareOptions, Comparison, Dropped, LatentCollection, OutputNorm, Pca2, RelativeOptions, align_by_ids,
    compare_spaces, pca_2d,
};
use std::path::PathBuf;
use std::sync::Arc;

/// Where the two spaces come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// Two sprite demo models (`family = "relreps"`) encoding the same held-out sprites.
    Demo {
        name_a: String,
        dir_a: PathBuf,
        name_b: String,
        dir_b: PathBuf,
        samples: usize,
        seed: u64,
    },
    /// Two latent files (`.npy`, `.safetensors`, `.csv`) and an optional labels CSV.
    Files {
        a: PathBuf,
        b: PathBuf,
        labels: Option<PathBuf>,
    },
}

/// The loaded, aligned spaces and what only depends on them.
pub struct Inputs {
    pub source: Source,
    pub name_a: String,
    pub name_b: String,
    /// Row `i` is the same sample (same id) in both.
    pub a: LatentCollection,
    pub b: LatentCollection,
    pub dropped: Dropped,
    pub pca_a: Pca2,
    pub pca_b: Pca2,
    /// The sprite of each row (demo only), to draw the inputs.
    pub sprites: Option<Vec<Factors>>,
    /// The demo pair as the library returned it, for stitching (demo only).
    pub demo: Option<SpritePair>,
}

/// How the similarity vectors are formed, as the panel names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Similarity {
    /// Plain cosine to the anchors (the paper's setting).
    #[default]
    Raw,
    /// Anchors' mean subtracted first (translation invariant).
    Centred,
    /// Centred and divided by the anchors' per-feature deviation (per-axis scale invariant).
    Standardised,
}

impl Similarity {
    pub const ALL: [Similarity; 3] = [Similarity::Raw, Similarity::Centred, Similarity::Standardised];

    pub fn label(self) -> &'static str {
        match self {
            Similarity::Raw => "raw cosine",
            Similarity::Centred => "centred",
            Similarity::Standardised => "standardised",
        }
    }

    pub fn options(self) -> RelativeOptions {
        RelativeOptions {
            center: self != Similarity::Raw,
            standardize: self == Similarity::Standardised,
            output: OutputNorm::None,
        }
    }
}

/// The analysis settings; a change reruns the analysis (not the loading).
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisKey {
    pub anchors: usize,
    pub mode: AnchorMode,
    pub similarity: Similarity,
    pub k: usize,
    pub seed: u64,
    /// Label column for stratified anchors: before the spaces are loaded, the preferred column (the
    /// colour column); [`run`] resolves it with [`stratify_column`] as the panel does afterwards, so
    /// the first comparison's key equals the panel's.
    pub label_column: Option<String>,
}

/// The column that stratifies anchors: `preferred` when it holds classes, else the first column
/// that does.
pub fn stratify_column(inputs: &Inputs, preferred: Option<&str>) -> Option<String> {
    let cols = inputs.a.columns();
    let categorical = |c: &&crate::methods::relreps::LabelColumn| super::colors::is_categorical(c);
    preferred
        .and_then(|name| cols.iter().filter(categorical).find(|c| c.name == name))
        .or_else(|| cols.iter().find(categorical))
        .map(|c| c.name.clone())
}

impl AnalysisKey {
    pub fn compare_options(&self) -> CompareOptions {
        CompareOptions {
            anchors: self.anchors,
            mode: self.mode,
            seed: self.seed,
            label_column: self.label_column.clone(),
            relative: self.similarity.options(),
            k: self.k,
            ..CompareOptions::default()
        }
    }
}

/// Zero-shot stitching of the demo pair: the library's report, plus the fitted decoder bridge
/// (B relative → B latent) so the selection's reconstructions use the same heads.
pub struct Stitched {
    pub report: StitchReport,
    setup: StitchSetup,
    bridge: RidgeHead,
}

/// Numbers for the metrics table and the stitching table.
pub struct Analysis {
    pub key: AnalysisKey,
    pub comparison: Comparison,
    /// Zero-shot stitching (demo only); an error says why it could not run.
    pub stitching: Option<Result<Stitched, String>>,
}

/// What the job hands back.
pub struct Output {
    pub inputs: Arc<Inputs>,
    pub analysis: Analysis,
}

fn failed(e: impl std::fmt::Display) -> JobError {
    JobError::Failed(e.to_string())
}

/// The job body: loads (unless `cached` holds the same source) and analyses.
pub fn run(
    source: Source,
    cached: Option<Arc<Inputs>>,
    key: AnalysisKey,
    ctx: &JobContext,
) -> Result<Output, JobError> {
    let inputs = match cached.filter(|c| c.source == source) {
        Some(c) => c,
        None => Arc::new(load(source, ctx)?),
    };
    ctx.check()?;
    // The panel offers at most as many anchors as samples; a first run may ask before it knows.
    let key = AnalysisKey {
        anchors: key.anchors.min(inputs.a.len()),
        label_column: stratify_column(&inputs, key.label_column.as_deref()),
        ..key
    };
    let analysis = analyse(&inputs, key, ctx)?;
    Ok(Output { inputs, analysis })
}

/// Loads both spaces, aligns them by id and projects each to 2-D.
pub fn load(source: Source, ctx: &JobContext) -> Result<Inputs, JobError> {
    let (name_a, name_b, a, b, sprites, demo) = match &source {
        Source::Demo {
            name_a,
            dir_a,
            name_b,
            dir_b,
            samples,
            seed,
        } => {
            ctx.set(0.05, format!("encoding {samples} sprites with {name_a} and {name_b}"));
            let pair = demo::sprite_pair(dir_a, dir_b, *samples, *seed, &crate::core::device::device().device)
                .map_err(failed)?;
            (
                name_a.clone(),
                name_b.clone(),
                pair.a.clone(),
                pair.b.clone(),
                Some(pair.factors.clone()),
                Some(pair),
            )
        }
        Source::Files { a, b, labels } => {
            ctx.set(0.05, format!("reading {}", a.display()));
            let mut sa = read_space(a)?;
            ctx.check()?;
            ctx.set(0.15, format!("reading {}", b.display()));
            let sb = read_space(b)?;
            if let Some(l) = labels {
                let text =
                    std::fs::read_to_string(l).map_err(|e| failed(format!("cannot read {}: {e}", l.display())))?;
                sa.attach_labels_csv(&text, &l.display().to_string()).map_err(failed)?;
            }
            (file_name(a), file_name(b), sa, sb, None, None)
        }
    };
    ctx.check()?;
    ctx.set(0.3, "matching samples by id");
    let (a, b, dropped) = align_by_ids(&a, &b).map_err(failed)?;
    // The demo rows are aligned already; keep the sprite list in step if any were dropped.
    let sprites = sprites.filter(|s| s.len() == a.len());
    ctx.check()?;
    ctx.set(0.4, format!("PCA of {name_a}"));
    let pca_a = pca_2d(a.values(), a.len(), a.dim()).map_err(failed)?;
    ctx.check()?;
    ctx.set(0.5, format!("PCA of {name_b}"));
    let pca_b = pca_2d(b.values(), b.len(), b.dim()).map_err(failed)?;
    Ok(Inputs {
        source,
        name_a,
        name_b,
        a,
        b,
        dropped,
        pca_a,
        pca_b,
        sprites,
        demo,
    })
}

/// Compares the two spaces (and stitches, for the demo pair).
pub fn analyse(inputs: &Inputs, key: AnalysisKey, ctx: &JobContext) -> Result<Analysis, JobError> {
    ctx.set(
        0.6,
        format!("comparing through {} {} anchors", key.anchors, key.mode.name()),
    );
    let comparison = compare_spaces(&inputs.a, &inputs.b, &key.compare_options()).map_err(failed)?;
    ctx.check()?;
    let stitching = inputs.demo.as_ref().map(|pair| {
        ctx.set(0.8, "zero-shot stitching: fitting heads on B, applying them to A");
        stitch_demo(pair, &key).map_err(|e| e.to_string())
    });
    ctx.set(1.0, "done");
    Ok(Analysis {
        key,
        comparison,
        stitching,
    })
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name()
        .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// The stitching options the panel's settings imply (heads predict the sprite shape).
fn stitch_options(key: &AnalysisKey, samples: usize) -> StitchOptions {
    let defaults = StitchOptions::default();
    // Anchors are drawn from the training split.
    let train = (samples as f64 * defaults.train_fraction).round() as usize;
    StitchOptions {
        anchors: key.anchors.min(train.max(1)),
        anchor_mode: key.mode,
        seed: key.seed,
        relative: key.similarity.options(),
        shown: 0,
        ..defaults
    }
}

fn stitch_demo(pair: &SpritePair, key: &AnalysisKey) -> Result<Stitched, crate::methods::relreps::RelrepsError> {
    let stitch::Fitted { report, setup, bridge } = stitch::stitch_fitted(pair, &stitch_options(key, pair.a.len()))?;
    Ok(Stitched { report, setup, bridge })
}

/// One latent space from a file, by extension (`io::array::read_latent_file`); errors name the file.
fn read_space(path: &std::path::Path) -> Result<LatentCollection, JobError> {
    use crate::io::array::{LatentFile, read_latent_file};
    let name = path.display().to_string();
    match read_latent_file(path).map_err(failed)? {
        LatentFile::Array(t) => LatentCollection::from_tensor(t, name),
        LatentFile::CsvText(text) => LatentCollection::from_csv(&text, name),
    }
    .map_err(failed)
}

/// Decoded pictures of some samples, one row of images per decoder route.
pub struct Reconstructions {
    /// `(route, one 64×64 RGB8 image per sample)`.
    pub kinds: Vec<(String, Vec<Vec<u8>>)>,
}

/// Reconstructions of `rows` by B's decoder (demo pair only): from B's own latents
/// (unstitched), from A's relative representations through B's bridge (relative stitching), and
/// from A's latents directly (absolute stitching, equal widths only).
pub fn reconstruct(
    inputs: &Inputs,
    analysis: &Analysis,
    rows: &[usize],
    ctx: &JobContext,
) -> Result<Reconstructions, JobError> {
    let (Some(pair), Some(Ok(st))) = (&inputs.demo, &analysis.stitching) else {
        return Ok(Reconstructions { kinds: Vec::new() });
    };
    let n = rows.len();
    let decode_b = |z: &[f32]| -> Result<Vec<Vec<u8>>, JobError> {
        let planar = pair.model_b.decode(z, n).map_err(failed)?;
        Ok(planar.chunks(demo::IMAGE_FLOATS).map(demo::image_rgb8).collect())
    };
    let mut kinds = Vec::new();
    ctx.set(0.1, "B's own reconstructions");
    kinds.push((
        "B -> B (unstitched)".to_string(),
        decode_b(&stitch::gather(pair.b.values(), pair.b.dim(), rows))?,
    ));
    ctx.check()?;
    ctx.set(0.4, "relative stitching");
    let rel_a = stitch::gather(&st.setup.rel_a, st.setup.k(), rows);
    let bridged = st.bridge.predict(&rel_a, n).map_err(failed)?;
    kinds.push(("A -> B relative".to_string(), decode_b(&bridged)?));
    ctx.check()?;
    if pair.a.dim() == pair.b.dim() {
        ctx.set(0.7, "absolute stitching");
        kinds.push((
            "A -> B absolute".to_string(),
            decode_b(&stitch::gather(pair.a.values(), pair.a.dim(), rows))?,
        ));
    }
    Ok(Reconstructions { kinds })
}
