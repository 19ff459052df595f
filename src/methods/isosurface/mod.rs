//! Iso-surfaces: marching cubes on a [`Volume`](crate::core::Volume) frame, in world mm.
//!
//! See [`marching_cubes`]. The case tables are generated from a face-consistent rule (see
//! `tables.rs`) and ambiguous faces are resolved with the asymptotic decider, so the surface is
//! watertight: a closed level set gives a closed, consistently wound, outward-facing mesh.

mod marching_cubes;
mod tables;

pub use marching_cubes::marching_cubes;

/// Which side of the level is the solid (the region the surface encloses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inside {
    /// Values strictly above the level are inside (a bright object on a dark background; like
    /// scikit-image's default `gradient_direction="descent"`).
    Above,
    /// Values at or below the level are inside (e.g. a signed distance function, negative
    /// inside).
    Below,
}

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
