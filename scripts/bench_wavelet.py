#!/usr/bin/env python3
"""Rust (latent_workbench::methods::wala::wavelet) vs PyWavelets: the 3-level 3D DWT and its
inverse of a 256³ truncated SDF, bior6.8, mode 'zero' (WaLa's analytic encode/decode).

    /opt/lwpy/bin/python scripts/bench_wavelet.py [--size 256] [--wavelet bior6.8] [--levels 3]
        [--reps 5] [--warmup 1] [--rounds 3] [--rust-bin PATH] [--skip-python] [--skip-rust]

PyWavelets runs `pywt.wavedecn(x, w, mode='zero', level=L)` then `pywt.waverecn(c, w, mode='zero')`
on the float32 array (pywt keeps float32; it is single-threaded C). The Rust side is
`cargo bench --bench wavelet -- ...` (benches/wavelet.rs, release profile), or a prebuilt binary
of it given by --rust-bin; rayon uses every core unless RAYON_NUM_THREADS says otherwise. Both
sides use the same analytic SDF (tests/fixtures/make_wala_wavelet.py::analytic_sdf clipped at
±0.1), run --rounds times alternating, each round --warmup untimed and --reps timed runs.
Prints a Markdown table (speed-up = PyWavelets median / Rust median) on stdout, progress on stderr.
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))


from bench_common import cpu_model, log  # noqa: E402  (sibling module)


def python_round(args, x):
    import pywt

    dec, rec, tot = [], [], []
    for i in range(args.warmup + args.reps):
        t0 = time.perf_counter()
        c = pywt.wavedecn(x, args.wavelet, mode="zero", level=args.levels)
        t1 = time.perf_counter()
        y = pywt.waverecn(c, args.wavelet, mode="zero")
        t2 = time.perf_counter()
        if i >= args.warmup:
            dec.append(t1 - t0)
            rec.append(t2 - t1)
            tot.append(t2 - t0)
    y = y[tuple(slice(0, s) for s in x.shape)]
    err = float(np.abs(y.astype(np.float64) - x).max() / np.abs(x).max())
    return dec, rec, tot, err


def rust_round(args):
    cmd_args = ["--size", str(args.size), "--wavelet", args.wavelet, "--levels", str(args.levels),
                "--reps", str(args.reps), "--warmup", str(args.warmup)]
    if args.rust_bin:
        cmd = [args.rust_bin] + cmd_args
    else:
        cmd = ["cargo", "bench", "--quiet", "--bench", "wavelet", "--"] + cmd_args
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed: {p.stderr.strip()[-2000:]}")
    return json.loads(lines[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--wavelet", default="bior6.8")
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rust-bin", default=None)
    ap.add_argument("--skip-python", action="store_true")
    ap.add_argument("--skip-rust", action="store_true")
    args = ap.parse_args()

    import pywt
    from make_wala_wavelet import analytic_sdf

    x = np.clip(analytic_sdf(args.size), -0.1, 0.1)
    if not args.skip_rust and not args.rust_bin:
        log("building the bench (cargo bench --no-run) ...")
        subprocess.run(["cargo", "bench", "--quiet", "--bench", "wavelet", "--no-run"], cwd=ROOT, check=False)
    py = {"dec": [], "rec": [], "tot": []}
    rs = {"dec": [], "rec": [], "tot": []}
    py_err = rs_err = None
    threads = "?"
    for r in range(args.rounds):
        if not args.skip_python:
            log(f"round {r + 1}/{args.rounds}: pywt ...")
            d, c, t, py_err = python_round(args, x)
            py["dec"] += d
            py["rec"] += c
            py["tot"] += t
        if not args.skip_rust:
            log(f"round {r + 1}/{args.rounds}: rust ...")
            out = rust_round(args)
            rs["dec"] += out["wavedecn"]["runs_s"]
            rs["rec"] += out["waverecn"]["runs_s"]
            rs["tot"] += out["total"]["runs_s"]
            rs_err = out["round_trip_rel_err"]
            threads = out["threads"]

    med = lambda v: statistics.median(v) if v else None  # noqa: E731
    fmt = lambda v: f"{v:.4f}" if v is not None else "–"  # noqa: E731
    print(f"3D DWT of a {args.size}³ float32 TSDF, {args.wavelet}, {args.levels} levels, mode 'zero'. "
          f"Median of {args.rounds} rounds × {args.reps} runs (+{args.warmup} warm-up), seconds; "
          f"speed-up = PyWavelets / Rust.")
    print()
    print("| stage | Rust median (s) | PyWavelets median (s) | speed-up |")
    print("|---|---:|---:|---:|")
    for key, name in (("dec", "wavedecn"), ("rec", "waverecn"), ("tot", "wavedecn + waverecn")):
        r, p = med(rs[key]), med(py[key])
        ratio = f"{p / r:.1f}×" if r and p else "–"
        print(f"| {name} | {fmt(r)} | {fmt(p)} | {ratio} |")
    print()
    print(f"Round-trip max error / max |x|: Rust {rs_err if rs_err is not None else '–'}, "
          f"PyWavelets {py_err if py_err is not None else '–'}")
    print(f"Machine: {cpu_model()}, {os.cpu_count()} logical cores; Rust threads (rayon): {threads}; "
          f"PyWavelets {pywt.__version__} (one thread), numpy {np.__version__}")


if __name__ == "__main__":
    main()
