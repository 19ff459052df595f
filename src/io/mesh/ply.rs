//! Stanford PLY: `ascii`, `binary_little_endian` and `binary_big_endian`.
//!
//! Vertex properties read: `x y z`, `nx ny nz`, `red green blue [alpha]` (integer 0..255 or
//! float 0..1) and one scalar (`quality`, `scalar`, `value` or `intensity`, else the first other
//! float property). Faces: the `vertex_indices` (or `vertex_index`) list, any count and index
//! types, polygons fan-triangulated. Every other element and property, lists included, is
//! skipped. A file with vertices and no faces is a point cloud.

use super::{Cursor, check_writable, finish, safe_capacity};
use crate::core::Mesh;
use crate::io::IoError;
use crate::io::atomic::write_atomic;
use std::io::Write;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Format {
    Ascii,
    LittleEndian,
    BigEndian,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Ty {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    F32,
    F64,
}

impl Ty {
    fn parse(s: &str) -> Option<Ty> {
        Some(match s {
            "char" | "int8" => Ty::I8,
            "uchar" | "uint8" => Ty::U8,
            "short" | "int16" => Ty::I16,
            "ushort" | "uint16" => Ty::U16,
            "int" | "int32" => Ty::I32,
            "uint" | "uint32" => Ty::U32,
            "float" | "float32" => Ty::F32,
            "double" | "float64" => Ty::F64,
            _ => return None,
        })
    }
    fn size(self) -> usize {
        match self {
            Ty::I8 | Ty::U8 => 1,
            Ty::I16 | Ty::U16 => 2,
            Ty::I32 | Ty::U32 | Ty::F32 => 4,
            Ty::F64 => 8,
        }
    }
    fn is_float(self) -> bool {
        matches!(self, Ty::F32 | Ty::F64)
    }
}

#[derive(Clone, Debug)]
enum Kind {
    Scalar(Ty),
    List { count: Ty, item: Ty },
}

#[derive(Clone, Debug)]
struct Property {
    name: String,
    kind: Kind,
}

#[derive(Clone, Debug)]
struct Element {
    name: String,
    count: u64,
    props: Vec<Property>,
}

impl Element {
    /// Fewest body bytes (binary) or tokens (ASCII) one instance can take.
    fn min_size(&self, format: Format) -> usize {
        self.props
            .iter()
            .map(|p| match (format, &p.kind) {
                (Format::Ascii, _) => 1,
                (_, Kind::Scalar(t)) => t.size(),
                (_, Kind::List { count, .. }) => count.size(),
            })
            .sum()
    }
}

struct Header {
    format: Format,
    elements: Vec<Element>,
    body_start: usize,
}

fn parse_header(bytes: &[u8], path: &Path) -> Result<Header, IoError> {
    if bytes.is_empty() {
        return Err(IoError::malformed(path, "empty file"));
    }
    if !bytes.starts_with(b"ply\n") && !bytes.starts_with(b"ply\r\n") {
        return Err(IoError::malformed(
            path,
            "not a PLY file (it does not start with \"ply\")",
        ));
    }
    let mut pos = 0usize;
    let mut format = None;
    let mut elements: Vec<Element> = Vec::new();
    let mut line_no = 0usize;
    loop {
        let Some(len) = bytes[pos..].iter().position(|&b| b == b'\n') else {
            return Err(IoError::malformed(path, "PLY header has no end_header line"));
        };
        let raw = &bytes[pos..pos + len];
        pos += len + 1;
        line_no += 1;
        let line = std::str::from_utf8(raw)
            .map_err(|_| IoError::malformed(path, format!("PLY header line {line_no} is not text")))?
            .trim();
        let mut t = line.split_ascii_whitespace();
        let bad = |what: String| IoError::malformed(path, format!("PLY header line {line_no}: {what}"));
        match t.next() {
            None | Some("ply") | Some("comment") | Some("obj_info") => {}
            Some("format") => {
                format = Some(match t.next() {
                    Some("ascii") => Format::Ascii,
                    Some("binary_little_endian") => Format::LittleEndian,
                    Some("binary_big_endian") => Format::BigEndian,
                    other => return Err(bad(format!("unknown format {:?}", other.unwrap_or("")))),
                });
                match t.next() {
                    Some("1.0") | Some("1") | None => {}
                    Some(v) => return Err(IoError::unsupported(path, format!("PLY version {v}"))),
                }
            }
            Some("element") => {
                let name = t.next().ok_or_else(|| bad("element without a name".into()))?;
                let count: u64 = t
                    .next()
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| bad(format!("element {name} has no valid count")))?;
                IoError::check_size(path, count)?;
                elements.push(Element {
                    name: name.to_string(),
                    count,
                    props: Vec::new(),
                });
            }
            Some("property") => {
                let el = elements
                    .last_mut()
                    .ok_or_else(|| bad("property before any element".into()))?;
                let ty = t.next().ok_or_else(|| bad("property without a type".into()))?;
                let kind = if ty == "list" {
                    let c = t.next().unwrap_or("");
                    let i = t.next().unwrap_or("");
                    let count = Ty::parse(c).ok_or_else(|| bad(format!("unknown list count type {c:?}")))?;
                    if count.is_float() {
                        return Err(bad(format!("list count type {c:?} is not an integer type")));
                    }
                    let item = Ty::parse(i).ok_or_else(|| bad(format!("unknown list item type {i:?}")))?;
                    Kind::List { count, item }
                } else {
                    Kind::Scalar(Ty::parse(ty).ok_or_else(|| bad(format!("unknown property type {ty:?}")))?)
                };
                let name = t.next().ok_or_else(|| bad("property without a name".into()))?;
                el.props.push(Property {
                    name: name.to_string(),
                    kind,
                });
            }
            Some("end_header") => break,
            Some(other) => return Err(bad(format!("unexpected keyword {other:?}"))),
        }
    }
    let format = format.ok_or_else(|| IoError::malformed(path, "PLY header has no format line"))?;
    Ok(Header {
        format,
        elements,
        body_start: pos,
    })
}

