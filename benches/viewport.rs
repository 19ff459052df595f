//! A self-timed benchmark (no criterion) of the GPU side: the 3D viewport's frame time and
//! marching cubes on the GPU against the CPU. Runs on whatever adapter wgpu finds (honouring
//! `WGPU_BACKEND`, `WGPU_ADAPTER_NAME`), Mesa's lavapipe included, and names it in the output.
//!
//! ```text
//! cargo bench --bench viewport -- --task frame [--size 1920x1080] [--frames 60] [--warmup 3] [--quads 500x1000]
//! cargo bench --bench viewport -- --task mc [--size 256] [--reps 3]
//! ```
//!
//! - `frame`: a bumpy sphere of `--quads` (rings × segments; 500×1000 → 1 M triangles) with
//!   normals, drawn by `render::SceneRenderer` offscreen, smooth shading, the camera orbiting 2°
//!   per frame. The first frame uploads the mesh (the renderer caches its buffers) and is reported
//!   apart; then `--warmup` frames, then `--frames` timed frames, each: encode `render`, submit,
//!   wait for the device.
//! - `mc`: marching cubes of an N³ SDF (a sphere with a wave on it, negative inside) at level 0:
//!   the CPU `marching_cubes` (rayon) against `render::GpuMarchingCubes` (upload + three passes +
//!   read-back, split), then the GPU at another level with the field kept on the GPU (the live
//!   iso-level case). Triangle counts must match.
//!
//! Prints one JSON object on stdout.

use latent_workbench::core::volume::IDENTITY;
use latent_workbench::core::{Mesh, Volume};
use latent_workbench::methods::isosurface::{Inside, IsoOptions, marching_cubes};
use latent_workbench::render::{
    Geometry, Gpu, GpuMarchingCubes, OrbitCamera, RenderSettings, Scene, SceneObject, SceneRenderer, Shading,
    ViewPreset,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

struct Args {
    task: String,
    size: Option<String>,
    frames: usize,
    warmup: usize,
    reps: usize,
    quads: [usize; 2],
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        task: "frame".into(),
        size: None,
        frames: 60,
        warmup: 3,
        reps: 3,
        quads: [500, 1000],
    };
    let num = |k: &str, v: String| v.parse::<usize>().map_err(|e| format!("{k}: {e}"));
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--task" => a.task = value()?,
            "--size" => a.size = Some(value()?),
            "--frames" => a.frames = num("--frames", value()?)?,
            "--warmup" => a.warmup = num("--warmup", value()?)?,
            "--reps" => a.reps = num("--reps", value()?)?,
            "--quads" => {
                let [r, s] = pair(&value()?)?;
                a.quads = [r, s];
            }
            // `cargo bench` passes --bench; libtest-style filters are ignored too.
            "--bench" | "--nocapture" => {}
            "-h" | "--help" => {
                eprintln!(
                    "usage: viewport --task frame [--size WxH] [--frames N] [--warmup N] [--quads RxS]\n       viewport --task mc [--size N] [--reps N]"
                );
                std::process::exit(0);
            }
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            _ => {}
        }
    }
    if a.frames == 0 || a.reps == 0 || a.quads[0] < 2 || a.quads[1] < 3 {
        return Err("frames, reps and quads must be positive".into());
    }
    Ok(a)
}

fn pair(s: &str) -> Result<[usize; 2], String> {
    let (a, b) = s.split_once('x').ok_or_else(|| format!("expected AxB, got {s}"))?;
    let n = |v: &str| v.parse::<usize>().map_err(|e| format!("{s}: {e}"));
    Ok([n(a)?, n(b)?])
}

fn summary(times: &[f64]) -> serde_json::Value {
    let mut s = times.to_vec();
    s.sort_by(f64::total_cmp);
    let mean = s.iter().sum::<f64>() / s.len() as f64;
    let p95 = s[((s.len() as f64 * 0.95).ceil() as usize).clamp(1, s.len()) - 1];
    json!({"median": s[s.len() / 2], "mean": mean, "p95": p95, "best": s[0]})
}

