//! Orthogonal slices of a volume for display: which voxel sits under which pixel.
//!
//! Pixels run left→right along the first in-plane voxel axis and bottom→top along the second,
//! so for a RAS-oriented scan anterior and superior point up (neurological convention: the
//! subject's left is on the screen's left... of a viewer looking from below/behind).

use super::volume::{apply, compose, invert};
use super::{Colormap, Volume};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Plane {
    /// z fixed: x across, y up.
    Axial,
    /// y fixed: x across, z up.
    Coronal,
    /// x fixed: y across, z up.
    Sagittal,
}

impl Plane {
    pub const ALL: [Plane; 3] = [Plane::Axial, Plane::Coronal, Plane::Sagittal];

    pub fn name(self) -> &'static str {
        match self {
            Plane::Axial => "axial",
            Plane::Coronal => "coronal",
            Plane::Sagittal => "sagittal",
        }
    }
    /// The voxel axis held fixed.
    pub fn normal_axis(self) -> usize {
        match self {
            Plane::Axial => 2,
            Plane::Coronal => 1,
            Plane::Sagittal => 0,
        }
    }
    /// The voxel axes shown across (columns) and up (rows).
    pub fn in_plane_axes(self) -> (usize, usize) {
        match self {
            Plane::Axial => (0, 1),
            Plane::Coronal => (0, 2),
            Plane::Sagittal => (1, 2),
        }
    }
    /// `(columns, rows)` of this plane's slices of a grid.
    pub fn size(self, dims: [usize; 3]) -> (usize, usize) {
        let (u, v) = self.in_plane_axes();
        (dims[u], dims[v])
    }
    /// Physical size of one pixel `(across, up)` in mm.
    pub fn pixel_mm(self, spacing_mm: [f32; 3]) -> (f32, f32) {
        let (u, v) = self.in_plane_axes();
        (spacing_mm[u], spacing_mm[v])
    }
    /// Voxel under pixel `(col, row)` where row 0 is the top of the image.
    pub fn voxel_of_pixel(self, dims: [usize; 3], slice: usize, col: usize, row: usize) -> [usize; 3] {
        let (u, v) = self.in_plane_axes();
        let mut ijk = [0; 3];
        ijk[self.normal_axis()] = slice;
        ijk[u] = col;
        ijk[v] = dims[v] - 1 - row;
        ijk
    }
    /// Fractional pixel position `(col, row)` of a fractional voxel index (row 0 at the top).
    pub fn pixel_of_voxel(self, dims: [usize; 3], ijk: [f64; 3]) -> (f64, f64) {
        let (u, v) = self.in_plane_axes();
        (ijk[u], (dims[v] - 1) as f64 - ijk[v])
    }
}

/// A 2D plane of values, row-major, top row first.
#[derive(Clone, Debug, PartialEq)]
pub struct Slice {
    pub width: usize,
    pub height: usize,
    pub values: Vec<f32>,
}

/// Extracts slice `index` (clamped) of `frame` along `plane`.
pub fn extract(volume: &Volume, frame: usize, plane: Plane, index: usize) -> Slice {
    let dims = volume.dims();
    let index = index.min(dims[plane.normal_axis()] - 1);
    let frame = volume.frame(frame.min(volume.frames() - 1));
    let (w, h) = plane.size(dims);
    let mut values = Vec::with_capacity(w * h);
    for row in 0..h {
        for col in 0..w {
            let [x, y, z] = plane.voxel_of_pixel(dims, index, col, row);
            values.push(frame[volume.index(x, y, z)]);
        }
    }
    Slice {
        width: w,
        height: h,
        values,
    }
}

/// One volume drawn into a plane: which frame, through which window and colormap.
#[derive(Clone, Copy, Debug)]
pub struct Layer<'a> {
    pub volume: &'a Volume,
    pub frame: usize,
    /// Values at or below `lo` get the colormap's first colour, at or above `hi` its last.
    pub window: (f32, f32),
    pub colormap: Colormap,
    /// 0–1; only used for overlays.
    pub opacity: f32,
}

/// An RGBA picture of one plane, top row first, with the physical size of its pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct PlaneImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<[u8; 4]>,
    /// `(across, up)` in mm.
    pub pixel_mm: (f32, f32),
}

/// Draws slice `index` of `base` along `plane`, with `overlay` (any grid: it is sampled at the
/// same world positions, nearest voxel) blended on top. Overlay voxels below its window, NaN
/// or outside its grid are left transparent so that an overlay's background does not tint
/// the base image.
pub fn render_plane(base: &Layer<'_>, overlay: Option<&Layer<'_>>, plane: Plane, index: usize) -> PlaneImage {
    let slice = extract(base.volume, base.frame, plane, index);
    let mut pixels = base.colormap.apply(&slice.values, base.window.0, base.window.1);
    for px in &mut pixels {
        px[3] = 255;
    }
    if let Some(ov) = overlay {
        blend_overlay(
            &mut pixels,
            base.volume,
            ov,
            plane,
            index.min(base.volume.dims()[plane.normal_axis()] - 1),
        );
    }
    PlaneImage {
        width: slice.width,
        height: slice.height,
        pixels,
        pixel_mm: plane.pixel_mm(base.volume.spacing_mm()),
    }
}

