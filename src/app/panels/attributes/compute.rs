//! The Attributes panel's jobs: encode a labelled set and fit a probe with cross-validation, load a
//! probe file (ours or LDAE's `disease_classifier.ckpt`), and edit a scan along a probe (inversion
//! cached; the unedited reconstruction cached too, so a new strength costs one decode). The numbers
//! come from `methods::ldae::{model, probe, interpolate}`; this file only sequences the calls.

use super::labelled::LabelledSet;
use crate::app::panels::interpolation::shared::{ScanInput, difference, model_for, progress};
use crate::core::jobs::{JobContext, JobError};
use crate::core::volume::Volume;
use crate::methods::ldae::interpolate::{self, NoiseCache, NoiseKey};
use crate::methods::ldae::model::{LdaeModel, with_geometry_of};
use crate::methods::ldae::probe::{self, CvOptions, CvReport, L2, Labels, LinearProbe, Standardiser};
use candle_core::Tensor;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// Cross-validation folds at most (fewer when a class or the subjects are scarce).
const MAX_FOLDS: usize = 5;

fn failed(e: impl std::fmt::Display) -> JobError {
    JobError::Failed(e.to_string())
}

/// y_sem of a batch-of-one code as a vector.
fn code_vec(y: &Tensor) -> Result<Vec<f32>, JobError> {
    y.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(failed)
}

pub struct FitRequest {
    pub model_dir: PathBuf,
    pub set: LabelledSet,
    pub column: String,
    /// (positive, negative) for a class column.
    pub classes: Option<(String, String)>,
}

pub struct Fitted {
    pub probe: LinearProbe,
    pub report: CvReport,
    pub seconds: f64,
    pub model: Arc<LdaeModel>,
}

/// Encodes every labelled scan, cross-validates and fits the probe.
pub fn fit(req: FitRequest, cached: Option<Arc<LdaeModel>>, ctx: &JobContext) -> Result<Fitted, JobError> {
    let started = Instant::now();
    let model = model_for(cached, &req.model_dir, ctx)?;
    let classes = req.classes.as_ref().map(|(p, n)| (p.as_str(), n.as_str()));
    let (rows, labels) = req.set.labels(&req.column, classes).map_err(JobError::Failed)?;
    let mut codes = Vec::with_capacity(rows.len());
    for (k, &row) in rows.iter().enumerate() {
        ctx.check()?;
        let path = req.set.scan_path(row);
        ctx.set(
            0.9 * k as f32 / rows.len() as f32,
            format!("encoding {}/{}", k + 1, rows.len()),
        );
        let raw = crate::io::nifti::read(&path).map_err(failed)?;
        codes.push(semantic_code(&model, &raw)?);
    }
    let groups: Option<Vec<String>> = req.set.groups().map(|g| rows.iter().map(|&i| g[i].clone()).collect());
    fit_codes(&req.column, &codes, &labels, groups.as_deref(), model, started, ctx)
}

/// y_sem of a raw scan (preprocessed as the model asks).
fn semantic_code(model: &LdaeModel, raw: &Volume) -> Result<Vec<f32>, JobError> {
    let scan = model.preprocess(raw)?;
    code_vec(&model.encode(&scan)?.y_sem)
}

/// Cross-validates (grouped by subject when `groups` is given) and fits the probe on every code.
fn fit_codes(
    column: &str,
    codes: &[Vec<f32>],
    labels: &Labels,
    groups: Option<&[String]>,
    model: Arc<LdaeModel>,
    started: Instant,
    ctx: &JobContext,
) -> Result<Fitted, JobError> {
    ctx.set(0.92, "cross-validating");
    let units = groups.map_or(codes.len(), |g| {
        let mut u = g.to_vec();
        u.sort();
        u.dedup();
        u.len()
    });
    let scarce = match labels {
        Labels::Binary { values, .. } => {
            let pos = values.iter().filter(|&&v| v).count();
            pos.min(values.len() - pos)
        }
        Labels::Continuous(v) => v.len(),
    };
    let folds = MAX_FOLDS.min(units).min(scarce.max(2)).max(2);
    let opts = CvOptions {
        folds,
        seed: 0,
        l2: L2::Auto,
    };
    let report = probe::cross_validate(codes, labels, groups, &opts).map_err(failed)?;
    ctx.check()?;
    ctx.set(0.97, "fitting on all scans");
    let probe = probe::fit_probe(column, codes, labels, L2::Auto, 0).map_err(failed)?;
    Ok(Fitted {
        probe,
        report,
        seconds: started.elapsed().as_secs_f64(),
        model,
    })
}

