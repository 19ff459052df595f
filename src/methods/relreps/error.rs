//! One error type for the relative-representation toolkit. Errors that come from a file name it
//! (`source`: the path or label the caller gave when parsing).

use crate::core::linalg::LinalgError;
use crate::core::manifest::ManifestError;
use crate::core::weights::WeightsError;
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RelrepsError {
    #[error("{problem} ({source_name})")]
    Parse { source_name: String, problem: String },
    #[error("latents must be a 2-D array (samples × features), got shape {shape:?} ({source_name})")]
    NotAMatrix { source_name: String, shape: Vec<usize> },
    #[error("latents hold a non-finite value at sample {row}, feature {col} ({source_name})")]
    NonFinite {
        source_name: String,
        row: usize,
        col: usize,
    },
    #[error("the labels name {missing} of the {total} sample ids nowhere, e.g. '{example}' ({source_name})")]
    LabelsMissing {
        source_name: String,
        missing: usize,
        total: usize,
        example: String,
    },
    #[error("no label column '{column}'; columns are {available:?} ({source_name})")]
    NoSuchColumn {
        source_name: String,
        column: String,
        available: Vec<String>,
    },
    #[error("the two spaces share no sample id ({a} vs {b})")]
    NoCommonIds { a: String, b: String },
    #[error("the spaces have {a} and {b} samples; they must hold the same samples in the same order")]
    SampleCountMismatch { a: usize, b: usize },
    #[error("{what} needs the same width in both spaces, got {a} and {b}")]
    WidthMismatch { what: &'static str, a: usize, b: usize },
    #[error("asked for {asked} anchors but the space has only {available} samples")]
    TooManyAnchors { asked: usize, available: usize },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Linalg(#[from] LinalgError),
    /// A model folder that cannot be used (missing manifest, wrong family, bad config).
    #[error("{problem}: {}", path.display())]
    Model { path: PathBuf, problem: String },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// A tensor operation of a model failed (shapes, device); `context` says which step.
    #[error("{context}: {source}")]
    Compute {
        context: String,
        #[source]
        source: candle_core::Error,
    },
}

impl RelrepsError {
    /// Wraps a candle error with the step that failed (`"encoding sprites with models/x"`).
    pub fn compute(context: impl Into<String>) -> impl FnOnce(candle_core::Error) -> Self {
        let context = context.into();
        move |source| Self::Compute { context, source }
    }
}

pub type Result<T> = std::result::Result<T, RelrepsError>;
