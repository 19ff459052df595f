//! `latent-workbench demo-data KIND`: the procedural datasets the demo models are trained on.
//! Each generator lives in `methods`; these files only parse arguments and report.

use clap::Subcommand;

#[path = "demo_cohort.rs"]
pub(super) mod cohort;
#[path = "demo_motion.rs"]
mod motion;
#[path = "demo_shapes.rs"]
mod shapes;
#[path = "demo_sprites.rs"]
mod sprites;

#[derive(Subcommand, Debug)]
pub enum Kind {
    /// Synthetic longitudinal brain-MRI cohort built on the MNI152 template (for LDAE).
    Cohort(cohort::Args),
    /// Procedural 64×64 sprite images with known factors (for relative representations and SAGE).
    Sprites(sprites::Args),
    /// Procedural solid-geometry shapes as signed distance fields (for WaLa).
    Shapes(shapes::Args),
    /// Procedural deforming shapes as mesh sequences plus sparse noisy point sequences (for
    /// Motion2VecSets and the 4D viewer).
    Motion(motion::Args),
}

pub fn run(kind: &Kind) -> anyhow::Result<()> {
    match kind {
        Kind::Cohort(args) => cohort::run(args),
        Kind::Sprites(args) => sprites::run(args),
        Kind::Shapes(args) => shapes::run(args),
        Kind::Motion(args) => motion::run(args),
    }
}
