//! Wavefront OBJ: `v` (with optional `r g b` vertex colours), `vn`, `f` (all four index forms,
//! negative indices, polygons fan-triangulated). Other statements (`vt`, `o`, `g`, `usemtl`,
//! `mtllib`, `s`, `l`...) are ignored.

use super::{check_writable, finish};
use crate::core::Mesh;
use crate::io::IoError;
use std::io::Write;
use std::path::Path;

const NO_NORMAL: u32 = u32::MAX;

/// How the file's `vn` references map onto vertices.
#[derive(Clone, Copy, PartialEq)]
enum NormalMap {
    /// No face corner referenced a normal.
    Unused,
    /// Every corner referenced one and each vertex always got the same vector.
    Consistent,
    /// Some corners lacked one, or a vertex got different vectors: recompute.
    Inconsistent,
}

pub fn decode(bytes: &[u8], path: &Path) -> Result<Mesh, IoError> {
    let mut positions: Vec<[f32; 3]> = Vec::new();
    let mut colors: Vec<[f32; 4]> = Vec::new();
    let mut vertices_with_color = 0usize;
    let mut normals: Vec<[f32; 3]> = Vec::new();
    let mut vertex_normal: Vec<u32> = Vec::new();
    let mut normal_map = NormalMap::Unused;
    let mut corners_without_normal = false;
    let mut triangles: Vec<[u32; 3]> = Vec::new();
    let mut face_number = 0usize;
    let mut poly: Vec<(u32, u32)> = Vec::new();

    let mut joined = String::new();
    for (line_no, raw) in LogicalLines::new(bytes) {
        joined.clear();
        joined.push_str(&String::from_utf8_lossy(&raw));
        let line = joined.split('#').next().unwrap_or("").trim();
        let mut tokens = line.split_ascii_whitespace();
        let Some(keyword) = tokens.next() else { continue };
        let bad = |what: &str| IoError::malformed(path, format!("line {line_no}: {what}"));
        match keyword {
            "v" => {
                let mut vals = [0f32; 7];
                let mut n = 0;
                for t in tokens {
                    let v: f32 = t.parse().map_err(|_| bad(&format!("bad vertex number {t:?}")))?;
                    if n < 7 {
                        vals[n] = v;
                    }
                    n += 1;
                }
                if n < 3 {
                    return Err(bad(&format!("vertex has {n} coordinates, expected at least 3")));
                }
                positions.push([vals[0], vals[1], vals[2]]);
                vertex_normal.push(NO_NORMAL);
                // x y z [w] or x y z r g b [a]
                if n >= 6 {
                    let a = if n >= 7 { vals[6] } else { f32::NAN };
                    colors.resize(positions.len() - 1, [1.0, 1.0, 1.0, f32::NAN]);
                    colors.push([vals[3], vals[4], vals[5], a]);
                    vertices_with_color += 1;
                }
            }
            "vn" => {
                let mut vals = [0f32; 3];
                let mut n = 0;
                for t in tokens {
                    let v: f32 = t.parse().map_err(|_| bad(&format!("bad normal number {t:?}")))?;
                    if n < 3 {
                        vals[n] = v;
                    }
                    n += 1;
                }
                if n < 3 {
                    return Err(bad(&format!("normal has {n} components, expected 3")));
                }
                normals.push(vals);
            }
            "f" | "fo" => {
                face_number += 1;
                poly.clear();
                for t in tokens {
                    let mut parts = t.split('/');
                    let v = parts.next().unwrap_or("");
                    let _vt = parts.next();
                    let vn = parts.next().filter(|s| !s.is_empty());
                    let vi = resolve(v, positions.len()).map_err(|e| {
                        bad(&format!(
                            "face {face_number} vertex reference {t:?}: {e} (vertices defined so far: {})",
                            positions.len()
                        ))
                    })?;
                    let ni = match vn {
                        None => NO_NORMAL,
                        Some(s) => resolve(s, normals.len()).map_err(|e| {
                            bad(&format!(
                                "face {face_number} normal reference {t:?}: {e} (normals defined so far: {})",
                                normals.len()
                            ))
                        })?,
                    };
                    poly.push((vi, ni));
                }
                if poly.len() < 3 {
                    return Err(bad(&format!(
                        "face {face_number} has {} vertices, expected at least 3",
                        poly.len()
                    )));
                }
                for &(vi, ni) in &poly {
                    if ni == NO_NORMAL {
                        corners_without_normal = true;
                        continue;
                    }
                    if normal_map == NormalMap::Unused {
                        normal_map = NormalMap::Consistent;
                    }
                    let slot = &mut vertex_normal[vi as usize];
                    if *slot == NO_NORMAL {
                        *slot = ni;
                    } else if *slot != ni && normals[*slot as usize] != normals[ni as usize] {
                        normal_map = NormalMap::Inconsistent;
                    }
                }
                for k in 1..poly.len() - 1 {
                    triangles.push([poly[0].0, poly[k].0, poly[k + 1].0]);
                }
            }
            _ => {}
        }
    }

    let n = positions.len();
    let mut mesh = Mesh {
        positions,
        triangles,
        ..Default::default()
    };
    if vertices_with_color == n && n > 0 {
        // Colours are 0..1 floats by convention; some writers use 0..255.
        let scale = if colors.iter().any(|c| c[..3].iter().any(|&v| v > 1.0)) {
            1.0
        } else {
            255.0
        };
        mesh.colors = colors
            .iter()
            .map(|c| {
                let q = |v: f32, s: f32| {
                    if v.is_finite() {
                        (v * s).round().clamp(0.0, 255.0) as u8
                    } else {
                        255
                    }
                };
                [q(c[0], scale), q(c[1], scale), q(c[2], scale), q(c[3], scale)]
            })
            .collect();
    }
    if normal_map == NormalMap::Consistent && corners_without_normal {
        normal_map = NormalMap::Inconsistent;
    }
    match normal_map {
        NormalMap::Consistent => {
            mesh.normals = vertex_normal
                .iter()
                .map(|&i| if i == NO_NORMAL { [0.0; 3] } else { normals[i as usize] })
                .collect();
        }
        NormalMap::Inconsistent => mesh.compute_normals(),
        NormalMap::Unused => {
            // A point cloud listing one normal per vertex, in order.
            if mesh.triangles.is_empty() && normals.len() == n && n > 0 {
                mesh.normals = normals;
            }
        }
    }
    finish(mesh, path)
}

