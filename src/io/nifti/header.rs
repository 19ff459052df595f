//! The binary NIfTI-1 (348-byte) and NIfTI-2 (540-byte) headers: parsing in either byte order
//! with the same repairs nibabel applies on load, the nibabel choice of affine, and building the
//! header our writer emits.

use super::NiftiInfo;
use crate::core::ScalarKind;
use crate::core::volume::{Affine, IDENTITY};
use crate::io::IoError;
use std::path::Path;

/// `sizeof_hdr` of a NIfTI-1 header.
pub(super) const HDR1: usize = 348;
/// `sizeof_hdr` of a NIfTI-2 header.
pub(super) const HDR2: usize = 540;
/// Where the voxels start in a single file we write (header + 4-byte extension flag).
pub(super) const OFFSET1: u64 = 352;
pub(super) const OFFSET2: u64 = 544;
/// NIfTI-2 line-ending check bytes (catch files mangled by text-mode transfers).
const EOL_CHECK: [u8; 4] = [0x0D, 0x0A, 0x1A, 0x0A];
/// nibabel's `Nifti1Header.quaternion_threshold` (3 × float32 eps) and Nifti2's (3 × float64 eps).
const QUAT_THRESHOLD_1: f64 = 3.0 * f32::EPSILON as f64;
const QUAT_THRESHOLD_2: f64 = 3.0 * f64::EPSILON;
/// `xyzt_units` = millimetres (2) + seconds (8).
pub(super) const UNITS_MM_SEC: u8 = 2 | 8;

/// The element type a NIfTI `datatype` code stands for, if we read it.
pub(super) fn kind_of_code(code: i16) -> Result<ScalarKind, String> {
    Ok(match code {
        2 => ScalarKind::U8,
        4 => ScalarKind::I16,
        8 => ScalarKind::I32,
        16 => ScalarKind::F32,
        64 => ScalarKind::F64,
        256 => ScalarKind::I8,
        512 => ScalarKind::U16,
        768 => ScalarKind::U32,
        1024 => ScalarKind::I64,
        1280 => ScalarKind::U64,
        _ => {
            let name = match code {
                0 => "none",
                1 => "binary",
                32 => "complex64",
                128 => "rgb24",
                255 => "all",
                1536 => "float128",
                1792 => "complex128",
                2048 => "complex256",
                2304 => "rgba32",
                _ => return Err(format!("NIfTI datatype code {code} (unknown)")),
            };
            return Err(format!("NIfTI datatype code {code} ({name})"));
        }
    })
}

/// The NIfTI `datatype` code of an element type, if NIfTI has one we write.
pub(super) fn code_of_kind(kind: ScalarKind) -> Option<i16> {
    Some(match kind {
        ScalarKind::U8 => 2,
        ScalarKind::I16 => 4,
        ScalarKind::I32 => 8,
        ScalarKind::F32 => 16,
        ScalarKind::F64 => 64,
        ScalarKind::I8 => 256,
        ScalarKind::U16 => 512,
        ScalarKind::U32 => 768,
        ScalarKind::I64 => 1024,
        ScalarKind::U64 => 1280,
        ScalarKind::Bool | ScalarKind::F16 | ScalarKind::Bf16 => return None,
    })
}

/// A parsed header (NIfTI-1 fields widened to the NIfTI-2 types), after nibabel's load-time
/// repairs: non-positive spatial `pixdim`s made positive, `qfac` forced to ±1, transform codes
/// outside 0..=5 set to 0, `vox_offset` 0 read as "right after the header".
#[derive(Clone, Debug)]
pub(super) struct Header {
    pub version: u8,
    pub big_endian: bool,
    pub datatype: i16,
    pub dim: [i64; 8],
    pub pixdim: [f64; 8],
    pub vox_offset: u64,
    pub scl_slope: f64,
    pub scl_inter: f64,
    pub xyzt_units: u8,
    pub descrip: String,
    pub qform_code: i32,
    pub sform_code: i32,
    pub quatern: [f64; 3],
    pub qoffset: [f64; 3],
    pub srow: [[f64; 4]; 3],
}

/// Where and what the voxels are, checked against [`crate::io::MAX_ELEMENTS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Layout {
    pub dims: [usize; 3],
    pub frames: usize,
    pub kind: ScalarKind,
    /// Voxel count (`dims` × `frames`).
    pub elements: usize,
    /// Byte offset of the first voxel.
    pub offset: u64,
    /// Bytes of voxel data the header asks for.
    pub nbytes: u64,
}

/// Reads fixed-offset fields of a header in its byte order. Offsets are constants below the
/// header size, and the buffer is always a full [`HDR2`] bytes, so indexing cannot fail.
struct Fields<'a> {
    b: &'a [u8; HDR2],
    be: bool,
}

