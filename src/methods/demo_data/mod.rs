//! Procedural datasets for the demo models: synthetic, documented as such, reproducible from a
//! seed.

pub mod cohort;
pub mod motion;
pub mod shapes;
pub mod sprites;
pub mod warp;
