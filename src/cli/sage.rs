//! `sage`: adversarial search for a generator's failures (methods::sage), written as a run folder
//! (methods::sage::report: `report.json`, `gallery.png`, `candidates/NNN.png`,
//! `latents.safetensors`). Ctrl-C saves `state.json`; `--resume` continues the same run exactly.
//! `--compare` runs every mode at the same budget and prints the README's table.

use super::{print_json, progress};
use crate::core::jobs::JobError;
use crate::methods::sage::naturalness::Naturalness;
use crate::methods::sage::report::{self, RunInfo};
use crate::methods::sage::search::{ModeKind, Objective, Search, SearchConfig, SearchResult, SearchState, Stopped};
use crate::methods::sage::setup::{GeneratorSpec, ModelRef, SageSetup, SetupSpec};
use crate::methods::sage::stable_diffusion::SdOptions;
use anyhow::{Context, bail};
use candle_core::Device;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectiveArg {
    Unrelated,
    Distorted,
    Switch,
}

/// `--mode` takes the library's mode kinds by their names.
impl clap::ValueEnum for ModeKind {
    fn value_variants<'a>() -> &'a [Self] {
        &ModeKind::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()).help(self.label()))
    }
}

#[derive(clap::Args, Debug)]
pub struct SageArgs {
    /// The generator: a registered `sage` generator's name, its folder, or a Stable Diffusion
    /// folder (diffusers layout: unet/, vae/, text_encoder/, tokenizer/, scheduler/), which also
    /// needs --sd-classes.
    #[arg(long, default_value = "sage-sprites-generator")]
    pub generator: String,
    /// Stable Diffusion: the classes (conditions) to search, comma-separated; each becomes a
    /// prompt through --prompt.
    #[arg(long, value_delimiter = ',')]
    pub sd_classes: Vec<String>,
    /// Stable Diffusion: the prompt of a class, `{}` standing for its name.
    #[arg(long, default_value = "a photo of a {}")]
    pub prompt: String,
    /// Stable Diffusion: classifier-free guidance scale (≤ 1: none).
    #[arg(long, default_value_t = 7.5)]
    pub guidance: f64,
    /// Stable Diffusion: image size in pixels (square; default the UNet's own).
    #[arg(long)]
    pub size: Option<usize>,
    /// Classifiers of the ensemble, repeatable: registered sprite classifiers' names or folders,
    /// or torchvision ResNet folders (a `.pth`/`.safetensors` state dict and `labels.txt`).
    #[arg(long = "classifier", default_values_t = ["relreps-sprites-a".to_string(), "relreps-sprites-b".to_string()])]
    pub classifiers: Vec<String>,
    /// The held-out judge: never used for gradients, only to confirm ("none" for no judge).
    #[arg(long, default_value = "relreps-sprites-wide")]
    pub held_out: String,
    /// The condition whose failures are sought (a class name or index).
    #[arg(long, default_value = "heart")]
    pub class: String,
    #[arg(long, value_enum, default_value_t = ObjectiveArg::Unrelated)]
    pub objective: ObjectiveArg,
    /// The class a condition switch should produce (`--objective switch`).
    #[arg(long)]
    pub target: Option<String>,
    #[arg(long, value_enum, default_value_t = ModeKind::Skip)]
    pub mode: ModeKind,
    /// Skip mode: exact backpropagation through this many final sampler steps.
    #[arg(long, default_value_t = 0)]
    pub exact_last: usize,
    /// Evolution: perturbations per update (even) and their scale.
    #[arg(long, default_value_t = 8)]
    pub population: usize,
    #[arg(long, default_value_t = 0.1)]
    pub sigma: f64,
    #[arg(long, default_value_t = 16)]
    pub restarts: usize,
    /// Generator calls per restart (a gradient evaluation counts two).
    #[arg(long, default_value_t = 100)]
    pub budget: usize,
    #[arg(long, default_value_t = SearchConfig::default().lr)]
    pub lr: f64,
    /// Ensemble probability of the class below which the objective stops pushing (the margin is
    /// clamped at log((1 − s)/s)): lower asks for clearer failures.
    #[arg(long, default_value_t = SearchConfig::default().saturation)]
    pub saturation: f64,
    /// Gradient and evolution modes: random draws per restart before the first step, which then
    /// starts from the best draw (counted in the budget).
    #[arg(long, default_value_t = SearchConfig::default().screen)]
    pub screen: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// DDIM steps of the generator during the search.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Weight of the typical-set penalty (|z|²/d − 1)².
    #[arg(long, default_value_t = 1.0)]
    pub penalty: f64,
    /// Do not re-project latents onto the typical sphere after each step.
    #[arg(long)]
    pub no_reproject: bool,
    /// Run folder (report.json, gallery.png, candidates/, latents.safetensors).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Continue the run saved in the output folder by an interrupted search.
    #[arg(long)]
    pub resume: bool,
    /// Run every mode (skip, backprop, evolution, random) at this budget and print a table.
    #[arg(long)]
    pub compare: bool,
    /// Record a person's verdicts in the output folder's report instead of searching: restart
    /// indices judged real generator failures (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub accept: Vec<usize>,
    /// Restart indices judged not to be generator failures (e.g. classifier errors).
    #[arg(long, value_delimiter = ',')]
    pub reject: Vec<usize>,
    #[arg(long)]
    pub json: bool,
}

