#!/usr/bin/env python3
"""Rust (candle + latent_workbench) vs PyTorch on the CPU: 3D convolution forward, or a whole
MONAI AutoencoderKL decode at LDAE's size.

    /opt/torchpy/bin/python scripts/bench_inference.py [--size 64] [--channels 64] [--reps 5]
        [--warmup 1] [--rounds 3] [--impls direct,im2col,composite] [--threads N]
        [--rust-bin PATH] [--skip-python] [--skip-rust]
    /opt/torchpy/bin/python scripts/bench_inference.py --task aekl_decode [--reps 1] [--warmup 0]
        [--rounds 1] [--threads N] [--rust-bin PATH]

`--task aekl_decode`: `AutoencoderKL.decode` (monai-generative) of a 1×3×16×20×16 latent into a
1×1×128×160×128 volume with LDAE's configuration (num_channels 64/128/128/128, two ResBlocks per
level, no attention, GroupNorm 32, eps 1e-6) and torch's default random initialisation (seed 0).
The state dict and the latent go to a temporary safetensors file that the Rust bench loads, so
both sides decode the same latent with the same weights; the Rust output comes back and its
relative error against PyTorch's is printed with the timings and a per-block time profile of
both decoders. Defaults for this task: --reps 1 --warmup 0 --rounds 1 (≈7 TFLOP per decode).

The conv3d task (default):

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
import statistics
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


from bench_common import cpu_model, log  # noqa: E402  (sibling module)


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


def rust_round(args, cmd_args=None):
    if cmd_args is None:
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


# LDAE's autoencoder (shared/research/ldae.md, config/aekl.yaml).
LDAE_AEKL = dict(
    spatial_dims=3, in_channels=1, out_channels=1, num_channels=(64, 128, 128, 128), latent_channels=3,
    num_res_blocks=2, norm_num_groups=32, norm_eps=1e-6, attention_levels=(False, False, False, False),
    with_encoder_nonlocal_attn=False, with_decoder_nonlocal_attn=False,
)
LDAE_LATENT = (1, 3, 16, 20, 16)


def torch_decode(model, z, per_block):
    """`model.decode(z)` block by block, adding each block's time to per_block."""
    import torch

    t = time.perf_counter()
    h = model.post_quant_conv(z)
    for i, block in enumerate(model.decoder.blocks):
        h = block(h)
        now = time.perf_counter()
        per_block[i] = now - t
        t = now
    return h


def block_names(model):
    return [type(b).__name__ + (f"({b.in_channels}→{b.out_channels})" if hasattr(b, "out_channels") else "")
            for b in model.decoder.blocks]


