//! `interpolate-eval`: missing-scan synthesis evaluated on held-out subjects (the README table).
//!
//! ```text
//! latent-workbench interpolate-eval --model models/ldae-demo [--cohort DIR] [--steps 20]
//!     [--max-subjects N] [--max-cases N] [--json]
//! ```
//!
//! Subjects: with `--cohort`, the folder written by `demo-data cohort` (its `cohort.csv`), restricted to
//! the subjects the model's manifest lists as held out when it lists any; without it, the held-out
//! subjects are regenerated in memory from the manifest's `[latent]` `cohort_seed`, `heldout_subjects`
//! and `months`, on the model grid — the same scans `demo-data cohort` would write. Each scan is
//! inverted once (cached in memory) and every (start, end) pair with a visit between them is
//! synthesised; see `methods::ldae::evaluate` for the scores and groupings.

use super::print_json;
use crate::core::diffusion::Cancelled;
use crate::core::jobs::{JobContext, JobError};
use crate::io::demo_assets;
use crate::io::nifti;
use crate::methods::demo_data::cohort::{self, GridSpec};
use crate::methods::ldae::evaluate::{self, Case, EvalError, SubjectVisits, Synthesiser, Visit};
use crate::methods::ldae::interpolate::{self as interp, Inverted};
use crate::methods::ldae::model::{DEFAULT_STEPS, LdaeError, LdaeModel, find_model_dir};
use anyhow::{Context, bail};
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct InterpolateEvalArgs {
    /// Model folder (with model.toml) or registered model name.
    #[arg(long)]
    pub model: String,
    /// A cohort folder (cohort.csv + scans); default: regenerate the manifest's held-out subjects.
    #[arg(long)]
    pub cohort: Option<PathBuf>,
    /// DDIM steps for inversion and decoding (20 interactive, 100 as the paper).
    #[arg(long, default_value_t = DEFAULT_STEPS)]
    pub steps: usize,
    /// Evaluate at most this many subjects (in id order).
    #[arg(long)]
    pub max_subjects: Option<usize>,
    /// Evaluate at most this many cases in all.
    #[arg(long)]
    pub max_cases: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

/// The manifest's `[latent]` list of held-out subject ids, cohort seed and months.
struct HeldOut {
    seed: u64,
    subjects: Vec<String>,
    months: Vec<u32>,
}

fn held_out(model: &LdaeModel) -> Option<HeldOut> {
    let latent = &model.manifest()?.latent;
    let subjects: Vec<String> = latent
        .get("heldout_subjects")?
        .as_array()?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let seed = latent.get("cohort_seed").and_then(toml::Value::as_integer).unwrap_or(0) as u64;
    let months = latent
        .get("months")
        .and_then(toml::Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_integer().map(|m| m as u32)).collect())
        .unwrap_or_else(|| cohort::MONTHS.to_vec());
    Some(HeldOut { seed, subjects, months })
}

/// `sub-032` → 32.
fn subject_index(id: &str) -> Option<usize> {
    id.strip_prefix("sub-")?.parse().ok()
}

fn from_cohort_folder(model: &LdaeModel, dir: &Path, keep: Option<&[String]>) -> anyhow::Result<Vec<SubjectVisits>> {
    let csv = dir.join("cohort.csv");
    let text = std::fs::read_to_string(&csv).with_context(|| format!("cannot read {}", csv.display()))?;
    let table = super::probe::Table::parse(&text, &csv)?;
    let col = |name: &str| {
        table
            .column(name)
            .with_context(|| format!("{}: no column {name:?}", csv.display()))
    };
    let (cs, cm, cf) = (col("subject")?, col("month")?, col("file")?);
    let mut by_subject: std::collections::BTreeMap<String, Vec<Visit>> = Default::default();
    for row in &table.rows {
        if keep.is_some_and(|k| !k.contains(&row[cs])) {
            continue;
        }
        let month: u32 = row[cm]
            .parse()
            .with_context(|| format!("{}: month {:?} is not a whole number", csv.display(), row[cm]))?;
        let path = dir.join(&row[cf]);
        let volume = model
            .onto_grid(nifti::read(&path)?)
            .with_context(|| format!("preprocessing {}", path.display()))?;
        by_subject
            .entry(row[cs].clone())
            .or_default()
            .push(Visit { month, volume });
    }
    Ok(by_subject
        .into_iter()
        .map(|(id, visits)| SubjectVisits { id, visits })
        .collect())
}

