//! Procedural solid-geometry shapes as signed distance fields (the WaLa demo data).
//!
//! A [`Shape`] is a tree of primitives (sphere, box, cylinder, torus, capsule) combined by union,
//! intersection, difference and their smooth (polynomial) variants. Primitive distances are
//! exact (the standard closed forms); sharp combinations are exact outside and a bound inside,
//! smooth ones are close to the true distance away from the blend: good enough for marching
//! cubes and for a wavelet tree, and sign-correct everywhere.
//!
//! Units are normalised: the grid covers `[-1, 1)³` with voxel `i` at `2i/N − 1` along each
//! axis (WaLa's `v / N · 2 − 1` mapping of mesh vertices), and random shapes stay inside
//! about `±0.9` as WaLa's training shapes do. Negative inside.

use crate::core::diffusion::Rng;
use crate::core::{Affine, Volume, VolumeError};
use rayon::prelude::*;
use std::fmt;

pub type Vec3 = [f64; 3];

/// The default grid size of the demo data.
pub const DEFAULT_SIZE: usize = 64;

/// Primitive solids; `axis` (0, 1, 2 = x, y, z) is the symmetry axis of cylinders and tori.
#[derive(Clone, Debug, PartialEq)]
pub enum Primitive {
    Sphere {
        center: Vec3,
        radius: f64,
    },
    /// Axis-aligned box with half sizes `half`.
    Box {
        center: Vec3,
        half: Vec3,
    },
    /// Capped cylinder of radius `radius` and half height `half_height` along `axis`.
    Cylinder {
        center: Vec3,
        axis: usize,
        radius: f64,
        half_height: f64,
    },
    /// Torus around `axis`: ring radius `major`, tube radius `minor`.
    Torus {
        center: Vec3,
        axis: usize,
        major: f64,
        minor: f64,
    },
    /// Segment `a`–`b` swept by a ball of radius `radius`.
    Capsule {
        a: Vec3,
        b: Vec3,
        radius: f64,
    },
}

/// How two shapes are combined.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    Union,
    Intersection,
    /// The first minus the second.
    Difference,
    /// Polynomial smooth union with blend radius `k`.
    SmoothUnion(f64),
    SmoothIntersection(f64),
    SmoothDifference(f64),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    Primitive(Primitive),
    Combine(Op, Box<Shape>, Box<Shape>),
}

fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn dot(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn len(a: Vec3) -> f64 {
    dot(a, a).sqrt()
}

/// `(distance along axis, distance from axis)` of `p` relative to `c`.
fn axial(p: Vec3, c: Vec3, axis: usize) -> (f64, f64) {
    let d = sub(p, c);
    let (u, v) = ((axis + 1) % 3, (axis + 2) % 3);
    (d[axis], d[u].hypot(d[v]))
}

impl Primitive {
    /// Exact signed distance from `p`.
    pub fn sdf(&self, p: Vec3) -> f64 {
        match *self {
            Primitive::Sphere { center, radius } => len(sub(p, center)) - radius,
            Primitive::Box { center, half } => {
                let q = [0, 1, 2].map(|a| (p[a] - center[a]).abs() - half[a]);
                len(q.map(|v| v.max(0.0))) + q[0].max(q[1].max(q[2])).min(0.0)
            }
            Primitive::Cylinder {
                center,
                axis,
                radius,
                half_height,
            } => {
                let (h, r) = axial(p, center, axis);
                let d = [r - radius, h.abs() - half_height];
                d[0].max(d[1]).min(0.0) + d[0].max(0.0).hypot(d[1].max(0.0))
            }
            Primitive::Torus {
                center,
                axis,
                major,
                minor,
            } => {
                let (h, r) = axial(p, center, axis);
                (r - major).hypot(h) - minor
            }
            Primitive::Capsule { a, b, radius } => {
                let (pa, ba) = (sub(p, a), sub(b, a));
                let bb = dot(ba, ba);
                let t = if bb > 0.0 {
                    (dot(pa, ba) / bb).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                len(sub(pa, ba.map(|v| v * t))) - radius
            }
        }
    }

    /// Enclosed volume, closed form (used by tests and the recipe file).
    pub fn volume(&self) -> f64 {
        use std::f64::consts::PI;
        match *self {
            Primitive::Sphere { radius, .. } => 4.0 / 3.0 * PI * radius.powi(3),
            Primitive::Box { half, .. } => 8.0 * half[0] * half[1] * half[2],
            Primitive::Cylinder {
                radius, half_height, ..
            } => PI * radius * radius * 2.0 * half_height,
            Primitive::Torus { major, minor, .. } => 2.0 * PI * PI * major * minor * minor,
            Primitive::Capsule { a, b, radius } => PI * radius * radius * (len(sub(b, a)) + 4.0 / 3.0 * radius),
        }
    }
}

/// Polynomial smooth minimum (Quilez): equals `min` when `|a − b| ≥ k`.
fn smooth_min(a: f64, b: f64, k: f64) -> f64 {
    if k <= 0.0 {
        return a.min(b);
    }
    let h = (0.5 + 0.5 * (b - a) / k).clamp(0.0, 1.0);
    b + (a - b) * h - k * h * (1.0 - h)
}

impl Op {
    fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            Op::Union => a.min(b),
            Op::Intersection => a.max(b),
            Op::Difference => a.max(-b),
            Op::SmoothUnion(k) => smooth_min(a, b, k),
            Op::SmoothIntersection(k) => -smooth_min(-a, -b, k),
            Op::SmoothDifference(k) => -smooth_min(-a, b, k),
        }
    }
}

