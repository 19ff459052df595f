//! STL, binary and ASCII. Reading welds vertices with identical coordinates (exact `f32` bits,
//! `-0.0` counted as `0.0`) so the mesh comes back indexed; facet normals are not kept (per-vertex
//! normals are left empty). Writing computes facet normals from the winding.

use super::{Cursor, check_writable, finish, safe_capacity};
use crate::core::Mesh;
use crate::io::IoError;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// Detects binary or ASCII and decodes. Binary is chosen when the size is exactly
/// `84 + 50 n` for the triangle count `n` in the header (an ASCII file starting with "solid"
/// cannot match by accident in practice); otherwise a file starting with "solid" is ASCII.
pub fn decode(bytes: &[u8], path: &Path) -> Result<Mesh, IoError> {
    if bytes.is_empty() {
        return Err(IoError::malformed(path, "empty file"));
    }
    let binary_count = (bytes.len() >= 84).then(|| u32::from_le_bytes([bytes[80], bytes[81], bytes[82], bytes[83]]));
    if let Some(n) = binary_count
        && 84 + 50 * n as u64 == bytes.len() as u64
    {
        return decode_binary(bytes, path);
    }
    let trimmed = bytes.trim_ascii_start();
    if trimmed.len() >= 5 && trimmed[..5].eq_ignore_ascii_case(b"solid") {
        return decode_ascii(bytes, path);
    }
    match binary_count {
        // Trailing bytes after the declared triangles are tolerated; a short file is not.
        Some(_) => decode_binary(bytes, path),
        None => Err(IoError::malformed(
            path,
            format!(
                "not an STL file: {} bytes is too short for a binary STL and it does not start with \"solid\"",
                bytes.len()
            ),
        )),
    }
}

struct Welder {
    map: HashMap<[u32; 3], u32>,
    mesh: Mesh,
}

impl Welder {
    fn new(triangles: usize) -> Self {
        Self {
            map: HashMap::with_capacity(triangles / 2 + 3),
            mesh: Mesh {
                positions: Vec::with_capacity(triangles / 2 + 3),
                triangles: Vec::with_capacity(triangles),
                ..Default::default()
            },
        }
    }

    fn vertex(&mut self, p: [f32; 3]) -> u32 {
        // `+ 0.0` turns -0.0 into 0.0 so both weld together.
        let p = p.map(|c| c + 0.0);
        let positions = &mut self.mesh.positions;
        *self.map.entry(p.map(f32::to_bits)).or_insert_with(|| {
            positions.push(p);
            (positions.len() - 1) as u32
        })
    }

    fn triangle(&mut self, t: [[f32; 3]; 3]) {
        let tri = t.map(|p| self.vertex(p));
        self.mesh.triangles.push(tri);
    }
}

fn decode_binary(bytes: &[u8], path: &Path) -> Result<Mesh, IoError> {
    let mut cur = Cursor::new(bytes, 80, path);
    let n = u32::from_le_bytes(cur.array::<4>(&|| "the triangle count".to_string())?);
    IoError::check_size(path, u64::from(n) * 3)?;
    let need = u64::from(n) * 50;
    if need > cur.remaining() as u64 {
        return Err(IoError::malformed(
            path,
            format!(
                "truncated binary STL: the header declares {n} triangles ({} bytes) but the file has {} bytes",
                84 + need,
                bytes.len()
            ),
        ));
    }
    let mut welder = Welder::new(safe_capacity(u64::from(n), 50, cur.remaining()));
    for i in 0..n {
        let rec = cur.take(50, &|| format!("triangle {i}"))?;
        let f = |k: usize| f32::from_le_bytes([rec[4 * k], rec[4 * k + 1], rec[4 * k + 2], rec[4 * k + 3]]);
        // rec[0..12] is the facet normal, rec[48..50] the attribute byte count: both ignored.
        welder.triangle([[f(3), f(4), f(5)], [f(6), f(7), f(8)], [f(9), f(10), f(11)]]);
    }
    finish(welder.mesh, path)
}

fn decode_ascii(bytes: &[u8], path: &Path) -> Result<Mesh, IoError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        IoError::malformed(
            path,
            format!(
                "starts with \"solid\" but is neither a binary STL of the right size nor ASCII text (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })?;
    let mut welder = Welder::new(text.len() / 200);
    let mut facet: Vec<[f32; 3]> = Vec::with_capacity(3);
    let mut in_facet = false;
    let mut facets = 0usize;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let bad = |what: String| IoError::malformed(path, format!("ASCII STL line {line_no}: {what}"));
        let mut t = line.split_ascii_whitespace();
        let Some(keyword) = t.next() else { continue };
        match keyword.to_ascii_lowercase().as_str() {
            "solid" | "endsolid" | "outer" | "endloop" => {}
            "facet" => {
                if in_facet {
                    return Err(bad("facet inside a facet (missing endfacet)".into()));
                }
                in_facet = true;
                facet.clear();
            }
            "vertex" => {
                if !in_facet {
                    return Err(bad("vertex outside a facet".into()));
                }
                let mut p = [0f32; 3];
                for c in &mut p {
                    let tok = t
                        .next()
                        .ok_or_else(|| bad("vertex has fewer than 3 coordinates".into()))?;
                    *c = tok.parse().map_err(|_| bad(format!("{tok:?} is not a number")))?;
                }
                facet.push(p);
            }
            "endfacet" => {
                if !in_facet {
                    return Err(bad("endfacet without facet".into()));
                }
                in_facet = false;
                if facet.len() < 3 {
                    return Err(bad(format!("facet {facets} has {} vertices, expected 3", facet.len())));
                }
                for k in 1..facet.len() - 1 {
                    welder.triangle([facet[0], facet[k], facet[k + 1]]);
                }
                facets += 1;
            }
            other => return Err(bad(format!("unexpected {other:?}"))),
        }
    }
    if in_facet {
        return Err(IoError::malformed(
            path,
            "truncated ASCII STL: the last facet has no endfacet",
        ));
    }
    finish(welder.mesh, path)
}

