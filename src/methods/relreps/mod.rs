//! Relative representations (Moschella et al., ICLR 2023): latent spaces compared and stitched
//! through their similarities to shared anchors. See `shared/research/relreps.md`.
pub mod demo;
pub mod sprite_ae;
pub mod stitch;

// Latent-space comparison toolkit (collections, anchors, relative transform, metrics, baselines).
mod align;
mod anchors;
mod collection;
mod compare;
mod error;
mod kernels;
mod pca;
mod similarity;
mod transform;

pub use align::{Alignment, AlignmentSummary, procrustes_align};
pub use anchors::{AnchorMode, select_anchors};
pub use collection::{Dropped, LabelColumn, LatentCollection, align_by_ids};
pub use compare::{
    CompareOptions, Comparison, IsometryCheck, ProcrustesScores, RelativePair, compare_spaces, isometry_self_test,
    random_orthogonal, relative_pair,
};
pub use error::RelrepsError;
pub use pca::{Pca2, pca_2d};
pub use similarity::{MatchScores, linear_cka, match_scores, mean_cosine};
pub use transform::{OutputNorm, RelativeOptions, RelativeProjector};

// The sprite demo and stitching, at the top level for callers that want one import.
pub use demo::{HELDOUT_SEED, SpriteModel, SpritePair, is_model_dir, sprite_pair};
pub use stitch::{StitchOptions, StitchReport, stitch};