impl Shape {
    pub fn sdf(&self, p: Vec3) -> f64 {
        match self {
            Shape::Primitive(prim) => prim.sdf(p),
            Shape::Combine(op, a, b) => op.apply(a.sdf(p), b.sdf(p)),
        }
    }

    pub fn combine(self, op: Op, other: Shape) -> Shape {
        Shape::Combine(op, Box::new(self), Box::new(other))
    }

    /// Samples the SDF on an `n³` grid over `[-1, 1)³` (voxel `i` at `2i/n − 1`), as a volume
    /// whose world units are these normalised units (spacing `2/n`, origin −1).
    pub fn sample(&self, n: usize) -> Result<Volume, VolumeError> {
        let step = 2.0 / n as f64;
        let mut data = vec![0.0f32; n * n * n];
        if n > 0 {
            data.par_chunks_mut(n * n).enumerate().for_each(|(k, plane)| {
                for (r, v) in plane.iter_mut().enumerate() {
                    let p = [(r % n) as f64, (r / n) as f64, k as f64].map(|i| i * step - 1.0);
                    *v = self.sdf(p) as f32;
                }
            });
        }
        Volume::new([n; 3], 1, [step as f32; 3], grid_affine(n), data)
    }
}

/// Voxel → normalised world coordinates of an `n³` grid: `x = 2i/n − 1`.
pub fn grid_affine(n: usize) -> Affine {
    let s = 2.0 / n.max(1) as f64;
    [
        [s, 0.0, 0.0, -1.0],
        [0.0, s, 0.0, -1.0],
        [0.0, 0.0, s, -1.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
}

fn fmt_v(v: Vec3) -> String {
    format!("({:.3} {:.3} {:.3})", v[0], v[1], v[2])
}

impl fmt::Display for Primitive {
    /// A one-line recipe, e.g. `sphere(c=(0.100 0.000 -0.200) r=0.300)` (no commas, CSV-safe).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const AXES: [char; 3] = ['x', 'y', 'z'];
        match *self {
            Primitive::Sphere { center, radius } => write!(f, "sphere(c={} r={radius:.3})", fmt_v(center)),
            Primitive::Box { center, half } => write!(f, "box(c={} half={})", fmt_v(center), fmt_v(half)),
            Primitive::Cylinder {
                center,
                axis,
                radius,
                half_height,
            } => write!(
                f,
                "cylinder(c={} axis={} r={radius:.3} half_h={half_height:.3})",
                fmt_v(center),
                AXES[axis % 3]
            ),
            Primitive::Torus {
                center,
                axis,
                major,
                minor,
            } => write!(
                f,
                "torus(c={} axis={} R={major:.3} r={minor:.3})",
                fmt_v(center),
                AXES[axis % 3]
            ),
            Primitive::Capsule { a, b, radius } => {
                write!(f, "capsule(a={} b={} r={radius:.3})", fmt_v(a), fmt_v(b))
            }
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Op::Union => write!(f, "union"),
            Op::Intersection => write!(f, "intersection"),
            Op::Difference => write!(f, "difference"),
            Op::SmoothUnion(k) => write!(f, "smooth_union[k={k:.3}]"),
            Op::SmoothIntersection(k) => write!(f, "smooth_intersection[k={k:.3}]"),
            Op::SmoothDifference(k) => write!(f, "smooth_difference[k={k:.3}]"),
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Primitive(p) => write!(f, "{p}"),
            Shape::Combine(op, a, b) => write!(f, "{op}({a}; {b})"),
        }
    }
}

fn uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.uniform()
}