fn median(times: &[f64]) -> f64 {
    let mut s = times.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// A bumpy sphere as a (rings × segments) quad grid with analytic-ish normals (from the grid).
fn bumpy_sphere([rings, segs]: [usize; 2]) -> Mesh {
    let radius = |theta: f32, phi: f32| 1.0 + 0.05 * (7.0 * theta).sin() * (11.0 * phi).cos();
    let point = |i: usize, j: usize| {
        let theta = std::f32::consts::PI * i as f32 / rings as f32;
        let phi = std::f32::consts::TAU * j as f32 / segs as f32;
        let r = radius(theta, phi);
        [
            r * theta.sin() * phi.cos(),
            r * theta.sin() * phi.sin(),
            r * theta.cos(),
        ]
    };
    let mut m = Mesh::default();
    for i in 0..=rings {
        for j in 0..segs {
            m.positions.push(point(i, j));
        }
    }
    let id = |i: usize, j: usize| (i * segs + j % segs) as u32;
    for i in 0..rings {
        for j in 0..segs {
            let (a, b, c, d) = (id(i, j), id(i + 1, j), id(i + 1, j + 1), id(i, j + 1));
            m.triangles.push([a, b, c]);
            m.triangles.push([a, c, d]);
        }
    }
    m.compute_normals();
    m
}

fn frame_task(a: &Args) -> Result<serde_json::Value, String> {
    let [w, h] = pair(a.size.as_deref().unwrap_or("1920x1080"))?;
    let (w, h) = (w as u32, h as u32);
    let build = Instant::now();
    let mesh = Arc::new(bumpy_sphere(a.quads));
    let build_s = build.elapsed().as_secs_f64();
    let (triangles, vertices) = (mesh.triangles.len(), mesh.positions.len());
    let (lo, hi) = mesh.bounds().ok_or("empty mesh")?;
    let scene = Scene {
        objects: vec![SceneObject::new(1, "bumpy sphere", Geometry::Mesh(mesh))],
    };
    let settings = RenderSettings {
        shading: Shading::Smooth,
        gizmo: false,
        ..Default::default()
    };
    let gpu = Gpu::headless().map_err(|e| e.to_string())?;
    let mut renderer = SceneRenderer::new(&gpu.device).map_err(|e| e.to_string())?;
    let mut camera = OrbitCamera::framing(lo, hi, ViewPreset::Front);
    let mut frame = |camera: &OrbitCamera| -> Result<f64, String> {
        let t = Instant::now();
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        renderer
            .render(&gpu.device, &gpu.queue, &mut encoder, &scene, camera, &settings, [w, h])
            .map_err(|e| e.to_string())?;
        gpu.queue.submit([encoder.finish()]);
        gpu.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| e.to_string())?;
        Ok(t.elapsed().as_secs_f64())
    };
    let first_s = frame(&camera)?;
    let step = 2f32.to_radians();
    for _ in 0..a.warmup {
        camera.yaw += step;
        frame(&camera)?;
    }
    let mut times = Vec::with_capacity(a.frames);
    for _ in 0..a.frames {
        camera.yaw += step;
        times.push(frame(&camera)?);
    }
    let ms: Vec<f64> = times.iter().map(|t| t * 1e3).collect();
    let med = median(&ms);
    Ok(json!({
        "task": "frame",
        "adapter": gpu.adapter,
        "size": [w, h],
        "triangles": triangles,
        "vertices": vertices,
        "mesh_build_s": build_s,
        "first_frame_ms": first_s * 1e3,
        "warmup_frames": a.warmup,
        "frames": a.frames,
        "frame_ms": summary(&ms),
        "fps_median": 1e3 / med,
    }))
}

/// A sphere of radius 0.35 N with a wave on it, as a signed distance in voxels (negative inside).
fn sdf(n: usize) -> Volume {
    let c = (n as f32 - 1.0) / 2.0;
    let r = 0.35 * n as f32;
    let mut data = Vec::with_capacity(n * n * n);
    for z in 0..n {
        for y in 0..n {
            for x in 0..n {
                let (dx, dy, dz) = (x as f32 - c, y as f32 - c, z as f32 - c);
                let d = (dx * dx + dy * dy + dz * dz).sqrt();
                let wave = 0.04 * r * (dx * 12.0 / n as f32).sin() * (dy * 9.0 / n as f32).cos();
                data.push(d - r + wave);
            }
        }
    }
    let mut affine = IDENTITY;
    for (k, row) in affine.iter_mut().take(3).enumerate() {
        row[k] = 1.0 / n as f64;
        row[3] = -0.5;
    }
    Volume::new([n; 3], 1, [1.0 / n as f32; 3], affine, data).expect("n³ values")
}

