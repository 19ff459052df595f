//! The command line: the GUI's twin. Every command prints a human summary, or with `--json`
//! exactly one JSON object on stdout; bad input gives a non-zero exit and one line on stderr.

mod convert;
mod demo_data;
mod info;
mod interpolate;
mod interpolate_eval;
mod m2vs;
mod manipulate;
mod mesh;
mod models;
mod motion_eval;
mod probe;
mod progress;
mod relrep;
mod render;
mod render_motion;
mod sage;
mod ssim;
mod train;
mod train_ldae;
mod train_m2vs;
mod train_sage;
mod train_wala;
mod train_wildfusion;
mod wala_generate;
mod wala_latent;
mod wildfusion;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "latent-workbench",
    version,
    about = "Latent Workbench: explore latent generative models of volumes, images and shapes.\nWith no command, opens the app on its built-in demo."
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open the desktop app (the default), optionally with files.
    Gui(GuiArgs),
    /// Describe a file: volume, image, mesh, point cloud or tensors.
    Info {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Convert by extension: NIfTI ↔ NIfTI, volume → PNG of its middle slices, image → PNG,
    /// mesh ↔ mesh (OBJ/PLY/STL, and GLB out), .npy ↔ .safetensors, a motion sequence (folder of
    /// frames, .npz) → animated .glb or a folder of PLY frames.
    Convert { input: PathBuf, output: PathBuf },
    /// SSIM, MSE and PSNR between two volumes or two images (SSIM as scikit-image computes it).
    Ssim {
        a: PathBuf,
        b: PathBuf,
        /// Value range for SSIM's constants and PSNR (default: max − min over both inputs).
        #[arg(long)]
        data_range: Option<f64>,
        #[arg(long)]
        json: bool,
    },
    /// Scores a predicted mesh sequence against the true one per frame: IoU, Chamfer-L1 and
    /// correspondence error (as Occupancy Networks and Motion2VecSets define them), next to the
    /// nearest-frame baseline (the prediction's first frame held still).
    MotionEval(motion_eval::Args),
    /// A motion sequence rendered offscreen: one PNG per frame, or a turntable around one frame
    /// (`--turntable N`), with provenance.json.
    RenderMotion(render_motion::Args),
    /// Motion2VecSets: reconstruct and track a point (or mesh) sequence with a Motion2VecSets-family
    /// model; writes an animated GLB or a folder of frames, with provenance.
    M2vsReconstruct(m2vs::ReconstructArgs),
    /// Motion2VecSets on held-out procedural sequences: IoU, Chamfer-L1 and correspondence error
    /// against the nearest-frame and static-truth baselines (the README's table).
    M2vsEval(m2vs::EvalArgs),
    /// Iso-surface of a volume by marching cubes, written as a mesh in world mm.
    Mesh {
        volume: PathBuf,
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
        level: f32,
        /// Which side of the level is solid: `above` (scikit-image's default) or `below` (SDFs).
        #[arg(long, value_enum, default_value_t = InsideArg::Above)]
        inside: InsideArg,
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Draw meshes, point clouds or a volume's iso-surface with the 3D viewport, to a PNG (no window).
    Render(render::RenderArgs),
    /// List the registered models (shipped demos and the user's), or register one.
    Models {
        #[command(subcommand)]
        action: Option<ModelsAction>,
        #[arg(long)]
        json: bool,
    },
    /// Where inference runs (CPU, CUDA, Metal) and which backends this build has.
    Devices {
        #[arg(long)]
        json: bool,
    },
    /// Generate a procedural demo dataset (synthetic data; the README says what each is).
    DemoData {
        #[command(subcommand)]
        kind: demo_data::Kind,
    },
    /// Train a built-in demo model and write it under models/NAME/.
    Train(train::TrainArgs),
    /// Two shapes through a WaLa-family VQ-VAE: round trips, latent interpolation, mesh out.
    WalaLatent(wala_latent::WalaLatentArgs),
    /// A shape from a WaLa diffusion model (args.json + checkpoint), from a point cloud or
    /// unconditional: sampling with guidance, VQ-VAE decode, inverse wavelets, mesh out.
    WalaGenerate(wala_generate::WalaGenerateArgs),
    /// Compare two latent spaces of the same samples: absolute vs relative (cosine to shared
    /// anchors) Jaccard@k, MRR and cosine, with Procrustes and linear CKA as baselines.
    Relrep(relrep::RelrepArgs),
    /// LDAE missing-scan synthesis: the scan at a target time between two scans of a subject.
    Interpolate(interpolate::InterpolateArgs),
    /// Evaluate missing-scan synthesis on held-out subjects of a cohort: SSIM/MSE by gap, model against
    /// baselines (nearest scan, voxel-wise linear blend).
    InterpolateEval(interpolate_eval::InterpolateEvalArgs),
    /// LDAE linear probes: fit a probe on semantic codes of a labelled set (CSV) and report CV scores.
    Probe(probe::ProbeArgs),
    /// LDAE attribute manipulation: move a scan along a probe direction and decode.
    Manipulate(manipulate::ManipulateArgs),
    /// SAGE failure search: adversarial search of a generator's latent or condition space
    /// against a classifier ensemble, confirmed by a held-out classifier; writes a run folder.
    Sage(sage::SageArgs),
    /// WildFusion-family renderer (a reimplementation from the paper; no official code or weights):
    /// an analytic triplane, or the blend of two, drawn from a view-space camera as RGB and depth.
    WildfusionRender(wildfusion::Args),
}

#[derive(Subcommand, Debug)]
pub enum ModelsAction {
    /// Register an official checkpoint (.pth/.ckpt/.safetensors) under the user's models folder.
    Add {
        file: PathBuf,
        /// ldae, wala, motion2vecsets, relreps, sage or wildfusion.
        #[arg(long)]
        family: String,
        /// Name in the registry (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum InsideArg {
    Above,
    Below,
}

#[derive(clap::Args, Debug, Default)]
pub struct GuiArgs {
    /// Files to open (the demo volume opens when none are given).
    pub files: Vec<PathBuf>,
    /// Save a PNG of the window after it has drawn, then quit (README screenshots, CI checks).
    #[arg(long)]
    pub screenshot: Option<PathBuf>,
    /// The tab to show first (e.g. Viewer, Data, "Latent inspector").
    #[arg(long)]
    pub tab: Option<String>,
    /// Window size in points, e.g. 1400x900.
    #[arg(long)]
    pub size: Option<String>,
    /// Run the built-in LDAE demo on start: the Interpolation tab generates the held-out demo subject
    /// and synthesises its month-12 scan from months 0 and 24 (with --screenshot: a picture of results).
    /// With `--tab shapes`: adds two demo shapes and runs the wavelet round trip and a blend on them.
    /// With `--tab attributes`: fits a diagnosis probe (AD vs CN) on synthetic cohort scans and
    /// previews a held-out CN scan moved toward AD (s = 2.5).
    #[arg(long)]
    pub run_demo: bool,
}

/// Runs a non-GUI command.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Gui(_) => anyhow::bail!("the gui command is handled by main"),
        Command::Info { file, json } => info::run(&file, json),
        Command::Convert { input, output } => convert::run(&input, &output),
        Command::Ssim { a, b, data_range, json } => ssim::run(&a, &b, data_range, json),
        Command::MotionEval(args) => motion_eval::run(&args),
        Command::RenderMotion(args) => render_motion::run(&args),
        Command::M2vsReconstruct(args) => m2vs::reconstruct(&args),
        Command::M2vsEval(args) => m2vs::evaluate(&args),
        Command::Mesh {
            volume,
            level,
            inside,
            output,
            json,
        } => mesh::run(&volume, level, inside, &output, json),
        Command::Render(args) => render::run(&args),
        Command::Models { action: None, json } => models::list(json),
        Command::Models {
            action:
                Some(ModelsAction::Add {
                    file,
                    family,
                    name,
                    json,
                }),
            ..
        } => models::add(&file, &family, name.as_deref(), json),
        Command::Devices { json } => models::devices(json),
        Command::DemoData { kind } => demo_data::run(&kind),
        Command::Train(args) => train::run(&args),
        Command::WalaLatent(args) => wala_latent::run(&args),
        Command::WalaGenerate(args) => wala_generate::run(&args),
        Command::Relrep(args) => relrep::run(&args),
        Command::Interpolate(args) => interpolate::run(&args),
        Command::InterpolateEval(args) => interpolate_eval::run(&args),
        Command::Probe(args) => probe::run(&args),
        Command::Manipulate(args) => manipulate::run(&args),
        Command::Sage(args) => sage::run(&args),
        Command::WildfusionRender(args) => wildfusion::run(&args),
    }
}

/// Prints one JSON object on stdout.
fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// JSON has no NaN: report non-finite statistics as null.
fn num(x: f64) -> serde_json::Value {
    if x.is_finite() {
        serde_json::json!(x)
    } else {
        serde_json::Value::Null
    }
}
