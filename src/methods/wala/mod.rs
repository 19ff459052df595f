//! WaLa (wavelet latent diffusion for 3D shapes): wavelet-tree SDF compression, VQ-VAE and
//! U-ViT diffusion. See `shared/research/wala.md` and `PARITY.md`.

mod filters;
pub mod roundtrip;
pub mod tree;
pub mod uvit;
pub mod vqvae;
pub mod wavelet;
