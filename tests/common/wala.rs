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

/// `args.json` of a tiny point-cloud-conditioned WaLa diffusion model whose latents (4 × 6³) the
/// demo autoencoder decodes: the parity fixture's configuration (`make_wala_uvit.py`) on a 6³
/// grid.
pub fn tiny_diffusion_args() -> serde_json::Value {
    serde_json::json!({
        "use_pointcloud_conditions": true, "pc_encoder_type": "PointNet_Large", "pc_dims": 32,
        "pc_output_dim": 32, "num_inds": 4, "cond_num_mapping_layers": 1,
        "network_type": "latent_uvit", "grid_size": 6, "e_dim": 4, "att_patch_size": 2,
        "att_hidden_size": 32, "transformer_num_blocks": 1, "transformer_num_heads": 2,
        "dit_block_type": "cross_dit", "add_condition_time_ch": true, "transformer_add_num_register": 2,
        "unet_model_channels": 32, "unet_num_res_blocks": [1], "learnable_skip_r": 4,
        "diffusion_beta_schedule": "linear", "diffusion_step": 1000, "diffusion_scale_ratio": 1.0,
        "diffusion_model_var_type": "FIXED_SMALL", "diffusion_model_mean_type": "EPSILON",
        "diffusion_rescale_timestep": 3, "dp_cond": 0.1,
    })
}

/// A WaLa model folder as upstream publishes one (`args.json` + checkpoint) holding a random
/// diffusion model (`network.` and `encoder.` keys) of [`tiny_diffusion_args`], plus `extra`
/// tensors and `extra_args` merged into `args.json` (an autoencoder, for a self-contained one).
pub fn random_wala_diffusion(
    dir: &Path,
    seed: u64,
    extra_args: serde_json::Value,
    extra: std::collections::HashMap<String, candle_core::Tensor>,
) -> std::path::PathBuf {
    use latent_workbench::methods::wala::uvit::{LatentDiffusion, UvitConfig};
    let mut args = tiny_diffusion_args();
    if let (Some(a), Some(b)) = (args.as_object_mut(), extra_args.as_object()) {
        a.extend(b.clone());
    }
    let cfg = UvitConfig::from_args_json(&args).unwrap();
    let params = SeededParams::new(seed);
    LatentDiffusion::load(
        params.var_builder(candle_core::DType::F32, &candle_core::Device::Cpu),
        &cfg,
    )
    .unwrap();
    let mut tensors = randomise(params.tensors(), seed);
    tensors.extend(extra);
    std::fs::create_dir_all(dir).unwrap();
    candle_core::safetensors::save(&tensors, dir.join("checkpoint.safetensors")).unwrap();
    std::fs::write(dir.join("args.json"), serde_json::to_vec_pretty(&args).unwrap()).unwrap();
    dir.to_path_buf()
}

/// Every tensor redrawn at a sensible size, as the parity fixtures' `randomise()` does: a fresh
/// model zero-initialises whole paths (adaLN gates, the output convolution), which would make
/// the condition and even the latent irrelevant to the output.
pub fn randomise(
    tensors: Vec<(String, candle_core::Tensor)>,
    seed: u64,
) -> std::collections::HashMap<String, candle_core::Tensor> {
    use latent_workbench::core::diffusion::{NoiseSource, Rng};
    let mut rng = Rng::new(seed ^ 0x5eed);
    let cpu = candle_core::Device::Cpu;
    tensors
        .into_iter()
        .map(|(name, t)| {
            let dims = t.dims().to_vec();
            let n = rng.randn(&dims, candle_core::DType::F32, &cpu).unwrap();
            let redrawn = if dims.len() == 1 && name.ends_with("weight") {
                (n * 0.1).unwrap().affine(1.0, 1.0).unwrap() // a norm's scale
            } else if dims.len() == 1 {
                (n * 0.1).unwrap()
            } else if name.contains("pos_emb") || name.contains("register") {
                (n * 0.5).unwrap()
            } else {
                let fan_in = dims[1..].iter().product::<usize>().max(1);
                (n / (fan_in as f64).sqrt()).unwrap()
            };
            (name, redrawn)
        })
        .collect()
}

/// A closed octahedron of half-diagonal `r` around `c` (a small condition mesh).
#[allow(dead_code)] // tests/cli.rs includes this module without using it
pub fn octahedron(c: [f32; 3], r: f32) -> latent_workbench::core::Mesh {
    let p = |d: [f32; 3]| [c[0] + r * d[0], c[1] + r * d[1], c[2] + r * d[2]];
    latent_workbench::core::Mesh {
        positions: vec![
            p([-1.0, 0.0, 0.0]),
            p([1.0, 0.0, 0.0]),
            p([0.0, 1.0, 0.0]),
            p([0.0, -1.0, 0.0]),
            p([0.0, 0.0, 1.0]),
            p([0.0, 0.0, -1.0]),
        ],
        triangles: vec![
            [0, 3, 4],
            [0, 4, 2],
            [0, 2, 5],
            [0, 5, 3],
            [1, 4, 3],
            [1, 2, 4],
            [1, 5, 2],
            [1, 3, 5],
        ],
        ..Default::default()
    }
}