/// The generator, ensemble and judge the options name.
fn load_setup(args: &SageArgs) -> anyhow::Result<SageSetup> {
    let find = |spec: &str| ModelRef::find_classifier(spec).with_context(|| format!("classifier {spec}"));
    let sd = SdOptions {
        height: args.size,
        width: args.size,
        guidance: args.guidance,
        prompt_template: args.prompt.clone(),
        classes: args.sd_classes.clone(),
        ..SdOptions::default()
    };
    let generator =
        GeneratorSpec::find(&args.generator, &sd).with_context(|| format!("generator {}", args.generator))?;
    if matches!(generator, GeneratorSpec::StableDiffusion { .. }) && args.sd_classes.is_empty() {
        bail!("a Stable Diffusion generator needs --sd-classes (the classes to search, e.g. --sd-classes cat,dog)");
    }
    let spec = SetupSpec {
        generator,
        classifiers: args
            .classifiers
            .iter()
            .map(|c| find(c))
            .collect::<anyhow::Result<_>>()?,
        held_out: (args.held_out != "none").then(|| find(&args.held_out)).transpose()?,
        steps: args.steps,
    };
    if spec.classifiers.is_empty() {
        bail!("the ensemble needs at least one --classifier");
    }
    Ok(SageSetup::load(spec, &Device::Cpu)?)
}

fn class_index(names: &[String], spec: &str) -> anyhow::Result<usize> {
    if let Ok(i) = spec.parse::<usize>()
        && i < names.len()
    {
        return Ok(i);
    }
    names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(spec))
        .with_context(|| format!("unknown class {spec:?} (the generator knows {})", names.join(", ")))
}

fn search_config(args: &SageArgs, names: &[String], mode: ModeKind) -> anyhow::Result<SearchConfig> {
    let class = class_index(names, &args.class)?;
    let objective = match args.objective {
        ObjectiveArg::Unrelated => Objective::Unrelated,
        ObjectiveArg::Distorted => Objective::Distorted,
        ObjectiveArg::Switch => {
            let target = args
                .target
                .as_deref()
                .context("--objective switch needs --target CLASS")?;
            Objective::SwitchCondition {
                target: class_index(names, target)?,
            }
        }
    };
    let mode = mode.with(args.exact_last, args.population, args.sigma);
    Ok(SearchConfig {
        objective,
        class,
        mode,
        restarts: args.restarts,
        budget: args.budget,
        lr: args.lr,
        seed: args.seed,
        saturation: args.saturation,
        screen: args.screen,
        naturalness: Naturalness {
            penalty: args.penalty,
            reproject: !args.no_reproject,
            ..Naturalness::default()
        },
        ..SearchConfig::default()
    })
}

