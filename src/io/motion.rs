//! Motion sequences (4D) ⇄ files.
//!
//! Read: a folder of one mesh or point cloud per frame (`.ply`, `.obj`, `.stl`, ordered by the
//! numbers in their names, so `frame_2` comes before `frame_10`), an array of shape T×N×3 (`.npy`,
//! or a `.npz` holding `points`/`vertices` and optionally `faces`/`triangles` of shape F×3).
//! Write: one file per frame (`frame_0000.obj` ...) or one animated `.glb` (morph targets).
//! Every writer is atomic; a sequence is validated before anything is written.

use super::atomic::write_atomic;
use super::{FileKind, IoError, array, mesh};
use crate::core::motion::MotionSequence;
use crate::core::weights::archive::Archive;
use crate::core::{LatentTensor, Mesh};
use std::path::{Path, PathBuf};

/// Frame rate given to sequences whose files carry none.
pub const DEFAULT_FPS: f32 = 10.0;
/// The largest `.npz` member read (as for `.npy`, 8 GiB of f32).
const MAX_NPZ_MEMBER: u64 = super::MAX_ELEMENTS * 4;

/// Reads a sequence from a folder of frames, a `.npy` (T×N×3) or a `.npz`.
pub fn read(path: &Path) -> Result<MotionSequence, IoError> {
    if path.is_dir() {
        return read_folder(path);
    }
    let lower = path.to_string_lossy().to_lowercase();
    if lower.ends_with(".npz") {
        return read_npz(path);
    }
    match FileKind::from_path(path)? {
        FileKind::Npy => from_tensor(&array::read_npy(path)?, path),
        _ => Err(IoError::unsupported(
            path,
            "motion sequence from this file (expected a folder of frames, a .npy of T×N×3 or a .npz)",
        )),
    }
}

/// The frame files of a folder in playback order: mesh files sorted by the numbers in their names.
pub fn frame_files(dir: &Path) -> Result<Vec<PathBuf>, IoError> {
    let entries = std::fs::read_dir(dir).map_err(|e| IoError::read(dir, e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && FileKind::from_path(p).is_ok_and(|k| k.is_mesh() && k != FileKind::Glb))
        .collect();
    files.sort_by_key(|p| natural_key(p));
    Ok(files)
}

/// A file name split into text and numbers, so that numbers compare by value.
fn natural_key(path: &Path) -> Vec<(String, u64)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut key = Vec::new();
    let mut text = String::new();
    let mut digits = String::new();
    for c in name.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            if !digits.is_empty() {
                key.push((std::mem::take(&mut text), digits.parse().unwrap_or(u64::MAX)));
                digits.clear();
            }
            text.push(c);
        }
    }
    key.push((text, digits.parse().unwrap_or(0)));
    key
}

fn read_folder(dir: &Path) -> Result<MotionSequence, IoError> {
    let files = frame_files(dir)?;
    if files.is_empty() {
        return Err(IoError::malformed(
            dir,
            "the folder holds no frame files (.ply, .obj or .stl)",
        ));
    }
    let meshes: Vec<Mesh> = files.iter().map(|f| mesh::read(f)).collect::<Result<_, _>>()?;
    // A mesh sequence when every frame is a mesh with frame 0's faces; otherwise the vertices are
    // a point-cloud sequence (scans, or meshes re-extracted per frame).
    let same_topology = !meshes[0].triangles.is_empty()
        && meshes
            .iter()
            .all(|m| m.triangles == meshes[0].triangles && m.positions.len() == meshes[0].positions.len());
    let triangles = if same_topology {
        meshes[0].triangles.clone()
    } else {
        Vec::new()
    };
    let seq = MotionSequence {
        frames: meshes.into_iter().map(|m| m.positions).collect(),
        triangles,
        fps: DEFAULT_FPS,
    };
    seq.validate().map_err(|e| IoError::malformed(dir, e.to_string()))?;
    Ok(seq)
}

/// A T×N×3 array as a point sequence.
pub fn from_tensor(t: &LatentTensor, path: &Path) -> Result<MotionSequence, IoError> {
    let &[frames, n, 3] = t.shape() else {
        return Err(IoError::malformed(
            path,
            format!("a motion sequence needs shape T×N×3, this array is {:?}", t.shape()),
        ));
    };
    let values = t.values();
    let seq = MotionSequence::points(
        (0..frames)
            .map(|f| {
                values[f * n * 3..(f + 1) * n * 3]
                    .chunks_exact(3)
                    .map(|c| [c[0], c[1], c[2]])
                    .collect()
            })
            .collect(),
        DEFAULT_FPS,
    );
    seq.validate().map_err(|e| IoError::malformed(path, e.to_string()))?;
    Ok(seq)
}

