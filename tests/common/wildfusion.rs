//! A WildFusion-family model folder with random weights (the tiny demo config), for tests that
//! need the Views tab or `wildfusion-render --model` to encode.

use latent_workbench::core::manifest::{Entry, Manifest, Origin};
use latent_workbench::core::train::SeededParams;
use latent_workbench::methods::wildfusion::demo_train::tiny_config;
use latent_workbench::methods::wildfusion::{Autoencoder, encode};
use std::path::Path;

pub fn random_wildfusion_model(dir: &Path, name: &str, seed: u64) -> Entry {
    let cfg = tiny_config();
    let params = SeededParams::new(seed);
    Autoencoder::load(
        params.var_builder(candle_core::DType::F32, &candle_core::Device::Cpu),
        &cfg,
    )
    .unwrap();
    let tensors: std::collections::HashMap<String, candle_core::Tensor> = params.tensors().into_iter().collect();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    let manifest = Manifest {
        name: name.into(),
        family: encode::FAMILY.into(),
        description: "random weights for tests".into(),
        weights: "model.safetensors".into(),
        sha256: String::new(),
        licence: String::new(),
        citation: String::new(),
        demo: true,
        config: toml::Table::try_from(&cfg).unwrap(),
        preprocessing: toml::Table::new(),
        latent: toml::Table::new(),
    };
    std::fs::write(dir.join("model.toml"), toml::to_string_pretty(&manifest).unwrap()).unwrap();
    Entry {
        manifest,
        dir: dir.to_path_buf(),
        origin: Origin::User,
    }
}
