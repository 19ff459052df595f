#!/usr/bin/env python3
"""Rust vs Python on the same work: NIfTI loading, 3D SSIM, marching cubes.

    /opt/lwpy/bin/python scripts/bench_compare.py [--reps 5] [--warmup 1] [--tasks nifti,ssim,mc]
                                                   [--workdir DIR] [--skip-python] [--skip-rust]

Makes the inputs once (into --workdir, reused when the files are there; default a temporary
folder that is removed afterwards):

* vol256_i16.nii.gz  a smooth random 256^3 int16 volume (nibabel);
* ssim_a.npy, ssim_b.npy  two 128x160x128 float32 volumes, a smooth field and a noisy copy;
* sdf256.npy / sdf256.nii  a 256^3 float32 signed distance field of spheres and boxes
  (the .npy for Python, the .nii for Rust; the same array, NIfTI x = numpy axis 0).

Then runs `cargo bench --bench io_and_metrics -- ...` (benches/io_and_metrics.rs) once per
task, the same work in Python (nibabel `np.asarray(img.dataobj)`, skimage
`structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=R)`, skimage `marching_cubes(sdf, 0.0)`) with the same warm-up and repetitions, and
prints a Markdown table of medians with the speed-up (Python / Rust), the machine's core count
and the library versions. A task that fails on either side shows "error: ..." in its cell.
Environment variables (CARGO_TARGET_DIR, RAYON_NUM_THREADS, OPENBLAS_CORETYPE, ...) are passed
through unchanged.
"""
import argparse
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = pathlib.Path(__file__).resolve().parent.parent
TASKS = {
    "nifti": ("nifti_read", "load 256³ int16 .nii.gz"),
    "ssim": ("ssim_3d", "3D SSIM 128×160×128 (σ=1.5)"),
    "mc": ("marching_cubes", "marching cubes 256³ SDF"),
}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- inputs


def make_inputs(work: pathlib.Path, tasks):
    import numpy as np
    from scipy.ndimage import gaussian_filter

    files = {}
    if "nifti" in tasks:
        p = work / "vol256_i16.nii.gz"
        if not p.exists():
            import nibabel as nib

            log("making", p.name)
            rng = np.random.default_rng(10)
            f = gaussian_filter(rng.standard_normal((256, 256, 256), dtype=np.float32), 4.0)
            f = (f - f.mean()) / f.std()
            data = np.clip(800 * f + 300, -1024, 3071).astype(np.int16)
            img = nib.Nifti1Image(data, np.diag([0.8, 0.8, 1.0, 1.0]))
            img.set_data_dtype(np.int16)
            nib.save(img, str(p))
        files["nifti"] = p
    if "ssim" in tasks:
        pa, pb = work / "ssim_a.npy", work / "ssim_b.npy"
        if not (pa.exists() and pb.exists()):
            log("making", pa.name, pb.name)
            rng = np.random.default_rng(11)
            a = gaussian_filter(rng.standard_normal((128, 160, 128)), 3.0)
            a = (100 * (a - a.min()) / (a.max() - a.min())).astype(np.float32)
            b = (a + 5 * rng.standard_normal(a.shape)).astype(np.float32)
            np.save(pa, a)
            np.save(pb, b)
        files["ssim"] = (pa, pb)
    if "mc" in tasks:
        pn, pi = work / "sdf256.npy", work / "sdf256.nii"
        if not (pn.exists() and pi.exists()):
            import nibabel as nib

            log("making", pn.name, pi.name)
            n = 256
            x, y, z = np.meshgrid(*(np.arange(n, dtype=np.float32),) * 3, indexing="ij")
            d = np.full((n, n, n), np.inf, dtype=np.float32)
            for c, r in [((80, 90, 100), 50), ((170, 160, 150), 60), ((128, 60, 190), 35)]:
                d = np.minimum(d, np.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) - r)
            for c, h in [((70, 190, 70), (40, 30, 25)), ((190, 70, 60), (25, 45, 35))]:
                q = [np.abs(v - cv) - hv for v, cv, hv in zip((x, y, z), c, h)]
                outside = np.sqrt(sum(np.maximum(qi, 0) ** 2 for qi in q))
                inside = np.minimum(np.maximum(np.maximum(q[0], q[1]), q[2]), 0)
                d = np.minimum(d, outside + inside)
            d = np.ascontiguousarray(d, dtype=np.float32)
            np.save(pn, d)
            img = nib.Nifti1Image(d, np.eye(4))
            img.set_data_dtype(np.float32)
            nib.save(img, str(pi))
        files["mc"] = (pn, pi)
    return files


# ---------------------------------------------------------------- timing


