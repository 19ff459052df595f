//! WaLa (wavelet latent diffusion for 3D shapes): wavelet-tree SDF compression, VQ-VAE and
//! U-ViT diffusion. See `shared/research/wala.md` and `PARITY.md`.

pub mod demo_diffusion;
pub mod demo_train;
mod filters;
pub mod generate;
pub mod latent;
pub mod roundtrip;
pub mod tree;
pub mod uvit;
pub mod vqvae;
pub mod wavelet;
