//! Meshing an occupancy field the way the reference does (`im2mesh/utils/onet_generator.py`
//! `Generator3D` + `libmise`): multiresolution iso-surface extraction (MISE), a dense grid padded
//! with −1e6, marching cubes, vertices mapped back to the box.
//!
//! MISE evaluates a coarse `(r₀ + 1)³` lattice, then repeatedly splits every cell whose known
//! boundary points lie on both sides of the threshold (a value equal to it counts for both) and
//! evaluates the new corner points, until the cells are `2^steps` times finer. The
//! neighbours of a refined cell are refined too once the new points on their faces straddle the
//! threshold, which is how libmise follows the surface into cells whose corners missed it. The
//! missing points of the final `(r₀·2^steps + 1)³` grid are then filled by copying the previous
//! value along x, then y, then z (`MISE.to_dense`): inside an unrefined cell every known value
//! is on the same side, so the copies cannot create a crossing.
//!
//! Vertex mapping: libmcubes puts the vertex of grid index `u` at `u + 0.5` (its cells are
//! offset by half a cell), so the reference shifts by −0.5, undoes the padding (−1), divides by
//! `n − 1` and maps `[0, 1] → box·(· − 0.5)`. Our marching cubes puts vertices at the exact
//! interpolated index, so the same result is the padded grid's affine
//! `world = box·((i − 1)/(n − 1) − 0.5)`; see [`mesh_grid`].

use std::time::{Duration, Instant};

use candle_core::{DType, Tensor};

use super::M2vsError;
use super::autoencoder::{KlAutoEncoder, PreparedLatents};
use crate::core::{Affine, Mesh, Volume};
use crate::methods::isosurface::{Inside, IsoOptions, marching_cubes};

/// The value the reference pads the grid with so the surface closes at the box's faces.
pub const PAD_VALUE: f32 = -1e6;
/// Largest final grid (cells per axis) we agree to build: (512 + 1)³ f32 values are 540 MB.
pub const MAX_RESOLUTION: usize = 512;

/// An occupancy field: logits at points of the box (one per point, in order).
pub trait LogitField {
    fn logits(&mut self, points: &[[f32; 3]]) -> Result<Vec<f32>, M2vsError>;
}

impl<F> LogitField for F
where
    F: FnMut(&[[f32; 3]]) -> Result<Vec<f32>, M2vsError>,
{
    fn logits(&mut self, points: &[[f32; 3]]) -> Result<Vec<f32>, M2vsError> {
        self(points)
    }
}

/// A shape autoencoder's occupancy logits from its cached decoder trunk: every call runs only the
/// query cross-attention.
pub struct DecoderField<'a> {
    ae: &'a KlAutoEncoder,
    prepared: &'a PreparedLatents,
}

impl<'a> DecoderField<'a> {
    /// `prepared` must hold one shape (`KlAutoEncoder::prepare` of `(1, M, C)` latents).
    pub fn new(ae: &'a KlAutoEncoder, prepared: &'a PreparedLatents) -> Result<Self, M2vsError> {
        let cfg = ae.config();
        if cfg.deform || cfg.output_dim != 1 {
            return Err(M2vsError::Shape("occupancy comes from a shape autoencoder".into()));
        }
        if prepared.tokens.dim(0)? != 1 {
            return Err(M2vsError::Shape(format!(
                "one shape at a time, got prepared tokens {:?}",
                prepared.tokens.dims()
            )));
        }
        Ok(Self { ae, prepared })
    }
}

impl LogitField for DecoderField<'_> {
    fn logits(&mut self, points: &[[f32; 3]]) -> Result<Vec<f32>, M2vsError> {
        let flat: Vec<f32> = points.iter().flatten().copied().collect();
        let q = Tensor::from_vec(flat, (1, points.len(), 3), self.prepared.tokens.device())?;
        Ok(self
            .ae
            .query(self.prepared, &q)?
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?)
    }
}

/// `Generator3D`'s meshing settings (the reference's `get_generator()`: 32 cells, 2 steps, box
/// 1.1, probability 0.5; `get_generator_dfaust()`: probability 0.3).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MiseOptions {
    /// Cells per axis of the first lattice (`resolution0`).
    pub resolution_0: usize,
    /// Halvings of the cells near the surface (`upsampling_steps`). 0 evaluates a dense grid of
    /// `resolution_0` points per axis, as the reference's shortcut does.
    pub upsampling_steps: usize,
    /// Edge of the cube centred at the origin (`1 + padding`).
    pub box_size: f64,
    /// Iso-level as a logit: `ln p − ln(1 − p)` of the reference's probability threshold
    /// ([`probability_to_logit`]).
    pub threshold: f32,
    /// Points per decoder call (`points_batch_size`).
    pub batch: usize,
}

