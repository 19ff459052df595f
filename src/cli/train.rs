//! `latent-workbench train NAME`: placeholder until the training utilities land.

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// The built-in demo model to train.
    pub name: String,
}

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    anyhow::bail!("no trainer for {:?} yet", args.name)
}
