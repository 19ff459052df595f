//! Pure computation on core values: one folder per paper, plus the classic image and
//! geometry algorithms the panels share.

pub mod demo_data;
pub mod isosurface;
pub mod ldae;
pub mod metrics;
pub mod motion2vecsets;
pub mod relreps;
pub mod sage;
pub mod wala;
pub mod wildfusion;