/// The body, read value by value.
enum Body<'a> {
    Ascii {
        bytes: &'a [u8],
        pos: usize,
        path: &'a Path,
    },
    Binary {
        cur: Cursor<'a>,
        big: bool,
    },
}

impl<'a> Body<'a> {
    fn remaining(&self) -> usize {
        match self {
            Body::Ascii { bytes, pos, .. } => bytes.len().saturating_sub(*pos),
            Body::Binary { cur, .. } => cur.remaining(),
        }
    }

    fn value(&mut self, ty: Ty, what: &dyn Fn() -> String) -> Result<f64, IoError> {
        match self {
            Body::Ascii { bytes, pos, path } => {
                while *pos < bytes.len() && bytes[*pos].is_ascii_whitespace() {
                    *pos += 1;
                }
                let start = *pos;
                while *pos < bytes.len() && !bytes[*pos].is_ascii_whitespace() {
                    *pos += 1;
                }
                if start == *pos {
                    return Err(IoError::malformed(
                        path,
                        format!("truncated file: the ASCII body ends before {}", what()),
                    ));
                }
                let tok = std::str::from_utf8(&bytes[start..*pos]).unwrap_or("?");
                let v: f64 = tok
                    .parse()
                    .map_err(|_| IoError::malformed(path, format!("{}: {tok:?} is not a number", what())))?;
                if !ty.is_float() && v.fract() != 0.0 {
                    return Err(IoError::malformed(
                        path,
                        format!("{}: {tok:?} is not an integer", what()),
                    ));
                }
                Ok(v)
            }
            Body::Binary { cur, big } => {
                let s = cur.take(ty.size(), what)?;
                let big = *big;
                macro_rules! num {
                    ($t:ty) => {{
                        let a = s.try_into().unwrap_or_default();
                        f64::from(if big {
                            <$t>::from_be_bytes(a)
                        } else {
                            <$t>::from_le_bytes(a)
                        })
                    }};
                }
                Ok(match ty {
                    Ty::I8 => f64::from(s[0] as i8),
                    Ty::U8 => f64::from(s[0]),
                    Ty::I16 => num!(i16),
                    Ty::U16 => num!(u16),
                    Ty::I32 => num!(i32),
                    Ty::U32 => num!(u32),
                    Ty::F32 => num!(f32),
                    Ty::F64 => num!(f64),
                })
            }
        }
    }

