//! SAGE (Liu et al., ICLR 2024): adversarial search of a generator's latent and condition spaces
//! for its failure modes, scored by an ensemble of classifiers and confirmed by a held-out one
//! and by a person. The paper's code was never published; this follows the paper's description
//! as summarised in `shared/research/sage.md`, with every choice the paper leaves open named in
//! `PARITY.md`.
//!
//! - [`generator`]: what is searched (latent + condition embedding → images), with SAGE's
//!   approximate-gradient skip or full backpropagation; the demo [`generator::SpriteGenerator`]
//!   (a class-conditional latent diffusion prior, [`prior`], over sprite factor codes drawn by a
//!   differentiable [`renderer`]).
//! - [`stable_diffusion`]: the paper's own target, a user's Stable Diffusion folder (diffusers
//!   layout) through candle-transformers' networks, our DDIM and guidance, with the CLIP BPE
//!   [`clip_tokenizer`]; held to diffusers on a tiny random pipeline.
//! - [`classifier`]: the ensemble used as a surrogate loss and the held-out judge; [`resnet`]: a
//!   user's torchvision ResNet as one of them (for photographs).
//! - [`naturalness`]: the typical-set penalty and projection, the KS normality test (NGR).
//! - [`search`]: the three failure objectives, four modes, restarts, resumable state, scoring
//!   and the SSR/NGR summary.
//! - [`setup`]: the models a search runs against, loaded once (CLI and panel alike).
//! - [`demo_train`], [`quality`]: the demo's trainers and the generator's base rate.

pub mod classifier;
pub mod clip_tokenizer;
pub mod demo_train;
mod error;
pub mod gallery;
pub mod generator;
pub mod naturalness;
pub mod prior;
pub mod quality;
pub mod renderer;
pub mod report;
pub mod resnet;
pub mod search;
pub mod setup;
pub mod stable_diffusion;

pub use error::{Result, SageError};