/// The base rates, as a job with progress that Ctrl-C stops (a Stable Diffusion image is a full
/// sampler run).
fn base_rates(setup: &Arc<SageSetup>) -> anyhow::Result<serde_json::Value> {
    let setup = setup.clone();
    progress::run("base rates", move |ctx| Ok(setup.base_rates(ctx)?))
}

/// Runs one search as a job; a cancelled one saves its state into `out` before reporting.
fn run_search(
    setup: Arc<SageSetup>,
    config: SearchConfig,
    resume: Option<SearchState>,
    out: &Path,
) -> anyhow::Result<SearchResult> {
    let saved: Arc<Mutex<Option<SearchState>>> = Arc::default();
    let slot = saved.clone();
    let result = progress::run("sage", move |ctx| {
        let search = Search::new(setup.generator.as_ref(), &setup.ensemble, config)?;
        let state = match resume {
            Some(s) => s,
            None => search.initial_state()?,
        };
        match search.run(state, ctx, &mut |_, _| {}) {
            Ok(r) => Ok(r),
            Err(Stopped::Cancelled(state)) => {
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(*state);
                Err(JobError::Cancelled)
            }
            Err(Stopped::Failed(e)) => Err((*e).into()),
        }
    });
    if let Some(state) = saved.lock().unwrap_or_else(|p| p.into_inner()).take() {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let path = out.join(report::STATE_FILE);
        crate::io::atomic::write_bytes(&path, serde_json::to_string(&state)?.as_bytes())?;
        eprintln!(
            "sage: stopped at iteration {}; `--resume -o {}` continues it",
            state.iteration,
            out.display()
        );
    }
    result
}

/// Writes the run folder; returns the report.
fn write_run(out: &Path, result: &SearchResult, info: &RunInfo) -> anyhow::Result<serde_json::Value> {
    crate::io::output::write_all(out, &report::run_files(result, info)?)?;
    Ok(report::report_json(result, info))
}

/// Writes human verdicts into `OUTPUT/report.json` and prints the updated summary.
fn judge(args: &SageArgs) -> anyhow::Result<()> {
    let path = args.output.join(report::REPORT_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("no search report to judge: {}", path.display()))?;
    let mut value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not a search report", path.display()))?;
    let verdicts: Vec<(usize, bool)> = args
        .accept
        .iter()
        .map(|&r| (r, true))
        .chain(args.reject.iter().map(|&r| (r, false)))
        .collect();
    report::apply_verdicts(&mut value, &verdicts).with_context(|| path.display().to_string())?;
    crate::io::atomic::write_bytes(&path, serde_json::to_string_pretty(&value)?.as_bytes())?;
    if args.json {
        print_json(&json!({"summary": value["summary"], "report": path.display().to_string()}))
    } else {
        let s = &value["summary"];
        println!(
            "{} judged; SSR(H) {} → {}",
            s["human_judged"],
            pct(s["ssr_human"].as_f64()),
            path.display()
        );
        Ok(())
    }
}

