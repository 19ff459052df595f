//! `motion-eval PRED TRUTH`: per-frame IoU, Chamfer-L1 and correspondence error of a predicted
//! mesh sequence against the true one, beside the nearest-frame baseline (the prediction's first
//! frame held still). Sequences are folders of frames or `.npz` files in the same coordinates
//! (Motion2VecSets' unit cube for the demo data).

use super::{num, print_json};
use crate::core::Asset;
use crate::core::motion::MotionSequence;
use crate::methods::metrics::shape::{EvalOptions, FrameScores, SequenceScores, evaluate_sequence, held_first_frame};
use anyhow::{Context, bail};
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The predicted mesh sequence (a folder of frames or a .npz with faces).
    pub pred: PathBuf,
    /// The true mesh sequence.
    pub truth: PathBuf,
    /// Points drawn in the box for IoU (the reference: 100 000).
    #[arg(long, default_value_t = 100_000)]
    pub volume_samples: usize,
    /// Surface points per mesh for Chamfer-L1 (the reference: 100 000).
    #[arg(long, default_value_t = 100_000)]
    pub surface_samples: usize,
    /// Half-size of the IoU box.
    #[arg(long, default_value_t = 0.55)]
    pub half_box: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
}

fn mesh_sequence(path: &Path) -> anyhow::Result<MotionSequence> {
    match crate::io::load(path)? {
        Asset::Motion(m) if m.is_mesh() => Ok(m),
        Asset::Motion(_) => bail!(
            "{} is a point sequence; motion-eval needs meshes with constant faces",
            path.display()
        ),
        other => bail!("{} is a {}, not a motion sequence", path.display(), other.kind()),
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.volume_samples == 0 || args.surface_samples == 0 {
        bail!("--volume-samples and --surface-samples must be positive");
    }
    let pred = mesh_sequence(&args.pred)?;
    let truth = mesh_sequence(&args.truth)?;
    if pred.len() != truth.len() {
        eprintln!(
            "note: {} has {} frames and {} has {}; the first {} are scored",
            args.pred.display(),
            pred.len(),
            args.truth.display(),
            truth.len(),
            pred.len().min(truth.len())
        );
    }
    let opts = EvalOptions {
        volume_samples: args.volume_samples,
        surface_samples: args.surface_samples,
        half_box: args.half_box,
        seed: args.seed,
    };
    let model = evaluate_sequence(&pred, &truth, &opts).context("both sequences must be meshes")?;
    let held = evaluate_sequence(&held_first_frame(&pred), &truth, &opts).context("both sequences must be meshes")?;
    if args.json {
        return print_json(&json!({
            "pred": args.pred, "truth": args.truth, "frames": model.frames.len(),
            "volume_samples": args.volume_samples, "surface_samples": args.surface_samples,
            "prediction": scores_json(&model), "nearest_frame_baseline": scores_json(&held),
        }));
    }
    println!("frame      IoU   Chamfer-L1   corr-L2   | baseline (frame 1 held): IoU   Chamfer-L1   corr-L2");
    for (t, (m, h)) in model.frames.iter().zip(&held.frames).enumerate() {
        println!("{}", row(&(t + 1).to_string(), m, h));
    }
    println!("{}", row("mean", &model.mean, &held.mean));
    Ok(())
}

/// One line of the table: the model's scores, then the baseline's.
fn row(label: &str, m: &FrameScores, h: &FrameScores) -> String {
    let corr = |f: &FrameScores| f.correspondence_l2.map_or("-".into(), |c| format!("{c:.5}"));
    format!(
        "{label:>5}  {:>7.4}  {:>11.5}  {:>8}   |                          {:>6.4}  {:>11.5}  {:>8}",
        m.iou,
        m.chamfer_l1,
        corr(m),
        h.iou,
        h.chamfer_l1,
        corr(h)
    )
}

fn scores_json(s: &SequenceScores) -> serde_json::Value {
    let frame = |f: &crate::methods::metrics::shape::FrameScores| json!({"iou": num(f.iou), "chamfer_l1": num(f.chamfer_l1), "correspondence_l2": f.correspondence_l2.map(num)});
    json!({"mean": frame(&s.mean), "per_frame": s.frames.iter().map(frame).collect::<Vec<_>>()})
}
