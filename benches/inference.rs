//! A self-timed inference benchmark (no criterion) on the CPU. `scripts/bench_inference.py` runs
//! this and the same work in PyTorch and prints a comparison table. Three tasks:
//!
//! ```text
//! cargo bench --bench inference -- [--task conv3d] [--size 64] [--channels 64] [--reps 5] [--warmup 1]
//!                                  [--impls direct,im2col,composite]
//! cargo bench --bench inference -- --task aekl_decode [--reps 1] [--warmup 0]
//!                                  [--weights FILE.safetensors] [--out FILE.safetensors]
//! cargo bench --bench inference -- --task ldae_ddim_step [--reps 1] [--warmup 0] [--steps 20] [--index 10]
//!                                  [--weights FILE.safetensors] [--out FILE.safetensors]
//! cargo bench --bench inference -- --task m2vs_grid [--size 128] [--batch 100000,10000]
//! cargo bench --bench inference -- --task cuda_check
//! ```
//!
//! Every task takes `--device cpu|cuda` (default `cpu`, or `LW_BENCH_DEVICE`): where the model
//! runs. `cuda` needs a build with `--features cuda` (docs/cuda-build.md). On CUDA, conv3d's
//! `auto` is the `composite` path (the CPU kernels `direct` and `im2col` report an error), and
//! every timing waits for the device (`Device::synchronize`) before it stops the clock.
//!
//! `cuda_check`: small models with the same deterministic weights and inputs on the CPU and on
//! the `--device` (default `cuda` for this task): conv3d, an `AutoencoderKL` decode with LDAE's
//! configuration, a small `ShiftUNet` DDIM step and a Motion2VecSets occupancy grid. Prints each
//! output's maximum absolute difference and `ok` when all are within tolerance (exit 1 if not).
//!
//! `m2vs_grid`: Motion2VecSets' released shape autoencoder (`kl_d512_m512_l8`, deterministic
//! pseudo-random weights) evaluating the occupancy of one frame on a `--size`³ grid over
//! [-0.55, 0.55]³ in query batches of each `--batch`, twice: with the decoder's latent-only trunk
//! (24 self-attention blocks over the 512 latents) computed once and cached, and recomputed for
//! every batch as the reference's `decode(z, queries)` does (the same logits: tests/m2vs_parity.rs).
//!
//! `ldae_ddim_step`: one shifted DDIM sampling step of LDAE's full-size decoder (`ShiftUNet` with
//! `UNetConfig::default()`, LDAE's `unet_args`, and a 768-wide semantic code) on a 1×3×32×40×32
//! latent: the forward pass (ε̂, G) and the update with LDAE's shift and clipping, through
//! `Ddim::step` with `DdimOptions::ldae(Shift::FromDenoiser)` — the code path of every decode step
//! of `LdaeModel::sample_latent` (interpolation, manipulation). The schedule is LDAE's linear
//! T = 1000 respaced to `--steps` ("ddimS"), the step goes from entry `--index` to `--index − 1`.
//! `--weights` holds the decoder's state dict (LDAE's key names) and the inputs `io.x_t`, `io.y`,
//! `io.t` (the model timestep, checked against the schedule) and optionally `io.steps`/`io.index`
//! (which then override the flags); without it, deterministic pseudo-random weights and inputs.
//! With `--out` writes `x_prev`, `pred_x0`, `eps` (ε̂) and `g` (G) of the last run.
//!
//! `aekl_decode`: one `AutoencoderKL::decode` of LDAE's latent size, 1×3×16×20×16 → 1×1×128×160×128,
//! with LDAE's configuration (`AutoencoderKlConfig::ldae()`). The weights and the latent `io.z` come
//! from `--weights` (written by `bench_inference.py`, so that both sides decode the same thing), or
//! are deterministic pseudo-random values. Reports the decode time, the time spent in each decoder
//! block (a profile), and with `--out` writes the decoded volume as `decoded` for comparison.
//!
//! `conv3d`:
//!
//! The input is `1 × C × N³` (default 1×64×64³), the weight `C × C × 3³` with bias, padding 1,
//! stride 1, as `torch.nn.functional.conv3d(x, w, b, padding=1)`. Each option may instead come
//! from `LW_BENCH_SIZE`, `LW_BENCH_CHANNELS`, `LW_BENCH_REPS`, `LW_BENCH_WARMUP`,
//! `LW_BENCH_IMPLS`. Implementations: `auto` (what `conv3d` picks), `direct` (SIMD direct
//! kernel), `im2col` (im2col + candle matmul), `composite` (sum of candle conv2d over kernel
//! depth — what other devices get). Unavailable ones report an `error`.
//!
//! Prints one JSON object on stdout: per implementation `median_s`, `best_s`, every run's time,
//! GFLOP/s at the median, and the maximum difference from the first implementation's output.

