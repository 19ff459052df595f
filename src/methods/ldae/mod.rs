//! LDAE (Lozupone et al., arXiv 2504.08635): missing-scan synthesis and attribute manipulation in
//! the latent space of a 3D MONAI AutoencoderKL. See `shared/research/ldae.md` and `PARITY.md`.