impl Fields<'_> {
    fn arr<const N: usize>(&self, off: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.b[off..off + N]);
        a
    }
    fn i16(&self, off: usize) -> i16 {
        let a = self.arr(off);
        if self.be {
            i16::from_be_bytes(a)
        } else {
            i16::from_le_bytes(a)
        }
    }
    fn i32(&self, off: usize) -> i32 {
        let a = self.arr(off);
        if self.be {
            i32::from_be_bytes(a)
        } else {
            i32::from_le_bytes(a)
        }
    }
    fn i64(&self, off: usize) -> i64 {
        let a = self.arr(off);
        if self.be {
            i64::from_be_bytes(a)
        } else {
            i64::from_le_bytes(a)
        }
    }
    fn f32(&self, off: usize) -> f64 {
        let a = self.arr(off);
        f64::from(if self.be {
            f32::from_be_bytes(a)
        } else {
            f32::from_le_bytes(a)
        })
    }
    fn f64(&self, off: usize) -> f64 {
        let a = self.arr(off);
        if self.be {
            f64::from_be_bytes(a)
        } else {
            f64::from_le_bytes(a)
        }
    }
    fn text(&self, off: usize, len: usize) -> String {
        let raw = &self.b[off..off + len];
        let end = raw.iter().position(|&c| c == 0).unwrap_or(len);
        String::from_utf8_lossy(&raw[..end]).into_owned()
    }
}

/// The NIfTI version and byte order that a `sizeof_hdr` field announces.
fn sniff(bytes: &[u8]) -> Option<(u8, bool)> {
    let first: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    let le = i32::from_le_bytes(first);
    let be = i32::from_be_bytes(first);
    match (le, be) {
        (348, _) => Some((1, false)),
        (_, 348) => Some((1, true)),
        (540, _) => Some((2, false)),
        (_, 540) => Some((2, true)),
        _ => None,
    }
}

const PAIR_MESSAGE: &str = "two-file NIfTI (.hdr/.img pair); only single-file .nii/.nii.gz is read \
     (convert it, e.g. with nibabel or fslchfiletype NIFTI_GZ)";