use candle_core::{DType, Device, Tensor};
use latent_workbench::core::diffusion::{Ddim, DdimOptions, Denoiser, End, Shift};
use latent_workbench::core::ops::{Conv3dConfig, Conv3dImpl, conv3d_cpu_kernel, conv3d_with};
use latent_workbench::core::weights::{Checkpoint, LoadOptions, build_model, expected_by, load_checkpoint};
use latent_workbench::methods::ldae::autoencoder::AutoencoderKL;
use latent_workbench::methods::ldae::config::AutoencoderKlConfig;
use latent_workbench::methods::ldae::model::LdaeConfig;
use latent_workbench::methods::ldae::unet::ShiftUNet;
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

struct Args {
    task: String,
    device: Device,
    weights: Option<PathBuf>,
    out: Option<PathBuf>,
    size: usize,
    channels: usize,
    reps: usize,
    warmup: usize,
    impls: Vec<String>,
    /// `ldae_ddim_step`: DDIM steps of the respaced schedule and the entry the step starts from.
    steps: usize,
    index: usize,
    /// `m2vs_grid`: query batch sizes to time.
    batches: Vec<usize>,
}

fn parse_args() -> Result<Args, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let num = |k: &str, v: Option<String>, d: usize| -> Result<usize, String> {
        v.map(|v| v.parse().map_err(|e| format!("{k}: {e}")))
            .transpose()
            .map(|v| v.unwrap_or(d))
    };
    let mut device_name = env("LW_BENCH_DEVICE");
    let mut a = Args {
        task: env("LW_BENCH_TASK").unwrap_or_else(|| "conv3d".into()),
        device: Device::Cpu,
        weights: None,
        out: None,
        size: num("LW_BENCH_SIZE", env("LW_BENCH_SIZE"), 64)?,
        channels: num("LW_BENCH_CHANNELS", env("LW_BENCH_CHANNELS"), 64)?,
        reps: num("LW_BENCH_REPS", env("LW_BENCH_REPS"), 0)?,
        warmup: num("LW_BENCH_WARMUP", env("LW_BENCH_WARMUP"), usize::MAX)?,
        impls: env("LW_BENCH_IMPLS")
            .unwrap_or_else(|| "direct,im2col,composite".into())
            .split(',')
            .map(|s| s.trim().to_string())
            .collect(),
        steps: 20,
        index: 10,
        batches: vec![100_000, 10_000],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--task" => a.task = value()?,
            "--device" => device_name = Some(value()?),
            "--weights" => a.weights = Some(value()?.into()),
            "--out" => a.out = Some(value()?.into()),
            "--size" => a.size = num("--size", Some(value()?), 0)?,
            "--channels" => a.channels = num("--channels", Some(value()?), 0)?,
            "--reps" => a.reps = num("--reps", Some(value()?), 0)?,
            "--warmup" => a.warmup = num("--warmup", Some(value()?), 0)?,
            "--impls" => a.impls = value()?.split(',').map(|s| s.trim().to_string()).collect(),
            "--steps" => a.steps = num("--steps", Some(value()?), 0)?,
            "--index" => a.index = num("--index", Some(value()?), 0)?,
            "--batch" => {
                a.batches = value()?
                    .split(',')
                    .map(|b| b.trim().parse::<usize>().map_err(|e| format!("--batch: {e}")))
                    .collect::<Result<_, _>>()?
            }
            // `cargo bench` passes --bench; libtest-style filters are ignored too.
            "--bench" | "--nocapture" => {}
            "-h" | "--help" => {
                eprintln!(
                    "usage: inference [--task conv3d|aekl_decode|ldae_ddim_step|m2vs_grid|cuda_check] \
                     [--device cpu|cuda] [--size N] [--channels C] \
                     [--reps N] [--warmup N] [--impls auto,direct,im2col,composite] [--steps S] [--index I] \
                     [--weights F] [--out F] [--batch B,B]"
                );
                std::process::exit(0);
            }
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            _ => {}
        }
    }
    // Defaults depend on the task: a 7-TFLOP decode (or a multi-TFLOP UNet step) is timed once, after
    // no warm-up.
    let decode = matches!(a.task.as_str(), "aekl_decode" | "ldae_ddim_step" | "m2vs_grid");
    if a.reps == 0 {
        a.reps = if decode { 1 } else { 5 };
    }
    if a.warmup == usize::MAX {
        a.warmup = if decode { 0 } else { 1 };
    }
    if !matches!(
        a.task.as_str(),
        "conv3d" | "aekl_decode" | "ldae_ddim_step" | "m2vs_grid" | "cuda_check"
    ) {
        return Err(format!(
            "unknown task {} (conv3d, aekl_decode, ldae_ddim_step, m2vs_grid, cuda_check)",
            a.task
        ));
    }
    if a.batches.contains(&0) {
        return Err("--batch sizes must be positive".into());
    }
    if a.size == 0 || a.channels == 0 || a.reps == 0 {
        return Err("size, channels and reps must be positive".into());
    }
    let device_name = device_name.unwrap_or_else(|| if a.task == "cuda_check" { "cuda" } else { "cpu" }.into());
    a.device = device_of(&device_name)?;
    Ok(a)
}