fn random_point(rng: &mut Rng, r: f64) -> Vec3 {
    [0, 1, 2].map(|_| uniform(rng, -r, r))
}

/// One random primitive whose extent stays inside ±0.9 (centre within ±0.35, size ≤ 0.5).
fn random_primitive(rng: &mut Rng, scale: f64) -> Primitive {
    let center = random_point(rng, 0.35);
    let axis = (rng.next_u64() % 3) as usize;
    match rng.next_u64() % 5 {
        0 => Primitive::Sphere {
            center,
            radius: uniform(rng, 0.2, 0.5) * scale,
        },
        1 => Primitive::Box {
            center,
            half: [0, 1, 2].map(|_| uniform(rng, 0.12, 0.4) * scale),
        },
        2 => Primitive::Cylinder {
            center,
            axis,
            radius: uniform(rng, 0.12, 0.35) * scale,
            half_height: uniform(rng, 0.15, 0.5) * scale,
        },
        3 => {
            let major = uniform(rng, 0.22, 0.4) * scale;
            Primitive::Torus {
                center,
                axis,
                major,
                minor: uniform(rng, 0.06, 0.45 * major.min(0.22)),
            }
        }
        _ => {
            let d = random_point(rng, 0.3 * scale);
            Primitive::Capsule {
                a: sub(center, d),
                b: [center[0] + d[0], center[1] + d[1], center[2] + d[2]],
                radius: uniform(rng, 0.08, 0.22) * scale,
            }
        }
    }
}

/// A random shape of 2 to 4 primitives from `seed`: a base solid, then unions (sharp or
/// smooth) that add material, and sometimes a smaller cutter removed by a (smooth) difference
/// or an intersection with a large box. Deterministic for a seed.
pub fn random_shape(seed: u64) -> Shape {
    let mut rng = Rng::new(seed);
    let parts = 2 + (rng.next_u64() % 3) as usize;
    let mut shape = Shape::Primitive(random_primitive(&mut rng, 1.0));
    for _ in 1..parts {
        let k = uniform(&mut rng, 0.03, 0.15);
        let op = match rng.next_u64() % 8 {
            0..=2 => Op::Union,
            3..=5 => Op::SmoothUnion(k),
            6 => Op::SmoothDifference(k * 0.5),
            _ => Op::Difference,
        };
        let scale = if matches!(op, Op::Difference | Op::SmoothDifference(_)) {
            0.6
        } else {
            1.0
        };
        shape = shape.combine(op, Shape::Primitive(random_primitive(&mut rng, scale)));
    }
    if rng.next_u64().is_multiple_of(6) {
        let half = [0, 1, 2].map(|_| uniform(&mut rng, 0.3, 0.6));
        let bounds = Primitive::Box {
            center: random_point(&mut rng, 0.15),
            half,
        };
        shape = shape.combine(Op::SmoothIntersection(0.03), Shape::Primitive(bounds));
    }
    shape
}

/// Samples [`random_shape`]s from consecutive seeds until one has enough solid voxels (at least
/// `min_fraction` of the grid inside) and none on the grid border; returns the seed used.
pub fn random_solid(seed: u64, n: usize, min_fraction: f64) -> Result<(u64, Shape, Volume), VolumeError> {
    let mut s = seed;
    loop {
        let shape = random_shape(s);
        let volume = shape.sample(n)?;
        let inside = volume.data().iter().filter(|&&v| v < 0.0).count();
        let border_inside = border_min(&volume) < 0.0;
        if inside as f64 >= min_fraction * (n * n * n) as f64 && !border_inside {
            return Ok((s, shape, volume));
        }
        // a different stream, far from the next user seeds
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    }
}

/// Smallest value on the grid's outer faces.
fn border_min(v: &Volume) -> f32 {
    let [nx, ny, nz] = v.dims();
    let d = v.data();
    let mut m = f32::INFINITY;
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                if x == 0 || y == 0 || z == 0 || x + 1 == nx || y + 1 == ny || z + 1 == nz {
                    m = m.min(d[x + nx * (y + ny * z)]);
                }
            }
        }
    }
    m
}

/// Names of the viewer's demo shapes start with this.
pub const VIEWER_DEMO_PREFIX: &str = "demo shape";

