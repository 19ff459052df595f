//! A self-timed benchmark (no criterion) of the relative transform: cosine of every sample to
//! every anchor. `scripts/bench_relreps.py` runs this and numpy's normalise + matmul on the same
//! data and prints the ratio.
//!
//! ```text
//! cargo bench --bench relreps -- [--n 100000] [--dim 768] [--anchors 1000] [--reps 5]
//!                                [--warmup 1] [--impls library,single] [--input X.npy]
//! ```
//!
//! Data: `--input` (an `n × dim` `.npy`, e.g. written by the Python script so both sides time
//! the same numbers) or seeded standard normals. Anchors are the rows `0, s, 2s, …` with
//! `s = n / anchors` (the Python script uses the same rows). Implementations: `library` (what the
//! library does: row chunks prepared into a reused buffer, threaded gemm per chunk) and `single` (normalise a
//! copy, then one threaded gemm). Every run allocates its output, like numpy does.
//!
//! Prints one JSON object on stdout: per implementation `median_s`, `best_s`, every run's time,
//! GFLOP/s at the median, and `checksum` (sum of all outputs, in f64) to compare with numpy's.

use latent_workbench::core::diffusion::Rng;
use latent_workbench::core::linalg::{Transpose, gemm};
use latent_workbench::methods::relreps::{RelativeOptions, RelativeProjector};
use rayon::prelude::*;
use serde_json::{Value, json};
use std::time::Instant;

struct Args {
    n: usize,
    dim: usize,
    anchors: usize,
    reps: usize,
    warmup: usize,
    impls: Vec<String>,
    input: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        n: 100_000,
        dim: 768,
        anchors: 1000,
        reps: 5,
        warmup: 1,
        impls: vec!["library".into(), "single".into()],
        input: None,
    };
    let mut it = std::env::args().skip(1);
    let num = |flag: &str, v: Option<String>| -> Result<usize, String> {
        v.ok_or_else(|| format!("{flag} needs a value"))?
            .parse()
            .map_err(|e| format!("{flag}: {e}"))
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--n" => a.n = num("--n", it.next())?,
            "--dim" => a.dim = num("--dim", it.next())?,
            "--anchors" => a.anchors = num("--anchors", it.next())?,
            "--reps" => a.reps = num("--reps", it.next())?,
            "--warmup" => a.warmup = num("--warmup", it.next())?,
            "--impls" => {
                a.impls = it
                    .next()
                    .ok_or("--impls needs a value")?
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .collect()
            }
            "--input" => a.input = Some(it.next().ok_or("--input needs a value")?),
            "--bench" | "--nocapture" => {}
            "-h" | "--help" => {
                eprintln!(
                    "usage: relreps [--n N] [--dim D] [--anchors K] [--reps R] [--warmup W] \
                     [--impls library,single] [--input X.npy]"
                );
                std::process::exit(0);
            }
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            _ => {}
        }
    }
    if a.n == 0 || a.dim == 0 || a.anchors == 0 || a.anchors > a.n || a.reps == 0 {
        return Err("need n, dim, reps ≥ 1 and 1 ≤ anchors ≤ n".into());
    }
    Ok(a)
}

fn load(args: &mut Args) -> Result<Vec<f32>, String> {
    match &args.input {
        Some(path) => {
            let t = latent_workbench::io::array::read_npy(std::path::Path::new(path)).map_err(|e| e.to_string())?;
            let shape = t.shape().to_vec();
            if shape.len() != 2 {
                return Err(format!("{path}: expected a 2-D array, got {shape:?}"));
            }
            args.n = shape[0];
            args.dim = shape[1];
            Ok(t.into_values())
        }
        None => Ok(Rng::new(0).normals_f32(args.n * args.dim)),
    }
}

/// Normalise a copy of all rows, then one threaded gemm against the prepared anchors.
fn single(x: &[f32], n: usize, d: usize, anchors_unit: &[f32], k: usize) -> Vec<f32> {
    let mut xn = x.to_vec();
    xn.par_chunks_mut(d).for_each(|row| {
        let s = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if s > 0.0 {
            row.iter_mut().for_each(|v| *v /= s);
        }
    });
    let mut out = vec![0f32; n * k];
    if let Err(e) = gemm(
        &xn,
        (n, d),
        Transpose::No,
        anchors_unit,
        (k, d),
        Transpose::Yes,
        &mut out,
        0,
    ) {
        eprintln!("gemm failed: {e}");
        std::process::exit(1);
    }
    out
}

fn main() {
    let mut args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("relreps bench: {e}");
            std::process::exit(2);
        }
    };
    let x = match load(&mut args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("relreps bench: {e}");
            std::process::exit(2);
        }
    };
    let (n, d, k) = (args.n, args.dim, args.anchors);
    let step = n / k;
    let anchors: Vec<f32> = (0..k)
        .flat_map(|j| x[j * step * d..(j * step + 1) * d].to_vec())
        .collect();
    let projector = match RelativeProjector::fit(&anchors, k, d, RelativeOptions::default()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("relreps bench: {e}");
            std::process::exit(1);
        }
    };
    let mut anchors_unit = anchors.clone();
    anchors_unit.chunks_mut(d).for_each(|row| {
        let s = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.iter_mut().for_each(|v| *v /= s);
    });
    let flops = 2.0 * n as f64 * d as f64 * k as f64;
    let mut results = serde_json::Map::new();
    for name in &args.impls {
        let run = || -> Result<Vec<f32>, String> {
            match name.as_str() {
                "library" => projector.transform(&x, n).map_err(|e| e.to_string()),
                "single" => Ok(single(&x, n, d, &anchors_unit, k)),
                other => Err(format!("unknown implementation {other}")),
            }
        };
        let mut times = Vec::new();
        let mut checksum = 0.0;
        let mut error = None;
        for rep in 0..args.warmup + args.reps {
            let t0 = Instant::now();
            let out = run();
            let dt = t0.elapsed().as_secs_f64();
            match out {
                Ok(out) => {
                    if rep >= args.warmup {
                        times.push(dt);
                    }
                    if rep == 0 {
                        checksum = out.par_iter().map(|&v| f64::from(v)).sum();
                    }
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let entry: Value = match error {
            Some(e) => json!({ "error": e }),
            None => {
                let mut sorted = times.clone();
                sorted.sort_by(f64::total_cmp);
                let median = sorted[sorted.len() / 2];
                json!({
                    "median_s": median,
                    "best_s": sorted[0],
                    "times_s": times,
                    "gflops": flops / median / 1e9,
                    "checksum": checksum,
                })
            }
        };
        results.insert(name.clone(), entry);
    }
    let report = json!({
        "benchmark": "relative transform (cosine to anchors)",
        "n": n,
        "dim": d,
        "anchors": k,
        "anchor_rows": format!("0, {step}, 2×{step}, …"),
        "threads": rayon::current_num_threads(),
        "reps": args.reps,
        "impls": results,
    });
    println!("{report}");
}