/// The device a `--device` name asks for.
fn device_of(name: &str) -> Result<Device, String> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Device::new_cuda(0).map_err(|e| format!("--device cuda: {e}")),
        other => Err(format!("unknown device {other} (cpu, cuda)")),
    }
}

/// The device's name in the JSON output.
fn device_label(dev: &Device) -> &'static str {
    match dev {
        Device::Cpu => "cpu",
        Device::Cuda(_) => "cuda",
        Device::Metal(_) => "metal",
    }
}

/// Waits until the device has finished the queued work (CUDA runs asynchronously), so that a
/// timing covers the computation and not only its launch.
fn sync(dev: &Device) -> candle_core::Result<()> {
    dev.synchronize()
}

fn imp_of(name: &str) -> Result<Conv3dImpl, String> {
    Ok(match name {
        "auto" => Conv3dImpl::Auto,
        "direct" => Conv3dImpl::CpuDirect,
        "im2col" => Conv3dImpl::CpuIm2col,
        "composite" => Conv3dImpl::Composite,
        other => return Err(format!("unknown implementation {other}")),
    })
}

/// Deterministic pseudo-random values in [-0.5, 0.5) (no RNG dependency, same on every run).
fn noise(shape: &[usize], seed: u64, scale: f32) -> candle_core::Result<Tensor> {
    let n: usize = shape.iter().product();
    let mut s = seed ^ 0x9e37_79b9_7f4a_7c15;
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
}

