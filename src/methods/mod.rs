//! Pure computation on core values: one folder per paper, plus the classic image and
//! geometry algorithms the panels share.

pub mod isosurface;
pub mod metrics;
