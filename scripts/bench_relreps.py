#!/usr/bin/env python3
"""Relative transform benchmark: latent-workbench (benches/relreps.rs) against numpy on the same
data and machine, in one run.

    /opt/lwpy/bin/python scripts/bench_relreps.py [--n 100000] [--dim 768] [--anchors 1000]
                                                  [--reps 5] [--bench-bin PATH]

Writes seeded Gaussian latents (n × dim, float32) to a temporary .npy, times numpy's
normalise + matmul (what relreps/latentis do: x / ‖x‖, a / ‖a‖, x @ a.T) on them, runs the Rust
benchmark on the same file (cargo bench, or --bench-bin for a prebuilt binary), checks that both
sums of the output agree, and prints a JSON object with the medians and the ratio
numpy_time / rust_time (> 1: Rust faster). Both sides use every core (OpenBLAS threads, rayon).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def numpy_relative(x, anchors):
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    an = anchors / np.linalg.norm(anchors, axis=1, keepdims=True)
    return xn @ an.T


def time_numpy(x, anchors, reps, warmup):
    times = []
    checksum = None
    for rep in range(warmup + reps):
        t0 = time.perf_counter()
        out = numpy_relative(x, anchors)
        dt = time.perf_counter() - t0
        if rep == 0:
            checksum = float(out.sum(dtype=np.float64))
        if rep >= warmup:
            times.append(dt)
        del out
    times_sorted = sorted(times)
    return {
        "median_s": times_sorted[len(times) // 2],
        "best_s": times_sorted[0],
        "times_s": times,
        "checksum": checksum,
    }


def run_rust(path, args):
    extra = ["--input", path, "--anchors", str(args.anchors), "--reps", str(args.reps),
             "--warmup", str(args.warmup), "--impls", args.impls]
    if args.bench_bin:
        cmd = [args.bench_bin] + extra
    else:
        cmd = ["cargo", "bench", "--bench", "relreps", "--"] + extra
    res = subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--anchors", type=int, default=1000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--impls", default="library,single")
    p.add_argument("--bench-bin", help="prebuilt benches/relreps binary (default: cargo bench)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    step = args.n // args.anchors
    anchors = np.ascontiguousarray(x[: step * args.anchors : step][: args.anchors])

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "latents.npy")
        np.save(path, x)
        rust = run_rust(path, args)
    py = time_numpy(x, anchors, args.reps, args.warmup)

    report = {
        "benchmark": "relative transform, cosine to anchors",
        "n": args.n,
        "dim": args.dim,
        "anchors": args.anchors,
        "cpu_count": os.cpu_count(),
        "numpy": dict(py, version=np.__version__),
        "rust": rust["impls"],
        "rust_threads": rust["threads"],
        "ratios_numpy_over_rust": {},
    }
    for name, r in rust["impls"].items():
        if "median_s" in r:
            report["ratios_numpy_over_rust"][name] = py["median_s"] / r["median_s"]
            rel = abs(r["checksum"] - py["checksum"]) / max(1.0, abs(py["checksum"]))
            report.setdefault("checksum_rel_diff", {})[name] = rel
    print(json.dumps(report, indent=2))
    for name, ratio in report["ratios_numpy_over_rust"].items():
        print(f"{name}: numpy {py['median_s']:.3f} s / rust {rust['impls'][name]['median_s']:.3f} s "
              f"= {ratio:.2f}x", file=sys.stderr)


if __name__ == "__main__":
    main()
