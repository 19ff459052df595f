//! WildFusion (Schwarz, Kim, Gao, Fidler, Geiger, Kreis, "WildFusion: Learning 3D-Aware Latent
//! Diffusion Models in View Space", ICLR 2024, arXiv 2311.13570): a **reimplementation of the
//! method family from the paper**. No official code or weights exist (research note:
//! `shared/research/wildfusion.md`; layout and divergences: `NOTES.md` beside this file).
//!
//! What is here is the render half of the paper's 3D-aware autoencoder: a latent triplane
//! ([`Triplane`], EG3D layout), EG3D's small density/colour MLP ([`OsgDecoder`]), a view-space
//! camera around a pivot with a bounded yaw/pitch range ([`ViewCamera`]) and an EG3D-style volume
//! renderer that returns RGB, expected depth and accumulated opacity ([`render_view`]). Latents are
//! interpolated with [`interpolate`]. [`render_rays`] / [`render_image`] are its differentiable
//! twin (candle tensor ops, deterministic samples, no importance pass) through which an image loss
//! reaches the triplane features and the decoder's weights.
//!
//! The 3D-aware autoencoder's image → 2D KL latent → triplane half exists at toy scale
//! ([`Autoencoder`]: FPN-style conv encoder to a KL posterior, transformer + CNN decoder to a
//! [`Triplane`]; keys in `autoencoder.rs`). [`demo_train`] trains it through the differentiable
//! renderer on analytic objects (`latent-workbench train wildfusion-demo`); no weights ship: the
//! default run's renders score no better than the mean triplane's (`NOTES.md`). [`encode`] turns images into Z, blends
//! two Z and decodes them, for the Views tab and `wildfusion-render --model`.
//!
//! What is not here: the paper's GAN and depth-guidance training (the demo trainer's render MSE
//! on analytic novel views is a substitute, see `NOTES.md`), the 2D super-resolution
//! stage and the latent diffusion model. The demo draws **analytic triplanes** of procedural
//! objects ([`analytic`]) through a fixed, hand-set decoder.
//!
//! | paper / EG3D piece | here |
//! |---|---|
//! | triplane features, `sample_from_planes` (bilinear `grid_sample`, zeros, `align_corners=False`) | [`Triplane`] (`triplane.rs`) |
//! | `OSGDecoder` (FullyConnected + softplus, hidden 64, sigmoid·1.002 − 0.001) | [`OsgDecoder`] (`decoder.rs`) |
//! | view-space camera P0 + bounded novel views | [`ViewCamera`], [`VIEW_RANGE`] (`camera.rs`) |
//! | `ImportanceRenderer` + `MipRayMarcher` (auto box limits, stratified + importance, softplus(σ − 1)) | [`render_view`] (`render.rs`) |
//! | the same render as a differentiable graph (for training) | [`render_rays`], [`render_image`] (`diff_render.rs`) |
//! | FPN encoder → 2D KL latent Z, transformer + CNN decoder Z → triplane | [`Autoencoder`] (`autoencoder.rs`), toy sizes, untrained |

pub mod analytic;
mod autoencoder;
mod camera;
mod decoder;
pub mod demo_train;
mod diff_render;
pub mod encode;
mod render;
mod triplane;

use thiserror::Error;

use crate::core::weights::WeightsError;
pub use analytic::AnalyticObject;
pub use autoencoder::{Autoencoder, AutoencoderConfig, Posterior};
pub use camera::{P0, VIEW_RANGE, ViewCamera, ViewRange};
pub use decoder::{DecodedSamples, DecoderConfig, OsgDecoder, passthrough_tensors};
pub use diff_render::{DiffRender, DiffRenderOptions, render_image, render_rays};
pub use render::{RenderOptions, RenderedView, depth_rgba, render_view};
pub use triplane::{Aggregation, PlaneSampler, Triplane};

/// Why a WildFusion triplane could not be built, decoded or rendered.
#[derive(Debug, Error)]
pub enum WildFusionError {
    #[error("WildFusion: {0}")]
    Shape(String),
    #[error("WildFusion: {0}")]
    Config(String),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("WildFusion: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("cancelled")]
    Cancelled,
}

/// The latent between two: `(1 − t)·a + t·b` on the triplane features (exactly `a` at `t = 0`
/// and exactly `b` at `t = 1`). The paper interpolates its 2D latent Z and decodes; here the
/// triplane is the latent, so the blend is of triplanes.
pub fn interpolate(a: &Triplane, b: &Triplane, t: f32) -> Result<Triplane, WildFusionError> {
    a.lerp(b, t)
}
