//! `interpolate`: LDAE missing-scan synthesis between two scans of a subject.
//!
//! ```text
//! latent-workbench interpolate --model DIR_OR_NAME --start A.nii.gz --start-month 0 \
//!     --end B.nii.gz --end-month 24 --target-month 12 [--truth T.nii.gz] [--steps 20] -o out.nii.gz [--json]
//! ```
//!
//! Inputs are brought onto the model grid with LDAE's MONAI preprocessing (only min–max when they are
//! already on it). LDAE's offline steps (N4 bias correction, brain extraction, SyN registration to MNI)
//! are a prerequisite this command does not perform. Inverted noises are cached per scan content, model
//! and step count under the cache folder, so asking for another target month does not invert again.
//! Writes the synthesis (NIfTI, atomically) and `<out>.provenance.json`; with `--truth`, prints SSIM
//! (MONAI, kernel 4), MSE and PSNR against the raw truth and its autoencoder reconstruction, next to the
//! nearest-scan and linear-blend baselines.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde_json::json;

use super::{num, print_json};
use crate::core::diffusion::Cancelled;
use crate::core::jobs::{JobContext, JobError};
use crate::core::manifest::sha256_file;
use crate::core::volume::Volume;
use crate::io::nifti::{self, WriteOptions};
use crate::methods::ldae::interpolate::{
    self as interp, Evaluation, Inverted, MethodScores, NoiseCache, NoiseKey, Scores,
};
use crate::methods::ldae::model::{DEFAULT_STEPS, LdaeModel, find_model_dir, with_geometry_of};

#[derive(clap::Args, Debug)]
pub struct InterpolateArgs {
    /// Model folder (with model.toml) or registered model name.
    #[arg(long)]
    pub model: String,
    /// The earlier scan (NIfTI).
    #[arg(long)]
    pub start: PathBuf,
    #[arg(long, allow_negative_numbers = true)]
    pub start_month: f64,
    /// The later scan (NIfTI).
    #[arg(long)]
    pub end: PathBuf,
    #[arg(long, allow_negative_numbers = true)]
    pub end_month: f64,
    /// Time of the scan to synthesise (α = (target − start)/(end − start)).
    #[arg(long, allow_negative_numbers = true)]
    pub target_month: f64,
    /// The real scan at the target time, to score the synthesis and the baselines.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// DDIM steps for inversion and decoding (20 interactive, 100 as the paper).
    #[arg(long, default_value_t = DEFAULT_STEPS)]
    pub steps: usize,
    /// Output NIfTI (.nii or .nii.gz); provenance goes beside it as <name>.provenance.json.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Folder for cached inverted noises (default: $XDG_CACHE_HOME/latent-workbench/ldae-noise).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Do not read or write the noise cache.
    #[arg(long)]
    pub no_cache: bool,
    #[arg(long)]
    pub json: bool,
}

/// `<dir>/<stem>.provenance.json` for `<dir>/<stem>.nii[.gz]`.
pub fn provenance_path(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lower = name.to_lowercase();
    let stem = [".nii.gz", ".nii"]
        .iter()
        .find(|s| lower.ends_with(*s))
        .map_or(name.as_str(), |s| &name[..name.len() - s.len()]);
    output.with_file_name(format!("{stem}.provenance.json"))
}

fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("latent-workbench").join("ldae-noise")
}

/// A scan read, hashed and brought onto the model grid.
struct Input {
    path: PathBuf,
    sha256: String,
    dims: [usize; 3],
    spacing_mm: [f32; 3],
    resampled: bool,
    volume: Volume,
}

fn load_input(model: &LdaeModel, path: &Path) -> anyhow::Result<Input> {
    let raw = nifti::read(path)?;
    let sha256 = sha256_file(path)?;
    let resampled = !model.is_on_grid(&raw);
    let volume = model
        .onto_grid(raw.clone())
        .with_context(|| format!("preprocessing {}", path.display()))?;
    Ok(Input {
        path: path.to_path_buf(),
        sha256,
        dims: raw.dims(),
        spacing_mm: raw.spacing_mm(),
        resampled,
        volume,
    })
}

fn input_json(i: &Input, month: Option<f64>) -> serde_json::Value {
    json!({
        "path": i.path.display().to_string(),
        "sha256": i.sha256,
        "month": month.map(num),
        "dims": i.dims,
        "spacing_mm": i.spacing_mm,
        "preprocessing": if i.resampled { "spacing + pad/crop + min-max (MONAI, as LDAE)" } else { "min-max only (already on the model grid)" },
    })
}

fn scores_json(s: &Scores) -> serde_json::Value {
    json!({"ssim": num(s.ssim), "mse": num(s.mse), "psnr": num(s.psnr)})
}

