//! 2D images: PNG, JPEG and TIFF in (through the `image` crate), PNG out.
//!
//! Samples keep their depth: 8-bit stays [`ImageData::U8`], 16-bit (PNG, TIFF) stays
//! [`ImageData::U16`], float TIFF becomes [`ImageData::F32`]. Gray, gray+alpha, RGB and RGBA
//! are kept as such (palette and 1-bit images come out as 8-bit, CMYK JPEG/TIFF as RGB).
//!
//! The `image` crate does not decode single-channel float or signed-integer TIFF — the
//! usual way scientific and medical software writes a 2D field — so those are read here
//! directly: one sample per pixel, 32/64-bit float or 8/16/32-bit signed or 32-bit unsigned
//! integers, strips (not tiles), uncompressed or Deflate, no predictor. They become gray
//! [`ImageData::F32`].
//!
//! [`write_png`] writes 8- and 16-bit images as they are (16-bit gray stays 16-bit) and
//! **refuses** `F32` images with [`IoError::Unsupported`]: PNG has no float samples and any
//! conversion would have to choose a window, which is the caller's decision.

use super::IoError;
use super::atomic::{read_bytes, write_bytes};
use crate::core::{Channels, Image, ImageData};
use image::{DynamicImage, ExtendedColorType, ImageEncoder, ImageError, ImageFormat, ImageReader};
use std::io::{Cursor, Read};
use std::path::Path;

/// Reads a PNG, JPEG or TIFF file.
pub fn read(path: &Path) -> Result<Image, IoError> {
    let bytes = read_bytes(path)?;
    decode(&bytes, path)
}

/// Decodes image bytes. The format is recognised from the bytes' signature, or from the
/// extension of `path` when the signature says nothing; `path` also names the errors.
pub fn decode(bytes: &[u8], path: &Path) -> Result<Image, IoError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| IoError::malformed(path, format!("cannot read image ({e})")))?;
    let format = match reader.format() {
        Some(f) => f,
        None => {
            let f = ImageFormat::from_path(path)
                .map_err(|_| IoError::unsupported(path, "image format (not PNG, JPEG or TIFF)"))?;
            reader.set_format(f);
            f
        }
    };
    if !matches!(format, ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Tiff) {
        return Err(IoError::unsupported(
            path,
            format!("image format {format:?} (only PNG, JPEG and TIFF are read)"),
        ));
    }
    let name = format!("{format:?}").to_uppercase();
    match reader.decode() {
        Ok(img) => from_dynamic(img, path),
        Err(ImageError::Unsupported(e)) if format == ImageFormat::Tiff => match raw_tiff::decode_gray(bytes) {
            Ok(img) => {
                let elements = (img.0 as u64) * (img.1 as u64);
                IoError::check_size(path, elements)?;
                Image::new(img.0, img.1, Channels::Gray, ImageData::F32(img.2))
                    .map_err(|e| IoError::malformed(path, e.to_string()))
            }
            Err(raw_tiff::Error::Malformed(m)) => Err(IoError::malformed(path, format!("bad TIFF: {m}"))),
            Err(raw_tiff::Error::Unsupported(m)) => Err(IoError::unsupported(path, format!("TIFF: {e}; {m}"))),
        },
        Err(e) => Err(map_error(e, &name, path)),
    }
}

fn map_error(e: ImageError, format: &str, path: &Path) -> IoError {
    match e {
        ImageError::Unsupported(e) => IoError::unsupported(path, format!("{format} feature: {e}")),
        ImageError::Limits(e) => IoError::unsupported(path, format!("{format} image size ({e})")),
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            IoError::malformed(path, format!("truncated {format} image ({e})"))
        }
        e => IoError::malformed(path, format!("cannot decode {format} image ({e})")),
    }
}

fn from_dynamic(img: DynamicImage, path: &Path) -> Result<Image, IoError> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (channels, data) = match img {
        DynamicImage::ImageLuma8(b) => (Channels::Gray, ImageData::U8(b.into_raw())),
        DynamicImage::ImageLumaA8(b) => (Channels::GrayAlpha, ImageData::U8(b.into_raw())),
        DynamicImage::ImageRgb8(b) => (Channels::Rgb, ImageData::U8(b.into_raw())),
        DynamicImage::ImageRgba8(b) => (Channels::Rgba, ImageData::U8(b.into_raw())),
        DynamicImage::ImageLuma16(b) => (Channels::Gray, ImageData::U16(b.into_raw())),
        DynamicImage::ImageLumaA16(b) => (Channels::GrayAlpha, ImageData::U16(b.into_raw())),
        DynamicImage::ImageRgb16(b) => (Channels::Rgb, ImageData::U16(b.into_raw())),
        DynamicImage::ImageRgba16(b) => (Channels::Rgba, ImageData::U16(b.into_raw())),
        DynamicImage::ImageRgb32F(b) => (Channels::Rgb, ImageData::F32(b.into_raw())),
        DynamicImage::ImageRgba32F(b) => (Channels::Rgba, ImageData::F32(b.into_raw())),
        other => (Channels::Rgba, ImageData::F32(other.into_rgba32f().into_raw())),
    };
    Image::new(w, h, channels, data).map_err(|e| IoError::malformed(path, format!("bad image ({e})")))
}

