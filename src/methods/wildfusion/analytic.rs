//! Analytic triplanes of procedural objects: something true for the renderer to draw while no
//! trained WildFusion autoencoder exists.
//!
//! Construction (chosen over fitting planes by gradient descent because it is exact, instant and
//! deterministic): with mean aggregation the decoder sees
//! `f(x, y, z) = (P_xy(x, y) + P_xz(x, z) + P_yz(y, z)) / 3`, so any field that is a **sum of
//! functions of two coordinates each** can be written into the planes exactly (up to bilinear
//! interpolation between texels): plane `k` stores `3·g_k`. The decoder is the fixed
//! pass-through [`OsgDecoder::analytic_passthrough`], so feature 0 is the raw density and
//! features 1–3 the colour logits. Densities are `DENSITY_SCALE · (1 − q)` with `q` an implicit
//! shape function that is 1 on the surface and separable into such pairwise terms:
//!
//! | object | `q` | colour logits |
//! |---|---|---|
//! | sphere (r 0.6) | `(x² + y² + z²)/r²`, split half to each plane holding two of the squares | vertical gradient (depends on `y`) |
//! | box (rounded, half-side 0.45) | `Σ (|xᵢ|/a)⁸` (a superquadric) | `x`, `y`, `z` → red, green, blue: each face its own colour |
//! | cylinder (vertical, r 0.4, half-height 0.5) | `(x² + z²)/r² + (|y|/h)⁸` | stripes along `y` |
//! | torus (vertical axis, R 0.45, r 0.18) | `((√(x² + z²) − R)² + y²)/r²` | hue by the angle around the axis |
//!
//! Sphere and cylinder are symmetric about the vertical axis in shape and colour (the 3D
//! consistency test relies on it); the torus's hue makes yaw visible.

use super::{DecoderConfig, OsgDecoder, Triplane, WildFusionError};
use serde::{Deserialize, Serialize};

/// Side of the cube the analytic triplanes cover (`[−1, 1]³`).
pub const BOX_SIZE: f32 = 2.0;
/// Raw density per unit of `1 − q`: steep enough that a surface is opaque within ~0.02 units.
pub const DENSITY_SCALE: f32 = 3000.0;
/// Feature channels: density, then R, G, B logits.
pub const CHANNELS: usize = 4;
/// Default plane resolution.
pub const RESOLUTION: usize = 128;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AnalyticObject {
    #[default]
    Sphere,
    Box,
    Cylinder,
    Torus,
}

impl AnalyticObject {
    pub const ALL: [AnalyticObject; 4] = [Self::Sphere, Self::Box, Self::Cylinder, Self::Torus];

