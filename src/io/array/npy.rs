//! numpy `.npy` files (format versions 1.0, 2.0 and 3.0).
//!
//! Reading accepts the plain numeric dtypes `b1 i1 u1 i2 u2 i4 u4 i8 u8 f2 f4 f8` in either
//! byte order, C or Fortran order (Fortran data is transposed to C order), and 0-d arrays
//! (shape `[]`, one value). Object arrays (`'O'`, pickled Python objects) are refused and
//! never unpickled; structured, complex, string and date dtypes are refused as unsupported.
//!
//! Writing produces version 1.0, `<f4`, C order — what `np.load` reads everywhere.

use super::super::IoError;
use super::{f16_to_f32, tensor_name};
use crate::core::{LatentTensor, ScalarKind};
use std::path::Path;

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Longest header we parse (numpy itself refuses more than 10 000 bytes by default).
const MAX_HEADER: usize = 1 << 20;

/// Reads a `.npy` file into a tensor named after the file stem.
pub fn read_npy(path: &Path) -> Result<LatentTensor, IoError> {
    let bytes = super::super::atomic::read_bytes(path)?;
    decode_npy(&bytes, path)
}

/// Decodes the bytes of a `.npy` file; `path` names the tensor (its stem) and the errors.
pub fn decode_npy(bytes: &[u8], path: &Path) -> Result<LatentTensor, IoError> {
    let bad = |msg: String| IoError::malformed(path, msg);
    if bytes.len() < 8 || &bytes[..6] != MAGIC {
        return Err(bad("not a .npy file (bad magic: expected \\x93NUMPY)".into()));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (len_size, utf8) = match major {
        1 => (2, false),
        2 => (4, false),
        3 => (4, true),
        _ => {
            return Err(IoError::unsupported(
                path,
                format!(".npy format version {major}.{minor}"),
            ));
        }
    };
    let Some(len_bytes) = bytes.get(8..8 + len_size) else {
        return Err(bad("truncated .npy header".into()));
    };
    let header_len = if len_size == 2 {
        usize::from(u16::from_le_bytes([len_bytes[0], len_bytes[1]]))
    } else {
        u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize
    };
    if header_len > MAX_HEADER {
        return Err(bad(format!(".npy header is implausibly long ({header_len} bytes)")));
    }
    let start = 8 + len_size;
    let Some(header_bytes) = bytes.get(start..start + header_len) else {
        return Err(bad(format!(
            "truncated .npy header: {header_len} bytes announced, {} present",
            bytes.len() - start
        )));
    };
    let header: String = if utf8 {
        std::str::from_utf8(header_bytes)
            .map_err(|_| bad(".npy header is not valid UTF-8".into()))?
            .to_owned()
    } else {
        // Latin-1: every byte is one character.
        header_bytes.iter().map(|&b| char::from(b)).collect()
    };
    let header = Header::parse(&header).map_err(|e| bad(format!("bad .npy header ({e}): {}", header.trim_end())))?;
    let dtype = Dtype::parse(&header.descr).map_err(|e| match e {
        DtypeError::Unsupported(m) => IoError::unsupported(path, m),
        DtypeError::Malformed(m) => bad(m),
    })?;

    let elements = header
        .shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .unwrap_or(u64::MAX);
    IoError::check_size(path, elements)?;
    let elements = elements as usize;
    let data = &bytes[start + header_len..];
    let need = elements * dtype.size;
    if data.len() != need {
        return Err(bad(format!(
            "shape {:?} of {} needs {need} bytes of data but the file has {}{}",
            header.shape,
            dtype.kind,
            data.len(),
            if data.len() < need {
                " (truncated)"
            } else {
                " (trailing bytes)"
            }
        )));
    }
    let mut values = dtype.convert(data);
    if header.fortran_order && header.shape.len() > 1 {
        values = fortran_to_c(&values, &header.shape);
    }
    let tensor = LatentTensor::new(tensor_name(path), header.shape.clone(), values)
        .map_err(|e| bad(e.to_string()))?
        .with_source_kind(dtype.kind);
    Ok(tensor)
}

/// Writes a tensor as a version 1.0, little-endian `float32`, C-order `.npy` file (atomic).
pub fn write_npy(path: &Path, tensor: &LatentTensor) -> Result<(), IoError> {
    let bytes = encode_npy(tensor.shape(), tensor.values());
    super::super::atomic::write_bytes(path, &bytes)
}

/// The bytes of a v1.0 `<f4` `.npy` file (v2.0 if the header would not fit in 64 KiB).
pub(crate) fn encode_npy(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let shape_text = match shape {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    let v1 = header.len() + 11 <= usize::from(u16::MAX);
    let prefix = if v1 { 10 } else { 12 };
    // Pad with spaces so the data starts on a 64-byte boundary; the header ends with '\n'.
    let total = (prefix + header.len() + 1).next_multiple_of(64);
    while prefix + header.len() + 1 < total {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(total + values.len() * 4);
    out.extend_from_slice(MAGIC);
    if v1 {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Reorders Fortran-order data (first axis fastest) into C order (last axis fastest).
fn fortran_to_c(src: &[f32], shape: &[usize]) -> Vec<f32> {
    let n = src.len();
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return out;
    }
    // Fortran strides: axis i has stride prod(shape[..i]).
    let mut strides = vec![1usize; shape.len()];
    for i in 1..shape.len() {
        strides[i] = strides[i - 1] * shape[i - 1];
    }
    let last = shape.len() - 1;
    let mut idx = vec![0usize; shape.len()];
    let mut base = 0usize; // Fortran offset of idx with the last index at 0
    loop {
        let s = strides[last];
        for k in 0..shape[last] {
            out.push(src[base + k * s]);
        }
        // Advance the C-order odometer over all axes but the last.
        let mut ax = last;
        loop {
            if ax == 0 {
                return out;
            }
            ax -= 1;
            idx[ax] += 1;
            base += strides[ax];
            if idx[ax] < shape[ax] {
                break;
            }
            base -= strides[ax] * shape[ax];
            idx[ax] = 0;
        }
    }
}

#[derive(Debug)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

impl Header {
    /// Parses the Python dict literal of a `.npy` header.
    fn parse(text: &str) -> Result<Self, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let value = p.value()?;
        p.skip_ws();
        if p.i != p.s.len() {
            return Err(format!("unexpected text after the dictionary at byte {}", p.i));
        }
        let Py::Dict(entries) = value else {
            return Err("header is not a dictionary".into());
        };
        let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let descr = match get("descr") {
            Some(Py::Str(s)) => s.clone(),
            Some(Py::List(_)) | Some(Py::Tuple(_)) => {
                return Err("structured dtypes (a list of fields) are not supported".into());
            }
            Some(_) => return Err("'descr' is not a string".into()),
            None => return Err("missing key 'descr'".into()),
        };
        let fortran_order = match get("fortran_order") {
            Some(Py::Bool(b)) => *b,
            Some(_) => return Err("'fortran_order' is not True or False".into()),
            None => return Err("missing key 'fortran_order'".into()),
        };
        let shape = match get("shape") {
            Some(Py::Tuple(items)) | Some(Py::List(items)) => items
                .iter()
                .map(|v| match v {
                    Py::Int(n) if *n >= 0 => usize::try_from(*n).map_err(|_| "dimension too large".to_string()),
                    _ => Err("'shape' must hold non-negative integers".to_string()),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err("'shape' is not a tuple".into()),
            None => return Err("missing key 'shape'".into()),
        };
        Ok(Header {
            descr,
            fortran_order,
            shape,
        })
    }
}

/// The subset of Python literals that `.npy` headers use.
#[derive(Debug)]
enum Py {
    Str(String),
    Int(i128),
    Bool(bool),
    None,
    Tuple(Vec<Py>),
    List(Vec<Py>),
    Dict(Vec<(String, Py)>),
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }
    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", char::from(c), self.i))
        }
    }
    fn value(&mut self) -> Result<Py, String> {
        self.value_depth(0)
    }
    fn value_depth(&mut self, depth: usize) -> Result<Py, String> {
        if depth > 32 {
            return Err("nesting too deep".into());
        }
        match self.peek() {
            None => Err("unexpected end of header".into()),
            Some(b'{') => {
                self.i += 1;
                let mut entries = Vec::new();
                loop {
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                        return Ok(Py::Dict(entries));
                    }
                    let key = match self.value_depth(depth + 1)? {
                        Py::Str(s) => s,
                        _ => return Err("dictionary keys must be strings".into()),
                    };
                    self.expect(b':')?;
                    let v = self.value_depth(depth + 1)?;
                    entries.push((key, v));
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {}
                        _ => return Err(format!("expected ',' or '}}' at byte {}", self.i)),
                    }
                }
            }
            Some(open @ (b'(' | b'[')) => {
                let close = if open == b'(' { b')' } else { b']' };
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    if self.peek() == Some(close) {
                        self.i += 1;
                        return Ok(if open == b'(' {
                            Py::Tuple(items)
                        } else {
                            Py::List(items)
                        });
                    }
                    items.push(self.value_depth(depth + 1)?);
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(c) if c == close => {}
                        _ => return Err(format!("expected ',' or '{}' at byte {}", char::from(close), self.i)),
                    }
                }
            }
            Some(q @ (b'\'' | b'"')) => {
                self.i += 1;
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i] != q {
                    if self.s[self.i] == b'\\' {
                        return Err("escapes in header strings are not supported".into());
                    }
                    self.i += 1;
                }
                if self.i >= self.s.len() {
                    return Err("unterminated string".into());
                }
                let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                Ok(Py::Str(text))
            }
            Some(c) if c.is_ascii_digit() || c == b'-' => {
                let start = self.i;
                self.i += 1;
                while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                    self.i += 1;
                }
                // Python 2 era files may write long integers as `3L`.
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                let n: i128 = text.parse().map_err(|_| format!("bad integer '{text}'"))?;
                if self.s.get(self.i) == Some(&b'L') {
                    self.i += 1;
                }
                Ok(Py::Int(n))
            }
            Some(_) => {
                for (word, v) in [("True", Py::Bool(true)), ("False", Py::Bool(false)), ("None", Py::None)] {
                    if self.s[self.i..].starts_with(word.as_bytes()) {
                        self.i += word.len();
                        return Ok(v);
                    }
                }
                Err(format!("unexpected character at byte {}", self.i))
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Dtype {
    kind: ScalarKind,
    size: usize,
    big_endian: bool,
}

enum DtypeError {
    Unsupported(String),
    Malformed(String),
}

impl Dtype {
    fn parse(descr: &str) -> Result<Self, DtypeError> {
        let (order, code) = match descr.as_bytes().first() {
            Some(c @ (b'<' | b'>' | b'|' | b'=' | b'!')) => (*c, &descr[1..]),
            _ => (b'=', descr),
        };
        let big_endian = match order {
            b'>' | b'!' => true,
            b'<' | b'|' => false,
            _ => cfg!(target_endian = "big"),
        };
        let kind = match code {
            "b1" | "?" => ScalarKind::Bool,
            "i1" | "b" => ScalarKind::I8,
            "u1" | "B" => ScalarKind::U8,
            "i2" | "h" => ScalarKind::I16,
            "u2" | "H" => ScalarKind::U16,
            "i4" | "i" => ScalarKind::I32,
            "u4" | "I" => ScalarKind::U32,
            "i8" | "q" => ScalarKind::I64,
            "u8" | "Q" => ScalarKind::U64,
            "f2" | "e" => ScalarKind::F16,
            "f4" | "f" => ScalarKind::F32,
            "f8" | "d" => ScalarKind::F64,
            _ => {
                let what = match code.as_bytes().first() {
                    Some(b'O') => "object dtype 'O' (pickled Python objects are never loaded)".to_string(),
                    Some(b'c') => format!("complex dtype '{descr}'"),
                    Some(b'U' | b'S' | b'a') => format!("string dtype '{descr}'"),
                    Some(b'M' | b'm') => format!("date/time dtype '{descr}'"),
                    Some(b'V') => format!("void/structured dtype '{descr}'"),
                    Some(b'f') => format!("float dtype '{descr}'"),
                    Some(b'i' | b'u') => format!("integer dtype '{descr}'"),
                    Some(_) => return Err(DtypeError::Malformed(format!("unknown .npy dtype '{descr}'"))),
                    None => return Err(DtypeError::Malformed("empty .npy dtype".into())),
                };
                return Err(DtypeError::Unsupported(what));
            }
        };
        Ok(Dtype {
            kind,
            size: kind.size(),
            big_endian,
        })
    }

    /// Converts raw element bytes (exactly `n × size`) to `f32`.
    fn convert(&self, data: &[u8]) -> Vec<f32> {
        macro_rules! conv {
            ($t:ty, $n:literal, $f:expr) => {{
                let be = self.big_endian;
                data.chunks_exact($n)
                    .map(|c| {
                        let arr: [u8; $n] = c.try_into().unwrap();
                        let v = if be {
                            <$t>::from_be_bytes(arr)
                        } else {
                            <$t>::from_le_bytes(arr)
                        };
                        #[allow(clippy::redundant_closure_call)]
                        $f(v)
                    })
                    .collect()
            }};
        }
        match self.kind {
            ScalarKind::Bool => data.iter().map(|&b| if b != 0 { 1.0 } else { 0.0 }).collect(),
            ScalarKind::U8 => data.iter().map(|&b| f32::from(b)).collect(),
            ScalarKind::I8 => data.iter().map(|&b| f32::from(b as i8)).collect(),
            ScalarKind::U16 => conv!(u16, 2, f32::from),
            ScalarKind::I16 => conv!(i16, 2, f32::from),
            ScalarKind::U32 => conv!(u32, 4, |v: u32| v as f32),
            ScalarKind::I32 => conv!(i32, 4, |v: i32| v as f32),
            ScalarKind::U64 => conv!(u64, 8, |v: u64| v as f32),
            ScalarKind::I64 => conv!(i64, 8, |v: i64| v as f32),
            ScalarKind::F16 => conv!(u16, 2, f16_to_f32),
            ScalarKind::Bf16 => conv!(u16, 2, |v: u16| f32::from_bits(u32::from(v) << 16)),
            ScalarKind::F32 => conv!(f32, 4, |v: f32| v),
            ScalarKind::F64 => conv!(f64, 8, |v: f64| v as f32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_transpose_3d() {
        // shape (2, 3, 4), value = C index; lay it out in Fortran order.
        let shape = [2usize, 3, 4];
        let mut f = vec![0.0f32; 24];
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..4 {
                    f[i + 2 * (j + 3 * k)] = (i * 12 + j * 4 + k) as f32;
                }
            }
        }
        let c = fortran_to_c(&f, &shape);
        assert_eq!(c, (0..24).map(|v| v as f32).collect::<Vec<_>>());
    }

    #[test]
    fn header_parser_handles_variants() {
        let h = Header::parse("{\"descr\": \">i2\", \"fortran_order\": True, \"shape\": [3L, 4], }   \n").unwrap();
        assert_eq!(h.descr, ">i2");
        assert!(h.fortran_order);
        assert_eq!(h.shape, vec![3, 4]);
        assert!(Header::parse("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}").is_err());
        assert!(Header::parse("{'descr': '<f4', 'fortran_order': False}").is_err());
        assert!(Header::parse("{'descr': '<f4' 'fortran_order': False, 'shape': ()}").is_err());
    }

    #[test]
    fn encoded_header_is_aligned() {
        for shape in [vec![], vec![5], vec![2, 3, 4]] {
            let n = shape.iter().product();
            let bytes = encode_npy(&shape, &vec![1.5; n]);
            let hl = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!((10 + hl) % 64, 0);
            assert_eq!(bytes[10 + hl - 1], b'\n');
            let t = decode_npy(&bytes, Path::new("x.npy")).unwrap();
            assert_eq!(t.shape(), &shape[..]);
        }
    }
}