    /// Reads a list's length.
    fn list_len(&mut self, ty: Ty, what: &dyn Fn() -> String, path: &Path) -> Result<u64, IoError> {
        let n = self.value(ty, what)?;
        if !(0.0..=u32::MAX as f64).contains(&n) {
            return Err(IoError::malformed(path, format!("{}: invalid list length {n}", what())));
        }
        Ok(n as u64)
    }

    fn skip(&mut self, prop: &Property, what: &dyn Fn() -> String, path: &Path) -> Result<(), IoError> {
        match prop.kind {
            Kind::Scalar(t) => {
                self.value(t, what)?;
            }
            Kind::List { count, item } => {
                let n = self.list_len(count, what, path)?;
                match self {
                    Body::Binary { cur, .. } => {
                        let bytes = n.saturating_mul(item.size() as u64);
                        let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
                        cur.take(bytes, what)?;
                    }
                    Body::Ascii { .. } => {
                        for _ in 0..n {
                            self.value(item, what)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Pos(usize),
    Normal(usize),
    Color(usize),
    Scalar,
    Skip,
}

fn vertex_roles(el: &Element) -> Vec<Role> {
    let mut roles: Vec<Role> = el
        .props
        .iter()
        .map(|p| {
            if matches!(p.kind, Kind::List { .. }) {
                return Role::Skip;
            }
            match p.name.as_str() {
                "x" => Role::Pos(0),
                "y" => Role::Pos(1),
                "z" => Role::Pos(2),
                "nx" | "normal_x" => Role::Normal(0),
                "ny" | "normal_y" => Role::Normal(1),
                "nz" | "normal_z" => Role::Normal(2),
                "red" | "diffuse_red" | "r" => Role::Color(0),
                "green" | "diffuse_green" | "g" => Role::Color(1),
                "blue" | "diffuse_blue" | "b" => Role::Color(2),
                "alpha" | "diffuse_alpha" | "a" => Role::Color(3),
                _ => Role::Skip,
            }
        })
        .collect();
    const NAMED: [&str; 4] = ["quality", "scalar", "value", "intensity"];
    const TEXCOORD: [&str; 8] = ["s", "t", "u", "v", "texture_u", "texture_v", "texture_s", "texture_t"];
    let scalar = el
        .props
        .iter()
        .enumerate()
        .find(|(i, p)| roles[*i] == Role::Skip && matches!(p.kind, Kind::Scalar(_)) && NAMED.contains(&p.name.as_str()))
        .or_else(|| {
            el.props.iter().enumerate().find(|(i, p)| {
                roles[*i] == Role::Skip
                    && matches!(p.kind, Kind::Scalar(t) if t.is_float())
                    && !TEXCOORD.contains(&p.name.as_str())
            })
        })
        .map(|(i, _)| i);
    if let Some(i) = scalar {
        roles[i] = Role::Scalar;
    }
    roles
}

fn color_byte(v: f64, ty: Ty) -> u8 {
    let v = if ty.is_float() { v * 255.0 } else { v };
    if v.is_nan() {
        0
    } else {
        v.round().clamp(0.0, 255.0) as u8
    }
}

pub fn decode(bytes: &[u8], path: &Path) -> Result<Mesh, IoError> {
    let header = parse_header(bytes, path)?;
    let mut body = match header.format {
        Format::Ascii => Body::Ascii {
            bytes,
            pos: header.body_start,
            path,
        },
        f => Body::Binary {
            cur: Cursor::new(bytes, header.body_start, path),
            big: f == Format::BigEndian,
        },
    };
    let n_vertices = header
        .elements
        .iter()
        .find(|e| e.name == "vertex")
        .map_or(0, |e| e.count);
    let mut mesh = Mesh::default();

    for el in &header.elements {
        // Vertices and faces without the properties they need are errors (in read_*); other
        // empty elements have nothing to read.
        if el.count == 0 || (el.props.is_empty() && !matches!(el.name.as_str(), "vertex" | "face")) {
            continue;
        }
        let min = el.min_size(header.format);
        let need = el.count.saturating_mul(min as u64);
        if need > body.remaining() as u64 {
            return Err(IoError::malformed(
                path,
                format!(
                    "truncated file: element {} declares {} entries needing at least {need} {} but only {} remain",
                    el.name,
                    el.count,
                    if header.format == Format::Ascii {
                        "values"
                    } else {
                        "bytes"
                    },
                    body.remaining()
                ),
            ));
        }
        match el.name.as_str() {
            "vertex" => read_vertices(el, &mut body, &mut mesh, header.format, path)?,
            "face" => read_faces(el, &mut body, &mut mesh, n_vertices, header.format, path)?,
            _ => {
                for i in 0..el.count {
                    for p in &el.props {
                        body.skip(p, &|| format!("{} {i} property {}", el.name, p.name), path)?;
                    }
                }
            }
        }
    }
    finish(mesh, path)
}

fn read_vertices(el: &Element, body: &mut Body, mesh: &mut Mesh, format: Format, path: &Path) -> Result<(), IoError> {
    let roles = vertex_roles(el);
    let has = |f: &dyn Fn(Role) -> bool| roles.iter().any(|&r| f(r));
    for k in 0..3 {
        if !has(&|r| r == Role::Pos(k)) {
            return Err(IoError::malformed(
                path,
                format!("vertex element has no {} property", ["x", "y", "z"][k]),
            ));
        }
    }
    let normals = (0..3).all(|k| has(&|r| r == Role::Normal(k)));
    let colors = (0..3).all(|k| has(&|r| r == Role::Color(k)));
    let scalar = has(&|r| r == Role::Scalar);
    let cap = safe_capacity(el.count, el.min_size(format), body.remaining());
    mesh.positions.reserve(cap);
    if normals {
        mesh.normals.reserve(cap);
    }
    if colors {
        mesh.colors.reserve(cap);
    }
    if scalar {
        mesh.scalars.reserve(cap);
    }
    for i in 0..el.count {
        let mut p = [0f32; 3];
        let mut n = [0f32; 3];
        let mut c = [0u8, 0, 0, 255];
        let mut s = 0f32;
        for (prop, &role) in el.props.iter().zip(&roles) {
            let what = || format!("vertex {i} property {}", prop.name);
            let Kind::Scalar(ty) = prop.kind else {
                body.skip(prop, &what, path)?;
                continue;
            };
            let v = body.value(ty, &what)?;
            match role {
                Role::Pos(k) => p[k] = v as f32,
                Role::Normal(k) => n[k] = v as f32,
                Role::Color(k) => c[k] = color_byte(v, ty),
                Role::Scalar => s = v as f32,
                Role::Skip => {}
            }
        }
        mesh.positions.push(p);
        if normals {
            mesh.normals.push(n);
        }
        if colors {
            mesh.colors.push(c);
        }
        if scalar {
            mesh.scalars.push(s);
        }
    }
    Ok(())
}

fn read_faces(
    el: &Element,
    body: &mut Body,
    mesh: &mut Mesh,
    n_vertices: u64,
    format: Format,
    path: &Path,
) -> Result<(), IoError> {
    let lists: Vec<usize> = (0..el.props.len())
        .filter(|&i| matches!(el.props[i].kind, Kind::List { .. }))
        .collect();
    let index_prop = lists
        .iter()
        .copied()
        .find(|&i| matches!(el.props[i].name.as_str(), "vertex_indices" | "vertex_index"))
        .or(if lists.len() == 1 { Some(lists[0]) } else { None })
        .ok_or_else(|| IoError::malformed(path, "face element has no vertex_indices list"))?;
    mesh.triangles
        .reserve(safe_capacity(el.count, el.min_size(format), body.remaining()));
    let mut poly: Vec<u32> = Vec::new();
    for f in 0..el.count {
        for (pi, prop) in el.props.iter().enumerate() {
            let what = || format!("face {f} property {}", prop.name);
            let (count_ty, item_ty) = match prop.kind {
                Kind::List { count, item } if pi == index_prop => (count, item),
                _ => {
                    body.skip(prop, &what, path)?;
                    continue;
                }
            };
            let n = body.list_len(count_ty, &what, path)?;
            poly.clear();
            for _ in 0..n {
                let v = body.value(item_ty, &what)?;
                if !(v >= 0.0 && v < n_vertices as f64) {
                    return Err(IoError::malformed(
                        path,
                        format!("face {f} refers to vertex {v} but the file has {n_vertices} vertices"),
                    ));
                }
                poly.push(v as u32);
            }
            // Faces with fewer than three corners carry no surface; skip them.
            for k in 1..poly.len().saturating_sub(1) {
                mesh.triangles.push([poly[0], poly[k], poly[k + 1]]);
            }
        }
    }
    Ok(())
}

fn header_text(mesh: &Mesh, format: &str) -> String {
    let mut h = format!(
        "ply\nformat {format} 1.0\ncomment written by latent-workbench\nelement vertex {}\n\
         property float x\nproperty float y\nproperty float z\n",
        mesh.positions.len()
    );
    if !mesh.normals.is_empty() {
        h.push_str("property float nx\nproperty float ny\nproperty float nz\n");
    }
    if !mesh.colors.is_empty() {
        h.push_str("property uchar red\nproperty uchar green\nproperty uchar blue\nproperty uchar alpha\n");
    }
    if !mesh.scalars.is_empty() {
        h.push_str("property float quality\n");
    }
    if !mesh.triangles.is_empty() {
        h.push_str(&format!(
            "element face {}\nproperty list uchar int vertex_indices\n",
            mesh.triangles.len()
        ));
    }
    h.push_str("end_header\n");
    h
}

/// Binary little-endian PLY with normals, colours (uchar RGBA) and the scalar (`quality`) when
/// present. A mesh without triangles is written as a point cloud (no face element).
pub fn encode_binary(mesh: &Mesh, w: &mut dyn Write) -> std::io::Result<()> {
    check_writable(mesh)?;
    if mesh.triangles.iter().any(|t| t.iter().any(|&i| i > i32::MAX as u32)) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "PLY int indices cannot address more than 2^31 vertices",
        ));
    }
    w.write_all(header_text(mesh, "binary_little_endian").as_bytes())?;
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    for i in 0..mesh.positions.len() {
        for v in mesh.positions[i] {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        if let Some(n) = mesh.normals.get(i) {
            for v in n {
                buf.extend_from_slice(&v.to_le_bytes());
            }
        }
        if let Some(c) = mesh.colors.get(i) {
            buf.extend_from_slice(c);
        }
        if let Some(s) = mesh.scalars.get(i) {
            buf.extend_from_slice(&s.to_le_bytes());
        }
        if buf.len() >= 1 << 16 {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    for t in &mesh.triangles {
        buf.push(3);
        for &i in t {
            buf.extend_from_slice(&(i as i32).to_le_bytes());
        }
        if buf.len() >= 1 << 16 {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    w.write_all(&buf)
}

/// ASCII PLY with the same properties as [`encode_binary`].
pub fn encode_ascii(mesh: &Mesh, w: &mut dyn Write) -> std::io::Result<()> {
    use std::fmt::Write as _;
    check_writable(mesh)?;
    let mut s = header_text(mesh, "ascii");
    for i in 0..mesh.positions.len() {
        let p = mesh.positions[i];
        let _ = write!(s, "{} {} {}", p[0], p[1], p[2]);
        if let Some(n) = mesh.normals.get(i) {
            let _ = write!(s, " {} {} {}", n[0], n[1], n[2]);
        }
        if let Some(c) = mesh.colors.get(i) {
            let _ = write!(s, " {} {} {} {}", c[0], c[1], c[2], c[3]);
        }
        if let Some(v) = mesh.scalars.get(i) {
            let _ = write!(s, " {v}");
        }
        s.push('\n');
        if s.len() >= 1 << 16 {
            w.write_all(s.as_bytes())?;
            s.clear();
        }
    }
    for t in &mesh.triangles {
        let _ = writeln!(s, "3 {} {} {}", t[0], t[1], t[2]);
        if s.len() >= 1 << 16 {
            w.write_all(s.as_bytes())?;
            s.clear();
        }
    }
    w.write_all(s.as_bytes())
}

/// Writes an ASCII PLY atomically.
pub fn write_ascii(path: &Path, mesh: &Mesh) -> Result<(), IoError> {
    write_atomic(path, |w| encode_ascii(mesh, w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("t.ply")
    }

    #[test]
    fn ascii_with_extra_elements_and_float_colours() {
        let src = b"ply\r\nformat ascii 1.0\r\ncomment hi\r\nelement vertex 4\r\nproperty float x\r\n\
            property float y\r\nproperty float z\r\nproperty float u\r\nproperty list uchar int junk\r\n\
            property float red\r\nproperty float green\r\nproperty float blue\r\nproperty double confidence\r\n\
            element material 1\r\nproperty list uchar float stuff\r\nproperty uchar id\r\n\
            element face 1\r\nproperty uchar flags\r\nproperty list uchar uint vertex_index\r\nend_header\r\n\
            0 0 0 9 2 7 7 1 0 0 0.5\r\n1 0 0 9 0 0 1 0 0.25\r\n1 1 0 9 1 5 0 0 1 0.75\r\n0 1 0 9 0 1 1 1 1\r\n\
            3 1.5 2.5 3.5 4\r\n7 4 0 1 2 3\r\n";
        let m = decode(src, p()).unwrap();
        assert_eq!(m.positions.len(), 4);
        assert_eq!(m.triangles, vec![[0, 1, 2], [0, 2, 3]]);
        assert_eq!(m.colors[0], [255, 0, 0, 255]);
        assert_eq!(m.colors[3], [255, 255, 255, 255]);
        assert_eq!(m.scalars, vec![0.5, 0.25, 0.75, 1.0]);
        assert!(m.normals.is_empty());
    }

    #[test]
    fn errors() {
        let head = "ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\n\
                    property float y\nproperty float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n";
        let mut b = head.as_bytes().to_vec();
        for v in [0f32, 0., 0., 1., 0., 0., 0., 1., 0.] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.push(3);
        for i in [0i32, 1, 5] {
            b.extend_from_slice(&i.to_le_bytes());
        }
        let e = decode(&b, p()).unwrap_err().to_string();
        assert!(e.contains("face 0 refers to vertex 5"), "{e}");
        let e = decode(&b[..b.len() - 3], p()).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        let huge = head.replace("vertex 3", "vertex 3000000000");
        let e = decode(huge.as_bytes(), p()).unwrap_err();
        assert!(matches!(e, IoError::TooLarge { .. }), "{e}");
        let big = head.replace("vertex 3", "vertex 300000000");
        let e = decode(big.as_bytes(), p()).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        let e = decode(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n", p()).unwrap_err();
        assert!(e.to_string().contains("end_header"), "{e}");
        let e = decode(
            b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nend_header\n1\n",
            p(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("no y"), "{e}");
        let e = decode(b"ply\nformat ascii 1.0\nelement vertex 99\nend_header\n1 2\n", p()).unwrap_err();
        assert!(e.to_string().contains("no x"), "{e}");
        let e = decode(
            b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\n\
              element face 1\nend_header\n1 2 3\n",
            p(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("vertex_indices"), "{e}");
        let e = decode(b"ply\nformat ascii 2.0\nend_header\n", p()).unwrap_err();
        assert!(matches!(e, IoError::Unsupported { .. }), "{e}");
        // A list of a zero-property element with an absurd count must not loop forever.
        let m = decode(b"ply\nformat ascii 1.0\nelement nothing 2000000000\nend_header\n", p()).unwrap();
        assert!(m.positions.is_empty());
    }
}
