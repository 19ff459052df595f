//! Core vocabulary: the values every other layer passes around.
//!
//! Nothing here knows about files, GPUs or widgets (see `tests/architecture.rs`).

pub mod asset;
pub mod colormap;
pub mod device;
pub mod diffusion;
pub mod image;
pub mod isosurface;
pub mod jobs;
pub mod latent;
pub mod linalg;
pub mod manifest;
pub mod mesh;
pub mod motion;
pub mod ops;
pub mod output;
pub mod point_cloud;
pub mod scalar;
pub mod slice;
pub mod stats;
pub mod train;
pub mod transfer;
pub mod volume;
pub mod weights;

pub use asset::Asset;
pub use colormap::Colormap;
pub use image::{BitDepth, Channels, Image, ImageData};
pub use latent::{LatentOrigin, LatentTensor};
pub use mesh::Mesh;
pub use motion::MotionSequence;
pub use point_cloud::PointCloud;
pub use scalar::ScalarKind;
pub use stats::Summary;
pub use volume::{Affine, Volume, VolumeError};
