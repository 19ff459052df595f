//! NIfTI-1 and NIfTI-2 single-file images (`.nii`, `.nii.gz`), read and written by our own code.
//!
//! Reading follows nibabel 5 so that a volume loads with the same values and the same affine
//! as `nib.load(path)`: byte order from `sizeof_hdr`; the load-time header repairs nibabel
//! applies (negative spatial `pixdim`s made positive, zero ones set to 1, `qfac` forced to ±1,
//! unknown transform codes treated as 0); intensity scaling as `get_fdata()` computes it
//! (`raw · scl_slope + scl_inter` in `f64`, skipped when the slope is 0 or not finite), then
//! rounded to `f32`; the affine of `get_best_affine()` (sform if `sform_code != 0`, else qform if
//! `qform_code != 0`, else the base affine from `pixdim` and the shape); spacing from
//! `pixdim[1..4]` as `header.get_zooms()` gives it (no unit conversion). Dimensions 4 to 7 are
//! flattened into frames, missing ones (`dim[0] < 3`) count as 1.
//!
//! Where we deliberately differ from nibabel, on files it would not read sensibly:
//! `vox_offset == 0` means "right after the header" (nibabel would read the header as voxels),
//! a non-finite `scl_inter` with a valid slope counts as 0 (nibabel refuses the file), and a
//! non-finite spatial `pixdim` is taken as 1.
//!
//! Every malformed input gives a typed [`IoError`] naming the file; nothing is allocated for the
//! voxels before the header's size has passed [`IoError::check_size`].

mod convert;
mod header;

use super::IoError;
use super::atomic::{read_bytes, write_atomic};
use crate::core::{ScalarKind, Volume};
use flate2::Compression;
use flate2::bufread::MultiGzDecoder;
use flate2::write::GzEncoder;
use header::{Header, Layout, WriteHeader};
use std::io::{Read, Write};
use std::path::Path;

/// What the header said, beyond what [`Volume`] keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct NiftiInfo {
    /// 1 or 2.
    pub version: u8,
    /// The element type stored in the file (before conversion to `f32`).
    pub datatype: ScalarKind,
    pub big_endian: bool,
    /// `scl_slope` and `scl_inter` as stored (see [`read`] for how they are applied).
    pub scl_slope: f64,
    pub scl_inter: f64,
    /// Transform codes after nibabel's repair (a code outside 0..=5 reads as 0).
    pub qform_code: i32,
    pub sform_code: i32,
    pub xyzt_units: u8,
    pub descrip: String,
    /// Byte offset of the voxels in the (decompressed) file.
    pub vox_offset: u64,
}

/// How [`write`] stores a volume.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// Element type on disk: u8, i8, i16, u16, i32, u32, i64, u64, f32 or f64. Integer types
    /// round half to even and saturate (NaN becomes 0); no intensity scaling is written.
    pub datatype: ScalarKind,
    /// 1 (NIfTI-1, dimensions up to 32767) or 2 (NIfTI-2).
    pub version: u8,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            datatype: ScalarKind::F32,
            version: 1,
        }
    }
}

/// gzip level for `.nii.gz`: zlib-rs level 1 ("quick") makes much larger files for little
/// gain; level 3 writes a 256³ volume several times faster than level 6 at a similar size.
const GZIP_LEVEL: u32 = 3;

/// The largest expansion a deflate stream can encode (about 1032:1), used to bound how much
/// memory a header can make us reserve before the decompressed bytes have arrived.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// Reads a `.nii` or `.nii.gz` file (gzip recognised by its magic bytes, not the name).
pub fn read(path: &Path) -> Result<Volume, IoError> {
    read_with_info(path).map(|(volume, _)| volume)
}

/// [`read`], also returning the header fields that [`Volume`] does not keep.
pub fn read_with_info(path: &Path) -> Result<(Volume, NiftiInfo), IoError> {
    if is_pair_name(path) {
        std::fs::metadata(path).map_err(|e| IoError::read(path, e))?;
        return Err(IoError::unsupported(
            path,
            "two-file NIfTI/Analyze (.hdr/.img pair); only single-file .nii/.nii.gz is read \
             (convert it, e.g. with nibabel or fslchfiletype NIFTI_GZ)",
        ));
    }
    let bytes = read_bytes(path)?;
    decode(&bytes, path)
}

/// Decodes the bytes of a whole `.nii` or `.nii.gz` file (gzip detected by the magic bytes
/// `1f 8b`). `path` is used only in error messages.
pub fn decode(bytes: &[u8], path: &Path) -> Result<(Volume, NiftiInfo), IoError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        decode_gzip(bytes, path)
    } else {
        decode_plain(bytes, path)
    }
}

