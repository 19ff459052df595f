//! Shape-reconstruction metrics as Occupancy Networks and Motion2VecSets report them
//! (`shared/research/motion2vecsets.md` §8):
//!
//! - **IoU**: occupancy of points drawn uniformly in a box, inside-tested against both meshes
//!   (ray parity along +z, triangles binned over x–y so a query visits only its column);
//!   |both| / |either|. The reference uses 100k points in its evaluation box.
//! - **Chamfer-L1** (ONet's definition): surface points sampled on both meshes by area;
//!   accuracy = mean distance from a predicted point to the nearest true point, completeness =
//!   the reverse; the Chamfer-L1 is their mean (Euclidean distances, not squared).
//! - **Correspondence L2**: each predicted frame-1 vertex is matched to its nearest true frame-1
//!   point, that point's trajectory is followed, and the error at frame t is the mean distance
//!   between the predicted vertex and its matched true point at t.
//!
//! Sampling is seeded (`core::diffusion::Rng`), so a metric is reproducible, not torch's draw.

use crate::core::Mesh;
use crate::core::diffusion::Rng;
use crate::core::motion::MotionSequence;
use rayon::prelude::*;

/// `count` surface samples as (triangle, barycentric weights), area-weighted.
pub fn surface_samples(
    positions: &[[f32; 3]],
    triangles: &[[u32; 3]],
    count: usize,
    rng: &mut Rng,
) -> Vec<(usize, [f32; 3])> {
    let mut cumulative = Vec::with_capacity(triangles.len());
    let mut total = 0.0f64;
    for t in triangles {
        total += triangle_area(t.map(|i| positions[i as usize]));
        cumulative.push(total);
    }
    if triangles.is_empty() || total <= 0.0 {
        return Vec::new();
    }
    (0..count)
        .map(|_| {
            let r = rng.uniform() * total;
            let tri = cumulative.partition_point(|&c| c < r).min(triangles.len() - 1);
            let (mut u, mut v) = (rng.uniform(), rng.uniform());
            if u + v > 1.0 {
                (u, v) = (1.0 - u, 1.0 - v);
            }
            (tri, [(1.0 - u - v) as f32, u as f32, v as f32])
        })
        .collect()
}

/// The point of a sample on a mesh with these positions.
pub fn sample_point(positions: &[[f32; 3]], triangles: &[[u32; 3]], sample: (usize, [f32; 3])) -> [f32; 3] {
    let (tri, w) = sample;
    let c = triangles[tri].map(|i| positions[i as usize]);
    [0, 1, 2].map(|k| w[0] * c[0][k] + w[1] * c[1][k] + w[2] * c[2][k])
}

/// `count` points on the mesh's surface, area-weighted, from `seed`.
pub fn sample_surface(mesh: &Mesh, count: usize, seed: u64) -> Vec<[f32; 3]> {
    let mut rng = Rng::new(seed);
    surface_samples(&mesh.positions, &mesh.triangles, count, &mut rng)
        .into_iter()
        .map(|s| sample_point(&mesh.positions, &mesh.triangles, s))
        .collect()
}

fn triangle_area(c: [[f32; 3]; 3]) -> f64 {
    let u = [0, 1, 2].map(|k| f64::from(c[1][k] - c[0][k]));
    let v = [0, 1, 2].map(|k| f64::from(c[2][k] - c[0][k]));
    let x = [
        u[1] * v[2] - u[2] * v[1],
        u[2] * v[0] - u[0] * v[2],
        u[0] * v[1] - u[1] * v[0],
    ];
    0.5 * (x[0] * x[0] + x[1] * x[1] + x[2] * x[2]).sqrt()
}

/// Nearest-neighbour queries over a fixed point set: a uniform grid searched ring by ring.
pub struct NearestPoints<'a> {
    points: &'a [[f32; 3]],
    lo: [f32; 3],
    cell: f32,
    dims: [usize; 3],
    /// Point indices sorted by cell, and each cell's start in that list.
    order: Vec<u32>,
    starts: Vec<u32>,
}

