//! `Image`: a 2D raster, gray/RGB/RGBA at 8, 16 or 32 (float) bits per sample.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Channels {
    Gray,
    GrayAlpha,
    Rgb,
    Rgba,
}

impl Channels {
    pub fn count(self) -> usize {
        match self {
            Channels::Gray => 1,
            Channels::GrayAlpha => 2,
            Channels::Rgb => 3,
            Channels::Rgba => 4,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Channels::Gray => "gray",
            Channels::GrayAlpha => "gray+alpha",
            Channels::Rgb => "rgb",
            Channels::Rgba => "rgba",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BitDepth {
    U8,
    U16,
    F32,
}

impl BitDepth {
    pub fn bits(self) -> u32 {
        match self {
            BitDepth::U8 => 8,
            BitDepth::U16 => 16,
            BitDepth::F32 => 32,
        }
    }
}

/// Interleaved samples, row-major, top row first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ImageData {
    U8(Vec<u8>),
    U16(Vec<u16>),
    F32(Vec<f32>),
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("image {width}×{height}×{channels} needs {expected} samples but {found} were given")]
pub struct ImageSizeError {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub expected: usize,
    pub found: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Image {
    width: usize,
    height: usize,
    channels: Channels,
    data: ImageData,
}

impl Image {
    pub fn new(width: usize, height: usize, channels: Channels, data: ImageData) -> Result<Self, ImageSizeError> {
        let found = match &data {
            ImageData::U8(v) => v.len(),
            ImageData::U16(v) => v.len(),
            ImageData::F32(v) => v.len(),
        };
        let expected = width * height * channels.count();
        if found != expected || width == 0 || height == 0 {
            return Err(ImageSizeError {
                width,
                height,
                channels: channels.count(),
                expected,
                found,
            });
        }
        Ok(Self {
            width,
            height,
            channels,
            data,
        })
    }
    pub fn width(&self) -> usize {
        self.width
    }
    pub fn height(&self) -> usize {
        self.height
    }
    pub fn channels(&self) -> Channels {
        self.channels
    }
    pub fn data(&self) -> &ImageData {
        &self.data
    }
    pub fn bit_depth(&self) -> BitDepth {
        match self.data {
            ImageData::U8(_) => BitDepth::U8,
            ImageData::U16(_) => BitDepth::U16,
            ImageData::F32(_) => BitDepth::F32,
        }
    }
    /// All samples as `f32` in their stored units (0–255, 0–65535 or float).
    pub fn samples_f32(&self) -> Vec<f32> {
        match &self.data {
            ImageData::U8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            ImageData::U16(v) => v.iter().map(|&x| f32::from(x)).collect(),
            ImageData::F32(v) => v.clone(),
        }
    }
    /// One channel as a plane of `f32`.
    pub fn channel_f32(&self, c: usize) -> Vec<f32> {
        let n = self.channels.count();
        self.samples_f32().into_iter().skip(c).step_by(n).collect()
    }
    /// Luminance-free gray view: the mean over colour channels (alpha ignored).
    pub fn gray_f32(&self) -> Vec<f32> {
        let n = self.channels.count();
        let colour = match self.channels {
            Channels::Gray | Channels::GrayAlpha => 1,
            Channels::Rgb | Channels::Rgba => 3,
        };
        self.samples_f32()
            .chunks_exact(n)
            .map(|px| px[..colour].iter().sum::<f32>() / colour as f32)
            .collect()
    }

    /// The 8-bit images side by side, left to right, in one image (a strip of frames). `None`
    /// when there are none or they differ in height, channels or bit depth.
    pub fn strip(images: &[Image]) -> Option<Image> {
        let first = images.first()?;
        let (h, ch) = (first.height, first.channels);
        let mut rows: Vec<Vec<u8>> = vec![Vec::new(); h];
        let mut width = 0;
        for img in images {
            let ImageData::U8(data) = &img.data else { return None };
            if img.height != h || img.channels != ch {
                return None;
            }
            let stride = img.width * ch.count();
            for (y, row) in rows.iter_mut().enumerate() {
                row.extend_from_slice(&data[y * stride..(y + 1) * stride]);
            }
            width += img.width;
        }
        Image::new(width, h, ch, ImageData::U8(rows.concat())).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_puts_frames_left_to_right() {
        let a = Image::new(2, 2, Channels::Gray, ImageData::U8(vec![1, 2, 3, 4])).unwrap();
        let b = Image::new(1, 2, Channels::Gray, ImageData::U8(vec![9, 8])).unwrap();
        let s = Image::strip(&[a.clone(), b]).unwrap();
        assert_eq!((s.width(), s.height()), (3, 2));
        assert_eq!(s.data(), &ImageData::U8(vec![1, 2, 9, 3, 4, 8]));
        let tall = Image::new(1, 3, Channels::Gray, ImageData::U8(vec![0; 3])).unwrap();
        assert!(Image::strip(&[a.clone(), tall]).is_none());
        let rgb = Image::new(1, 2, Channels::Rgb, ImageData::U8(vec![0; 6])).unwrap();
        assert!(Image::strip(&[a, rgb]).is_none());
        assert!(Image::strip(&[]).is_none());
    }
}
