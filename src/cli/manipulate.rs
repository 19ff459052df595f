//! `manipulate`: not built yet (issue 4).

#[derive(clap::Args, Debug)]
pub struct ManipulateArgs {
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: &ManipulateArgs) -> anyhow::Result<()> {
    anyhow::bail!("manipulate is not built yet (issue 4)")
}
