//! The panel's background work, one `core::jobs` job per search: load the models (kept between
//! searches while the choice of models stays), measure their base rates, run the search from a
//! fresh or a paused state, and feed the live view (every iteration's record and the best image
//! so far). A cancelled search comes back as its state, ready to resume.

use crate::core::jobs::{JobContext, JobError};
use crate::methods::sage::gallery::planar_to_rgb8;
use crate::methods::sage::report::{self, RunInfo};
use crate::methods::sage::search::{IterationRecord, Search, SearchConfig, SearchResult, SearchState, Stopped};
use crate::methods::sage::setup::{SageSetup, SetupSpec};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The models loaded for a search and their base rates (measured once per choice of models).
pub struct Loaded {
    pub setup: SageSetup,
    pub base_rates: Value,
}

/// What the live view shows while a search runs (shared with the job).
#[derive(Default)]
pub struct Live {
    /// Every iteration so far (a resumed search starts from the paused one's history).
    pub records: Vec<IterationRecord>,
    /// The restart with the lowest objective, its objective and its image `(w, h, rgb8)`.
    pub best: Option<BestPreview>,
    pub iterations: usize,
}

#[derive(Clone)]
pub struct BestPreview {
    pub restart: usize,
    pub loss: f32,
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

pub type LiveView = Arc<Mutex<Live>>;

/// A finished search with what its report needs.
pub struct Finished {
    pub result: SearchResult,
    pub info: RunInfo,
}

pub enum Outcome {
    Done(Box<Finished>),
    /// Cancelled: the state to resume from.
    Paused(Box<SearchState>),
}

/// What the job hands back: the models (to keep for the next search) and the outcome.
pub struct Output {
    pub loaded: Arc<Loaded>,
    pub outcome: Outcome,
}

fn failed(e: impl std::fmt::Display) -> JobError {
    JobError::Failed(e.to_string())
}

/// Loads the models (unless `cached` holds the same ones) and measures their base rates.
pub fn load(spec: SetupSpec, cached: Option<Arc<Loaded>>, ctx: &JobContext) -> Result<Arc<Loaded>, JobError> {
    if let Some(c) = cached.filter(|c| c.setup.requested == spec) {
        return Ok(c);
    }
    ctx.set(0.0, format!("loading {}", spec.generator.name()));
    let setup = SageSetup::load(spec, &crate::core::device::device().device).map_err(failed)?;
    ctx.check()?;
    ctx.set(0.02, "measuring base rates on random draws");
    let base_rates = setup.base_rates(ctx)?;
    Ok(Arc::new(Loaded { setup, base_rates }))
}

/// The job body: a search from `resume` (or a fresh start) to the end of its budget.
pub fn run(
    spec: SetupSpec,
    cached: Option<Arc<Loaded>>,
    config: SearchConfig,
    resume: Option<SearchState>,
    live: LiveView,
    ctx: &JobContext,
) -> Result<Output, JobError> {
    let loaded = load(spec, cached, ctx)?;
    ctx.check()?;
    let setup = &loaded.setup;
    let search = Search::new(setup.generator.as_ref(), &setup.ensemble, config).map_err(failed)?;
    let state = match resume {
        Some(s) => s,
        None => search.initial_state().map_err(failed)?,
    };
    {
        let mut l = lock(&live);
        l.records = state.history.clone();
        l.iterations = config.iterations(setup.generator.class_names().len());
        l.best = None;
    }
    let mut preview_error = None;
    let mut observe = |record: &IterationRecord, state: &SearchState| {
        let preview = match best_preview(&search, state) {
            Ok(p) => p,
            Err(e) => {
                preview_error.get_or_insert(e);
                None
            }
        };
        let mut l = lock(&live);
        l.records.push(record.clone());
        if preview.is_some() {
            l.best = preview;
        }
    };
    let outcome = match search.run(state, ctx, &mut observe) {
        Ok(result) => Outcome::Done(Box::new(Finished {
            info: setup.run_info(loaded.base_rates.clone()),
            result,
        })),
        Err(Stopped::Cancelled(state)) => Outcome::Paused(state),
        Err(Stopped::Failed(e)) => return Err(failed(e)),
    };
    if let Some(e) = preview_error {
        return Err(failed(format!("live preview: {e}")));
    }
    Ok(Output {
        loaded: loaded.clone(),
        outcome,
    })
}

fn lock(live: &LiveView) -> std::sync::MutexGuard<'_, Live> {
    live.lock().unwrap_or_else(|p| p.into_inner())
}

/// The best restart's picture, when the search has one.
fn best_preview(search: &Search, state: &SearchState) -> Result<Option<BestPreview>, String> {
    let Some((restart, image)) = search.preview(state).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let (_, _, h, w) = image.dims4().map_err(|e| e.to_string())?;
    let planar = image
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| e.to_string())?;
    Ok(Some(BestPreview {
        restart,
        loss: state.best_loss[restart],
        width: w,
        height: h,
        rgb: planar_to_rgb8(&planar, h, w),
    }))
}

/// Writes the run folder (report with the verdicts given so far, gallery, candidates, latents).
pub fn save_run(dir: &Path, finished: &Finished) -> Result<PathBuf, JobError> {
    let files = report::run_files(&finished.result, &finished.info).map_err(failed)?;
    crate::io::output::write_all(dir, &files).map_err(failed)?;
    Ok(dir.join(report::REPORT_FILE))
}

/// Saves a paused search as `state.json` in `dir`, where the panel's Open run and
/// `latent-workbench sage --resume -o DIR` both find it.
pub fn save_state(dir: &Path, state: &SearchState) -> Result<PathBuf, JobError> {
    let path = dir.join(report::STATE_FILE);
    std::fs::create_dir_all(dir).map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
    let text = serde_json::to_string(state).map_err(failed)?;
    crate::io::atomic::write_bytes(&path, text.as_bytes()).map_err(failed)?;
    Ok(path)
}