/// Deterministic stand-in weights of the right shapes (torch's default-init scale) for the model
/// `build` makes, when no `--weights` file is given.
fn pseudo_random_model<M>(
    dev: &Device,
    build: impl Fn(candle_nn::VarBuilder<'static>) -> candle_core::Result<M>,
) -> candle_core::Result<M> {
    let expected = expected_by(DType::F32, &build)?;
    let mut tensors = HashMap::new();
    for (i, e) in expected.into_iter().enumerate() {
        let fan_in: usize = e.shape.iter().skip(1).product::<usize>().max(1);
        let t = if e.shape.len() == 1 && e.key.ends_with("weight") {
            Tensor::ones(e.shape.as_slice(), DType::F32, &Device::Cpu)? // GroupNorm scale
        } else if e.key.ends_with("basis") {
            // Motion2VecSets' fixed Fourier basis: all-zero means "computed by the embedding".
            Tensor::zeros(e.shape.as_slice(), DType::F32, &Device::Cpu)?
        } else {
            noise(&e.shape, 100 + i as u64, 2.0 / (fan_in as f32).sqrt())?
        };
        tensors.insert(e.key, t.to_device(dev)?);
    }
    build(candle_nn::VarBuilder::from_tensors(tensors, DType::F32, dev))
}

/// An input tensor of a `--weights` file.
fn io_tensor(ckpt: &Checkpoint, key: &str) -> candle_core::Result<Tensor> {
    ckpt.tensors
        .get(key)
        .cloned()
        .ok_or_else(|| candle_core::Error::msg(format!("{}: no tensor {key}", ckpt.source.display())))
}

fn median_and_best(times: &[f64]) -> (f64, f64) {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    (sorted[sorted.len() / 2], sorted[0])
}

fn run_decode(args: &Args) -> candle_core::Result<Value> {
    let dev = &args.device;
    let cfg = AutoencoderKlConfig::ldae();
    let latent_shape = [1, cfg.latent_channels, 16, 20, 16];
    let (ae, z, source) = match &args.weights {
        Some(path) => {
            let ckpt = load_checkpoint(path, &LoadOptions::default()).map_err(candle_core::Error::wrap)?;
            let z = io_tensor(&ckpt, "io.z")?.to_device(dev)?;
            let (ae, _) = build_model(&ckpt, DType::F32, dev, false, |vb| AutoencoderKL::load(vb, &cfg))
                .map_err(candle_core::Error::wrap)?;
            (ae, z, path.display().to_string())
        }
        None => (
            pseudo_random_model(dev, |vb| AutoencoderKL::load(vb, &cfg))?,
            noise(&latent_shape, 7, 2.0)?.to_device(dev)?,
            "pseudo-random".into(),
        ),
    };
    let blocks = ae.decoder().len();
    // Per decoder block: the time of its last timed run (block 0 = post_quant_conv + first conv).
    let mut per_block = vec![0f64; blocks];
    let mut once = |record: bool| -> candle_core::Result<(f64, Tensor)> {
        let t0 = Instant::now();
        let mut last = t0;
        let y = ae.decode_with(&z, &mut |done, _| {
            if record {
                sync(dev)?;
            }
            let now = Instant::now();
            if record {
                per_block[done - 1] = (now - last).as_secs_f64();
            }
            last = now;
            Ok(())
        })?;
        sync(dev)?;
        Ok((t0.elapsed().as_secs_f64(), y))
    };
    for _ in 0..args.warmup {
        once(false)?;
    }
    let mut times = Vec::with_capacity(args.reps);
    let mut last = None;
    for _ in 0..args.reps {
        let (t, y) = once(true)?;
        times.push(t);
        last = Some(y);
    }
    let y = last.expect("reps > 0");
    if let Some(out) = &args.out {
        candle_core::safetensors::save(&HashMap::from([("decoded".to_string(), y.clone())]), out)?;
    }
    let (median, best) = median_and_best(&times);
    Ok(json!({
        "task": "aekl_decode",
        "device": device_label(dev),
        "latent": z.dims(),
        "output": y.dims(),
        "weights": source,
        "threads": rayon::current_num_threads(),
        "cpu_kernel": conv3d_cpu_kernel(),
        "reps": args.reps,
        "warmup": args.warmup,
        "median_s": median,
        "best_s": best,
        "runs_s": times,
        "per_block_s": per_block,
        "output_abs_max": y.abs()?.max_all()?.to_scalar::<f32>()?,
    }))
}

/// The ShiftUNet as the sampler sees it, keeping the (ε̂, G) of its last call and the time it took
/// (the rest of a step is the DDIM update).
struct Recording<'a> {
    net: &'a ShiftUNet,
    last: RefCell<Option<(Tensor, Tensor, f64)>>,
}

impl Denoiser for Recording<'_> {
    fn predict(&self, x_t: &Tensor, t: &Tensor, cond: Option<&Tensor>) -> candle_core::Result<Tensor> {
        self.net.predict(x_t, t, cond)
    }

    fn predict_with_shift(
        &self,
        x_t: &Tensor,
        t: &Tensor,
        cond: Option<&Tensor>,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        let t0 = Instant::now();
        let (eps, g) = self.net.predict_with_shift(x_t, t, cond)?;
        sync(x_t.device())?;
        let g = g.ok_or_else(|| candle_core::Error::msg("ShiftUNet returned no G"))?;
        *self.last.borrow_mut() = Some((eps.clone(), g.clone(), t0.elapsed().as_secs_f64()));
        Ok((eps, Some(g)))
    }
}