/// A probe file: ours (with its standardiser) or a bare `Linear(d, 1)` such as LDAE's published
/// `disease_classifier.ckpt`, standardised with the model's semantic statistics.
pub fn load_probe(
    path: &Path,
    model_dir: &Path,
    cached: Option<Arc<LdaeModel>>,
    ctx: &JobContext,
) -> Result<(LinearProbe, Arc<LdaeModel>), JobError> {
    let model = model_for(cached, model_dir, ctx)?;
    ctx.set(0.5, "reading the probe");
    let ckpt = crate::core::weights::load_checkpoint(path, &Default::default()).map_err(failed)?;
    let fallback = model
        .semantic_stats()
        .map(|(m, s)| {
            Standardiser::new(
                m.iter().map(|&x| f64::from(x)).collect(),
                s.iter().map(|&x| f64::from(x)).collect(),
            )
        })
        .transpose()
        .map_err(failed)?;
    let p = LinearProbe::from_checkpoint(&ckpt, None, fallback.as_ref()).map_err(failed)?;
    let dim = model.config().encoder.emb_chans;
    if p.dim() != dim {
        return Err(JobError::Failed(format!(
            "{}: the probe takes {} features but this model's semantic code has {dim}",
            path.display(),
            p.dim()
        )));
    }
    Ok((p, model))
}

/// Writes probes as safetensors (atomically).
pub fn save_probe(path: &Path, probe: &LinearProbe, report: Option<&CvReport>) -> Result<(), JobError> {
    let mut extra = std::collections::BTreeMap::new();
    if let Some(r) = report {
        extra.insert(
            "cross_validation".to_string(),
            serde_json::to_string(&r.metrics).map_err(failed)?,
        );
    }
    let bytes = probe::probes_to_safetensors(std::slice::from_ref(probe), &extra).map_err(failed)?;
    crate::io::atomic::write_bytes(path, &bytes).map_err(failed)
}

pub struct EditRequest {
    pub model_dir: PathBuf,
    pub scan: ScanInput,
    pub probe: Arc<LinearProbe>,
    pub strength: f64,
    pub steps: usize,
}

/// A scan edited along a probe, all volumes on the model grid with the scan's geometry.
pub struct Edited {
    pub strength: f64,
    pub steps: usize,
    pub scan: Volume,
    /// The unedited scan decoded with the same steps (what the edit is compared with).
    pub reconstruction: Volume,
    pub edited: Volume,
    /// edited − reconstruction.
    pub difference: Volume,
    pub score_before: f64,
    pub score_after: f64,
    pub probability_before: Option<f64>,
    pub probability_after: Option<f64>,
    pub input: serde_json::Value,
    pub seconds: f64,
    pub model: Arc<LdaeModel>,
    pub probe: Arc<LinearProbe>,
}

/// Unedited reconstructions by (scan content hash, model id, steps).
pub type ReconCache = Arc<Mutex<HashMap<NoiseKey, Volume>>>;

/// Inverts the scan (cached), moves its semantic code along the probe by `strength`, decodes.
pub fn edit(
    req: EditRequest,
    cached: Option<Arc<LdaeModel>>,
    cache: Arc<Mutex<NoiseCache>>,
    recon: ReconCache,
    ctx: &JobContext,
) -> Result<Edited, JobError> {
    let started = Instant::now();
    let model = model_for(cached, &req.model_dir, ctx)?;
    ctx.set(0.05, "preprocessing");
    let raw = req.scan.volume()?;
    let scan = model.preprocess(&raw)?;
    let input = req.scan.describe(&raw);
    let key = NoiseKey::new(interpolate::volume_key(&scan), &model, req.steps);
    let inv = {
        let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.get_or_invert(&model, key.clone(), &scan, &mut progress(ctx, 0.1, 0.3, "inverting"))?
    };
    let y = code_vec(&inv.encoded.y_sem)?;
    let y_edit = req.probe.edit(&y, req.strength).map_err(failed)?;
    let cached_recon = recon.lock().unwrap_or_else(PoisonError::into_inner).get(&key).cloned();
    let reconstruction = match cached_recon {
        Some(v) => v,
        None => {
            let v = model.decode(
                &inv.x_t,
                &inv.encoded.y_sem,
                req.steps,
                &mut progress(ctx, 0.4, 0.3, "reconstructing"),
            )?;
            let v = with_geometry_of(v, &scan)?;
            recon
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key, v.clone());
            v
        }
    };
    let y_t = Tensor::from_vec(y_edit.clone(), (1, y_edit.len()), model.device()).map_err(failed)?;
    let edited = model.decode(
        &inv.x_t,
        &y_t,
        req.steps,
        &mut progress(ctx, 0.7, 0.3, "decoding the edit"),
    )?;
    let edited = with_geometry_of(edited, &scan)?;
    let diff =
        difference(&edited, &reconstruction).ok_or_else(|| failed("edited and reconstruction differ in grid"))?;
    Ok(Edited {
        strength: req.strength,
        steps: req.steps,
        scan,
        reconstruction,
        edited,
        difference: diff,
        score_before: req.probe.score(&y).map_err(failed)?,
        score_after: req.probe.score(&y_edit).map_err(failed)?,
        probability_before: req.probe.probability(&y).map_err(failed)?,
        probability_after: req.probe.probability(&y_edit).map_err(failed)?,
        input,
        seconds: started.elapsed().as_secs_f64(),
        model,
        probe: req.probe,
    })
}

