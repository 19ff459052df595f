//! Marching cubes: agreement with scikit-image on reference grids (tests/fixtures/make_isosurface.py),
//! watertightness and orientation, world placement under affines, edge cases.

use latent_workbench::core::volume::{IDENTITY, apply};
use latent_workbench::core::{Affine, Mesh, Volume};
use latent_workbench::methods::isosurface::{Inside, IsoOptions, marching_cubes};
use std::collections::HashMap;
use std::f64::consts::PI;
use std::path::Path;

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mesh/iso"))
}

/// Minimal `.npy` reader for the fixtures: little-endian float32, Fortran order, 3-D.
fn read_npy_f32_fortran(path: &Path) -> ([usize; 3], Vec<f32>) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[..6], b"\x93NUMPY", "{}", path.display());
    let (hlen, start) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        _ => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
    };
    let header = std::str::from_utf8(&b[start..start + hlen]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{header}");
    assert!(header.contains("'fortran_order': True"), "{header}");
    let shape = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let data: Vec<f32> = b[start + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let dims = [dims[0], dims[1], dims[2]];
    assert_eq!(data.len(), dims.iter().product::<usize>());
    (dims, data)
}

/// Every undirected edge is used by exactly two triangles, once in each direction (closed,
/// consistently oriented, manifold along edges).
fn assert_watertight(mesh: &Mesh, what: &str) {
    let mut directed: HashMap<(u32, u32), u32> = HashMap::new();
    for t in &mesh.triangles {
        assert!(
            t[0] != t[1] && t[1] != t[2] && t[0] != t[2],
            "{what}: repeated vertex in {t:?}"
        );
        for k in 0..3 {
            *directed.entry((t[k], t[(k + 1) % 3])).or_default() += 1;
        }
    }
    for (&(a, b), &n) in &directed {
        assert_eq!(n, 1, "{what}: directed edge {a}->{b} used {n} times");
        assert_eq!(
            directed.get(&(b, a)),
            Some(&1),
            "{what}: edge {a}-{b} has no opposite half (open or flipped)"
        );
    }
    mesh.validate().unwrap();
}

fn grid(dims: [usize; 3], mut f: impl FnMut(f64, f64, f64) -> f64) -> Vec<f32> {
    let mut v = Vec::with_capacity(dims.iter().product());
    for z in 0..dims[2] {
        for y in 0..dims[1] {
            for x in 0..dims[0] {
                v.push(f(x as f64, y as f64, z as f64) as f32);
            }
        }
    }
    v
}

fn sphere_sdf(n: usize, r: f64) -> Vec<f32> {
    let c = (n as f64 - 1.0) / 2.0;
    grid([n; 3], |x, y, z| {
        ((x - c).powi(2) + (y - c).powi(2) + (z - c).powi(2)).sqrt() - r
    })
}

fn below() -> IsoOptions {
    IsoOptions {
        inside: Inside::Below,
        ..Default::default()
    }
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

#[test]
fn matches_skimage_area_and_volume() {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("skimage.json")).unwrap()).unwrap();
    for name in ["sphere", "torus", "boxes", "blob"] {
        let r = &json[name];
        let (dims, data) = read_npy_f32_fortran(&fixtures().join(format!("{name}.npy")));
        let spacing: Vec<f32> = r["spacing"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(
            dims.to_vec(),
            r["dims"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect::<Vec<_>>()
        );
        let vol = Volume::from_spacing(dims, [spacing[0], spacing[1], spacing[2]], data).unwrap();
        let opts = IsoOptions {
            level: r["level"].as_f64().unwrap() as f32,
            inside: Inside::Below, // signed distances: negative inside
            frame: 0,
        };
        let m = marching_cubes(&vol, &opts);
        let (area, volume) = (r["area"].as_f64().unwrap(), r["volume"].as_f64().unwrap().abs());
        eprintln!(
            "{name}: ours {} verts {} faces area {:.2} volume {:.2}; skimage {} verts {} faces area {area:.2} volume {volume:.2}",
            m.positions.len(),
            m.triangles.len(),
            m.area(),
            m.signed_volume(),
            r["vertices"],
            r["faces"]
        );
        assert!(
            rel(m.area(), area) < 0.01,
            "{name}: area {} vs skimage {area}",
            m.area()
        );
        assert!(
            rel(m.signed_volume(), volume) < 0.01,
            "{name}: volume {} vs skimage {volume}",
            m.signed_volume()
        );
        assert!(m.signed_volume() > 0.0, "{name}: outward winding");
        assert_watertight(&m, name);
    }
}

#[test]
fn sphere_sdf_volume_area_and_outward_normals() {
    let (n, r) = (48, 15.0);
    let vol = Volume::from_spacing([n; 3], [1.0; 3], sphere_sdf(n, r)).unwrap();
    let m = marching_cubes(&vol, &below());
    assert_watertight(&m, "sphere");
    let v = m.signed_volume();
    assert!(v > 0.0);
    assert!(rel(v, 4.0 / 3.0 * PI * r.powi(3)) < 0.01, "volume {v}");
    assert!(rel(m.area(), 4.0 * PI * r * r) < 0.01, "area {}", m.area());
    let c = (n as f32 - 1.0) / 2.0;
    assert_eq!(m.normals.len(), m.positions.len());
    for (p, nrm) in m.positions.iter().zip(&m.normals) {
        let d = [p[0] - c, p[1] - c, p[2] - c];
        let len = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
        assert!((len - r as f32).abs() < 0.05, "vertex {p:?} at radius {len}");
        let dot = (d[0] * nrm[0] + d[1] * nrm[1] + d[2] * nrm[2]) / len;
        assert!(dot > 0.99, "normal {nrm:?} at {p:?}");
        assert!(((nrm[0] * nrm[0] + nrm[1] * nrm[1] + nrm[2] * nrm[2]).sqrt() - 1.0).abs() < 1e-4);
    }
    // The same solid described as "above": negate the field.
    let neg: Vec<f32> = vol.data().iter().map(|v| -v).collect();
    let vol2 = Volume::from_spacing([n; 3], [1.0; 3], neg).unwrap();
    let m2 = marching_cubes(&vol2, &IsoOptions::default());
    assert_eq!(m2.triangles.len(), m.triangles.len());
    assert!(rel(m2.signed_volume(), v) < 1e-9);
    // A level shifts the surface: level 3 below → radius 18.
    let m3 = marching_cubes(&vol, &IsoOptions { level: 3.0, ..below() });
    assert!(rel(m3.signed_volume(), 4.0 / 3.0 * PI * 18f64.powi(3)) < 0.01);
}

#[test]
fn affine_places_vertices_in_world_and_keeps_winding() {
    let (n, r) = (24, 7.0);
    let c = (n as f64 - 1.0) / 2.0;
    // An off-centre ellipsoid so rotation and translation matter.
    let data = grid([n; 3], |x, y, z| {
        (((x - c - 2.0) / 1.3).powi(2) + (y - c).powi(2) + ((z - c + 1.0) / 0.8).powi(2)).sqrt() - r
    });
    let plain = marching_cubes(
        &Volume::new([n; 3], 1, [1.0; 3], IDENTITY, data.clone()).unwrap(),
        &below(),
    );
    assert_watertight(&plain, "identity");
    let (ca, sa) = (0.6f64.cos(), 0.6f64.sin());
    let rot_scale: Affine = [
        [ca * 0.8, -sa * 1.2, 0.0, 10.0],
        [sa * 0.8, ca * 1.2, 0.0, -20.0],
        [0.0, 0.0, 2.5, 30.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let mut mirror = rot_scale;
    for row in mirror.iter_mut().take(3) {
        row[0] = -row[0]; // negative determinant
    }
    for (name, a, det) in [
        ("rotation", rot_scale, 0.8 * 1.2 * 2.5),
        ("mirror", mirror, -0.8 * 1.2 * 2.5),
    ] {
        let m = marching_cubes(
            &Volume::new([n; 3], 1, [0.8, 1.2, 2.5], a, data.clone()).unwrap(),
            &below(),
        );
        assert_eq!(m.positions.len(), plain.positions.len(), "{name}");
        for (p, q) in m.positions.iter().zip(&plain.positions) {
            let w = apply(&a, q.map(f64::from));
            for k in 0..3 {
                assert!((f64::from(p[k]) - w[k]).abs() < 1e-3, "{name}: {p:?} vs {w:?}");
            }
        }
        assert_watertight(&m, name);
        let v = m.signed_volume();
        assert!(v > 0.0, "{name}: winding must stay outward, volume {v}");
        assert!(rel(v, plain.signed_volume() * f64::abs(det)) < 1e-4, "{name}: {v}");
        // Gradient normals agree with the outward face normals.
        let mut faces = m.clone();
        faces.compute_normals();
        let agree = m
            .normals
            .iter()
            .zip(&faces.normals)
            .filter(|(a, b)| a[0] * b[0] + a[1] * b[1] + a[2] * b[2] > 0.9)
            .count();
        assert!(
            agree as f64 > 0.98 * m.normals.len() as f64,
            "{name}: {agree}/{}",
            m.normals.len()
        );
    }
}

/// Tiny deterministic generator (no rand dependency).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32) / (1u64 << 24) as f32
    }
}

#[test]
fn random_fields_are_watertight() {
    let mut rng = Lcg(42);
    let dims = [13, 11, 17];
    for trial in 0..24 {
        let data = grid(dims, |x, y, z| {
            let border = x == 0.0 || y == 0.0 || z == 0.0 || x == 12.0 || y == 10.0 || z == 16.0;
            let v = rng.next();
            match trial % 4 {
                _ if border => -1.0,                          // outside for Above
                0 => f64::from(v) - 0.5,                      // continuous noise: many ambiguous faces
                1 => f64::from((v > 0.5) as u8 as f32) - 0.5, // ±0.5: exact saddles (decider ties)
                2 if v < 0.1 => f64::NAN,                     // NaN voxels count as outside
                2 => f64::from(v) - 0.3,
                _ => f64::from(v) * 4.0 - 2.0,
            }
        });
        let vol = Volume::from_spacing(dims, [1.0, 0.7, 1.3], data).unwrap();
        let m = marching_cubes(&vol, &IsoOptions::default());
        assert!(!m.triangles.is_empty());
        assert_watertight(&m, &format!("trial {trial}"));
        assert!(m.signed_volume() > 0.0, "trial {trial}");
        assert!(
            m.normals.iter().all(|n| n.iter().all(|c| c.is_finite())),
            "trial {trial}"
        );
        if trial % 4 != 2 {
            // Without NaNs, "below" is the same partition: same vertices, reversed winding.
            let b = marching_cubes(&vol, &below());
            assert_eq!(b.positions, m.positions, "trial {trial}");
            let flipped: Vec<[u32; 3]> = m.triangles.iter().map(|t| [t[0], t[2], t[1]]).collect();
            assert_eq!(b.triangles, flipped, "trial {trial}");
            for (p, q) in b.normals.iter().zip(&m.normals) {
                assert_eq!(*p, q.map(|c| -c), "trial {trial}");
            }
        }
    }
}

#[test]
fn many_slabs_stitch_watertight() {
    // Tall in z so the work is split into many slabs; surfaces cross every slab boundary.
    let dims = [20, 18, 150];
    let data = grid(dims, |x, y, z| {
        let d = ((x - 9.5).powi(2) + (y - 8.5).powi(2)).sqrt() - 5.0 - 2.0 * (z * 0.3).sin();
        d.max(3.0 - z).max(z - 146.0)
    });
    let vol = Volume::from_spacing(dims, [1.0; 3], data).unwrap();
    let m = marching_cubes(&vol, &below());
    assert_watertight(&m, "column");
    assert!(m.signed_volume() > 0.0);
    // Deterministic regardless of scheduling.
    assert_eq!(marching_cubes(&vol, &below()), m);
}

#[test]
fn open_surface_frames_and_degenerate_inputs() {
    // A plane crossing the whole grid: open at the border, no panic, normals towards -z.
    let dims = [6, 5, 4];
    let plane = Volume::from_spacing(dims, [1.0; 3], grid(dims, |_, _, z| z - 1.5)).unwrap();
    let m = marching_cubes(&plane, &below());
    assert_eq!(m.positions.len(), 6 * 5);
    assert!((m.area() - 5.0 * 4.0).abs() < 1e-4);
    assert!(
        m.normals.iter().all(|n| (n[2] - 1.0).abs() < 1e-6),
        "outward = +z, away from z < 1.5"
    );
    assert!(m.positions.iter().all(|p| (p[2] - 1.5).abs() < 1e-6));

    // 4-D: frame selection; an out-of-range frame gives an empty mesh.
    let (n, r) = (16, 5.0);
    let mut data = sphere_sdf(n, r);
    data.extend(sphere_sdf(n, 6.0));
    let vol = Volume::new([n; 3], 2, [1.0; 3], IDENTITY, data).unwrap();
    let f0 = marching_cubes(&vol, &below());
    let f1 = marching_cubes(&vol, &IsoOptions { frame: 1, ..below() });
    assert!(f1.signed_volume() > f0.signed_volume() * 1.5);
    assert!(
        marching_cubes(&vol, &IsoOptions { frame: 2, ..below() })
            .triangles
            .is_empty()
    );

    // Constant, all-NaN, infinite and too-thin grids.
    for data in [vec![1.0f32; 27], vec![f32::NAN; 27], vec![f32::INFINITY; 27]] {
        let vol = Volume::from_spacing([3; 3], [1.0; 3], data).unwrap();
        assert!(marching_cubes(&vol, &IsoOptions::default()).triangles.is_empty());
        assert!(marching_cubes(&vol, &below()).triangles.is_empty());
    }
    // A singular affine (flattened z): no gradient normals possible, face normals instead.
    let mut flat = IDENTITY;
    flat[2][2] = 0.0;
    let vol = Volume::new([n; 3], 1, [1.0; 3], flat, sphere_sdf(n, r)).unwrap();
    let m = marching_cubes(&vol, &below());
    assert!(!m.triangles.is_empty());
    assert_eq!(m.normals.len(), m.positions.len());
    assert!(m.normals.iter().flatten().all(|c| c.is_finite()));
    // The smallest grid that can hold a surface.
    let two = Volume::from_spacing([2, 2, 2], [1.0; 3], vec![1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0]).unwrap();
    let m = marching_cubes(&two, &IsoOptions::default());
    assert_eq!((m.positions.len(), m.triangles.len()), (3, 1));
    assert!(m.normals.iter().all(|n| n.iter().all(|&c| c > 0.3)), "{:?}", m.normals);
    let thin = Volume::from_spacing([5, 5, 1], [1.0; 3], vec![1.0; 25]).unwrap();
    assert!(marching_cubes(&thin, &IsoOptions::default()).positions.is_empty());
    let mut inf = vec![-1.0f32; 27];
    inf[13] = f32::INFINITY;
    let vol = Volume::from_spacing([3; 3], [1.0; 3], inf).unwrap();
    let m = marching_cubes(&vol, &IsoOptions::default());
    assert_watertight(&m, "infinite centre");
    assert!(m.positions.iter().flatten().all(|c| c.is_finite()));
}

/// Timing of a 256³ sphere SDF (run with `cargo test --release --test isosurface -- --ignored
/// --nocapture`).
#[test]
#[ignore]
fn timing_256() {
    let n = 256;
    let vol = Volume::from_spacing([n; 3], [1.0; 3], sphere_sdf(n, 100.0)).unwrap();
    let m = marching_cubes(&vol, &below());
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let m2 = marching_cubes(&vol, &below());
        best = best.min(t.elapsed().as_secs_f64());
        assert_eq!(m2.triangles.len(), m.triangles.len());
    }
    eprintln!(
        "256³ sphere SDF: {} vertices, {} triangles, best of 5 {:.1} ms on {} threads",
        m.positions.len(),
        m.triangles.len(),
        best * 1e3,
        rayon::current_num_threads()
    );
}
