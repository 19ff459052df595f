//! `relrep A B`: compare two latent spaces of the same samples, absolute against relative
//! (cosine to shared anchors), with Procrustes and CKA as baselines.

use super::print_json;
use crate::methods::relreps::{
    AnchorMode, CompareOptions, Comparison, LatentCollection, MatchScores, OutputNorm, RelativeOptions, align_by_ids,
    compare_spaces,
};
use anyhow::{Context, bail};
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum AnchorModeArg {
    #[default]
    Uniform,
    Stratified,
    Fps,
    Kmeans,
}

impl From<AnchorModeArg> for AnchorMode {
    fn from(m: AnchorModeArg) -> Self {
        match m {
            AnchorModeArg::Uniform => Self::Uniform,
            AnchorModeArg::Stratified => Self::Stratified,
            AnchorModeArg::Fps => Self::Fps,
            AnchorModeArg::Kmeans => Self::Kmeans,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct RelrepArgs {
    /// Space A: `.npy`, `.safetensors` (one 2-D tensor, or one named `latents`/`embeddings`) or
    /// `.csv` (numeric columns; an `id` column matches samples across spaces).
    pub a: PathBuf,
    /// Space B, same samples (matched by id; row order when there are no ids).
    pub b: PathBuf,
    /// How many anchors (chosen in A; the same samples in B).
    #[arg(long, default_value_t = 300)]
    pub anchors: usize,
    #[arg(long, value_enum, default_value_t = AnchorModeArg::Uniform)]
    pub anchor_mode: AnchorModeArg,
    /// Labels/metadata CSV (header; an `id` column, or rows in sample order).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Label column for stratified anchors (default: the first label column).
    #[arg(long)]
    pub label_column: Option<String>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Subtract the anchors' mean before the cosine (translation invariance).
    #[arg(long)]
    pub center: bool,
    /// Centre and divide each feature by the anchors' standard deviation (per-axis scale
    /// invariance).
    #[arg(long)]
    pub standardize: bool,
    /// L2-normalise each similarity vector after the transform.
    #[arg(long)]
    pub l2_output: bool,
    /// Neighbourhood size for Jaccard@k and MRR@k.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// At most this many query samples for Jaccard/MRR (0: all).
    #[arg(long, default_value_t = 2000)]
    pub max_queries: usize,
    #[arg(long)]
    pub json: bool,
}

/// Loads a latent space by extension; errors name the file.
pub fn load_collection(path: &Path) -> anyhow::Result<LatentCollection> {
    let name = path.display().to_string();
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let collection = match ext.as_str() {
        "npy" => LatentCollection::from_tensor(crate::io::array::read_npy(path)?, name)?,
        "safetensors" => {
            let tensors = crate::io::array::read_safetensors(path)?;
            let pick = tensors
                .iter()
                .position(|t| matches!(t.name.as_str(), "latents" | "embeddings"))
                .or_else(|| (tensors.len() == 1).then_some(0));
            let Some(i) = pick else {
                let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
                bail!("{name}: holds tensors {names:?}; name one `latents` or `embeddings`, or keep one");
            };
            LatentCollection::from_tensor(tensors.into_iter().nth(i).context("tensor vanished")?, name)?
        }
        "csv" => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {name}"))?;
            LatentCollection::from_csv(&text, name)?
        }
        _ => bail!("{name}: unknown latent format (use .npy, .safetensors or .csv)"),
    };
    Ok(collection)
}

pub fn run(args: &RelrepArgs) -> anyhow::Result<()> {
    let mut a = load_collection(&args.a)?;
    let b = load_collection(&args.b)?;
    if let Some(labels) = &args.labels {
        let text = std::fs::read_to_string(labels).with_context(|| format!("reading {}", labels.display()))?;
        a.attach_labels_csv(&text, &labels.display().to_string())?;
    }
    let (a, b, dropped) = align_by_ids(&a, &b)?;
    let mode = AnchorMode::from(args.anchor_mode);
    let label_column = match (&args.label_column, mode) {
        (Some(c), _) => Some(c.clone()),
        (None, AnchorMode::Stratified) => Some(
            a.columns()
                .first()
                .map(|c| c.name.clone())
                .context("stratified anchors need labels: pass --labels CSV (and --label-column)")?,
        ),
        (None, _) => None,
    };
    let options = CompareOptions {
        anchors: args.anchors,
        mode,
        seed: args.seed,
        label_column,
        relative: RelativeOptions {
            center: args.center,
            standardize: args.standardize,
            output: if args.l2_output {
                OutputNorm::L2
            } else {
                OutputNorm::None
            },
        },
        k: args.k,
        max_queries: (args.max_queries > 0).then_some(args.max_queries),
    };
    let cmp = compare_spaces(&a, &b, &options)?;
    if args.json {
        let mut value = serde_json::to_value(&cmp)?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("a".into(), json!(a.source));
            obj.insert("b".into(), json!(b.source));
            obj.insert(
                "dropped".into(),
                json!({"from_a": dropped.from_a, "from_b": dropped.from_b}),
            );
        }
        print_json(&value)
    } else {
        print_human(&cmp, &a.source, &b.source, dropped.from_a + dropped.from_b);
        Ok(())
    }
}

fn print_human(c: &Comparison, a: &str, b: &str, dropped: usize) {
    let o = &c.options;
    println!("A: {a} ({} × {})", c.samples, c.dim_a);
    println!("B: {b} ({} × {})", c.samples, c.dim_b);
    if dropped > 0 {
        println!("({dropped} samples present in only one space were left out)");
    }
    let q = c.relative.queries;
    println!(
        "{} {} anchors (seed {}), centre {}, standardise {}, output {:?}; k = {}, {q} queries",
        o.anchors,
        o.mode.name(),
        o.seed,
        o.relative.center,
        o.relative.standardize,
        o.relative.output,
        c.relative.k
    );
    println!(
        "{:<22}{:>12}{:>10}{:>10}",
        "",
        format!("Jaccard@{}", c.relative.k),
        "MRR",
        "cosine"
    );
    let row = |name: &str, s: Option<&MatchScores>| match s {
        Some(s) => println!("{name:<22}{:>12.4}{:>10.4}{:>10.4}", s.jaccard, s.mrr, s.cosine),
        None => println!("{name:<22}{:>12}{:>10}{:>10}", "—", "—", "—"),
    };
    row("absolute", c.absolute.as_ref());
    row("relative", Some(&c.relative));
    row("Procrustes (anchors)", Some(&c.procrustes.scores));
    if c.absolute.is_none() {
        println!("(absolute scores need equal widths)");
    }
    println!(
        "linear CKA: absolute {:.4}, relative {:.4}",
        c.cka_absolute, c.cka_relative
    );
    println!(
        "Procrustes residual ‖sAR − B‖/‖B‖: anchors {:.4}, all samples {:.4} (scale {:.4})",
        c.procrustes.fit.anchor_residual, c.procrustes.fit.residual, c.procrustes.fit.scale
    );
}
