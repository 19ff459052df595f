//! `manipulate`: LDAE attribute manipulation (research note §8).
//!
//! ```text
//! latent-workbench manipulate --model M --scan S.nii.gz --probe probe.safetensors|disease_classifier.ckpt
//!     --strength 2.5 [--label NAME] [--steps 20] -o out.nii.gz [--json]
//! ```
//!
//! The scan is encoded, its noise inverted with the **original** y_sem, y_sem moved along the probe
//! direction in standardised space (`y' = unstandardise(standardise(y) + s·√d·ŵ)`) and decoded with the
//! inverted noise. A positive strength moves towards the probe's positive class (our `probe` command:
//! AD for the cohort's diagnosis; LDAE's published `disease_classifier.ckpt`: **CN**, its classes being
//! AD = 0, CN = 1). The unedited decode (same noise, original y) is made too, so the difference isolates
//! the edit. Reported: the probe's score of y, of y' (by construction `+ s·√d·‖w‖`) and of the output
//! re-encoded, and a **ventricle proxy**: mL of dark voxels inside the cohort's ventricle ellipsoid
//! (`cohort::ventricle_csf_ml`; meaningful for MNI-registered scans only), and the ventricle region's
//! mean intensity (`cohort::ventricle_region_mean`), which a blurred decode still moves.

use super::{num, print_json};
use crate::core::Volume;
use crate::core::jobs::{JobContext, JobError};
use crate::core::weights::{LoadOptions, load_checkpoint};
use crate::io::nifti::{self, WriteOptions};
use crate::methods::demo_data::cohort;
use crate::methods::ldae::model::{DEFAULT_STEPS, LdaeModel, find_model_dir, volume_to_tensor, with_geometry_of};
use crate::methods::ldae::probe::{LinearProbe, ProbeKind, Standardiser};
use anyhow::{Context, bail};
use candle_core::Tensor;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct ManipulateArgs {
    /// Model folder (with model.toml) or registered model name.
    #[arg(long)]
    pub model: String,
    /// The scan to edit (NIfTI).
    #[arg(long)]
    pub scan: PathBuf,
    /// A probe saved by `probe`, or a Linear(d, 1) state dict such as LDAE's disease_classifier.ckpt.
    #[arg(long)]
    pub probe: PathBuf,
    /// Which probe of a file holding several.
    #[arg(long)]
    pub label: Option<String>,
    /// s in y_n + s·√d·ŵ (LDAE's tutorial: 2.5); negative moves towards the other class.
    #[arg(long, allow_negative_numbers = true)]
    pub strength: f64,
    /// DDIM steps for inversion and decoding.
    #[arg(long, default_value_t = DEFAULT_STEPS)]
    pub steps: usize,
    /// Output NIfTI; provenance goes beside it as <name>.provenance.json.
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub json: bool,
}

fn code_vec(t: &Tensor) -> anyhow::Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