fn method_json(m: &MethodScores) -> serde_json::Value {
    json!({"vs_truth": scores_json(&m.vs_truth), "vs_ae_reconstruction": scores_json(&m.vs_ae_reconstruction)})
}

fn evaluation_json(e: &Evaluation) -> serde_json::Value {
    json!({
        "ssim_definition": "MONAI-Generative SSIMMetric, 3D Gaussian kernel 4, sigma 1.5, valid, data range 1",
        "ldae": method_json(&e.ldae),
        "nearest_scan": method_json(&e.nearest),
        "linear_blend": method_json(&e.linear_blend),
    })
}

/// An inversion from the on-disk cache, or computed (and stored when the cache is on).
fn inverted(
    model: &LdaeModel,
    scan: &Volume,
    steps: usize,
    cache_dir: Option<&Path>,
    progress: &mut dyn FnMut(usize, usize) -> Result<(), Cancelled>,
) -> Result<(Inverted, bool), JobError> {
    let key = NoiseKey::new(interp::volume_key(scan), model, steps);
    let file = cache_dir.map(|d| d.join(format!("{}.safetensors", key.digest())));
    if let Some(f) = &file
        && let Ok(bytes) = std::fs::read(f)
        && let Ok(hit) = NoiseCache::entry_from_bytes(&bytes, model.device())
        && hit.steps == steps
    {
        progress(1, 1).map_err(|_| JobError::Cancelled)?;
        return Ok((hit, true));
    }
    let mut cache = NoiseCache::new();
    let inv = cache.get_or_invert(model, key, scan, progress)?;
    if let (Some(f), Some(dir)) = (&file, cache_dir) {
        // The cache is an optimisation: a failure to store is reported, not fatal.
        let stored = std::fs::create_dir_all(dir)
            .map_err(|e| e.to_string())
            .and_then(|_| NoiseCache::to_bytes(&inv).map_err(|e| e.to_string()))
            .and_then(|b| crate::io::atomic::write_bytes(f, &b).map_err(|e| e.to_string()));
        if let Err(e) = stored {
            log::warn!("noise cache not written ({}): {e}", f.display());
        }
    }
    Ok((inv, false))
}

struct Outcome {
    synthesis: Volume,
    start_cached: bool,
    end_cached: bool,
    invert_s: f64,
    decode_s: f64,
}

/// A progress callback for one phase of the job: `(done, n)` of the phase mapped onto units
/// `[offset, offset + len)` of `total`.
fn phase<'a>(
    ctx: &'a JobContext,
    label: &'a str,
    offset: usize,
    len: usize,
    total: usize,
) -> impl FnMut(usize, usize) -> Result<(), Cancelled> + 'a {
    move |done, n| {
        let within = if n == 0 { 1.0 } else { done as f64 / n as f64 };
        let fraction = (offset as f64 + within * len as f64) / total.max(1) as f64;
        ctx.set(fraction as f32, format!("{label} {done}/{n}"));
        ctx.check().map_err(|_| Cancelled)
    }
}