/// A scalar input (`io.steps`, `io.index`) of the `--weights` file, when present.
fn io_count(ckpt: &Checkpoint, key: &str) -> candle_core::Result<Option<usize>> {
    match ckpt.tensors.get(key) {
        None => Ok(None),
        Some(t) => {
            let v = t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            match v.as_slice() {
                [x] if *x >= 0.0 && x.fract() == 0.0 => Ok(Some(*x as usize)),
                _ => Err(candle_core::Error::msg(format!(
                    "{}: {key} must hold one non-negative integer, got {v:?}",
                    ckpt.source.display()
                ))),
            }
        }
    }
}

fn run_ldae_step(args: &Args) -> candle_core::Result<Value> {
    const LATENT_DIM: usize = 768; // LDAE's semantic code (enc_args.emb_chans)
    let dev = &args.device;
    let config = LdaeConfig::official();
    let cfg = config.unet.clone();
    let [c, x, y, z] = config.latent_shape();
    let load_start = Instant::now();
    let (net, x_t, y_sem, t_file, steps, index, source) = match &args.weights {
        Some(path) => {
            let ckpt = load_checkpoint(path, &LoadOptions::default()).map_err(candle_core::Error::wrap)?;
            let (net, _) = build_model(&ckpt, DType::F32, dev, false, |vb| {
                ShiftUNet::load(vb, &cfg, LATENT_DIM)
            })
            .map_err(candle_core::Error::wrap)?;
            let t = io_tensor(&ckpt, "io.t")?
                .flatten_all()?
                .to_dtype(DType::F64)?
                .to_vec1::<f64>()?;
            let steps = io_count(&ckpt, "io.steps")?.unwrap_or(args.steps);
            let index = io_count(&ckpt, "io.index")?.unwrap_or(args.index);
            let (x_t, y_sem) = (
                io_tensor(&ckpt, "io.x_t")?.to_device(dev)?,
                io_tensor(&ckpt, "io.y")?.to_device(dev)?,
            );
            (net, x_t, y_sem, Some(t), steps, index, path.display().to_string())
        }
        None => (
            pseudo_random_model(dev, |vb| ShiftUNet::load(vb, &cfg, LATENT_DIM))?,
            noise(&[1, c, x, y, z], 7, 3.4)?.to_device(dev)?, // ≈ unit variance
            noise(&[1, LATENT_DIM], 8, 3.4)?.to_device(dev)?,
            None,
            args.steps,
            args.index,
            "pseudo-random".into(),
        ),
    };
    let load_s = load_start.elapsed().as_secs_f64();
    let schedule = config.schedule(steps).map_err(candle_core::Error::wrap)?;
    if index == 0 || index >= schedule.len() {
        candle_core::bail!(
            "--index must be in 1..{} for {steps} steps, got {index}",
            schedule.len()
        );
    }
    let t_model = schedule.model_timestep(index);
    if let Some(t) = &t_file
        && t.iter().any(|&v| v != t_model)
    {
        candle_core::bail!("io.t is {t:?} but entry {index} of the {steps}-step schedule is timestep {t_model}");
    }
    let recording = Recording {
        net: &net,
        last: RefCell::new(None),
    };
    let ddim = Ddim::new(&schedule, DdimOptions::ldae(Shift::FromDenoiser));
    let once = || -> candle_core::Result<(f64, Tensor, Tensor)> {
        let t0 = Instant::now();
        let out = ddim
            .step(&recording, &x_t, index, End::Index(index - 1), Some(&y_sem), None)
            .map_err(candle_core::Error::wrap)?;
        sync(dev)?;
        Ok((t0.elapsed().as_secs_f64(), out.x, out.pred_x0))
    };
    for _ in 0..args.warmup {
        once()?;
    }
    let (mut times, mut unet_times) = (Vec::with_capacity(args.reps), Vec::with_capacity(args.reps));
    let mut last = None;
    for _ in 0..args.reps {
        let (t, x_prev, pred_x0) = once()?;
        times.push(t);
        let (eps, g, unet_s) = recording.last.borrow().clone().expect("the step calls the network");
        unet_times.push(unet_s);
        last = Some((x_prev, pred_x0, eps, g));
    }
    let (x_prev, pred_x0, eps, g) = last.expect("reps > 0");
    if let Some(out) = &args.out {
        let tensors = HashMap::from([
            ("x_prev".to_string(), x_prev.clone()),
            ("pred_x0".to_string(), pred_x0),
            ("eps".to_string(), eps),
            ("g".to_string(), g),
        ]);
        candle_core::safetensors::save(&tensors, out)?;
    }
    let (median, best) = median_and_best(&times);
    Ok(json!({
        "task": "ldae_ddim_step",
        "device": device_label(dev),
        "latent": x_t.dims(),
        "semantic": y_sem.dims(),
        "unet": cfg,
        "steps": steps,
        "index": index,
        "model_timestep": t_model,
        "weights": source,
        "load_s": load_s,
        "threads": rayon::current_num_threads(),
        "cpu_kernel": conv3d_cpu_kernel(),
        "reps": args.reps,
        "warmup": args.warmup,
        "median_s": median,
        "best_s": best,
        "runs_s": times,
        "unet_forward_s": unet_times,
        "output_abs_max": x_prev.abs()?.max_all()?.to_scalar::<f32>()?,
    }))
}

