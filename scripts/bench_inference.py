#!/usr/bin/env python3
"""Rust (candle + latent_workbench) vs PyTorch on the CPU: 3D convolution forward, a whole
MONAI AutoencoderKL decode at LDAE's size, or one shifted DDIM step of LDAE's full-size decoder.

    /opt/torchpy/bin/python scripts/bench_inference.py [--size 64] [--channels 64] [--reps 5]
        [--warmup 1] [--rounds 3] [--impls direct,im2col,composite] [--threads N]
        [--rust-bin PATH] [--skip-python] [--skip-rust]
    /opt/torchpy/bin/python scripts/bench_inference.py --task aekl_decode [--reps 1] [--warmup 0]
        [--rounds 1] [--threads N] [--rust-bin PATH]
    LDAE_REPO=/tmp/ldae_ref /opt/torchpy/bin/python scripts/bench_inference.py --task ldae_ddim_step
        [--reps 1] [--warmup 0] [--rounds 1] [--steps 20] [--index 10] [--threads N] [--rust-bin PATH]

`--task ldae_ddim_step`: one DDIM sampling step with LDAE's gradient-estimator shift, run by LDAE's own
reference code: `ShiftUNet` (src/ldae/nets/shift_unet.py) built with the `unet_args` of
config/ldae_repr_learn.yaml (base 256, multipliers 1/2/3, 2 blocks, attention at rates 2 and 4, one
head; 865 M parameters) and `latent_dim` = `enc_args.emb_chans` (768), then `DDIM.shift_ddim_sample`
(src/ldae/diffusion/ddim.py) on the linear T = 1000 schedule respaced by
`GaussianDiffusion.get_ddim_betas_and_timestep_map("ddim20")` — our interactive step count
(`DEFAULT_STEPS`; the paper's 100 changes only the coefficients, not the work) — from entry --index
(10: model timestep 499) to entry index − 1. The input is a full-size latent 1×3×32×40×32 (LDAE's
128×160×128 grid / 4) and a 1×768 semantic code, both `torch.randn` (seed 0). Weights: torch's
default initialisation at seed 0; the convolutions that LDAE zero-initialises (`zero_module`: the
output convolutions of ε̂ and G, the last convolution of every ResBlock, the attention output
projections) are re-drawn with their layer's default `reset_parameters()` so that ε̂ and G are not
identically zero and the output comparison means something (the work is the same either way). The
model runs in `eval()` mode (LDAE leaves dropout 0.1 in train mode after construction). The state
dict (LDAE's key names, 3.5 GB) and the inputs `io.x_t`, `io.y`, `io.t` (the model timestep),
`io.steps`, `io.index` go to a temporary safetensors file (under $LW_BENCH_TMP, default /var/tmp)
for `cargo bench --bench inference -- --task ldae_ddim_step`, which runs the same step through
`Ddim::step` with `DdimOptions::ldae(Shift::FromDenoiser)` (the path of every decode step of our
interpolation); its `x_prev`, ε̂ and G come back and their relative errors against the reference
are printed with the timings (the whole step, and the network's forward pass alone). Defaults for
this task: --reps 1 --warmup 0 --rounds 1 (several TFLOP per step).

LDAE's code is not part of this repository: extract it outside, e.g. from a mirror of
GabrieleLozupone/LDAE (tested with 3be7637):

    git --git-dir=<mirror>/repo archive HEAD src config | tar x -C /tmp/ldae_ref

and point LDAE_REPO at it (default /tmp/ldae_ref). Only the decoder modules are imported, with the
package stand-ins of tests/fixtures/make_ldae_parity.py (empty `src`, `src.ldae`, `src.ldae.nets`,
`src.ldae.diffusion` packages, so that `src/ldae/__init__.py` and its wandb/lightning/monai imports
are skipped); torchvision and lightning are not needed here. Needs torch, numpy, tqdm, PyYAML and
safetensors (tested: torch 2.15.0 CPU, numpy 2.4.6, tqdm 4.70.1, PyYAML 6.0.4, safetensors 0.8.0).

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


def rust_task(args, task, weights, out_path, reps, warmup):
    """One Rust round of a weights-file task: (its JSON, None), or (None, why it failed) so that the
    caller stops and the table shows the error."""
    cmd_args = ["--task", task, "--weights", weights, "--out", out_path, "--reps", str(reps), "--warmup", str(warmup)]
    try:
        out = rust_round(args, cmd_args)
    except Exception as e:  # keep going; the table shows the error
        return None, str(e)
    if "error" in out:
        return None, out["error"]
    return out, None


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
            out, rust_error = rust_task(args, "aekl_decode", weights, rust_out, reps, warmup)
            if rust_error:
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


LDAE_STEP_LATENT = (1, 3, 32, 40, 32)


def import_ldae_decoder(repo):
    """LDAE's ShiftUNet, GaussianDiffusion and DDIM from an extracted checkout, without its heavy stack
    (the package stand-ins of tests/fixtures/make_ldae_parity.py, decoder modules only)."""
    import sys
    import types

    if not os.path.isdir(os.path.join(repo, "src", "ldae")):
        raise SystemExit(f"LDAE_REPO={repo} does not contain src/ldae (see the docstring: --task ldae_ddim_step)")
    sys.path.insert(0, repo)
    for pkg in ["src", "src.ldae", "src.ldae.nets", "src.ldae.diffusion"]:
        m = types.ModuleType(pkg)
        m.__path__ = [os.path.join(repo, *pkg.split("."))]
        sys.modules[pkg] = m
    from src.ldae.nets.shift_unet import ShiftUNet
    from src.ldae.diffusion.gaussian_diffusion import GaussianDiffusion
    from src.ldae.diffusion.ddim import DDIM

    return ShiftUNet, GaussianDiffusion, DDIM


def ldae_decoder_args(repo):
    """`unet_args` and `latent_dim` (= `enc_args.emb_chans`) of LDAE's representation-learning config."""
    import yaml

    with open(os.path.join(repo, "config", "ldae_repr_learn.yaml")) as f:
        init = yaml.safe_load(f)["fit"]["model"]["init_args"]
    return dict(init["unet_args"]), int(init["enc_args"]["emb_chans"]), dict(init["timesteps_args"])