pub fn run(args: &InterpolateArgs) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let alpha = interp::alpha_from_months(args.start_month, args.end_month, args.target_month)?;
    let dir = find_model_dir(&args.model)?;
    let device = crate::core::device::device();
    let model = LdaeModel::from_dir(&dir, &device.device).with_context(|| format!("loading {}", dir.display()))?;
    let load_s = t0.elapsed().as_secs_f64();

    let t = Instant::now();
    let start = load_input(&model, &args.start)?;
    let end = load_input(&model, &args.end)?;
    let truth = args.truth.as_deref().map(|p| load_input(&model, p)).transpose()?;
    let preprocess_s = t.elapsed().as_secs_f64();

    let model = Arc::new(model);
    let steps = args.steps;
    model.config().schedule(steps)?; // a bad step count fails before any work
    let cache_dir = (!args.no_cache).then(|| args.cache_dir.clone().unwrap_or_else(default_cache_dir));
    let job_model = model.clone();
    let (sv, ev) = (start.volume.clone(), end.volume.clone());
    let outcome = super::progress::run("interpolate", move |ctx: &JobContext| {
        let m = &job_model;
        let total = 3 * steps + 1;
        let cache = cache_dir.as_deref();
        let t = Instant::now();
        let (a, start_cached) = inverted(m, &sv, steps, cache, &mut phase(ctx, "invert start", 0, steps, total))?;
        let (b, end_cached) = inverted(m, &ev, steps, cache, &mut phase(ctx, "invert end", steps, steps, total))?;
        let invert_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut p = phase(ctx, "decode", 2 * steps, steps + 1, total);
        let synthesis = interp::synthesise(m, &a, &b, alpha, steps, &mut p)?;
        Ok(Outcome {
            synthesis,
            start_cached,
            end_cached,
            invert_s,
            decode_s: t.elapsed().as_secs_f64(),
        })
    })?;
    // The synthesis lies on the start scan's preprocessed grid.
    let synthesis = with_geometry_of(outcome.synthesis, &start.volume)?;

    let t = Instant::now();
    let evaluation = match &truth {
        Some(truth) => {
            let truth_ae = model.reconstruct_ae(&truth.volume)?;
            Some(interp::evaluate(
                &synthesis,
                &start.volume,
                &end.volume,
                alpha,
                &truth.volume,
                &truth_ae,
            )?)
        }
        None => None,
    };
    let evaluate_s = t.elapsed().as_secs_f64();

    nifti::write(&args.output, &synthesis, &WriteOptions::default())?;
    let manifest = model.manifest();
    let provenance = json!({
        "tool": "latent-workbench interpolate",
        "version": env!("CARGO_PKG_VERSION"),
        "output": args.output.display().to_string(),
        "model": {
            "name": manifest.map(|m| m.name.clone()),
            "sha256": manifest.map(|m| m.sha256.clone()).filter(|s| !s.is_empty()),
            "dir": dir.display().to_string(),
            "id": model.id(),
            "demo": manifest.map(|m| m.demo),
            "grid": {"spacing_mm": model.config().spacing_mm, "shape": model.config().shape},
        },
        "inputs": {
            "start": input_json(&start, Some(args.start_month)),
            "end": input_json(&end, Some(args.end_month)),
            "truth": truth.as_ref().map(|t| input_json(t, Some(args.target_month))),
        },
        "target_month": num(args.target_month),
        "alpha": num(alpha),
        "extrapolating": !(0.0..=1.0).contains(&alpha),
        "steps": steps,
        "seed": serde_json::Value::Null,
        "determinism": "DDIM with eta = 0 (inversion and sampling): no random numbers, no seed",
        "method": "y_sem lerped, inverted x_T slerped over the flattened tensor (lerp when parallel), DDIM with the shift, AE decode; z0 = AE posterior mean x 0.8730",
        "prerequisite": "LDAE expects N4-corrected, skull-stripped scans registered (SyN) to MNI152; not done here",
        "device": device.name,
        "cache": {"start_cached": outcome.start_cached, "end_cached": outcome.end_cached},
        "timings_s": {
            "load_model": num(load_s),
            "preprocess": num(preprocess_s),
            "invert": num(outcome.invert_s),
            "decode": num(outcome.decode_s),
            "evaluate": num(evaluate_s),
            "total": num(t0.elapsed().as_secs_f64()),
        },
        "evaluation": evaluation.as_ref().map(evaluation_json),
    });
    let prov_path = provenance_path(&args.output);
    crate::io::atomic::write_bytes(&prov_path, serde_json::to_string_pretty(&provenance)?.as_bytes())?;

    if args.json {
        let mut out = provenance;
        out["provenance"] = json!(prov_path.display().to_string());
        return print_json(&out);
    }
    println!(
        "Synthesised month {} (α = {alpha:.3}) from months {} and {} with {steps} DDIM steps → {}",
        args.target_month,
        args.start_month,
        args.end_month,
        args.output.display()
    );
    if !(0.0..=1.0).contains(&alpha) {
        println!("note: the target lies outside the two scans (extrapolation)");
    }
    println!(
        "  inversion {:.2} s ({}), decoding {:.2} s; provenance {}",
        outcome.invert_s,
        match (outcome.start_cached, outcome.end_cached) {
            (true, true) => "both noises from the cache",
            (false, false) => "both scans inverted",
            _ => "one noise from the cache",
        },
        outcome.decode_s,
        prov_path.display()
    );
    if let Some(e) = &evaluation {
        println!(
            "  scores (SSIM: MONAI kernel 4, σ 1.5, data range 1)   vs truth: SSIM  MSE  PSNR   |   vs AE reconstruction"
        );
        for (name, m) in [
            ("LDAE", &e.ldae),
            ("nearest scan", &e.nearest),
            ("linear blend", &e.linear_blend),
        ] {
            println!(
                "  {name:<14} {:.4}  {:.3e}  {:>6.2} dB   |   {:.4}  {:.3e}  {:>6.2} dB",
                m.vs_truth.ssim,
                m.vs_truth.mse,
                m.vs_truth.psnr,
                m.vs_ae_reconstruction.ssim,
                m.vs_ae_reconstruction.mse,
                m.vs_ae_reconstruction.psnr
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provenance_sits_beside_the_output() {
        assert_eq!(
            provenance_path(Path::new("a/out.nii.gz")),
            Path::new("a/out.provenance.json")
        );
        assert_eq!(provenance_path(Path::new("out.NII")), Path::new("out.provenance.json"));
        assert_eq!(provenance_path(Path::new("x.img")), Path::new("x.img.provenance.json"));
    }
}