pub fn run(args: &SageArgs) -> anyhow::Result<()> {
    if !args.accept.is_empty() || !args.reject.is_empty() {
        return judge(args);
    }
    let setup = Arc::new(load_setup(args)?);
    let names = setup.generator.class_names();
    if args.compare {
        return compare(args, setup, &names);
    }
    let config = search_config(args, &names, args.mode)?;
    let resume = if args.resume {
        let path = args.output.join(report::STATE_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| format!("nothing to resume: {}", path.display()))?;
        let state: SearchState =
            serde_json::from_str(&text).with_context(|| format!("{}: not a saved search", path.display()))?;
        if state.config != config {
            bail!(
                "{}: the saved search used other settings ({:?}); resume with the same options",
                path.display(),
                state.config
            );
        }
        Some(state)
    } else {
        None
    };
    let result = run_search(setup.clone(), config, resume, &args.output)?;
    let rates = base_rates(&setup)?;
    let info = setup.run_info(rates.clone());
    let report = write_run(&args.output, &result, &info)?;
    let state = args.output.join(report::STATE_FILE);
    if state.is_file() {
        std::fs::remove_file(&state).with_context(|| format!("cannot remove {}", state.display()))?;
    }
    if args.json {
        let mut v =
            json!({"summary": report["summary"], "base_rates": rates, "dir": args.output.display().to_string()});
        v["gallery"] = report["gallery"].clone();
        print_json(&v)?;
    } else {
        let s = result.summary();
        println!(
            "{} search ({}) of {} for class {}: {} restarts × {} generator calls in {:.1} s",
            config.objective.label(),
            config.mode.label(),
            setup.generator.name(),
            names[config.class],
            s.restarts,
            result.generator_calls / s.restarts.max(1),
            s.seconds
        );
        let truth = s.confirmed_generator_failure_rate.map_or(String::new(), |r| {
            format!(" ({} real generator failures)", pct(Some(r)))
        });
        println!(
            "SSR(A) {:.1} %, held-out confirmed {}{truth}, NGR {} → {}",
            s.ssr_auto * 100.0,
            pct(s.held_out_confirmed_rate),
            pct(s.non_gaussian_rate),
            args.output.display()
        );
    }
    Ok(())
}

fn pct(x: Option<f64>) -> String {
    x.map_or("–".into(), |v| format!("{:.1} %", v * 100.0))
}

/// Every mode at the same budget: SSR(A), held-out-confirmed rate and NGR (README table); each
/// mode's run folder goes to OUTPUT/MODE.
fn compare(args: &SageArgs, setup: Arc<SageSetup>, names: &[String]) -> anyhow::Result<()> {
    let rates = base_rates(&setup)?;
    let info = setup.run_info(rates.clone());
    let mut rows = Vec::new();
    for mode in ModeKind::ALL {
        let config = search_config(args, names, mode)?;
        if matches!(config.objective, Objective::SwitchCondition { .. }) && mode == ModeKind::Random {
            continue;
        }
        let dir = args.output.join(config.mode.label());
        let result = run_search(setup.clone(), config, None, &dir)?;
        write_run(&dir, &result, &info)?;
        let s = result.summary();
        let confirmed = result.candidates.iter().filter(|c| c.held_out_confirmed()).count();
        // Of those, the ones the generator itself says it drew wrong (None: it cannot tell).
        let real = result.confirmed_generator_failures();
        rows.push(json!({
            "mode": config.mode.label(),
            "generator_calls": result.generator_calls,
            "seconds": s.seconds,
            "ssr_auto": s.ssr_auto,
            "held_out_confirmed": confirmed,
            "held_out_confirmed_rate": s.held_out_confirmed_rate,
            "confirmed_generator_failures": real,
            "generator_failure_rate": s.generator_failure_rate,
            "non_gaussian_rate": s.non_gaussian_rate,
            "restarts": s.restarts,
        }));
    }
    let summary = json!({
        "objective": search_config(args, names, args.mode)?.objective,
        "class": args.class,
        "budget_per_restart": args.budget,
        "restarts": args.restarts,
        "seed": args.seed,
        "rows": rows,
        "base_rates": rates,
    });
    std::fs::create_dir_all(&args.output).with_context(|| format!("cannot create {}", args.output.display()))?;
    crate::io::atomic::write_bytes(
        &args.output.join("compare.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    if args.json {
        return print_json(&summary);
    }
    println!(
        "| mode | generator calls | seconds | SSR(A) | held-out confirmed | of which drawn wrong | NGR |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for r in &rows {
        println!(
            "| {} | {} | {:.1} | {:.1} % | {} / {} | {} | {} |",
            r["mode"].as_str().unwrap_or(""),
            r["generator_calls"],
            r["seconds"].as_f64().unwrap_or(0.0),
            r["ssr_auto"].as_f64().unwrap_or(0.0) * 100.0,
            r["held_out_confirmed"],
            r["restarts"],
            r["confirmed_generator_failures"]
                .as_u64()
                .map_or("–".into(), |n| n.to_string()),
            pct(r["non_gaussian_rate"].as_f64()),
        );
    }
    Ok(())
}
