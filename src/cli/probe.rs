//! `probe`: linear probes on LDAE semantic codes of a labelled set.
//!
//! ```text
//! latent-workbench probe --model DIR_OR_NAME --csv labelled.csv --label diagnosis [--label age]
//!     [--folds 5] [--l2 auto|λ] [--positive AD --negative CN] [--group subject] [-o probe.safetensors] [--code-use] [--json]
//! ```
//!
//! The CSV has a header, a path column (`path`, `file` or `--path-column`; paths relative to the CSV)
//! and label columns. Every scan is preprocessed onto the model grid (min-max only when already on it)
//! and encoded to y_sem once. Per label: numeric columns with values other than 0/1 give a ridge probe
//! (MAE, RMSE), others a logistic one (ROC-AUC, accuracy). For the cohort's `diagnosis` (CN/MCI/AD) the
//! default is **AD (positive) against CN, MCI rows dropped**; `--positive`/`--negative` choose other
//! classes (without `--negative`, every other value is negative). Scans sharing a `subject` value stay
//! in one fold (`--group`). The probes are saved with their standardisation (see
//! `methods::ldae::probe`). `--code-use` also measures whether the decoder reads the code at all
//! (`methods::ldae::code_use`), on a few of the scans: a probe direction only edits a decoded scan
//! if it does.

use super::{num, print_json};
use crate::core::jobs::JobContext;
use crate::methods::ldae::code_use::{CodeUse, code_use};
use crate::methods::ldae::model::{LdaeModel, find_model_dir, volume_to_tensor};
use crate::methods::ldae::probe::{
    self, CvMetrics, CvOptions, CvReport, L2, Labels, LinearProbe, ProbeKind, probes_to_safetensors,
};
use anyhow::{Context, bail};
use candle_core::Tensor;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct ProbeArgs {
    /// Model folder (with model.toml) or registered model name.
    #[arg(long)]
    pub model: String,
    /// Labelled set: a CSV with a header, a path column and label columns.
    #[arg(long)]
    pub csv: PathBuf,
    /// Label column(s) to fit a probe for (repeatable).
    #[arg(long = "label", required = true)]
    pub labels: Vec<String>,
    /// Column holding the scan paths (default: `path`, else `file`).
    #[arg(long)]
    pub path_column: Option<String>,
    /// Column whose equal values stay in one fold (default: `subject` when present).
    #[arg(long)]
    pub group: Option<String>,
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// L2 penalty λ, or `auto` (chosen by inner cross-validation from 0.01 to 1e5).
    #[arg(long, default_value = "auto")]
    pub l2: String,
    /// Positive class of a categorical label.
    #[arg(long)]
    pub positive: Option<String>,
    /// Negative class (rows of other classes are dropped); default: every class but the positive.
    #[arg(long)]
    pub negative: Option<String>,
    /// Where to save the probe(s) (safetensors).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Also check whether the decoder reads the code: PDAE's ε error of a few of the scans with their
    /// own code, another scan's, and no shift (see `methods::ldae::code_use`).
    #[arg(long)]
    pub code_use: bool,
    #[arg(long)]
    pub json: bool,
}

/// Scans (spread over the CSV's order) that `--code-use` decodes, each at [`code_use_timesteps`].
const CODE_USE_SCANS: usize = 8;

/// Low, middle and high noise: a tenth, four tenths and seven tenths of the training schedule.
fn code_use_timesteps(timesteps: usize) -> Vec<usize> {
    [1, 4, 7].iter().map(|k| k * timesteps / 10).collect()
}

/// A parsed CSV: header and rows of trimmed fields (quotes around a field removed).
pub(crate) struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Self> {
        let split = |line: &str| -> Vec<String> {
            line.split(',')
                .map(|f| f.trim().trim_matches('"').to_string())
                .collect()
        };
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header = split(
            lines
                .next()
                .with_context(|| format!("{}: the CSV is empty", path.display()))?,
        );
        let mut rows = Vec::new();
        for (i, line) in lines.enumerate() {
            let row = split(line);
            if row.len() != header.len() {
                bail!(
                    "{}: row {} has {} fields, the header {}",
                    path.display(),
                    i + 2,
                    row.len(),
                    header.len()
                );
            }
            rows.push(row);
        }
        Ok(Self { header, rows })
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
}

