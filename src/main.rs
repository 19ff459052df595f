//! `latent-workbench`: with no arguments, the desktop app on its demo; otherwise a CLI command.

use clap::Parser;
use latent_workbench::cli::{Args, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    let result = match args.command {
        None => open_gui(latent_workbench::cli::GuiArgs::default()),
        Some(Command::Gui(gui)) => open_gui(gui),
        Some(cmd) => latent_workbench::cli::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, naming the file and the problem (the chain is joined with ": ").
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "gui")]
fn open_gui(args: latent_workbench::cli::GuiArgs) -> anyhow::Result<()> {
    latent_workbench::app::run(latent_workbench::app::Launch {
        files: args.files,
        screenshot: args.screenshot,
        tab: args.tab,
        size: args.size,
        run_demo: args.run_demo,
    })
}

#[cfg(not(feature = "gui"))]
fn open_gui(_: latent_workbench::cli::GuiArgs) -> anyhow::Result<()> {
    anyhow::bail!("this build has no GUI (built without the `gui` feature); run a subcommand, see --help")
}
