//! torchvision ResNet classifier folders for tests, with weights by formula (a ResNet is too large
//! to commit): `formula_values` of `tests/fixtures/make_sage_resnet.py`, bit for bit. Shared
//! through `#[path = "common/resnet_folder.rs"] mod resnet_folder;`.

use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sage")
}

/// Parameter `index` (in sorted-name order) of `shape`: a multiplicative hash of the element
/// index scaled per kind of parameter, in f64, rounded to f32 once.
fn formula_values(index: u64, shape: &[usize], name: &str) -> Tensor {
    let n: usize = shape.iter().product();
    let leaf = name.rsplit('.').next().unwrap_or(name);
    let values: Vec<f32> = (0..n as u64)
        .map(|i| {
            let h = (i.wrapping_mul(2_654_435_761) + index * 40_503 + 12_345) % (1u64 << 32);
            let u = h as f64 / 4_294_967_296.0;
            let s = 2.0 * u - 1.0;
            let v = match leaf {
                "running_var" => 0.5 + u,
                "running_mean" | "bias" => 0.1 * s,
                _ if shape.len() == 1 => 1.0 + 0.2 * s,
                _ => s * (6.0 / (n / shape[0]) as f64).sqrt(),
            };
            v as f32
        })
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

/// A classifier folder holding torchvision's `resnet{depth}` (18 or 50) with formula weights, the
/// `num_batches_tracked` counters torchvision saves, and `labels` as `labels.txt`.
pub fn write(dir: &Path, depth: usize, labels: &str) {
    let params: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("resnet-params.json")).unwrap()).unwrap();
    let mut tensors = HashMap::new();
    for (i, entry) in params[format!("resnet{depth}")].as_array().unwrap().iter().enumerate() {
        let name = entry[0].as_str().unwrap();
        let shape: Vec<usize> = entry[1]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        tensors.insert(name.to_string(), formula_values(i as u64, &shape, name));
        if let Some(prefix) = name.strip_suffix(".running_var") {
            tensors.insert(
                format!("{prefix}.num_batches_tracked"),
                Tensor::new(0i64, &Device::Cpu).unwrap(),
            );
        }
    }
    std::fs::create_dir_all(dir).unwrap();
    candle_core::safetensors::save(&tensors, dir.join(format!("resnet{depth}.safetensors"))).unwrap();
    std::fs::write(dir.join("labels.txt"), labels).unwrap();
}
