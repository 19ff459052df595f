//! `probe`: not built yet (issue 4).

#[derive(clap::Args, Debug)]
pub struct ProbeArgs {
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: &ProbeArgs) -> anyhow::Result<()> {
    anyhow::bail!("probe is not built yet (issue 4)")
}