fn blend_overlay(pixels: &mut [[u8; 4]], base: &Volume, ov: &Layer<'_>, plane: Plane, index: usize) {
    let Some(ov_from_world) = invert(ov.volume.world_from_voxel()) else {
        return;
    };
    let ov_from_base = compose(&ov_from_world, base.world_from_voxel());
    let dims = base.dims();
    let (w, h) = plane.size(dims);
    let od = ov.volume.dims();
    let frame = ov.volume.frame(ov.frame.min(ov.volume.frames() - 1));
    let (lo, hi) = ov.window;
    let alpha = ov.opacity.clamp(0.0, 1.0);
    for row in 0..h {
        for col in 0..w {
            let v = plane.voxel_of_pixel(dims, index, col, row).map(|x| x as f64);
            let o = apply(&ov_from_base, v).map(f64::round);
            if o.iter().zip(od).any(|(&c, n)| c < 0.0 || c >= n as f64) {
                continue;
            }
            let value = frame[ov.volume.index(o[0] as usize, o[1] as usize, o[2] as usize)];
            if value.is_nan() || value <= lo {
                continue;
            }
            let t = if hi > lo { (value - lo) / (hi - lo) } else { 1.0 };
            let c = ov.colormap.rgba(t);
            let px = &mut pixels[row * w + col];
            for k in 0..3 {
                px[k] = (f32::from(px[k]) * (1.0 - alpha) + f32::from(c[k]) * alpha).round() as u8;
            }
        }
    }
}

/// Places images side by side (top-aligned, black background) into one picture.
pub fn montage(images: &[PlaneImage]) -> PlaneImage {
    let width = images.iter().map(|i| i.width).sum();
    let height = images.iter().map(|i| i.height).max().unwrap_or(0);
    let mut pixels = vec![[0, 0, 0, 255]; width * height];
    let mut x0 = 0;
    for img in images {
        for row in 0..img.height {
            let dst = row * width + x0;
            pixels[dst..dst + img.width].copy_from_slice(&img.pixels[row * img.width..(row + 1) * img.width]);
        }
        x0 += img.width;
    }
    PlaneImage {
        width,
        height,
        pixels,
        pixel_mm: images.first().map_or((1.0, 1.0), |i| i.pixel_mm),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_voxel_round_trip() {
        let dims = [4, 5, 6];
        for plane in Plane::ALL {
            let (w, h) = plane.size(dims);
            let v = plane.voxel_of_pixel(dims, 2, w - 1, 0);
            let (c, r) = plane.pixel_of_voxel(dims, v.map(|x| x as f64));
            assert_eq!((c as usize, r as usize), (w - 1, 0));
            assert_eq!(v[plane.in_plane_axes().1], plane.size(dims).1 - 1);
            let _ = h;
        }
    }

    #[test]
    fn overlay_is_sampled_in_world_space() {
        // Base 4³ at 1 mm; overlay 2³ at 2 mm covering the same box, bright in voxel (1,1,1).
        let base = Volume::from_spacing([4, 4, 4], [1.0; 3], vec![0.0; 64]).unwrap();
        let mut ov_data = vec![0.0; 8];
        ov_data[7] = 1.0;
        let ov = Volume::from_spacing([2, 2, 2], [2.0; 3], ov_data).unwrap();
        let layer = |v| Layer {
            volume: v,
            frame: 0,
            window: (0.0, 1.0),
            colormap: Colormap::Gray,
            opacity: 1.0,
        };
        let img = render_plane(&layer(&base), Some(&layer(&ov)), Plane::Axial, 2);
        // Pixel (col 2, row 1) is base voxel (2,2,2) = world (2,2,2) mm = overlay voxel (1,1,1).
        let bright = img.pixels[4 + 2];
        let bottom_left = img.pixels[3 * 4];
        assert_eq!(bright[0], 255, "{img:?}");
        assert_eq!(bottom_left[0], 0);
    }

    #[test]
    fn axial_slice_values() {
        let data: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let v = Volume::from_spacing([2, 3, 4], [1.0; 3], data).unwrap();
        let s = extract(&v, 0, Plane::Axial, 1);
        assert_eq!((s.width, s.height), (2, 3));
        // top row is y = 2: voxels (0,2,1)=10 and (1,2,1)=11
        assert_eq!(&s.values[..2], &[10.0, 11.0]);
    }
}
