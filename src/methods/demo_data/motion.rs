//! Procedural deforming shapes (the 4D demo data): a bending capsule, a twisting bar, a breathing
//! ellipsoid and a walking stick figure, as mesh sequences of constant topology with exact
//! correspondences, plus sparse noisy point sequences sampled on them — the inputs Motion2VecSets
//! reconstructs from (`shared/research/motion2vecsets.md` §6, §14).
//!
//! Each shape is a rest solid (an SDF from [`super::shapes`], meshed once by marching cubes) and
//! an analytic map from rest points to their place at phase `s ∈ [0, 1)` of a cycle. Frames apply
//! the map to the rest mesh's vertices, so frame `t`'s vertex `i` is the same material point in
//! every frame (the tracking Motion2VecSets' output has by construction). Sequences are centred
//! and scaled into Motion2VecSets' unit cube (every coordinate within ±0.45 over all frames, the
//! cube being [-0.5, 0.5]³). Synthetic, reproducible from a seed.

use super::shapes::{Op, Primitive, Shape};
use crate::core::diffusion::Rng;
use crate::core::motion::MotionSequence;
use crate::core::{Mesh, VolumeError};
use crate::methods::isosurface::{Inside, IsoOptions, marching_cubes};
use crate::methods::metrics::shape::{sample_point, surface_samples};

/// The kinds of motion, in the order `demo-data motion` cycles through them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MotionKind {
    BendingCapsule,
    TwistingBar,
    BreathingEllipsoid,
    WalkingFigure,
}

impl MotionKind {
    pub const ALL: [MotionKind; 4] = [
        MotionKind::BendingCapsule,
        MotionKind::TwistingBar,
        MotionKind::BreathingEllipsoid,
        MotionKind::WalkingFigure,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MotionKind::BendingCapsule => "bending_capsule",
            MotionKind::TwistingBar => "twisting_bar",
            MotionKind::BreathingEllipsoid => "breathing_ellipsoid",
            MotionKind::WalkingFigure => "walking_figure",
        }
    }
}

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MotionSpec {
    pub kind: MotionKind,
    /// Frames per sequence (Motion2VecSets evaluates 17: one shape frame, 16 deformation frames).
    pub frames: usize,
    /// Marching-cubes grid of the rest shape.
    pub resolution: usize,
    /// Shape proportions and motion amplitude vary with the seed; seed 0 is the canonical one.
    pub seed: u64,
    /// Frames per second for playback.
    pub fps: f32,
}

impl MotionSpec {
    pub fn new(kind: MotionKind) -> Self {
        Self {
            kind,
            frames: 17,
            resolution: 64,
            seed: 0,
            fps: 12.0,
        }
    }
}

/// A generated sequence with the rest mesh it was made from.
#[derive(Clone, Debug)]
pub struct GeneratedMotion {
    pub name: String,
    pub sequence: MotionSequence,
}

/// Parameters drawn from the seed: a factor near 1 per proportion and per amplitude.
struct Variation {
    size: f64,
    amplitude: f64,
    phase: f64,
}

impl Variation {
    fn of(seed: u64) -> Self {
        if seed == 0 {
            return Self {
                size: 1.0,
                amplitude: 1.0,
                phase: 0.0,
            };
        }
        let mut rng = Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        Self {
            size: 0.8 + 0.4 * rng.uniform(),
            amplitude: 0.7 + 0.6 * rng.uniform(),
            phase: rng.uniform(),
        }
    }
}