    pub fn name(self) -> &'static str {
        match self {
            Self::Sphere => "sphere",
            Self::Box => "box",
            Self::Cylinder => "cylinder",
            Self::Torus => "torus",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.name().eq_ignore_ascii_case(name))
    }

    /// The three pairwise terms `[g_xy(x, y), g_xz(x, z), g_yz(y, z)]`, each
    /// `[1 − q part, R, G, B]` (the density part is scaled later).
    fn terms(self, x: f32, y: f32, z: f32) -> [[f32; 4]; 3] {
        const THIRD: f32 = 1.0 / 3.0;
        match self {
            Self::Sphere => {
                let r2 = 0.6f32 * 0.6;
                [
                    [
                        THIRD - (x * x + y * y) / (2.0 * r2),
                        1.8,
                        0.9 * y / 0.6 - 0.1,
                        -1.2 * y / 0.6 - 0.4,
                    ],
                    [THIRD - (x * x + z * z) / (2.0 * r2), 0.0, 0.0, 0.0],
                    [THIRD - (y * y + z * z) / (2.0 * r2), 0.0, 0.0, 0.0],
                ]
            }
            Self::Box => {
                let a = 0.45f32;
                let p = |v: f32| (v.abs() / a).powi(8);
                [
                    [THIRD - p(x), 2.5 * x / a, 0.0, 0.0],
                    [THIRD - p(z), 0.0, 0.0, 2.5 * z / a],
                    [THIRD - p(y), 0.0, 2.5 * y / a, 0.0],
                ]
            }
            Self::Cylinder => {
                let (r2, h) = (0.4f32 * 0.4, 0.5f32);
                let stripes = (y * 9.0).sin();
                [
                    [0.5 - (y.abs() / h).powi(8), 1.2 * stripes, 0.8, -1.5 * stripes],
                    [0.5 - (x * x + z * z) / r2, 0.0, 0.0, 0.0],
                    [0.0, 0.0, 0.0, 0.0],
                ]
            }
            Self::Torus => {
                let (big, small) = (0.45f32, 0.18f32);
                let rho = (x * x + z * z).sqrt();
                let theta = z.atan2(x);
                let third = std::f32::consts::TAU / 3.0;
                [
                    [0.5 - y * y / (small * small), 0.0, 0.0, 0.0],
                    [
                        0.5 - (rho - big).powi(2) / (small * small),
                        2.0 * theta.cos(),
                        2.0 * (theta - third).cos(),
                        2.0 * (theta + third).cos(),
                    ],
                    [0.0, 0.0, 0.0, 0.0],
                ]
            }
        }
    }

    /// The exact fields at a point: raw density `DENSITY_SCALE·(1 − q)` and colour logits.
    pub fn field(self, p: [f32; 3]) -> [f32; 4] {
        let t = self.terms(p[0], p[1], p[2]);
        let mut f = [0.0; 4];
        for term in t {
            for (o, v) in f.iter_mut().zip(term) {
                *o += v;
            }
        }
        f[0] *= DENSITY_SCALE;
        f
    }
}

/// The analytic triplane of `object` at `resolution`² texels per plane, for
/// `Aggregation::Mean` (each plane stores three times its term). Texel centres sit where
/// `grid_sample(align_corners=False)` reads them exactly.
pub fn triplane(object: AnalyticObject, resolution: usize) -> Result<Triplane, WildFusionError> {
    triplane_scaled(object, resolution, 1.0)
}

/// [`triplane`] of the object scaled by `scale` about the origin (the field at `p` is the
/// unscaled field at `p / scale`; a uniform scaling keeps every term a function of the same two
/// coordinates, so the construction stays exact). The trainer varies sizes with it.
pub fn triplane_scaled(object: AnalyticObject, resolution: usize, scale: f32) -> Result<Triplane, WildFusionError> {
    if !(scale.is_finite() && scale > 0.0) {
        return Err(WildFusionError::Config(format!(
            "object scale must be positive, got {scale}"
        )));
    }
    if resolution < 2 {
        return Err(WildFusionError::Config(format!(
            "plane resolution must be ≥ 2, got {resolution}"
        )));
    }
    let r = resolution;
    let half = BOX_SIZE * 0.5;
    let coord = |i: usize| ((i as f32 + 0.5) / r as f32 * 2.0 - 1.0) * half / scale;
    let mut data = vec![0f32; 3 * CHANNELS * r * r];
    for plane in 0..3 {
        for row in 0..r {
            for col in 0..r {
                let (a, b) = (coord(col), coord(row));
                // The two coordinates a plane holds; the third does not enter its term.
                let (x, y, z) = match plane {
                    0 => (a, b, 0.0),
                    1 => (a, 0.0, b),
                    _ => (0.0, a, b),
                };
                let term = object.terms(x, y, z)[plane];
                for (ch, v) in term.iter().enumerate() {
                    let scale = if ch == 0 { DENSITY_SCALE } else { 1.0 };
                    data[((plane * CHANNELS + ch) * r + row) * r + col] = 3.0 * scale * v;
                }
            }
        }
    }
    Triplane::from_vec(data, CHANNELS, r, BOX_SIZE)
}

/// The fixed decoder the analytic triplanes are drawn with (EG3D sizes: hidden 64, RGB out).
pub fn decoder() -> Result<OsgDecoder, WildFusionError> {
    OsgDecoder::analytic_passthrough(&DecoderConfig::default())
}