fn read_npz(path: &Path) -> Result<MotionSequence, IoError> {
    let bad = |e: crate::core::weights::WeightsError| IoError::malformed(path, e.to_string());
    let mut archive = Archive::open(path).map_err(bad)?;
    let names: Vec<String> = archive.names().map(str::to_string).collect();
    let mut member = |stem: &str| -> Result<Option<LatentTensor>, IoError> {
        let name = format!("{stem}.npy");
        if !names.contains(&name) {
            return Ok(None);
        }
        let bytes = archive.read(&name, MAX_NPZ_MEMBER).map_err(bad)?;
        array::decode_npy(&bytes, &path.join(&name)).map(Some)
    };
    let points = match (member("points")?, member("vertices")?) {
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) => {
            return Err(IoError::malformed(
                path,
                format!("the .npz has no `points` or `vertices` array (it holds {names:?})"),
            ));
        }
    };
    let mut seq = from_tensor(&points, path)?;
    if let Some(faces) = member("faces")?.or(member("triangles")?) {
        seq.triangles = faces_of(&faces, path)?;
        seq.validate().map_err(|e| IoError::malformed(path, e.to_string()))?;
    }
    Ok(seq)
}

/// An F×3 array of whole non-negative numbers as triangles.
fn faces_of(t: &LatentTensor, path: &Path) -> Result<Vec<[u32; 3]>, IoError> {
    let &[_, 3] = t.shape() else {
        return Err(IoError::malformed(
            path,
            format!("faces must have shape F×3, this array is {:?}", t.shape()),
        ));
    };
    t.values()
        .chunks_exact(3)
        .map(|c| {
            let mut tri = [0u32; 3];
            for (k, v) in c.iter().enumerate() {
                if !(v.fract() == 0.0 && *v >= 0.0 && *v < u32::MAX as f32) {
                    return Err(IoError::malformed(
                        path,
                        format!("face index {v} is not a vertex number"),
                    ));
                }
                tri[k] = *v as u32;
            }
            Ok(tri)
        })
        .collect()
}

/// Writes one file per frame into `dir` (created when missing) as `frame_0000.EXT`, EXT being
/// `obj` or `ply`; returns the paths written.
pub fn write_frames(dir: &Path, seq: &MotionSequence, ext: &str) -> Result<Vec<PathBuf>, IoError> {
    seq.validate().map_err(|e| {
        IoError::write(
            dir,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("invalid sequence: {e}")),
        )
    })?;
    if !matches!(ext, "obj" | "ply") {
        return Err(IoError::unsupported(
            dir,
            format!("frame format .{ext} (expected obj or ply)"),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| IoError::write(dir, e))?;
    let digits = seq.len().saturating_sub(1).to_string().len().max(4);
    let mut written = Vec::with_capacity(seq.len());
    for t in 0..seq.len() {
        let path = dir.join(format!("frame_{t:0digits$}.{ext}"));
        let frame = match seq.mesh_at(t as f32) {
            Some(m) => m,
            None => Mesh {
                positions: seq.frames[t].clone(),
                ..Default::default()
            },
        };
        mesh::write(&path, &frame)?;
        written.push(path);
    }
    Ok(written)
}

/// Writes the sequence as one animated `.glb` (morph targets, see `mesh::glb::encode_animated`).
pub fn write_glb(path: &Path, seq: &MotionSequence) -> Result<(), IoError> {
    write_atomic(path, |w| mesh::glb::encode_animated(seq, w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_names_sort_by_value() {
        let mut names = vec!["f10.ply", "f2.ply", "f1.ply", "a.ply", "f02b.ply"];
        names.sort_by(|a, b| natural_key(Path::new(a)).cmp(&natural_key(Path::new(b))));
        assert_eq!(names, vec!["a.ply", "f1.ply", "f2.ply", "f02b.ply", "f10.ply"]);
    }

    #[test]
    fn tensors_of_the_wrong_shape_are_refused_by_name() {
        let t = LatentTensor::new("x", vec![2, 3], vec![0.0; 6]).unwrap();
        let e = from_tensor(&t, Path::new("seq.npy")).unwrap_err().to_string();
        assert!(e.contains("T×N×3") && e.contains("seq.npy"), "{e}");
        let t = LatentTensor::new("x", vec![2, 1, 3], vec![0.0, 0.0, 0.0, 1.0, f32::NAN, 0.0]).unwrap();
        let e = from_tensor(&t, Path::new("seq.npy")).unwrap_err().to_string();
        assert!(e.contains("not finite"), "{e}");
        let f = LatentTensor::new("f", vec![1, 3], vec![0.0, 1.5, 2.0]).unwrap();
        assert!(faces_of(&f, Path::new("s.npz")).is_err());
    }
}
