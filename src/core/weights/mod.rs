//! Checkpoint loading: safetensors and PyTorch pickles, read without executing anything.
//!
//! [`load_checkpoint`] reads `.safetensors` (memory-mapped, see `safetensors_file.rs`) and
//! `torch.save` zip archives (`.pt`, `.pth`, `.ckpt`, `.bin`), telling them apart by their
//! first bytes, not their extension. Pickles go through [`pickle`], a small unpickler with an
//! allowlist of globals that never imports or calls anything: a file that asks for
//! `os.system`, `builtins.eval` or any class off the list is refused with
//! [`WeightsError::UnsafePickle`] naming the global and the file.
//!
//! The weights are found inside the usual layouts (plain state dict, Lightning `state_dict`,
//! Motion2VecSets `model`, EMA copies, nested dicts) and their keys normalised by
//! [`LoadOptions`]; see `layout.rs`. [`check`], [`expected_by`], [`build_model`] and
//! [`var_builder`] then match a checkpoint with a candle model and report every missing,
//! unexpected, misshapen or mistyped tensor.
//!
//! Not supported (typed errors): the legacy pre-1.6 `torch.save` format, TorchScript archives,
//! sharded checkpoints (one file at a time), quantized and sparse tensors, and dtypes candle has
//! no equivalent for (`uint64`, complex, float8 other than `e4m3fn`).

pub(crate) mod archive;
mod check;
mod error;
mod layout;
pub mod pickle;
mod safetensors_file;
mod torch;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::Tensor;

pub use check::{
    DTypeMismatch, Expected, Found, LoadReport, MismatchReport, Missing, Requested, ShapeMismatch, build_model, check,
    expected_by, var_builder,
};
pub use error::WeightsError;
pub use layout::{BARE_TENSOR_KEY, EMA_KEYS, EMA_PREFIX, STATE_DICT_KEYS, Selection, select as select_tensors};

/// How to find and name the weights in a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Take the EMA copy of the weights when the checkpoint has one (`ema`, `model_ema`,
    /// `ema_state_dict`, … or `model_ema.*` keys); fall back to the regular weights otherwise
    /// (`metadata["checkpoint.ema"]` says which).
    pub prefer_ema: bool,
    /// Prefixes removed from the start of every key, repeatedly.
    pub strip_prefixes: Vec<String>,
    /// Keep only the keys under this prefix, without it (e.g. `first_stage_model.` for the
    /// autoencoder of a latent diffusion checkpoint). Applied after stripping.
    pub select_prefix: Option<String>,
}

impl Default for LoadOptions {
    /// No EMA, strip `module.` (DataParallel), `_orig_mod.` (`torch.compile`) and `model.`
    /// (Lightning modules wrapping `self.model`), no selection.
    fn default() -> Self {
        Self {
            prefer_ema: false,
            strip_prefixes: vec!["module.".into(), "_orig_mod.".into(), "model.".into()],
            select_prefix: None,
        }
    }
}

/// The on-disk format a checkpoint was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointFormat {
    SafeTensors,
    /// A `torch.save` zip archive with a pickle.
    TorchZip,
}

/// Weights loaded into CPU memory, keyed by their arranged names.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub tensors: BTreeMap<String, Tensor>,
    pub source: PathBuf,
    pub format: CheckpointFormat,
    /// safetensors `__metadata__`; for pickles, top-level scalars (`epoch`, `global_step`, …)
    /// and flattened hyper-parameters (`hyper_parameters.lr`). Keys starting `checkpoint.` say
    /// what the loader chose (`checkpoint.layout`, `checkpoint.ema`, `checkpoint.format`).
    pub metadata: BTreeMap<String, String>,
}

/// Load every tensor of a checkpoint file, arranged by `opts`.
pub fn load_checkpoint(path: &Path, opts: &LoadOptions) -> Result<Checkpoint, WeightsError> {
    let meta = std::fs::metadata(path).map_err(|e| WeightsError::io(path, e))?;
    let unsupported = |what: String| WeightsError::UnsupportedFormat {
        path: path.to_path_buf(),
        what,
    };
    if meta.is_dir() {
        return Err(unsupported(
            "a directory, not a checkpoint file (sharded checkpoints are not supported)".into(),
        ));
    }
    let mut head = [0u8; 16];
    let n = {
        let mut file = File::open(path).map_err(|e| WeightsError::io(path, e))?;
        let mut n = 0;
        while n < head.len() {
            match file.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(WeightsError::io(path, e)),
            }
        }
        n
    };
    let head = &head[..n];
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if head.is_empty() {
        return Err(WeightsError::Truncated {
            path: path.to_path_buf(),
            detail: "the file is empty".into(),
        });
    }
    if head.starts_with(b"PK") {
        return torch::load(path, opts);
    }
    if head.len() > 8 && head[8] == b'{' || ext == "safetensors" {
        return safetensors_file::load(path, opts);
    }
    if head[0] == 0x80 {
        return Err(unsupported(
            "a legacy torch.save file (torch < 1.6 or _use_new_zipfile_serialization=False); \
             re-save it with a current torch"
                .into(),
        ));
    }
    if head.len() > 2 && head[..2] == [0x1f, 0x8b] {
        return Err(unsupported("a gzip file, not a checkpoint".into()));
    }
    Err(unsupported(format!(
        "neither a torch.save zip archive nor safetensors (starts with {:02x?})",
        &head[..head.len().min(8)]
    )))
}
