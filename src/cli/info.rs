//! `info FILE`: what a file holds.

use super::{num, print_json};
use crate::core::stats::Summary;
use crate::core::{Asset, Image, LatentTensor, Mesh, MotionSequence, PointCloud, Volume};
use serde_json::{Value, json};
use std::path::Path;

pub fn run(path: &Path, as_json: bool) -> anyhow::Result<()> {
    let asset = crate::io::load(path)?;
    let report = describe(&asset);
    if as_json {
        print_json(&report)
    } else {
        println!("{}", human(path, &report));
        Ok(())
    }
}

/// The JSON description of any asset (also used by the GUI's Data tab tooltip).
pub fn describe(asset: &Asset) -> Value {
    match asset {
        Asset::Volume(v) => volume(v),
        Asset::Image(i) => image(i),
        Asset::Mesh(m) => mesh(m),
        Asset::PointCloud(p) => point_cloud(p),
        Asset::Motion(m) => motion(m),
        Asset::Tensors(ts) => json!({"kind": "tensors", "tensors": ts.iter().map(tensor).collect::<Vec<_>>()}),
    }
}

fn volume(v: &Volume) -> Value {
    let s = Summary::of(v.data());
    json!({
        "kind": "volume",
        "shape": v.shape(),
        "dtype": v.source_kind.name(),
        "spacing_mm": v.spacing_mm(),
        "world_from_voxel": v.world_from_voxel(),
        "min": num(s.min), "max": num(s.max), "mean": num(s.mean), "std": num(s.std),
        "non_finite": s.nan_count,
    })
}

fn image(i: &Image) -> Value {
    let s = Summary::of(&i.samples_f32());
    json!({
        "kind": "image",
        "width": i.width(), "height": i.height(),
        "channels": i.channels().name(),
        "bits": i.bit_depth().bits(),
        "min": num(s.min), "max": num(s.max), "mean": num(s.mean),
    })
}

fn mesh(m: &Mesh) -> Value {
    let (lo, hi) = m.bounds().unwrap_or(([0.0; 3], [0.0; 3]));
    json!({
        "kind": "mesh",
        "vertices": m.positions.len(), "faces": m.triangles.len(),
        "area": m.area(), "volume": m.signed_volume(),
        "bounds_min": lo, "bounds_max": hi,
        "has_normals": !m.normals.is_empty(), "has_colors": !m.colors.is_empty(), "has_scalars": !m.scalars.is_empty(),
    })
}

fn point_cloud(p: &PointCloud) -> Value {
    let (lo, hi) = p.bounds().unwrap_or(([0.0; 3], [0.0; 3]));
    json!({"kind": "point_cloud", "points": p.len(), "bounds_min": lo, "bounds_max": hi,
           "has_normals": !p.normals.is_empty(), "has_colors": !p.colors.is_empty()})
}

fn motion(m: &MotionSequence) -> Value {
    let (lo, hi) = m.bounds().unwrap_or(([0.0; 3], [0.0; 3]));
    json!({"kind": "motion", "frames": m.len(), "fps": m.fps,
           "points_per_frame": m.corresponding(), "faces": m.triangles.len(),
           "max_displacement": m.max_displacement(), "bounds_min": lo, "bounds_max": hi})
}

fn tensor(t: &LatentTensor) -> Value {
    let s = Summary::of(t.values());
    json!({"name": t.name, "shape": t.shape(), "dtype": t.source_kind.name(),
           "min": num(s.min), "max": num(s.max), "mean": num(s.mean), "std": num(s.std), "norm": num(s.norm)})
}

fn human(path: &Path, v: &Value) -> String {
    let mut out = format!("{}\n", path.display());
    if let Value::Object(map) = v {
        for (k, val) in map {
            out.push_str(&format!("  {k:<17} {val}\n"));
        }
    }
    out.trim_end().to_string()
}
