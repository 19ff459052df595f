//! `torch.save` zip archives (`.pt`, `.pth`, `.ckpt`, `.bin`): `<prefix>/data.pkl` read with
//! the safe unpickler, tensors materialised from `<prefix>/data/<key>` storages.
//!
//! Tensors are copied out of their storages into contiguous CPU tensors, honouring storage
//! offsets and arbitrary strides (transposed and sliced views, storages shared by several
//! tensors, zero strides) and the archive's `byteorder` record. Only the storages of the chosen
//! tensors are read (an optimizer state next to the weights is never touched), each once, and
//! released after its last tensor is built. Dtypes candle lacks are widened losslessly:
//! `bool` → `u8` (0/1), `int8` → `i16`, `uint16` → `u32`; `uint64`, complex and most float8
//! formats are refused with [`WeightsError::UnsupportedDtype`].

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::rc::Rc;

use candle_core::{DType, Device, Tensor};

use super::archive::Archive;
use super::layout;
use super::pickle::{self, TensorRef, TorchDtype};
use super::{Checkpoint, CheckpointFormat, LoadOptions, WeightsError};

/// A view may expand its storage (zero strides) up to this many bytes.
const MAX_EXPANDED_BYTES: usize = 1 << 30;

pub(super) fn load(path: &Path, opts: &LoadOptions) -> Result<Checkpoint, WeightsError> {
    let mut archive = Archive::open(path)?;
    let unsupported = |what: String| WeightsError::UnsupportedFormat {
        path: path.to_path_buf(),
        what,
    };

    let pkls: Vec<String> = archive
        .names()
        .filter(|n| *n == "data.pkl" || (n.ends_with("/data.pkl") && n.matches('/').count() == 1))
        .map(str::to_owned)
        .collect();
    let pkl = match pkls.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(unsupported(
                "a zip archive without `data.pkl`: not a torch.save checkpoint".into(),
            ));
        }
        many => {
            return Err(unsupported(format!(
                "several pickles in one archive: {}",
                many.join(", ")
            )));
        }
    };
    let prefix = pkl.strip_suffix("data.pkl").unwrap_or("").to_owned();
    if archive.contains(&format!("{prefix}constants.pkl"))
        || archive.names().any(|n| n.starts_with(&format!("{prefix}code/")))
    {
        return Err(unsupported(
            "a TorchScript archive (torch.jit.save); save the weights with torch.save(model.state_dict(), ...)".into(),
        ));
    }

    let data = archive.read(&pkl, pickle::Limits::default().max_input as u64)?;
    let parsed = pickle::parse(&data).map_err(|e| WeightsError::pickle(path, &pkl, e))?;
    drop(data);

    let byteorder_record = format!("{prefix}byteorder");
    let big_endian = if archive.contains(&byteorder_record) {
        match archive.read(&byteorder_record, 16)?.as_slice() {
            b"little" => false,
            b"big" => true,
            other => {
                return Err(WeightsError::Corrupt {
                    path: path.to_path_buf(),
                    detail: format!(
                        "`{byteorder_record}` says {:?}, not little or big",
                        String::from_utf8_lossy(other)
                    ),
                });
            }
        }
    } else {
        false // what torch assumes for archives written before the record existed
    };

    let selection = layout::select(&parsed, opts, path)?;
    let protocol = parsed.protocol;
    drop(parsed);

    let mut uses: HashMap<Rc<str>, usize> = HashMap::new();
    for (_, t) in &selection.tensors {
        *uses.entry(t.storage.key.clone()).or_default() += 1;
    }
    let mut cache: HashMap<Rc<str>, Vec<u8>> = HashMap::new();
    let mut tensors = BTreeMap::new();
    for (key, t) in &selection.tensors {
        let storage_key = &t.storage.key;
        if !cache.contains_key(storage_key) {
            let record = format!("{prefix}data/{storage_key}");
            let corrupt = |detail: String| WeightsError::Corrupt {
                path: path.to_path_buf(),
                detail,
            };
            let declared = t
                .storage
                .nbytes()
                .ok_or_else(|| corrupt(format!("storage `{record}` has an impossible size")))?;
            let Some(found) = archive.size(&record) else {
                return Err(corrupt(format!(
                    "storage record `{record}` (of tensor `{key}`) is missing"
                )));
            };
            if found != declared {
                let what = match t.storage.dtype {
                    Some(d) => format!("{} {d} elements ({declared} bytes)", t.storage.numel),
                    None => format!("{declared} bytes"),
                };
                return Err(corrupt(format!(
                    "storage `{record}` of tensor `{key}` holds {found} bytes, but the pickle declares {what}"
                )));
            }
            cache.insert(storage_key.clone(), archive.read(&record, declared)?);
        }
        let bytes = cache.get(storage_key).map(Vec::as_slice).unwrap_or(&[]);
        let tensor = materialize(t, bytes, big_endian, key, path)?;
        tensors.insert(key.clone(), tensor);
        if let Some(n) = uses.get_mut(storage_key) {
            *n -= 1;
            if *n == 0 {
                cache.remove(storage_key);
            }
        }
    }

    let mut metadata = selection.metadata;
    metadata.insert("checkpoint.format".into(), "torch zip".into());
    metadata.insert("torch.pickle_protocol".into(), protocol.to_string());
    metadata.insert(
        "torch.byteorder".into(),
        if big_endian { "big" } else { "little" }.into(),
    );
    Ok(Checkpoint {
        tensors,
        source: path.to_path_buf(),
        format: CheckpointFormat::TorchZip,
        metadata,
    })
}