impl Header {
    /// Parses the header at the start of `bytes` (already decompressed).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, IoError> {
        if bytes.is_empty() {
            return Err(IoError::malformed(path, "empty file, not a NIfTI image"));
        }
        let Some((version, be)) = sniff(bytes) else {
            let shown = bytes
                .get(..4)
                .map(|b| format!("{b:02x?}"))
                .unwrap_or_else(|| format!("{bytes:02x?}"));
            return Err(IoError::malformed(
                path,
                format!("not a NIfTI file: first bytes {shown} are not sizeof_hdr 348 (NIfTI-1) or 540 (NIfTI-2)"),
            ));
        };
        let size = if version == 1 { HDR1 } else { HDR2 };
        if bytes.len() < size {
            return Err(IoError::malformed(
                path,
                format!(
                    "file too short for a NIfTI-{version} header: {} bytes, the header alone needs {size}",
                    bytes.len()
                ),
            ));
        }
        let mut buf = [0u8; HDR2];
        buf[..size].copy_from_slice(&bytes[..size]);
        let f = Fields { b: &buf, be };
        if version == 1 {
            Self::parse1(&f, path)
        } else {
            Self::parse2(&f, path)
        }
    }

    fn parse1(f: &Fields, path: &Path) -> Result<Self, IoError> {
        let magic: [u8; 4] = f.arr(344);
        match &magic {
            b"n+1\0" => {}
            b"ni1\0" => return Err(IoError::unsupported(path, PAIR_MESSAGE)),
            [0, 0, 0, 0] => {
                return Err(IoError::unsupported(
                    path,
                    "Analyze 7.5 header without the NIfTI magic (.hdr/.img Analyze images are not read)",
                ));
            }
            _ => {
                return Err(IoError::malformed(
                    path,
                    format!("bad NIfTI-1 magic {magic:02x?} (expected \"n+1\\0\")"),
                ));
            }
        }
        let vox = f.f32(108);
        if !vox.is_finite() || vox < 0.0 {
            return Err(IoError::malformed(path, format!("invalid vox_offset {vox}")));
        }
        let srow = |off: usize| [f.f32(off), f.f32(off + 4), f.f32(off + 8), f.f32(off + 12)];
        let mut h = Header {
            version: 1,
            big_endian: f.be,
            datatype: f.i16(70),
            dim: std::array::from_fn(|i| i64::from(f.i16(40 + 2 * i))),
            pixdim: std::array::from_fn(|i| f.f32(76 + 4 * i)),
            // nibabel: `int(vox_offset)` truncates the float.
            vox_offset: vox as u64,
            scl_slope: f.f32(112),
            scl_inter: f.f32(116),
            xyzt_units: f.arr::<1>(123)[0],
            descrip: f.text(148, 80),
            qform_code: i32::from(f.i16(252)),
            sform_code: i32::from(f.i16(254)),
            quatern: [f.f32(256), f.f32(260), f.f32(264)],
            qoffset: [f.f32(268), f.f32(272), f.f32(276)],
            srow: [srow(280), srow(296), srow(312)],
        };
        h.repair(path)?;
        Ok(h)
    }

    fn parse2(f: &Fields, path: &Path) -> Result<Self, IoError> {
        let magic: [u8; 4] = f.arr(4);
        match &magic {
            b"n+2\0" => {}
            b"ni2\0" => return Err(IoError::unsupported(path, PAIR_MESSAGE)),
            _ => {
                return Err(IoError::malformed(
                    path,
                    format!("bad NIfTI-2 magic {magic:02x?} (expected \"n+2\\0\")"),
                ));
            }
        }
        let eol: [u8; 4] = f.arr(8);
        if eol != EOL_CHECK && eol != [0; 4] {
            return Err(IoError::malformed(
                path,
                "NIfTI-2 end-of-line check bytes are wrong: the file was likely corrupted by a text-mode transfer",
            ));
        }
        let vox = f.i64(168);
        let Ok(vox_offset) = u64::try_from(vox) else {
            return Err(IoError::malformed(path, format!("invalid vox_offset {vox}")));
        };
        let srow = |off: usize| [f.f64(off), f.f64(off + 8), f.f64(off + 16), f.f64(off + 24)];
        let mut h = Header {
            version: 2,
            big_endian: f.be,
            datatype: f.i16(12),
            dim: std::array::from_fn(|i| f.i64(16 + 8 * i)),
            pixdim: std::array::from_fn(|i| f.f64(104 + 8 * i)),
            vox_offset,
            scl_slope: f.f64(176),
            scl_inter: f.f64(184),
            xyzt_units: (f.i32(500) & 0xff) as u8,
            descrip: f.text(240, 80),
            qform_code: f.i32(344),
            sform_code: f.i32(348),
            quatern: [f.f64(352), f.f64(360), f.f64(368)],
            qoffset: [f.f64(376), f.f64(384), f.f64(392)],
            srow: [srow(400), srow(432), srow(464)],
        };
        h.repair(path)?;
        Ok(h)
    }

    /// nibabel's `check_fix` on load (`_chk_pixdims`, `_chk_qfac`, `_chk_offset`,
    /// `_chk_*form_code`), plus one repair nibabel lacks: a non-finite spatial pixdim becomes 1.
    fn repair(&mut self, path: &Path) -> Result<(), IoError> {
        for p in &mut self.pixdim[1..4] {
            if *p == 0.0 || !p.is_finite() {
                *p = 1.0;
            } else if *p < 0.0 {
                *p = -*p;
            }
        }
        if self.pixdim[0] != 1.0 && self.pixdim[0] != -1.0 {
            self.pixdim[0] = 1.0;
        }
        for code in [&mut self.qform_code, &mut self.sform_code] {
            if !(0..=5).contains(code) {
                *code = 0;
            }
        }
        let min = if self.version == 1 { OFFSET1 } else { OFFSET2 };
        let size = if self.version == 1 { HDR1 } else { HDR2 } as u64;
        if self.vox_offset == 0 {
            // "Unset": the data follow the header and the 4-byte extension flag.
            self.vox_offset = min;
        } else if self.vox_offset < size {
            return Err(IoError::malformed(
                path,
                format!(
                    "vox_offset {} lies inside the {size}-byte header (a single-file NIfTI-{} needs at least {min})",
                    self.vox_offset, self.version
                ),
            ));
        }
        Ok(())
    }

    /// Number of dimensions (`dim[0]`), checked to be 1..=7.
    fn ndim(&self, path: &Path) -> Result<usize, IoError> {
        let n = self.dim[0];
        if (1..=7).contains(&n) {
            Ok(n as usize)
        } else {
            Err(IoError::malformed(
                path,
                format!("dim[0] is {n}; a NIfTI image has 1 to 7 dimensions"),
            ))
        }
    }

    /// Shape, element type and data location, with sizes checked before anything is allocated.
    pub fn layout(&self, path: &Path) -> Result<Layout, IoError> {
        let ndim = self.ndim(path)?;
        let mut sizes = [1u64; 7];
        for (i, s) in sizes.iter_mut().enumerate().take(ndim) {
            let d = self.dim[i + 1];
            if d <= 0 {
                return Err(IoError::malformed(
                    path,
                    format!("dim[{}] is {d}; every dimension must be at least 1", i + 1),
                ));
            }
            *s = d as u64;
        }
        let too_large = |elements: u64| IoError::TooLarge {
            path: path.to_path_buf(),
            elements,
        };
        let elements = sizes
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| too_large(u64::MAX))?;
        IoError::check_size(path, elements)?;
        let kind = kind_of_code(self.datatype).map_err(|what| IoError::unsupported(path, what))?;
        let as_usize = |v: u64| usize::try_from(v).map_err(|_| too_large(elements));
        let frames = sizes[3..].iter().product::<u64>();
        let nbytes = elements
            .checked_mul(kind.size() as u64)
            .ok_or_else(|| too_large(elements))?;
        Ok(Layout {
            dims: [as_usize(sizes[0])?, as_usize(sizes[1])?, as_usize(sizes[2])?],
            frames: as_usize(frames)?,
            kind,
            elements: as_usize(elements)?,
            offset: self.vox_offset,
            nbytes,
        })
    }

    /// `(slope, inter)` to apply, or `None`: nibabel's `get_slope_inter` (a zero or non-finite
    /// slope means unscaled). A non-finite intercept with a valid slope counts as 0 here (nibabel
    /// 5 refuses to load such a file).
    pub fn scaling(&self) -> Option<(f64, f64)> {
        let (slope, inter) = (self.scl_slope, self.scl_inter);
        if slope == 0.0 || !slope.is_finite() {
            return None;
        }
        let inter = if inter.is_finite() { inter } else { 0.0 };
        if slope == 1.0 && inter == 0.0 {
            None
        } else {
            Some((slope, inter))
        }
    }

    /// Voxel spacing as nibabel's `get_zooms()[:3]`, missing dimensions (dim[0] < 3) given 1.
    pub fn spacing(&self, path: &Path) -> Result<[f32; 3], IoError> {
        let ndim = self.ndim(path)?;
        Ok(std::array::from_fn(|i| {
            if i < ndim { self.pixdim[i + 1] as f32 } else { 1.0 }
        }))
    }

    /// nibabel's `get_best_affine`: the sform if `sform_code != 0`, else the qform if
    /// `qform_code != 0`, else the base affine from the shape and `pixdim`.
    pub fn best_affine(&self, path: &Path) -> Result<Affine, IoError> {
        if self.sform_code != 0 {
            Ok(self.sform())
        } else if self.qform_code != 0 {
            self.qform().map_err(|e| IoError::malformed(path, e))
        } else {
            self.base_affine(path)
        }
    }

    /// nibabel's `get_sform`.
    pub fn sform(&self) -> Affine {
        let mut a = IDENTITY;
        a[..3].copy_from_slice(&self.srow);
        a
    }

    /// nibabel's `get_qform`: `quat2mat(fillpositive(b, c, d)) · diag(pixdim[1], pixdim[2],
    /// qfac·pixdim[3])`, translated by `qoffset`.
    pub fn qform(&self) -> Result<Affine, String> {
        let [b, c, d] = self.quatern;
        let threshold = if self.version == 1 {
            QUAT_THRESHOLD_1
        } else {
            QUAT_THRESHOLD_2
        };
        let w = fill_positive(b, c, d, threshold)?;
        let r = quat_to_mat(w, b, c, d);
        let vox = [self.pixdim[1], self.pixdim[2], self.pixdim[3] * self.pixdim[0]];
        let mut a = IDENTITY;
        for (row, r_row) in a.iter_mut().zip(&r) {
            for k in 0..3 {
                row[k] = r_row[k] * vox[k];
            }
        }
        for (row, off) in a.iter_mut().zip(self.qoffset) {
            row[3] = off;
        }
        Ok(a)
    }

    /// nibabel's `get_base_affine` (`shape_zoom_affine` with the x axis flipped, the origin at
    /// the centre of the grid).
    pub fn base_affine(&self, path: &Path) -> Result<Affine, IoError> {
        let ndim = self.ndim(path)?;
        let mut a = IDENTITY;
        for (i, row) in a.iter_mut().take(3).enumerate() {
            let (shape, zoom) = if i < ndim {
                (self.dim[i + 1] as f64, self.pixdim[i + 1])
            } else {
                (1.0, 1.0)
            };
            let zoom = if i == 0 { -zoom } else { zoom };
            row[i] = zoom;
            row[3] = -((shape - 1.0) / 2.0) * zoom;
        }
        Ok(a)
    }

    pub fn info(&self, kind: ScalarKind) -> NiftiInfo {
        NiftiInfo {
            version: self.version,
            datatype: kind,
            big_endian: self.big_endian,
            scl_slope: self.scl_slope,
            scl_inter: self.scl_inter,
            qform_code: self.qform_code,
            sform_code: self.sform_code,
            xyzt_units: self.xyzt_units,
            descrip: self.descrip.clone(),
            vox_offset: self.vox_offset,
        }
    }
}

