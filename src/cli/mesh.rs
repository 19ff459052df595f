//! `mesh VOLUME --level L -o OUT`: marching cubes in world mm.

use super::{InsideArg, print_json};
use crate::methods::isosurface::{Inside, IsoOptions, marching_cubes};
use anyhow::bail;
use serde_json::json;
use std::path::Path;

pub fn run(path: &Path, level: f32, inside: InsideArg, output: &Path, as_json: bool) -> anyhow::Result<()> {
    let kind = crate::io::FileKind::from_path(output)?;
    if !kind.is_mesh() {
        bail!("output must be .obj, .ply, .stl or .glb: {}", output.display());
    }
    let volume = crate::io::nifti::read(path)?;
    let opts = IsoOptions {
        level,
        inside: match inside {
            InsideArg::Above => Inside::Above,
            InsideArg::Below => Inside::Below,
        },
        frame: 0,
    };
    let mesh = marching_cubes(&volume, &opts);
    if mesh.triangles.is_empty() {
        bail!(
            "no surface at level {level}: the volume never crosses it ({})",
            path.display()
        );
    }
    crate::io::mesh::write(output, &mesh)?;
    let (area, enclosed) = (mesh.area(), mesh.signed_volume());
    if as_json {
        print_json(
            &json!({"vertices": mesh.positions.len(), "faces": mesh.triangles.len(), "area": area, "volume": enclosed}),
        )
    } else {
        println!(
            "{} vertices, {} faces, area {area:.3} mm², volume {enclosed:.3} mm³ → {}",
            mesh.positions.len(),
            mesh.triangles.len(),
            output.display()
        );
        Ok(())
    }
}
