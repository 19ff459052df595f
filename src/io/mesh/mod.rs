//! Mesh files: OBJ, PLY and STL read and write, GLB (glTF 2.0 binary) write.
//!
//! Readers never panic on bad bytes: every problem becomes an [`IoError`] naming the file and
//! what is wrong (a truncated body, a face index out of range, an absurd element count...).
//! Writers go through [`write_atomic`], so a failed write leaves no half file behind.

pub mod glb;
pub mod obj;
pub mod ply;
pub mod stl;

use super::atomic::{read_bytes, write_atomic};
use super::{FileKind, IoError};
use crate::core::Mesh;
use std::path::Path;

/// Reads a mesh, choosing the format by extension (`.obj`, `.ply`, `.stl`, case-insensitive).
pub fn read(path: &Path) -> Result<Mesh, IoError> {
    match FileKind::from_path(path)? {
        FileKind::Obj => obj::decode(&read_bytes(path)?, path),
        FileKind::Ply => ply::decode(&read_bytes(path)?, path),
        FileKind::Stl => stl::decode(&read_bytes(path)?, path),
        FileKind::Glb => Err(IoError::unsupported(path, "reading .glb (it is an export format here)")),
        _ => Err(IoError::unsupported(
            path,
            "mesh reading from this file type (expected .obj, .ply or .stl)",
        )),
    }
}

/// Writes a mesh atomically, choosing the format by extension: `.obj`, `.ply` (binary
/// little-endian), `.stl` (binary) or `.glb`.
pub fn write(path: &Path, mesh: &Mesh) -> Result<(), IoError> {
    match FileKind::from_path(path)? {
        FileKind::Obj => write_atomic(path, |w| obj::encode(mesh, w)),
        FileKind::Ply => write_atomic(path, |w| ply::encode_binary(mesh, w)),
        FileKind::Stl => write_atomic(path, |w| stl::encode_binary(mesh, w)),
        FileKind::Glb => write_atomic(path, |w| glb::encode(mesh, w)),
        _ => Err(IoError::unsupported(
            path,
            "mesh writing to this file type (expected .obj, .ply, .stl or .glb)",
        )),
    }
}

/// Writes the mesh (as [`write`]) and `<stem>.provenance.json` beside it (pretty JSON of how the
/// mesh was made), both atomically.
pub fn write_with_provenance(path: &Path, mesh: &Mesh, provenance: &serde_json::Value) -> Result<(), IoError> {
    write(path, mesh)?;
    let side = path.with_extension("provenance.json");
    let json = serde_json::to_vec_pretty(provenance).map_err(|e| IoError::write(&side, std::io::Error::other(e)))?;
    crate::io::atomic::write_bytes(&side, &json)
}

/// Refuses to encode a mesh whose indices or attribute lengths are inconsistent (encoders
/// index into the attribute arrays and must not panic).
pub(crate) fn check_writable(mesh: &Mesh) -> std::io::Result<()> {
    mesh.validate().map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("cannot write an invalid mesh: {e}"),
        )
    })
}

/// Final check of a decoded mesh: indices in range, attribute lengths, finite coordinates.
pub(crate) fn finish(mesh: Mesh, path: &Path) -> Result<Mesh, IoError> {
    match mesh.validate() {
        Ok(()) => Ok(mesh),
        Err(e) => Err(IoError::malformed(path, e.to_string())),
    }
}

/// A bounds-checked little/big-endian cursor over a byte slice.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8], pos: usize, path: &'a Path) -> Self {
        Self { bytes, pos, path }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes, or a "truncated" error saying what was being read.
    pub(crate) fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<&'a [u8], IoError> {
        if self.remaining() < n {
            return Err(IoError::malformed(
                self.path,
                format!(
                    "truncated file: {} needs {n} bytes at offset {} but only {} remain",
                    what(),
                    self.pos,
                    self.remaining()
                ),
            ));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], IoError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
}

/// Capacity to reserve for `count` items each needing at least `min_bytes` of a body that has
/// `available` bytes: never more than the body could hold, so a lying header cannot make us
/// allocate.
pub(crate) fn safe_capacity(count: u64, min_bytes: usize, available: usize) -> usize {
    let cap = available / min_bytes.max(1);
    usize::try_from(count).unwrap_or(usize::MAX).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_by_extension_is_case_insensitive() {
        let dir = tempfile::tempdir().unwrap();
        let mesh = Mesh {
            positions: vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
            triangles: vec![[0, 1, 2]],
            ..Default::default()
        };
        for name in ["a.OBJ", "b.Ply", "c.sTl"] {
            let p = dir.path().join(name);
            write(&p, &mesh).unwrap();
            let back = read(&p).unwrap();
            assert_eq!(back.positions, mesh.positions, "{name}");
            assert_eq!(back.triangles, mesh.triangles, "{name}");
        }
        let glb = dir.path().join("d.GLB");
        write(&glb, &mesh).unwrap();
        assert!(matches!(read(&glb), Err(IoError::Unsupported { .. })));
        assert!(matches!(
            read(&dir.path().join("x.nii")),
            Err(IoError::Unsupported { .. })
        ));
        assert!(matches!(
            read(&dir.path().join("x.foo")),
            Err(IoError::UnknownFormat { .. })
        ));
        assert!(matches!(
            read(&dir.path().join("missing.obj")),
            Err(IoError::NotFound { .. })
        ));
    }

    #[test]
    fn invalid_mesh_is_refused_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let bad = Mesh {
            positions: vec![[0.0; 3]],
            triangles: vec![[0, 1, 2]],
            ..Default::default()
        };
        for name in ["a.obj", "a.ply", "a.stl", "a.glb"] {
            let p = dir.path().join(name);
            let e = write(&p, &bad).unwrap_err();
            assert!(matches!(e, IoError::Write { .. }), "{name}: {e}");
            assert!(e.to_string().contains("invalid mesh") || format!("{e:?}").contains("invalid mesh"));
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