impl Default for MiseOptions {
    fn default() -> Self {
        Self {
            resolution_0: 32,
            upsampling_steps: 2,
            box_size: 1.1,
            threshold: 0.0,
            batch: 100_000,
        }
    }
}

impl MiseOptions {
    /// Cells per axis of the final grid: `resolution_0 · 2^upsampling_steps`.
    pub fn resolution(&self) -> usize {
        self.resolution_0 << self.upsampling_steps
    }

    pub fn validate(&self) -> Result<(), M2vsError> {
        let bad = |why: String| Err(M2vsError::Mesher(why));
        if self.resolution_0 < 2 {
            return bad(format!("resolution_0 {} must be at least 2", self.resolution_0));
        }
        if self.upsampling_steps > 8 || self.resolution() > MAX_RESOLUTION {
            return bad(format!(
                "{} cells × 2^{} exceeds the {MAX_RESOLUTION}-cell limit",
                self.resolution_0, self.upsampling_steps
            ));
        }
        if !(self.box_size.is_finite() && self.box_size > 0.0) {
            return bad(format!("box size {} must be positive", self.box_size));
        }
        if !self.threshold.is_finite() || self.threshold <= PAD_VALUE {
            return bad(format!(
                "threshold {} must be a finite logit above the padding",
                self.threshold
            ));
        }
        if self.batch == 0 {
            return bad("batch must be positive".into());
        }
        Ok(())
    }
}

/// The logit of a probability threshold, as `Generator3D` computes it: `ln p − ln(1 − p)`.
pub fn probability_to_logit(p: f64) -> f64 {
    p.ln() - (1.0 - p).ln()
}

/// What a meshing run cost.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MeshStats {
    /// Cells per axis of the grid marching cubes ran on (before padding).
    pub resolution: usize,
    /// Points the field was asked for.
    pub points_evaluated: usize,
    /// Points of the full grid at that resolution (what a dense evaluation would cost).
    pub dense_points: usize,
    /// Calls of the field (decoder calls), `batch` points at most each.
    pub decoder_calls: usize,
    /// MISE passes (evaluate, then split): `upsampling_steps + 1` or more, 1 for a dense grid.
    pub rounds: usize,
    pub eval_time: Duration,
    pub mc_time: Duration,
}

/// A mesh in box coordinates and what it cost.
#[derive(Clone, Debug)]
pub struct ExtractedMesh {
    pub mesh: Mesh,
    pub stats: MeshStats,
}

/// Evaluates `points` in batches, counting calls; a field returning the wrong count is an error.
fn evaluate(
    field: &mut dyn LogitField,
    points: &[[f32; 3]],
    batch: usize,
    stats: &mut MeshStats,
) -> Result<Vec<f32>, M2vsError> {
    let start = Instant::now();
    let mut out = Vec::with_capacity(points.len());
    for chunk in points.chunks(batch) {
        let v = field.logits(chunk)?;
        if v.len() != chunk.len() {
            return Err(M2vsError::Mesher(format!(
                "the field returned {} values for {} points",
                v.len(),
                chunk.len()
            )));
        }
        out.extend(v);
        stats.decoder_calls += 1;
        stats.points_evaluated += chunk.len();
    }
    stats.eval_time += start.elapsed();
    Ok(out)
}

/// Box coordinate of lattice index `i` of `cells` cells, in f32 like the reference
/// (`box_size * (p / resolution − 0.5)` on a float tensor).
fn coord(i: usize, cells: usize, box_size: f32) -> f32 {
    box_size * (i as f32 / cells as f32 - 0.5)
}

/// The state of a point of the final lattice.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Point {
    Absent,
    Pending,
    Known,
}

/// libmise's octree, stored per level: `split[l]` marks the level-`l` cells that were divided
/// (cell size `2^(depth − l)` fine cells), which is all that finding the leaf around a point needs.
struct Mise {
    r0: usize,
    depth: usize,
    /// Fine cells per axis, `r0 · 2^depth`.
    res: usize,
    threshold: f64,
    state: Vec<Point>,
    values: Vec<f32>,
    /// Flat indices of existing points in creation order (libmise's `grid_points`).
    points: Vec<usize>,
    pending: Vec<usize>,
    split: Vec<Vec<bool>>,
}

