//! The element types that files store; values are converted to `f32` on load but the
//! original kind is kept so reports can say what the file held.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScalarKind {
    Bool,
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F16,
    Bf16,
    F32,
    F64,
}

impl ScalarKind {
    /// The numpy-style name (`int16`, `float32`, ...) used in CLI output and reports.
    pub fn name(self) -> &'static str {
        match self {
            ScalarKind::Bool => "bool",
            ScalarKind::U8 => "uint8",
            ScalarKind::I8 => "int8",
            ScalarKind::U16 => "uint16",
            ScalarKind::I16 => "int16",
            ScalarKind::U32 => "uint32",
            ScalarKind::I32 => "int32",
            ScalarKind::U64 => "uint64",
            ScalarKind::I64 => "int64",
            ScalarKind::F16 => "float16",
            ScalarKind::Bf16 => "bfloat16",
            ScalarKind::F32 => "float32",
            ScalarKind::F64 => "float64",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            ScalarKind::Bool | ScalarKind::U8 | ScalarKind::I8 => 1,
            ScalarKind::U16 | ScalarKind::I16 | ScalarKind::F16 | ScalarKind::Bf16 => 2,
            ScalarKind::U32 | ScalarKind::I32 | ScalarKind::F32 => 4,
            ScalarKind::U64 | ScalarKind::I64 | ScalarKind::F64 => 8,
        }
    }
}

impl std::fmt::Display for ScalarKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