/// nibabel's `quaternions.fillpositive`: the non-negative `w` completing a unit quaternion.
fn fill_positive(b: f64, c: f64, d: f64, threshold: f64) -> Result<f64, String> {
    let w2 = 1.0 - (b * b + c * c + d * d);
    if w2.abs() < threshold {
        Ok(0.0)
    } else if w2 < 0.0 || w2.is_nan() {
        Err(format!(
            "invalid qform quaternion (b, c, d) = ({b}, {c}, {d}): b²+c²+d² exceeds 1 (w² = {w2:e})"
        ))
    } else {
        Ok(w2.sqrt())
    }
}

/// nibabel's `quaternions.quat2mat`.
fn quat_to_mat(w: f64, x: f64, y: f64, z: f64) -> [[f64; 3]; 3] {
    let nq = w * w + x * x + y * y + z * z;
    if nq < f64::EPSILON {
        return [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    }
    let s = 2.0 / nq;
    let (xs, ys, zs) = (x * s, y * s, z * s);
    let (wx, wy, wz) = (w * xs, w * ys, w * zs);
    let (xx, xy, xz) = (x * xs, x * ys, x * zs);
    let (yy, yz, zz) = (y * ys, y * zs, z * zs);
    [
        [1.0 - (yy + zz), xy - wz, xz + wy],
        [xy + wz, 1.0 - (xx + zz), yz - wx],
        [xz - wy, yz + wx, 1.0 - (xx + yy)],
    ]
}

/// qform parameters for an affine that is a rotation (possibly with a reflection) times
/// positive zooms equal to `spacing` plus a translation, as nibabel's `set_qform` would store
/// them: `(quaternion b c d, qfac)`. `None` when the affine has shears, mismatched zooms or
/// non-finite entries, so a qform could not reproduce it.
pub(super) fn qform_params(a: &Affine, spacing: [f32; 3]) -> Option<([f64; 3], f64)> {
    let mut r = [[0.0f64; 3]; 3];
    for col in 0..3 {
        let norm = (0..3).map(|row| a[row][col] * a[row][col]).sum::<f64>().sqrt();
        let s = f64::from(spacing[col]);
        if !norm.is_finite() || !s.is_finite() || s <= 0.0 || (norm - s).abs() > 1e-5 * s {
            return None;
        }
        for row in 0..3 {
            r[row][col] = a[row][col] / norm;
        }
    }
    for i in 0..3 {
        for j in 0..3 {
            let dot = (0..3).map(|k| r[k][i] * r[k][j]).sum::<f64>();
            let expect = if i == j { 1.0 } else { 0.0 };
            if (dot - expect).abs() > 1e-5 {
                return None;
            }
        }
    }
    let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1]) - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
    let qfac = if det > 0.0 { 1.0 } else { -1.0 };
    if qfac < 0.0 {
        for row in &mut r {
            row[2] = -row[2];
        }
    }
    let [_w, x, y, z] = mat_to_quat(&r);
    Some(([x, y, z], qfac))
}

