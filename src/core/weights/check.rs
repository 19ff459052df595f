//! Does a checkpoint fit a model? Expectations, mismatch reports, and `VarBuilder`s that record
//! what a model's `load(vb, cfg)` asks for.
//!
//! Two ways to get a full report (missing and unexpected keys, every shape and dtype mismatch
//! with the key, the expected and the found value):
//!
//! - [`expected_by`] runs a model constructor against zeros and returns what it asked for, to
//!   give to [`check`];
//! - [`build_model`] runs the constructor against the checkpoint itself, standing in zeros for
//!   missing or misshapen tensors so that the constructor runs to the end, and fails with the
//!   whole report instead of the first problem.
//!
//! [`var_builder`] is the plain, strict loader: the first missing key or wrong shape is an error
//! naming the file, the key, the expected and the found shape.
//!
//! Dtypes: a `VarBuilder` converts what it hands out to the dtype asked for (an `f16`
//! checkpoint loads into an `f32` model). Only a change of kind, floating point against
//! integer, counts as a dtype mismatch there; [`check`] compares dtypes exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;

use super::{Checkpoint, WeightsError};

/// A tensor a model expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub key: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
}

/// A key the model asked for that the checkpoint lacks. `shape` is `None` when the model did
/// not say (`get_unchecked`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub key: String,
    pub shape: Option<Vec<usize>>,
    pub dtype: DType,
}

/// A checkpoint tensor nobody asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub key: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    pub key: String,
    pub expected: Vec<usize>,
    pub found: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DTypeMismatch {
    pub key: String,
    pub expected: DType,
    pub found: DType,
}

/// Everything that keeps a checkpoint from fitting a model.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MismatchReport {
    /// The checkpoint file.
    pub source: PathBuf,
    pub missing: Vec<Missing>,
    pub unexpected: Vec<Found>,
    pub shape_mismatches: Vec<ShapeMismatch>,
    pub dtype_mismatches: Vec<DTypeMismatch>,
}

impl MismatchReport {
    /// No problems at all.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.shape_mismatches.is_empty()
            && self.dtype_mismatches.is_empty()
    }

    /// Problems other than unexpected keys.
    fn has_errors(&self) -> bool {
        !(self.missing.is_empty() && self.shape_mismatches.is_empty() && self.dtype_mismatches.is_empty())
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl fmt::Display for MismatchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "checkpoint {} does not match the model: {}, {}, {}, {}",
            self.source.display(),
            plural(self.missing.len(), "missing key", "missing keys"),
            plural(self.unexpected.len(), "unexpected key", "unexpected keys"),
            plural(self.shape_mismatches.len(), "shape mismatch", "shape mismatches"),
            plural(self.dtype_mismatches.len(), "dtype mismatch", "dtype mismatches"),
        )?;
        for m in &self.missing {
            match &m.shape {
                Some(s) => write!(
                    f,
                    "\n  missing key `{}`: expected shape {s:?} ({})",
                    m.key,
                    m.dtype.as_str()
                )?,
                None => write!(f, "\n  missing key `{}` ({})", m.key, m.dtype.as_str())?,
            }
        }
        for u in &self.unexpected {
            write!(
                f,
                "\n  unexpected key `{}`: shape {:?} ({})",
                u.key,
                u.shape,
                u.dtype.as_str()
            )?;
        }
        for s in &self.shape_mismatches {
            write!(
                f,
                "\n  key `{}` expected shape {:?}, found {:?}",
                s.key, s.expected, s.found
            )?;
        }
        for d in &self.dtype_mismatches {
            write!(
                f,
                "\n  key `{}` expected dtype {}, found {}",
                d.key,
                d.expected.as_str(),
                d.found.as_str()
            )?;
        }
        Ok(())
    }
}

/// Compare a checkpoint with what a model expects: exact shapes and dtypes, no key left over.
pub fn check(checkpoint: &Checkpoint, expected: &[Expected]) -> Result<(), WeightsError> {
    let mut report = MismatchReport {
        source: checkpoint.source.clone(),
        ..Default::default()
    };
    let mut wanted = BTreeSet::new();
    for e in expected {
        if !wanted.insert(e.key.as_str()) {
            continue;
        }
        match checkpoint.tensors.get(&e.key) {
            None => report.missing.push(Missing {
                key: e.key.clone(),
                shape: Some(e.shape.clone()),
                dtype: e.dtype,
            }),
            Some(t) => {
                if t.dims() != e.shape.as_slice() {
                    report.shape_mismatches.push(ShapeMismatch {
                        key: e.key.clone(),
                        expected: e.shape.clone(),
                        found: t.dims().to_vec(),
                    });
                }
                if t.dtype() != e.dtype {
                    report.dtype_mismatches.push(DTypeMismatch {
                        key: e.key.clone(),
                        expected: e.dtype,
                        found: t.dtype(),
                    });
                }
            }
        }
    }
    report.unexpected = unexpected(&checkpoint.tensors, &wanted);
    if report.is_empty() {
        Ok(())
    } else {
        Err(WeightsError::Mismatch(Box::new(report)))
    }
}

