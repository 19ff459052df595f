//! The Interpolation panel's jobs: synthesis (preprocess, invert through the noise cache, lerp/slerp,
//! decode, score against the truth and baselines) and the in-memory demo subject. Every number comes
//! from `methods::ldae`; this file only sequences the calls and reports progress.

use super::shared::{ScanInput, difference, model_for, progress};
use crate::core::jobs::{JobContext, JobError};
use crate::core::volume::Volume;
use crate::methods::ldae::interpolate::{self, Evaluation, NoiseCache, NoiseKey};
use crate::methods::ldae::model::{LdaeModel, with_geometry_of};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// Everything one synthesis needs.
#[derive(Clone, Debug)]
pub struct Request {
    pub model_dir: PathBuf,
    pub start: ScanInput,
    pub end: ScanInput,
    pub truth: Option<ScanInput>,
    pub start_month: f64,
    pub end_month: f64,
    pub target_month: f64,
    pub steps: usize,
}

impl Request {
    /// What identifies the inputs apart from the target time (a change there needs new inversions).
    pub fn inputs_key(&self) -> (PathBuf, String, String, Option<String>, usize) {
        let id = |s: &ScanInput| format!("{}|{:?}", s.name, s.path);
        (
            self.model_dir.clone(),
            id(&self.start),
            id(&self.end),
            self.truth.as_ref().map(id),
            self.steps,
        )
    }
}

/// A finished synthesis, all volumes on the model grid with the start scan's geometry.
pub struct Synthesis {
    pub request: Request,
    pub alpha: f64,
    pub start: Volume,
    pub end: Volume,
    pub synthesis: Volume,
    pub truth: Option<Volume>,
    pub truth_ae: Option<Volume>,
    /// synthesis − truth.
    pub difference: Option<Volume>,
    pub evaluation: Option<Evaluation>,
    /// Provenance of the raw inputs.
    pub inputs: serde_json::Value,
    /// Inversions that came from the cache in this run (of two).
    pub cached_inversions: usize,
    pub seconds: f64,
    pub model: Arc<LdaeModel>,
}

/// Runs one synthesis; the model is reused when `cached` came from the same folder.
pub fn synthesise(
    req: Request,
    cached: Option<Arc<LdaeModel>>,
    cache: Arc<Mutex<NoiseCache>>,
    ctx: &JobContext,
) -> Result<Synthesis, JobError> {
    let started = Instant::now();
    let model = model_for(cached, &req.model_dir, ctx)?;
    let alpha = interpolate::alpha_from_months(req.start_month, req.end_month, req.target_month)?;
    ctx.set(0.05, "preprocessing");
    let raw_start = req.start.volume()?;
    let raw_end = req.end.volume()?;
    let raw_truth = req.truth.as_ref().map(ScanInput::volume).transpose()?;
    let start = model.preprocess(&raw_start)?;
    let end = model.preprocess(&raw_end)?;
    let truth = raw_truth.as_ref().map(|t| model.preprocess(t)).transpose()?;
    ctx.check()?;
    let mut inputs = serde_json::json!({
        "start": req.start.describe(&raw_start),
        "end": req.end.describe(&raw_end),
    });
    if let (Some(t), Some(raw)) = (&req.truth, &raw_truth) {
        inputs["truth"] = t.describe(raw);
    }

    // The cache lock is held only by jobs, never by the UI thread.
    let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
    let (hits_before, _) = cache.stats();
    let key_start = NoiseKey::new(interpolate::volume_key(&start), &model, req.steps);
    let key_end = NoiseKey::new(interpolate::volume_key(&end), &model, req.steps);
    let inv_start = cache.get_or_invert(
        &model,
        key_start,
        &start,
        &mut progress(ctx, 0.1, 0.3, "inverting start"),
    )?;
    let inv_end = cache.get_or_invert(&model, key_end, &end, &mut progress(ctx, 0.4, 0.3, "inverting end"))?;
    let cached_inversions = cache.stats().0 - hits_before;
    drop(cache);

    let synthesis = interpolate::synthesise(
        &model,
        &inv_start,
        &inv_end,
        alpha,
        req.steps,
        &mut progress(ctx, 0.7, 0.2, "decoding"),
    )?;
    let synthesis = with_geometry_of(synthesis, &start)?;
    ctx.set(0.92, "scoring");
    let (truth_ae, evaluation, diff) = match &truth {
        Some(t) => {
            let t_ae = model.reconstruct_ae(t)?;
            let ev = interpolate::evaluate(&synthesis, &start, &end, alpha, t, &t_ae)?;
            (Some(t_ae), Some(ev), difference(&synthesis, t))
        }
        None => (None, None, None),
    };
    ctx.set(1.0, "done");
    Ok(Synthesis {
        request: req,
        alpha,
        start,
        end,
        synthesis,
        truth,
        truth_ae,
        difference: diff,
        evaluation,
        inputs,
        cached_inversions,
        seconds: started.elapsed().as_secs_f64(),
        model,
    })
}

/// One synthetic held-out subject at three visits.
pub struct DemoSubject {
    /// (name, month, scan) for months 0, 12 and 24.
    pub scans: Vec<(String, u32, Volume)>,
}

/// Subject index of the demo: the first subject `train ldae-demo` holds out (sub-032).
const DEMO_SUBJECT: usize = crate::methods::ldae::demo_train::DEMO_HELDOUT_SUBJECTS.start;
pub const DEMO_MONTHS: [u32; 3] = [0, 12, 24];

/// Generates the demo subject in memory at the demo model's grid (a few seconds).
pub fn demo_subject(ctx: &JobContext) -> Result<DemoSubject, JobError> {
    use crate::methods::demo_data::{cohort, cohort::GridSpec, cohort::Subject};
    let failed = |e: String| JobError::Failed(format!("demo subject: {e}"));
    ctx.set(0.05, "preparing the MNI152 template");
    let maps = crate::io::demo_assets::template_volumes().map_err(|e| failed(e.to_string()))?;
    let prep = cohort::prepare_maps(&maps.t1, &maps.gm, &maps.wm, GridSpec::Demo).map_err(|e| failed(e.to_string()))?;
    ctx.check()?;
    let subject = Subject::new(crate::methods::ldae::demo_train::DEMO_COHORT_SEED, DEMO_SUBJECT);
    let mut scans = Vec::new();
    for (i, &month) in DEMO_MONTHS.iter().enumerate() {
        ctx.check()?;
        ctx.set(0.4 + 0.2 * i as f32, format!("{} month {month}", subject.id));
        let v = cohort::synthesize(&prep, &subject, month).map_err(|e| failed(e.to_string()))?;
        let name = format!("{} M{month:02} (synthetic {})", subject.id, subject.diagnosis.as_str());
        scans.push((name, month, v));
    }
    Ok(DemoSubject { scans })
}
