//! Iso-surfaces: marching cubes on a [`Volume`](crate::core::Volume) frame, in world mm.
//!
//! See [`marching_cubes`]. The case tables are generated from a face-consistent rule (see
//! `core/isosurface/tables.rs`) and ambiguous faces are resolved with the asymptotic decider, so the surface is
//! watertight: a closed level set gives a closed, consistently wound, outward-facing mesh.

mod marching_cubes;

pub use crate::core::isosurface::Inside;
pub use marching_cubes::marching_cubes;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IsoOptions {
    /// The iso-value, in the volume's units.
    pub level: f32,
    pub inside: Inside,
    /// Which frame of a 4D volume (an out-of-range frame gives an empty mesh).
    pub frame: usize,
}

impl Default for IsoOptions {
    fn default() -> Self {
        Self {
            level: 0.0,
            inside: Inside::Above,
            frame: 0,
        }
    }
}