fn unexpected(tensors: &BTreeMap<String, Tensor>, wanted: &BTreeSet<&str>) -> Vec<Found> {
    tensors
        .iter()
        .filter(|(k, _)| !wanted.contains(k.as_str()))
        .map(|(k, t)| Found {
            key: k.clone(),
            shape: t.dims().to_vec(),
            dtype: t.dtype(),
        })
        .collect()
}

/// One `get` a model constructor made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    pub key: String,
    /// `None` for `get_unchecked`.
    pub shape: Option<Vec<usize>>,
    pub dtype: DType,
}

/// What [`build_model`] saw: every request, and the checkpoint tensors never asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadReport {
    pub requested: Vec<Requested>,
    pub unexpected: Vec<Found>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Fail on the first problem.
    Strict,
    /// Note every problem and hand out zeros so the constructor can go on.
    Collect,
}

#[derive(Default)]
struct Log {
    requested: Vec<Requested>,
    report: MismatchReport,
}

struct Recorder {
    tensors: BTreeMap<String, Tensor>,
    source: PathBuf,
    mode: Mode,
    log: Mutex<Log>,
}

impl Recorder {
    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fetch(&self, shape: Option<&Shape>, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let src = self.source.display();
        self.log().requested.push(Requested {
            key: name.to_owned(),
            shape: shape.map(|s| s.dims().to_vec()),
            dtype,
        });
        let Some(t) = self.tensors.get(name) else {
            let msg = match shape {
                Some(s) => format!(
                    "checkpoint {src}: key `{name}` is missing (expected shape {:?})",
                    s.dims()
                ),
                None => format!("checkpoint {src}: key `{name}` is missing"),
            };
            if self.mode == Mode::Collect {
                self.log().report.missing.push(Missing {
                    key: name.to_owned(),
                    shape: shape.map(|s| s.dims().to_vec()),
                    dtype,
                });
                if let Some(s) = shape {
                    return Tensor::zeros(s, dtype, dev);
                }
            }
            return Err(candle_core::Error::Msg(msg));
        };
        if let Some(s) = shape
            && t.dims() != s.dims()
        {
            if self.mode == Mode::Strict {
                return Err(candle_core::Error::Msg(format!(
                    "checkpoint {src}: key `{name}` expected shape {:?}, found {:?}",
                    s.dims(),
                    t.dims()
                )));
            }
            self.log().report.shape_mismatches.push(ShapeMismatch {
                key: name.to_owned(),
                expected: s.dims().to_vec(),
                found: t.dims().to_vec(),
            });
            return Tensor::zeros(s, dtype, dev);
        }
        if t.dtype().is_float() != dtype.is_float() {
            if self.mode == Mode::Strict {
                return Err(candle_core::Error::Msg(format!(
                    "checkpoint {src}: key `{name}` expected dtype {}, found {}",
                    dtype.as_str(),
                    t.dtype().as_str()
                )));
            }
            self.log().report.dtype_mismatches.push(DTypeMismatch {
                key: name.to_owned(),
                expected: dtype,
                found: t.dtype(),
            });
        }
        t.to_device(dev)?.to_dtype(dtype)
    }
}

/// Lets the caller keep a handle on the recorder after the `VarBuilder` took the backend.
struct Shared(Arc<Recorder>);

