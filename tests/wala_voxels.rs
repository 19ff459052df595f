//! WaLa's voxel condition encoder `Encoder_Down_2` against the reference (fixtures by
//! `tests/fixtures/make_wala_voxels.py`, WaLa @ bc2bdd9): its 5.4 M weights are not stored but
//! filled by the formula the script uses, so the fixture holds only the grids, the tokens and
//! the reference's key names.

use candle_core::{DType, Device, Tensor};
use latent_workbench::core::train::SeededParams;
use latent_workbench::methods::wala::uvit::{VoxelEncoder, VoxelGrid};
use std::collections::HashMap;
use std::path::Path;

mod common;

const CONTEXT_DIM: usize = 8;

fn fixture() -> HashMap<String, Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wala/voxels_io.safetensors");
    candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{e} (run tests/fixtures/make_wala_voxels.py)"))
}

/// The script's `formula_weights`: tensor j (sorted key order), element i (C order).
fn formula(key: &str, j: usize, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|i| {
            let v = (0.37 * i as f64 + 1.1 * j as f64 + 0.5).sin();
            let v = if shape.len() >= 2 {
                v * 1.5 / ((n / shape[0]) as f64).sqrt()
            } else if key.ends_with("weight") {
                1.0 + 0.1 * v
            } else {
                0.1 * v
            };
            v as f32
        })
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

#[test]
fn encoder_keys_and_tokens_match_the_reference() {
    let fx = fixture();
    let params = SeededParams::new(0);
    let encoder = VoxelEncoder::load(params.var_builder(DType::F32, &Device::Cpu), CONTEXT_DIM).unwrap();
    let ours: Vec<(String, Vec<usize>)> = params
        .named_vars()
        .into_iter()
        .map(|(k, v)| (k, v.dims().to_vec()))
        .collect();
    let reference_keys = String::from_utf8(fx["keys"].to_vec1::<u8>().unwrap()).unwrap();
    let reference_keys: Vec<&str> = reference_keys.split('\n').collect();
    let names: Vec<&str> = ours.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, reference_keys, "the state-dict keys are upstream's");
    let filled: HashMap<String, Tensor> = ours
        .iter()
        .enumerate()
        .map(|(j, (k, shape))| (k.clone(), formula(k, j, shape)))
        .collect();
    params.load(&filled).unwrap();
    let tokens = encoder.tokens(&fx["grid"]).unwrap();
    assert_eq!(tokens.dims(), &[2, 512, CONTEXT_DIM]);
    let err = common::rel_err(&tokens, &fx["tokens"]);
    assert!(err <= 1e-5, "relative error {err}");
}

#[test]
fn the_voxel_json_becomes_upstreams_grid() {
    let fx = fixture();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wala/voxels_example.json");
    let grid = VoxelGrid::from_json(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(grid.resolution, 16);
    let want = fx["grid"]
        .get(0)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(grid.occupancy, want);
    // The cell at index 16 (R) is dropped, as upstream drops its last plane.
    assert_eq!(grid.count(), 8 * 4 * 4 + 5);
}
