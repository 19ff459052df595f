//! The demo LDAE trainer: autoencoder, then latent diffusion with the semantic encoder and shift branch, on the synthetic cohort.
