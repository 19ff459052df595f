//! Procedural sprites: 64×64 RGB images of one shape with known generative factors, in the
//! spirit of dSprites (Matthey et al. 2017) but in colour. Synthetic data for the relative
//! representation demo: models trained with different seeds see the same distribution, and
//! every image's factors are known, so latent spaces can be coloured and compared by them.
//!
//! Factors, each drawn uniformly and independently from a seeded generator:
//! - `shape`: square, ellipse (2:1.25 axes, so rotation shows) or heart;
//! - `scale` in [0.5, 1): the shape's half-size is `14 px × scale`;
//! - `rotation` in [0, 2π) radians, counter-clockwise on screen;
//! - `x`, `y` in [0, 1): the centre at `20 + 24·x` px from the left and `20 + 24·y` px from the
//!   top, which keeps every shape inside the frame;
//! - `hue` in [0, 1): the colour at full saturation and value; the background is black.
//!
//! Edges are antialiased by 4×4 supersampling (coverage per pixel). Sprite `i` of seed `s` depends
//! only on `(s, i)`, so any subset can be regenerated without the others.

use crate::core::diffusion::Rng;
use rayon::prelude::*;

/// Width and height in pixels.
pub const SIZE: usize = 64;
const SUPERSAMPLE: usize = 4;
/// A shape's half-size at scale 1, and the range its centre is drawn from (see the module doc).
pub const BASE_HALF_SIZE_PX: f32 = 14.0;
pub const CENTRE_MIN_PX: f32 = 20.0;
pub const CENTRE_SPAN_PX: f32 = 24.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shape {
    Square,
    Ellipse,
    Heart,
}

impl Shape {
    pub const ALL: [Shape; 3] = [Shape::Square, Shape::Ellipse, Shape::Heart];

    pub fn name(self) -> &'static str {
        match self {
            Shape::Square => "square",
            Shape::Ellipse => "ellipse",
            Shape::Heart => "heart",
        }
    }

    /// Class index (the order of [`Shape::ALL`]).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the point `(u, v)` (in units of the half-size, v pointing up) is inside.
    fn contains(self, u: f32, v: f32) -> bool {
        match self {
            Shape::Square => u.abs() <= 0.8 && v.abs() <= 0.8,
            Shape::Ellipse => u * u + (v / 0.625) * (v / 0.625) <= 1.0,
            Shape::Heart => {
                // (x² + y² − 1)³ − x² y³ ≤ 0, scaled and shifted to fit the unit box.
                let (x, y) = (u * 1.15, v * 1.15 + 0.1);
                let r = x * x + y * y - 1.0;
                r * r * r - x * x * y * y * y <= 0.0
            }
        }
    }
}

/// The generative factors of one sprite.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Factors {
    pub shape: Shape,
    pub scale: f32,
    pub rotation: f32,
    pub x: f32,
    pub y: f32,
    pub hue: f32,
}

