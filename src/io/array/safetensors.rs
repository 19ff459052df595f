//! `.safetensors` files, through the `safetensors` crate.
//!
//! Reading converts `BOOL U8 I8 U16 I16 U32 I32 U64 I64 F16 BF16 F32 F64` to `f32` (other
//! dtypes — the FP8/FP4/FP6 formats and complex — are refused as unsupported) and returns the
//! tensors sorted by name. Writing stores `F32`. Each tensor's [`LatentOrigin`] travels in
//! the file's `__metadata__` (a string → string map) under the key `<name>.origin`, as a JSON
//! object `{"model": .., "input": .., "note": ..}`; tensors without an origin get no key.

use super::super::IoError;
use super::f16_to_f32;
use crate::core::{LatentOrigin, LatentTensor, ScalarKind};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::HashMap;
use std::path::Path;

/// Suffix of the metadata key holding a tensor's origin.
pub const ORIGIN_SUFFIX: &str = ".origin";

/// Reads every tensor of a `.safetensors` file, sorted by name.
pub fn read_safetensors(path: &Path) -> Result<Vec<LatentTensor>, IoError> {
    let bytes = super::super::atomic::read_bytes(path)?;
    decode_safetensors(&bytes, path)
}

/// Decodes the bytes of a `.safetensors` file (`path` is only used in errors).
pub fn decode_safetensors(bytes: &[u8], path: &Path) -> Result<Vec<LatentTensor>, IoError> {
    let (_, metadata) = SafeTensors::read_metadata(bytes)
        .map_err(|e| IoError::malformed(path, format!("not a valid .safetensors file ({e})")))?;
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| IoError::malformed(path, format!("not a valid .safetensors file ({e})")))?;
    let extra = metadata.metadata().clone().unwrap_or_default();
    let mut out = Vec::with_capacity(st.len());
    for (name, view) in st.tensors() {
        let elements = view
            .shape()
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .unwrap_or(u64::MAX);
        IoError::check_size(path, elements)?;
        let (kind, values) = convert(&view)
            .ok_or_else(|| IoError::unsupported(path, format!("dtype {:?} of tensor '{name}'", view.dtype())))?;
        let origin = match extra.get(&format!("{name}{ORIGIN_SUFFIX}")) {
            Some(json) => serde_json::from_str::<LatentOrigin>(json).unwrap_or_else(|e| {
                log::warn!("{}: ignoring unreadable origin of tensor '{name}': {e}", path.display());
                LatentOrigin::default()
            }),
            None => LatentOrigin::default(),
        };
        let t = LatentTensor::new(name.clone(), view.shape().to_vec(), values)
            .map_err(|e| IoError::malformed(path, format!("tensor '{name}': {e}")))?
            .with_source_kind(kind)
            .with_origin(origin);
        out.push(t);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Writes tensors as `F32` with their origins in `__metadata__` (atomic). Names must be
/// unique.
pub fn write_safetensors(path: &Path, tensors: &[LatentTensor]) -> Result<(), IoError> {
    let invalid = |msg: String| IoError::write(path, std::io::Error::new(std::io::ErrorKind::InvalidInput, msg));
    let mut seen = std::collections::HashSet::new();
    for t in tensors {
        if !seen.insert(t.name.as_str()) {
            return Err(invalid(format!("duplicate tensor name '{}'", t.name)));
        }
    }
    let data: Vec<Vec<u8>> = tensors.iter().map(|t| le_bytes(t.values())).collect();
    let mut views = Vec::with_capacity(tensors.len());
    for (t, bytes) in tensors.iter().zip(&data) {
        let view = TensorView::new(Dtype::F32, t.shape().to_vec(), bytes)
            .map_err(|e| invalid(format!("tensor '{}': {e}", t.name)))?;
        views.push((t.name.clone(), view));
    }
    let mut meta: HashMap<String, String> = HashMap::new();
    for t in tensors {
        if t.origin != LatentOrigin::default() {
            let json = serde_json::to_string(&t.origin).map_err(|e| invalid(e.to_string()))?;
            meta.insert(format!("{}{ORIGIN_SUFFIX}", t.name), json);
        }
    }
    let meta = if meta.is_empty() { None } else { Some(meta) };
    let bytes = safetensors::serialize(views, meta).map_err(|e| invalid(e.to_string()))?;
    super::super::atomic::write_bytes(path, &bytes)
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    if cfg!(target_endian = "little") {
        bytemuck::cast_slice::<f32, u8>(v).to_vec()
    } else {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }
}

/// The tensor's values as `f32`, or `None` for a dtype we do not convert.
fn convert(view: &TensorView) -> Option<(ScalarKind, Vec<f32>)> {
    let d = view.data();
    macro_rules! le {
        ($t:ty, $n:literal, $f:expr) => {
            d.chunks_exact($n)
                .map(|c| {
                    #[allow(clippy::redundant_closure_call)]
                    $f(<$t>::from_le_bytes(c.try_into().unwrap()))
                })
                .collect()
        };
    }
    Some(match view.dtype() {
        Dtype::BOOL => (
            ScalarKind::Bool,
            d.iter().map(|&b| if b != 0 { 1.0 } else { 0.0 }).collect(),
        ),
        Dtype::U8 => (ScalarKind::U8, d.iter().map(|&b| f32::from(b)).collect()),
        Dtype::I8 => (ScalarKind::I8, d.iter().map(|&b| f32::from(b as i8)).collect()),
        Dtype::U16 => (ScalarKind::U16, le!(u16, 2, f32::from)),
        Dtype::I16 => (ScalarKind::I16, le!(i16, 2, f32::from)),
        Dtype::U32 => (ScalarKind::U32, le!(u32, 4, |v: u32| v as f32)),
        Dtype::I32 => (ScalarKind::I32, le!(i32, 4, |v: i32| v as f32)),
        Dtype::U64 => (ScalarKind::U64, le!(u64, 8, |v: u64| v as f32)),
        Dtype::I64 => (ScalarKind::I64, le!(i64, 8, |v: i64| v as f32)),
        Dtype::F16 => (ScalarKind::F16, le!(u16, 2, f16_to_f32)),
        Dtype::BF16 => (
            ScalarKind::Bf16,
            le!(u16, 2, |v: u16| f32::from_bits(u32::from(v) << 16)),
        ),
        Dtype::F32 => (ScalarKind::F32, le!(f32, 4, |v: f32| v)),
        Dtype::F64 => (ScalarKind::F64, le!(f64, 8, |v: f64| v as f32)),
        _ => return None,
    })
}
