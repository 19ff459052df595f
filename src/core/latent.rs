//! `LatentTensor`: an n-dimensional array plus where it came from.

use super::scalar::ScalarKind;
use serde::{Deserialize, Serialize};

/// How a latent was made, so every export can say so.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatentOrigin {
    /// Model id (manifest name) that produced it, empty for a tensor loaded from a file.
    pub model: String,
    /// The input it was computed from (a path, or a description).
    pub input: String,
    /// Free text: the operation and its parameters.
    pub note: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("tensor shape {shape:?} needs {expected} values but {found} were given")]
pub struct TensorShapeError {
    pub shape: Vec<usize>,
    pub expected: usize,
    pub found: usize,
}

/// Row-major (C order) `f32` values with a shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatentTensor {
    /// The tensor's name inside its file (safetensors key), or a label.
    pub name: String,
    shape: Vec<usize>,
    values: Vec<f32>,
    /// What the file stored before conversion to `f32`.
    pub source_kind: ScalarKind,
    pub origin: LatentOrigin,
}

impl LatentTensor {
    pub fn new(name: impl Into<String>, shape: Vec<usize>, values: Vec<f32>) -> Result<Self, TensorShapeError> {
        let expected = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .unwrap_or(usize::MAX);
        if expected != values.len() {
            return Err(TensorShapeError {
                shape,
                expected,
                found: values.len(),
            });
        }
        Ok(Self {
            name: name.into(),
            shape,
            values,
            source_kind: ScalarKind::F32,
            origin: LatentOrigin::default(),
        })
    }
    pub fn with_source_kind(mut self, kind: ScalarKind) -> Self {
        self.source_kind = kind;
        self
    }
    pub fn with_origin(mut self, origin: LatentOrigin) -> Self {
        self.origin = origin;
        self
    }
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn values(&self) -> &[f32] {
        &self.values
    }
    pub fn into_values(self) -> Vec<f32> {
        self.values
    }
    pub fn len(&self) -> usize {
        self.values.len()
    }
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Splits the tensor into 2D planes for display: the last two axes are rows × columns and
    /// everything before them is flattened into "channels". Returns `(channels, rows, cols)`.
    pub fn plane_layout(&self) -> (usize, usize, usize) {
        match self.shape.len() {
            0 => (1, 1, 1),
            1 => (1, 1, self.shape[0]),
            n => {
                let rows = self.shape[n - 2];
                let cols = self.shape[n - 1];
                let channels = self.shape[..n - 2].iter().product();
                (channels, rows, cols)
            }
        }
    }
}
