//! A WildFusion-family model folder with random weights (the tiny demo config), for tests that
//! need the Views tab or `wildfusion-render --model` to encode.

use latent_workbench::core::manifest::Entry;
use latent_workbench::core::train::SeededParams;
use latent_workbench::methods::wildfusion::demo_train::tiny_config;
use latent_workbench::methods::wildfusion::{Autoencoder, encode};
use std::path::Path;

// The including test crate declares `model_folder` (common/model_folder.rs) beside this module.
use super::model_folder;

pub fn random_wildfusion_model(dir: &Path, name: &str, seed: u64) -> Entry {
    let cfg = tiny_config();
    let params = SeededParams::new(seed);
    Autoencoder::load(
        params.var_builder(candle_core::DType::F32, &candle_core::Device::Cpu),
        &cfg,
    )
    .unwrap();
    let tensors: std::collections::HashMap<String, candle_core::Tensor> = params.tensors().into_iter().collect();
    let config = toml::Table::try_from(&cfg).unwrap();
    model_folder::write(dir, name, encode::FAMILY, config, toml::Table::new(), &tensors)
}