impl Mise {
    fn new(r0: usize, depth: usize, threshold: f32) -> Self {
        let res = r0 << depth;
        let n = res + 1;
        let mut m = Self {
            r0,
            depth,
            res,
            threshold: threshold as f64,
            state: vec![Point::Absent; n * n * n],
            values: vec![f32::NAN; n * n * n],
            points: Vec::new(),
            pending: Vec::new(),
            split: (0..depth).map(|l| vec![false; (r0 << l).pow(3)]).collect(),
        };
        let step = 1 << depth;
        for z in 0..=r0 {
            for y in 0..=r0 {
                for x in 0..=r0 {
                    m.add([x * step, y * step, z * step]);
                }
            }
        }
        m
    }

    fn flat(&self, p: [usize; 3]) -> usize {
        let n = self.res + 1;
        p[0] + n * (p[1] + n * p[2])
    }

    fn unflat(&self, i: usize) -> [usize; 3] {
        let n = self.res + 1;
        [i % n, (i / n) % n, i / (n * n)]
    }

    fn add(&mut self, p: [usize; 3]) {
        let i = self.flat(p);
        if self.state[i] == Point::Absent {
            self.state[i] = Point::Pending;
            self.points.push(i);
            self.pending.push(i);
        }
    }

    /// The leaf cell `(level, cell index at that level)` containing fine cell `c`.
    fn leaf(&self, c: [usize; 3]) -> (usize, usize) {
        for l in 0..self.depth {
            let shift = self.depth - l;
            let n = self.r0 << l;
            let idx = (c[0] >> shift) + n * ((c[1] >> shift) + n * (c[2] >> shift));
            if !self.split[l][idx] {
                return (l, idx);
            }
        }
        let n = self.res;
        (self.depth, c[0] + n * (c[1] + n * c[2]))
    }

    /// `MISE.subdivide_voxels`: mark the leaves around every known point as next to a value
    /// ≥ and/or ≤ the threshold, then split the leaves (above the finest level) marked both.
    fn subdivide(&mut self) {
        let mut above: Vec<Vec<bool>> = self.split.iter().map(|s| vec![false; s.len()]).collect();
        let mut below = above.clone();
        for &i in &self.points {
            if self.state[i] != Point::Known {
                continue;
            }
            let v = self.values[i] as f64;
            let (ge, le) = (v >= self.threshold, v <= self.threshold);
            if !(ge || le) {
                continue; // NaN marks nothing, as in libmise.
            }
            let p = self.unflat(i);
            // The 8 cells sharing this corner: offsets −1 and 0 on each axis.
            for o in 0..8 {
                let c = [o & 1, (o >> 1) & 1, (o >> 2) & 1].map(|b| b == 0);
                let mut cell = [0usize; 3];
                let mut inside = true;
                for a in 0..3 {
                    if c[a] {
                        if p[a] == 0 {
                            inside = false;
                        } else {
                            cell[a] = p[a] - 1;
                        }
                    } else if p[a] >= self.res {
                        inside = false;
                    } else {
                        cell[a] = p[a];
                    }
                }
                if !inside {
                    continue;
                }
                let (l, idx) = self.leaf(cell);
                if l < self.depth {
                    above[l][idx] |= ge;
                    below[l][idx] |= le;
                }
            }
        }
        for l in 0..self.depth {
            let n = self.r0 << l;
            for idx in 0..above[l].len() {
                if above[l][idx] && below[l][idx] {
                    self.split[l][idx] = true;
                    let size = 1 << (self.depth - l - 1);
                    let corner = [idx % n, (idx / n) % n, idx / (n * n)].map(|c| c * 2 * size);
                    for dz in 0..3 {
                        for dy in 0..3 {
                            for dx in 0..3 {
                                self.add([corner[0] + dx * size, corner[1] + dy * size, corner[2] + dz * size]);
                            }
                        }
                    }
                }
            }
        }
    }