fn mc_task(a: &Args) -> Result<serde_json::Value, String> {
    let n: usize = a
        .size
        .as_deref()
        .unwrap_or("256")
        .parse()
        .map_err(|e| format!("--size: {e}"))?;
    let volume = sdf(n);
    let (level, level2) = (0.0f32, 2.5f32);
    let opts = IsoOptions {
        level,
        inside: Inside::Below,
        frame: 0,
    };
    let mut cpu_times = Vec::new();
    let mut cpu_tris = 0;
    for _ in 0..a.reps {
        let t = Instant::now();
        let m = marching_cubes(&volume, &opts);
        cpu_times.push(t.elapsed().as_secs_f64());
        cpu_tris = m.triangles.len();
    }

    let gpu = Gpu::headless().map_err(|e| e.to_string())?;
    let setup = Instant::now();
    let mut mc = GpuMarchingCubes::new(&gpu.device).map_err(|e| e.to_string())?;
    let setup_s = setup.elapsed().as_secs_f64();
    let affine = *volume.world_from_voxel();
    let (mut total, mut upload, mut compute, mut readback) = (vec![], vec![], vec![], vec![]);
    let mut gpu_tris = 0;
    // One untimed run first: the driver compiles the pipelines lazily on some adapters.
    for rep in 0..=a.reps {
        let t = Instant::now();
        let m = mc
            .run(
                &gpu.device,
                &gpu.queue,
                volume.frame(0),
                volume.dims(),
                level,
                Inside::Below,
                &affine,
            )
            .map_err(|e| e.to_string())?;
        let s = t.elapsed().as_secs_f64();
        if rep > 0 {
            let tm = mc.timings();
            total.push(s);
            upload.push(tm.upload_s);
            compute.push(tm.compute_s);
            readback.push(tm.readback_s);
        }
        gpu_tris = m.triangles.len();
    }
    // The live level: the field stays on the GPU.
    let (mut live, mut live_compute, mut live_readback) = (vec![], vec![], vec![]);
    let mut live_tris = 0;
    for _ in 0..a.reps {
        let t = Instant::now();
        let m = mc
            .extract(&gpu.device, &gpu.queue, level2, Inside::Below, &affine)
            .map_err(|e| e.to_string())?;
        live.push(t.elapsed().as_secs_f64());
        live_compute.push(mc.timings().compute_s);
        live_readback.push(mc.timings().readback_s);
        live_tris = m.triangles.len();
    }
    let cpu_live_tris = marching_cubes(&volume, &IsoOptions { level: level2, ..opts })
        .triangles
        .len();
    if cpu_tris != gpu_tris || cpu_live_tris != live_tris {
        return Err(format!(
            "triangle counts differ: CPU {cpu_tris} vs GPU {gpu_tris} at {level}, CPU {cpu_live_tris} vs GPU {live_tris} at {level2}"
        ));
    }
    let cpu_s = median(&cpu_times);
    let gpu_s = median(&total);
    Ok(json!({
        "task": "mc",
        "adapter": gpu.adapter,
        "size": n,
        "reps": a.reps,
        "threads": rayon::current_num_threads(),
        "level": level,
        "triangles": gpu_tris,
        "cpu": {"median_s": cpu_s, "runs_s": cpu_times},
        "gpu": {
            "median_s": gpu_s,
            "upload_median_s": median(&upload),
            "compute_median_s": median(&compute),
            "readback_median_s": median(&readback),
            "runs_s": total,
            "pipelines_setup_s": setup_s,
        },
        "gpu_live_level": {
            "level": level2,
            "triangles": live_tris,
            "median_s": median(&live),
            "compute_median_s": median(&live_compute),
            "readback_median_s": median(&live_readback),
        },
        "cpu_over_gpu": cpu_s / gpu_s,
    }))
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("viewport: {e}");
            std::process::exit(2);
        }
    };
    let result = match args.task.as_str() {
        "frame" => frame_task(&args),
        "mc" => mc_task(&args),
        other => Err(format!("unknown task {other} (frame or mc)")),
    };
    match result {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("viewport: {e}");
            std::process::exit(1);
        }
    }
}