/// Generates one sequence.
pub fn generate(spec: &MotionSpec) -> Result<GeneratedMotion, VolumeError> {
    let v = Variation::of(spec.seed);
    let rig = Rig::new(spec.kind, &v);
    let rest = rest_mesh(&rig.shape, spec.resolution.max(8))?;
    let frames = spec.frames.max(1);
    let weights: Vec<Vec<(usize, f64)>> = rest.positions.iter().map(|p| rig.skin(to64(*p))).collect();
    let raw: Vec<Vec<[f64; 3]>> = (0..frames)
        .map(|t| {
            let s = (t as f64 / frames as f64 + v.phase).fract();
            let pose = rig.pose(s, v.amplitude);
            rest.positions
                .iter()
                .zip(&weights)
                .map(|(p, w)| rig.deform(to64(*p), s, v.amplitude, &pose, w))
                .collect()
        })
        .collect();
    let sequence = MotionSequence {
        frames: fit_unit_cube(&raw),
        triangles: rest.triangles,
        fps: spec.fps,
    };
    let name = if spec.seed == 0 {
        spec.kind.name().to_string()
    } else {
        format!("{}_{:03}", spec.kind.name(), spec.seed)
    };
    Ok(GeneratedMotion { name, sequence })
}

fn to64(p: [f32; 3]) -> [f64; 3] {
    p.map(f64::from)
}

fn rest_mesh(shape: &Shape, resolution: usize) -> Result<Mesh, VolumeError> {
    let volume = shape.sample(resolution)?;
    Ok(marching_cubes(
        &volume,
        &IsoOptions {
            level: 0.0,
            inside: Inside::Below,
            frame: 0,
        },
    ))
}

