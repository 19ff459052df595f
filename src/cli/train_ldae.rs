//! `train ldae-demo`: the synthetic cohort generated in memory (methods::demo_data::cohort, 3 mm grid),
//! the three LDAE stages (methods::ldae::demo_train), then model.safetensors with the official key
//! layout under `autoencoderkl.` / `encoder.` / `decoder.` plus `semantic_mean` / `semantic_std`.
//!
//! `--steps N` rescales the three stages' default step counts to N steps in all. Resume: finished
//! stages are reloaded from `stage-*.safetensors`, the interrupted one continues from
//! `training-checkpoint.safetensors` (both next to the model, removed once it is written); a folder
//! holding only finished stages resumes too, at the first missing stage.

use super::train::{Outcome, Request, failed, write_atomic};
use crate::core::jobs::{JobContext, JobError};
use crate::core::train::encode_tensors;
use crate::io::demo_assets;
use crate::methods::demo_data::cohort::{self, GridSpec};
use crate::methods::ldae::demo_train::{
    self, CohortSplit, DEMO_COHORT_SEED, DemoSettings, Grid, Persistence, StageSteps,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// Steps of each stage in the shipped model (release build on 2 CPU cores: ≈1.3 s per autoencoder
/// step on a whole 64×80×64 scan, ≈0.8 s per ε-UNet step, ≈1.9 s per representation step).
pub const DEFAULT_STAGE_STEPS: StageSteps = StageSteps {
    ae: 1000,
    unet: 1500,
    repr: 400,
};
pub const DEFAULT_STEPS: usize = DEFAULT_STAGE_STEPS.ae + DEFAULT_STAGE_STEPS.unet + DEFAULT_STAGE_STEPS.repr;
const CHECKPOINT_EVERY: usize = 100;

/// The default stage steps rescaled to `total` (each stage at least one step).
fn stage_steps(total: usize) -> StageSteps {
    if total == DEFAULT_STEPS {
        return DEFAULT_STAGE_STEPS;
    }
    let part = |n: usize| ((n * total) as f64 / DEFAULT_STEPS as f64).round().max(1.0) as usize;
    StageSteps {
        ae: part(DEFAULT_STAGE_STEPS.ae),
        unet: part(DEFAULT_STAGE_STEPS.unet),
        repr: part(DEFAULT_STAGE_STEPS.repr),
    }
}

pub fn ldae_demo(req: &Request, ctx: &JobContext) -> Result<Outcome, JobError> {
    let started = Instant::now();
    let device = candle_core::Device::Cpu;
    let maps = demo_assets::template_volumes().map_err(failed)?;
    let prep = cohort::prepare_maps(&maps.t1, &maps.gm, &maps.wm, GridSpec::Demo).map_err(failed)?;
    let split = CohortSplit::demo();
    let (train, heldout) = demo_train::cohort_scans(&prep, &split, &device, ctx).map_err(failed)?;
    let data_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "ldae-demo: {} training and {} held-out scans generated in {data_seconds:.0} s",
        train.len(),
        heldout.len()
    );

    let steps = stage_steps(req.steps);
    let settings = DemoSettings::demo(steps, req.seed);
    let dir = req.checkpoint.parent().map(Path::to_path_buf).unwrap_or_default();
    let persist = Persistence {
        checkpoint: req.checkpoint.clone(),
        dir,
        every: CHECKPOINT_EVERY,
        write: write_atomic,
        resume: req.resume,
    };
    let log = |line: &str| eprintln!("ldae-demo: {line}");
    let model = demo_train::train(&settings, &train, &heldout, &device, ctx, Some(&persist), &log)?;

    let mut meta = BTreeMap::new();
    meta.insert("name".to_string(), req.name.to_string());
    meta.insert("seed".to_string(), req.seed.to_string());
    let weights = encode_tensors(&model.tensors, &meta).map_err(failed)?;
    let grid = Grid {
        spacing_mm: prep.output_spacing_mm(),
        shape: prep.output_dims(),
    };
    let ae_text = model.ae_eval.as_ref().map_or(String::new(), |e| {
        let ventricles = e.ventricle_summary().map_or(String::new(), |v| format!(", {v}"));
        format!(
            "; autoencoder on {} held-out scans: SSIM {:.3}, MSE {:.5}{ventricles}",
            e.scans, e.ssim, e.mse
        )
    });
    let description = format!(
        "Demo LDAE (small widths, {}×{}×{} at {} mm) trained by `latent-workbench train {}` with seed {} on the \
         synthetic longitudinal cohort (demo-data cohort, seed {DEMO_COHORT_SEED}; subjects sub-000–sub-031, held out \
         sub-032–sub-043): autoencoder {} steps (L1 + KL, no perceptual/GAN loss), ε-UNet {} steps, semantic \
         encoder + shift branch {} steps (PDAE loss){ae_text}. Synthetic data only: not for real scans.",
        grid.shape[0],
        grid.shape[1],
        grid.shape[2],
        grid.spacing_mm,
        req.name,
        req.seed,
        steps.ae,
        steps.unet,
        steps.repr,
    );
    let manifest = demo_train::manifest(req.name, &settings.arch, grid, &split, &model, description).map_err(failed)?;
    for path in persist.stage_files() {
        if path.is_file() {
            std::fs::remove_file(&path).map_err(|e| failed(format!("cannot remove {}: {e}", path.display())))?;
        }
    }
    let summary = serde_json::json!({
        "seed": req.seed,
        "stage_steps": {"ae": steps.ae, "unet": steps.unet, "repr": steps.repr},
        "stages": model.stages,
        "autoencoder_heldout": model.ae_eval,
        "latent_shape": model.latent_shape,
        "latent_shift": model.latent_shift,
        "latent_scale": model.latent_scale,
        "x0_clip": model.x0_clip,
        "training_scans": train.len(),
        "heldout_scans": heldout.len(),
        "data_seconds": data_seconds,
        "total_seconds": started.elapsed().as_secs_f64(),
        "tensors": model.tensors.len(),
    });
    Ok(Outcome {
        manifest,
        weights,
        summary,
        extra_files: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_rescale_per_stage() {
        assert_eq!(stage_steps(DEFAULT_STEPS), DEFAULT_STAGE_STEPS);
        // Tiny runs keep at least one step per stage.
        let s = stage_steps(1);
        assert_eq!((s.ae, s.unet, s.repr), (1, 1, 1));
        let s = stage_steps(DEFAULT_STEPS / 10);
        assert!(
            s.ae > 1 && s.unet > 1 && s.repr > 1 && s.total().abs_diff(DEFAULT_STEPS / 10) <= 2,
            "{s:?}"
        );
    }
}