fn run(args: &Args) -> candle_core::Result<Value> {
    let dev = &args.device;
    let (n, c) = (args.size, args.channels);
    let x = noise(&[1, c, n, n, n], 1, 2.0)?.to_device(dev)?;
    let w = noise(&[c, c, 3, 3, 3], 2, 2.0 / ((c * 27) as f32).sqrt())?.to_device(dev)?;
    let b = noise(&[c], 3, 0.2)?.to_device(dev)?;
    let cfg = Conv3dConfig::uniform(1, 1);
    let flops = 2.0 * (c * c * 27) as f64 * (n * n * n) as f64;
    let mut results = serde_json::Map::new();
    let mut reference: Option<Tensor> = None;
    for name in &args.impls {
        let imp = match imp_of(name) {
            Ok(i) => i,
            Err(e) => {
                results.insert(name.clone(), json!({ "error": e }));
                continue;
            }
        };
        let once = || -> candle_core::Result<(f64, Tensor)> {
            let t = Instant::now();
            let y = conv3d_with(&x, &w, Some(&b), &cfg, imp)?;
            sync(dev)?;
            Ok((t.elapsed().as_secs_f64(), y))
        };
        let outcome = (|| -> candle_core::Result<Value> {
            let mut last = None;
            for _ in 0..args.warmup {
                last = Some(once()?.1);
            }
            let mut times = Vec::with_capacity(args.reps);
            for _ in 0..args.reps {
                let (t, y) = once()?;
                times.push(t);
                last = Some(y);
            }
            let y = last.expect("reps > 0");
            let diff = match &reference {
                Some(r) => Some((&y - r)?.abs()?.max_all()?.to_scalar::<f32>()?),
                None => {
                    reference = Some(y);
                    None
                }
            };
            let (median, best) = median_and_best(&times);
            Ok(json!({
                "median_s": median,
                "best_s": best,
                "runs_s": times,
                "gflops": flops / median / 1e9,
                "max_abs_diff_vs_first": diff,
            }))
        })();
        let v = outcome.unwrap_or_else(|e| json!({ "error": e.to_string() }));
        results.insert(name.clone(), v);
    }
    Ok(json!({
        "task": "conv3d_forward",
        "device": device_label(dev),
        "input": [1, c, n, n, n],
        "weight": [c, c, 3, 3, 3],
        "padding": 1,
        "bias": true,
        "threads": rayon::current_num_threads(),
        "cpu_kernel": conv3d_cpu_kernel(),
        "reps": args.reps,
        "warmup": args.warmup,
        "results": results,
    }))
}

