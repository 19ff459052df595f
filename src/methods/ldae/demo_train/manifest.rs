//! The demo model's `model.toml` (the folder format is in `methods::ldae::model`'s docs): `[config]`
//! is `LdaeConfig` (the three networks under upstream's argument names, the diffusion schedule, the
//! model grid and the x̂₀ clamp bound), `[preprocessing]` the grid and scaling, `[latent]` the latent
//! shapes and which cohort subjects the model was trained on and which were held out.

use super::{CohortSplit, DemoArchitecture, DemoLdae};
use crate::core::manifest::Manifest;
use crate::methods::ldae::config::LDAE_SCALE_FACTOR;
use std::path::PathBuf;

/// The model grid a demo model was trained on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid {
    pub spacing_mm: f32,
    pub shape: [usize; 3],
}

fn table<T: serde::Serialize>(value: &T) -> Result<toml::Value, String> {
    toml::Value::try_from(value).map_err(|e| format!("cannot express the config as TOML: {e}"))
}

fn ints(v: &[usize]) -> toml::Value {
    toml::Value::Array(v.iter().map(|&n| toml::Value::Integer(n as i64)).collect())
}

fn strings(v: Vec<String>) -> toml::Value {
    toml::Value::Array(v.into_iter().map(toml::Value::String).collect())
}

/// The manifest of a trained demo model (`sha256` is left for the writer to fill in).
pub fn manifest(
    name: &str,
    arch: &DemoArchitecture,
    grid: Grid,
    split: &CohortSplit,
    model: &DemoLdae,
    description: String,
) -> Result<Manifest, String> {
    let mut config = toml::Table::new();
    config.insert("aekl".into(), table(&arch.aekl)?);
    config.insert("encoder".into(), table(&arch.encoder)?);
    config.insert("unet".into(), table(&arch.unet)?);
    config.insert("timesteps".into(), toml::Value::Integer(arch.timesteps as i64));
    config.insert("betas".into(), arch.betas.clone().into());
    config.insert("spacing_mm".into(), toml::Value::Float(grid.spacing_mm as f64));
    config.insert("shape".into(), ints(&grid.shape));
    config.insert("x0_clip".into(), toml::Value::Float(model.x0_clip as f64));

    let mut preprocessing = toml::Table::new();
    preprocessing.insert("spacing_mm".into(), toml::Value::Float(grid.spacing_mm as f64));
    preprocessing.insert("shape".into(), ints(&grid.shape));
    preprocessing.insert("minmax".into(), true.into());

    let mut latent = toml::Table::new();
    latent.insert("y_sem_dim".into(), toml::Value::Integer(arch.encoder.emb_chans as i64));
    latent.insert("z_shape".into(), ints(&model.latent_shape));
    latent.insert("scale_factor".into(), toml::Value::Float(LDAE_SCALE_FACTOR));
    latent.insert(
        "tensor_layout".into(),
        "networks take (B, 1, X, Y, Z) (NIfTI voxel order, Z fastest); the semantic encoder takes the \
         axial permutation (B, 1, Z, X, Y)"
            .into(),
    );
    latent.insert(
        "normalisation".into(),
        "per-channel latent shift and scale folded into quant_conv_mu/quant_conv_log_sigma and undone in \
         post_quant_conv; no extra step at inference"
            .into(),
    );
    latent.insert("cohort_seed".into(), toml::Value::Integer(split.seed as i64));
    latent.insert(
        "months".into(),
        ints(&split.months.iter().map(|&m| m as usize).collect::<Vec<_>>()),
    );
    latent.insert("train_subjects".into(), strings(CohortSplit::subject_ids(&split.train)));
    latent.insert(
        "heldout_subjects".into(),
        strings(CohortSplit::subject_ids(&split.heldout)),
    );

    Ok(Manifest {
        name: name.to_string(),
        family: "ldae".into(),
        description,
        weights: PathBuf::from("model.safetensors"),
        sha256: String::new(),
        licence: "MIT OR Apache-2.0 (trained by this project on its own synthetic data; the architecture follows \
                  LDAE, whose code is licensed for non-commercial research only)"
            .into(),
        citation: "Lozupone et al., LDAE (latent diffusion autoencoders for 3D brain MRI), arXiv:2504.08635, \
                   2025; code: github.com/GabrieleLozupone/LDAE"
            .into(),
        demo: true,
        config,
        preprocessing,
        latent,
    })
}
