//! A latent-space file for the relative-representation tools, read by extension: `.npy` (one
//! array), `.safetensors` (one tensor, or the one named `latents`/`embeddings`) or `.csv` (text,
//! parsed by `methods::relreps::LatentCollection::from_csv`, since its columns mean ids, features
//! and labels there). The caller turns the result into a collection:
//!
//! ```ignore
//! let c = match read_latent_file(path)? {
//!     LatentFile::Array(t) => LatentCollection::from_tensor(t, name)?,
//!     LatentFile::CsvText(text) => LatentCollection::from_csv(&text, name)?,
//! };
//! ```

use super::super::IoError;
use crate::core::LatentTensor;
use std::path::Path;

/// What a latent-space file holds, as read.
#[derive(Debug, Clone, PartialEq)]
pub enum LatentFile {
    Array(LatentTensor),
    CsvText(String),
}

/// Tensor names picked from a multi-tensor `.safetensors` file, in order of preference.
pub const LATENT_TENSOR_NAMES: [&str; 2] = ["latents", "embeddings"];

pub fn read_latent_file(path: &Path) -> Result<LatentFile, IoError> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "npy" => Ok(LatentFile::Array(super::read_npy(path)?)),
        "safetensors" => {
            let mut tensors = super::read_safetensors(path)?;
            let pick = LATENT_TENSOR_NAMES
                .iter()
                .find_map(|want| tensors.iter().position(|t| t.name == *want))
                .or_else(|| (tensors.len() == 1).then_some(0));
            match pick {
                Some(i) => Ok(LatentFile::Array(tensors.swap_remove(i))),
                None => {
                    let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
                    Err(IoError::malformed(
                        path,
                        format!("holds tensors {names:?}; name one `latents` or `embeddings`, or keep one"),
                    ))
                }
            }
        }
        "csv" => {
            let bytes = super::super::atomic::read_bytes(path)?;
            String::from_utf8(bytes)
                .map(LatentFile::CsvText)
                .map_err(|e| IoError::malformed(path, format!("the CSV is not UTF-8 text ({e})")))
        }
        _ => Err(IoError::UnknownFormat {
            path: path.to_path_buf(),
            ext: format!("{ext} (latent spaces: .npy, .safetensors or .csv)"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_named_tensor_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let t = |name: &str| LatentTensor::new(name, vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let two = dir.path().join("two.safetensors");
        super::super::write_safetensors(&two, &[t("embeddings"), t("other")]).unwrap();
        assert!(matches!(read_latent_file(&two).unwrap(), LatentFile::Array(x) if x.name == "embeddings"));
        let ambiguous = dir.path().join("amb.safetensors");
        super::super::write_safetensors(&ambiguous, &[t("p"), t("q")]).unwrap();
        let err = read_latent_file(&ambiguous).unwrap_err().to_string();
        assert!(err.contains("amb.safetensors") && err.contains("latents"), "{err}");
        let csv = dir.path().join("x.csv");
        std::fs::write(&csv, "id,a\n1,2\n").unwrap();
        assert_eq!(
            read_latent_file(&csv).unwrap(),
            LatentFile::CsvText("id,a\n1,2\n".into())
        );
        let err = read_latent_file(&dir.path().join("missing.npy"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.npy"), "{err}");
        let err = read_latent_file(Path::new("z.txt")).unwrap_err().to_string();
        assert!(err.contains("z.txt"), "{err}");
    }
}