/// The `m2vs_grid` task (see the module comment).
fn run_m2vs_grid(args: &Args) -> candle_core::Result<Value> {
    use latent_workbench::methods::motion2vecsets::{AutoEncoderConfig, GridOptions, KlAutoEncoder};
    let cfg = AutoEncoderConfig::kl_d512_m512_l8();
    // Zero weights: dense matrix products cost the same whatever the values, and the equality of
    // the two paths is held by tests/m2vs_parity.rs on fixtures.
    let dev = &args.device;
    let vb = candle_nn::VarBuilder::zeros(DType::F32, dev);
    let ae = KlAutoEncoder::load(vb, &cfg)?;
    let z = &noise(&[1, cfg.num_latents, cfg.latent_dim], 7, 1.0)?.to_device(dev)?;
    let n = args.size;
    let mut rows = Vec::new();
    for &batch in &args.batches {
        let mut opts = GridOptions {
            points_per_axis: n,
            batch,
            recompute_trunk: false,
        };
        let t = Instant::now();
        let cached = ae
            .occupancy_grid(z, &opts)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let cached_s = t.elapsed().as_secs_f64();
        opts.recompute_trunk = true;
        let t = Instant::now();
        let again = ae
            .occupancy_grid(z, &opts)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let recomputed_s = t.elapsed().as_secs_f64();
        assert_eq!(cached.len(), again.len());
        rows.push(json!({
            "batch": batch,
            "decoder_calls": (n * n * n).div_ceil(batch),
            "cached_s": cached_s,
            "recomputed_per_batch_s": recomputed_s,
            "speedup": recomputed_s / cached_s,
        }));
    }
    Ok(json!({
        "task": "m2vs_grid",
        "device": device_label(dev),
        "model": "kl_d512_m512_l8 (released shape autoencoder, zero weights)",
        "grid": [n, n, n],
        "threads": rayon::current_num_threads(),
        "results": rows,
    }))
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("inference: {e}");
            std::process::exit(2);
        }
    };
    let result = match args.task.as_str() {
        "aekl_decode" => run_decode(&args),
        "ldae_ddim_step" => run_ldae_step(&args),
        "m2vs_grid" => run_m2vs_grid(&args),
        "cuda_check" => run_cuda_check(&args),
        _ => run(&args),
    };
    match result {
        Ok(v) => println!("{v}"),
        Err(e) => {
            println!("{}", json!({ "error": e.to_string() }));
            std::process::exit(1);
        }
    }
}

/// The largest absolute difference of two tensors on any devices, relative to the larger of 1 and
/// the reference's largest magnitude.
fn max_diff(a: &Tensor, reference: &Tensor) -> candle_core::Result<(f32, f32)> {
    let (a, r) = (a.to_device(&Device::Cpu)?, reference.to_device(&Device::Cpu)?);
    let diff = (&a - &r)?.abs()?.max_all()?.to_scalar::<f32>()?;
    let scale = r.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
    Ok((diff, diff / scale))
}