/// Targets of one label, with the rows they come from.
#[derive(Debug)]
pub(crate) struct LabelRows {
    pub rows: Vec<usize>,
    pub labels: Labels,
    /// Values dropped (e.g. MCI), and how many rows.
    pub dropped: BTreeMap<String, usize>,
}

/// Decides the probe kind of a column and builds its targets (see the module docs).
pub(crate) fn label_rows(
    table: &Table,
    column: &str,
    positive: Option<&str>,
    negative: Option<&str>,
) -> anyhow::Result<LabelRows> {
    let c = table
        .column(column)
        .with_context(|| format!("no column {column:?} (columns: {})", table.header.join(", ")))?;
    let values: Vec<&str> = table.rows.iter().map(|r| r[c].as_str()).collect();
    let present: Vec<usize> = (0..values.len()).filter(|&i| !values[i].is_empty()).collect();
    let numbers: Option<Vec<f64>> = present.iter().map(|&i| values[i].parse::<f64>().ok()).collect();
    let mut dropped = BTreeMap::new();
    // `--positive` applies to the labels that have such a value: `--label diagnosis --positive AD
    // --label age` keeps age continuous.
    let names_a_value = |p: &str| present.iter().any(|&i| values[i] == p);
    if let Some(nums) = &numbers
        && positive.is_none_or(|p| !names_a_value(p))
        && nums.iter().any(|&v| v != 0.0 && v != 1.0)
    {
        return Ok(LabelRows {
            rows: present.clone(),
            labels: Labels::Continuous(nums.clone()),
            dropped,
        });
    }
    let mut classes: Vec<&str> = present.iter().map(|&i| values[i]).collect();
    classes.sort_unstable();
    classes.dedup();
    let (pos, neg): (String, Option<String>) = match (positive, negative) {
        (Some(p), n) => (p.to_string(), n.map(str::to_string)),
        (None, n) if classes.contains(&"AD") && classes.contains(&"CN") => {
            ("AD".into(), Some(n.unwrap_or("CN").to_string()))
        }
        (None, n) if classes.len() == 2 => (classes[1].to_string(), Some(n.unwrap_or(classes[0]).to_string())),
        (None, _) => bail!(
            "label {column:?} has classes {} — pick the positive one with --positive",
            classes.join(", ")
        ),
    };
    if !classes.contains(&pos.as_str()) {
        bail!(
            "label {column:?} has no class {pos:?} (classes: {})",
            classes.join(", ")
        );
    }
    let mut rows = Vec::new();
    let mut y = Vec::new();
    for &i in &present {
        let v = values[i];
        let is_pos = v == pos;
        let keep = is_pos || neg.as_deref().is_none_or(|n| n == v);
        if keep {
            rows.push(i);
            y.push(is_pos);
        } else {
            *dropped.entry(v.to_string()).or_insert(0) += 1;
        }
    }
    let negative_name = neg.unwrap_or_else(|| format!("not {pos}"));
    Ok(LabelRows {
        rows,
        labels: Labels::Binary {
            values: y,
            positive: pos,
            negative: negative_name,
        },
        dropped,
    })
}

pub(crate) fn parse_l2(text: &str) -> anyhow::Result<L2> {
    if text.eq_ignore_ascii_case("auto") {
        return Ok(L2::Auto);
    }
    let v: f64 = text
        .parse()
        .ok()
        .filter(|v: &f64| *v > 0.0 && v.is_finite())
        .with_context(|| format!("--l2 {text}: expected `auto` or a positive number"))?;
    Ok(L2::Fixed(v))
}

/// Reads one scan and preprocesses it onto the model grid, as the networks take it.
fn grid_tensor(model: &LdaeModel, path: &Path) -> anyhow::Result<Tensor> {
    let volume = model
        .onto_grid(crate::io::nifti::read(path)?)
        .with_context(|| format!("preprocessing {}", path.display()))?;
    Ok(volume_to_tensor(&volume, model.device())?)
}

