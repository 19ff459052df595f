//! `wala-generate`: a shape from a WaLa diffusion model (a folder as WaLa publishes one:
//! `args.json` + `checkpoint.ckpt`), conditioned on a point cloud (a mesh is sampled on its
//! surface), on voxels (upstream's voxel JSON, or a closed mesh voxelised) or unconditional,
//! written as a mesh with its provenance; the sampled latent too when asked.

use super::{print_json, progress};
use crate::core::jobs::JobError;
use crate::core::latent::LatentTensor;
use crate::methods::wala::generate::{
    DEMO_MODEL, Framing, GenerateOptions, OPERATION, Prepared, WALA_POINTS, WalaGenerator, resolve_model, voxel_json,
};
use crate::methods::wala::latent::LatentModel;
use crate::methods::wala::uvit::SampleOptions;
use anyhow::{Context, anyhow, bail};
use serde_json::json;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct WalaGenerateArgs {
    /// A WaLa model folder (args.json and checkpoint.ckpt or checkpoint.safetensors), or the
    /// name of a registered one; by default the shipped demo model.
    #[arg(long, default_value = DEMO_MODEL)]
    pub model: String,
    /// The condition. A point-cloud model takes a point cloud (PLY, an N × 3 .npy) or a mesh
    /// (OBJ, PLY, STL, GLB) sampled on its surface; a voxel model takes upstream's voxel JSON
    /// (`resolution`, `occupancy`, `color`) or a closed mesh, voxelised.
    #[arg(long)]
    pub condition: Option<PathBuf>,
    /// Decode with this registered WaLa-family autoencoder (name or folder) instead of the
    /// checkpoint's own.
    #[arg(long)]
    pub autoencoder: Option<String>,
    /// Respaced sampling steps (WaLa's run.py: 100).
    #[arg(long, default_value_t = SampleOptions::WALA_STEPS)]
    pub steps: usize,
    /// Classifier-free guidance scale (WaLa's point-cloud inference: 3).
    #[arg(long, default_value_t = SampleOptions::WALA_GUIDANCE)]
    pub guidance: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Condition points taken (a larger cloud is subsampled, a mesh sampled this many times).
    #[arg(long, default_value_t = WALA_POINTS)]
    pub point_count: usize,
    /// Use the points' coordinates as given (they are already in WaLa's ±0.9 frame) instead of
    /// fitting their box to it; the mesh is then written in the model's frame.
    #[arg(long)]
    pub as_given: bool,
    /// The mesh (OBJ, PLY, STL or GLB), with a .provenance.json beside it.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Also write the sampled pre-quant latent (safetensors, key `latent`).
    #[arg(long)]
    pub latent: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &WalaGenerateArgs) -> anyhow::Result<()> {
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    if !args.guidance.is_finite() {
        bail!("--guidance must be a number");
    }
    let autoencoder = args
        .autoencoder
        .as_deref()
        .map(|spec| -> anyhow::Result<LatentModel> {
            let entry = crate::core::manifest::find_entry(spec, "wala").map_err(|e| anyhow!(e))?;
            Ok(LatentModel::from_entry(&entry)?)
        })
        .transpose()?;
    let folder = resolve_model(&args.model)?;
    let generator = WalaGenerator::open(&folder, autoencoder, &crate::core::device::device().device)?;
    let framing = if args.as_given { Framing::AsGiven } else { Framing::Fit };
    let condition: Option<Prepared> = match &args.condition {
        Some(path) if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            Some(voxel_json(&text).with_context(|| path.display().to_string())?)
        }
        Some(path) => {
            let asset = crate::io::load(path)?;
            Some(
                generator
                    .prepare(&asset, args.point_count, args.seed, framing)
                    .with_context(|| path.display().to_string())?,
            )
        }
        None => None,
    };
    let options = GenerateOptions {
        sample: SampleOptions {
            steps: args.steps,
            guidance: args.guidance,
        },
        seed: args.seed,
    };
    let description = generator.describe();
    let started = std::time::Instant::now();
    let input = condition.as_ref().map(|c| c.input.clone());
    let (generator, generated) = progress::run("WaLa", move |ctx| {
        let mut progress = crate::core::diffusion::job_progress(ctx, "sampling step");
        let generated = generator.generate(input.as_ref(), &options, &mut progress)?;
        Ok::<_, JobError>((generator, generated))
    })?;
    let seconds = started.elapsed().as_secs_f64();
    // An SDF without a zero level set is a (poor) result, not an error: the empty mesh and its
    // provenance are written, and the report says so.
    let mesh = generator
        .mesh_in_input_frame(&generated, condition.as_ref())?
        .unwrap_or_default();
    if mesh.triangles.is_empty() {
        eprintln!(
            "warning: the generated SDF has no zero level set; {} holds no triangles",
            args.output.display()
        );
    }
    let (shape, values) = generated.latent.values()?;
    if let Some(path) = &args.latent {
        let t = LatentTensor::new("latent", shape.to_vec(), values)?;
        crate::io::array::write_safetensors(path, &[t])?;
    }
    let distinct = generated
        .decoded
        .codes
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let report = json!({
        "model": generator.name,
        "model_folder": generator.folder,
        "checkpoint_sha256": generator.sha256,
        "autoencoder": if generator.autoencoder_in_checkpoint {
            json!("the checkpoint's own")
        } else {
            json!({"name": generator.autoencoder.name, "sha256": generator.autoencoder.sha256})
        },
        "condition": args.condition.as_ref().map(|p| json!({
            "file": p,
            "input": condition.as_ref().map(|c| c.input.describe()),
            "framing": condition.as_ref().map(Prepared::framing_note),
        })),
        "steps": args.steps,
        "guidance": args.guidance,
        "guidance_used": generator.diffusion.config().guided(),
        "device": crate::core::device::device().name,
        "seed": args.seed,
        "grid": generator.autoencoder.grid,
        "latent_shape": shape,
        "distinct_codes": distinct,
        "vertices": mesh.positions.len(),
        "triangles": mesh.triangles.len(),
        "seconds": seconds,
        "output": args.output,
        "latent_file": args.latent,
    });
    let provenance = json!({
        "program": "latent-workbench",
        "version": crate::VERSION,
        "made_by": {
            "operation": OPERATION,
            "report": report,
        },
    });
    crate::io::mesh::write_with_provenance(&args.output, &mesh, &provenance)?;
    if args.json {
        print_json(&report)
    } else {
        println!("{description}");
        println!(
            "{} steps, guidance {}, seed {}: {} triangles in {seconds:.1} s → {}",
            args.steps,
            args.guidance,
            args.seed,
            mesh.triangles.len(),
            args.output.display()
        );
        Ok(())
    }
}