/// The `cuda_check` task (see the module comment): the same small computations on the CPU and on
/// `--device`, and how far apart they land.
fn run_cuda_check(args: &Args) -> candle_core::Result<Value> {
    use latent_workbench::methods::ldae::unet_config::UNetConfig;
    use latent_workbench::methods::motion2vecsets::{AutoEncoderConfig, GridOptions, KlAutoEncoder};
    // Relative tolerance: f32 on both sides, but different summation orders (and TF32-free cuBLAS).
    const TOL: f32 = 1e-3;
    let dev = &args.device;
    let cpu = &Device::Cpu;
    let mut checks = serde_json::Map::new();
    let mut all_ok = true;
    let mut record = |name: &str, d: (f32, f32), secs: (f64, f64)| {
        let ok = d.1 <= TOL && d.1.is_finite();
        all_ok &= ok;
        checks.insert(
            name.into(),
            json!({ "max_abs_diff": d.0, "rel_diff": d.1, "ok": ok, "cpu_s": secs.0, "device_s": secs.1 }),
        );
    };
    let timed = |f: &dyn Fn(&Device) -> candle_core::Result<Tensor>, on: &Device| {
        let t0 = Instant::now();
        let y = f(on)?;
        sync(on)?;
        Ok::<_, candle_core::Error>((y, t0.elapsed().as_secs_f64()))
    };

    // conv3d: the CPU kernel against what the device gets (composite on CUDA).
    let conv = |on: &Device| {
        let x = noise(&[1, 16, 12, 14, 10], 1, 2.0)?.to_device(on)?;
        let w = noise(&[24, 16, 3, 3, 3], 2, 0.2)?.to_device(on)?;
        let b = noise(&[24], 3, 0.2)?.to_device(on)?;
        conv3d_with(&x, &w, Some(&b), &Conv3dConfig::uniform(1, 1), Conv3dImpl::Auto)
    };
    let ((a, ta), (b, tb)) = (timed(&conv, cpu)?, timed(&conv, dev)?);
    record("conv3d_16to24_12x14x10", max_diff(&b, &a)?, (ta, tb));

    // AutoencoderKL decode with LDAE's configuration, 1×3×4×5×4 → 1×1×32×40×32.
    let cfg = AutoencoderKlConfig::ldae();
    let decode = |on: &Device| {
        let ae = pseudo_random_model(on, |vb| AutoencoderKL::load(vb, &cfg))?;
        let z = noise(&[1, cfg.latent_channels, 4, 5, 4], 7, 2.0)?.to_device(on)?;
        ae.decode(&z)
    };
    let ((a, ta), (b, tb)) = (timed(&decode, cpu)?, timed(&decode, dev)?);
    record("aekl_decode_4x5x4", max_diff(&b, &a)?, (ta, tb));

    // One LDAE DDIM step (shift from the denoiser) of a small ShiftUNet on a 1×3×8×10×8 latent.
    let unet_cfg = UNetConfig {
        base_channel: 32,
        channel_multiplier: vec![1, 2],
        attention_resolutions: vec![2],
        ..UNetConfig::default()
    };
    let schedule = LdaeConfig::official().schedule(20).map_err(candle_core::Error::wrap)?;
    let step = |on: &Device| {
        let net = pseudo_random_model(on, |vb| ShiftUNet::load(vb, &unet_cfg, 64))?;
        let x_t = noise(&[1, 3, 8, 10, 8], 7, 3.4)?.to_device(on)?;
        let y = noise(&[1, 64], 8, 3.4)?.to_device(on)?;
        let ddim = Ddim::new(&schedule, DdimOptions::ldae(Shift::FromDenoiser));
        let out = ddim
            .step(&net, &x_t, 10, End::Index(9), Some(&y), None)
            .map_err(candle_core::Error::wrap)?;
        Tensor::cat(&[out.x.flatten_all()?, out.pred_x0.flatten_all()?], 0)
    };
    let ((a, ta), (b, tb)) = (timed(&step, cpu)?, timed(&step, dev)?);
    record("ldae_small_ddim_step", max_diff(&b, &a)?, (ta, tb));

    // Motion2VecSets' shape autoencoder (pseudo-random weights): occupancy logits on a 12³ grid.
    let m2vs_cfg = AutoEncoderConfig::kl_d512_m512_l8();
    let grid = |on: &Device| {
        let ae = pseudo_random_model(on, |vb| KlAutoEncoder::load(vb, &m2vs_cfg))?;
        let z = noise(&[1, m2vs_cfg.num_latents, m2vs_cfg.latent_dim], 7, 1.0)?.to_device(on)?;
        let opts = GridOptions {
            points_per_axis: 12,
            batch: 1000,
            recompute_trunk: false,
        };
        let v = ae
            .occupancy_grid(&z, &opts)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let n = v.len();
        Tensor::from_vec(v, n, &Device::Cpu)
    };
    let ((a, ta), (b, tb)) = (timed(&grid, cpu)?, timed(&grid, dev)?);
    record("m2vs_occupancy_12cubed", max_diff(&b, &a)?, (ta, tb));

    let result = json!({
        "task": "cuda_check",
        "device": device_label(dev),
        "tolerance_rel": TOL,
        "ok": all_ok,
        "checks": checks,
    });
    if !all_ok {
        println!("{result}");
        std::process::exit(1);
    }
    Ok(result)
}
