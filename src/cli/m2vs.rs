//! Motion2VecSets from the command line:
//! - `m2vs-reconstruct SEQUENCE -o OUT`: a point (or mesh) sequence reconstructed and tracked by a
//!   Motion2VecSets-family model, written as an animated GLB or a folder of frames, with
//!   provenance;
//! - `m2vs-eval`: the model on held-out procedural sequences (`demo-data motion` seeds it never
//!   saw), scored with IoU, Chamfer-L1 and correspondence error against the nearest-frame and
//!   static-truth baselines; prints the README's table.

use super::{num, print_json, progress};
use crate::core::Asset;
use crate::core::jobs::JobError;
use crate::core::manifest::{Entry, find_entry};
use crate::core::motion::MotionSequence;
use crate::methods::demo_data::motion::{MotionKind, generate};
use crate::methods::metrics::shape::{EvalOptions, FrameScores, SequenceScores};
use crate::methods::motion2vecsets::bundle::{FAMILY, M2vsBundle};
use crate::methods::motion2vecsets::demo_train::{SPARSE_NOISE, heldout_specs};
use crate::methods::motion2vecsets::pipeline::{
    Normalisation, PipelineOptions, Stage, job_progress, job_progress_within,
};
use crate::methods::motion2vecsets::tracking::{self, TrackingScores};
use anyhow::{Context, anyhow, bail};
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct ReconstructArgs {
    /// The observed sequence: a folder of frames, a .npz or a T×N×3 .npy (points; a mesh sequence
    /// is sampled on its surface).
    pub sequence: PathBuf,
    /// An animated .glb, or a folder that receives one .ply per frame.
    #[arg(short, long)]
    pub output: PathBuf,
    /// A registered model name or a model folder.
    #[arg(long, default_value = "m2vs-demo")]
    pub model: String,
    /// Heun steps of each sampler (the reference: 18).
    #[arg(long, default_value_t = 18)]
    pub steps: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The input is already in the model's unit cube (`as-given`) or is fitted by frame 1's box.
    #[arg(long, value_enum, default_value_t = NormaliseArg::Box)]
    pub normalise: NormaliseArg,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum NormaliseArg {
    AsGiven,
    Box,
}

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    #[arg(long, default_value = "m2vs-demo")]
    pub model: String,
    /// Held-out sequences per kind of motion.
    #[arg(long, default_value_t = 2)]
    pub per_kind: usize,
    #[arg(long, default_value_t = 18)]
    pub steps: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Points for IoU (the reference: 100 000).
    #[arg(long, default_value_t = 100_000)]
    pub volume_samples: usize,
    /// Surface points per mesh for Chamfer-L1 (the reference: 100 000).
    #[arg(long, default_value_t = 100_000)]
    pub surface_samples: usize,
    /// Also write each reconstruction and its truth here (`<name>/pred.glb`, `truth.glb`).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

fn open_model(spec: &str) -> anyhow::Result<(Entry, M2vsBundle)> {
    let entry = find_entry(spec, FAMILY).map_err(|e| anyhow!(e))?;
    let device = crate::core::device::device().device.clone();
    let bundle = M2vsBundle::from_entry(&entry, &device)?;
    Ok((entry, bundle))
}

pub fn reconstruct(args: &ReconstructArgs) -> anyhow::Result<()> {
    let observed = match crate::io::load(&args.sequence)? {
        Asset::Motion(m) => m,
        // A single T×N×3 array (`demo-data motion`'s points.npy) is a point sequence.
        Asset::Tensors(ts) if ts.len() == 1 => crate::io::motion::from_tensor(&ts[0], &args.sequence)?,
        other => bail!(
            "{} is a {}, not a motion sequence",
            args.sequence.display(),
            other.kind()
        ),
    };
    let glb = args.output.extension().is_some_and(|e| e.eq_ignore_ascii_case("glb"));
    if !glb && args.output.extension().is_some() {
        bail!(
            "{}: write an animated .glb or a folder of frames (no extension)",
            args.output.display()
        );
    }
    let (entry, bundle) = open_model(&args.model)?;
    let opts = PipelineOptions {
        seed: args.seed,
        steps: args.steps,
        normalisation: match args.normalise {
            NormaliseArg::AsGiven => Normalisation::AsGiven,
            NormaliseArg::Box => Normalisation::FirstFrameBox,
        },
        fps: observed.fps,
        ..PipelineOptions::default()
    };
    let count = bundle.config().points;
    let observation = bundle.models().observation();
    let obs = tracking::observations(&observed, count, 0.0, observation, args.seed)
        .with_context(|| format!("{}", args.sequence.display()))?;
    let recon = progress::run("Motion2VecSets", move |ctx| {
        let models = bundle.models();
        let mut progress = job_progress(ctx, Stage::RECONSTRUCTION);
        Ok::<_, JobError>(crate::methods::motion2vecsets::reconstruct(
            &models,
            &obs,
            &opts,
            &mut progress,
        )?)
    })?;
    let seq = &recon.sequence;
    let provenance = json!({
        "tool": "latent-workbench m2vs-reconstruct",
        "version": env!("CARGO_PKG_VERSION"),
        "input": args.sequence, "model": entry.manifest.name, "model_sha256": entry.manifest.sha256,
        "steps": args.steps, "seed": args.seed, "normalise": format!("{:?}", args.normalise),
        "points_per_frame": count, "frames": seq.len(),
        "vertices": seq.frames[0].len(), "faces": seq.triangles.len(),
        "seconds": stage_json(&recon.stats),
    });
    write_sequence(&args.output, seq, glb, &provenance)?;
    if args.json {
        return print_json(&json!({"output": args.output, "provenance": provenance}));
    }
    println!(
        "{}: {} frames, {} vertices, {} faces ({:.1} s)",
        args.output.display(),
        seq.len(),
        seq.frames[0].len(),
        seq.triangles.len(),
        recon.stats.total().as_secs_f64()
    );
    Ok(())
}

fn stage_json(stats: &crate::methods::motion2vecsets::PipelineStats) -> serde_json::Value {
    tracking::stage_seconds(stats)
        .into_iter()
        .map(|(k, v)| (k.to_string(), num(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// An animated GLB (with `<stem>.provenance.json`) or a folder of PLY frames (with
/// `provenance.json`), each file written atomically.
fn write_sequence(out: &Path, seq: &MotionSequence, glb: bool, provenance: &serde_json::Value) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(provenance)?;
    if glb {
        crate::io::motion::write_glb(out, seq)?;
        crate::io::atomic::write_bytes(&out.with_extension("provenance.json"), &json)?;
    } else {
        crate::io::motion::write_frames(out, seq, "ply")?;
        crate::io::atomic::write_bytes(&out.join("provenance.json"), &json)?;
    }
    Ok(())
}

/// One held-out sequence's result.
struct Row {
    name: String,
    kind: &'static str,
    scores: TrackingScores,
    seconds: f64,
}

pub fn evaluate(args: &EvalArgs) -> anyhow::Result<()> {
    if args.per_kind == 0 || args.volume_samples == 0 || args.surface_samples == 0 {
        bail!("--per-kind, --volume-samples and --surface-samples must be positive");
    }
    let (entry, bundle) = open_model(&args.model)?;
    let specs = heldout_specs(args.per_kind * MotionKind::ALL.len());
    let eval = EvalOptions {
        volume_samples: args.volume_samples,
        surface_samples: args.surface_samples,
        seed: args.seed,
        ..EvalOptions::default()
    };
    let opts = PipelineOptions {
        seed: args.seed,
        steps: args.steps,
        ..PipelineOptions::default()
    };
    let output = args.output.clone();
    let rows = progress::run("Motion2VecSets held-out evaluation", move |ctx| {
        let models = bundle.models();
        let mut rows = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            ctx.check()?;
            let truth = generate(spec).map_err(|e| JobError::Failed(e.to_string()))?;
            let name = truth.name.clone();
            let share = specs.len() as f32;
            let mut progress = job_progress_within(
                ctx,
                Stage::SCORED_RECONSTRUCTION,
                i as f32 / share..(i + 1) as f32 / share,
                format!("{name}: "),
            );
            let tracked =
                tracking::reconstruct_and_score(&models, &truth.sequence, SPARSE_NOISE, &opts, &eval, &mut progress)?;
            if let Some(dir) = &output {
                let dir = dir.join(&name);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| JobError::Failed(format!("cannot create {}: {e}", dir.display())))?;
                crate::io::motion::write_glb(&dir.join("pred.glb"), &tracked.reconstruction.sequence)
                    .map_err(|e| JobError::Failed(e.to_string()))?;
                crate::io::motion::write_glb(&dir.join("truth.glb"), &truth.sequence)
                    .map_err(|e| JobError::Failed(e.to_string()))?;
            }
            rows.push(Row {
                name,
                kind: spec.kind.name(),
                scores: tracked.scores,
                seconds: tracked.reconstruction.stats.total().as_secs_f64(),
            });
        }
        Ok(rows)
    })?;
    report(args, &entry, &rows)
}

/// One method's scores out of a sequence's.
type Pick = fn(&TrackingScores) -> &SequenceScores;

fn report(args: &EvalArgs, entry: &Entry, rows: &[Row]) -> anyhow::Result<()> {
    // Each kind once, in the order of first appearance (the held-out split cycles through them).
    let mut kinds: Vec<&str> = Vec::new();
    for r in rows {
        if !kinds.contains(&r.kind) {
            kinds.push(r.kind);
        }
    }
    let pick = |f: fn(&TrackingScores) -> &SequenceScores, filter: &dyn Fn(&Row) -> bool| {
        mean_scores(rows.iter().filter(|r| filter(r)).map(|r| &f(&r.scores).mean))
    };
    let methods: [(&str, Pick); 3] = [
        ("model", |s| &s.model),
        ("nearest_frame", |s| &s.nearest_frame),
        ("static_truth", |s| &s.static_truth),
    ];
    if args.json {
        let by_kind: serde_json::Map<String, serde_json::Value> = kinds
            .iter()
            .map(|k| {
                let v: serde_json::Map<String, serde_json::Value> = methods
                    .iter()
                    .map(|(m, f)| (m.to_string(), frame_json(&pick(*f, &|r: &Row| r.kind == *k))))
                    .collect();
                (k.to_string(), v.into())
            })
            .collect();
        let all: serde_json::Map<String, serde_json::Value> = methods
            .iter()
            .map(|(m, f)| (m.to_string(), frame_json(&pick(*f, &|_| true))))
            .collect();
        return print_json(&json!({
            "model": entry.manifest.name, "steps": args.steps, "seed": args.seed,
            "sequences": rows.iter().map(|r| json!({"name": r.name, "kind": r.kind, "seconds": num(r.seconds),
                "model": frame_json(&r.scores.model.mean), "nearest_frame": frame_json(&r.scores.nearest_frame.mean),
                "static_truth": frame_json(&r.scores.static_truth.mean)})).collect::<Vec<_>>(),
            "by_kind": by_kind, "all": all,
        }));
    }
    println!(
        "{} on {} held-out sequences ({} per kind, {} Heun steps, seed {}); means over frames 1..T:",
        entry.manifest.name,
        rows.len(),
        args.per_kind,
        args.steps,
        args.seed
    );
    println!();
    println!(
        "| motion | IoU ↑ model / nearest frame / static truth | Chamfer-L1 ↓ model / nearest / static | correspondence L2 ↓ model / nearest / static |"
    );
    println!("|---|---|---|---|");
    let line = |label: &str, filter: &dyn Fn(&Row) -> bool| {
        let [m, n, s] = methods.map(|(_, f)| pick(f, filter));
        let corr = |x: &FrameScores| x.correspondence_l2.map_or("–".into(), |c| format!("{c:.4}"));
        println!(
            "| {label} | {:.3} / {:.3} / {:.3} | {:.4} / {:.4} / {:.4} | {} / {} / {} |",
            m.iou,
            n.iou,
            s.iou,
            m.chamfer_l1,
            n.chamfer_l1,
            s.chamfer_l1,
            corr(&m),
            corr(&n),
            corr(&s)
        );
    };
    for k in &kinds {
        line(k, &|r: &Row| r.kind == *k);
    }
    line("**all**", &|_| true);
    println!();
    let secs: f64 = rows.iter().map(|r| r.seconds).sum();
    println!(
        "reconstruction time: {:.1} s per sequence on average",
        secs / rows.len().max(1) as f64
    );
    Ok(())
}

/// The mean of frame scores (correspondence only when every one has it).
fn mean_scores<'a>(scores: impl Iterator<Item = &'a FrameScores>) -> FrameScores {
    let all: Vec<&FrameScores> = scores.collect();
    let n = all.len().max(1) as f64;
    let corr: Option<Vec<f64>> = all.iter().map(|s| s.correspondence_l2).collect();
    FrameScores {
        iou: all.iter().map(|s| s.iou).sum::<f64>() / n,
        chamfer_l1: all.iter().map(|s| s.chamfer_l1).sum::<f64>() / n,
        correspondence_l2: corr.filter(|c| !c.is_empty()).map(|c| c.iter().sum::<f64>() / n),
    }
}

fn frame_json(f: &FrameScores) -> serde_json::Value {
    json!({"iou": num(f.iou), "chamfer_l1": num(f.chamfer_l1), "correspondence_l2": f.correspondence_l2.map(num)})
}