fn is_pair_name(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    [".hdr", ".img", ".hdr.gz", ".img.gz"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

fn gzip_error(path: &Path, e: std::io::Error) -> IoError {
    IoError::malformed(path, format!("gzip data is corrupt or truncated ({e})"))
}

/// Decompressed bytes handled per step of the gzip pipeline.
const GZIP_STEP: usize = 1 << 20;

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn truncated(path: &Path, layout: &Layout, available: u64, gzipped: bool) -> IoError {
    let what = if gzipped { " (decompressed)" } else { "" };
    IoError::malformed(
        path,
        format!(
            "data truncated: header needs {} bytes after offset {} but file has {available}{what} \
             ({:?} × {} frames of {})",
            layout.nbytes, layout.offset, layout.dims, layout.frames, layout.kind
        ),
    )
}

fn past_the_end(path: &Path, layout: &Layout, len: u64, gzipped: bool) -> IoError {
    let what = if gzipped { " (decompressed)" } else { "" };
    IoError::malformed(
        path,
        format!(
            "vox_offset {} is past the end of the file, which has {len} bytes{what}",
            layout.offset
        ),
    )
}

/// Decodes a gzip-compressed file in one pass: the stream is inflated [`GZIP_STEP`] bytes at a
/// time while the previous step's voxels are converted to `f32` on other threads, so the
/// decompressed file is never held whole. Nothing past the voxels is inflated except to check
/// the gzip trailer, and memory is reserved only as far as the compressed size makes plausible.
fn decode_gzip(bytes: &[u8], path: &Path) -> Result<(Volume, NiftiInfo), IoError> {
    let gz = |e| gzip_error(path, e);
    let mut dec = MultiGzDecoder::new(bytes);
    let mut head = vec![0u8; header::OFFSET2 as usize];
    let head_len = read_full(&mut dec, &mut head).map_err(gz)?;
    head.truncate(head_len);
    let header = Header::parse(&head, path)?;
    let layout = header.layout(path)?;
    let affine = header.best_affine(path)?;
    let spacing = header.spacing(path)?;
    let scaling = header.scaling();
    let kind = layout.kind;
    let size = kind.size();

    // Skip any extensions between what was read and the voxels.
    let have = head_len as u64;
    if layout.offset > have {
        let skip = layout.offset - have;
        let skipped = std::io::copy(&mut (&mut dec).take(skip), &mut std::io::sink()).map_err(gz)?;
        if skipped < skip {
            return Err(past_the_end(path, &layout, have + skipped, true));
        }
    }
    let head_data = head.get(layout.offset as usize..).unwrap_or_default();
    let head_data = &head_data[..head_data.len().min(layout.nbytes as usize)];

    let plausible = (bytes.len() as u64)
        .saturating_mul(MAX_DEFLATE_RATIO)
        .saturating_add(1 << 20)
        / size as u64;
    let mut data: Vec<f32> = Vec::new();
    data.try_reserve_exact(layout.elements.min(usize::try_from(plausible).unwrap_or(usize::MAX)))
        .map_err(|_| IoError::TooLarge {
            path: path.to_path_buf(),
            elements: layout.elements as u64,
        })?;

    // `cur[..cur_len]` holds bytes ready to convert; the part after the last whole element is
    // carried to the front of `next`, which the other branch of the join fills from the stream.
    let mut cur = vec![0u8; GZIP_STEP + size];
    let mut next = vec![0u8; GZIP_STEP + size];
    cur[..head_data.len()].copy_from_slice(head_data);
    let mut cur_len = head_data.len();
    let mut got = head_data.len() as u64;
    loop {
        let whole = cur_len / size * size;
        let carry = cur_len - whole;
        next[..carry].copy_from_slice(&cur[whole..cur_len]);
        let want = (layout.nbytes - got).min(GZIP_STEP as u64) as usize;
        let start = data.len();
        data.resize(start + whole / size, 0.0);
        let (read, converted) = rayon::join(
            || read_full(&mut dec, &mut next[carry..carry + want]),
            || convert::decode_into(&cur[..whole], kind, header.big_endian, scaling, &mut data[start..]),
        );
        if !converted {
            return Err(IoError::unsupported(path, format!("NIfTI element type {kind}")));
        }
        let read = read.map_err(gz)?;
        got += read as u64;
        std::mem::swap(&mut cur, &mut next);
        cur_len = carry + read;
        if want == 0 {
            break;
        }
        if read < want {
            return Err(truncated(path, &layout, got, true));
        }
    }
    // Reach the end of the stream so the gzip trailer (CRC-32 and length) is checked, unless
    // more than a little trailing data follows the voxels.
    std::io::copy(&mut (&mut dec).take(1 << 20), &mut std::io::sink()).map_err(gz)?;
    let volume = Volume::new(layout.dims, layout.frames, spacing, affine, data)
        .map_err(|e| IoError::malformed(path, e.to_string()))?
        .with_source_kind(kind);
    Ok((volume, header.info(kind)))
}

/// Where the voxel bytes are, or why they are missing.
fn voxel_bytes<'a>(bytes: &'a [u8], layout: &Layout, path: &Path) -> Result<&'a [u8], IoError> {
    let len = bytes.len() as u64;
    if layout.offset > len {
        return Err(past_the_end(path, layout, len, false));
    }
    let available = len - layout.offset;
    if available < layout.nbytes {
        return Err(truncated(path, layout, available, false));
    }
    // Both bounds are at most `len`, which is a usize.
    let start = layout.offset as usize;
    Ok(&bytes[start..start + layout.nbytes as usize])
}