impl<'a> NearestPoints<'a> {
    pub fn new(points: &'a [[f32; 3]]) -> Self {
        let (lo, hi) = crate::core::mesh::bounds(points).unwrap_or(([0.0; 3], [0.0; 3]));
        let extent = (0..3).map(|k| hi[k] - lo[k]).fold(1e-6f32, f32::max);
        // About two points per cell.
        let per_axis = ((points.len() as f32 / 2.0).cbrt().ceil() as usize).clamp(1, 256);
        let cell = extent / per_axis as f32;
        let dims = [0, 1, 2].map(|k| (((hi[k] - lo[k]) / cell) as usize + 1).min(per_axis + 1));
        let index = |p: &[f32; 3]| -> usize {
            let c = [0, 1, 2].map(|k| (((p[k] - lo[k]) / cell) as usize).min(dims[k] - 1));
            (c[2] * dims[1] + c[1]) * dims[0] + c[0]
        };
        let mut counts = vec![0u32; dims[0] * dims[1] * dims[2] + 1];
        for p in points {
            counts[index(p) + 1] += 1;
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let starts = counts.clone();
        let mut fill = counts;
        let mut order = vec![0u32; points.len()];
        for (i, p) in points.iter().enumerate() {
            let c = index(p);
            order[fill[c] as usize] = i as u32;
            fill[c] += 1;
        }
        Self {
            points,
            lo,
            cell,
            dims,
            order,
            starts,
        }
    }

    /// The nearest point's index and distance; `None` for an empty set.
    pub fn nearest(&self, q: [f32; 3]) -> Option<(usize, f32)> {
        if self.points.is_empty() {
            return None;
        }
        let home = [0, 1, 2].map(|k| ((q[k] - self.lo[k]) / self.cell).floor() as i64);
        let mut best: Option<(usize, f32)> = None;
        let max_ring =
            self.dims.iter().copied().max().unwrap_or(1) as i64 + home.iter().map(|h| h.abs()).max().unwrap_or(0);
        for ring in 0..=max_ring {
            // Every point in ring r+1 or beyond is at least r cells away.
            if let Some((_, d)) = best
                && d < (ring as f32 - 1.0).max(0.0) * self.cell
            {
                break;
            }
            self.visit_ring(home, ring, |i| {
                let p = self.points[i];
                let d = ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2)).sqrt();
                if best.is_none_or(|(_, b)| d < b) {
                    best = Some((i, d));
                }
            });
        }
        best
    }

    /// Calls `f` on every point in the cells at Chebyshev distance `ring` from `home`.
    fn visit_ring(&self, home: [i64; 3], ring: i64, mut f: impl FnMut(usize)) {
        let d = self.dims.map(|x| x as i64);
        for z in home[2] - ring..=home[2] + ring {
            if z < 0 || z >= d[2] {
                continue;
            }
            for y in home[1] - ring..=home[1] + ring {
                if y < 0 || y >= d[1] {
                    continue;
                }
                let on_shell_yz = (z - home[2]).abs() == ring || (y - home[1]).abs() == ring;
                let xs: Vec<i64> = if on_shell_yz {
                    (home[0] - ring..=home[0] + ring).collect()
                } else {
                    vec![home[0] - ring, home[0] + ring]
                };
                for x in xs {
                    if x < 0 || x >= d[0] {
                        continue;
                    }
                    let c = ((z * d[1] + y) * d[0] + x) as usize;
                    for &i in &self.order[self.starts[c] as usize..self.starts[c + 1] as usize] {
                        f(i as usize);
                    }
                }
            }
        }
    }
}