pub fn run(args: &ManipulateArgs) -> anyhow::Result<()> {
    let t0 = Instant::now();
    if !args.strength.is_finite() {
        bail!("--strength must be a finite number");
    }
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    let dir = find_model_dir(&args.model)?;
    let device = crate::core::device::device();
    let model = std::sync::Arc::new(
        LdaeModel::from_dir(&dir, &device.device).with_context(|| format!("loading {}", dir.display()))?,
    );
    let fallback = model
        .semantic_stats()
        .map(|(m, s)| {
            Standardiser::new(
                m.into_iter().map(f64::from).collect(),
                s.into_iter().map(f64::from).collect(),
            )
        })
        .transpose()?;
    let ckpt = load_checkpoint(&args.probe, &LoadOptions::default())?;
    let probe = LinearProbe::from_checkpoint(&ckpt, args.label.as_deref(), fallback.as_ref())
        .with_context(|| format!("probe {}", args.probe.display()))?;
    let scan = model
        .onto_grid(nifti::read(&args.scan)?)
        .with_context(|| format!("preprocessing {}", args.scan.display()))?;
    if probe.dim() != model.config().encoder.emb_chans {
        bail!(
            "the probe takes {}-d codes but the model's y_sem has {}",
            probe.dim(),
            model.config().encoder.emb_chans
        );
    }

    let (job_model, job_probe, job_scan) = (model.clone(), probe.clone(), scan.clone());
    let (steps, strength) = (args.steps, args.strength);
    let (edited, unedited, y, y_edit, y_out) = super::progress::run("manipulate", move |ctx: &JobContext| {
        let m = &job_model;
        let failed = |e: anyhow::Error| JobError::Failed(format!("{e:#}"));
        let total = (3 * steps + 2) as f32;
        let phase = |offset: usize, label: &'static str| {
            move |done: usize, n: usize| {
                ctx.set(
                    (offset as f32 + done as f32 / n.max(1) as f32 * steps as f32) / total,
                    format!("{label} {done}/{n}"),
                );
                ctx.check().map_err(|_| crate::core::diffusion::Cancelled)
            }
        };
        let enc = m.encode(&job_scan)?;
        let x_t = m.invert(&enc, steps, &mut phase(0, "invert"))?;
        let y = code_vec(&enc.y_sem).map_err(failed)?;
        let y_edit = job_probe
            .edit(&y, strength)
            .map_err(|e| JobError::Failed(e.to_string()))?;
        let y_edit_t = Tensor::from_vec(y_edit.clone(), enc.y_sem.dims(), m.device())
            .map_err(|e| JobError::Failed(e.to_string()))?;
        let edited = m.decode(&x_t, &y_edit_t, steps, &mut phase(steps, "decode edited"))?;
        let unedited = m.decode(&x_t, &enc.y_sem, steps, &mut phase(2 * steps, "decode unedited"))?;
        let x_out = volume_to_tensor(&edited, m.device())?;
        let y_out = code_vec(&m.semantic_code(&x_out)?).map_err(failed)?;
        Ok((edited, unedited, y, y_edit, y_out))
    })?;
    let edited = with_geometry_of(edited, &scan)?;
    let unedited = with_geometry_of(unedited, &scan)?;

    let score_before = probe.score(&y)?;
    let score_target = probe.score(&y_edit)?;
    let score_output = probe.score(&y_out)?;
    let ventricles = json!({
        "note": "proxy: mL of voxels below 0.45 × the 90th brain-intensity percentile inside the cohort's \
                 ventricle ellipsoid (MNI mm); meaningful for MNI-registered scans only",
        "input_ml": num(cohort::ventricle_csf_ml(&scan)),
        "unedited_ml": num(cohort::ventricle_csf_ml(&unedited)),
        "edited_ml": num(cohort::ventricle_csf_ml(&edited)),
        "region_mean_note": "mean intensity inside the same ellipsoid as a fraction of white matter (lower: more \
                             CSF); unlike the mL count it still moves on a blurred decode",
        "input_region_mean": cohort::ventricle_region_mean(&scan).map(num),
        "unedited_region_mean": cohort::ventricle_region_mean(&unedited).map(num),
        "edited_region_mean": cohort::ventricle_region_mean(&edited).map(num),
    });
    let mean_abs_change = edited
        .data()
        .iter()
        .zip(unedited.data())
        .map(|(a, b)| f64::from((a - b).abs()))
        .sum::<f64>()
        / edited.data().len().max(1) as f64;
    let (towards, away) = match &probe.kind {
        ProbeKind::Binary { positive, negative } => {
            if args.strength >= 0.0 {
                (positive.clone(), negative.clone())
            } else {
                (negative.clone(), positive.clone())
            }
        }
        ProbeKind::Continuous => (
            format!(
                "{} {}",
                if args.strength >= 0.0 { "higher" } else { "lower" },
                probe.label
            ),
            String::new(),
        ),
    };
    nifti::write(&args.output, &edited, &WriteOptions::default())?;
    let summary = json!({
        "output": args.output.display().to_string(),
        "model": model.id(),
        "scan": args.scan.display().to_string(),
        "probe": {
            "file": args.probe.display().to_string(),
            "label": probe.label,
            "kind": probe.kind,
            "weight_norm": num(probe.weight_norm()),
        },
        "strength": args.strength,
        "towards": towards,
        "steps": args.steps,
        "edit": "y' = unstandardise(standardise(y) + s·sqrt(d)·w/|w|); noise inverted with the original y",
        "score": {
            "input": num(score_before),
            "edited_code": num(score_target),
            "expected_change": num(probe.expected_score_change(args.strength)),
            "output_reencoded": num(score_output),
        },
        "mean_abs_change_vs_unedited": num(mean_abs_change),
        "ventricle_proxy": ventricles,
        "seconds": num(t0.elapsed().as_secs_f64()),
        "version": crate::VERSION,
    });
    let prov = super::interpolate::provenance_path(&args.output);
    crate::io::atomic::write_bytes(&prov, serde_json::to_string_pretty(&summary)?.as_bytes())?;
    if args.json {
        print_json(&summary)?;
    } else {
        println!(
            "{}: moved {} along the {} probe by s = {} towards {towards}{}",
            args.output.display(),
            args.scan.display(),
            probe.label,
            args.strength,
            if away.is_empty() {
                String::new()
            } else {
                format!(" (away from {away})")
            }
        );
        println!(
            "probe score: input {score_before:.3}, edited code {score_target:.3} (expected change {:+.3}), \
             output re-encoded {score_output:.3}",
            probe.expected_score_change(args.strength)
        );
        println!(
            "ventricle proxy (dark voxels in the ventricle region, mL): input {:.1}, unedited decode {:.1}, \
             edited {:.1}; mean |edited − unedited| {mean_abs_change:.4}",
            cohort::ventricle_csf_ml(&scan),
            cohort::ventricle_csf_ml(&unedited),
            cohort::ventricle_csf_ml(&edited)
        );
        let region = |v: &Volume| cohort::ventricle_region_mean(v).map_or("n/a".to_string(), |m| format!("{m:.4}"));
        println!(
            "ventricle region mean (fraction of white matter, lower = more CSF): input {}, unedited decode {}, \
             edited {}",
            region(&scan),
            region(&unedited),
            region(&edited)
        );
        println!("provenance: {}", prov.display());
    }
    Ok(())
}