/// Grid of the viewer's demo shapes (the Shapes tab and `wala-latent`): WaLa's is 256³, this keeps
/// the demo quick on two cores.
pub const VIEWER_DEMO_GRID: usize = 128;

/// Two procedural solids (seeds 3 and 11) as SDF volumes on a [`VIEWER_DEMO_GRID`]³ grid, named
/// for the viewer.
pub fn viewer_demo_shapes() -> Vec<(String, Volume)> {
    [3u64, 11]
        .into_iter()
        .filter_map(|seed| random_solid(seed, VIEWER_DEMO_GRID, 0.01).ok())
        .map(|(seed, _, v)| (format!("{VIEWER_DEMO_PREFIX} {seed} (SDF {VIEWER_DEMO_GRID}³)"), v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitive_distances_at_known_points() {
        let s = Primitive::Sphere {
            center: [0.1, 0.0, 0.0],
            radius: 0.5,
        };
        assert!((s.sdf([0.1, 0.0, 0.0]) + 0.5).abs() < 1e-12);
        assert!((s.sdf([0.1, 0.0, 0.8]) - 0.3).abs() < 1e-12);
        let b = Primitive::Box {
            center: [0.0; 3],
            half: [0.2, 0.3, 0.4],
        };
        assert!((b.sdf([0.5, 0.0, 0.0]) - 0.3).abs() < 1e-12);
        assert!((b.sdf([0.5, 0.7, 0.0]) - 0.5).abs() < 1e-12); // corner: hypot(0.3, 0.4)
        assert!((b.sdf([0.0; 3]) + 0.2).abs() < 1e-12);
        let c = Primitive::Cylinder {
            center: [0.0; 3],
            axis: 2,
            radius: 0.3,
            half_height: 0.2,
        };
        assert!((c.sdf([0.0, 0.0, 0.5]) - 0.3).abs() < 1e-12);
        assert!((c.sdf([0.6, 0.0, 0.0]) - 0.3).abs() < 1e-12);
        let t = Primitive::Torus {
            center: [0.0; 3],
            axis: 1,
            major: 0.4,
            minor: 0.1,
        };
        assert!((t.sdf([0.4, 0.0, 0.0]) + 0.1).abs() < 1e-12);
        assert!((t.sdf([0.0, 0.3, 0.0]) - 0.4).abs() < 1e-12); // hypot(0.4, 0.3) − 0.1
        let k = Primitive::Capsule {
            a: [0.0; 3],
            b: [0.0, 0.0, 0.5],
            radius: 0.1,
        };
        assert!((k.sdf([0.0, 0.0, 0.8]) - 0.2).abs() < 1e-12);
        assert!((k.sdf([0.3, 0.0, 0.25]) - 0.2).abs() < 1e-12);
    }

    #[test]
    fn combinations_have_the_right_sign() {
        let a = Shape::Primitive(Primitive::Sphere {
            center: [-0.2, 0.0, 0.0],
            radius: 0.3,
        });
        let b = Shape::Primitive(Primitive::Sphere {
            center: [0.2, 0.0, 0.0],
            radius: 0.3,
        });
        let p_only_a = [-0.4, 0.0, 0.0];
        let p_both = [0.0; 3];
        for op in [Op::Union, Op::SmoothUnion(0.1)] {
            let s = a.clone().combine(op, b.clone());
            assert!(s.sdf(p_only_a) < 0.0 && s.sdf(p_both) < 0.0, "{op}");
        }
        let diff = a.clone().combine(Op::Difference, b.clone());
        assert!(diff.sdf(p_only_a) < 0.0 && diff.sdf(p_both) > 0.0);
        let inter = a.clone().combine(Op::SmoothIntersection(0.05), b.clone());
        assert!(inter.sdf(p_only_a) > 0.0 && inter.sdf(p_both) < 0.0);
        // the smooth union adds material in the blend, never removes it
        let su = a.clone().combine(Op::SmoothUnion(0.1), b.clone());
        let u = a.combine(Op::Union, b);
        for x in [-0.5, -0.1, 0.0, 0.05, 0.3] {
            assert!(su.sdf([x, 0.25, 0.0]) <= u.sdf([x, 0.25, 0.0]) + 1e-12);
        }
    }

    /// Euler characteristic `V − E + F` and whether every edge has exactly two triangles.
    fn topology(mesh: &crate::core::Mesh) -> (i64, bool) {
        let mut edges = std::collections::HashMap::new();
        for t in &mesh.triangles {
            for (a, b) in [(t[0], t[1]), (t[1], t[2]), (t[2], t[0])] {
                *edges.entry((a.min(b), a.max(b))).or_insert(0u32) += 1;
            }
        }
        let closed = edges.values().all(|&c| c == 2);
        let euler = mesh.positions.len() as i64 - edges.len() as i64 + mesh.triangles.len() as i64;
        (euler, closed)
    }

    fn iso(v: &Volume) -> crate::core::Mesh {
        use crate::methods::isosurface::{Inside, IsoOptions, marching_cubes};
        let opts = IsoOptions {
            level: 0.0,
            inside: Inside::Below,
            frame: 0,
        };
        marching_cubes(v, &opts)
    }

    #[test]
    fn sampled_sphere_is_exact_and_meshes_to_its_volume() {
        let sphere = Primitive::Sphere {
            center: [0.05, -0.1, 0.0],
            radius: 0.6,
        };
        let n = 64;
        let v = Shape::Primitive(sphere.clone()).sample(n).unwrap();
        // every voxel holds the exact distance of its centre (as f32)
        let step = 2.0 / n as f64;
        for &(i, j, k) in &[(0, 0, 0), (32, 30, 32), (10, 50, 20), (63, 1, 40)] {
            let p = [i as f64 * step - 1.0, j as f64 * step - 1.0, k as f64 * step - 1.0];
            let expected = (((p[0] - 0.05).powi(2) + (p[1] + 0.1).powi(2) + p[2].powi(2)).sqrt() - 0.6) as f32;
            assert_eq!(v.data()[i + n * (j + n * k)], expected);
        }
        let mesh = iso(&v);
        let (euler, closed) = topology(&mesh);
        assert!(
            closed && euler == 2,
            "sphere: closed {closed}, Euler characteristic {euler}"
        );
        let rel = (mesh.signed_volume() - sphere.volume()).abs() / sphere.volume();
        assert!(rel < 0.01, "sphere volume off by {rel:.4}");
        // vertices lie in the normalised world units of the grid
        let (lo, hi) = mesh.bounds().unwrap();
        assert!((lo[0] - (0.05 - 0.6)).abs() < 0.02 && (hi[1] - (-0.1 + 0.6)).abs() < 0.02);
    }

    #[test]
    fn box_and_torus_mesh_to_their_volume_and_topology() {
        let bx = Primitive::Box {
            center: [0.1, 0.0, -0.05],
            half: [0.5, 0.3, 0.4],
        };
        let torus = Primitive::Torus {
            center: [0.0; 3],
            axis: 2,
            major: 0.5,
            minor: 0.2,
        };
        for (prim, genus) in [(bx, 0), (torus, 1)] {
            let mesh = iso(&Shape::Primitive(prim.clone()).sample(64).unwrap());
            let (euler, closed) = topology(&mesh);
            assert!(
                closed && euler == 2 - 2 * genus,
                "{prim}: closed {closed}, Euler {euler}"
            );
            let rel = (mesh.signed_volume() - prim.volume()).abs() / prim.volume();
            assert!(rel < 0.02, "{prim}: volume off by {rel:.4}");
        }
    }

    #[test]
    fn random_shapes_mesh_to_closed_surfaces() {
        for seed in 0..6 {
            let (_, shape, v) = random_solid(seed, 48, 0.01).unwrap();
            let mesh = iso(&v);
            let (euler, closed) = topology(&mesh);
            assert!(closed, "seed {seed}: open mesh for {shape}");
            // a closed orientable surface (possibly several pieces): even Euler characteristic
            assert!(euler % 2 == 0, "seed {seed}: Euler characteristic {euler} for {shape}");
            let inside = v.data().iter().filter(|&&d| d < 0.0).count() as f64 * (2.0f64 / 48.0).powi(3);
            let rel = (mesh.signed_volume() - inside).abs() / inside;
            assert!(rel < 0.1, "seed {seed}: mesh volume vs voxel count off by {rel:.3}");
        }
    }

    #[test]
    fn random_shapes_are_reproducible_and_fit_the_cube() {
        for seed in 0..20 {
            assert_eq!(random_shape(seed), random_shape(seed));
            let (_, shape, v) = random_solid(seed, 24, 0.005).unwrap();
            assert!(border_min(&v) >= 0.0, "seed {seed}: {shape}");
            assert!(!shape.to_string().contains(','), "recipes are CSV-safe");
        }
        assert_ne!(random_shape(1), random_shape(2));
    }
}