/// Mean distance from each point of `from` to the nearest point of `to` (accuracy when `from` is
/// the prediction, completeness when it is the truth).
pub fn mean_nearest_distance(from: &[[f32; 3]], to: &[[f32; 3]]) -> f64 {
    if from.is_empty() || to.is_empty() {
        return f64::NAN;
    }
    let grid = NearestPoints::new(to);
    let sum: f64 = from
        .par_iter()
        .map(|p| grid.nearest(*p).map_or(0.0, |(_, d)| f64::from(d)))
        .sum();
    sum / from.len() as f64
}

/// ONet's Chamfer-L1 between two meshes from `samples` surface points on each.
pub fn chamfer_l1(pred: &Mesh, truth: &Mesh, samples: usize, seed: u64) -> f64 {
    let a = sample_surface(pred, samples, seed);
    let b = sample_surface(truth, samples, seed ^ 0xC4A3_FE12);
    0.5 * (mean_nearest_distance(&a, &b) + mean_nearest_distance(&b, &a))
}

/// Inside tests against a closed mesh by ray parity along +z; triangles are binned over x–y.
pub struct InsideTest<'a> {
    mesh: &'a Mesh,
    lo: [f32; 2],
    cell: [f32; 2],
    n: usize,
    bins: Vec<Vec<u32>>,
}

impl<'a> InsideTest<'a> {
    pub fn new(mesh: &'a Mesh) -> Self {
        let (lo, hi) = mesh.bounds().unwrap_or(([0.0; 3], [0.0; 3]));
        let n = ((mesh.triangles.len() as f32).sqrt().ceil() as usize).clamp(1, 512);
        let cell = [
            (hi[0] - lo[0]).max(1e-6) / n as f32,
            (hi[1] - lo[1]).max(1e-6) / n as f32,
        ];
        let mut bins = vec![Vec::new(); n * n];
        for (t, tri) in mesh.triangles.iter().enumerate() {
            let c = tri.map(|i| mesh.positions[i as usize]);
            let bin = |v: f32, k: usize| (((v - lo[k]) / cell[k]).floor().max(0.0) as usize).min(n - 1);
            let (x0, x1) = (
                bin(c[0][0].min(c[1][0]).min(c[2][0]), 0),
                bin(c[0][0].max(c[1][0]).max(c[2][0]), 0),
            );
            let (y0, y1) = (
                bin(c[0][1].min(c[1][1]).min(c[2][1]), 1),
                bin(c[0][1].max(c[1][1]).max(c[2][1]), 1),
            );
            for y in y0..=y1 {
                for x in x0..=x1 {
                    bins[y * n + x].push(t as u32);
                }
            }
        }
        Self {
            mesh,
            lo: [lo[0], lo[1]],
            cell,
            n,
            bins,
        }
    }

    pub fn contains(&self, p: [f32; 3]) -> bool {
        let bx = (p[0] - self.lo[0]) / self.cell[0];
        let by = (p[1] - self.lo[1]) / self.cell[1];
        if bx < 0.0 || by < 0.0 || bx >= self.n as f32 || by >= self.n as f32 {
            return false;
        }
        let bin = &self.bins[by as usize * self.n + bx as usize];
        let mut crossings = 0u32;
        for &t in bin {
            let c = self.mesh.triangles[t as usize].map(|i| self.mesh.positions[i as usize]);
            if let Some(z) = ray_z_hit(c, p[0], p[1])
                && z > p[2]
            {
                crossings += 1;
            }
        }
        crossings % 2 == 1
    }
}