/// Unit quaternion `[w, x, y, z]` (w ≥ 0) of a rotation matrix (Shepperd's method).
fn mat_to_quat(r: &[[f64; 3]; 3]) -> [f64; 4] {
    let trace = r[0][0] + r[1][1] + r[2][2];
    let q = if trace > 0.0 {
        let s = (trace + 1.0).sqrt() * 2.0;
        [
            0.25 * s,
            (r[2][1] - r[1][2]) / s,
            (r[0][2] - r[2][0]) / s,
            (r[1][0] - r[0][1]) / s,
        ]
    } else if r[0][0] > r[1][1] && r[0][0] > r[2][2] {
        let s = (1.0 + r[0][0] - r[1][1] - r[2][2]).sqrt() * 2.0;
        [
            (r[2][1] - r[1][2]) / s,
            0.25 * s,
            (r[0][1] + r[1][0]) / s,
            (r[0][2] + r[2][0]) / s,
        ]
    } else if r[1][1] > r[2][2] {
        let s = (1.0 + r[1][1] - r[0][0] - r[2][2]).sqrt() * 2.0;
        [
            (r[0][2] - r[2][0]) / s,
            (r[0][1] + r[1][0]) / s,
            0.25 * s,
            (r[1][2] + r[2][1]) / s,
        ]
    } else {
        let s = (1.0 + r[2][2] - r[0][0] - r[1][1]).sqrt() * 2.0;
        [
            (r[1][0] - r[0][1]) / s,
            (r[0][2] + r[2][0]) / s,
            (r[1][2] + r[2][1]) / s,
            0.25 * s,
        ]
    };
    let norm = q.iter().map(|v| v * v).sum::<f64>().sqrt();
    let sign = if q[0] < 0.0 { -1.0 } else { 1.0 };
    q.map(|v| sign * v / norm)
}

/// Everything the writer puts in a header.
pub(super) struct WriteHeader {
    pub version: u8,
    pub datatype: i16,
    pub bitpix: i16,
    /// `dim[0..8]`.
    pub dim: [i64; 8],
    /// `pixdim[0..8]` (`pixdim[0]` is qfac).
    pub pixdim: [f64; 8],
    pub qform_code: i32,
    pub sform_code: i32,
    pub quatern: [f64; 3],
    pub qoffset: [f64; 3],
    pub srow: [[f64; 4]; 3],
    pub descrip: String,
}

/// Little-endian field writer over a zeroed header buffer.
struct Put(Vec<u8>);

impl Put {
    fn bytes(&mut self, off: usize, b: &[u8]) {
        self.0[off..off + b.len()].copy_from_slice(b);
    }
    fn i16(&mut self, off: usize, v: i16) {
        self.bytes(off, &v.to_le_bytes());
    }
    fn i32(&mut self, off: usize, v: i32) {
        self.bytes(off, &v.to_le_bytes());
    }
    fn i64(&mut self, off: usize, v: i64) {
        self.bytes(off, &v.to_le_bytes());
    }
    fn f32(&mut self, off: usize, v: f64) {
        self.bytes(off, &(v as f32).to_le_bytes());
    }
    fn f64(&mut self, off: usize, v: f64) {
        self.bytes(off, &v.to_le_bytes());
    }
}

