//! A search's run folder, described as files (`core::output`): `report.json` (tool, models with
//! sha256, settings, SSR/NGR summary, base rates, every candidate with every classifier's scores
//! and its human verdict, loss curves), `gallery.png` (automatic successes, one row each),
//! `candidates/NNN.png` and `latents.safetensors`. The CLI and the panel write the same folder.

use super::error::{Result, SageError};
use super::gallery::contact_sheet;
use super::search::{Candidate, Objective, SearchResult};
use crate::core::image::{Channels, Image, ImageData};
use crate::core::output::OutputFile;
use crate::core::train::encode_tensors;
use candle_core::{Device, Tensor};
use serde_json::{Value, json};

pub const REPORT_FILE: &str = "report.json";
pub const GALLERY_FILE: &str = "gallery.png";
pub const LATENTS_FILE: &str = "latents.safetensors";
/// A paused search's state (resumable by the CLI's `--resume` and the panel's Open run).
pub const STATE_FILE: &str = "state.json";

/// What the report says about the setup besides the result itself.
#[derive(Clone, Debug, Default)]
pub struct RunInfo {
    /// Generator, ensemble and held-out judge: names, sha256, weights.
    pub models: Value,
    pub class_names: Vec<String>,
    /// Per classifier, the share of random draws showing the conditioned class.
    pub base_rates: Value,
}

fn rgb_image(w: usize, h: usize, px: Vec<u8>) -> Result<Image> {
    Image::new(w, h, Channels::Rgb, ImageData::U8(px)).map_err(|e| SageError::Invalid(format!("gallery image: {e:?}")))
}

/// Relative path of a candidate's picture.
pub fn candidate_image_path(c: &Candidate) -> String {
    format!("candidates/{:03}.png", c.restart)
}

/// The report as JSON (human verdicts included, so re-writing it after judging updates SSR(H)).
pub fn report_json(result: &SearchResult, info: &RunInfo) -> Value {
    let candidates: Vec<Value> = result
        .candidates
        .iter()
        .map(|c| {
            let mut v = serde_json::to_value(c).unwrap_or_default();
            v["image"] = json!(candidate_image_path(c));
            v
        })
        .collect();
    let any_found = result.candidates.iter().any(|c| c.auto_success);
    json!({
        "tool": format!("latent-workbench {}", env!("CARGO_PKG_VERSION")),
        "method": "SAGE-style adversarial failure search (Liu et al., ICLR 2024), reimplemented from the paper's description",
        "note": "scores are surrogate classifier outputs; only human-confirmed items are failures",
        "models": info.models,
        "class_names": info.class_names,
        "config": result.config,
        "image_shape": result.image_shape,
        "summary": result.summary(),
        "base_rates": info.base_rates,
        "gallery": any_found.then_some(GALLERY_FILE),
        "latents": LATENTS_FILE,
        "candidates": candidates,
        "history": result.history,
    })
}

/// Every file of the run folder.
pub fn run_files(result: &SearchResult, info: &RunInfo) -> Result<Vec<OutputFile>> {
    let [_, h, w] = result.image_shape;
    let mut files = Vec::new();
    for c in &result.candidates {
        if let Some((cw, ch, px)) = contact_sheet(&[c], h, w) {
            files.push(OutputFile::image(candidate_image_path(c), rgb_image(cw, ch, px)?));
        }
    }
    let found: Vec<&Candidate> = result.candidates.iter().filter(|c| c.auto_success).collect();
    if let Some((gw, gh, px)) = contact_sheet(&found, h, w) {
        files.push(OutputFile::image(GALLERY_FILE, rgb_image(gw, gh, px)?));
    }
    let m = result.candidates.first().map_or(0, |c| c.variable.len());
    let vars: Vec<f32> = result
        .candidates
        .iter()
        .flat_map(|c| c.variable.iter().copied())
        .collect();
    let name = match result.config.objective {
        Objective::SwitchCondition { .. } => "condition_embeddings",
        _ => "latents",
    };
    let tensor = Tensor::from_vec(vars, (result.candidates.len(), m), &Device::Cpu)
        .map_err(SageError::compute("latents file"))?;
    let bytes = encode_tensors(&[(name.to_string(), tensor)], &Default::default())?;
    files.push(OutputFile::bytes(LATENTS_FILE, bytes));
    let report = serde_json::to_string_pretty(&report_json(result, info))
        .map_err(|e| SageError::Invalid(format!("report: {e}")))?;
    files.push(OutputFile::bytes(REPORT_FILE, report.into_bytes()));
    Ok(files)
}

/// A search result and its setup read back from a report (to judge it again, or to show it in the
/// panel). Errors say which part is missing or malformed.
pub fn read_report(report: &Value) -> Result<(SearchResult, RunInfo)> {
    fn field<T: serde::de::DeserializeOwned>(report: &Value, key: &str) -> Result<T> {
        let v = report
            .get(key)
            .ok_or_else(|| SageError::Invalid(format!("not a search report: no `{key}`")))?;
        serde_json::from_value(v.clone()).map_err(|e| SageError::Invalid(format!("search report `{key}`: {e}")))
    }
    let summary: super::search::Summary = field(report, "summary")?;
    let result = SearchResult {
        config: field(report, "config")?,
        candidates: field(report, "candidates")?,
        history: field(report, "history")?,
        generator_calls: summary.generator_calls,
        seconds: summary.seconds,
        image_shape: field(report, "image_shape")?,
    };
    let info = RunInfo {
        models: report.get("models").cloned().unwrap_or_default(),
        class_names: field(report, "class_names")?,
        base_rates: report.get("base_rates").cloned().unwrap_or_default(),
    };
    Ok((result, info))
}

/// Records a person's verdicts in a report (`true`: a real generator failure, `false`: not, e.g.
/// a classifier error) by restart index, and recomputes SSR(H) and the number judged. Other
/// verdicts are kept; an index with no candidate is an error.
pub fn apply_verdicts(report: &mut Value, verdicts: &[(usize, bool)]) -> Result<()> {
    let candidates = report["candidates"]
        .as_array_mut()
        .ok_or_else(|| SageError::Invalid("not a search report: no `candidates` list".into()))?;
    for &(restart, verdict) in verdicts {
        let c = candidates
            .iter_mut()
            .find(|c| c["restart"].as_u64() == Some(restart as u64))
            .ok_or_else(|| SageError::Invalid(format!("no candidate of restart {restart} in the report")))?;
        c["human"] = json!(verdict);
    }
    let judged: Vec<bool> = candidates.iter().filter_map(|c| c["human"].as_bool()).collect();
    let accepted = judged.iter().filter(|v| **v).count();
    report["summary"]["human_judged"] = json!(judged.len());
    report["summary"]["ssr_human"] = if judged.is_empty() {
        Value::Null
    } else {
        json!(accepted as f64 / judged.len() as f64)
    };
    Ok(())
}
