//! Marching cubes on the GPU (`render::GpuMarchingCubes`, `shaders/marching_cubes.wgsl`) against
//! the CPU `methods::isosurface::marching_cubes`: the same vertices (one per crossed edge, within
//! `f32` rounding), the same normals and the same triangles, compared as sets.
//!
//! Without any adapter these tests print why and pass, unless `LW_REQUIRE_RENDER=1` (set by
//! scripts/test.sh, so CI always runs them, on lavapipe).

use latent_workbench::core::volume::IDENTITY;
use latent_workbench::core::{Affine, Mesh, Volume};
use latent_workbench::methods::isosurface::{Inside, IsoOptions, marching_cubes};
use latent_workbench::render::{Gpu, GpuMarchingCubes};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// One device and kernel for the whole file.
fn gpu() -> Option<&'static Mutex<(Gpu, GpuMarchingCubes)>> {
    static GPU: OnceLock<Option<Mutex<(Gpu, GpuMarchingCubes)>>> = OnceLock::new();
    GPU.get_or_init(|| match Gpu::headless() {
        Ok(gpu) => {
            let mc = GpuMarchingCubes::new(&gpu.device).expect("the marching-cubes pipelines build");
            Some(Mutex::new((gpu, mc)))
        }
        Err(e) => {
            assert!(
                std::env::var("LW_REQUIRE_RENDER").as_deref() != Ok("1"),
                "LW_REQUIRE_RENDER=1 but no adapter: {e}"
            );
            eprintln!("skipping GPU marching-cubes tests: {e}");
            None
        }
    })
    .as_ref()
}

fn volume(dims: [usize; 3], affine: Affine, f: impl Fn(f64, f64, f64) -> f32) -> Volume {
    let mut data = Vec::with_capacity(dims.iter().product());
    for z in 0..dims[2] {
        for y in 0..dims[1] {
            for x in 0..dims[0] {
                data.push(f(x as f64, y as f64, z as f64));
            }
        }
    }
    Volume::new(dims, 1, [1.0; 3], affine, data).unwrap()
}

/// A sphere's signed distance (negative inside) on a 32³ grid, 1/16 mm voxels, shifted.
fn sphere() -> Volume {
    let mut a = IDENTITY;
    for (k, row) in a.iter_mut().take(3).enumerate() {
        row[k] = 1.0 / 16.0;
        row[3] = -1.0 + 0.1 * k as f64;
    }
    volume([32, 32, 32], a, |x, y, z| {
        (((x - 15.3).powi(2) + (y - 16.1).powi(2) + (z - 15.7).powi(2)).sqrt() - 10.37) as f32
    })
}

/// A smooth field plus hashed noise on a non-cube grid (many ambiguous faces), under a rotated,
/// anisotropic, mirrored affine (negative determinant: the winding flips).
fn bumpy() -> Volume {
    let (c, s) = (0.6f64, 0.8f64);
    let a: Affine = [
        [0.05 * c, -0.04 * s, 0.0, 0.3],
        [0.05 * s, 0.04 * c, 0.0, -0.2],
        [0.0, 0.0, -0.06, 0.5],
        [0.0, 0.0, 0.0, 1.0],
    ];
    volume([40, 33, 27], a, |x, y, z| {
        let h = ((x as u64 * 73_856_093) ^ (y as u64 * 19_349_663) ^ (z as u64 * 83_492_791)) % 1000;
        ((x * 0.3).sin() + (y * 0.25).cos() + (z * 0.4).sin() * 0.5) as f32 + (h as f32 / 1000.0 - 0.5) * 0.8
    })
}

fn gpu_mesh(mc: &mut GpuMarchingCubes, gpu: &Gpu, v: &Volume, level: f32, inside: Inside) -> Mesh {
    mc.run(
        &gpu.device,
        &gpu.queue,
        v.frame(0),
        v.dims(),
        level,
        inside,
        v.world_from_voxel(),
    )
    .expect("GPU marching cubes")
}

fn cpu_mesh(v: &Volume, level: f32, inside: Inside) -> Mesh {
    marching_cubes(
        v,
        &IsoOptions {
            level,
            inside,
            frame: 0,
        },
    )
}

/// A triangle rotated so its smallest index comes first (winding kept).
fn canonical(t: [u32; 3]) -> [u32; 3] {
    let k = (0..3).min_by_key(|&k| t[k]).unwrap();
    [t[k], t[(k + 1) % 3], t[(k + 2) % 3]]
}