def time_it(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    runs, check = [], None
    for _ in range(reps):
        t = time.perf_counter()
        check = fn()
        runs.append(time.perf_counter() - t)
    return {"median_s": statistics.median(runs), "best_s": min(runs), "runs_s": runs, "check": check}


def python_side(task, files, args, data_range):
    import numpy as np

    if task == "nifti":
        import nibabel as nib

        def f():
            arr = np.asarray(nib.load(str(files["nifti"])).dataobj)
            return {"shape": list(arr.shape), "dtype": str(arr.dtype)}

        return time_it(f, args.warmup, args.reps)
    if task == "ssim":
        from skimage.metrics import structural_similarity

        a, b = (np.load(p) for p in files["ssim"])

        def f():
            s = structural_similarity(
                a, b, data_range=data_range, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
            )
            return {"ssim": float(s)}

        return time_it(f, args.warmup, args.reps)
    if task == "mc":
        from skimage.measure import marching_cubes

        sdf = np.load(files["mc"][0])

        def f():
            verts, faces, _normals, _values = marching_cubes(sdf, 0.0)
            return {"vertices": len(verts), "triangles": len(faces)}

        return time_it(f, args.warmup, args.reps)
    raise ValueError(task)


def rust_side(task, files, args, data_range):
    cmd = ["cargo", "bench", "--quiet", "--manifest-path", args.manifest_path, "--bench", "io_and_metrics", "--"]
    if task == "nifti":
        cmd += ["--nifti", str(files["nifti"])]
    elif task == "ssim":
        cmd += ["--ssim-a", str(files["ssim"][0]), "--ssim-b", str(files["ssim"][1]), "--data-range", repr(data_range)]
    elif task == "mc":
        cmd += ["--sdf", str(files["mc"][1])]
    cmd += ["--reps", str(args.reps), "--warmup", str(args.warmup)]
    log("$", " ".join(cmd))
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        tail = " | ".join(p.stderr.strip().splitlines()[-4:])
        raise RuntimeError(f"cargo bench exited {p.returncode}: {tail}")
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError("cargo bench printed no JSON")
    report = json.loads(lines[-1])
    key = TASKS[task][0]
    res = report["tasks"].get(key)
    if res is None:
        raise RuntimeError(f"no result for {key}")
    if "error" in res:
        raise RuntimeError(res["error"])
    res["threads"] = report.get("threads")
    return res


# ---------------------------------------------------------------- report


def versions():
    v = {"python": platform.python_version()}
    for mod in ["numpy", "scipy", "skimage", "nibabel"]:
        try:
            v[mod] = __import__(mod).__version__
        except Exception as e:  # noqa: BLE001
            v[mod] = f"missing ({e.__class__.__name__})"
    try:
        v["rustc"] = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError as e:
        v["rustc"] = f"missing ({e})"
    return v


def fmt_time(r):
    if isinstance(r, str):
        return r
    return f"{r['median_s']:.4f}"


def short_error(e):
    msg = str(e).strip().replace("\n", " ").replace("|", "/")
    return "error: " + (msg[:160] + "…" if len(msg) > 160 else msg)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--tasks", default="nifti,ssim,mc", help="comma-separated subset of nifti,ssim,mc")
    ap.add_argument("--workdir", help="keep the generated inputs here (reused next time)")
    ap.add_argument("--skip-python", action="store_true")
    ap.add_argument("--skip-rust", action="store_true")
    ap.add_argument("--json", help="also write the raw results to this file")
    ap.add_argument("--manifest-path", default=str(ROOT / "Cargo.toml"), help="Cargo.toml to bench (default: this repo)")
    args = ap.parse_args()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    for t in tasks:
        if t not in TASKS:
            ap.error(f"unknown task {t!r}")

    tmp = None
    if args.workdir:
        work = pathlib.Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="lw-bench-")
        work = pathlib.Path(tmp)
    try:
        results = {t: {} for t in tasks}
        try:
            files = make_inputs(work, tasks)
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            files = None
            for t in tasks:
                results[t] = {"rust": short_error(f"making inputs: {e}"), "python": short_error(f"making inputs: {e}")}
        data_range = None
        if files and "ssim" in tasks:
            import numpy as np

            a, b = (np.load(p) for p in files["ssim"])
            data_range = float(max(a.max(), b.max())) - float(min(a.min(), b.min()))
        if files:
            for t in tasks:
                for side, fn, skip in [("rust", rust_side, args.skip_rust), ("python", python_side, args.skip_python)]:
                    if skip:
                        results[t][side] = "skipped"
                        continue
                    log(f"[{side}] {t}")
                    try:
                        results[t][side] = fn(t, files, args, data_range)
                    except Exception as e:  # noqa: BLE001
                        traceback.print_exc()
                        results[t][side] = short_error(e)
        print_table(tasks, results, args, data_range)
        if args.json:
            pathlib.Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def print_table(tasks, results, args, data_range):
    cores = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cores
    threads = next(
        (results[t]["rust"].get("threads") for t in tasks if isinstance(results[t].get("rust"), dict)), None
    )
    print()
    print(f"Median of {args.reps} runs (after {args.warmup} warm-up), seconds. Speed-up = Python / Rust.")
    print()
    print("| task | Rust median (s) | Python median (s) | speed-up | check |")
    print("|---|---:|---:|---:|---|")
    for t in tasks:
        r, p = results[t].get("rust", "n/a"), results[t].get("python", "n/a")
        ratio = "—"
        if isinstance(r, dict) and isinstance(p, dict) and r["median_s"] > 0:
            ratio = f"{p['median_s'] / r['median_s']:.1f}×"
        check = ""
        if t == "ssim" and isinstance(r, dict) and isinstance(p, dict):
            rs, ps = r["check"]["ssim"], p["check"]["ssim"]
            check = f"SSIM rust {rs:.7f} / skimage {ps:.7f} (Δ {abs(rs - ps):.1e})"
        elif t == "mc" and isinstance(r, dict) and isinstance(p, dict):
            check = f"triangles rust {r['check']['triangles']} / skimage {p['check']['triangles']}"
        elif t == "nifti" and isinstance(r, dict):
            check = f"voxels {r['check'].get('voxels')}"
        print(f"| {TASKS[t][1]} | {fmt_time(r)} | {fmt_time(p)} | {ratio} | {check} |")
    print()
    print(f"Machine: {platform.machine()}, {cores} logical cores ({usable} usable), {platform.platform()}")
    print(f"Rust threads (rayon): {threads if threads is not None else 'n/a'}; scipy/skimage run these tasks on one thread")
    if data_range is not None:
        print(f"SSIM data_range: {data_range:.6g}")
    print("Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))


if __name__ == "__main__":
    main()
