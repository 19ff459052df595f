//! Relative representations (Moschella et al., ICLR 2023): latent spaces compared and stitched
//! through their similarities to shared anchors. See `shared/research/relreps.md`.
