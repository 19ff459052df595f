//! Placeholder until the generator lands (the command says so instead of pretending).

use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output folder.
    #[arg(short, long)]
    pub output: PathBuf,
}

pub fn run(_args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("this demo dataset is not built yet")
}
