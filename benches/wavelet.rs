//! A self-timed benchmark (no criterion) of WaLa's analytic transform: the 3-level 3D DWT
//! (`wavedecn`) and its inverse (`waverecn`) of an N³ truncated SDF in mode 'zero'.
//! `scripts/bench_wavelet.py` runs this and the same work in PyWavelets and prints the ratio.
//!
//! ```text
//! cargo bench --bench wavelet -- [--size 256] [--wavelet bior6.8] [--levels 3] [--reps 5] [--warmup 1]
//! ```
//!
//! The input is the analytic SDF of `tests/fixtures/make_wala_wavelet.py` (a sphere and a box,
//! clipped at ±0.1) on WaLa's grid (`2i/N − 1`). Prints one JSON object on stdout: per stage
//! (`wavedecn`, `waverecn`, `total`) the median and best seconds and every run, the thread count
//! and the round trip's maximum relative error.

use latent_workbench::methods::wala::tree::{WALA_TRUNCATION, truncate_sdf};
use latent_workbench::methods::wala::wavelet::{Array3, Wavelet, wavedecn, waverecn};
use serde_json::json;
use std::time::Instant;

struct Args {
    size: usize,
    wavelet: String,
    levels: usize,
    reps: usize,
    warmup: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        size: 256,
        wavelet: "bior6.8".into(),
        levels: 3,
        reps: 5,
        warmup: 1,
    };
    let num = |k: &str, v: String| v.parse::<usize>().map_err(|e| format!("{k}: {e}"));
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--size" => a.size = num("--size", value()?)?,
            "--wavelet" => a.wavelet = value()?,
            "--levels" => a.levels = num("--levels", value()?)?,
            "--reps" => a.reps = num("--reps", value()?)?,
            "--warmup" => a.warmup = num("--warmup", value()?)?,
            // `cargo bench` passes --bench; libtest-style filters are ignored too.
            "--bench" | "--nocapture" => {}
            "-h" | "--help" => {
                eprintln!(
                    "usage: wavelet [--size N] [--wavelet bior6.8|db2|haar] [--levels L] [--reps N] [--warmup N]"
                );
                std::process::exit(0);
            }
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            _ => {}
        }
    }
    if a.size == 0 || a.reps == 0 {
        return Err("size and reps must be positive".into());
    }
    Ok(a)
}

/// Same field as `analytic_sdf` in tests/fixtures/make_wala_wavelet.py.
fn analytic_sdf(n: usize) -> Array3 {
    let g = |i: usize| i as f64 * 2.0 / n as f64 - 1.0;
    Array3::from_fn([n; 3], |i, j, k| {
        let (x, y, z) = (g(i), g(j), g(k));
        let (sx, sy, sz) = (x - 0.2, y + 0.1, z - 0.05);
        let sphere = (sx * sx + sy * sy + sz * sz).sqrt() - 0.45;
        let q = [(x + 0.3).abs() - 0.35, (y - 0.25).abs() - 0.2, (z + 0.2).abs() - 0.3];
        let outside = q.iter().map(|v| v.max(0.0).powi(2)).sum::<f64>().sqrt();
        let inside = q[0].max(q[1].max(q[2])).min(0.0);
        sphere.min(outside + inside) as f32
    })
}

fn stats(times: &[f64]) -> serde_json::Value {
    let mut s = times.to_vec();
    s.sort_by(f64::total_cmp);
    json!({"median_s": s[s.len() / 2], "best_s": s[0], "runs_s": times})
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let w = match Wavelet::by_name(&args.wavelet) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut x = analytic_sdf(args.size);
    truncate_sdf(x.data_mut(), WALA_TRUNCATION);
    let (mut dec, mut rec, mut total) = (Vec::new(), Vec::new(), Vec::new());
    let mut err = 0f64;
    for run in 0..args.warmup + args.reps {
        let t0 = Instant::now();
        let c = wavedecn(&x, &w, args.levels);
        let t1 = Instant::now();
        let y = match waverecn(&c, &w) {
            Ok(y) => y,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        };
        let t2 = Instant::now();
        if run >= args.warmup {
            dec.push((t1 - t0).as_secs_f64());
            rec.push((t2 - t1).as_secs_f64());
            total.push((t2 - t0).as_secs_f64());
        }
        let y = y.cropped(x.shape());
        let diff = y
            .data()
            .iter()
            .zip(x.data())
            .fold(0f64, |m, (a, b)| m.max(f64::from((a - b).abs())));
        err = diff / f64::from(x.max_abs()).max(1e-30);
    }
    let out = json!({
        "size": args.size,
        "wavelet": w.name(),
        "levels": args.levels,
        "mode": "zero",
        "threads": rayon::current_num_threads(),
        "wavedecn": stats(&dec),
        "waverecn": stats(&rec),
        "total": stats(&total),
        "round_trip_rel_err": err,
    });
    println!("{out}");
}