def rel_error(ours, ref):
    return float((ours - ref).abs().max() / ref.abs().max().clamp_min(1e-12))


def ldae_step_main(args):
    import torch
    import torch.nn as nn
    from safetensors.torch import load_file, save_file

    reps = args.reps or 1
    warmup = 0 if args.warmup is None else args.warmup
    rounds = args.rounds or 1
    repo = os.environ.get("LDAE_REPO", "/tmp/ldae_ref")
    ShiftUNet, GaussianDiffusion, DDIM = import_ldae_decoder(repo)
    unet_args, latent_dim, timesteps_args = ldae_decoder_args(repo)
    torch.set_num_threads(args.threads)

    log("building LDAE's ShiftUNet (full size) ...")
    torch.manual_seed(0)
    net = ShiftUNet(latent_dim=latent_dim, **unet_args)
    redrawn = 0
    with torch.no_grad():
        for m in net.modules():  # zero_module'd layers get their default init back (see the docstring)
            if isinstance(m, (nn.Conv1d, nn.Conv3d, nn.Linear)) and not m.weight.any():
                m.reset_parameters()
                redrawn += 1
    net.eval()
    n_params = sum(p.numel() for p in net.parameters())
    x_t = torch.randn(*LDAE_STEP_LATENT)
    y = torch.randn(1, latent_dim)

    gd = GaussianDiffusion(timesteps_args, "cpu")
    style = f"ddim{args.steps}"
    new_betas, timestep_map = gd.get_ddim_betas_and_timestep_map(style, gd.alphas_cumprod.cpu().numpy())
    ddim = DDIM(new_betas, timestep_map, "cpu")
    index = args.index
    if not 1 <= index < len(timestep_map):
        raise SystemExit(f"--index must be in 1..{len(timestep_map) - 1} for {style}")
    t_model = int(timestep_map[index])
    t_index = torch.tensor([index])

    unet_times, recorded = [], {}

    def decoder(x, t, z):  # what shift_ddim_sample calls: LDAE's net, timed, outputs kept
        start = time.perf_counter()
        eps, g = net(x, t, z)
        unet_times.append(time.perf_counter() - start)
        recorded["eps"], recorded["g"] = eps, g
        return eps, g

    work = tempfile.mkdtemp(prefix="lw_bench_ldae_", dir=os.environ.get("LW_BENCH_TMP", "/var/tmp"))
    weights = os.path.join(work, "ldae_shift_unet_random.safetensors")
    rust_out = os.path.join(work, "rust_step.safetensors")
    if not args.skip_rust:
        log(f"writing {n_params / 1e6:.0f} M parameters to {weights} ...")
        sd = {k: v.contiguous() for k, v in net.state_dict().items()}
        sd.update({"io.x_t": x_t, "io.y": y, "io.t": torch.tensor([float(t_model)]),
                   "io.steps": torch.tensor([float(args.steps)]), "io.index": torch.tensor([float(index)])})
        save_file(sd, weights)
        del sd
        if not args.rust_bin:
            log("building the bench (cargo bench --no-run) ...")
            subprocess.run(["cargo", "bench", "--quiet", "--bench", "inference", "--no-run"], cwd=ROOT, check=False)

    torch_times, torch_unet, rust_times, rust_unet, rust_meta, rust_error = [], [], [], [], {}, None
    reference = None
    try:
        for r in range(rounds):
            if not args.skip_python:
                log(f"round {r + 1}/{rounds}: pytorch (LDAE reference) DDIM step ...")
                with torch.no_grad():
                    for _ in range(warmup):
                        ddim.shift_ddim_sample(decoder, y, x_t, t_index)
                    unet_times.clear()
                    for _ in range(reps):
                        start = time.perf_counter()
                        x_prev = ddim.shift_ddim_sample(decoder, y, x_t, t_index)
                        torch_times.append(time.perf_counter() - start)
                    torch_unet += unet_times
                    reference = {"x_prev": x_prev, "eps": recorded["eps"], "g": recorded["g"]}
            if not args.skip_rust:
                log(f"round {r + 1}/{rounds}: rust DDIM step ...")
                out, rust_error = rust_task(args, "ldae_ddim_step", weights, rust_out, reps, warmup)
                if rust_error:
                    break
                rust_times += out["runs_s"]
                rust_unet += out["unet_forward_s"]
                rust_meta = {k: out.get(k) for k in ("threads", "cpu_kernel", "load_s")}
        errors = {}
        if reference is not None and rust_times:
            ours = load_file(rust_out)
            errors = {k: rel_error(ours[k], reference[k]) for k in ("x_prev", "eps", "g")}
    finally:
        for f in (weights, rust_out):
            if os.path.exists(f):
                os.remove(f)
        os.rmdir(work)

    t_med = statistics.median(torch_times) if torch_times else None
    r_med = statistics.median(rust_times) if rust_times else None
    ua = unet_args
    print(f"LDAE decoder, one shifted DDIM step (ShiftUNet ε̂ and G + update, clip, shift), full size: base "
          f"{ua['base_channel']}, multipliers {'/'.join(map(str, ua['channel_multiplier']))}, "
          f"{ua['num_residual_blocks_of_a_block']} blocks/level, attention at rates "
          f"{'/'.join(map(str, ua['attention_resolutions']))}, {ua['num_heads']} head; {n_params / 1e6:.0f} M "
          f"parameters; latent {'×'.join(map(str, LDAE_STEP_LATENT))}, y_sem 1×{latent_dim}; {style} entry "
          f"{index} → {index - 1} (model timestep {t_model}); random weights (torch default init, seed 0, {redrawn} "
          "zero-initialised layers re-drawn)")
    print()
    print(f"Machine: {cpu_model()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end; "
          f"PyTorch threads {args.threads}; Rust threads {rust_meta.get('threads', '?')}, direct kernel ISA "
          f"{rust_meta.get('cpu_kernel', '?')}; {rounds} round(s) × {reps} run(s) (+{warmup} warm-up) per side, "
          "alternating.")
    print()
    print("| implementation | step median (s) | step best (s) | network forward median (s) | "
          "PyTorch median / this |")
    print("|---|---:|---:|---:|---:|")
    if torch_times:
        print(f"| PyTorch {torch.__version__}, LDAE `ShiftUNet` + `DDIM.shift_ddim_sample` | {t_med:.2f} | "
              f"{min(torch_times):.2f} | {statistics.median(torch_unet):.2f} | 1.00 |")
    if rust_times:
        ratio = f"{t_med / r_med:.2f}" if t_med else "–"
        print(f"| Rust `ShiftUNet` + `Ddim::step` (candle + core::ops) | {r_med:.2f} | {min(rust_times):.2f} | "
              f"{statistics.median(rust_unet):.2f} | {ratio} |")
    elif rust_error:
        print(f"| Rust `ShiftUNet` + `Ddim::step` | – | – | – | error: {rust_error[:300]} |")
    if errors:
        print()
        print("Rust vs PyTorch, relative error (max abs diff / max |torch|): "
              + ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=["conv3d", "aekl_decode", "ldae_ddim_step"], default="conv3d")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--reps", type=int, default=None, help="timed runs per round (5; aekl_decode/ldae_ddim_step 1)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed runs per round (1; aekl_decode/ldae_ddim_step 0)")
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds (3; aekl_decode/ldae_ddim_step 1)")
    ap.add_argument("--steps", type=int, default=20, help="ldae_ddim_step: DDIM steps of the respaced schedule")
    ap.add_argument("--index", type=int, default=10, help="ldae_ddim_step: schedule entry the step starts from")
    ap.add_argument("--impls", default="direct,im2col,composite")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rust-bin", default=None)
    ap.add_argument("--skip-python", action="store_true")
    ap.add_argument("--skip-rust", action="store_true")
    args = ap.parse_args()
    if args.task == "aekl_decode":
        return decode_main(args)
    if args.task == "ldae_ddim_step":
        return ldae_step_main(args)
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
