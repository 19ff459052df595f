//! `models [--json]` lists the registered models; `models add FILE --family F` registers a
//! user's checkpoint; `devices` says where inference runs.

use super::print_json;
use crate::core::manifest::{self, Entry};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;

fn entry_json(e: &Entry) -> serde_json::Value {
    let w = e.weights_path();
    json!({
        "name": e.manifest.name, "family": e.manifest.family, "origin": e.origin,
        "demo": e.manifest.demo, "dir": e.dir, "weights": w, "weights_present": w.is_file(),
        "sha256": e.manifest.sha256, "licence": e.manifest.licence, "description": e.manifest.description,
    })
}

pub fn list(as_json: bool) -> anyhow::Result<()> {
    let dirs = manifest::search_dirs();
    let (entries, errors) = manifest::scan(&dirs);
    if as_json {
        return print_json(&json!({
            "models": entries.iter().map(entry_json).collect::<Vec<_>>(),
            "errors": errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "searched": dirs.iter().map(|(d, _)| d).collect::<Vec<_>>(),
        }));
    }
    if entries.is_empty() {
        println!("No models registered yet.");
    }
    for e in &entries {
        let present = if e.weights_path().is_file() {
            ""
        } else {
            "  (weights missing)"
        };
        println!(
            "{:<24} {:<15} {:<8} {}{present}",
            e.manifest.name,
            e.manifest.family,
            format!("{:?}", e.origin).to_lowercase(),
            e.dir.display()
        );
    }
    for err in &errors {
        eprintln!("warning: {err}");
    }
    println!(
        "Searched: {}",
        dirs.iter()
            .map(|(d, _)| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

pub fn add(file: &Path, family: &str, name: Option<&str>, as_json: bool) -> anyhow::Result<()> {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let name = name.map_or(stem, str::to_string);
    let entry = manifest::add_user_model(file, family, &name, BTreeMap::new(), &manifest::user_models_dir())?;
    if as_json {
        print_json(&entry_json(&entry))
    } else {
        println!(
            "registered {} ({}) at {}",
            entry.manifest.name,
            entry.manifest.family,
            entry.dir.display()
        );
        Ok(())
    }
}

pub fn devices(as_json: bool) -> anyhow::Result<()> {
    let chosen = crate::core::device::device();
    let backends = crate::core::device::backends();
    if as_json {
        return print_json(&json!({
            "selected": chosen.name,
            "backends": backends.iter().map(|(n, built, avail)| json!({"name": n, "compiled": built, "available": avail})).collect::<Vec<_>>(),
        }));
    }
    println!("Inference runs on: {}", chosen.name);
    for (n, built, avail) in backends {
        let state = match (built, avail) {
            (true, true) => "available",
            (true, false) => "compiled in, no device found",
            (false, _) => "not compiled in (build with --features cuda / metal)",
        };
        println!("  {n:<6} {state}");
    }
    Ok(())
}
