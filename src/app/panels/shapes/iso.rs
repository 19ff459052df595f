//! Meshing a volume at its live iso-level: marching cubes on the GPU (the viewport's own device,
//! with the field kept there, so moving the level of the same volume uploads nothing) when the app
//! has one and the user has not turned it off, else on the CPU. Both give the same mesh (the
//! GPU kernel's contract, held by tests/marching_cubes_gpu.rs); a GPU failure falls back to the
//! CPU and is reported once, after which the tab stays on the CPU.

use crate::core::{Mesh, Volume};
use crate::methods::isosurface::{Inside, IsoOptions, marching_cubes};
use crate::render::LiveMarchingCubes;
use std::sync::Arc;
use std::time::Instant;

/// A mesh made by the iso job and how it was made.
pub(super) struct IsoBuilt {
    pub mesh: Mesh,
    /// E.g. "12 480 triangles in 9 ms on the GPU", shown under the level slider.
    pub how: String,
    /// Why the GPU could not mesh, when the CPU stood in.
    pub gpu_error: Option<String>,
}

/// Meshes `volume`'s first frame at `level` on `gpu` when given, on the CPU otherwise.
pub(super) fn build(volume: &Arc<Volume>, level: f32, inside: Inside, gpu: Option<&LiveMarchingCubes>) -> IsoBuilt {
    let start = Instant::now();
    let mut gpu_error = None;
    if let Some(gpu) = gpu {
        match gpu.extract(volume, level, inside) {
            Ok((mesh, _)) => {
                let how = describe(&mesh, start, "on the GPU");
                return IsoBuilt { mesh, how, gpu_error };
            }
            Err(e) => gpu_error = Some(e.to_string()),
        }
    }
    let start = Instant::now();
    let mesh = marching_cubes(
        volume,
        &IsoOptions {
            level,
            inside,
            frame: 0,
        },
    );
    let how = describe(&mesh, start, "on the CPU");
    IsoBuilt { mesh, how, gpu_error }
}

fn describe(mesh: &Mesh, start: Instant, place: &str) -> String {
    format!(
        "{} triangles in {:.0} ms {place}",
        mesh.triangles.len(),
        start.elapsed().as_secs_f64() * 1e3
    )
}
