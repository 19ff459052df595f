//! Writes the files a computation described (`core::output`) into a folder: each one atomically
//! (temporary name, then rename), PNG for images, subfolders created as needed.

use super::IoError;
use crate::core::output::{OutputContent, OutputFile};
use std::path::Path;

pub fn write_all(dir: &Path, files: &[OutputFile]) -> Result<(), IoError> {
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| IoError::write(parent, e))?;
        }
        match &f.content {
            OutputContent::Bytes(b) => super::atomic::write_bytes(&path, b)?,
            OutputContent::Image(img) => super::image::write_png(&path, img)?,
        }
    }
    Ok(())
}
