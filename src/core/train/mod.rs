//! Training utilities for the demo models the app trains itself (`latent-workbench train NAME`).
//!
//! - [`SeededParams`]: parameters created through a candle `VarBuilder` but initialised from our
//!   own seeded generator (candle's CPU generator cannot be seeded), so a seed fixes the weights.
//! - [`AdamW`]: decoupled weight decay as PyTorch's `torch.optim.AdamW`, with its moments
//!   exposed so a checkpoint can resume bit-identically; [`clip_grad_norm`] by global norm.
//! - [`LrSchedule`]: constant, or linear warm-up then cosine decay.
//! - [`Checkpoint`]: parameters + optimiser state + step as one safetensors file.
//! - [`TrainLoop`]: the step loop, reporting progress (fraction and loss) through a job context
//!   and honouring cancellation between steps.
//!
//! Files are written by a writer the caller passes in (the CLI passes `io::atomic`), since core
//! does not write files itself.

mod adamw;
mod checkpoint;
mod params;
mod schedule;
mod train_loop;

pub use adamw::{AdamW, AdamWConfig, clip_grad_norm};
pub use checkpoint::{Checkpoint, encode_tensors};
pub use params::SeededParams;
pub use schedule::LrSchedule;
pub use train_loop::{CheckpointPolicy, StepOutput, TrainLoop, TrainReport, WriteFn, step_rng};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("cancelled")]
    Cancelled,
    #[error("loss is not finite at step {step} ({loss})")]
    NonFinite { step: usize, loss: f32 },
    #[error("checkpoint {problem}: {}", path.display())]
    Checkpoint { path: PathBuf, problem: String },
    #[error("invalid training setup: {0}")]
    Invalid(String),
}

impl From<TrainError> for crate::core::jobs::JobError {
    fn from(e: TrainError) -> Self {
        match e {
            TrainError::Cancelled => Self::Cancelled,
            other => Self::Failed(other.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, TrainError>;
