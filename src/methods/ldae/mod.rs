//! LDAE (Lozupone et al., arXiv 2504.08635): missing-scan synthesis and attribute manipulation in
//! the latent space of a 3D MONAI AutoencoderKL. See `shared/research/ldae.md` and `PARITY.md`.

pub mod autoencoder;
pub mod code_use;
pub mod config;
pub mod demo_train;
pub mod evaluate;
pub mod interpolate;
pub mod model;
pub mod preprocess;
pub mod probe;
pub mod semantic_encoder;
pub mod unet;
pub mod unet_config;