/// Same vertex set (positions within 1e-5 relative to max(1, |coordinate|), normals within 1e-4)
/// and the same triangles, as sets.
fn assert_same(gpu: &Mesh, cpu: &Mesh, what: &str) {
    assert_eq!(gpu.positions.len(), cpu.positions.len(), "{what}: vertex count");
    assert_eq!(gpu.triangles.len(), cpu.triangles.len(), "{what}: triangle count");
    assert_eq!(gpu.normals.len(), gpu.positions.len(), "{what}: one normal per vertex");
    // CPU vertices sorted by x, searched in a window around each GPU vertex.
    let mut order: Vec<usize> = (0..cpu.positions.len()).collect();
    order.sort_by(|&a, &b| cpu.positions[a][0].total_cmp(&cpu.positions[b][0]));
    let xs: Vec<f32> = order.iter().map(|&i| cpu.positions[i][0]).collect();
    let tol = |p: [f32; 3]| 1e-5 * p.iter().fold(1f32, |m, v| m.max(v.abs()));
    let mut map = vec![u32::MAX; gpu.positions.len()];
    let mut used = vec![false; cpu.positions.len()];
    for (g, p) in gpu.positions.iter().enumerate() {
        let eps = tol(*p);
        let lo = xs.partition_point(|&x| x < p[0] - eps);
        let mut best = (f32::INFINITY, usize::MAX);
        for &c in order[lo..].iter().take_while(|&&c| cpu.positions[c][0] <= p[0] + eps) {
            let q = cpu.positions[c];
            let d = (0..3).map(|k| (p[k] - q[k]).abs()).fold(0f32, f32::max);
            if d < best.0 {
                best = (d, c);
            }
        }
        assert!(
            best.0 <= eps,
            "{what}: GPU vertex {g} at {p:?} has no CPU vertex within {eps}"
        );
        assert!(!used[best.1], "{what}: two GPU vertices match CPU vertex {}", best.1);
        used[best.1] = true;
        map[g] = best.1 as u32;
        let (n, m) = (gpu.normals[g], cpu.normals[best.1]);
        let dn = (0..3).map(|k| (n[k] - m[k]).abs()).fold(0f32, f32::max);
        assert!(dn <= 1e-4, "{what}: normal of vertex {g}: GPU {n:?}, CPU {m:?}");
    }
    let mut a: Vec<[u32; 3]> = gpu
        .triangles
        .iter()
        .map(|t| canonical(t.map(|i| map[i as usize])))
        .collect();
    let mut b: Vec<[u32; 3]> = cpu.triangles.iter().map(|&t| canonical(t)).collect();
    a.sort_unstable();
    b.sort_unstable();
    let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    assert_eq!(differ, 0, "{what}: {differ} of {} triangles differ", a.len());
}

/// Every directed edge once, its opposite once: closed and consistently wound.
fn assert_watertight(mesh: &Mesh, what: &str) {
    let mut directed: HashMap<(u32, u32), u32> = HashMap::new();
    for t in &mesh.triangles {
        for k in 0..3 {
            *directed.entry((t[k], t[(k + 1) % 3])).or_default() += 1;
        }
    }
    for (&(a, b), &n) in &directed {
        assert_eq!(n, 1, "{what}: directed edge {a}->{b} used {n} times");
        assert_eq!(directed.get(&(b, a)), Some(&1), "{what}: edge {a}-{b} is open");
    }
}

#[test]
fn sphere_matches_the_cpu_and_is_watertight() {
    let Some(lock) = gpu() else { return };
    let (gpu, mc) = &mut *lock.lock().unwrap();
    let v = sphere();
    for inside in [Inside::Below, Inside::Above] {
        let what = format!("sphere {inside:?}");
        let g = gpu_mesh(mc, gpu, &v, 0.0, inside);
        let c = cpu_mesh(&v, 0.0, inside);
        assert!(c.triangles.len() > 1000, "{what}: {} triangles", c.triangles.len());
        assert_same(&g, &c, &what);
        assert_watertight(&g, &what);
        // Below: the SDF's inside is enclosed, so the volume is positive; Above flips it.
        let vol = g.signed_volume();
        assert!((inside == Inside::Below) == (vol > 0.0), "{what}: signed volume {vol}");
    }
}

#[test]
fn bumpy_non_cube_field_matches_the_cpu_at_several_levels() {
    let Some(lock) = gpu() else { return };
    let (gpu, mc) = &mut *lock.lock().unwrap();
    let v = bumpy();
    mc.set_field(&gpu.device, &gpu.queue, v.frame(0), v.dims()).unwrap();
    // The live-level case: the field stays on the GPU, only the level changes.
    for level in [0.21f32, -0.43, 0.77] {
        for inside in [Inside::Above, Inside::Below] {
            let what = format!("bumpy level {level} {inside:?}");
            let g = mc
                .extract(&gpu.device, &gpu.queue, level, inside, v.world_from_voxel())
                .unwrap();
            let c = cpu_mesh(&v, level, inside);
            assert!(c.triangles.len() > 1000, "{what}: {} triangles", c.triangles.len());
            assert_same(&g, &c, &what);
        }
    }
}

#[test]
fn a_level_outside_the_range_gives_an_empty_mesh() {
    let Some(lock) = gpu() else { return };
    let (gpu, mc) = &mut *lock.lock().unwrap();
    let v = sphere();
    for level in [-100.0f32, 100.0] {
        for inside in [Inside::Above, Inside::Below] {
            let g = gpu_mesh(mc, gpu, &v, level, inside);
            assert!(g.positions.is_empty() && g.triangles.is_empty(), "level {level}");
        }
    }
    // A grid too thin for a cube.
    let flat = volume([5, 4, 1], IDENTITY, |x, _, _| x as f32);
    let g = gpu_mesh(mc, gpu, &flat, 2.5, Inside::Above);
    assert!(g.triangles.is_empty());
}

#[test]
fn singular_affine_repairs_normals_like_the_cpu() {
    let Some(lock) = gpu() else { return };
    let (gpu, mc) = &mut *lock.lock().unwrap();
    let s = sphere();
    let mut a = *s.world_from_voxel();
    a[2] = [0.0, 0.0, 0.0, 0.25]; // every z maps to one plane: no inverse, no gradient normals
    let v = Volume::new(s.dims(), 1, [1.0; 3], a, s.frame(0).to_vec()).unwrap();
    let g = gpu_mesh(mc, gpu, &v, 0.0, Inside::Below);
    let c = cpu_mesh(&v, 0.0, Inside::Below);
    assert_eq!(g.triangles.len(), c.triangles.len());
    assert!(g.normals.iter().all(|n| n.iter().all(|x| x.is_finite())));
}
