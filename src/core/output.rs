//! Files a computation wants written, as values: methods describe a run folder (reports, images,
//! tensors) without touching the disk, and `io::output` writes them (atomically, one by one).

use super::image::Image;
use std::path::PathBuf;

pub enum OutputContent {
    /// Bytes written as they are (JSON, safetensors).
    Bytes(Vec<u8>),
    /// An image, written as PNG.
    Image(Image),
}

pub struct OutputFile {
    /// Path relative to the folder the files are written into.
    pub path: PathBuf,
    pub content: OutputContent,
}

impl OutputFile {
    pub fn bytes(path: impl Into<PathBuf>, bytes: Vec<u8>) -> Self {
        Self {
            path: path.into(),
            content: OutputContent::Bytes(bytes),
        }
    }

    pub fn image(path: impl Into<PathBuf>, image: Image) -> Self {
        Self {
            path: path.into(),
            content: OutputContent::Image(image),
        }
    }
}