/// Writes a PNG (atomic). 8- and 16-bit images keep their depth and channels; `F32` images
/// are refused with [`IoError::Unsupported`] (convert them to 8 or 16 bit first).
pub fn write_png(path: &Path, img: &Image) -> Result<(), IoError> {
    let bytes = encode_png(img).map_err(|e| match e {
        PngError::Float => IoError::unsupported(
            path,
            "writing a 32-bit float image as PNG (PNG holds 8 or 16-bit samples; convert it first)",
        ),
        PngError::Encode(e) => IoError::write(path, std::io::Error::other(e)),
    })?;
    write_bytes(path, &bytes)
}

enum PngError {
    Float,
    Encode(ImageError),
}

fn encode_png(img: &Image) -> Result<Vec<u8>, PngError> {
    let (w, h) = (img.width() as u32, img.height() as u32);
    let (bytes, color): (&[u8], ExtendedColorType) = match (img.data(), img.channels()) {
        (ImageData::F32(_), _) => return Err(PngError::Float),
        (ImageData::U8(v), c) => (
            v,
            match c {
                Channels::Gray => ExtendedColorType::L8,
                Channels::GrayAlpha => ExtendedColorType::La8,
                Channels::Rgb => ExtendedColorType::Rgb8,
                Channels::Rgba => ExtendedColorType::Rgba8,
            },
        ),
        // The encoder takes 16-bit samples in native byte order.
        (ImageData::U16(v), c) => (
            bytemuck::cast_slice(v),
            match c {
                Channels::Gray => ExtendedColorType::L16,
                Channels::GrayAlpha => ExtendedColorType::La16,
                Channels::Rgb => ExtendedColorType::Rgb16,
                Channels::Rgba => ExtendedColorType::Rgba16,
            },
        ),
    };
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(bytes, w, h, color)
        .map_err(PngError::Encode)?;
    Ok(out)
}

/// An 8-bit RGBA image from pixels listed row by row, top row first (a screenshot, a
/// rendered view).
///
/// # Panics
/// If `pixels.len() != width × height` or either side is zero.
pub fn rgba8_to_image(width: usize, height: usize, pixels: Vec<[u8; 4]>) -> Image {
    let data: Vec<u8> = pixels.into_iter().flatten().collect();
    Image::new(width, height, Channels::Rgba, ImageData::U8(data))
        .expect("rgba8_to_image: pixel count must be width × height")
}

/// A minimal reader for single-sample numeric TIFF that the `image` crate refuses.
mod raw_tiff {
    use super::Read;

    pub enum Error {
        Malformed(String),
        Unsupported(String),
    }

    fn bad(m: impl Into<String>) -> Error {
        Error::Malformed(m.into())
    }
    fn unsupported(m: impl Into<String>) -> Error {
        Error::Unsupported(m.into())
    }

