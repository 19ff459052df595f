//! `wala-latent`: two shapes through a WaLa-family VQ-VAE (the Shapes tab's learned-latent
//! section without a window): the round trip of each, and their latent interpolation at `--t`
//! decoded as WaLa decodes, optionally written as a mesh with its provenance.

use super::print_json;
use crate::core::Volume;
use crate::methods::wala::latent::{Latent, LatentModel};
use crate::methods::wala::roundtrip::zero_surface;
use anyhow::{Context, anyhow, bail};
use serde_json::json;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct WalaLatentArgs {
    /// A WaLa-family model: a registered name or a folder with model.toml.
    #[arg(long, default_value = "wala-shapes-demo")]
    pub model: String,
    /// Signed distance fields (NIfTI, cubic grid, negative inside); without them, the Shapes tab's
    /// two demo solids.
    #[arg(long, requires = "b")]
    pub a: Option<PathBuf>,
    #[arg(long, requires = "a")]
    pub b: Option<PathBuf>,
    /// Interpolation weight of B.
    #[arg(long, default_value_t = 0.5)]
    pub t: f32,
    /// Write the interpolated shape's mesh here (OBJ, PLY, STL or GLB) with a .provenance.json.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

fn load_sdf(path: &std::path::Path) -> anyhow::Result<(String, Volume)> {
    let volume = crate::io::nifti::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let [x, y, z] = volume.dims();
    if x != y || y != z {
        bail!("{}: the grid {x}×{y}×{z} is not cubic", path.display());
    }
    Ok((path.display().to_string(), volume))
}

pub fn run(args: &WalaLatentArgs) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.t) {
        bail!("--t must be in [0, 1], got {}", args.t);
    }
    let entry = crate::core::manifest::find_entry(&args.model, "wala").map_err(|e| anyhow!(e))?;
    let model = LatentModel::from_entry(&entry)?;
    let (a, b) = match (&args.a, &args.b) {
        (Some(a), Some(b)) => (load_sdf(a)?, load_sdf(b)?),
        _ => {
            let mut demo = crate::methods::demo_data::shapes::viewer_demo_shapes().into_iter();
            let (Some(a), Some(b)) = (demo.next(), demo.next()) else {
                bail!("the demo shapes could not be made");
            };
            (a, b)
        }
    };
    let affine = model.world_from_grid(&a.1);
    let mut sides = Vec::new();
    let mut latents = Vec::new();
    for (name, volume) in [&a, &b] {
        let sdf = model.input_sdf(volume)?;
        let z = model.encode(&sdf)?;
        let decoded = model.decode(&z)?;
        sides.push(json!({
            "name": name,
            "iou": LatentModel::iou(&sdf, &decoded.sdf),
            "distinct_codes": decoded.codes.iter().collect::<std::collections::BTreeSet<_>>().len(),
        }));
        latents.push(z);
    }
    let z = Latent::lerp(&latents[0], &latents[1], args.t)?;
    let decoded = model.decode(&z)?;
    let mesh = zero_surface(&decoded.sdf, affine)?.unwrap_or_default();
    let (shape, _) = z.values()?;
    let report = json!({
        "model": model.name,
        "latent_shape": shape,
        "a": sides[0],
        "b": sides[1],
        "t": args.t,
        "interpolated_triangles": mesh.triangles.len(),
        "output": args.output.as_ref().map(|p| p.display().to_string()),
    });
    if let Some(path) = &args.output {
        let provenance = json!({
            "program": "latent-workbench",
            "version": crate::VERSION,
            "made_by": {
                "operation": "WaLa latent interpolation: (1 − t)·z_A + t·z_B of the pre-quant latents, nearest codes, VQ-VAE decoder, inverse wavelet transform, marching cubes at 0",
                "model": {"name": model.name, "sha256": model.sha256},
                "report": report,
            },
        });
        crate::io::mesh::write_with_provenance(path, &mesh, &provenance)?;
    }
    if args.json {
        print_json(&report)?;
    } else {
        println!(
            "{}: latent {:?}; round-trip IoU A {:.3}, B {:.3}; interpolation at t = {} has {} triangles{}",
            model.name,
            shape,
            sides[0]["iou"].as_f64().unwrap_or(f64::NAN),
            sides[1]["iou"].as_f64().unwrap_or(f64::NAN),
            args.t,
            mesh.triangles.len(),
            args.output
                .as_ref()
                .map_or(String::new(), |p| format!(" → {}", p.display()))
        );
    }
    Ok(())
}
