//! Errors of checkpoint loading. Every message names the file.

use std::path::{Path, PathBuf};

use super::check::MismatchReport;
use super::pickle::PickleError;

/// Why a checkpoint was not loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WeightsError {
    #[error("checkpoint {}: file not found", path.display())]
    NotFound { path: PathBuf },
    #[error("checkpoint {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file ends early: an interrupted download or copy.
    #[error("checkpoint {} is truncated: {detail}", path.display())]
    Truncated { path: PathBuf, detail: String },
    /// Damaged structure or data (bad offsets, CRC failures, storage sizes that disagree).
    #[error("checkpoint {} is corrupt: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    /// The pickle names a global off the allowlist; nothing was run.
    #[error(
        "refusing to load {}: the pickle asks to call {global} ({})",
        path.display(),
        if *code_execution { "code execution" } else { "not on the allowlist of inert data types" }
    )]
    UnsafePickle {
        path: PathBuf,
        global: String,
        code_execution: bool,
    },
    /// A pickle this reader cannot interpret (but which is not known to be unsafe).
    #[error("checkpoint {}: unsupported pickle: {what}", path.display())]
    UnsupportedPickle { path: PathBuf, what: String },
    /// Not a format this module reads (legacy torch.save, TorchScript, …).
    #[error("checkpoint {}: unsupported format: {what}", path.display())]
    UnsupportedFormat { path: PathBuf, what: String },
    /// A tensor of a dtype candle cannot hold.
    #[error("checkpoint {}: tensor `{key}` has dtype {dtype}, which cannot be loaded", path.display())]
    UnsupportedDtype { path: PathBuf, key: String, dtype: String },
    /// No tensors left (none in the file, or none under `select_prefix`).
    #[error("checkpoint {}: no tensors to load: {detail}", path.display())]
    NoTensors { path: PathBuf, detail: String },
    /// Two keys became one after stripping prefixes.
    #[error("checkpoint {}: keys `{first}` and `{second}` both become `{key}` after stripping prefixes", path.display())]
    DuplicateKey {
        path: PathBuf,
        key: String,
        first: String,
        second: String,
    },
    /// The checkpoint does not fit the model (the report names the file; boxed: it is large).
    #[error("{0}")]
    Mismatch(Box<MismatchReport>),
    /// A tensor operation failed (building a tensor, or the model constructor itself).
    #[error("checkpoint {}: {source}", path.display())]
    Candle {
        path: PathBuf,
        #[source]
        source: candle_core::Error,
    },
}

impl WeightsError {
    pub(super) fn io(path: &Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            WeightsError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            WeightsError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }

    pub(super) fn candle(path: &Path, source: candle_core::Error) -> Self {
        WeightsError::Candle {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A pickle error inside `record` of the archive at `path`.
    pub(super) fn pickle(path: &Path, record: &str, e: PickleError) -> Self {
        let path = path.to_path_buf();
        match e {
            PickleError::Unsafe { global, code_execution } => WeightsError::UnsafePickle {
                path,
                global,
                code_execution,
            },
            e @ (PickleError::UnsupportedOpcode { .. } | PickleError::Unsupported { .. }) => {
                WeightsError::UnsupportedPickle {
                    path,
                    what: format!("{record}: {e}"),
                }
            }
            e @ PickleError::Limit { .. } => WeightsError::UnsupportedPickle {
                path,
                what: format!("{record}: {e}"),
            },
            e @ (PickleError::Truncated { .. } | PickleError::Malformed { .. }) => WeightsError::Corrupt {
                path,
                detail: format!("{record}: {e}"),
            },
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            WeightsError::NotFound { path }
            | WeightsError::Io { path, .. }
            | WeightsError::Truncated { path, .. }
            | WeightsError::Corrupt { path, .. }
            | WeightsError::UnsafePickle { path, .. }
            | WeightsError::UnsupportedPickle { path, .. }
            | WeightsError::UnsupportedFormat { path, .. }
            | WeightsError::UnsupportedDtype { path, .. }
            | WeightsError::NoTensors { path, .. }
            | WeightsError::DuplicateKey { path, .. }
            | WeightsError::Candle { path, .. } => path,
            WeightsError::Mismatch(report) => &report.source,
        }
    }
}