fn facet_normal(mesh: &Mesh, t: &[u32; 3]) -> [f32; 3] {
    let [a, b, c] = t.map(|i| mesh.positions[i as usize].map(f64::from));
    let u = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    let v = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
    let n = [
        u[1] * v[2] - u[2] * v[1],
        u[2] * v[0] - u[0] * v[2],
        u[0] * v[1] - u[1] * v[0],
    ];
    let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
    if len > 0.0 && len.is_finite() {
        n.map(|x| (x / len) as f32)
    } else {
        [0.0; 3]
    }
}

/// Binary STL: 80-byte header (not starting with "solid"), count, 50 bytes per triangle.
pub fn encode_binary(mesh: &Mesh, w: &mut dyn Write) -> std::io::Result<()> {
    check_writable(mesh)?;
    let n = u32::try_from(mesh.triangles.len()).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "binary STL holds at most 2^32-1 triangles",
        )
    })?;
    let mut header = [b' '; 80];
    let tag = b"binary STL written by latent-workbench";
    header[..tag.len()].copy_from_slice(tag);
    w.write_all(&header)?;
    w.write_all(&n.to_le_bytes())?;
    let mut buf: Vec<u8> = Vec::with_capacity(50 * 1024);
    for t in &mesh.triangles {
        for v in facet_normal(mesh, t) {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        for &i in t {
            for v in mesh.positions[i as usize] {
                buf.extend_from_slice(&v.to_le_bytes());
            }
        }
        buf.extend_from_slice(&[0, 0]);
        if buf.len() >= 50 * 1024 {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    w.write_all(&buf)
}

/// ASCII STL with facet normals.
pub fn encode_ascii(mesh: &Mesh, w: &mut dyn Write) -> std::io::Result<()> {
    use std::fmt::Write as _;
    check_writable(mesh)?;
    let mut s = String::from("solid latent-workbench\n");
    for t in &mesh.triangles {
        let n = facet_normal(mesh, t);
        let _ = writeln!(s, "  facet normal {:e} {:e} {:e}\n    outer loop", n[0], n[1], n[2]);
        for &i in t {
            let p = mesh.positions[i as usize];
            let _ = writeln!(s, "      vertex {:e} {:e} {:e}", p[0], p[1], p[2]);
        }
        s.push_str("    endloop\n  endfacet\n");
        if s.len() >= 1 << 16 {
            w.write_all(s.as_bytes())?;
            s.clear();
        }
    }
    s.push_str("endsolid latent-workbench\n");
    w.write_all(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("t.stl")
    }

    fn quad() -> Mesh {
        Mesh {
            positions: vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0]],
            triangles: vec![[0, 1, 2], [0, 2, 3]],
            ..Default::default()
        }
    }

    #[test]
    fn binary_starting_with_solid_is_still_binary() {
        let mut b = Vec::new();
        encode_binary(&quad(), &mut b).unwrap();
        b[..5].copy_from_slice(b"solid");
        let m = decode(&b, p()).unwrap();
        assert_eq!(m.positions, quad().positions);
        assert_eq!(m.triangles, quad().triangles);
        assert_eq!(&b[84..96], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128, 63], "normal +z");
    }

    #[test]
    fn ascii_welds_and_accepts_signed_zero() {
        let src = "solid x\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 1 1 0\nendloop\nendfacet\n\
                   facet normal 0 0 1\nouter loop\nvertex -0 0 0\nvertex 1 1 0\nvertex 0 1 0\nendloop\nendfacet\nendsolid x\n";
        let m = decode(src.as_bytes(), p()).unwrap();
        assert_eq!(m.positions.len(), 4);
        assert_eq!(m.triangles, quad().triangles);
        let mut a = Vec::new();
        encode_ascii(&m, &mut a).unwrap();
        let back = decode(&a, p()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn bad_inputs() {
        let e = decode(b"", p()).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let e = decode(b"hello", p()).unwrap_err().to_string();
        assert!(e.contains("not an STL"), "{e}");
        let mut b = Vec::new();
        encode_binary(&quad(), &mut b).unwrap();
        let e = decode(&b[..b.len() - 1], p()).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        let e = decode(b"solid x\nfacet normal 0 0 1\nouter loop\nvertex 0 0\n", p())
            .unwrap_err()
            .to_string();
        assert!(e.contains("fewer than 3"), "{e}");
        let e = decode(b"solid x\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\n", p())
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
        let mut b = b"solid ".to_vec();
        b.extend_from_slice(&[0xff; 100]);
        let e = decode(&b, p()).unwrap_err().to_string();
        assert!(e.contains("neither"), "{e}");
    }
}
