//! `demo-data shapes -o DIR [--count N] [--size 64] [--seed S] [--truncate T]`: random
//! solid-geometry shapes (`methods::demo_data::shapes`) as NIfTI signed distance fields plus
//! `shapes.csv` with each shape's recipe.
//!
//! The volumes are in normalised units (the grid covers [-1, 1)³, voxel `i` at `2i/N − 1`):
//! the NIfTI affine says so with a spacing of `2/N` and an origin of −1, and `mesh` on a file
//! gives vertices in those units. Negative inside.

use crate::io::nifti::{self, WriteOptions};
use crate::methods::demo_data::shapes::{DEFAULT_SIZE, random_solid};
use anyhow::{Context, bail};
use std::fmt::Write as _;
use std::path::PathBuf;

/// Each shape fills at least this fraction of the grid (smaller draws are skipped).
const MIN_SOLID_FRACTION: f64 = 0.01;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output folder (created if missing).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Number of shapes.
    #[arg(long, default_value_t = 16)]
    pub count: usize,
    /// Grid size N (N³ voxels; WaLa uses 256).
    #[arg(long, default_value_t = DEFAULT_SIZE)]
    pub size: usize,
    /// Seed of the first shape (shape i uses seed + i, or a later one when that draw is too small).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Clip the SDF to ±T (a truncated SDF; WaLa's lineage uses 0.1).
    #[arg(long)]
    pub truncate: Option<f32>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if !(4..=1024).contains(&args.size) {
        bail!("--size must be between 4 and 1024, got {}", args.size);
    }
    if let Some(t) = args.truncate.filter(|t| !(t.is_finite() && *t > 0.0)) {
        bail!("--truncate must be a positive number, got {t}");
    }
    std::fs::create_dir_all(&args.output).with_context(|| format!("cannot create {}", args.output.display()))?;
    let mut csv = String::from("index,file,seed,grid,inside_fraction,recipe\n");
    for i in 0..args.count {
        let (seed, shape, mut volume) = random_solid(args.seed.wrapping_add(i as u64), args.size, MIN_SOLID_FRACTION)?;
        let inside = volume.data().iter().filter(|&&v| v < 0.0).count() as f64 / volume.data().len() as f64;
        if let Some(t) = args.truncate {
            volume.data_mut().iter_mut().for_each(|v| *v = v.clamp(-t, t));
        }
        let file = format!("shape_{i:04}.nii.gz");
        nifti::write(&args.output.join(&file), &volume, &WriteOptions::default())?;
        // recipes contain no commas or quotes, so the CSV needs no quoting
        writeln!(csv, "{i},{file},{seed},{},{inside:.5},{shape}", args.size)?;
    }
    let csv_path = args.output.join("shapes.csv");
    crate::io::atomic::write_bytes(&csv_path, csv.as_bytes())?;
    println!(
        "{} shapes of {}³ voxels → {} (recipes in {})",
        args.count,
        args.size,
        args.output.display(),
        csv_path.display()
    );
    Ok(())
}