/// Reads, preprocesses and encodes one scan to y_sem.
pub(crate) fn semantic_code(model: &LdaeModel, path: &Path) -> anyhow::Result<Vec<f32>> {
    let y = model.semantic_code(&grid_tensor(model, path)?)?;
    Ok(y.flatten_all()?.to_vec1::<f32>()?)
}

/// `--code-use`: [`code_use`] on up to [`CODE_USE_SCANS`] of `paths`, evenly spread.
fn measure_code_use(model: &std::sync::Arc<LdaeModel>, paths: &[PathBuf]) -> anyhow::Result<CodeUse> {
    let n = paths.len().min(CODE_USE_SCANS);
    let picks: Vec<PathBuf> = (0..n).map(|k| paths[k * paths.len() / n.max(1)].clone()).collect();
    let model = model.clone();
    super::progress::run("probe", move |ctx: &JobContext| {
        let failed = |e: String| crate::core::jobs::JobError::Failed(e);
        let mut encoded = Vec::with_capacity(picks.len());
        for p in &picks {
            ctx.check()?;
            let x = grid_tensor(&model, p).map_err(|e| failed(format!("{}: {e:#}", p.display())))?;
            encoded.push(
                model
                    .encode_tensor(&x)
                    .map_err(|e| failed(format!("{}: {e}", p.display())))?,
            );
        }
        let ts = code_use_timesteps(model.config().timesteps);
        let mut tick = |i: usize, n: usize| {
            ctx.set(
                i as f32 / n.max(1) as f32,
                format!("decoding with swapped codes {i}/{n}"),
            );
            ctx.check().map_err(|_| crate::core::diffusion::Cancelled)
        };
        // `From<LdaeError>`: a cancel stays a cancel.
        Ok(code_use(&model, &encoded, &ts, 0, &mut tick)?)
    })
}

fn metrics_json(report: &CvReport) -> serde_json::Value {
    let mut v = match &report.metrics {
        CvMetrics::Binary {
            roc_auc,
            accuracy,
            fold_auc_mean,
            fold_auc_std,
            positives,
            negatives,
        } => json!({
            "roc_auc": num(*roc_auc), "accuracy": num(*accuracy),
            "fold_auc_mean": num(*fold_auc_mean), "fold_auc_std": num(*fold_auc_std),
            "positives": positives, "negatives": negatives,
        }),
        CvMetrics::Continuous { mae, rmse, r2 } => json!({"mae": num(*mae), "rmse": num(*rmse), "r2": num(*r2)}),
    };
    v["folds"] = json!(report.folds);
    v["samples"] = json!(report.samples);
    v["groups"] = json!(report.groups);
    v["fold_l2"] = json!(report.fold_l2);
    v
}