/// Where the vertical line through (x, y) meets the triangle, if it does. Edges are half-open
/// (a point on a shared edge counts for exactly one of its two triangles) so that a ray through
/// an edge is not counted twice.
fn ray_z_hit(c: [[f32; 3]; 3], x: f32, y: f32) -> Option<f32> {
    let edge = |a: [f32; 3], b: [f32; 3]| -> f64 {
        f64::from(b[0] - a[0]) * f64::from(y - a[1]) - f64::from(b[1] - a[1]) * f64::from(x - a[0])
    };
    let w = [edge(c[1], c[2]), edge(c[2], c[0]), edge(c[0], c[1])];
    let area = w[0] + w[1] + w[2];
    if area == 0.0 {
        return None;
    }
    // Orient so the weights are non-negative inside; on a zero weight, keep the edge only when
    // it faces a fixed direction (a top-left-style rule).
    let s = area.signum();
    let ends = [(c[1], c[2]), (c[2], c[0]), (c[0], c[1])];
    for (wi, (a, b)) in w.iter().zip(ends) {
        let v = wi * s;
        if v < 0.0 {
            return None;
        }
        if v == 0.0 {
            let dx = f64::from(b[0] - a[0]) * s;
            let dy = f64::from(b[1] - a[1]) * s;
            if !(dy > 0.0 || (dy == 0.0 && dx < 0.0)) {
                return None;
            }
        }
    }
    let z = (w[0] * f64::from(c[0][2]) + w[1] * f64::from(c[1][2]) + w[2] * f64::from(c[2][2])) / area;
    Some(z as f32)
}

/// Volumetric IoU of two closed meshes from `samples` points drawn uniformly in the box
/// `[-half, half]³` (Motion2VecSets evaluates in its unit cube: half = 0.55).
pub fn iou(pred: &Mesh, truth: &Mesh, samples: usize, half: f32, seed: u64) -> f64 {
    let mut rng = Rng::new(seed);
    let points: Vec<[f32; 3]> = (0..samples)
        .map(|_| [0, 1, 2].map(|_| ((rng.uniform() * 2.0 - 1.0) * f64::from(half)) as f32))
        .collect();
    let (a, b) = (InsideTest::new(pred), InsideTest::new(truth));
    let (both, either) = points
        .par_iter()
        .map(|p| {
            let (x, y) = (a.contains(*p), b.contains(*p));
            (usize::from(x && y), usize::from(x || y))
        })
        .reduce(|| (0, 0), |l, r| (l.0 + r.0, l.1 + r.1));
    if either == 0 { 1.0 } else { both as f64 / either as f64 }
}

/// Correspondence error per frame: predicted frame-1 vertices matched to their nearest true
/// frame-1 points, then followed. Both sequences need correspondence across their frames; the
/// shorter length is used.
pub fn correspondence_l2(pred: &MotionSequence, truth: &MotionSequence) -> Vec<f64> {
    if pred.corresponding().is_none() || truth.corresponding().is_none() || pred.is_empty() || truth.is_empty() {
        return Vec::new();
    }
    let grid = NearestPoints::new(&truth.frames[0]);
    let matched: Vec<usize> = pred.frames[0]
        .iter()
        .map(|p| grid.nearest(*p).map_or(0, |(i, _)| i))
        .collect();
    (0..pred.len().min(truth.len()))
        .map(|t| {
            let sum: f64 = pred.frames[t]
                .iter()
                .zip(&matched)
                .map(|(p, &j)| {
                    let q = truth.frames[t][j];
                    f64::from(((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2)).sqrt())
                })
                .sum();
            sum / pred.frames[t].len().max(1) as f64
        })
        .collect()
}

/// How [`evaluate_sequence`] samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalOptions {
    /// Points for IoU (the reference: 100 000).
    pub volume_samples: usize,
    /// Surface points per mesh for Chamfer-L1 (the reference: 100 000).
    pub surface_samples: usize,
    /// Half-size of the IoU box (Motion2VecSets' unit cube padded: 0.55).
    pub half_box: f32,
    pub seed: u64,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            volume_samples: 100_000,
            surface_samples: 100_000,
            half_box: 0.55,
            seed: 0,
        }
    }
}

/// One frame's scores.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct FrameScores {
    pub iou: f64,
    pub chamfer_l1: f64,
    /// `None` when either sequence lacks correspondence.
    pub correspondence_l2: Option<f64>,
}

