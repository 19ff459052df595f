//! `convert IN OUT`, chosen by the two extensions.

use crate::core::slice::{Layer, Plane, montage, render_plane};
use crate::core::stats::percentiles;
use crate::core::{Asset, Colormap, ScalarKind, Volume};
use crate::io::{self, FileKind};
use anyhow::bail;
use std::path::Path;

pub fn run(input: &Path, output: &Path) -> anyhow::Result<()> {
    let asset = io::load(input)?;
    if let Asset::Motion(m) = &asset {
        return convert_motion(m, input, output);
    }
    let out_kind = FileKind::from_path(output)?;
    match (asset, out_kind) {
        (Asset::Volume(v), FileKind::Nifti) => {
            let opts = io::nifti::WriteOptions {
                datatype: storable_kind(&v),
                ..Default::default()
            };
            io::nifti::write(output, &v, &opts)?;
        }
        (Asset::Volume(v), FileKind::Image) if is_png(output) => {
            io::image::write_png(output, &middle_slices_png(&v))?;
        }
        (Asset::Image(img), FileKind::Image) if is_png(output) => io::image::write_png(output, &img)?,
        (Asset::Mesh(m), k) if k.is_mesh() => io::mesh::write(output, &m)?,
        (Asset::PointCloud(p), FileKind::Ply | FileKind::Obj) => {
            let m = crate::core::Mesh {
                positions: p.points,
                normals: p.normals,
                colors: p.colors,
                scalars: p.scalars,
                triangles: Vec::new(),
            };
            io::mesh::write(output, &m)?;
        }
        (Asset::Tensors(ts), FileKind::Safetensors) => io::array::write_safetensors(output, &ts)?,
        (Asset::Tensors(ts), FileKind::Npy) => {
            let [t] = ts.as_slice() else {
                bail!(
                    "{} holds {} tensors; .npy holds one (convert to .safetensors instead)",
                    input.display(),
                    ts.len()
                );
            };
            io::array::write_npy(output, t)?;
        }
        (asset, _) => bail!(
            "cannot convert a {} ({}) to {}",
            asset.kind(),
            input.display(),
            output.display()
        ),
    }
    println!("wrote {}", output.display());
    Ok(())
}

/// A sequence becomes one animated `.glb`, or a folder (an output without extension) of one `.ply`
/// per frame.
fn convert_motion(m: &crate::core::MotionSequence, input: &Path, output: &Path) -> anyhow::Result<()> {
    if output.extension().is_none() {
        let files = io::motion::write_frames(output, m, "ply")?;
        println!("wrote {} frames to {}", files.len(), output.display());
        return Ok(());
    }
    match FileKind::from_path(output)? {
        FileKind::Glb => io::motion::write_glb(output, m)?,
        _ => bail!(
            "a motion sequence ({}) converts to an animated .glb or to a folder of frames (an output \
             without extension), not to {}",
            input.display(),
            output.display()
        ),
    }
    println!("wrote {} ({} frames as morph targets)", output.display(), m.len());
    Ok(())
}

fn is_png(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"))
}

/// Keeps an integer datatype when every value is an integer in its range (so `.nii` ↔
/// `.nii.gz` is lossless); otherwise float32.
pub fn storable_kind(v: &Volume) -> ScalarKind {
    let (lo, hi) = match v.source_kind {
        ScalarKind::U8 => (0.0, 255.0),
        ScalarKind::I8 => (-128.0, 127.0),
        ScalarKind::I16 => (-32768.0, 32767.0),
        ScalarKind::U16 => (0.0, 65535.0),
        ScalarKind::I32 => (-2_147_483_648.0, 2_147_483_647.0),
        ScalarKind::F64 => return ScalarKind::F64,
        _ => return ScalarKind::F32,
    };
    let exact = v
        .data()
        .iter()
        .all(|&x| x.fract() == 0.0 && f64::from(x) >= lo && f64::from(x) <= hi);
    if exact { v.source_kind } else { ScalarKind::F32 }
}

/// Axial, coronal and sagittal middle slices side by side, gray, window at the 1st–99th
/// percentiles.
pub fn middle_slices_png(v: &Volume) -> crate::core::Image {
    let p = percentiles(v.frame(0), &[1.0, 99.0]);
    let layer = Layer {
        volume: v,
        frame: 0,
        window: (p[0] as f32, p[1] as f32),
        colormap: Colormap::Gray,
        opacity: 1.0,
    };
    let dims = v.dims();
    let views: Vec<_> = Plane::ALL
        .iter()
        .map(|&plane| render_plane(&layer, None, plane, dims[plane.normal_axis()] / 2))
        .collect();
    let m = montage(&views);
    io::image::rgba8_to_image(m.width, m.height, m.pixels)
}
