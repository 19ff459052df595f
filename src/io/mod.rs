//! Files ⇄ core values. Every reader returns a typed [`IoError`] naming the file and the
//! problem (never panics on bad bytes); every writer is atomic (see [`atomic`]).

pub mod array;
pub mod atomic;
pub mod demo_assets;
pub mod image;
pub mod mesh;
pub mod motion;
pub mod nifti;
pub mod output;

use crate::core::Asset;
use std::path::{Path, PathBuf};

/// Largest number of elements a reader will allocate for one file (8 GiB as `f32`). Larger
/// headers are refused before any allocation so a corrupt size cannot exhaust memory.
pub const MAX_ELEMENTS: u64 = 1 << 31;

#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("file not found: {}", path.display())]
    NotFound { path: PathBuf },
    #[error("cannot read ({source}): {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write ({source}): {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a valid file of the expected format.
    #[error("{problem}: {}", path.display())]
    Malformed { path: PathBuf, problem: String },
    /// A valid file using a feature we do not handle (a datatype, an encoding...).
    #[error("unsupported {problem}: {}", path.display())]
    Unsupported { path: PathBuf, problem: String },
    #[error("unknown file type {ext:?} (expected .nii, .nii.gz, .png, .jpg, .tif, .obj, .ply, .stl, .glb, .npy, .npz, .safetensors or a folder of frames): {}", path.display())]
    UnknownFormat { path: PathBuf, ext: String },
    #[error("too large for memory ({elements} elements, limit {MAX_ELEMENTS}): {}", path.display())]
    TooLarge { path: PathBuf, elements: u64 },
}

impl IoError {
    pub fn malformed(path: &Path, problem: impl Into<String>) -> Self {
        IoError::Malformed {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }
    pub fn unsupported(path: &Path, problem: impl Into<String>) -> Self {
        IoError::Unsupported {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }
    /// Maps an OS error on reading, turning "not found" into its own variant.
    pub fn read(path: &Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            IoError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            IoError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    }
    pub fn write(path: &Path, source: std::io::Error) -> Self {
        IoError::Write {
            path: path.to_path_buf(),
            source,
        }
    }
    /// Refuses element counts over [`MAX_ELEMENTS`].
    pub fn check_size(path: &Path, elements: u64) -> Result<(), Self> {
        if elements > MAX_ELEMENTS {
            Err(IoError::TooLarge {
                path: path.to_path_buf(),
                elements,
            })
        } else {
            Ok(())
        }
    }
}

/// The formats we know, by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Nifti,
    Image,
    Obj,
    Ply,
    Stl,
    Glb,
    Npy,
    Safetensors,
}

impl FileKind {
    /// Detects the format from the file name (case-insensitive; `.nii.gz` counts as NIfTI).
    pub fn from_path(path: &Path) -> Result<Self, IoError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let ext = name.rsplit_once('.').map(|(_, e)| e.to_string()).unwrap_or_default();
        let kind = match ext.as_str() {
            "nii" => FileKind::Nifti,
            "gz" if name.ends_with(".nii.gz") => FileKind::Nifti,
            "png" | "jpg" | "jpeg" | "tif" | "tiff" => FileKind::Image,
            "obj" => FileKind::Obj,
            "ply" => FileKind::Ply,
            "stl" => FileKind::Stl,
            "glb" => FileKind::Glb,
            "npy" => FileKind::Npy,
            "safetensors" => FileKind::Safetensors,
            _ => {
                return Err(IoError::UnknownFormat {
                    path: path.to_path_buf(),
                    ext,
                });
            }
        };
        Ok(kind)
    }

    pub fn is_mesh(self) -> bool {
        matches!(self, FileKind::Obj | FileKind::Ply | FileKind::Stl | FileKind::Glb)
    }
}

/// Loads any supported file into an [`Asset`]. A PLY/OBJ with vertices but no faces becomes a
/// point cloud; a folder of frames or a `.npz` becomes a motion sequence (see [`motion`]).
pub fn load(path: &Path) -> Result<Asset, IoError> {
    if path.is_dir() || path.to_string_lossy().to_lowercase().ends_with(".npz") {
        return motion::read(path).map(Asset::Motion);
    }
    match FileKind::from_path(path)? {
        FileKind::Nifti => nifti::read(path).map(Asset::Volume),
        FileKind::Image => image::read(path).map(Asset::Image),
        FileKind::Obj | FileKind::Ply | FileKind::Stl => {
            let m = mesh::read(path)?;
            if m.triangles.is_empty() {
                let mut pc = crate::core::PointCloud::new(m.positions);
                pc.normals = m.normals;
                pc.colors = m.colors;
                pc.scalars = m.scalars;
                Ok(Asset::PointCloud(pc))
            } else {
                Ok(Asset::Mesh(m))
            }
        }
        FileKind::Glb => Err(IoError::unsupported(path, "reading .glb (it is an export format here)")),
        FileKind::Npy => array::read_npy(path).map(|t| Asset::Tensors(vec![t])),
        FileKind::Safetensors => array::read_safetensors(path).map(Asset::Tensors),
    }
}