/// Per-frame scores of a predicted mesh sequence against the true one (the shorter length), and
/// their means.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SequenceScores {
    pub frames: Vec<FrameScores>,
    pub mean: FrameScores,
}

/// Scores `pred` against `truth`, both mesh sequences; `None` when either has no faces.
pub fn evaluate_sequence(pred: &MotionSequence, truth: &MotionSequence, opts: &EvalOptions) -> Option<SequenceScores> {
    if !pred.is_mesh() || !truth.is_mesh() {
        return None;
    }
    let corr = correspondence_l2(pred, truth);
    let frames: Vec<FrameScores> = (0..pred.len().min(truth.len()))
        .map(|t| {
            let (p, q) = (pred.mesh_at(t as f32)?, truth.mesh_at(t as f32)?);
            Some(FrameScores {
                iou: iou(&p, &q, opts.volume_samples, opts.half_box, opts.seed + t as u64),
                chamfer_l1: chamfer_l1(&p, &q, opts.surface_samples, opts.seed + t as u64),
                correspondence_l2: corr.get(t).copied(),
            })
        })
        .collect::<Option<_>>()?;
    let n = frames.len().max(1) as f64;
    let mean = FrameScores {
        iou: frames.iter().map(|f| f.iou).sum::<f64>() / n,
        chamfer_l1: frames.iter().map(|f| f.chamfer_l1).sum::<f64>() / n,
        correspondence_l2: frames
            .iter()
            .map(|f| f.correspondence_l2)
            .sum::<Option<f64>>()
            .map(|s| s / n),
    };
    Some(SequenceScores { frames, mean })
}