/// A 1-based (or negative, relative) OBJ index to a 0-based one.
fn resolve(s: &str, defined: usize) -> Result<u32, String> {
    let i: i64 = s.parse().map_err(|_| format!("{s:?} is not an index"))?;
    let idx = if i > 0 {
        i - 1
    } else if i < 0 {
        defined as i64 + i
    } else {
        return Err("index 0 is invalid (OBJ indices start at 1)".into());
    };
    if idx < 0 || idx >= defined as i64 {
        return Err(format!("index {i} is out of range"));
    }
    u32::try_from(idx).map_err(|_| format!("index {i} is too large"))
}

/// Lines with `\` continuations joined, numbered from 1 (the number of the first physical line).
struct LogicalLines<'a> {
    rest: &'a [u8],
    line: usize,
}

impl<'a> LogicalLines<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes, line: 0 }
    }
}

impl<'a> Iterator for LogicalLines<'a> {
    type Item = (usize, std::borrow::Cow<'a, [u8]>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let first = self.line + 1;
        let mut out: std::borrow::Cow<'a, [u8]> = std::borrow::Cow::Borrowed(&[]);
        loop {
            let (line, rest) = match self.rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &self.rest[self.rest.len()..]),
            };
            self.rest = rest;
            self.line += 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let (line, cont) = match line.strip_suffix(b"\\") {
                Some(l) => (l, !self.rest.is_empty()),
                None => (line, false),
            };
            if out.is_empty() && !cont {
                return Some((first, std::borrow::Cow::Borrowed(line)));
            }
            let o = out.to_mut();
            o.extend_from_slice(line);
            o.push(b' ');
            if !cont {
                return Some((first, out));
            }
        }
    }
}