    /// `MISE.to_dense`: the final grid, x fastest, gaps filled along x, then y, then z.
    fn to_dense(&self) -> Result<Vec<f32>, M2vsError> {
        let n = self.res + 1;
        let mut out = vec![f32::NAN; n * n * n];
        for &i in &self.points {
            out[i] = self.values[i];
        }
        for z in 0..n {
            for y in 0..n {
                for x in 1..n {
                    let i = x + n * (y + n * z);
                    if out[i].is_nan() {
                        out[i] = out[i - 1];
                    }
                }
            }
        }
        for z in 0..n {
            for y in 1..n {
                for x in 0..n {
                    let i = x + n * (y + n * z);
                    if out[i].is_nan() {
                        out[i] = out[i - n];
                    }
                }
            }
        }
        for z in 1..n {
            for y in 0..n {
                for x in 0..n {
                    let i = x + n * (y + n * z);
                    if out[i].is_nan() {
                        out[i] = out[i - n * n];
                    }
                }
            }
        }
        if out.iter().any(|v| v.is_nan()) {
            return Err(M2vsError::Mesher(
                "the field returned NaN where the grid could not be filled from a neighbour".into(),
            ));
        }
        Ok(out)
    }
}

/// MISE on `field` with `opts`, then [`mesh_grid`]. `upsampling_steps = 0` evaluates the dense
/// grid of `resolution_0` points per axis instead (the reference's shortcut).
pub fn mise(field: &mut dyn LogitField, opts: &MiseOptions) -> Result<ExtractedMesh, M2vsError> {
    opts.validate()?;
    if opts.upsampling_steps == 0 {
        return mesh_dense(field, opts.resolution_0, opts);
    }
    let mut stats = MeshStats {
        resolution: opts.resolution(),
        dense_points: (opts.resolution() + 1).pow(3),
        ..MeshStats::default()
    };
    let mut m = Mise::new(opts.resolution_0, opts.upsampling_steps, opts.threshold);
    let box_size = opts.box_size as f32;
    loop {
        let pending = std::mem::take(&mut m.pending);
        if pending.is_empty() {
            break;
        }
        let pts: Vec<[f32; 3]> = pending
            .iter()
            .map(|&i| m.unflat(i).map(|c| coord(c, m.res, box_size)))
            .collect();
        let values = evaluate(field, &pts, opts.batch, &mut stats)?;
        for (&i, v) in pending.iter().zip(values) {
            m.values[i] = v;
            m.state[i] = Point::Known;
        }
        stats.rounds += 1;
        m.subdivide();
    }
    let grid = m.to_dense()?;
    let start = Instant::now();
    let mesh = mesh_grid(grid, m.res + 1, opts.box_size, opts.threshold)?;
    stats.mc_time = start.elapsed();
    Ok(ExtractedMesh { mesh, stats })
}

/// Every point of an `n³` grid over the box (x fastest), then [`mesh_grid`]: the baseline MISE
/// is measured against.
pub fn mesh_dense(
    field: &mut dyn LogitField,
    points_per_axis: usize,
    opts: &MiseOptions,
) -> Result<ExtractedMesh, M2vsError> {
    opts.validate()?;
    let n = points_per_axis;
    if !(2..=MAX_RESOLUTION + 1).contains(&n) {
        return Err(M2vsError::Mesher(format!(
            "{n} points per axis is outside 2..={}",
            MAX_RESOLUTION + 1
        )));
    }
    let mut stats = MeshStats {
        resolution: n - 1,
        dense_points: n * n * n,
        rounds: 1,
        ..MeshStats::default()
    };
    let box_size = opts.box_size as f32;
    let pts: Vec<[f32; 3]> = (0..n * n * n)
        .map(|i| [i % n, (i / n) % n, i / (n * n)].map(|c| coord(c, n - 1, box_size)))
        .collect();
    let grid = evaluate(field, &pts, opts.batch, &mut stats)?;
    let start = Instant::now();
    let mesh = mesh_grid(grid, n, opts.box_size, opts.threshold)?;
    stats.mc_time = start.elapsed();
    Ok(ExtractedMesh { mesh, stats })
}