impl Factors {
    /// Sprite `index` of the dataset seeded with `seed`.
    pub fn sample(seed: u64, index: u64) -> Self {
        let mut rng = Rng::new(seed ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let shape = Shape::ALL[(rng.next_u64() % Shape::ALL.len() as u64) as usize];
        Self {
            shape,
            scale: 0.5 + 0.5 * rng.uniform() as f32,
            rotation: (std::f64::consts::TAU * rng.uniform()) as f32,
            x: rng.uniform() as f32,
            y: rng.uniform() as f32,
            hue: rng.uniform() as f32,
        }
    }

    /// Centre in pixels (column, row).
    pub fn centre_px(&self) -> (f32, f32) {
        (
            CENTRE_MIN_PX + CENTRE_SPAN_PX * self.x,
            CENTRE_MIN_PX + CENTRE_SPAN_PX * self.y,
        )
    }

    /// The colour as RGB in [0, 1].
    pub fn rgb(&self) -> [f32; 3] {
        hue_to_rgb(self.hue)
    }
}

/// Fully saturated, full-value colour of hue `h` (0 = red, 1/3 = green, 2/3 = blue).
pub fn hue_to_rgb(h: f32) -> [f32; 3] {
    let h6 = h.rem_euclid(1.0) * 6.0;
    let f = h6 - h6.floor();
    match h6 as u32 {
        0 => [1.0, f, 0.0],
        1 => [1.0 - f, 1.0, 0.0],
        2 => [0.0, 1.0, f],
        3 => [0.0, 1.0 - f, 1.0],
        4 => [f, 0.0, 1.0],
        _ => [1.0, 0.0, 1.0 - f],
    }
}

/// Coverage (0–1) of each pixel, row-major, top row first.
pub fn coverage(f: &Factors) -> Vec<f32> {
    let mut cov = vec![0f32; SIZE * SIZE];
    let half = BASE_HALF_SIZE_PX * f.scale;
    let (cx, cy) = f.centre_px();
    let (sin, cos) = f.rotation.sin_cos();
    // Every shape fits in the circle of radius √2 · half; skip pixels outside its box.
    let reach = half * std::f32::consts::SQRT_2 + 1.0;
    let clamp = |v: f32| (v.max(0.0) as usize).min(SIZE);
    let (c0, c1) = (clamp(cx - reach), clamp(cx + reach + 1.0));
    let (r0, r1) = (clamp(cy - reach), clamp(cy + reach + 1.0));
    let step = 1.0 / SUPERSAMPLE as f32;
    let weight = step * step;
    for row in r0..r1 {
        for col in c0..c1 {
            let mut hits = 0u32;
            for sy in 0..SUPERSAMPLE {
                for sx in 0..SUPERSAMPLE {
                    let px = col as f32 + (sx as f32 + 0.5) * step - cx;
                    // Screen rows grow downwards; shapes are defined with v up.
                    let py = cy - (row as f32 + (sy as f32 + 0.5) * step);
                    let u = (cos * px + sin * py) / half;
                    let v = (-sin * px + cos * py) / half;
                    hits += u32::from(f.shape.contains(u, v));
                }
            }
            cov[row * SIZE + col] = hits as f32 * weight;
        }
    }
    cov
}

/// 8-bit RGB pixels, interleaved, row-major (for PNG).
pub fn render_rgb8(f: &Factors) -> Vec<u8> {
    let rgb = f.rgb();
    coverage(f)
        .iter()
        .flat_map(|&c| rgb.map(|k| (c * k * 255.0).round() as u8))
        .collect()
}

/// Planar `3×64×64` floats in [0, 1] (the networks' input layout), appended to `out`.
pub fn render_chw(f: &Factors, out: &mut Vec<f32>) {
    let cov = coverage(f);
    for k in f.rgb() {
        out.extend(cov.iter().map(|&c| c * k));
    }
}

/// A batch as `(N·3·64·64 floats, shape class per sprite)`, rendered in parallel.
pub fn batch_chw(factors: &[Factors]) -> (Vec<f32>, Vec<u32>) {
    let images: Vec<Vec<f32>> = factors
        .par_iter()
        .map(|f| {
            let mut v = Vec::with_capacity(3 * SIZE * SIZE);
            render_chw(f, &mut v);
            v
        })
        .collect();
    let labels = factors.iter().map(|f| f.shape.index() as u32).collect();
    (images.concat(), labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_are_seeded_and_in_range() {
        assert_eq!(Factors::sample(3, 10), Factors::sample(3, 10));
        assert_ne!(Factors::sample(3, 10), Factors::sample(4, 10));
        let mut counts = [0usize; 3];
        for i in 0..600 {
            let f = Factors::sample(1, i);
            counts[f.shape.index()] += 1;
            assert!((0.5..1.0).contains(&f.scale));
            assert!((0.0..std::f32::consts::TAU).contains(&f.rotation));
            assert!((0.0..1.0).contains(&f.x) && (0.0..1.0).contains(&f.y) && (0.0..1.0).contains(&f.hue));
        }
        assert!(counts.iter().all(|&c| c > 150), "{counts:?}");
    }

    #[test]
    fn areas_edges_and_colour() {
        let base = Factors {
            shape: Shape::Square,
            scale: 1.0,
            rotation: 0.0,
            x: 0.5,
            y: 0.5,
            hue: 0.0,
        };
        // Square of side 2·0.8·14 = 22.4 px: area 501.76 px² (edges quantised to 1/4 px by the
        // supersampling: 22.5² = 506.25 here).
        let area: f32 = coverage(&base).iter().sum();
        assert!((area - 501.76).abs() < 6.0, "{area}");
        // Ellipse with semi-axes 14 and 8.75 px: π·14·8.75 ≈ 384.8 px², at any rotation.
        for rot in [0.0, 0.7, 2.0] {
            let e = Factors {
                shape: Shape::Ellipse,
                rotation: rot,
                ..base
            };
            let a: f32 = coverage(&e).iter().sum();
            assert!((a - 384.8).abs() < 4.0, "{rot}: {a}");
        }
        // Antialiased: some pixels are partly covered; everything stays in the frame.
        let h = Factors {
            shape: Shape::Heart,
            rotation: 1.0,
            x: 1.0,
            y: 0.0,
            scale: 0.99,
            ..base
        };
        let c = coverage(&h);
        assert!(c.iter().any(|&v| v > 0.0 && v < 1.0));
        let border: f32 = (0..SIZE).map(|i| c[i] + c[i * SIZE + SIZE - 1]).sum();
        assert_eq!(border, 0.0, "heart touches the frame");
        assert_eq!(hue_to_rgb(0.0), [1.0, 0.0, 0.0]);
        assert_eq!(hue_to_rgb(1.0 / 3.0), [0.0, 1.0, 0.0]);
        let px = render_rgb8(&base);
        let centre = (32 * SIZE + 32) * 3;
        assert_eq!(&px[centre..centre + 3], &[255, 0, 0]);
        assert_eq!(&px[0..3], &[0, 0, 0]);
    }
}
