//! `interpolate-eval`: not built yet (issue 4).

#[derive(clap::Args, Debug)]
pub struct InterpolateEvalArgs {
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: &InterpolateEvalArgs) -> anyhow::Result<()> {
    anyhow::bail!("interpolate-eval is not built yet (issue 4)")
}
