//! `.safetensors` files, memory-mapped.
//!
//! Decision: map the file rather than read it into a buffer. Every tensor is copied into owned
//! CPU memory anyway; reading first would hold a second full copy of a multi-gigabyte file at
//! the peak, while mapped pages are file-backed and can be dropped by the kernel. The cost is
//! the one `unsafe` block below (candle's `MmapedFile::new`), audited in its SAFETY comment.
//!
//! The header is read and checked on its own first (length, JSON, data offsets against the file
//! length), so a cut-off file is reported as [`WeightsError::Truncated`] before anything is
//! mapped, and `__metadata__` is kept in the checkpoint's metadata.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use candle_core::safetensors::Load;
use candle_core::{Device, Tensor};
use safetensors::Dtype;

use super::layout;
use super::{Checkpoint, CheckpointFormat, LoadOptions, WeightsError};

/// The safetensors crate's own bound on the header.
const MAX_HEADER: u64 = 100_000_000;

pub(super) fn load(path: &Path, opts: &LoadOptions) -> Result<Checkpoint, WeightsError> {
    let corrupt = |detail: String| WeightsError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let truncated = |detail: String| WeightsError::Truncated {
        path: path.to_path_buf(),
        detail,
    };

    // 1. The header, checked before mapping anything.
    let mut file = File::open(path).map_err(|e| WeightsError::io(path, e))?;
    let len = file.metadata().map_err(|e| WeightsError::io(path, e))?.len();
    if len < 8 {
        return Err(truncated(format!(
            "{len} bytes, shorter than the 8-byte safetensors header length"
        )));
    }
    let mut n = [0u8; 8];
    file.read_exact(&mut n).map_err(|e| WeightsError::io(path, e))?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER {
        return Err(corrupt(format!("safetensors header length {n} is implausible")));
    }
    if 8 + n > len {
        return Err(truncated(format!(
            "the safetensors header needs {} bytes but the file has {len}",
            8 + n
        )));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(|e| WeightsError::io(path, e))?;
    drop(file);
    let header: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| corrupt(format!("safetensors header is not JSON: {e}")))?;
    let Some(entries) = header.as_object() else {
        return Err(corrupt("safetensors header is not a JSON object".into()));
    };
    let mut metadata = BTreeMap::new();
    let mut data_end = 0u64;
    for (name, info) in entries {
        if name == "__metadata__" {
            if let Some(m) = info.as_object() {
                for (k, v) in m {
                    metadata.insert(k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned));
                }
            }
            continue;
        }
        let end = info
            .get("data_offsets")
            .and_then(|o| o.get(1))
            .and_then(serde_json::Value::as_u64);
        match end {
            Some(end) => data_end = data_end.max(end),
            None => return Err(corrupt(format!("tensor `{name}` has no data_offsets"))),
        }
    }
    if 8 + n + data_end > len {
        return Err(truncated(format!(
            "the header promises {data_end} bytes of tensor data but only {} follow it",
            len - 8 - n
        )));
    }

    // 2. The tensors.
    // SAFETY: `MmapedFile::new` maps the file read-only; the map is undefined behaviour only if
    // the file is truncated or rewritten while mapped. It lives only inside this function: every
    // tensor below is copied into owned CPU memory (`Load::load` and `Tensor::from_vec` copy),
    // and the map is dropped before returning. Weight files are not expected to be modified
    // while they are being loaded; a concurrent truncation could at worst crash with SIGBUS
    // during the copy, not hand out dangling data.
    let mapped =
        unsafe { candle_core::safetensors::MmapedFile::new(path) }.map_err(|e| WeightsError::candle(path, e))?;
    let st = mapped
        .deserialize()
        .map_err(|e| corrupt(format!("invalid safetensors: {e}")))?;
    let mut names: Vec<(String, String)> = st.names().into_iter().map(|n| (n.to_owned(), n.to_owned())).collect();
    names.sort();
    let arranged = layout::arrange(names, opts, path, &mut metadata)?;
    if arranged.is_empty() {
        return Err(WeightsError::NoTensors {
            path: path.to_path_buf(),
            detail: "the file holds no tensors".into(),
        });
    }
    let mut tensors = BTreeMap::new();
    for (key, name) in arranged {
        let view = st.tensor(&name).map_err(|e| corrupt(format!("tensor `{name}`: {e}")))?;
        let cpu = &Device::Cpu;
        let shape = view.shape().to_vec();
        let tensor = match view.dtype() {
            // Widened as the torch loader does: candle has no bool or int8.
            Dtype::BOOL => Tensor::from_vec(
                view.data().iter().map(|&b| u8::from(b != 0)).collect::<Vec<_>>(),
                shape,
                cpu,
            ),
            Dtype::I8 => Tensor::from_vec(
                view.data().iter().map(|&b| i16::from(b as i8)).collect::<Vec<_>>(),
                shape,
                cpu,
            ),
            Dtype::U8
            | Dtype::U16
            | Dtype::U32
            | Dtype::I16
            | Dtype::I32
            | Dtype::I64
            | Dtype::BF16
            | Dtype::F16
            | Dtype::F32
            | Dtype::F64
            | Dtype::F8_E4M3 => view.load(cpu),
            other => {
                return Err(WeightsError::UnsupportedDtype {
                    path: path.to_path_buf(),
                    key: name,
                    dtype: format!("{other:?}"),
                });
            }
        }
        .map_err(|e| WeightsError::candle(path, e))?;
        tensors.insert(key, tensor);
    }
    drop(st);
    drop(mapped);
    metadata.insert("checkpoint.format".into(), "safetensors".into());
    Ok(Checkpoint {
        tensors,
        source: path.to_path_buf(),
        format: CheckpointFormat::SafeTensors,
        metadata,
    })
}