/// Writes `v` (with `r g b` in 0..1 when the mesh has colours), `vn` when it has normals, and
/// `f` lines (1-based). Scalars and alpha are not representable in OBJ and are dropped.
pub fn encode(mesh: &Mesh, w: &mut dyn Write) -> std::io::Result<()> {
    use std::fmt::Write as _;
    check_writable(mesh)?;
    let mut s = String::with_capacity(1 << 16);
    let flush = |s: &mut String, w: &mut dyn Write, force: bool| -> std::io::Result<()> {
        if force || s.len() > 1 << 16 {
            w.write_all(s.as_bytes())?;
            s.clear();
        }
        Ok(())
    };
    let _ = writeln!(
        s,
        "# written by latent-workbench\n# {} vertices, {} triangles",
        mesh.positions.len(),
        mesh.triangles.len()
    );
    let has_colors = !mesh.colors.is_empty();
    for (i, p) in mesh.positions.iter().enumerate() {
        let _ = write!(s, "v {} {} {}", p[0], p[1], p[2]);
        if has_colors {
            let c = mesh.colors[i];
            let f = |v: u8| f32::from(v) / 255.0;
            let _ = write!(s, " {} {} {}", f(c[0]), f(c[1]), f(c[2]));
        }
        s.push('\n');
        flush(&mut s, w, false)?;
    }
    for n in &mesh.normals {
        let _ = writeln!(s, "vn {} {} {}", n[0], n[1], n[2]);
        flush(&mut s, w, false)?;
    }
    let has_normals = !mesh.normals.is_empty();
    for t in &mesh.triangles {
        let [a, b, c] = t.map(|i| u64::from(i) + 1);
        if has_normals {
            let _ = writeln!(s, "f {a}//{a} {b}//{b} {c}//{c}");
        } else {
            let _ = writeln!(s, "f {a} {b} {c}");
        }
        flush(&mut s, w, false)?;
    }
    flush(&mut s, w, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("t.obj")
    }

    #[test]
    fn all_face_forms_and_negative_indices() {
        let src = b"# quad and triangle\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvn 0 0 1\n\
            f 1/1/1 2/1/1 3/1/1 4/1/1\nf -4//1 -2//1 -1//1\ng x\nusemtl m\nf 1/1 2/1 3/1\nf 1 3 4\n";
        let m = decode(src, p()).unwrap();
        assert_eq!(m.positions.len(), 4);
        assert_eq!(m.triangles, vec![[0, 1, 2], [0, 2, 3], [0, 2, 3], [0, 1, 2], [0, 2, 3]]);
        // Some corners had no normal: recomputed, still +z for this flat quad.
        assert_eq!(m.normals.len(), 4);
        for n in &m.normals {
            assert!((n[2] - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn consistent_normals_are_kept_and_colours_read() {
        let src = b"v 0 0 0 1 0 0\nv 1 0 0 0 1 0\nv 0 1 0 0 0 1\nvn 0 0 -1\nf 1//1 2//1 3//1\n";
        let m = decode(src, p()).unwrap();
        assert_eq!(m.normals, vec![[0.0, 0.0, -1.0]; 3]);
        assert_eq!(m.colors, vec![[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255]]);
    }

    #[test]
    fn line_continuation_and_crlf() {
        let src = b"v 0 0 0\r\nv 1 0 \\\r\n 0\r\nv 0 1 0\r\nf 1 2 \\\n3\r\n";
        let m = decode(src, p()).unwrap();
        assert_eq!(m.positions[1], [1.0, 0.0, 0.0]);
        assert_eq!(m.triangles, vec![[0, 1, 2]]);
    }

    #[test]
    fn errors_name_the_face() {
        let e = decode(b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\nf 1 2 9\n", p()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("face 2") && msg.contains("line 5"), "{msg}");
        let e = decode(b"v 0 0 0\nf 0 1 1\n", p()).unwrap_err();
        assert!(e.to_string().contains("index 0"), "{e}");
        let e = decode(b"v 0 0\n", p()).unwrap_err();
        assert!(e.to_string().contains("coordinates"), "{e}");
        let e = decode(b"v 0 0 zero\n", p()).unwrap_err();
        assert!(e.to_string().contains("zero"), "{e}");
        let e = decode(b"v 0 0 0\nv 0 0 0\nf 1 2\n", p()).unwrap_err();
        assert!(e.to_string().contains("at least 3"), "{e}");
        let e = decode(b"v nan 0 0\n", p()).unwrap_err();
        assert!(e.to_string().contains("non-finite"), "{e}");
    }
}
