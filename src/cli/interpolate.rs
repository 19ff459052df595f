//! `interpolate`: not built yet (issue 4).

#[derive(clap::Args, Debug)]
pub struct InterpolateArgs {
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: &InterpolateArgs) -> anyhow::Result<()> {
    anyhow::bail!("interpolate is not built yet (issue 4)")
}