/// Centres the whole sequence's box at the origin and scales it uniformly so every coordinate
/// of every frame lies within ±0.45.
fn fit_unit_cube(frames: &[Vec<[f64; 3]>]) -> Vec<Vec<[f32; 3]>> {
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for p in frames.iter().flatten() {
        for k in 0..3 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    let centre = [0, 1, 2].map(|k| 0.5 * (lo[k] + hi[k]));
    let half = (0..3).map(|k| 0.5 * (hi[k] - lo[k])).fold(1e-9, f64::max);
    let scale = 0.45 / half;
    frames
        .iter()
        .map(|f| {
            f.iter()
                .map(|p| [0, 1, 2].map(|k| ((p[k] - centre[k]) * scale) as f32))
                .collect()
        })
        .collect()
}

/// Samples `count` points on frame 0's surface (area-weighted, seeded) and follows them through
/// every frame by their barycentric coordinates, adding Gaussian noise of standard deviation
/// `noise` per coordinate: Motion2VecSets' sparse input (300–512 points, σ = 0.001, same point
/// identities in all frames). Returns T frames of `count` points.
pub fn sample_sparse(seq: &MotionSequence, count: usize, noise: f32, seed: u64) -> Vec<Vec<[f32; 3]>> {
    let mut rng = Rng::new(seed);
    let frame0 = &seq.frames[0];
    // (triangle, barycentric) per sample; without faces, vertices picked uniformly.
    let mut picks = surface_samples(frame0, &seq.triangles, count, &mut rng);
    if picks.is_empty() && !frame0.is_empty() {
        picks = (0..count)
            .map(|_| {
                (
                    ((rng.uniform() * frame0.len() as f64) as usize).min(frame0.len() - 1),
                    [1.0, 0.0, 0.0],
                )
            })
            .collect();
    }
    seq.frames
        .iter()
        .map(|frame| {
            picks
                .iter()
                .map(|&(i, w)| {
                    let p = if seq.triangles.is_empty() {
                        frame[i]
                    } else {
                        sample_point(frame, &seq.triangles, (i, w))
                    };
                    p.map(|c| c + noise * rng.normal() as f32)
                })
                .collect()
        })
        .collect()
}

/// Dense surface points per kept point drawn before the visibility test.
const SCAN_OVERSAMPLE: usize = 40;
/// Dense samples per depth-buffer pixel (about half of them face the scanner).
const SAMPLES_PER_PIXEL: f32 = 6.0;

/// A depth scan of every frame from one fixed direction `view` (pointing from the scanner into
/// the scene): `count` points per frame that the scanner sees, drawn independently per frame (no
/// correspondence, as a real scan has none), with Gaussian noise `noise`. Motion2VecSets'
/// partial input. Visibility is an orthographic depth buffer over the frame's extent, with
/// pixels sized so that each holds a few dense surface samples: a sample is seen when it is
/// within one pixel's depth of the nearest sample in its pixel. A frame with fewer visible samples than `count` repeats some.
pub fn sample_partial(seq: &MotionSequence, count: usize, view: [f32; 3], noise: f32, seed: u64) -> Vec<Vec<[f32; 3]>> {
    let mut rng = Rng::new(seed);
    let norm = (view[0] * view[0] + view[1] * view[1] + view[2] * view[2])
        .sqrt()
        .max(1e-12);
    let d = view.map(|c| c / norm);
    // An orthonormal image basis (u, v) perpendicular to d.
    let helper = if d[1].abs() < 0.9 {
        [0.0, 1.0, 0.0]
    } else {
        [1.0, 0.0, 0.0]
    };
    let cross = |a: [f32; 3], b: [f32; 3]| {
        [
            a[1] * b[2] - a[2] * b[1],
            a[2] * b[0] - a[0] * b[2],
            a[0] * b[1] - a[1] * b[0],
        ]
    };
    let unit = |a: [f32; 3]| {
        let n = (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt().max(1e-12);
        a.map(|c| c / n)
    };
    let u = unit(cross(helper, d));
    let v = cross(d, u);
    let dot = |a: [f32; 3], b: [f32; 3]| a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
    seq.frames
        .iter()
        .map(|frame| {
            let dense: Vec<[f32; 3]> = if seq.triangles.is_empty() {
                frame.clone()
            } else {
                surface_samples(frame, &seq.triangles, count * SCAN_OVERSAMPLE, &mut rng)
                    .into_iter()
                    .map(|s| sample_point(frame, &seq.triangles, s))
                    .collect()
            };
            if dense.is_empty() || count == 0 {
                return Vec::new();
            }
            let image: Vec<(f32, f32, f32)> = dense.iter().map(|&p| (dot(p, u), dot(p, v), dot(p, d))).collect();
            let (mut lo, mut hi) = ([f32::MAX; 2], [f32::MIN; 2]);
            for &(x, y, _) in &image {
                lo = [lo[0].min(x), lo[1].min(y)];
                hi = [hi[0].max(x), hi[1].max(y)];
            }
            let side = ((dense.len() as f32 / SAMPLES_PER_PIXEL).sqrt() as usize).clamp(4, 512);
            let pixel = ((hi[0] - lo[0]).max(hi[1] - lo[1]) / side as f32).max(1e-6);
            let cell = |x: f32, y: f32| {
                let i = (((x - lo[0]) / pixel) as usize).min(side - 1);
                let j = (((y - lo[1]) / pixel) as usize).min(side - 1);
                j * side + i
            };
            let mut nearest = vec![f32::MAX; side * side];
            for &(x, y, z) in &image {
                let c = cell(x, y);
                nearest[c] = nearest[c].min(z);
            }
            let seen: Vec<usize> = image
                .iter()
                .enumerate()
                .filter(|(_, (x, y, z))| *z <= nearest[cell(*x, *y)] + pixel)
                .map(|(i, _)| i)
                .collect();
            (0..count)
                .map(|k| {
                    let i = if seen.len() >= count {
                        seen[k * seen.len() / count]
                    } else {
                        seen[((rng.uniform() * seen.len() as f64) as usize).min(seen.len() - 1)]
                    };
                    dense[i].map(|c| c + noise * rng.normal() as f32)
                })
                .collect()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Shapes and their motion

/// A rigid transform as a 3×3 rotation and a translation: p ↦ R·p + t.
#[derive(Clone, Copy, Debug)]
struct Rigid {
    r: [[f64; 3]; 3],
    t: [f64; 3],
}

impl Rigid {
    const IDENTITY: Rigid = Rigid {
        r: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        t: [0.0; 3],
    };

    /// Rotation by `angle` about the x axis through `pivot` (the sagittal swing of a limb).
    fn swing_x(angle: f64, pivot: [f64; 3]) -> Rigid {
        let (s, c) = angle.sin_cos();
        let r = [[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]];
        let rp = mat_vec(&r, pivot);
        Rigid {
            r,
            t: [pivot[0] - rp[0], pivot[1] - rp[1], pivot[2] - rp[2]],
        }
    }

    fn apply(&self, p: [f64; 3]) -> [f64; 3] {
        let q = mat_vec(&self.r, p);
        [q[0] + self.t[0], q[1] + self.t[1], q[2] + self.t[2]]
    }

    /// `self ∘ inner`: first `inner`, then `self`.
    fn after(&self, inner: &Rigid) -> Rigid {
        let mut r = [[0.0; 3]; 3];
        for (i, row) in r.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (0..3).map(|k| self.r[i][k] * inner.r[k][j]).sum();
            }
        }
        Rigid {
            r,
            t: self.apply(inner.t),
        }
    }
}

fn mat_vec(r: &[[f64; 3]; 3], p: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|i| r[i][0] * p[0] + r[i][1] * p[1] + r[i][2] * p[2])
}

/// One bone of the stick figure: a segment of the rest pose and its parent.
struct Bone {
    a: [f64; 3],
    b: [f64; 3],
    parent: Option<usize>,
}

/// A rest shape and how it moves.
struct Rig {
    kind: MotionKind,
    shape: Shape,
    /// Rest length along z (bending and twisting shapes).
    length: f64,
    bones: Vec<Bone>,
}

const TORSO: usize = 0;
const THIGH: [usize; 2] = [1, 2];
const SHIN: [usize; 2] = [3, 4];
const UPPER_ARM: [usize; 2] = [5, 6];
const FOREARM: [usize; 2] = [7, 8];
/// Width of the blend between neighbouring bones' transforms (rest units).
const SKIN_WIDTH: f64 = 0.06;

impl Rig {
    fn new(kind: MotionKind, v: &Variation) -> Self {
        let s = v.size;
        let capsule = |a: [f64; 3], b: [f64; 3], radius: f64| Shape::Primitive(Primitive::Capsule { a, b, radius });
        let (shape, length, bones) = match kind {
            MotionKind::BendingCapsule => {
                let half = 0.6 * s.min(1.2);
                (
                    capsule([0.0, 0.0, -half], [0.0, 0.0, half], 0.16 * s),
                    2.0 * half,
                    Vec::new(),
                )
            }
            MotionKind::TwistingBar => {
                let half = [0.28 * s, 0.12 * s, 0.6];
                let bar = Shape::Primitive(Primitive::Box { center: [0.0; 3], half });
                (bar, 1.2, Vec::new())
            }
            MotionKind::BreathingEllipsoid => (
                Shape::Primitive(Primitive::Sphere {
                    center: [0.0; 3],
                    radius: 0.45,
                }),
                0.9,
                Vec::new(),
            ),
            MotionKind::WalkingFigure => {
                let w = 0.09 * s; // hip and shoulder half-width
                let hip = |side: f64| [side * w, 0.0, -0.05];
                let knee = |side: f64| [side * w, 0.0, -0.42];
                let foot = |side: f64| [side * w, 0.0, -0.78];
                let shoulder = |side: f64| [side * (w + 0.09), 0.0, 0.38];
                let elbow = |side: f64| [side * (w + 0.12), 0.0, 0.12];
                let hand = |side: f64| [side * (w + 0.13), 0.0, -0.12];
                let mut bones = vec![Bone {
                    a: [0.0, 0.0, -0.05],
                    b: [0.0, 0.0, 0.45],
                    parent: None,
                }];
                for side in [-1.0, 1.0] {
                    bones.push(Bone {
                        a: hip(side),
                        b: knee(side),
                        parent: Some(TORSO),
                    });
                }
                for (i, side) in [-1.0, 1.0].into_iter().enumerate() {
                    bones.push(Bone {
                        a: knee(side),
                        b: foot(side),
                        parent: Some(THIGH[i]),
                    });
                }
                for side in [-1.0, 1.0] {
                    bones.push(Bone {
                        a: shoulder(side),
                        b: elbow(side),
                        parent: Some(TORSO),
                    });
                }
                for (i, side) in [-1.0, 1.0].into_iter().enumerate() {
                    bones.push(Bone {
                        a: elbow(side),
                        b: hand(side),
                        parent: Some(UPPER_ARM[i]),
                    });
                }
                let radius = |i: usize| match i {
                    TORSO => 0.11 * s,
                    1..=4 => 0.06,
                    _ => 0.045,
                };
                let mut shape = Shape::Primitive(Primitive::Sphere {
                    center: [0.0, 0.0, 0.62],
                    radius: 0.13,
                });
                for (i, b) in bones.iter().enumerate() {
                    shape = shape.combine(Op::SmoothUnion(0.03), capsule(b.a, b.b, radius(i)));
                }
                (shape, 1.5, bones)
            }
        };
        Self {
            kind,
            shape,
            length,
            bones,
        }
    }

    /// Each bone's rigid transform at phase `s` (empty for shapes without bones).
    fn pose(&self, s: f64, amplitude: f64) -> Vec<Rigid> {
        if self.bones.is_empty() {
            return Vec::new();
        }
        let phi = std::f64::consts::TAU * s;
        let mut local = vec![Rigid::IDENTITY; self.bones.len()];
        for (i, sign) in [(0usize, 1.0), (1, -1.0)] {
            let swing = sign * 0.5 * amplitude * phi.sin();
            local[THIGH[i]] = Rigid::swing_x(swing, self.bones[THIGH[i]].a);
            // The knee bends (the foot goes back) while the leg swings forward.
            let bend = -0.7 * amplitude * (sign * phi.cos()).max(0.0);
            local[SHIN[i]] = Rigid::swing_x(bend, self.bones[SHIN[i]].a);
            local[UPPER_ARM[i]] = Rigid::swing_x(-swing * 0.8, self.bones[UPPER_ARM[i]].a);
            local[FOREARM[i]] = Rigid::swing_x(0.3 + 0.2 * amplitude * phi.sin() * sign, self.bones[FOREARM[i]].a);
        }
        // The body bobs twice per stride.
        local[TORSO] = Rigid {
            t: [0.0, 0.0, 0.02 * amplitude * (2.0 * phi).cos()],
            ..Rigid::IDENTITY
        };
        let mut world: Vec<Rigid> = Vec::with_capacity(self.bones.len());
        for (i, bone) in self.bones.iter().enumerate() {
            let w = match bone.parent {
                Some(p) => world[p].after(&local[i]),
                None => local[i],
            };
            world.push(w);
        }
        world
    }

    /// Skinning weights of a rest point: bones within a blend width of the nearest, by distance.
    fn skin(&self, p: [f64; 3]) -> Vec<(usize, f64)> {
        if self.bones.is_empty() {
            return Vec::new();
        }
        let d: Vec<f64> = self.bones.iter().map(|b| segment_distance(p, b.a, b.b)).collect();
        let nearest = d.iter().copied().fold(f64::INFINITY, f64::min);
        let mut w: Vec<(usize, f64)> = d
            .iter()
            .enumerate()
            .filter(|(_, di)| **di < nearest + 2.0 * SKIN_WIDTH)
            .map(|(i, di)| (i, (-((di - nearest) / SKIN_WIDTH).powi(2)).exp()))
            .collect();
        let total: f64 = w.iter().map(|x| x.1).sum();
        for x in &mut w {
            x.1 /= total;
        }
        w
    }

    /// Where rest point `p` is at phase `s`.
    fn deform(&self, p: [f64; 3], s: f64, amplitude: f64, pose: &[Rigid], skin: &[(usize, f64)]) -> [f64; 3] {
        let wave = (std::f64::consts::TAU * s).sin();
        match self.kind {
            MotionKind::BendingCapsule => {
                // Bends in the x–z plane about the centre: arc of curvature κ through the axis.
                let kappa = 1.8 * amplitude * wave / self.length;
                if kappa.abs() < 1e-9 {
                    return p;
                }
                let r = 1.0 / kappa;
                let phi = kappa * p[2];
                [r - (r - p[0]) * phi.cos(), p[1], (r - p[0]) * phi.sin()]
            }
            MotionKind::TwistingBar => {
                // Rotation about z growing linearly along the bar, ±70° at the ends.
                let angle = 1.2 * amplitude * wave * p[2] / (0.5 * self.length);
                let (sn, c) = angle.sin_cos();
                [c * p[0] - sn * p[1], sn * p[0] + c * p[1], p[2]]
            }
            MotionKind::BreathingEllipsoid => {
                // An ellipsoid whose axes breathe out of phase, with a slow twist.
                let cos = (std::f64::consts::TAU * s).cos();
                let a = [
                    1.4 * (1.0 + 0.3 * amplitude * wave),
                    0.9 * (1.0 - 0.2 * amplitude * wave),
                    0.8 * (1.0 + 0.25 * amplitude * cos),
                ];
                let q = [a[0] * p[0], a[1] * p[1], a[2] * p[2]];
                let angle = 0.8 * amplitude * wave * q[2];
                let (sn, c) = angle.sin_cos();
                [c * q[0] - sn * q[1], sn * q[0] + c * q[1], q[2]]
            }
            MotionKind::WalkingFigure => {
                let mut out = [0.0; 3];
                for &(bone, w) in skin {
                    let q = pose[bone].apply(p);
                    for k in 0..3 {
                        out[k] += w * q[k];
                    }
                }
                out
            }
        }
    }
}

fn segment_distance(p: [f64; 3], a: [f64; 3], b: [f64; 3]) -> f64 {
    let ba = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    let pa = [p[0] - a[0], p[1] - a[1], p[2] - a[2]];
    let bb = ba[0] * ba[0] + ba[1] * ba[1] + ba[2] * ba[2];
    let t = if bb > 0.0 {
        ((pa[0] * ba[0] + pa[1] * ba[1] + pa[2] * ba[2]) / bb).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let d = [pa[0] - t * ba[0], pa[1] - t * ba[1], pa[2] - t * ba[2]];
    (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
}

/// Prefix of the sequences the app adds with "Add demo motion".
pub const VIEWER_DEMO_PREFIX: &str = "demo motion ";

/// The app's demo: a walking figure and a bending capsule at 48³ (fast to make), named with
/// [`VIEWER_DEMO_PREFIX`].
pub fn viewer_demo_sequences() -> Vec<(String, MotionSequence)> {
    [MotionKind::WalkingFigure, MotionKind::BendingCapsule]
        .into_iter()
        .filter_map(|kind| {
            let spec = MotionSpec {
                resolution: 48,
                ..MotionSpec::new(kind)
            };
            generate(&spec)
                .ok()
                .map(|g| (format!("{VIEWER_DEMO_PREFIX}{}", g.name), g.sequence))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(kind: MotionKind) -> GeneratedMotion {
        generate(&MotionSpec {
            frames: 6,
            resolution: 24,
            ..MotionSpec::new(kind)
        })
        .unwrap()
    }

    #[test]
    fn every_kind_moves_inside_the_unit_cube_with_constant_topology() {
        for kind in MotionKind::ALL {
            let g = small(kind);
            let seq = &g.sequence;
            seq.validate().unwrap();
            assert_eq!(seq.len(), 6, "{kind:?}");
            assert!(seq.is_mesh() && seq.triangles.len() > 100, "{kind:?}");
            let (lo, hi) = seq.bounds().unwrap();
            let extent = lo.iter().chain(&hi).fold(0.0f32, |m, v| m.max(v.abs()));
            assert!((extent - 0.45).abs() < 1e-3, "{kind:?}: {extent}");
            // It moves: some vertex travels a tenth of the cube.
            assert!(seq.max_displacement() > 0.1, "{kind:?}: {}", seq.max_displacement());
        }
    }

    #[test]
    fn deformations_keep_the_surface_closed_and_its_volume_plausible() {
        for kind in MotionKind::ALL {
            let seq = small(kind).sequence;
            let v0 = seq.mesh_at(0.0).unwrap().signed_volume();
            for t in 1..seq.len() {
                let v = seq.mesh_at(t as f32).unwrap().signed_volume();
                // Outward winding survives (no inversion) and the solid neither vanishes nor
                // doubles: bending, twisting and skinning roughly preserve volume; breathing
                // changes it by its scale factors (≤ ~1.5×).
                assert!(
                    v > 0.0 && v / v0 > 0.6 && v / v0 < 1.6,
                    "{kind:?} frame {t}: {v} vs {v0}"
                );
            }
        }
    }

    #[test]
    fn a_partial_scan_sees_only_the_side_facing_the_scanner() {
        let seq = small(MotionKind::BreathingEllipsoid).sequence;
        let scans = sample_partial(&seq, 300, [0.0, 0.0, 1.0], 0.0, 7);
        assert_eq!(scans.len(), seq.len());
        for (t, (scan, frame)) in scans.iter().zip(&seq.frames).enumerate() {
            assert_eq!(scan.len(), 300);
            let (lo, hi) = crate::core::mesh::bounds(frame).unwrap();
            let mid = 0.5 * (lo[2] + hi[2]);
            // The scanner looks along +z: it sees the low-z half, never the far side.
            let near = scan.iter().filter(|p| p[2] < mid).count();
            assert!(near as f32 > 0.95 * scan.len() as f32, "frame {t}: {near} of 300 near");
        }
        // Frames are drawn independently: no correspondence to rely on.
        assert_ne!(scans[0][0], scans[1][0]);
    }

    #[test]
    fn seeds_vary_the_shape_and_zero_is_canonical() {
        let spec = MotionSpec {
            frames: 3,
            resolution: 20,
            ..MotionSpec::new(MotionKind::BendingCapsule)
        };
        let a = generate(&spec).unwrap();
        let b = generate(&MotionSpec { seed: 7, ..spec }).unwrap();
        assert_eq!(a.name, "bending_capsule");
        assert_eq!(b.name, "bending_capsule_007");
        assert_ne!(a.sequence.frames[1], b.sequence.frames[1]);
        assert_eq!(generate(&spec).unwrap().sequence, a.sequence);
    }

    #[test]
    fn sparse_points_follow_the_surface() {
        let seq = small(MotionKind::WalkingFigure).sequence;
        let sparse = sample_sparse(&seq, 64, 0.0, 3);
        assert_eq!(sparse.len(), seq.len());
        assert!(sparse.iter().all(|f| f.len() == 64));
        // Without noise every point lies on its frame's surface: within one triangle of a vertex.
        for (frame, points) in seq.frames.iter().zip(&sparse) {
            for p in points {
                let nearest = frame
                    .iter()
                    .map(|v| (0..3).map(|k| (v[k] - p[k]).powi(2)).sum::<f32>().sqrt())
                    .fold(f32::INFINITY, f32::min);
                assert!(nearest < 0.05, "{nearest}");
            }
        }
        let noisy = sample_sparse(&seq, 64, 0.01, 3);
        assert_ne!(noisy, sparse);
    }
}