pub fn run(args: &ProbeArgs) -> anyhow::Result<()> {
    let l2 = parse_l2(&args.l2)?;
    let text = std::fs::read_to_string(&args.csv).with_context(|| format!("cannot read {}", args.csv.display()))?;
    let table = Table::parse(&text, &args.csv)?;
    let path_col = match &args.path_column {
        Some(c) => table
            .column(c)
            .with_context(|| format!("no column {c:?} in {}", args.csv.display()))?,
        None => table.column("path").or_else(|| table.column("file")).with_context(|| {
            format!(
                "{}: no `path` or `file` column; name it with --path-column",
                args.csv.display()
            )
        })?,
    };
    let group_col = match &args.group {
        Some(g) => Some(
            table
                .column(g)
                .with_context(|| format!("no column {g:?} in {}", args.csv.display()))?,
        ),
        None => table.column("subject"),
    };
    let base = args.csv.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut per_label = Vec::new();
    for name in &args.labels {
        let rows = label_rows(&table, name, args.positive.as_deref(), args.negative.as_deref())
            .with_context(|| args.csv.display().to_string())?;
        per_label.push((name.clone(), rows));
    }
    // Only the rows some label uses are encoded, each once.
    let mut needed: Vec<usize> = per_label.iter().flat_map(|(_, r)| r.rows.iter().copied()).collect();
    needed.sort_unstable();
    needed.dedup();
    let paths: Vec<PathBuf> = needed.iter().map(|&i| base.join(&table.rows[i][path_col])).collect();

    let dir = find_model_dir(&args.model)?;
    let device = crate::core::device::device();
    let model = std::sync::Arc::new(
        LdaeModel::from_dir(&dir, &device.device).with_context(|| format!("loading {}", dir.display()))?,
    );
    let job_model = model.clone();
    let job_paths = paths.clone();
    let codes: Vec<Vec<f32>> = super::progress::run("probe", move |ctx: &JobContext| {
        let mut out = Vec::with_capacity(job_paths.len());
        for (k, p) in job_paths.iter().enumerate() {
            ctx.check()?;
            ctx.set(
                k as f32 / job_paths.len().max(1) as f32,
                format!("encoding {}", p.display()),
            );
            let code = semantic_code(&job_model, p)
                .map_err(|e| crate::core::jobs::JobError::Failed(format!("{}: {e:#}", p.display())))?;
            out.push(code);
        }
        Ok(out)
    })?;
    let code_of: BTreeMap<usize, &Vec<f32>> = needed.iter().copied().zip(codes.iter()).collect();
    let code_use_report = if args.code_use {
        Some(measure_code_use(&model, &paths)?)
    } else {
        None
    };

    let mut probes: Vec<LinearProbe> = Vec::new();
    let mut reports = Vec::new();
    for (name, rows) in &per_label {
        let x: Vec<Vec<f32>> = rows.rows.iter().map(|i| code_of[i].clone()).collect();
        let groups: Option<Vec<String>> =
            group_col.map(|g| rows.rows.iter().map(|&i| table.rows[i][g].clone()).collect());
        let opts = CvOptions {
            folds: args.folds,
            seed: args.seed,
            l2,
        };
        let report = probe::cross_validate(&x, &rows.labels, groups.as_deref(), &opts)
            .with_context(|| format!("label {name}"))?;
        let fitted =
            probe::fit_probe(name, &x, &rows.labels, l2, args.seed).with_context(|| format!("label {name}"))?;
        reports.push((name.clone(), rows, report, fitted.clone()));
        probes.push(fitted);
    }

    let label_json: Vec<serde_json::Value> = reports
        .iter()
        .map(|(name, rows, report, fitted)| {
            let (positive, negative) = match &fitted.kind {
                ProbeKind::Binary { positive, negative } => (Some(positive.clone()), Some(negative.clone())),
                ProbeKind::Continuous => (None, None),
            };
            json!({
                "label": name,
                "kind": if positive.is_some() { "binary" } else { "continuous" },
                "positive": positive,
                "negative": negative,
                "dropped": rows.dropped,
                "cv": metrics_json(report),
                "l2": fitted.l2,
                "weight_norm": num(fitted.weight_norm()),
            })
        })
        .collect();
    if let Some(out) = &args.output {
        let mut extra = BTreeMap::new();
        extra.insert("latent_workbench.model".to_string(), model.id().to_string());
        extra.insert("latent_workbench.csv".to_string(), args.csv.display().to_string());
        extra.insert("latent_workbench.cv".to_string(), serde_json::to_string(&label_json)?);
        let bytes = probes_to_safetensors(&probes, &extra)?;
        crate::io::atomic::write_bytes(out, &bytes)?;
    }
    if args.json {
        print_json(&json!({
            "model": model.id(),
            "csv": args.csv.display().to_string(),
            "scans": paths.len(),
            "y_sem_dim": probes.first().map(LinearProbe::dim),
            "probes": label_json,
            "output": args.output.as_ref().map(|p| p.display().to_string()),
            "code_use": code_use_report.as_ref().map(|r| {
                let mut v = json!(r);
                v["other_code_penalty"] = num(r.other_code_penalty());
                v
            }),
        }))?;
    } else {
        println!(
            "{} scans encoded with {} ({}-d semantic codes)",
            paths.len(),
            model.id(),
            probes.first().map_or(0, LinearProbe::dim)
        );
        for (name, rows, report, fitted) in &reports {
            let l2_text = fitted.l2.map_or("-".into(), |l| format!("{l}"));
            match (&report.metrics, &fitted.kind) {
                (
                    CvMetrics::Binary {
                        roc_auc,
                        accuracy,
                        positives,
                        negatives,
                        ..
                    },
                    ProbeKind::Binary { positive, negative },
                ) => {
                    let dropped: Vec<String> = rows.dropped.iter().map(|(k, n)| format!("{n} {k}")).collect();
                    println!(
                        "{name}: {positive} ({positives}) vs {negative} ({negatives}){}, {}-fold CV over {} groups: \
                         ROC-AUC {roc_auc:.3}, accuracy {:.1} % (λ {l2_text})",
                        if dropped.is_empty() {
                            String::new()
                        } else {
                            format!(", dropped {}", dropped.join(", "))
                        },
                        report.folds,
                        report.groups,
                        accuracy * 100.0
                    );
                }
                (CvMetrics::Continuous { mae, rmse, r2 }, _) => println!(
                    "{name}: ridge, {}-fold CV over {} groups: MAE {mae:.3}, RMSE {rmse:.3}, R² {r2:.3} (λ {l2_text})",
                    report.folds, report.groups
                ),
                _ => {}
            }
        }
        if let Some(r) = &code_use_report {
            let list = |v: &[f64]| v.iter().map(|x| format!("{x:.5}")).collect::<Vec<_>>().join(" / ");
            let ts: Vec<String> = r.timesteps.iter().map(usize::to_string).collect();
            println!(
                "decoder's use of the code (PDAE ε-MSE of {} scans at t = {}): own code {}, another scan's code {} \
                 ({:+.2} %), no shift {}; no network (the other scans' mean latent) {}",
                r.scans,
                ts.join(" / "),
                list(&r.own_code),
                list(&r.other_code),
                100.0 * r.other_code_penalty(),
                list(&r.no_shift),
                list(&r.mean_latent)
            );
        }
        if let Some(out) = &args.output {
            println!("saved {} probe(s) to {}", probes.len(), out.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cohort_diagnosis_is_ad_against_cn_without_mci() {
        let text = "subject,month,age,diagnosis,file\nsub-000,0,70.5,CN,a.nii.gz\nsub-001,0,71,MCI,b.nii.gz\n\
                    sub-002,0,80,AD,c.nii.gz\nsub-002,6,80.5,AD,d.nii.gz\n";
        let t = Table::parse(text, Path::new("c.csv")).unwrap();
        let d = label_rows(&t, "diagnosis", None, None).unwrap();
        assert_eq!(d.rows, vec![0, 2, 3]);
        assert_eq!(d.dropped.get("MCI"), Some(&1));
        let Labels::Binary {
            values,
            positive,
            negative,
        } = d.labels
        else {
            panic!()
        };
        assert_eq!(
            (values, positive.as_str(), negative.as_str()),
            (vec![false, true, true], "AD", "CN")
        );
        let age = label_rows(&t, "age", None, None).unwrap();
        assert!(matches!(age.labels, Labels::Continuous(ref v) if v.len() == 4));
        // A class name given for another label leaves a numeric one continuous.
        let age = label_rows(&t, "age", Some("AD"), Some("CN")).unwrap();
        assert!(matches!(age.labels, Labels::Continuous(ref v) if v.len() == 4));
        let mci = label_rows(&t, "diagnosis", Some("MCI"), None).unwrap();
        assert_eq!(mci.rows.len(), 4);
        assert!(label_rows(&t, "nope", None, None).is_err());
        assert!(label_rows(&t, "diagnosis", Some("XX"), None).is_err());
        assert!(Table::parse("a,b\n1\n", Path::new("x.csv")).is_err());
        assert!(matches!(parse_l2("auto").unwrap(), L2::Auto));
        assert!(parse_l2("-1").is_err());
    }
}