/// The candle dtype a torch dtype loads as, if any.
pub(super) fn candle_dtype(d: TorchDtype) -> Option<DType> {
    Some(match d {
        TorchDtype::F32 => DType::F32,
        TorchDtype::F64 => DType::F64,
        TorchDtype::F16 => DType::F16,
        TorchDtype::BF16 => DType::BF16,
        TorchDtype::I64 => DType::I64,
        TorchDtype::I32 => DType::I32,
        TorchDtype::I16 | TorchDtype::I8 => DType::I16,
        TorchDtype::U8 | TorchDtype::Bool => DType::U8,
        TorchDtype::U32 | TorchDtype::U16 => DType::U32,
        TorchDtype::F8E4M3Fn => DType::F8E4M3,
        _ => return None,
    })
}

/// Copy the view `t` of `storage` into a contiguous CPU tensor.
pub(super) fn materialize(
    t: &TensorRef,
    storage: &[u8],
    big_endian: bool,
    key: &str,
    path: &Path,
) -> Result<Tensor, WeightsError> {
    let corrupt = |detail: String| WeightsError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let Some(dtype) = candle_dtype(t.dtype) else {
        return Err(WeightsError::UnsupportedDtype {
            path: path.to_path_buf(),
            key: key.to_owned(),
            dtype: t.dtype.name().to_owned(),
        });
    };
    let elem = t.dtype.size();
    if !storage.len().is_multiple_of(elem) {
        return Err(corrupt(format!(
            "tensor `{key}`: its storage of {} bytes is not a whole number of {} elements",
            storage.len(),
            t.dtype
        )));
    }
    let count = storage.len() / elem;
    let too_big = || corrupt(format!("tensor `{key}`: size {:?} overflows", t.size));
    let dims: Vec<usize> = t
        .size
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| too_big())?;
    let strides: Vec<usize> = t
        .stride
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| too_big())?;
    let offset = usize::try_from(t.offset).map_err(|_| too_big())?;
    let numel = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(too_big)?;
    if numel > 0 {
        let last = dims
            .iter()
            .zip(&strides)
            .try_fold(offset, |a, (&d, &s)| {
                (d - 1).checked_mul(s).and_then(|x| a.checked_add(x))
            })
            .ok_or_else(too_big)?;
        if last >= count {
            return Err(corrupt(format!(
                "tensor `{key}` (size {:?}, stride {:?}, offset {offset}) reaches element {last} \
                 of a storage of {count} {} elements",
                t.size, t.stride, t.dtype
            )));
        }
    }
    let out_len = numel.checked_mul(elem).ok_or_else(too_big)?;
    if out_len > storage.len() && out_len > MAX_EXPANDED_BYTES {
        return Err(corrupt(format!(
            "tensor `{key}` expands a {}-byte storage into {out_len} bytes",
            storage.len()
        )));
    }

    let mut out = Vec::with_capacity(out_len);
    let contiguous = {
        let mut expected = 1usize;
        let mut ok = true;
        for (&d, &s) in dims.iter().zip(&strides).rev() {
            if d != 1 && s != expected {
                ok = false;
                break;
            }
            expected = expected.saturating_mul(d);
        }
        ok
    };
    if numel == 0 {
    } else if contiguous {
        out.extend_from_slice(&storage[offset * elem..(offset + numel) * elem]);
    } else {
        // Odometer over the index space; the bounds were checked above.
        let mut index = vec![0usize; dims.len()];
        let mut at = offset;
        for _ in 0..numel {
            out.extend_from_slice(&storage[at * elem..(at + 1) * elem]);
            for axis in (0..dims.len()).rev() {
                index[axis] += 1;
                at += strides[axis];
                if index[axis] < dims[axis] {
                    break;
                }
                at -= strides[axis] * dims[axis];
                index[axis] = 0;
            }
        }
    }
    if big_endian && elem > 1 {
        for chunk in out.chunks_exact_mut(elem) {
            chunk.reverse();
        }
    }

    let cpu = &Device::Cpu;
    let built = match t.dtype {
        TorchDtype::Bool => {
            for b in &mut out {
                *b = u8::from(*b != 0);
            }
            Tensor::from_vec(out, dims, cpu)
        }
        TorchDtype::I8 => Tensor::from_vec(out.iter().map(|&b| i16::from(b as i8)).collect::<Vec<_>>(), dims, cpu),
        TorchDtype::U16 => Tensor::from_vec(
            out.chunks_exact(2)
                .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
                .collect::<Vec<_>>(),
            dims,
            cpu,
        ),
        _ => Tensor::from_raw_buffer(&out, dtype, &dims, cpu),
    };
    built.map_err(|e| WeightsError::candle(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::weights::pickle::StorageRef;

    fn view(dtype: TorchDtype, offset: u64, size: &[u64], stride: &[u64]) -> TensorRef {
        TensorRef {
            storage: StorageRef {
                key: Rc::from("0"),
                dtype: Some(dtype),
                location: Rc::from("cpu"),
                numel: 0,
            },
            dtype,
            offset,
            size: size.to_vec(),
            stride: stride.to_vec(),
        }
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn strided_views_are_gathered() {
        let storage = f32_bytes(&(0..12).map(|i| i as f32).collect::<Vec<_>>());
        let p = Path::new("t.pt");
        // The transpose of a 3x4 matrix.
        let t = materialize(&view(TorchDtype::F32, 0, &[4, 3], &[1, 4]), &storage, false, "t", p).unwrap();
        assert_eq!(t.to_vec2::<f32>().unwrap()[1], vec![1.0, 5.0, 9.0]);
        // Rows 1.. of it (offset).
        let t = materialize(&view(TorchDtype::F32, 4, &[2, 4], &[4, 1]), &storage, false, "t", p).unwrap();
        assert_eq!(t.to_vec2::<f32>().unwrap()[0], vec![4.0, 5.0, 6.0, 7.0]);
        // A broadcast row (stride 0).
        let t = materialize(&view(TorchDtype::F32, 2, &[3, 2], &[0, 1]), &storage, false, "t", p).unwrap();
        assert_eq!(t.to_vec2::<f32>().unwrap(), vec![vec![2.0, 3.0]; 3]);
        // A scalar and an empty tensor.
        let t = materialize(&view(TorchDtype::F32, 5, &[], &[]), &storage, false, "t", p).unwrap();
        assert_eq!(t.to_scalar::<f32>().unwrap(), 5.0);
        let t = materialize(&view(TorchDtype::F32, 0, &[0, 3], &[3, 1]), &storage, false, "t", p).unwrap();
        assert_eq!(t.dims(), &[0, 3]);
    }

    #[test]
    fn out_of_bounds_views_are_corrupt() {
        let storage = f32_bytes(&[0.0; 6]);
        let p = Path::new("t.pt");
        let err = materialize(&view(TorchDtype::F32, 1, &[2, 3], &[3, 1]), &storage, false, "w", p).unwrap_err();
        assert!(matches!(err, WeightsError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("tensor `w`"), "{err}");
        let err = materialize(
            &view(TorchDtype::F32, 0, &[u64::MAX, 2], &[1, 1]),
            &storage,
            false,
            "w",
            p,
        )
        .unwrap_err();
        assert!(matches!(err, WeightsError::Corrupt { .. }), "{err}");
        let err = materialize(&view(TorchDtype::C64, 0, &[1], &[1]), &storage, false, "w", p).unwrap_err();
        assert!(matches!(err, WeightsError::UnsupportedDtype { .. }), "{err}");
    }

    #[test]
    fn big_endian_and_widened_dtypes() {
        let p = Path::new("t.pt");
        let t = materialize(
            &view(TorchDtype::F32, 0, &[1], &[1]),
            &1.5f32.to_be_bytes(),
            true,
            "t",
            p,
        )
        .unwrap();
        assert_eq!(t.to_vec1::<f32>().unwrap(), vec![1.5]);
        let t = materialize(&view(TorchDtype::I8, 0, &[2], &[1]), &[0xff, 7], false, "t", p).unwrap();
        assert_eq!(t.to_vec1::<i16>().unwrap(), vec![-1, 7]);
        let t = materialize(&view(TorchDtype::Bool, 0, &[2], &[1]), &[0, 2], false, "t", p).unwrap();
        assert_eq!(t.to_vec1::<u8>().unwrap(), vec![0, 1]);
        let t = materialize(&view(TorchDtype::U16, 0, &[1], &[1]), &[0x34, 0x12], false, "t", p).unwrap();
        assert_eq!(t.to_vec1::<u32>().unwrap(), vec![0x1234]);
    }
}
