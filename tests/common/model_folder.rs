//! Writes a model folder as `latent-workbench train` would (weights and model.toml) and returns
//! its entry: the shared tail of the random-model helpers beside this file.

use latent_workbench::core::manifest::{Entry, Manifest, Origin};
use std::collections::HashMap;
use std::path::Path;

pub fn write(
    dir: &Path,
    name: &str,
    family: &str,
    config: toml::Table,
    preprocessing: toml::Table,
    tensors: &HashMap<String, candle_core::Tensor>,
) -> Entry {
    candle_core::safetensors::save(tensors, dir.join("model.safetensors")).unwrap();
    let manifest = Manifest {
        name: name.into(),
        family: family.into(),
        description: "random weights for tests".into(),
        weights: "model.safetensors".into(),
        sha256: String::new(),
        licence: String::new(),
        citation: String::new(),
        demo: true,
        config,
        preprocessing,
        latent: toml::Table::new(),
    };
    std::fs::write(dir.join("model.toml"), toml::to_string_pretty(&manifest).unwrap()).unwrap();
    Entry {
        manifest,
        dir: dir.to_path_buf(),
        origin: Origin::User,
    }
}