fn regenerate(model: &LdaeModel, held: &HeldOut, max_subjects: Option<usize>) -> anyhow::Result<Vec<SubjectVisits>> {
    let cfg = model.config();
    let maps = demo_assets::template_volumes()?;
    let prep = cohort::prepare_maps(
        &maps.t1,
        &maps.gm,
        &maps.wm,
        GridSpec::Custom {
            dims: cfg.shape,
            spacing_mm: cfg.spacing_mm,
        },
    )?;
    let mut out = Vec::new();
    for id in held.subjects.iter().take(max_subjects.unwrap_or(usize::MAX)) {
        let index = subject_index(id).with_context(|| format!("held-out subject id {id:?} is not sub-NNN"))?;
        let subject = cohort::Subject::new(held.seed, index);
        let mut visits = Vec::new();
        for &month in &held.months {
            let raw = cohort::synthesize(&prep, &subject, month)?;
            visits.push(Visit {
                month,
                volume: model
                    .onto_grid(raw)
                    .with_context(|| format!("preprocessing {id} month {month}"))?,
            });
        }
        out.push(SubjectVisits { id: id.clone(), visits });
    }
    Ok(out)
}

/// The model behind [`Synthesiser`], with each scan's inversion cached in memory.
struct ModelSynth<'a> {
    model: &'a LdaeModel,
    steps: usize,
    ctx: &'a JobContext,
    cache: HashMap<(String, u32), Inverted>,
}

impl ModelSynth<'_> {
    fn progress(&self) -> impl FnMut(usize, usize) -> Result<(), Cancelled> + '_ {
        |_, _| self.ctx.check().map_err(|_| Cancelled)
    }

    fn inverted(&mut self, subject: &str, visit: &Visit) -> Result<Inverted, EvalError> {
        let key = (subject.to_string(), visit.month);
        if let Some(inv) = self.cache.get(&key) {
            return Ok(inv.clone());
        }
        let inv =
            interp::invert_scan(self.model, &visit.volume, self.steps, &mut self.progress()).map_err(model_err)?;
        self.cache.insert(key, inv.clone());
        Ok(inv)
    }
}

fn model_err(e: LdaeError) -> EvalError {
    match e {
        LdaeError::Cancelled => EvalError::Cancelled,
        other => EvalError::Model(other.to_string()),
    }
}

impl Synthesiser for ModelSynth<'_> {
    fn synthesise(
        &mut self,
        subject: &str,
        start: &Visit,
        end: &Visit,
        case: &Case,
    ) -> Result<crate::core::Volume, EvalError> {
        let a = self.inverted(subject, start)?;
        let b = self.inverted(subject, end)?;
        let v = interp::synthesise(self.model, &a, &b, case.alpha(), self.steps, &mut self.progress())
            .map_err(model_err)?;
        crate::methods::ldae::model::with_geometry_of(v, &start.volume).map_err(model_err)
    }

    fn reconstruct(&mut self, _subject: &str, visit: &Visit) -> Result<crate::core::Volume, EvalError> {
        self.ctx.check().map_err(|_| EvalError::Cancelled)?;
        self.model.reconstruct_ae(&visit.volume).map_err(model_err)
    }
}

pub fn run(args: &InterpolateEvalArgs) -> anyhow::Result<()> {
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    let dir = find_model_dir(&args.model)?;
    let device = crate::core::device::device();
    let model = std::sync::Arc::new(
        LdaeModel::from_dir(&dir, &device.device).with_context(|| format!("loading {}", dir.display()))?,
    );
    let held = held_out(&model);
    let mut subjects = match (&args.cohort, &held) {
        (Some(c), h) => from_cohort_folder(
            &model,
            c,
            h.as_ref().map(|h| h.subjects.as_slice()).filter(|s| !s.is_empty()),
        )?,
        (None, Some(h)) if !h.subjects.is_empty() => regenerate(&model, h, args.max_subjects)?,
        (None, _) => bail!(
            "{}: the manifest lists no held-out cohort subjects ([latent] heldout_subjects); pass --cohort DIR",
            dir.display()
        ),
    };
    if let Some(n) = args.max_subjects {
        subjects.truncate(n);
    }
    if subjects.is_empty() {
        bail!("no subjects to evaluate");
    }
    let (job_model, steps, max_cases) = (model.clone(), args.steps, args.max_cases);
    let n_subjects = subjects.len();
    let report = super::progress::run("interpolate-eval", move |ctx: &JobContext| {
        let mut synth = ModelSynth {
            model: &job_model,
            steps,
            ctx,
            cache: HashMap::new(),
        };
        evaluate::evaluate(&subjects, &mut synth, max_cases, ctx).map_err(JobError::from)
    })?;
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["model"] = json!(model.id());
        v["steps"] = json!(args.steps);
        v["source"] = json!(match &args.cohort {
            Some(c) => c.display().to_string(),
            None => "held-out subjects regenerated from the manifest".to_string(),
        });
        print_json(&v)?;
    } else {
        println!(
            "# Missing-scan synthesis, {} ({} held-out subjects, DDIM {} steps, {:.0} s)\n",
            model.id(),
            n_subjects,
            args.steps,
            report.seconds
        );
        print!("{}", evaluate::markdown(&report));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_ids_parse() {
        assert_eq!(subject_index("sub-032"), Some(32));
        assert_eq!(subject_index("032"), None);
    }
}