fn decode_plain(bytes: &[u8], path: &Path) -> Result<(Volume, NiftiInfo), IoError> {
    let header = Header::parse(bytes, path)?;
    let layout = header.layout(path)?;
    let raw = voxel_bytes(bytes, &layout, path)?;
    let affine = header.best_affine(path)?;
    let spacing = header.spacing(path)?;
    let data = convert::decode(raw, layout.kind, header.big_endian, header.scaling())
        .ok_or_else(|| IoError::unsupported(path, format!("NIfTI element type {}", layout.kind)))?;
    let volume = Volume::new(layout.dims, layout.frames, spacing, affine, data)
        .map_err(|e| IoError::malformed(path, e.to_string()))?
        .with_source_kind(layout.kind);
    Ok((volume, header.info(layout.kind)))
}

/// Writes a volume as `.nii`, or gzip-compressed when the name ends in `.nii.gz`, atomically.
///
/// The header is little-endian with `scl_slope` 1 / `scl_inter` 0, `pixdim` from the spacing,
/// `xyzt_units` mm + s, the voxels at offset 352 (NIfTI-1) or 544 (NIfTI-2) after a zero
/// extension flag, the affine as sform (code 1, scanner) and, when the affine is a rotation
/// (or reflection) times the spacing plus a translation, also as qform (code 1, as nibabel's
/// `set_qform` encodes it); otherwise `qform_code` is 0.
pub fn write(path: &Path, volume: &Volume, opts: &WriteOptions) -> Result<(), IoError> {
    if is_pair_name(path) {
        return Err(IoError::unsupported(
            path,
            "writing .hdr/.img pairs (use .nii or .nii.gz)",
        ));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let gzip = name.ends_with(".nii.gz");
    let head = write_header(volume, opts, path)?.to_bytes();
    let data = convert::encode(volume.data(), opts.datatype)
        .ok_or_else(|| IoError::unsupported(path, format!("writing {} voxels to NIfTI", opts.datatype)))?;
    write_atomic(path, |w| {
        if gzip {
            let mut enc = GzEncoder::new(w, Compression::new(GZIP_LEVEL));
            enc.write_all(&head)?;
            enc.write_all(&data)?;
            enc.finish()?;
            Ok(())
        } else {
            w.write_all(&head)?;
            w.write_all(&data)
        }
    })
}

fn write_header(volume: &Volume, opts: &WriteOptions, path: &Path) -> Result<WriteHeader, IoError> {
    if opts.version != 1 && opts.version != 2 {
        return Err(IoError::unsupported(
            path,
            format!("NIfTI version {} (write 1 or 2)", opts.version),
        ));
    }
    let datatype = header::code_of_kind(opts.datatype)
        .ok_or_else(|| IoError::unsupported(path, format!("writing {} voxels to NIfTI", opts.datatype)))?;
    let [x, y, z] = volume.dims();
    let frames = volume.frames();
    let shape: &[usize] = if frames > 1 { &[x, y, z, frames] } else { &[x, y, z] };
    let limit = if opts.version == 1 {
        i16::MAX as usize
    } else {
        i64::MAX as usize
    };
    let mut dim = [1i64; 8];
    dim[0] = shape.len() as i64;
    for (d, &s) in dim[1..].iter_mut().zip(shape) {
        if s > limit {
            return Err(IoError::unsupported(
                path,
                format!("dimension {s} in NIfTI-1 (at most 32767; write NIfTI-2 instead)"),
            ));
        }
        *d = s as i64;
    }
    let a = volume.world_from_voxel();
    let spacing = volume.spacing_mm();
    let (qform_code, quatern, qfac) = match header::qform_params(a, spacing) {
        Some((quat, qfac)) => (1, quat, qfac),
        None => (0, [0.0; 3], 1.0),
    };
    let mut pixdim = [1.0f64; 8];
    pixdim[0] = qfac;
    for (p, &s) in pixdim[1..4].iter_mut().zip(&spacing) {
        *p = f64::from(s);
    }
    Ok(WriteHeader {
        version: opts.version,
        datatype,
        bitpix: (opts.datatype.size() * 8) as i16,
        dim,
        pixdim,
        qform_code,
        sform_code: 1,
        quatern,
        qoffset: [a[0][3], a[1][3], a[2][3]],
        srow: [a[0], a[1], a[2]],
        descrip: format!("latent-workbench {}", crate::VERSION),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::volume::{Affine, IDENTITY};

    fn p() -> &'static Path {
        Path::new("mem.nii")
    }

    fn encode_file(volume: &Volume, opts: &WriteOptions) -> Vec<u8> {
        let mut bytes = write_header(volume, opts, p()).unwrap().to_bytes();
        bytes.extend_from_slice(&convert::encode(volume.data(), opts.datatype).unwrap());
        bytes
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn rotated() -> Volume {
        let (c, s) = (0.6f64, 0.8f64);
        let a: Affine = [
            [c * 1.5, -s * 2.0, 0.0, -10.0],
            [s * 1.5, c * 2.0, 0.0, 20.5],
            [0.0, 0.0, -2.5, 3.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let data = (0..7 * 6 * 5 * 2).map(|i| (i as f32) - 100.0).collect();
        Volume::new([7, 6, 5], 2, [1.5, 2.0, 2.5], a, data)
            .unwrap()
            .with_source_kind(ScalarKind::I16)
    }

    #[test]
    fn in_memory_round_trip_plain_and_gzipped() {
        let v = rotated();
        for version in [1, 2] {
            for kind in [ScalarKind::I16, ScalarKind::F32, ScalarKind::F64, ScalarKind::I64] {
                let opts = WriteOptions {
                    datatype: kind,
                    version,
                };
                let bytes = encode_file(&v, &opts);
                for file in [bytes.clone(), gzip(&bytes)] {
                    let (back, info) = decode(&file, p()).unwrap();
                    assert_eq!(back.data(), v.data());
                    assert_eq!(back.shape(), vec![7, 6, 5, 2]);
                    assert_eq!(back.spacing_mm(), v.spacing_mm());
                    assert_eq!(back.source_kind, kind);
                    assert_eq!(
                        (info.version, info.datatype, info.qform_code, info.sform_code),
                        (version, kind, 1, 1)
                    );
                    assert_eq!(info.xyzt_units, 10);
                    for r in 0..4 {
                        for c in 0..4 {
                            assert!((back.world_from_voxel()[r][c] - v.world_from_voxel()[r][c]).abs() < 1e-6);
                        }
                    }
                    // The qform we wrote stands for the same affine.
                    let q = Header::parse(&bytes, p()).unwrap().qform().unwrap();
                    for r in 0..3 {
                        for c in 0..4 {
                            assert!((q[r][c] - v.world_from_voxel()[r][c]).abs() < 1e-5, "{q:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn sheared_affine_gets_no_qform() {
        let mut a = IDENTITY;
        a[0][1] = 0.3;
        let v = Volume::new([2, 2, 2], 1, [1.0; 3], a, vec![0.0; 8]).unwrap();
        let h = write_header(&v, &WriteOptions::default(), p()).unwrap();
        assert_eq!((h.qform_code, h.sform_code), (0, 1));
    }

    #[test]
    fn writer_refuses_what_it_cannot_store() {
        let v = Volume::from_spacing([40000, 1, 1], [1.0; 3], vec![0.0; 40000]).unwrap();
        assert!(matches!(
            write_header(&v, &WriteOptions::default(), p()),
            Err(IoError::Unsupported { .. })
        ));
        assert!(
            write_header(
                &v,
                &WriteOptions {
                    datatype: ScalarKind::F32,
                    version: 2
                },
                p()
            )
            .is_ok()
        );
        let small = Volume::from_spacing([1, 1, 1], [1.0; 3], vec![0.0]).unwrap();
        for opts in [
            WriteOptions {
                datatype: ScalarKind::F16,
                version: 1,
            },
            WriteOptions {
                datatype: ScalarKind::F32,
                version: 3,
            },
        ] {
            assert!(matches!(
                write_header(&small, &opts, p()),
                Err(IoError::Unsupported { .. })
            ));
        }
    }

    #[test]
    fn truncated_and_offset_errors_say_what_is_missing() {
        let v = rotated();
        let bytes = encode_file(&v, &WriteOptions::default());
        let e = decode(&bytes[..bytes.len() - 1], p()).unwrap_err().to_string();
        assert!(
            e.contains("data truncated: header needs 1680 bytes after offset 352 but file has 1679"),
            "{e}"
        );
        assert!(e.contains("mem.nii"), "{e}");
        let e = decode(&gzip(&bytes[..1000]), p()).unwrap_err().to_string();
        assert!(e.contains("data truncated") && e.contains("decompressed"), "{e}");
        let mut far = bytes.clone();
        far[108..112].copy_from_slice(&1e6f32.to_le_bytes());
        let e = decode(&far, p()).unwrap_err().to_string();
        assert!(e.contains("past the end"), "{e}");
        let gz = gzip(&bytes);
        for cut in [1, 2, 10, gz.len() / 2, gz.len() - 4] {
            let e = decode(&gz[..cut], p()).unwrap_err();
            assert!(matches!(e, IoError::Malformed { .. }), "{cut}: {e}");
        }
    }

    #[test]
    fn gzip_bomb_behind_a_small_header_is_not_inflated() {
        let v = Volume::from_spacing([2, 2, 2], [1.0; 3], vec![1.0; 8]).unwrap();
        let mut bytes = encode_file(&v, &WriteOptions::default());
        bytes.resize(bytes.len() + (64 << 20), 0);
        let (back, _) = decode(&gzip(&bytes), p()).unwrap();
        assert_eq!(back.data(), &[1.0; 8]);
    }

    #[test]
    fn absurd_header_in_a_tiny_gzip_reserves_little() {
        let v = Volume::from_spacing([2, 2, 2], [1.0; 3], vec![1.0; 8]).unwrap();
        let mut bytes = encode_file(
            &v,
            &WriteOptions {
                datatype: ScalarKind::F64,
                version: 2,
            },
        );
        // 1024³ f64 = 8 GiB claimed, within MAX_ELEMENTS; only a few bytes present.
        for (i, d) in [1024i64, 1024, 1024].iter().enumerate() {
            bytes[24 + 8 * i..32 + 8 * i].copy_from_slice(&d.to_le_bytes());
        }
        let e = decode(&gzip(&bytes), p()).unwrap_err().to_string();
        assert!(e.contains("data truncated"), "{e}");
    }

    #[test]
    fn gzip_pipeline_handles_many_steps_and_odd_offsets() {
        let n = 3 * GZIP_STEP / 8 + 1234;
        let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 7.0).collect();
        let v = Volume::new([n, 1, 1], 1, [1.0; 3], IDENTITY, data).unwrap();
        let plain = encode_file(
            &v,
            &WriteOptions {
                datatype: ScalarKind::F64,
                version: 2,
            },
        );
        // The same voxels at offset 549: elements straddle every step boundary.
        let mut odd = plain[..544].to_vec();
        odd[168..176].copy_from_slice(&549i64.to_le_bytes());
        odd.extend_from_slice(&[0xAB; 5]);
        odd.extend_from_slice(&plain[544..]);
        for file in [&plain, &odd] {
            let (back, info) = decode(&gzip(file), p()).unwrap();
            assert_eq!(back.data(), v.data());
            assert_eq!(info.vox_offset, if file.len() == plain.len() { 544 } else { 549 });
            assert_eq!(decode(file, p()).unwrap().0.data(), v.data(), "plain path agrees");
        }
        let e = decode(&gzip(&odd[..odd.len() - 1001]), p()).unwrap_err().to_string();
        let want = format!(
            "header needs {} bytes after offset 549 but file has {}",
            n * 8,
            n * 8 - 1001
        );
        assert!(e.contains(&want), "{e}");
    }

    #[test]
    fn pair_names_are_detected() {
        for name in ["a.hdr", "A.IMG", "x.hdr.gz", "y.img.gz"] {
            assert!(is_pair_name(Path::new(name)), "{name}");
        }
        for name in ["a.nii", "a.nii.gz", "hdr"] {
            assert!(!is_pair_name(Path::new(name)), "{name}");
        }
    }
}