/// The nearest-frame baseline: the prediction's first frame held still for the whole sequence
/// (what a reconstruction of the first frame alone gives, without modelling motion).
pub fn held_first_frame(seq: &MotionSequence) -> MotionSequence {
    MotionSequence {
        frames: vec![seq.frames.first().cloned().unwrap_or_default(); seq.len()],
        triangles: seq.triangles.clone(),
        fps: seq.fps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A closed axis-aligned box as 12 outward triangles.
    fn cube(lo: f32, hi: f32) -> Mesh {
        let v = |x: usize, y: usize, z: usize| [[lo, hi][x], [lo, hi][y], [lo, hi][z]];
        let positions = vec![
            v(0, 0, 0),
            v(1, 0, 0),
            v(1, 1, 0),
            v(0, 1, 0),
            v(0, 0, 1),
            v(1, 0, 1),
            v(1, 1, 1),
            v(0, 1, 1),
        ];
        let quads = [
            [0, 3, 2, 1],
            [4, 5, 6, 7],
            [0, 1, 5, 4],
            [2, 3, 7, 6],
            [1, 2, 6, 5],
            [0, 4, 7, 3],
        ];
        let triangles = quads
            .iter()
            .flat_map(|q| [[q[0], q[1], q[2]], [q[0], q[2], q[3]]])
            .collect();
        Mesh {
            positions,
            triangles,
            ..Default::default()
        }
    }

    #[test]
    fn inside_test_counts_the_box_even_through_its_diagonal_edges() {
        let m = cube(-0.25, 0.25);
        assert!(m.signed_volume() > 0.0);
        let t = InsideTest::new(&m);
        assert!(t.contains([0.0, 0.0, 0.0]));
        // On the x = y diagonal the ray passes through the shared edge of the top and bottom
        // faces' triangles: half-open edges count it once per face.
        assert!(t.contains([0.1, 0.1, 0.0]));
        assert!(t.contains([-0.2, -0.2, 0.2]));
        assert!(!t.contains([0.3, 0.0, 0.0]));
        assert!(!t.contains([0.0, 0.0, 0.3]));
        assert!(!t.contains([0.0, 0.0, -0.3]));
    }

    #[test]
    fn iou_of_nested_boxes_is_their_volume_ratio() {
        let (a, b) = (cube(-0.25, 0.25), cube(-0.2, 0.2));
        let v = iou(&a, &b, 200_000, 0.3, 1);
        let exact = 0.4f64.powi(3) / 0.5f64.powi(3);
        assert!((v - exact).abs() < 0.01, "{v} vs {exact}");
        assert_eq!(iou(&a, &a, 10_000, 0.3, 2), 1.0);
    }

    #[test]
    fn nearest_points_agree_with_brute_force() {
        let mut rng = Rng::new(5);
        let pts: Vec<[f32; 3]> = (0..500).map(|_| [0, 1, 2].map(|_| rng.uniform() as f32)).collect();
        let grid = NearestPoints::new(&pts);
        for _ in 0..200 {
            let q = [0, 1, 2].map(|_| (rng.uniform() * 1.6 - 0.3) as f32);
            let brute = pts
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    (
                        i,
                        ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2)).sqrt(),
                    )
                })
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            let got = grid.nearest(q).unwrap();
            assert!((got.1 - brute.1).abs() < 1e-6, "{got:?} vs {brute:?}");
        }
    }

    #[test]
    fn chamfer_of_a_shifted_box_is_about_the_shift() {
        let a = cube(-0.25, 0.25);
        let mut b = a.clone();
        for p in &mut b.positions {
            p[2] += 0.01;
        }
        let same = chamfer_l1(&a, &a, 5000, 3);
        let moved = chamfer_l1(&a, &b, 5000, 3);
        assert!(same < 0.01, "{same}");
        assert!(moved > same && moved < 0.02, "{moved} vs {same}");
    }

    #[test]
    fn a_sequence_scores_perfectly_against_itself_and_the_held_baseline_worse() {
        let frames: Vec<Vec<[f32; 3]>> = (0..3)
            .map(|t| {
                cube(-0.2, 0.2)
                    .positions
                    .iter()
                    .map(|p| [p[0] + 0.1 * t as f32, p[1], p[2]])
                    .collect()
            })
            .collect();
        let seq = MotionSequence {
            frames,
            triangles: cube(-0.2, 0.2).triangles,
            fps: 10.0,
        };
        let opts = EvalOptions {
            volume_samples: 20_000,
            surface_samples: 2000,
            ..Default::default()
        };
        let own = evaluate_sequence(&seq, &seq, &opts).unwrap();
        assert_eq!(own.frames.len(), 3);
        assert_eq!(own.mean.iou, 1.0);
        assert_eq!(own.mean.correspondence_l2, Some(0.0));
        let held = evaluate_sequence(&held_first_frame(&seq), &seq, &opts).unwrap();
        assert_eq!(held.frames[0].iou, 1.0);
        assert!(held.frames[2].iou < 0.5, "{:?}", held.frames[2]);
        assert!((held.frames[2].correspondence_l2.unwrap() - 0.2).abs() < 1e-6);
        assert!(held.mean.chamfer_l1 > own.mean.chamfer_l1);
    }

    #[test]
    fn correspondence_error_follows_matched_trajectories() {
        let truth = MotionSequence::points(
            vec![vec![[0.0; 3], [1.0, 0.0, 0.0]], vec![[0.0, 0.0, 1.0], [1.0, 0.0, 1.0]]],
            1.0,
        );
        // A prediction whose first vertex tracks truth's point 0 and whose second stays still.
        let pred = MotionSequence::points(
            vec![vec![[0.0; 3], [0.9, 0.0, 0.0]], vec![[0.0, 0.0, 1.0], [0.9, 0.0, 0.0]]],
            1.0,
        );
        let e = correspondence_l2(&pred, &truth);
        assert!((e[0] - 0.05).abs() < 1e-6);
        let expected = 0.5 * (0.1f64.powi(2) + 1.0).sqrt();
        assert!((e[1] - expected).abs() < 1e-6, "{e:?}");
    }
}