    struct R<'a> {
        b: &'a [u8],
        big: bool,
    }

    impl R<'_> {
        fn u16(&self, at: usize) -> Result<u16, Error> {
            let s = self
                .b
                .get(at..at + 2)
                .ok_or_else(|| bad("truncated (IFD past end of file)"))?;
            let a = [s[0], s[1]];
            Ok(if self.big {
                u16::from_be_bytes(a)
            } else {
                u16::from_le_bytes(a)
            })
        }
        fn u32(&self, at: usize) -> Result<u32, Error> {
            let s = self
                .b
                .get(at..at + 4)
                .ok_or_else(|| bad("truncated (IFD past end of file)"))?;
            let a = [s[0], s[1], s[2], s[3]];
            Ok(if self.big {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            })
        }
        /// All values of an IFD entry of type BYTE, SHORT or LONG.
        fn values(&self, entry: usize) -> Result<Vec<u64>, Error> {
            let typ = self.u16(entry + 2)?;
            let count = self.u32(entry + 4)? as usize;
            let size = match typ {
                1 => 1,
                3 => 2,
                4 => 4,
                _ => return Err(unsupported(format!("IFD entry type {typ} for a numeric tag"))),
            };
            if count > 1 << 24 {
                return Err(bad("implausible IFD entry count"));
            }
            let start = if count * size <= 4 {
                entry + 8
            } else {
                self.u32(entry + 8)? as usize
            };
            (0..count)
                .map(|i| {
                    let at = start + i * size;
                    Ok(match size {
                        1 => u64::from(*self.b.get(at).ok_or_else(|| bad("truncated tag values"))?),
                        2 => u64::from(self.u16(at)?),
                        _ => u64::from(self.u32(at)?),
                    })
                })
                .collect()
        }
    }

    /// `(width, height, samples)` of the first image of a single-sample TIFF.
    pub fn decode_gray(b: &[u8]) -> Result<(usize, usize, Vec<f32>), Error> {
        let big = match b.get(..4) {
            Some([b'I', b'I', 42, 0]) => false,
            Some([b'M', b'M', 0, 42]) => true,
            Some([b'I', b'I', 43, 0]) | Some([b'M', b'M', 0, 43]) => return Err(unsupported("BigTIFF")),
            _ => return Err(bad("not a TIFF file (bad signature)")),
        };
        let r = R { b, big };
        let ifd = r.u32(4)? as usize;
        let n = usize::from(r.u16(ifd)?);
        let mut tag = std::collections::HashMap::new();
        for i in 0..n {
            let e = ifd + 2 + 12 * i;
            tag.insert(r.u16(e)?, e);
        }
        let get = |t: u16| -> Result<Option<Vec<u64>>, Error> { tag.get(&t).map(|&e| r.values(e)).transpose() };
        let one = |t: u16, default: Option<u64>, what: &str| -> Result<u64, Error> {
            match get(t)? {
                Some(v) if !v.is_empty() => Ok(v[0]),
                _ => default.ok_or_else(|| bad(format!("missing tag {what}"))),
            }
        };
        let width = one(256, None, "ImageWidth")? as usize;
        let height = one(257, None, "ImageLength")? as usize;
        let spp = one(277, Some(1), "SamplesPerPixel")?;
        let bits = one(258, Some(1), "BitsPerSample")?;
        let format = one(339, Some(1), "SampleFormat")?;
        let compression = one(259, Some(1), "Compression")?;
        let predictor = one(317, Some(1), "Predictor")?;
        if tag.contains_key(&322) {
            return Err(unsupported("tiled layout in the fallback reader"));
        }
        if spp != 1 {
            return Err(unsupported(format!(
                "{spp} samples per pixel with sample format {format}, {bits} bits"
            )));
        }
        let kind = match (format, bits) {
            (3, 32) => Kind::F32,
            (3, 64) => Kind::F64,
            (2, 8) => Kind::I8,
            (2, 16) => Kind::I16,
            (2, 32) => Kind::I32,
            (1, 32) => Kind::U32,
            _ => {
                return Err(unsupported(format!(
                    "sample format {format} with {bits} bits per sample"
                )));
            }
        };
        if predictor != 1 {
            return Err(unsupported(format!("predictor {predictor}")));
        }
        if !matches!(compression, 1 | 8 | 32946) {
            return Err(unsupported(format!(
                "compression {compression} in the fallback reader (only none and Deflate)"
            )));
        }
        if width == 0 || height == 0 {
            return Err(bad("zero-sized image"));
        }
        let size = bits as usize / 8;
        let need = width
            .checked_mul(height)
            .and_then(|p| p.checked_mul(size))
            .filter(|&n| n as u64 <= (super::super::MAX_ELEMENTS * 4))
            .ok_or_else(|| bad("implausible image size"))?;
        let offsets = get(273)?.ok_or_else(|| bad("missing tag StripOffsets"))?;
        let counts = get(279)?.ok_or_else(|| bad("missing tag StripByteCounts"))?;
        if offsets.len() != counts.len() {
            return Err(bad("StripOffsets and StripByteCounts differ in length"));
        }
        let mut raw = Vec::with_capacity(need);
        for (&o, &c) in offsets.iter().zip(&counts) {
            let strip = usize::try_from(o)
                .ok()
                .zip(usize::try_from(c).ok())
                .and_then(|(o, c)| b.get(o..o.checked_add(c)?))
                .ok_or_else(|| bad("truncated (strip past end of file)"))?;
            if compression == 1 {
                raw.extend_from_slice(strip);
            } else {
                let room = (need - raw.len().min(need)) as u64 + 1;
                flate2::read::ZlibDecoder::new(strip)
                    .take(room)
                    .read_to_end(&mut raw)
                    .map_err(|e| bad(format!("bad Deflate data ({e})")))?;
            }
            if raw.len() >= need {
                break;
            }
        }
        if raw.len() < need {
            return Err(bad(format!(
                "truncated: {need} bytes of pixels needed, {} found",
                raw.len()
            )));
        }
        raw.truncate(need);
        Ok((width, height, kind.convert(&raw, big)))
    }

    #[derive(Clone, Copy)]
    enum Kind {
        F32,
        F64,
        I8,
        I16,
        I32,
        U32,
    }

    impl Kind {
        fn convert(self, raw: &[u8], big: bool) -> Vec<f32> {
            macro_rules! conv {
                ($t:ty, $n:literal) => {
                    raw.chunks_exact($n)
                        .map(|c| {
                            let a: [u8; $n] = c.try_into().unwrap();
                            (if big {
                                <$t>::from_be_bytes(a)
                            } else {
                                <$t>::from_le_bytes(a)
                            }) as f32
                        })
                        .collect()
                };
            }
            match self {
                Kind::F32 => conv!(f32, 4),
                Kind::F64 => conv!(f64, 8),
                Kind::I8 => raw.iter().map(|&v| f32::from(v as i8)).collect(),
                Kind::I16 => conv!(i16, 2),
                Kind::I32 => conv!(i32, 4),
                Kind::U32 => conv!(u32, 4),
            }
        }
    }
}
