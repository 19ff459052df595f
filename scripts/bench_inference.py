#!/usr/bin/env python3
"""Rust (candle + latent_workbench::core::ops) vs PyTorch on the CPU: 3D convolution forward.

    /opt/torchpy/bin/python scripts/bench_inference.py [--size 64] [--channels 64] [--reps 5]
        [--warmup 1] [--rounds 3] [--impls direct,im2col,composite] [--threads N]
        [--rust-bin PATH] [--skip-python] [--skip-rust]

The work is `F.conv3d(x, w, b, padding=1)` with x of shape 1×C×N³ and w of shape C×C×3×3×3
(default 1×64×64³, 64→64, ≈58 GFLOP), the hot op of the MONAI AutoencoderKL decoder.

PyTorch runs with `torch.set_num_threads(--threads)` (default: all cores of this machine) in
`torch.no_grad()`. The Rust side is `cargo bench --bench inference -- ...` (benches/inference.rs,
needs `[[bench]] name = "inference" harness = false` in Cargo.toml), or a prebuilt binary of that
bench given by --rust-bin. rayon uses every core unless RAYON_NUM_THREADS says otherwise; other
environment variables (CARGO_TARGET_DIR, LW_CONV3D_NO_AVX512, ...) pass through.

Both sides run --rounds times, alternating, each round being --warmup untimed and --reps timed
calls, so that load from other processes hits both alike; the table shows the median and the
best over all timed calls, GFLOP/s at the median, and PyTorch's median divided by each Rust
median (> 1: Rust is faster). Prints a Markdown table on stdout, progress on stderr.
"""
import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def torch_round(args, x, w, b):
    import torch
    import torch.nn.functional as F

    times = []
    with torch.no_grad():
        for _ in range(args.warmup):
            F.conv3d(x, w, b, padding=1)
        for _ in range(args.reps):
            t = time.perf_counter()
            F.conv3d(x, w, b, padding=1)
            times.append(time.perf_counter() - t)
    return times


def rust_round(args):
    cmd_args = ["--size", str(args.size), "--channels", str(args.channels), "--reps", str(args.reps),
                "--warmup", str(args.warmup), "--impls", args.impls]
    if args.rust_bin:
        cmd = [args.rust_bin] + cmd_args
    else:
        cmd = ["cargo", "bench", "--quiet", "--bench", "inference", "--"] + cmd_args
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines:
        hint = ""
        if "harness" not in p.stderr and not args.rust_bin:
            hint = " (is `[[bench]] name = \"inference\" harness = false` in Cargo.toml?)"
        raise RuntimeError(f"{' '.join(cmd)} failed{hint}: {p.stderr.strip()[-2000:]}")
    return json.loads(lines[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--impls", default="direct,im2col,composite")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rust-bin", default=None)
    ap.add_argument("--skip-python", action="store_true")
    ap.add_argument("--skip-rust", action="store_true")
    args = ap.parse_args()

    n, c = args.size, args.channels
    flops = 2.0 * c * c * 27 * n ** 3
    torch_times, torch_version = [], None
    rust_times, rust_errors, rust_meta = {}, {}, {}
    if not args.skip_python:
        import torch

        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        torch_version = torch.__version__
        x = torch.randn(1, c, n, n, n)
        w = torch.randn(c, c, 3, 3, 3) * (c * 27) ** -0.5
        b = torch.randn(c) * 0.1
    if not args.skip_rust and not args.rust_bin:
        log("building the bench (cargo bench --no-run) ...")
        subprocess.run(["cargo", "bench", "--quiet", "--bench", "inference", "--no-run"], cwd=ROOT, check=False)

    for r in range(args.rounds):
        if not args.skip_python:
            log(f"round {r + 1}/{args.rounds}: pytorch ...")
            torch_times += torch_round(args, x, w, b)
        if not args.skip_rust:
            log(f"round {r + 1}/{args.rounds}: rust ...")
            try:
                out = rust_round(args)
            except Exception as e:  # keep going; the table shows the error
                rust_errors["rust"] = str(e)
                break
            rust_meta = {k: out.get(k) for k in ("threads", "cpu_kernel")}
            for name, res in out.get("results", {}).items():
                if "error" in res:
                    rust_errors[name] = res["error"]
                else:
                    rust_times.setdefault(name, []).extend(res["runs_s"])

    rows = []
    t_med = statistics.median(torch_times) if torch_times else None
    if torch_times:
        rows.append((f"PyTorch {torch_version} (`F.conv3d`, {args.threads} threads)", t_med, min(torch_times), "1.00"))
    labels = {
        "direct": "Rust direct SIMD kernel",
        "im2col": "Rust im2col + candle matmul",
        "composite": "Rust composite (candle conv2d per kernel depth)",
        "auto": "Rust `conv3d` (auto)",
    }
    for name in args.impls.split(","):
        name = name.strip()
        label = labels.get(name, name)
        if name in rust_times:
            med = statistics.median(rust_times[name])
            ratio = f"{t_med / med:.2f}" if t_med else "–"
            rows.append((label, med, min(rust_times[name]), ratio))
        elif name in rust_errors or "rust" in rust_errors:
            rows.append((label, None, None, "error: " + rust_errors.get(name, rust_errors.get("rust", ""))[:200]))

    print(f"conv3d forward, input 1×{c}×{n}³, weight {c}×{c}×3³, padding 1, bias — {flops / 1e9:.1f} GFLOP")
    print()
    print(f"Machine: {cpu_model()}, {os.cpu_count()} cores; Rust threads {rust_meta.get('threads', '?')}, "
          f"direct kernel ISA {rust_meta.get('cpu_kernel', '?')}; {args.rounds} rounds × {args.reps} runs "
          f"(+{args.warmup} warm-up) per side, alternating.")
    print()
    print("| implementation | median (s) | best (s) | GFLOP/s (median) | PyTorch median / this |")
    print("|---|---:|---:|---:|---:|")
    for label, med, best, ratio in rows:
        if med is None:
            print(f"| {label} | – | – | – | {ratio} |")
        else:
            print(f"| {label} | {med:.3f} | {best:.3f} | {flops / med / 1e9:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
