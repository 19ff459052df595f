//! Training checkpoints: parameters, optimiser moments and the step, in one safetensors file.
//!
//! Keys: `param.<name>` for each parameter, `adamw.m.<name>` / `adamw.v.<name>` for the moments;
//! header metadata `format`, `step` and whatever the trainer adds (seed, config). Tensors are
//! stored as f32 little-endian. The bytes are produced here; the caller writes them atomically.

use candle_core::{DType, Device, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::{Result, TrainError};

pub const FORMAT: &str = "latent-workbench-train-checkpoint-1";
const PARAM: &str = "param.";

#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Optimiser steps completed.
    pub step: usize,
    pub params: HashMap<String, Tensor>,
    pub optimiser: HashMap<String, Tensor>,
    pub metadata: BTreeMap<String, String>,
}

/// Safetensors bytes for named tensors (written as f32) with header metadata.
pub fn encode_tensors(tensors: &[(String, Tensor)], metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let mut buffers = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        buffers.push((name.clone(), t.dims().to_vec(), bytes));
    }
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.as_str(), v))
                .map_err(|e| TrainError::Invalid(format!("tensor {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta: HashMap<String, String> = metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    safetensors::serialize(views, Some(meta)).map_err(|e| TrainError::Invalid(format!("safetensors encoding: {e}")))
}

impl Checkpoint {
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut tensors: Vec<(String, Tensor)> = self
            .params
            .iter()
            .map(|(k, t)| (format!("{PARAM}{k}"), t.clone()))
            .chain(self.optimiser.iter().map(|(k, t)| (k.clone(), t.clone())))
            .collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let mut meta = self.metadata.clone();
        meta.insert("format".into(), FORMAT.into());
        meta.insert("step".into(), self.step.to_string());
        encode_tensors(&tensors, &meta)
    }

    /// Parses checkpoint bytes; `path` only names the source in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let bad = |problem: String| TrainError::Checkpoint {
            path: path.to_path_buf(),
            problem,
        };
        let (_, header) =
            safetensors::SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("is not safetensors ({e})")))?;
        let metadata: BTreeMap<String, String> = header.metadata().clone().unwrap_or_default().into_iter().collect();
        if metadata.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(bad(format!(
                "is not a training checkpoint (metadata format ≠ {FORMAT})"
            )));
        }
        let step = metadata
            .get("step")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("has no valid step in its metadata".into()))?;
        let all = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
            .map_err(|e| bad(format!("cannot be decoded ({e})")))?;
        let mut params = HashMap::new();
        let mut optimiser = HashMap::new();
        for (k, t) in all {
            match k.strip_prefix(PARAM) {
                Some(name) => params.insert(name.to_string(), t),
                None => optimiser.insert(k, t),
            };
        }
        Ok(Self {
            step,
            params,
            optimiser,
            metadata,
        })
    }

    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| TrainError::Checkpoint {
            path: path.to_path_buf(),
            problem: format!("cannot be read ({e})"),
        })?;
        Self::from_bytes(&bytes, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let dev = Device::Cpu;
        let w = Tensor::new(&[[1f32, -2.5], [3.25, 4e-7]], &dev).unwrap();
        let m = Tensor::new(&[0.5f32, 0.25], &dev).unwrap();
        let ck = Checkpoint {
            step: 17,
            params: HashMap::from([("fc.weight".to_string(), w.clone())]),
            optimiser: HashMap::from([("adamw.m.fc.weight".to_string(), m.clone())]),
            metadata: BTreeMap::from([("seed".to_string(), "3".to_string())]),
        };
        let bytes = ck.to_bytes().unwrap();
        let back = Checkpoint::from_bytes(&bytes, Path::new("ck.safetensors")).unwrap();
        assert_eq!(back.step, 17);
        assert_eq!(back.metadata["seed"], "3");
        assert_eq!(
            back.params["fc.weight"].to_vec2::<f32>().unwrap(),
            w.to_vec2::<f32>().unwrap()
        );
        assert_eq!(
            back.optimiser["adamw.m.fc.weight"].to_vec1::<f32>().unwrap(),
            vec![0.5, 0.25]
        );

        let e = Checkpoint::from_bytes(&bytes[..bytes.len() - 3], Path::new("cut.safetensors")).unwrap_err();
        assert!(e.to_string().contains("cut.safetensors"), "{e}");
        let plain = encode_tensors(&[("x".into(), m)], &BTreeMap::new()).unwrap();
        let e = Checkpoint::from_bytes(&plain, Path::new("model.safetensors")).unwrap_err();
        assert!(e.to_string().contains("not a training checkpoint"), "{e}");
        let e = Checkpoint::from_bytes(b"garbage", Path::new("g")).unwrap_err();
        assert!(e.to_string().contains("not safetensors"), "{e}");
    }
}
