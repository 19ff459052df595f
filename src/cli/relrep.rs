//! `relrep A B`: compare two latent spaces of the same samples, absolute against relative
//! (cosine to shared anchors), with Procrustes and CKA as baselines.
//!
//! When A and B are model folders (they hold a `model.toml`, e.g. `models/relreps-sprites-a`),
//! the command runs the sprite demo instead: both models encode the same held-out sprites, the
//! spaces are compared as above, and a classifier and a decoder head fitted on B are stitched
//! onto A (`methods::relreps::stitch`). The Markdown table it prints is the README's.

use super::print_json;
use crate::io::array::{LatentFile, read_latent_file};
use crate::methods::relreps::{
    AnchorMode, CompareOptions, Comparison, HELDOUT_SEED, LatentCollection, MatchScores, OutputNorm, RelativeOptions,
    SpritePair, StitchOptions, StitchReport, align_by_ids, compare_spaces, is_model_dir, sprite_pair, stitch,
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
    /// `.csv` (numeric columns; an `id` column matches samples across spaces); or a sprite demo
    /// model folder (with `model.toml`), which runs the demo: encode, compare and stitch.
    pub a: PathBuf,
    /// Space B, same samples (matched by id; row order when there are no ids); a model folder
    /// when A is one.
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
    /// Demo (model folders): how many held-out sprites both models encode.
    #[arg(long, default_value_t = 2000)]
    pub samples: usize,
    /// Demo: seed of the held-out sprites (default: the one no training stream uses).
    #[arg(long)]
    pub data_seed: Option<u64>,
    /// Demo: share of the sprites that fit the stitching heads (the rest scores them).
    #[arg(long, default_value_t = 0.5)]
    pub train_fraction: f64,
    /// Demo: ridge strength of the stitching heads (relative to the mean feature variance).
    #[arg(long, default_value_t = 1e-2)]
    pub ridge: f64,
    #[arg(long)]
    pub json: bool,
}

/// Loads a latent space by extension (`io::array::read_latent_file`); errors name the file.
pub fn load_collection(path: &Path) -> anyhow::Result<LatentCollection> {
    let name = path.display().to_string();
    Ok(match read_latent_file(path)? {
        LatentFile::Array(tensor) => LatentCollection::from_tensor(tensor, name)?,
        LatentFile::CsvText(text) => LatentCollection::from_csv(&text, name)?,
    })
}

pub fn run(args: &RelrepArgs) -> anyhow::Result<()> {
    match (is_model_dir(&args.a), is_model_dir(&args.b)) {
        (true, true) => return run_demo(args),
        (true, false) | (false, true) => bail!(
            "{} and {}: give two model folders (with model.toml) or two latent files, not one of each",
            args.a.display(),
            args.b.display()
        ),
        (false, false) => {}
    }
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
    let options = compare_options(args, mode, label_column);
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

fn compare_options(args: &RelrepArgs, mode: AnchorMode, label_column: Option<String>) -> CompareOptions {
    CompareOptions {
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
    }
}

/// The sprite demo on two model folders: encode held-out sprites with both, compare, stitch.
fn run_demo(args: &RelrepArgs) -> anyhow::Result<()> {
    let seed = args.data_seed.unwrap_or(HELDOUT_SEED);
    let device = &crate::core::device::device().device;
    let pair = sprite_pair(&args.a, &args.b, args.samples, seed, device)?;
    let mode = AnchorMode::from(args.anchor_mode);
    // Stratified anchors follow the shape classes; the other modes ignore labels.
    let label = (mode == AnchorMode::Stratified).then(|| args.label_column.clone().unwrap_or("shape".into()));
    let options = compare_options(args, mode, label.clone());
    let cmp = compare_spaces(&pair.a, &pair.b, &options)?;
    let stitch_options = StitchOptions {
        anchors: args.anchors,
        anchor_mode: mode,
        seed: args.seed,
        relative: options.relative,
        train_fraction: args.train_fraction,
        ridge: args.ridge,
        label_column: label.unwrap_or("shape".into()),
        shown: 0,
        ..StitchOptions::default()
    };
    let report = stitch(&pair, &stitch_options)?;
    if args.json {
        print_json(&json!({
            "a": pair.a.source,
            "b": pair.b.source,
            "model_a": pair.model_a.name(),
            "model_b": pair.model_b.name(),
            "data_seed": seed,
            "comparison": serde_json::to_value(&cmp)?,
            "stitching": serde_json::to_value(&report)?,
        }))
    } else {
        print_demo_table(&pair, &cmp, &report);
        Ok(())
    }
}

fn print_demo_table(pair: &SpritePair, c: &Comparison, r: &StitchReport) {
    let f = |v: f64| format!("{v:.3}");
    let opt = |v: Option<f64>, fmt: &dyn Fn(f64) -> String| v.map_or("n/a (widths differ)".to_string(), fmt);
    let mse = |v: f64| format!("{v:.5}");
    let pct = |v: f64| format!("{:.1} %", 100.0 * v);
    println!(
        "A: {} ({}, latent {}) · B: {} ({}, latent {})",
        pair.a.source,
        pair.model_a.name(),
        pair.a.dim(),
        pair.b.source,
        pair.model_b.name(),
        pair.b.dim()
    );
    println!(
        "{} held-out sprites (seed {:#x}); {} {} anchors, k = {}; stitching heads fitted on B's {} training \
         sprites, scored on {} test sprites.",
        c.samples,
        pair.seed,
        c.options.anchors,
        c.options.mode.name(),
        c.relative.k,
        r.train,
        r.test
    );
    println!();
    println!("| measure (A against B) | absolute | relative |");
    println!("|---|---|---|");
    let k = c.relative.k;
    let abs = c.absolute.as_ref();
    println!(
        "| Jaccard@{k} | {} | {} |",
        opt(abs.map(|s| s.jaccard), &f),
        f(c.relative.jaccard)
    );
    println!("| MRR@{k} | {} | {} |", opt(abs.map(|s| s.mrr), &f), f(c.relative.mrr));
    println!(
        "| mean cosine | {} | {} |",
        opt(abs.map(|s| s.cosine), &f),
        f(c.relative.cosine)
    );
    println!("| linear CKA | {} | {} |", f(c.cka_absolute), f(c.cka_relative));
    let cl = &r.classifier;
    println!(
        "| shape accuracy, head fitted on B, applied to A (stitched) | {} | {} |",
        opt(cl.absolute_stitched, &pct),
        pct(cl.relative_stitched)
    );
    println!(
        "| shape accuracy, head fitted on B, applied to B (unstitched) | {} | {} |",
        pct(cl.absolute_unstitched),
        pct(cl.relative_unstitched)
    );
    let d = &r.decoder;
    println!(
        "| reconstruction MSE, A into B's decoder (stitched) | {} | {} |",
        opt(d.absolute_stitched_mse, &mse),
        mse(d.relative_stitched_mse)
    );
    println!(
        "| reconstruction MSE, B into B's decoder (unstitched) | {} | {} |",
        mse(d.unstitched_mse),
        mse(d.relative_unstitched_mse)
    );
    println!();
    let own = &r.own_heads;
    println!(
        "Reference: the models' own classifiers: A on A {}, B on B {}, B on A's latents {}; chance {}. \
         Absolute heads and decoders take latents as they are; relative ones go through cosines to the \
         anchors (and a ridge bridge to B's latent for the decoder).",
        pct(own.a),
        pct(own.b),
        opt(own.b_on_a, &pct),
        pct(cl.chance)
    );
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
