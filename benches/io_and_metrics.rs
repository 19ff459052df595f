//! A small self-timed benchmark (no criterion): NIfTI loading, 3D SSIM and marching cubes on
//! files given on the command line or in the environment. `scripts/bench_compare.py` makes
//! the inputs, runs this and the same work in Python, and prints a comparison table.
//!
//! ```text
//! cargo bench --bench io_and_metrics -- \
//!     --nifti vol256_i16.nii.gz            # (a) io::nifti::read
//!     --ssim-a a.npy --ssim-b b.npy        # (b) 3D SSIM of two float32 .npy volumes
//!     [--data-range R]                     #     (default: range of both volumes)
//!     --sdf sdf256.nii                     # (c) marching cubes at level 0 (inside below)
//!     [--reps 5] [--warmup 1]
//! ```
//!
//! Each option may instead come from an environment variable: `LW_BENCH_NIFTI`,
//! `LW_BENCH_SSIM_A`, `LW_BENCH_SSIM_B`, `LW_BENCH_DATA_RANGE`, `LW_BENCH_SDF`,
//! `LW_BENCH_REPS`, `LW_BENCH_WARMUP`. Tasks whose inputs are not given are skipped.
//!
//! Prints one JSON object on stdout: for every task run, `median_s`, `best_s`, every run's
//! time and a check value (SSIM value, voxel count, triangle count), or `error` if it failed.
//! Inputs are loaded before timing, except for (a) where loading is the task.

use latent_workbench::io;
use latent_workbench::methods::isosurface::{Inside, IsoOptions, marching_cubes};
use latent_workbench::methods::metrics::{SsimOptions, ssim};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

struct Args {
    nifti: Option<PathBuf>,
    ssim_a: Option<PathBuf>,
    ssim_b: Option<PathBuf>,
    data_range: Option<f64>,
    sdf: Option<PathBuf>,
    reps: usize,
    warmup: usize,
}

fn parse_args() -> Result<Args, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut a = Args {
        nifti: env("LW_BENCH_NIFTI").map(PathBuf::from),
        ssim_a: env("LW_BENCH_SSIM_A").map(PathBuf::from),
        ssim_b: env("LW_BENCH_SSIM_B").map(PathBuf::from),
        data_range: env("LW_BENCH_DATA_RANGE")
            .map(|v| v.parse().map_err(|e| format!("LW_BENCH_DATA_RANGE: {e}")))
            .transpose()?,
        sdf: env("LW_BENCH_SDF").map(PathBuf::from),
        reps: env("LW_BENCH_REPS")
            .map(|v| v.parse().map_err(|e| format!("LW_BENCH_REPS: {e}")))
            .transpose()?
            .unwrap_or(5),
        warmup: env("LW_BENCH_WARMUP")
            .map(|v| v.parse().map_err(|e| format!("LW_BENCH_WARMUP: {e}")))
            .transpose()?
            .unwrap_or(1),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--nifti" => a.nifti = Some(value()?.into()),
            "--ssim-a" => a.ssim_a = Some(value()?.into()),
            "--ssim-b" => a.ssim_b = Some(value()?.into()),
            "--data-range" => a.data_range = Some(value()?.parse().map_err(|e| format!("--data-range: {e}"))?),
            "--sdf" => a.sdf = Some(value()?.into()),
            "--reps" => a.reps = value()?.parse().map_err(|e| format!("--reps: {e}"))?,
            "--warmup" => a.warmup = value()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            // `cargo bench` passes --bench; libtest-style filters are ignored too.
            "--bench" | "--nocapture" => {}
            "-h" | "--help" => {
                eprintln!(
                    "usage: io_and_metrics [--nifti F.nii.gz] [--ssim-a A.npy --ssim-b B.npy [--data-range R]] \
                     [--sdf F.nii] [--reps N] [--warmup N]"
                );
                std::process::exit(0);
            }
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            _ => {}
        }
    }
    a.reps = a.reps.max(1);
    Ok(a)
}

/// Runs `f` `warmup` times untimed, then `reps` times timed; `f` returns a check value.
fn time<F: FnMut() -> Result<Value, String>>(warmup: usize, reps: usize, mut f: F) -> Value {
    let mut check = Value::Null;
    for _ in 0..warmup {
        if let Err(e) = f() {
            return json!({ "error": e });
        }
    }
    let mut runs = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        match f() {
            Ok(v) => check = v,
            Err(e) => return json!({ "error": e }),
        }
        runs.push(t.elapsed().as_secs_f64());
    }
    let mut sorted = runs.clone();
    sorted.sort_by(f64::total_cmp);
    let median = if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        0.5 * (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2])
    };
    json!({ "median_s": median, "best_s": sorted[0], "runs_s": runs, "check": check })
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("io_and_metrics: {e}");
            std::process::exit(2);
        }
    };
    let mut out: BTreeMap<&str, Value> = BTreeMap::new();

    if let Some(path) = &args.nifti {
        eprintln!("nifti_read: {}", path.display());
        out.insert(
            "nifti_read",
            time(args.warmup, args.reps, || {
                let v = io::nifti::read(path).map_err(|e| e.to_string())?;
                Ok(json!({ "dims": v.dims(), "voxels": v.data().len() }))
            }),
        );
    }

    match (&args.ssim_a, &args.ssim_b) {
        (Some(pa), Some(pb)) => {
            eprintln!("ssim_3d: {} vs {}", pa.display(), pb.display());
            let r = (|| {
                let a = io::array::read_npy(pa).map_err(|e| e.to_string())?;
                let b = io::array::read_npy(pb).map_err(|e| e.to_string())?;
                Ok::<_, String>((a, b))
            })();
            let v = match r {
                Err(e) => json!({ "error": e }),
                Ok((a, b)) => {
                    let opts = SsimOptions {
                        data_range: args.data_range,
                        ..Default::default()
                    };
                    let dims = a.shape().to_vec();
                    let mut v = time(args.warmup, args.reps, || {
                        let s = ssim(a.values(), b.values(), &dims, &opts).map_err(|e| e.to_string())?;
                        Ok(json!({ "ssim": s }))
                    });
                    v["shape"] = json!(dims);
                    v
                }
            };
            out.insert("ssim_3d", v);
        }
        (None, None) => {}
        _ => {
            out.insert("ssim_3d", json!({ "error": "give both --ssim-a and --ssim-b" }));
        }
    }

    if let Some(path) = &args.sdf {
        eprintln!("marching_cubes: {}", path.display());
        let v = match io::nifti::read(path) {
            Err(e) => json!({ "error": format!("loading the SDF: {e}") }),
            Ok(vol) => {
                let opts = IsoOptions {
                    level: 0.0,
                    inside: Inside::Below,
                    frame: 0,
                };
                time(args.warmup, args.reps, || {
                    let m = marching_cubes(&vol, &opts);
                    Ok(json!({ "vertices": m.positions.len(), "triangles": m.triangles.len() }))
                })
            }
        };
        out.insert("marching_cubes", v);
    }

    let report = json!({
        "threads": rayon::current_num_threads(),
        "reps": args.reps,
        "warmup": args.warmup,
        "tasks": out,
    });
    println!("{}", serde_json::to_string(&report).unwrap());
}
