//! One error type for the failure search. Errors that come from a file name it.

use crate::core::manifest::ManifestError;
use crate::core::train::TrainError;
use crate::core::weights::WeightsError;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SageError {
    /// A model folder that cannot be used (missing manifest, wrong family, bad config).
    #[error("{problem}: {}", path.display())]
    Model { path: PathBuf, problem: String },
    #[error("{0}")]
    Invalid(String),
    #[error("cancelled")]
    Cancelled,
    #[error("{context}: {source}")]
    Compute {
        context: String,
        #[source]
        source: candle_core::Error,
    },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Train(#[from] TrainError),
}

impl SageError {
    /// A model folder or file that cannot be used, and why.
    pub fn model(path: &Path, problem: impl Into<String>) -> Self {
        Self::Model {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }

    /// Wraps a candle error with what was being done.
    pub fn compute(context: impl Into<String>) -> impl FnOnce(candle_core::Error) -> Self {
        let context = context.into();
        move |source| Self::Compute { context, source }
    }
}

impl From<SageError> for crate::core::jobs::JobError {
    fn from(e: SageError) -> Self {
        match e {
            SageError::Cancelled | SageError::Train(TrainError::Cancelled) => Self::Cancelled,
            other => Self::Failed(other.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, SageError>;
