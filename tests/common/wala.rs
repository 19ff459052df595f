//! A WaLa-family model folder with random weights of the demo architecture, in the official
//! checkpoint layout (`autoencoder.` keys) with its model.toml: what the Shapes tab and
//! `wala-latent` load, without depending on what `models/` holds.

use latent_workbench::core::manifest::Entry;
use latent_workbench::core::train::SeededParams;
use latent_workbench::methods::wala::demo_train::{DEMO_GRID, demo_config};
use latent_workbench::methods::wala::vqvae::{CHECKPOINT_PREFIX, VqVae};
use std::path::Path;

// The including test crate declares `model_folder` (common/model_folder.rs) beside this module.
use super::model_folder;

pub fn random_wala_model(dir: &Path, name: &str, seed: u64) -> Entry {
    let cfg = demo_config();
    let params = SeededParams::new(seed);
    VqVae::load(
        params.var_builder(candle_core::DType::F32, &candle_core::Device::Cpu),
        &cfg,
    )
    .unwrap();
    let tensors: std::collections::HashMap<String, candle_core::Tensor> = params
        .tensors()
        .into_iter()
        .map(|(k, t)| (format!("{CHECKPOINT_PREFIX}{k}"), t))
        .collect();
    let mut preprocessing = toml::Table::new();
    preprocessing.insert("grid".into(), (DEMO_GRID as i64).into());
    preprocessing.insert("truncation".into(), 0.1.into());
    let config = toml::Table::try_from(&cfg).unwrap();
    model_folder::write(dir, name, "wala", config, preprocessing, &tensors)
}