/// `Generator3D.extract_mesh` on logits of an `n³` grid spanning the box with both ends, x
/// fastest (what [`KlAutoEncoder::occupancy_grid`] returns, with box 1.1): padded by one
/// [`PAD_VALUE`] layer so the surface is closed, marching cubes at `threshold` (values above it
/// are inside), vertices in box coordinates.
pub fn mesh_grid(logits: Vec<f32>, n: usize, box_size: f64, threshold: f32) -> Result<Mesh, M2vsError> {
    if n < 2 || logits.len() != n * n * n {
        return Err(M2vsError::Mesher(format!(
            "{} values are not an n³ grid with n = {n} ≥ 2",
            logits.len()
        )));
    }
    let m = n + 2;
    let mut padded = vec![PAD_VALUE; m * m * m];
    for z in 0..n {
        for y in 0..n {
            let src = n * (y + n * z);
            let dst = 1 + m * (y + 1 + m * (z + 1));
            padded[dst..dst + n].copy_from_slice(&logits[src..src + n]);
        }
    }
    // Padded index i ↦ box·((i − 1)/(n − 1) − 0.5): the reference's −0.5 (libmcubes' half-cell
    // offset), −1 (padding), /(n − 1) and box·(· − 0.5) in one affine.
    let s = box_size / (n - 1) as f64;
    let o = -0.5 * box_size - s;
    let affine: Affine = [
        [s, 0.0, 0.0, o],
        [0.0, s, 0.0, o],
        [0.0, 0.0, s, o],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let volume = Volume::new([m; 3], 1, [s as f32; 3], affine, padded).map_err(|e| M2vsError::Mesher(e.to_string()))?;
    Ok(marching_cubes(
        &volume,
        &IsoOptions {
            level: threshold,
            inside: Inside::Above,
            frame: 0,
        },
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const R: f32 = 0.3;

    fn sphere(points: &[[f32; 3]]) -> Result<Vec<f32>, M2vsError> {
        Ok(points
            .iter()
            .map(|p| R - (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt())
            .collect())
    }

    /// Every undirected edge used by exactly two triangles, in opposite directions.
    fn assert_watertight(mesh: &Mesh) {
        let mut edges: HashMap<(u32, u32), i32> = HashMap::new();
        for t in &mesh.triangles {
            for k in 0..3 {
                let (a, b) = (t[k], t[(k + 1) % 3]);
                *edges.entry((a.min(b), a.max(b))).or_default() += if a < b { 1 } else { -1 };
            }
        }
        let mut count: HashMap<(u32, u32), usize> = HashMap::new();
        for t in &mesh.triangles {
            for k in 0..3 {
                let (a, b) = (t[k], t[(k + 1) % 3]);
                *count.entry((a.min(b), a.max(b))).or_default() += 1;
            }
        }
        assert!(
            count.values().all(|&c| c == 2),
            "an edge is not shared by exactly two triangles"
        );
        assert!(edges.values().all(|&d| d == 0), "inconsistent winding");
    }

    fn max_radius_error(mesh: &Mesh) -> f32 {
        mesh.positions
            .iter()
            .map(|p| ((p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt() - R).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn mise_meshes_a_sphere_watertight_with_far_fewer_points_than_the_dense_grid() {
        let opts = MiseOptions::default();
        let out = mise(&mut sphere, &opts).unwrap();
        let mesh = &out.mesh;
        assert!(mesh.triangles.len() > 1000);
        assert_watertight(mesh);
        let exact = 4.0 / 3.0 * std::f64::consts::PI * (R as f64).powi(3);
        let rel = (mesh.signed_volume() - exact).abs() / exact;
        assert!(rel < 0.01, "volume {} vs {exact} ({rel})", mesh.signed_volume());
        // A vertex lies on a grid edge by linear interpolation of a linear-in-|p| field: within a
        // small fraction of the fine cell (1.1/128) of the sphere.
        let cell = 1.1 / 128.0;
        assert!(max_radius_error(mesh) < 0.1 * cell, "{}", max_radius_error(mesh));
        let s = out.stats;
        assert_eq!((s.resolution, s.dense_points), (128, 129 * 129 * 129));
        assert!(s.points_evaluated * 10 < s.dense_points, "{s:?}");
        assert_eq!(s.decoder_calls, s.rounds, "each round fits in one batch of 100 000");
        eprintln!(
            "MISE sphere r={R}: {} of {} points ({:.1}%), {} calls, volume error {:.3}%, max |r−R| {:.2e}",
            s.points_evaluated,
            s.dense_points,
            100.0 * s.points_evaluated as f64 / s.dense_points as f64,
            s.decoder_calls,
            100.0 * rel,
            max_radius_error(mesh)
        );
    }

    #[test]
    fn mise_and_the_dense_grid_give_the_same_surface() {
        let opts = MiseOptions::default();
        let a = mise(&mut sphere, &opts).unwrap();
        let b = mesh_dense(&mut sphere, 129, &opts).unwrap();
        // Same surface cells, same interpolation: the same vertex set (up to order).
        assert_eq!(a.mesh.positions.len(), b.mesh.positions.len());
        assert_eq!(a.mesh.triangles.len(), b.mesh.triangles.len());
        let key = |p: &[f32; 3]| p.map(|c| (c * 1e5).round() as i64);
        let mut pa: Vec<_> = a.mesh.positions.iter().map(key).collect();
        let mut pb: Vec<_> = b.mesh.positions.iter().map(key).collect();
        pa.sort();
        pb.sort();
        assert_eq!(pa, pb);
        assert_eq!(b.stats.points_evaluated, 129 * 129 * 129);
        assert_eq!(b.stats.decoder_calls, 22);
    }

    #[test]
    fn refinement_follows_the_surface_only() {
        // A small sphere refines only around itself: each round asks for fewer points than the
        // whole next-finer lattice.
        let mut calls = Vec::new();
        let mut field = |p: &[[f32; 3]]| {
            calls.push(p.len());
            sphere(p)
        };
        let opts = MiseOptions {
            batch: usize::MAX,
            ..MiseOptions::default()
        };
        let out = mise(&mut field, &opts).unwrap();
        assert_eq!(calls[0], 33 * 33 * 33);
        assert!(calls.len() >= 3, "{calls:?}");
        assert!(calls[1] < 65 * 65 * 65 - 33 * 33 * 33, "{calls:?}");
        assert_eq!(out.stats.rounds, calls.len());
        assert_eq!(out.stats.points_evaluated, calls.iter().sum::<usize>());
    }

    #[test]
    fn threshold_moves_the_surface_and_probability_maps_to_logit() {
        assert!(probability_to_logit(0.5).abs() < 1e-12);
        assert!((probability_to_logit(0.3) + 0.8472978603872037).abs() < 1e-12);
        // logit = R − |p| ≥ −0.1 ⇔ |p| ≤ R + 0.1.
        let opts = MiseOptions {
            threshold: -0.1,
            upsampling_steps: 1,
            ..MiseOptions::default()
        };
        let out = mise(&mut sphere, &opts).unwrap();
        let r: f32 = out
            .mesh
            .positions
            .iter()
            .map(|p| (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt())
            .sum::<f32>()
            / out.mesh.positions.len() as f32;
        assert!((r - (R + 0.1)).abs() < 1e-3, "{r}");
    }

    #[test]
    fn a_shape_touching_the_box_is_closed_by_the_padding() {
        // Everything inside: the surface is the box itself, closed by the −1e6 layer, with the
        // vertices a hair outside the outermost grid points (interpolation towards −1e6).
        let opts = MiseOptions {
            resolution_0: 4,
            upsampling_steps: 1,
            ..MiseOptions::default()
        };
        let out = mise(&mut |p: &[[f32; 3]]| Ok(vec![1.0; p.len()]), &opts).unwrap();
        assert_watertight(&out.mesh);
        let (lo, hi) = out.mesh.bounds().unwrap();
        for a in 0..3 {
            assert!(
                (lo[a] + 0.55).abs() < 1e-4 && (hi[a] - 0.55).abs() < 1e-4,
                "{lo:?} {hi:?}"
            );
        }
        // Nothing straddles, so nothing is refined: one round of the 5³ lattice.
        assert_eq!((out.stats.rounds, out.stats.points_evaluated), (1, 125));
    }

    #[test]
    fn bad_fields_and_options_are_errors() {
        let short = |p: &[[f32; 3]]| Ok(vec![0.0; p.len() - 1]);
        assert!(matches!(
            mise(&mut { short }, &MiseOptions::default()),
            Err(M2vsError::Mesher(_))
        ));
        let nan = |p: &[[f32; 3]]| Ok(vec![f32::NAN; p.len()]);
        assert!(matches!(
            mise(&mut { nan }, &MiseOptions::default()),
            Err(M2vsError::Mesher(_))
        ));
        for o in [
            MiseOptions {
                resolution_0: 1,
                ..MiseOptions::default()
            },
            MiseOptions {
                upsampling_steps: 5,
                ..MiseOptions::default()
            },
            MiseOptions {
                batch: 0,
                ..MiseOptions::default()
            },
            MiseOptions {
                box_size: f64::NAN,
                ..MiseOptions::default()
            },
            MiseOptions {
                threshold: f32::INFINITY,
                ..MiseOptions::default()
            },
        ] {
            assert!(o.validate().is_err(), "{o:?}");
        }
        assert!(mesh_grid(vec![0.0; 7], 2, 1.1, 0.0).is_err());
    }
}