impl WriteHeader {
    /// The header plus the 4-byte "no extensions" flag, little-endian: exactly
    /// [`OFFSET1`] or [`OFFSET2`] bytes, the voxels follow.
    pub fn to_bytes(&self) -> Vec<u8> {
        let descrip = self.descrip.as_bytes();
        let descrip = &descrip[..descrip.len().min(79)];
        if self.version == 1 {
            let mut p = Put(vec![0u8; OFFSET1 as usize]);
            p.i32(0, HDR1 as i32);
            p.bytes(38, b"r");
            for (i, &d) in self.dim.iter().enumerate() {
                p.i16(40 + 2 * i, d as i16);
            }
            p.i16(70, self.datatype);
            p.i16(72, self.bitpix);
            for (i, &v) in self.pixdim.iter().enumerate() {
                p.f32(76 + 4 * i, v);
            }
            p.f32(108, OFFSET1 as f64);
            p.f32(112, 1.0);
            p.f32(116, 0.0);
            p.bytes(123, &[UNITS_MM_SEC]);
            p.bytes(148, descrip);
            p.i16(252, self.qform_code as i16);
            p.i16(254, self.sform_code as i16);
            for i in 0..3 {
                p.f32(256 + 4 * i, self.quatern[i]);
                p.f32(268 + 4 * i, self.qoffset[i]);
            }
            for (r, row) in self.srow.iter().enumerate() {
                for (c, &v) in row.iter().enumerate() {
                    p.f32(280 + 16 * r + 4 * c, v);
                }
            }
            p.bytes(344, b"n+1\0");
            p.0
        } else {
            let mut p = Put(vec![0u8; OFFSET2 as usize]);
            p.i32(0, HDR2 as i32);
            p.bytes(4, b"n+2\0");
            p.bytes(8, &EOL_CHECK);
            p.i16(12, self.datatype);
            p.i16(14, self.bitpix);
            for (i, &d) in self.dim.iter().enumerate() {
                p.i64(16 + 8 * i, d);
            }
            for (i, &v) in self.pixdim.iter().enumerate() {
                p.f64(104 + 8 * i, v);
            }
            p.i64(168, OFFSET2 as i64);
            p.f64(176, 1.0);
            p.f64(184, 0.0);
            p.bytes(240, descrip);
            p.i32(344, self.qform_code);
            p.i32(348, self.sform_code);
            for i in 0..3 {
                p.f64(352 + 8 * i, self.quatern[i]);
                p.f64(376 + 8 * i, self.qoffset[i]);
            }
            for (r, row) in self.srow.iter().enumerate() {
                for (c, &v) in row.iter().enumerate() {
                    p.f64(400 + 32 * r + 8 * c, v);
                }
            }
            p.i32(500, i32::from(UNITS_MM_SEC));
            p.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("t.nii")
    }

    /// A minimal valid header (7×6×5 int16) of either version.
    fn sample(version: u8) -> WriteHeader {
        WriteHeader {
            version,
            datatype: 4,
            bitpix: 16,
            dim: [3, 7, 6, 5, 1, 1, 1, 1],
            pixdim: [1.0, 1.5, 2.0, 2.5, 1.0, 1.0, 1.0, 1.0],
            qform_code: 0,
            sform_code: 1,
            quatern: [0.0; 3],
            qoffset: [0.0; 3],
            srow: [[1.5, 0.0, 0.0, -3.0], [0.0, 2.0, 0.0, 4.0], [0.0, 0.0, 2.5, 5.0]],
            descrip: "hello".into(),
        }
    }

    /// Reverses each field of a little-endian header in place to make the big-endian twin.
    fn byteswap(bytes: &mut [u8], fields: &[(usize, usize, usize)]) {
        for &(off, width, count) in fields {
            for k in 0..count {
                bytes[off + k * width..off + (k + 1) * width].reverse();
            }
        }
    }

    const FIELDS1: &[(usize, usize, usize)] = &[
        (0, 4, 1),
        (40, 2, 8),
        (70, 2, 3),
        (76, 4, 8),
        (108, 4, 3),
        (252, 2, 2),
        (256, 4, 6),
        (280, 4, 12),
    ];
    const FIELDS2: &[(usize, usize, usize)] = &[
        (0, 4, 1),
        (12, 2, 2),
        (16, 8, 8),
        (104, 8, 8),
        (168, 8, 3),
        (344, 4, 2),
        (352, 8, 6),
        (400, 8, 12),
        (500, 4, 1),
    ];

    #[test]
    fn parses_both_versions_in_both_byte_orders() {
        for version in [1u8, 2] {
            let le = sample(version).to_bytes();
            let mut be = le.clone();
            byteswap(&mut be, if version == 1 { FIELDS1 } else { FIELDS2 });
            for (bytes, big) in [(le, false), (be, true)] {
                let h = Header::parse(&bytes, p()).unwrap();
                assert_eq!((h.version, h.big_endian), (version, big));
                assert_eq!(h.dim[..4], [3, 7, 6, 5]);
                assert_eq!(h.descrip, "hello");
                assert_eq!(h.xyzt_units, UNITS_MM_SEC);
                assert_eq!(h.vox_offset, if version == 1 { OFFSET1 } else { OFFSET2 });
                let l = h.layout(p()).unwrap();
                assert_eq!(
                    (l.dims, l.frames, l.kind, l.nbytes),
                    ([7, 6, 5], 1, ScalarKind::I16, 420)
                );
                assert_eq!(h.spacing(p()).unwrap(), [1.5, 2.0, 2.5]);
                assert_eq!(h.best_affine(p()).unwrap()[1], [0.0, 2.0, 0.0, 4.0]);
                assert_eq!(h.scaling(), None);
            }
        }
    }

    #[test]
    fn rejects_short_empty_and_foreign_bytes() {
        let e = Header::parse(&[], p()).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let e = Header::parse(&[1, 2], p()).unwrap_err();
        assert!(matches!(e, IoError::Malformed { .. }), "{e}");
        let e = Header::parse(b"\x89PNG\r\n\x1a\n....", p()).unwrap_err();
        assert!(e.to_string().contains("not a NIfTI"), "{e}");
        let bytes = sample(1).to_bytes();
        let e = Header::parse(&bytes[..200], p()).unwrap_err();
        assert!(e.to_string().contains("too short"), "{e}");
        let bytes = sample(2).to_bytes();
        let e = Header::parse(&bytes[..400], p()).unwrap_err();
        assert!(e.to_string().contains("NIfTI-2"), "{e}");
    }

    #[test]
    fn pair_and_analyze_magics_are_unsupported_garbage_is_malformed() {
        let mut b = sample(1).to_bytes();
        b[344..348].copy_from_slice(b"ni1\0");
        assert!(matches!(Header::parse(&b, p()), Err(IoError::Unsupported { .. })));
        b[344..348].copy_from_slice(&[0; 4]);
        assert!(matches!(Header::parse(&b, p()), Err(IoError::Unsupported { .. })));
        b[344..348].copy_from_slice(b"xyz\0");
        assert!(matches!(Header::parse(&b, p()), Err(IoError::Malformed { .. })));
        let mut b = sample(2).to_bytes();
        b[4..8].copy_from_slice(b"ni2\0");
        assert!(matches!(Header::parse(&b, p()), Err(IoError::Unsupported { .. })));
        let mut b = sample(2).to_bytes();
        b[8..12].copy_from_slice(b"\r\n\n\n");
        assert!(matches!(Header::parse(&b, p()), Err(IoError::Malformed { .. })));
        b[8..12].copy_from_slice(&[0; 4]);
        assert!(
            Header::parse(&b, p()).is_ok(),
            "zero EOL check is accepted like nibabel"
        );
    }

    #[test]
    fn bad_dims_are_refused_before_allocation() {
        let cases: &[([i64; 8], &str)] = &[
            ([0, 7, 6, 5, 1, 1, 1, 1], "dim[0]"),
            ([8, 7, 6, 5, 1, 1, 1, 1], "dim[0]"),
            ([-3, 7, 6, 5, 1, 1, 1, 1], "dim[0]"),
            ([3, 7, 0, 5, 1, 1, 1, 1], "dim[2] is 0"),
            ([3, 7, -6, 5, 1, 1, 1, 1], "dim[2] is -6"),
        ];
        for (dim, msg) in cases {
            let mut h = sample(2);
            h.dim = *dim;
            let hdr = Header::parse(&h.to_bytes(), p()).unwrap();
            let e = hdr.layout(p()).unwrap_err();
            assert!(
                matches!(e, IoError::Malformed { .. }) && e.to_string().contains(msg),
                "{e}"
            );
        }
        for dim in [
            [4, 32767, 32767, 32767, 32767, 1, 1, 1],
            [7, i64::MAX, i64::MAX, 2, 2, 2, 2, 2],
        ] {
            let mut h = sample(2);
            h.dim = dim;
            let hdr = Header::parse(&h.to_bytes(), p()).unwrap();
            assert!(matches!(hdr.layout(p()), Err(IoError::TooLarge { .. })));
        }
        // Dimensions past dim[0] are ignored, even when they are garbage.
        let mut h = sample(1);
        h.dim = [2, 7, 6, -5, 0, 9, 9, 9];
        let hdr = Header::parse(&h.to_bytes(), p()).unwrap();
        let l = hdr.layout(p()).unwrap();
        assert_eq!((l.dims, l.frames), ([7, 6, 1], 1));
        assert_eq!(hdr.spacing(p()).unwrap(), [1.5, 2.0, 1.0]);
    }

    #[test]
    fn higher_dimensions_collapse_into_frames() {
        let mut h = sample(1);
        h.dim = [6, 3, 2, 2, 2, 3, 4, 1];
        let l = Header::parse(&h.to_bytes(), p()).unwrap().layout(p()).unwrap();
        assert_eq!((l.dims, l.frames, l.elements), ([3, 2, 2], 24, 288));
    }

    #[test]
    fn datatype_codes() {
        for kind in [
            ScalarKind::U8,
            ScalarKind::I8,
            ScalarKind::I16,
            ScalarKind::U16,
            ScalarKind::I32,
            ScalarKind::U32,
            ScalarKind::I64,
            ScalarKind::U64,
            ScalarKind::F32,
            ScalarKind::F64,
        ] {
            assert_eq!(kind_of_code(code_of_kind(kind).unwrap()), Ok(kind));
        }
        assert!(kind_of_code(32).unwrap_err().contains("32 (complex64)"));
        assert!(kind_of_code(128).unwrap_err().contains("rgb24"));
        assert!(kind_of_code(999).unwrap_err().contains("999 (unknown)"));
        let mut h = sample(1);
        h.datatype = 999;
        let e = Header::parse(&h.to_bytes(), p()).unwrap().layout(p()).unwrap_err();
        assert!(
            matches!(e, IoError::Unsupported { .. }) && e.to_string().contains("999"),
            "{e}"
        );
    }

    #[test]
    fn vox_offset_rules() {
        let mut b = sample(1).to_bytes();
        b[108..112].copy_from_slice(&0f32.to_le_bytes());
        assert_eq!(
            Header::parse(&b, p()).unwrap().vox_offset,
            OFFSET1,
            "0 means right after the header"
        );
        b[108..112].copy_from_slice(&400.7f32.to_le_bytes());
        assert_eq!(
            Header::parse(&b, p()).unwrap().vox_offset,
            400,
            "float offsets truncate"
        );
        b[108..112].copy_from_slice(&100f32.to_le_bytes());
        assert!(matches!(Header::parse(&b, p()), Err(IoError::Malformed { .. })));
        for bad in [-1.0f32, f32::NAN, f32::INFINITY] {
            b[108..112].copy_from_slice(&bad.to_le_bytes());
            assert!(
                matches!(Header::parse(&b, p()), Err(IoError::Malformed { .. })),
                "{bad}"
            );
        }
        let mut b = sample(2).to_bytes();
        b[168..176].copy_from_slice(&(-5i64).to_le_bytes());
        assert!(matches!(Header::parse(&b, p()), Err(IoError::Malformed { .. })));
        b[168..176].copy_from_slice(&0i64.to_le_bytes());
        assert_eq!(Header::parse(&b, p()).unwrap().vox_offset, OFFSET2);
    }

    #[test]
    fn scaling_follows_nibabel() {
        let mut h = Header::parse(&sample(2).to_bytes(), p()).unwrap();
        for (slope, inter, want) in [
            (1.0, 0.0, None),
            (0.0, 5.0, None),
            (f64::NAN, 5.0, None),
            (f64::INFINITY, 5.0, None),
            (2.5, -3.0, Some((2.5, -3.0))),
            (2.5, f64::NAN, Some((2.5, 0.0))),
            (1.0, 4.0, Some((1.0, 4.0))),
        ] {
            h.scl_slope = slope;
            h.scl_inter = inter;
            assert_eq!(h.scaling(), want, "{slope} {inter}");
        }
    }

    #[test]
    fn pixdim_and_code_repairs() {
        let mut w = sample(1);
        w.pixdim = [0.0, -2.0, 0.0, f64::NAN, 1.0, 1.0, 1.0, 1.0];
        w.sform_code = 0;
        w.qform_code = 9;
        let h = Header::parse(&w.to_bytes(), p()).unwrap();
        assert_eq!(h.pixdim[..4], [1.0, 2.0, 1.0, 1.0]);
        assert_eq!((h.qform_code, h.sform_code), (0, 0));
        // Base affine: x flipped, origin at the grid centre (nibabel's shape_zoom_affine).
        let a = h.best_affine(p()).unwrap();
        assert_eq!(a[0], [-2.0, 0.0, 0.0, 6.0]);
        assert_eq!(a[1], [0.0, 1.0, 0.0, -2.5]);
        assert_eq!(a[2], [0.0, 0.0, 1.0, -2.0]);
    }

    #[test]
    fn base_affine_of_a_2d_image_pads_with_ones() {
        let mut w = sample(2);
        w.dim = [2, 7, 6, 9, 1, 1, 1, 1];
        w.pixdim = [1.0, 1.5, 2.0, 7.0, 1.0, 1.0, 1.0, 1.0];
        w.sform_code = 0;
        let a = Header::parse(&w.to_bytes(), p()).unwrap().best_affine(p()).unwrap();
        assert_eq!(a[0], [-1.5, 0.0, 0.0, 4.5]);
        assert_eq!(a[1], [0.0, 2.0, 0.0, -5.0]);
        assert_eq!(a[2], [0.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn qform_round_trips_through_quaternions() {
        let (cx, sx) = (0.3f64.cos(), 0.3f64.sin());
        let (cz, sz) = (1.1f64.cos(), 1.1f64.sin());
        // Rz · Rx, then zooms; the second with a reflection (qfac -1), the third a 180° turn.
        let rz = [[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]];
        let rx = [[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]];
        let mut rot = [[0.0; 3]; 3];
        for i in 0..3 {
            for j in 0..3 {
                rot[i][j] = (0..3).map(|k| rz[i][k] * rx[k][j]).sum();
            }
        }
        let half_turn = [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]];
        for (rot, flip) in [(rot, 1.0), (rot, -1.0), (half_turn, 1.0), (half_turn, -1.0)] {
            let zooms = [1.5f32, 2.0, 2.5];
            let mut a = IDENTITY;
            for i in 0..3 {
                for j in 0..3 {
                    a[i][j] = rot[i][j] * f64::from(zooms[j]) * if j == 2 { flip } else { 1.0 };
                }
                a[i][3] = [10.0, -20.0, 30.5][i];
            }
            let (quat, qfac) = qform_params(&a, zooms).unwrap();
            assert_eq!(qfac, flip);
            for version in [1u8, 2] {
                let mut w = sample(version);
                w.sform_code = 0;
                w.qform_code = 1;
                w.quatern = quat;
                w.qoffset = [a[0][3], a[1][3], a[2][3]];
                w.pixdim[0] = qfac;
                let h = Header::parse(&w.to_bytes(), p()).unwrap();
                let back = h.best_affine(p()).unwrap();
                let tol = if version == 1 { 2e-6 } else { 1e-12 };
                for i in 0..4 {
                    for j in 0..4 {
                        assert!(
                            (back[i][j] - a[i][j]).abs() < tol * 30.0,
                            "v{version} {i}{j}: {back:?} vs {a:?}"
                        );
                    }
                }
            }
        }
        // Shears, mismatched zooms and NaNs cannot be a qform.
        let mut sheared = IDENTITY;
        sheared[0][1] = 0.5;
        assert!(qform_params(&sheared, [1.0, 1.118034, 1.0]).is_none());
        assert!(qform_params(&IDENTITY, [2.0, 1.0, 1.0]).is_none());
        let mut nan = IDENTITY;
        nan[2][2] = f64::NAN;
        assert!(qform_params(&nan, [1.0, 1.0, 1.0]).is_none());
    }

    #[test]
    fn invalid_quaternion_is_an_error_and_near_unit_is_a_half_turn() {
        let mut w = sample(1);
        w.sform_code = 0;
        w.qform_code = 1;
        w.quatern = [0.9, 0.9, 0.0];
        let h = Header::parse(&w.to_bytes(), p()).unwrap();
        assert!(matches!(h.best_affine(p()), Err(IoError::Malformed { .. })));
        // b²+c²+d² just above 1 within float32 precision: w = 0 (nibabel's threshold).
        w.quatern = [1.0000001, 0.0, 0.0];
        let h = Header::parse(&w.to_bytes(), p()).unwrap();
        let a = h.best_affine(p()).unwrap();
        assert!((a[1][1] + 2.0).abs() < 1e-5 && (a[0][0] - 1.5).abs() < 1e-5, "{a:?}");
    }
}