def decode_main(args):
    import torch
    from safetensors.torch import load_file, save_file
    from generative.networks.nets import AutoencoderKL

    reps = args.reps or 1
    warmup = 0 if args.warmup is None else args.warmup
    rounds = args.rounds or 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = AutoencoderKL(**LDAE_AEKL).eval()
    z = torch.randn(*LDAE_LATENT)
    names = block_names(model)
    work = tempfile.mkdtemp(prefix="lw_bench_aekl_")
    weights = os.path.join(work, "aekl_ldae_random.safetensors")
    rust_out = os.path.join(work, "rust_decoded.safetensors")
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    sd["io.z"] = z
    save_file(sd, weights)
    if not args.skip_rust and not args.rust_bin:
        log("building the bench (cargo bench --no-run) ...")
        subprocess.run(["cargo", "bench", "--quiet", "--bench", "inference", "--no-run"], cwd=ROOT, check=False)

    torch_times, rust_times, rust_meta, rust_error = [], [], {}, None
    torch_blocks, rust_blocks = [0.0] * len(names), None
    reference = None
    for r in range(rounds):
        if not args.skip_python:
            log(f"round {r + 1}/{rounds}: pytorch decode ...")
            with torch.no_grad():
                for _ in range(warmup):
                    torch_decode(model, z, [0.0] * len(names))
                for _ in range(reps):
                    t = time.perf_counter()
                    reference = torch_decode(model, z, torch_blocks)
                    torch_times.append(time.perf_counter() - t)
        if not args.skip_rust:
            log(f"round {r + 1}/{rounds}: rust decode ...")
            cmd_args = ["--task", "aekl_decode", "--weights", weights, "--out", rust_out, "--reps", str(reps),
                        "--warmup", str(warmup)]
            try:
                out = rust_round(args, cmd_args)
            except Exception as e:  # keep going; the table shows the error
                rust_error = str(e)
                break
            if "error" in out:
                rust_error = out["error"]
                break
            rust_times += out["runs_s"]
            rust_blocks = out["per_block_s"]
            rust_meta = {k: out.get(k) for k in ("threads", "cpu_kernel")}

    rel = None
    if reference is not None and rust_times:
        ours = load_file(rust_out)["decoded"]
        rel = float((ours - reference).abs().max() / reference.abs().max().clamp_min(1e-6))
    for f in (weights, rust_out):
        if os.path.exists(f):
            os.remove(f)
    os.rmdir(work)

    t_med = statistics.median(torch_times) if torch_times else None
    r_med = statistics.median(rust_times) if rust_times else None
    print("MONAI AutoencoderKL decode, LDAE config (64/128/128/128, 2 ResBlocks/level, no attention), "
          f"latent {'×'.join(map(str, LDAE_LATENT))} → 1×1×128×160×128, random weights (torch default init, seed 0)")
    print()
    print(f"Machine: {cpu_model()}, {os.cpu_count()} cores; PyTorch threads {args.threads}; Rust threads "
          f"{rust_meta.get('threads', '?')}, direct kernel ISA {rust_meta.get('cpu_kernel', '?')}; {rounds} round(s) × "
          f"{reps} run(s) (+{warmup} warm-up) per side, alternating.")
    print()
    print("| implementation | median (s) | best (s) | PyTorch median / this |")
    print("|---|---:|---:|---:|")
    if torch_times:
        print(f"| PyTorch {torch.__version__} + monai-generative `AutoencoderKL.decode` | {t_med:.2f} | "
              f"{min(torch_times):.2f} | 1.00 |")
    if rust_times:
        ratio = f"{t_med / r_med:.2f}" if t_med else "–"
        print(f"| Rust `AutoencoderKL::decode` (candle + core::ops) | {r_med:.2f} | {min(rust_times):.2f} | {ratio} |")
    elif rust_error:
        print(f"| Rust `AutoencoderKL::decode` | – | – | error: {rust_error[:300]} |")
    if rel is not None:
        print()
        print(f"Rust vs PyTorch output: relative error {rel:.2e} (max abs diff / max |torch|)")
    print()
    print("Time per decoder block (last timed run; Rust block 0 includes post_quant_conv):")
    print()
    print("| block | PyTorch (s) | Rust (s) |")
    print("|---|---:|---:|")
    for i, name in enumerate(names):
        tb = f"{torch_blocks[i]:.2f}" if torch_times else "–"
        rb = f"{rust_blocks[i]:.2f}" if rust_blocks else "–"
        print(f"| {i} {name} | {tb} | {rb} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=["conv3d", "aekl_decode"], default="conv3d")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--reps", type=int, default=None, help="timed runs per round (5; aekl_decode 1)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed runs per round (1; aekl_decode 0)")
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds (3; aekl_decode 1)")
    ap.add_argument("--impls", default="direct,im2col,composite")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rust-bin", default=None)
    ap.add_argument("--skip-python", action="store_true")
    ap.add_argument("--skip-rust", action="store_true")
    args = ap.parse_args()
    if args.task == "aekl_decode":
        return decode_main(args)
    args.reps = 5 if args.reps is None else args.reps
    args.warmup = 1 if args.warmup is None else args.warmup
    args.rounds = 3 if args.rounds is None else args.rounds

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