impl SimpleBackend for Shared {
    fn get(&self, s: Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.0.fetch(Some(&s), name, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.0.fetch(None, name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.tensors.contains_key(name)
    }
}

/// A `VarBuilder` over the checkpoint for `Model::load(vb, &cfg)`: tensors are converted to
/// `dtype` and moved to `device` as they are asked for; a missing key or a wrong shape is an
/// error naming the file, the key, and the expected and found shapes.
pub fn var_builder(checkpoint: Checkpoint, dtype: DType, device: &Device) -> VarBuilder<'static> {
    let recorder = Recorder {
        tensors: checkpoint.tensors,
        source: checkpoint.source,
        mode: Mode::Strict,
        log: Mutex::default(),
    };
    VarBuilder::from_backend(Box::new(Shared(Arc::new(recorder))), dtype, device.clone())
}

/// Build a model from the checkpoint, collecting every problem.
///
/// `build` is the model constructor (`|vb| Model::load(vb, &cfg)`). Missing or misshapen
/// tensors are replaced by zeros while it runs, so one call reports all of them; if there were
/// any (or, with `strict`, any checkpoint tensor was never asked for) the model is dropped and
/// the error is [`WeightsError::Mismatch`] with the full report. Otherwise the model comes back
/// with a [`LoadReport`] listing the requests and the unused tensors.
pub fn build_model<M>(
    checkpoint: &Checkpoint,
    dtype: DType,
    device: &Device,
    strict: bool,
    build: impl FnOnce(VarBuilder<'static>) -> candle_core::Result<M>,
) -> Result<(M, LoadReport), WeightsError> {
    let recorder = Arc::new(Recorder {
        tensors: checkpoint.tensors.clone(),
        source: checkpoint.source.clone(),
        mode: Mode::Collect,
        log: Mutex::default(),
    });
    let vb = VarBuilder::from_backend(Box::new(Shared(recorder.clone())), dtype, device.clone());
    let built = build(vb);
    let log = std::mem::take(&mut *recorder.log());
    let wanted: BTreeSet<&str> = log.requested.iter().map(|r| r.key.as_str()).collect();
    let unused = unexpected(&checkpoint.tensors, &wanted);
    let mut report = log.report;
    report.source = checkpoint.source.clone();
    report.unexpected = unused.clone();
    if report.has_errors() || (strict && !report.unexpected.is_empty()) {
        return Err(WeightsError::Mismatch(Box::new(report)));
    }
    let model = built.map_err(|e| WeightsError::candle(&checkpoint.source, e))?;
    Ok((
        model,
        LoadReport {
            requested: log.requested,
            unexpected: unused,
        },
    ))
}

/// What a model constructor asks for, found by running it against zeros (broadcast views: no
/// memory per tensor). `get_unchecked` requests, which carry no shape, are errors.
pub fn expected_by<M>(
    dtype: DType,
    build: impl FnOnce(VarBuilder<'static>) -> candle_core::Result<M>,
) -> candle_core::Result<Vec<Expected>> {
    struct Zeros(Mutex<Vec<Expected>>);
    impl SimpleBackend for Zeros {
        fn get(
            &self,
            s: Shape,
            name: &str,
            _: candle_nn::Init,
            dtype: DType,
            dev: &Device,
        ) -> candle_core::Result<Tensor> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).push(Expected {
                key: name.to_owned(),
                shape: s.dims().to_vec(),
                dtype,
            });
            Tensor::zeros((), dtype, dev)?.broadcast_as(s)
        }
        fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
            Err(candle_core::Error::Msg(format!(
                "`{name}` was asked for without a shape (get_unchecked)"
            )))
        }
        fn contains_tensor(&self, _: &str) -> bool {
            true
        }
    }
    let zeros = Arc::new(Zeros(Mutex::default()));
    struct Handle(Arc<Zeros>);
    impl SimpleBackend for Handle {
        fn get(
            &self,
            s: Shape,
            name: &str,
            h: candle_nn::Init,
            dtype: DType,
            dev: &Device,
        ) -> candle_core::Result<Tensor> {
            self.0.get(s, name, h, dtype, dev)
        }
        fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
            self.0.get_unchecked(name, dtype, dev)
        }
        fn contains_tensor(&self, name: &str) -> bool {
            self.0.contains_tensor(name)
        }
    }
    build(VarBuilder::from_backend(
        Box::new(Handle(zeros.clone())),
        dtype,
        Device::Cpu,
    ))?;
    let mut out = std::mem::take(&mut *zeros.0.lock().unwrap_or_else(PoisonError::into_inner));
    // A key asked for twice (shared weights) is expected once.
    let mut seen = BTreeSet::new();
    out.retain(|e| seen.insert(e.key.clone()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::weights::CheckpointFormat;

    fn ckpt(entries: &[(&str, &[usize], DType)]) -> Checkpoint {
        Checkpoint {
            tensors: entries
                .iter()
                .map(|(k, s, d)| (k.to_string(), Tensor::zeros(*s, *d, &Device::Cpu).unwrap()))
                .collect(),
            source: PathBuf::from("model.ckpt"),
            format: CheckpointFormat::SafeTensors,
            metadata: BTreeMap::new(),
        }
    }

    fn toy(vb: VarBuilder<'static>) -> candle_core::Result<(Tensor, Tensor)> {
        let w = vb.pp("encoder.conv_in.conv").get((32, 1, 3, 3, 3), "weight")?;
        let b = vb.pp("encoder.conv_in.conv").get(32, "bias")?;
        Ok((w, b))
    }

    #[test]
    fn strict_var_builder_names_key_and_shapes() {
        let c = ckpt(&[
            ("encoder.conv_in.conv.weight", &[32, 1, 3, 3], DType::F32),
            ("encoder.conv_in.conv.bias", &[32], DType::F16),
        ]);
        let err = toy(var_builder(c, DType::F32, &Device::Cpu)).unwrap_err().to_string();
        assert!(
            err.contains("checkpoint model.ckpt: key `encoder.conv_in.conv.weight` expected shape [32, 1, 3, 3, 3], found [32, 1, 3, 3]"),
            "{err}"
        );
    }

    #[test]
    fn strict_var_builder_converts_dtype() {
        let c = ckpt(&[
            ("encoder.conv_in.conv.weight", &[32, 1, 3, 3, 3], DType::F16),
            ("encoder.conv_in.conv.bias", &[32], DType::BF16),
        ]);
        let (w, b) = toy(var_builder(c, DType::F32, &Device::Cpu)).unwrap();
        assert_eq!((w.dtype(), b.dtype()), (DType::F32, DType::F32));
    }

    #[test]
    fn build_model_reports_everything() {
        let c = ckpt(&[
            ("encoder.conv_in.conv.weight", &[32, 1, 3, 3], DType::F32),
            ("extra.weight", &[4], DType::F32),
        ]);
        let Err(WeightsError::Mismatch(report)) = build_model(&c, DType::F32, &Device::Cpu, false, toy) else {
            panic!("expected a mismatch")
        };
        assert_eq!(
            report.missing,
            vec![Missing {
                key: "encoder.conv_in.conv.bias".into(),
                shape: Some(vec![32]),
                dtype: DType::F32
            }]
        );
        assert_eq!(
            report.shape_mismatches,
            vec![ShapeMismatch {
                key: "encoder.conv_in.conv.weight".into(),
                expected: vec![32, 1, 3, 3, 3],
                found: vec![32, 1, 3, 3]
            }]
        );
        assert_eq!(report.unexpected.len(), 1);
        let text = report.to_string();
        assert!(text.starts_with("checkpoint model.ckpt does not match the model: 1 missing key, 1 unexpected key, 1 shape mismatch, 0 dtype mismatches"), "{text}");
        assert!(
            text.contains("missing key `encoder.conv_in.conv.bias`: expected shape [32] (f32)"),
            "{text}"
        );
        assert!(
            text.contains("unexpected key `extra.weight`: shape [4] (f32)"),
            "{text}"
        );
        assert!(
            text.contains("key `encoder.conv_in.conv.weight` expected shape [32, 1, 3, 3, 3], found [32, 1, 3, 3]"),
            "{text}"
        );
    }

    #[test]
    fn build_model_strictness_and_dtype_kind() {
        let c = ckpt(&[
            ("encoder.conv_in.conv.weight", &[32, 1, 3, 3, 3], DType::F32),
            ("encoder.conv_in.conv.bias", &[32], DType::F32),
            ("num_batches_tracked", &[], DType::I64),
        ]);
        let (_, report) = build_model(&c, DType::F32, &Device::Cpu, false, toy).unwrap();
        assert_eq!(report.requested.len(), 2);
        assert_eq!(report.unexpected[0].key, "num_batches_tracked");
        assert!(matches!(
            build_model(&c, DType::F32, &Device::Cpu, true, toy),
            Err(WeightsError::Mismatch(_))
        ));

        let c = ckpt(&[
            ("encoder.conv_in.conv.weight", &[32, 1, 3, 3, 3], DType::F32),
            ("encoder.conv_in.conv.bias", &[32], DType::I64),
        ]);
        let Err(WeightsError::Mismatch(report)) = build_model(&c, DType::F32, &Device::Cpu, true, toy) else {
            panic!()
        };
        assert_eq!(report.dtype_mismatches[0].found, DType::I64);
    }

    #[test]
    fn expected_by_and_check() {
        let expected = expected_by(DType::F32, toy).unwrap();
        assert_eq!(expected.len(), 2);
        assert_eq!(
            expected[0],
            Expected {
                key: "encoder.conv_in.conv.weight".into(),
                shape: vec![32, 1, 3, 3, 3],
                dtype: DType::F32
            }
        );
        let good = ckpt(&[
            ("encoder.conv_in.conv.weight", &[32, 1, 3, 3, 3], DType::F32),
            ("encoder.conv_in.conv.bias", &[32], DType::F32),
        ]);
        check(&good, &expected).unwrap();
        let bad = ckpt(&[("encoder.conv_in.conv.weight", &[32, 1, 3, 3, 3], DType::F16)]);
        let Err(WeightsError::Mismatch(r)) = check(&bad, &expected) else {
            panic!()
        };
        assert_eq!(r.missing.len(), 1);
        assert_eq!(
            r.dtype_mismatches,
            vec![DTypeMismatch {
                key: "encoder.conv_in.conv.weight".into(),
                expected: DType::F32,
                found: DType::F16
            }]
        );
    }
}
