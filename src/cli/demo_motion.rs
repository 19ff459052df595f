//! `demo-data motion -o DIR [--count N] [--frames T] [--resolution R] [--points K] [--noise σ]
//! [--seed S]`: procedural deforming shapes (`methods::demo_data::motion`). For each sequence a
//! folder `NAME/` with `mesh/frame_0000.ply ...` (constant topology: the ground truth),
//! `points.npy` (T×K×3 surface points with correspondences and Gaussian noise: the sparse input
//! Motion2VecSets reconstructs from), `partial/frame_0000.ply ...` (a depth scan of each frame
//! from the front: K visible points per frame, no correspondence, the same noise: the partial
//! input) and `motion.glb` (the mesh sequence as morph targets), plus `sequences.csv`. Coordinates lie in Motion2VecSets' unit cube ([-0.5, 0.5]³).

use crate::core::LatentTensor;
use crate::core::motion::MotionSequence;
use crate::io;
use crate::methods::demo_data::motion::{MotionKind, MotionSpec, generate, sample_partial, sample_sparse};
use anyhow::{Context, bail};
use std::fmt::Write as _;
use std::path::PathBuf;

/// The depth scanner stands in front (+z) and looks back along −z.
const SCANNER_VIEW: [f32; 3] = [0.0, 0.0, -1.0];

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output folder (created if missing).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Number of sequences; they cycle through bending capsule, twisting bar, breathing ellipsoid
    /// and walking figure, the first of each kind canonical and later ones varied by seed.
    #[arg(long, default_value_t = 4)]
    pub count: usize,
    /// Frames per sequence (Motion2VecSets evaluates 17).
    #[arg(long, default_value_t = 17)]
    pub frames: usize,
    /// Marching-cubes grid of each rest shape.
    #[arg(long, default_value_t = 64)]
    pub resolution: usize,
    /// Sparse surface points per frame (Motion2VecSets: 300 for D-FAUST, 512 for DT4D).
    #[arg(long, default_value_t = 512)]
    pub points: usize,
    /// Standard deviation of the noise added to the sparse points (the reference's 0.001).
    #[arg(long, default_value_t = 0.001)]
    pub noise: f32,
    /// Seed of the variations (sequence i of kind k uses seed + i / 4; 0 is canonical).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if !(2..=1000).contains(&args.frames) {
        bail!("--frames must be between 2 and 1000, got {}", args.frames);
    }
    if !(8..=256).contains(&args.resolution) {
        bail!("--resolution must be between 8 and 256, got {}", args.resolution);
    }
    if !(args.noise.is_finite() && args.noise >= 0.0) {
        bail!("--noise must be a non-negative number, got {}", args.noise);
    }
    std::fs::create_dir_all(&args.output).with_context(|| format!("cannot create {}", args.output.display()))?;
    let mut csv = String::from("name,kind,seed,frames,fps,vertices,faces,points,noise,max_displacement\n");
    for i in 0..args.count {
        let kind = MotionKind::ALL[i % MotionKind::ALL.len()];
        let seed = args.seed + (i / MotionKind::ALL.len()) as u64;
        let spec = MotionSpec {
            frames: args.frames,
            resolution: args.resolution,
            seed,
            ..MotionSpec::new(kind)
        };
        let g = generate(&spec)?;
        let dir = args.output.join(&g.name);
        io::motion::write_frames(&dir.join("mesh"), &g.sequence, "ply")?;
        io::motion::write_glb(&dir.join("motion.glb"), &g.sequence)?;
        let sparse = sample_sparse(&g.sequence, args.points, args.noise, seed ^ 0x5EED);
        let flat: Vec<f32> = sparse.iter().flatten().flatten().copied().collect();
        let tensor = LatentTensor::new("points", vec![g.sequence.len(), args.points, 3], flat)?;
        io::array::write_npy(&dir.join("points.npy"), &tensor)?;
        let partial = MotionSequence {
            frames: sample_partial(&g.sequence, args.points, SCANNER_VIEW, args.noise, seed ^ 0x5CA7),
            triangles: Vec::new(),
            fps: g.sequence.fps,
        };
        io::motion::write_frames(&dir.join("partial"), &partial, "ply")?;
        let s = &g.sequence;
        writeln!(
            csv,
            "{},{},{seed},{},{},{},{},{},{},{:.5}",
            g.name,
            kind.name(),
            s.len(),
            s.fps,
            s.frames[0].len(),
            s.triangles.len(),
            args.points,
            args.noise,
            s.max_displacement()
        )?;
        println!(
            "{}: {} frames × {} vertices, {} faces",
            g.name,
            s.len(),
            s.frames[0].len(),
            s.triangles.len()
        );
    }
    let csv_path = args.output.join("sequences.csv");
    io::atomic::write_bytes(&csv_path, csv.as_bytes())?;
    println!(
        "{} sequences → {} (index in {})",
        args.count,
        args.output.display(),
        csv_path.display()
    );
    Ok(())
}
