//! Latent Workbench: load volumes, images, meshes and latents; encode, explore, edit and export
//! them with latent generative models.
//!
//! Layers (checked by `tests/architecture.rs`): `core` ← `io`, `methods`, `render` ← `app`;
//! `cli` uses everything but `app`.

#[cfg(feature = "gui")]
pub mod app;
pub mod cli;
pub mod core;
pub mod io;
pub mod methods;
pub mod render;

/// Program version, recorded in every provenance report.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