/// Visits of the shipped demo model's training subjects (CN and AD only) that fit the tab's demo probe.
const DEMO_PROBE_MONTHS: [u32; 3] = [0, 12, 24];
/// The scan the demo edits: the second held-out subject, sub-033 (CN), at month 0 (the
/// Interpolation demo uses the first).
const DEMO_EDIT_SUBJECT: usize = crate::methods::ldae::demo_train::DEMO_HELDOUT_SUBJECTS.start + 1;
/// How far the demo moves the scan toward AD (LDAE's tutorial strength).
pub const DEMO_STRENGTH: f64 = 2.5;

/// What the tab's `--run-demo` shows: a diagnosis probe (AD positive, CN negative) fitted on
/// synthetic cohort scans generated in memory, and a held-out CN scan to move toward AD.
pub struct DemoAttribute {
    pub fitted: Fitted,
    pub scan_name: String,
    pub scan: Volume,
}

pub fn demo(model_dir: PathBuf, cached: Option<Arc<LdaeModel>>, ctx: &JobContext) -> Result<DemoAttribute, JobError> {
    use crate::methods::demo_data::cohort::{self, Diagnosis, GridSpec, Subject};
    use crate::methods::ldae::demo_train::{DEMO_COHORT_SEED, DEMO_TRAIN_SUBJECTS};
    let started = Instant::now();
    let model = model_for(cached, &model_dir, ctx)?;
    ctx.set(0.02, "preparing the MNI152 template");
    let maps = crate::io::demo_assets::template_volumes().map_err(failed)?;
    let prep = cohort::prepare_maps(&maps.t1, &maps.gm, &maps.wm, GridSpec::Demo).map_err(failed)?;
    let subjects: Vec<Subject> = cohort::subjects(DEMO_COHORT_SEED, DEMO_TRAIN_SUBJECTS.end)[DEMO_TRAIN_SUBJECTS]
        .iter()
        .filter(|s| s.diagnosis != Diagnosis::Mci)
        .cloned()
        .collect();
    let generated = Mutex::new(Vec::new());
    // Generation, then encoding, then the fit each fill their own part of the bar.
    cohort::generate(
        &prep,
        &subjects,
        &DEMO_PROBE_MONTHS,
        &ctx.within(0.05, 0.4),
        |rec, volume| {
            generated.lock().map_err(|e| e.to_string())?.push((rec.clone(), volume));
            Ok(())
        },
    )
    .map_err(failed)?;
    let mut generated = generated.into_inner().unwrap_or_else(PoisonError::into_inner);
    generated.sort_by(|(a, _), (b, _)| (&a.subject, a.month).cmp(&(&b.subject, b.month)));
    let mut codes = Vec::with_capacity(generated.len());
    let encoding = ctx.within(0.45, 0.45);
    for (k, (_, volume)) in generated.iter().enumerate() {
        ctx.check()?;
        encoding.set(
            k as f32 / generated.len() as f32,
            format!("encoding demo scan {}/{}", k + 1, generated.len()),
        );
        codes.push(semantic_code(&model, volume)?);
    }
    let labels = Labels::Binary {
        values: generated.iter().map(|(r, _)| r.diagnosis == Diagnosis::Ad).collect(),
        positive: Diagnosis::Ad.as_str().into(),
        negative: Diagnosis::Cn.as_str().into(),
    };
    let groups: Vec<String> = generated.iter().map(|(r, _)| r.subject.clone()).collect();
    let fitted = fit_codes("diagnosis", &codes, &labels, Some(&groups), model, started, ctx)?;
    let subject = Subject::new(DEMO_COHORT_SEED, DEMO_EDIT_SUBJECT);
    let scan = cohort::synthesize(&prep, &subject, 0).map_err(failed)?;
    Ok(DemoAttribute {
        fitted,
        scan_name: format!("{} M00 (synthetic {})", subject.id, subject.diagnosis.as_str()),
        scan,
    })
}
