//! Marching cubes, parallel over z-slabs.
//!
//! Each slab of cube layers is processed by one task with rolling per-layer arrays holding the
//! vertex id of every crossed grid edge (x and y edges of the layer below and above, z edges
//! between them), so each crossed edge gets exactly one vertex and no hash map is needed. The
//! top voxel layer of a slab belongs to the next slab: its vertices are not computed twice but
//! numbered as "foreign" in the order the next slab creates them (both scan the layer the same
//! way), and stitched to the next slab's ids when the slabs are concatenated.

use super::{Inside, IsoOptions};
use crate::core::isosurface::repair_nan_normals;
use crate::core::isosurface::tables::{CENTRE, FACE_CHOICES, Tables, face_corners, other_axes, tables};
use crate::core::volume::invert;
use crate::core::{Affine, Mesh, Volume};
use rayon::prelude::*;

/// Tag of a vertex id that belongs to the next slab (low bits: its creation rank there).
const FOREIGN: u32 = 1 << 31;

/// Extracts the iso-surface of `volume` (frame `opts.frame`) at `opts.level`.
///
/// - Vertices are in world mm (`world_from_voxel` applied to the interpolated voxel-index
///   position), one per crossed grid edge, shared by the triangles around it: a closed level set
///   gives a watertight mesh (every edge used by exactly two triangles).
/// - Triangles are wound so their normals point out of the inside region (for a closed surface
///   [`Mesh::signed_volume`] is positive), also under an affine with a negative determinant.
/// - Per-vertex normals come from the field's gradient (central differences, transformed to
///   world, pointing outward); where the gradient is unusable (NaN neighbours, flat field) the
///   area-weighted face normal is used.
/// - The surface separates voxels `> level` from voxels `<= level` (as scikit-image does), so
///   `Inside::Above` and `Inside::Below` give the same vertices with opposite winding.
/// - NaN voxels count as outside. A surface that reaches the grid's border is open there.
/// - An out-of-range frame or a grid thinner than 2 voxels along an axis gives an empty mesh.
pub fn marching_cubes(volume: &Volume, opts: &IsoOptions) -> Mesh {
    let [nx, ny, nz] = volume.dims();
    if opts.frame >= volume.frames() || nx < 2 || ny < 2 || nz < 2 {
        return Mesh::default();
    }
    let affine = *volume.world_from_voxel();
    let linear = [
        [affine[0][0], affine[0][1], affine[0][2]],
        [affine[1][0], affine[1][1], affine[1][2]],
        [affine[2][0], affine[2][1], affine[2][2]],
    ];
    let det = linear[0][0] * (linear[1][1] * linear[2][2] - linear[1][2] * linear[2][1])
        - linear[0][1] * (linear[1][0] * linear[2][2] - linear[1][2] * linear[2][0])
        + linear[0][2] * (linear[1][0] * linear[2][1] - linear[1][1] * linear[2][0]);
    // Normals transform with the inverse transpose of the linear part.
    let normal_matrix = invert(&affine).map(|inv| {
        let mut m = [[0.0; 3]; 3];
        for (r, row) in m.iter_mut().enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = inv[c][r];
            }
        }
        m
    });
    let grid = Grid {
        data: volume.frame(opts.frame),
        nx,
        ny,
        nz,
        level: opts.level,
        below: opts.inside == Inside::Below,
        affine,
        normal_matrix,
        flip: det < 0.0,
        tables: tables(),
    };

    let layers = nz - 1;
    let wanted = (rayon::current_num_threads() * 4).max(1);
    let thickness = layers.div_ceil(wanted).max(4.min(layers));
    let slabs: Vec<(usize, usize)> = (0..layers)
        .step_by(thickness)
        .map(|z0| (z0, (z0 + thickness).min(layers)))
        .collect();
    let last = slabs.len() - 1;
    let outs: Vec<SlabOut> = slabs
        .par_iter()
        .enumerate()
        .map_init(
            || Scratch::new(nx, ny),
            |scratch, (s, &(z0, z1))| grid.slab(scratch, z0, z1, s == last),
        )
        .collect();

    let mut base = Vec::with_capacity(outs.len() + 1);
    let mut total = 0usize;
    for o in &outs {
        base.push(total as u32);
        total += o.positions.len();
    }
    base.push(total as u32);
    let triangles: Vec<[u32; 3]> = outs
        .par_iter()
        .enumerate()
        .flat_map_iter(|(s, o)| {
            let (own, next) = (base[s], base[(s + 1).min(outs.len())]);
            o.triangles.iter().map(move |t| {
                t.map(|v| {
                    if v & FOREIGN != 0 {
                        next + (v & !FOREIGN)
                    } else {
                        own + v
                    }
                })
            })
        })
        .collect();
    let mut positions = Vec::with_capacity(total);
    let mut normals = Vec::with_capacity(total);
    let mut bad_normals = false;
    for o in outs {
        positions.extend_from_slice(&o.positions);
        normals.extend_from_slice(&o.normals);
        bad_normals |= o.bad_normals;
    }
    let mut mesh = Mesh {
        positions,
        normals,
        triangles,
        ..Default::default()
    };
    if bad_normals {
        repair_nan_normals(&mut mesh);
    }
    mesh
}

#[derive(Default)]
struct SlabOut {
    positions: Vec<[f32; 3]>,
    normals: Vec<[f32; 3]>,
    /// Local ids, or `FOREIGN | rank` for vertices of the next slab.
    triangles: Vec<[u32; 3]>,
    bad_normals: bool,
}

struct Grid<'a> {
    data: &'a [f32],
    nx: usize,
    ny: usize,
    nz: usize,
    level: f32,
    below: bool,
    affine: Affine,
    normal_matrix: Option<[[f64; 3]; 3]>,
    flip: bool,
    tables: &'static Tables,
}

/// Per-layer vertex ids of the x and y edges.
struct LayerIds {
    x: Vec<u32>,
    y: Vec<u32>,
}

impl Grid<'_> {
    /// The field, signed so that inside is positive (or zero for `Below`; NaN is never inside).
    #[inline]
    fn s(&self, i: usize) -> f32 {
        let v = self.data[i];
        if self.below { self.level - v } else { v - self.level }
    }

    #[inline]
    fn idx(&self, x: usize, y: usize, z: usize) -> usize {
        x + self.nx * (y + self.ny * z)
    }

    /// Packs the inside flags of layer `z`, one row of `u64` words per `y` (bit `x % 64` of word
    /// `x / 64`; padding bits past `nx` are zero).
    fn fill_bits(&self, z: usize, bits: &mut LayerBits) {
        let (nx, level, below) = (self.nx, self.level, self.below);
        let off = z * nx * self.ny;
        for y in 0..self.ny {
            let values = &self.data[off + y * nx..off + (y + 1) * nx];
            let row = bits.row_mut(y);
            // At or below: the same partition as `Above` (`v > level` against the rest), so the
            // two modes give the same surface with opposite winding. NaN is never inside.
            let pack = |chunk: &[f32]| -> u64 {
                let mut w = 0u64;
                if below {
                    for (k, &v) in chunk.iter().enumerate() {
                        w |= u64::from(level - v >= 0.0) << k;
                    }
                } else {
                    for (k, &v) in chunk.iter().enumerate() {
                        w |= u64::from(v - level > 0.0) << k;
                    }
                }
                w
            };
            let full = values.chunks_exact(64);
            let tail = full.remainder();
            let n_full = full.len();
            for (word, chunk) in row.iter_mut().zip(full) {
                // Eight at a time with constant shifts: the compiler turns each group into a
                // vector compare and a mask move.
                let mut bytes = [0u8; 8];
                for (byte, c) in bytes.iter_mut().zip(chunk.chunks_exact(8)) {
                    let c: &[f32; 8] = c.try_into().unwrap_or(&[f32::NAN; 8]);
                    let mut b = 0u8;
                    if below {
                        for (k, &v) in c.iter().enumerate() {
                            b |= u8::from(level - v >= 0.0) << k;
                        }
                    } else {
                        for (k, &v) in c.iter().enumerate() {
                            b |= u8::from(v - level > 0.0) << k;
                        }
                    }
                    *byte = b;
                }
                *word = u64::from_le_bytes(bytes);
            }
            if !tail.is_empty() {
                row[n_full] = pack(tail);
            }
        }
    }

    /// Gradient of the signed field at voxel `p` (flat index `ip`), in voxel-index units:
    /// central differences, one-sided at the border.
    #[inline]
    fn gradient(&self, p: [usize; 3], ip: usize) -> [f32; 3] {
        let dims = [self.nx, self.ny, self.nz];
        let strides = [1, self.nx, self.nx * self.ny];
        let mut g = [0f32; 3];
        for k in 0..3 {
            let (lo, h_lo) = if p[k] > 0 { (ip - strides[k], 1.0) } else { (ip, 0.0) };
            let (hi, h_hi) = if p[k] + 1 < dims[k] {
                (ip + strides[k], 1.0)
            } else {
                (ip, 0.0)
            };
            let h = h_lo + h_hi;
            g[k] = if h > 0.0 {
                (self.data[hi] - self.data[lo]) / h
            } else {
                0.0
            };
        }
        // Negating the raw difference (rather than differencing the signed values) keeps the two
        // modes exact mirrors of each other.
        if self.below { g.map(|v| -v) } else { g }
    }

    /// The vertex on the edge from voxel `a` to its neighbour along `axis`: world position and
    /// outward unit normal (NaN when the gradient is unusable).
    fn vertex(&self, a: [usize; 3], axis: usize) -> ([f32; 3], [f32; 3]) {
        let mut b = a;
        b[axis] += 1;
        let ia = self.idx(a[0], a[1], a[2]);
        let ib = self.idx(b[0], b[1], b[2]);
        let (sa, sb) = (f64::from(self.s(ia)), f64::from(self.s(ib)));
        let mut t = sa / (sa - sb);
        if !t.is_finite() {
            t = 0.5;
        }
        let t = t.clamp(0.0, 1.0);
        let mut p = [a[0] as f64, a[1] as f64, a[2] as f64];
        p[axis] += t;
        let w = crate::core::volume::apply(&self.affine, p);
        let position = [w[0] as f32, w[1] as f32, w[2] as f32];

        let mut normal = [f32::NAN; 3];
        if let Some(m) = &self.normal_matrix {
            let (ga, gb) = (self.gradient(a, ia), self.gradient(b, ib));
            // Outward is where the signed field decreases.
            let g = [0, 1, 2].map(|k| -(f64::from(ga[k]) * (1.0 - t) + f64::from(gb[k]) * t));
            let n = [0, 1, 2].map(|r| m[r][0] * g[0] + m[r][1] * g[1] + m[r][2] * g[2]);
            let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
            if len > 0.0 && len.is_finite() {
                normal = n.map(|v| (v / len) as f32);
            }
        }
        (position, normal)
    }

    fn push_vertex(&self, out: &mut SlabOut, a: [usize; 3], axis: usize) -> u32 {
        let (p, n) = self.vertex(a, axis);
        out.bad_normals |= n[0].is_nan();
        out.positions.push(p);
        out.normals.push(n);
        (out.positions.len() - 1) as u32
    }

    /// The extra vertex inside cube `c` that some ambiguous configurations need (see
    /// `tables.rs`): the mean of the loop's edge vertices around it.
    #[cold]
    fn push_centre(&self, out: &mut SlabOut, c: [usize; 3], edges: &[u8]) -> u32 {
        let mut loop_edges = [false; 12];
        for t in edges.chunks_exact(3) {
            if t.contains(&CENTRE) {
                for &e in t {
                    if e < CENTRE {
                        loop_edges[e as usize] = true;
                    }
                }
            }
        }
        let (mut p, mut n, mut count) = ([0f64; 3], [0f64; 3], 0.0);
        for e in (0..12).filter(|&e| loop_edges[e]) {
            let dir = e >> 2;
            let (a, b) = other_axes(dir);
            let mut v = c;
            v[a] += e & 1;
            v[b] += (e >> 1) & 1;
            let (vp, vn) = self.vertex(v, dir);
            for k in 0..3 {
                p[k] += f64::from(vp[k]);
                n[k] += f64::from(vn[k]);
            }
            count += 1.0;
        }
        let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
        let normal = if len > 0.0 && len.is_finite() {
            n.map(|v| (v / len) as f32)
        } else {
            [f32::NAN; 3]
        };
        out.bad_normals |= normal[0].is_nan();
        out.positions.push(p.map(|v| (v / count) as f32));
        out.normals.push(normal);
        (out.positions.len() - 1) as u32
    }

    /// Creates (or, for a layer owned by the next slab, only numbers) the vertices of the
    /// crossed x and y edges of layer `z`, scanning in the same order whoever calls it.
    fn layer_vertices(&self, z: usize, bits: &LayerBits, ids: &mut LayerIds, out: &mut SlabOut, foreign: bool) {
        let (nx, ny) = (self.nx, self.ny);
        let mut rank = 0u32;
        let mut new_id = |out: &mut SlabOut, x: usize, y: usize, axis: usize| {
            if foreign {
                rank += 1;
                FOREIGN | (rank - 1)
            } else {
                self.push_vertex(out, [x, y, z], axis)
            }
        };
        for y in 0..ny {
            let row = bits.row(y);
            for i in 0..row.len() {
                let mut crossed = (row[i] ^ shr1(row, i)) & edge_mask(nx, i);
                while crossed != 0 {
                    let x = i * 64 + crossed.trailing_zeros() as usize;
                    crossed &= crossed - 1;
                    ids.x[y * nx + x] = new_id(out, x, y, 0);
                }
            }
            if y + 1 < ny {
                let next = bits.row(y + 1);
                for i in 0..row.len() {
                    let mut crossed = row[i] ^ next[i];
                    while crossed != 0 {
                        let x = i * 64 + crossed.trailing_zeros() as usize;
                        crossed &= crossed - 1;
                        ids.y[y * nx + x] = new_id(out, x, y, 1);
                    }
                }
            }
        }
    }

    /// Face decisions for the ambiguous faces `amb` of the cube at `(x, y, z)`: bit `f` set when
    /// the bilinear interpolant's saddle on face `f` is inside (the inside corners are joined).
    /// Both cubes sharing a face evaluate the same four values in the same order, so they agree.
    #[cold]
    fn decide(&self, x: usize, y: usize, z: usize, amb: u8) -> u8 {
        let s: [f32; 8] = std::array::from_fn(|c| self.s(self.idx(x + (c & 1), y + ((c >> 1) & 1), z + (c >> 2))));
        let mut bits = 0u8;
        for f in 0..6 {
            if (amb >> f) & 1 == 0 {
                continue;
            }
            let [p0, p1, p2, p3] = face_corners(f);
            let (a, b, c, d) = (s[p0], s[p1], s[p2], s[p3]);
            let saddle = (a * c - b * d) / (a + c - b - d);
            // `>=` for `Below` mirrors `Above`'s `>` (the signed field is negated).
            if saddle > 0.0 || (self.below && saddle == 0.0) {
                bits |= 1 << f;
            }
        }
        bits
    }

    /// Cube layers `z0..z1`; the top voxel layer `z1` is owned by the next slab unless `last`.
    fn slab(&self, scratch: &mut Scratch, z0: usize, z1: usize, last: bool) -> SlabOut {
        let (nx, ny) = (self.nx, self.ny);
        let mut out = SlabOut::default();
        // Stale contents are harmless: bits are overwritten layer by layer and an id is only
        // read for a crossed edge, whose id was written when its layer was scanned.
        let Scratch {
            bits_lo,
            bits_hi,
            lo,
            hi,
            zid,
        } = scratch;
        let mut tri_ids: Vec<[u32; 3]> = Vec::new();
        let t = self.tables;

        self.fill_bits(z0, bits_lo);
        self.layer_vertices(z0, bits_lo, lo, &mut out, false);
        for z in z0..z1 {
            self.fill_bits(z + 1, bits_hi);
            self.layer_vertices(z + 1, bits_hi, hi, &mut out, z + 1 == z1 && !last);
            for y in 0..ny {
                let (rl, rh) = (bits_lo.row(y), bits_hi.row(y));
                for i in 0..rl.len() {
                    let mut crossed = rl[i] ^ rh[i];
                    while crossed != 0 {
                        let x = i * 64 + crossed.trailing_zeros() as usize;
                        crossed &= crossed - 1;
                        zid[y * nx + x] = self.push_vertex(&mut out, [x, y, z], 2);
                    }
                }
            }
            for y in 0..ny - 1 {
                let rows = [bits_lo.row(y), bits_lo.row(y + 1), bits_hi.row(y), bits_hi.row(y + 1)];
                for i in 0..rows[0].len() {
                    // r[k]: corners at dx = 0, s[k]: at dx = 1, of the four (dy, dz) rows.
                    let r = rows.map(|row| row[i]);
                    let s = [0, 1, 2, 3].map(|k| shr1(rows[k], i));
                    let any = r[0] | r[1] | r[2] | r[3] | s[0] | s[1] | s[2] | s[3];
                    let all = r[0] & r[1] & r[2] & r[3] & s[0] & s[1] & s[2] & s[3];
                    let mut active = any & !all & edge_mask(nx, i);
                    while active != 0 {
                        let b = active.trailing_zeros();
                        active &= active - 1;
                        let x = i * 64 + b as usize;
                        let bit = |w: u64| ((w >> b) & 1) as usize;
                        let case = bit(r[0])
                            | bit(s[0]) << 1
                            | bit(r[1]) << 2
                            | bit(s[1]) << 3
                            | bit(r[2]) << 4
                            | bit(s[2]) << 5
                            | bit(r[3]) << 6
                            | bit(s[3]) << 7;
                        self.emit_cube(&mut out, &mut tri_ids, t, case, [x, y, z], [lo, hi], zid);
                    }
                }
            }
            std::mem::swap(bits_lo, bits_hi);
            std::mem::swap(lo, hi);
        }
        out.triangles = tri_ids;
        out
    }

    /// Appends the triangles of one active cube.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn emit_cube(
        &self,
        out: &mut SlabOut,
        tri_ids: &mut Vec<[u32; 3]>,
        t: &Tables,
        case: usize,
        [x, y, z]: [usize; 3],
        [lo, hi]: [&LayerIds; 2],
        zid: &[u32],
    ) {
        let nx = self.nx;
        let amb = t.ambiguous[case];
        let faces = if amb == 0 { 0 } else { self.decide(x, y, z, amb) };
        let k = case * FACE_CHOICES + faces as usize;
        let edges = &t.edges[t.start[k] as usize..t.start[k + 1] as usize];
        let centre = if amb != 0 && edges.contains(&CENTRE) {
            self.push_centre(out, [x, y, z], edges)
        } else {
            0
        };
        let id = |e: u8| -> u32 {
            let (dir, p, q) = (e >> 2, (e & 1) as usize, ((e >> 1) & 1) as usize);
            match dir {
                3 => centre,
                // x edge: p is the y offset, q the z offset
                0 => (if q == 1 { &hi.x } else { &lo.x })[(y + p) * nx + x],
                // y edge: p is the x offset, q the z offset
                1 => (if q == 1 { &hi.y } else { &lo.y })[y * nx + x + p],
                // z edge: p is the x offset, q the y offset
                _ => zid[(y + q) * nx + x + p],
            }
        };
        for e in edges.chunks_exact(3) {
            let (a, b, c) = (id(e[0]), id(e[1]), id(e[2]));
            tri_ids.push(if self.flip { [a, c, b] } else { [a, b, c] });
        }
    }
}

/// Per-thread working arrays of [`Grid::slab`], reused across slabs.
struct Scratch {
    bits_lo: LayerBits,
    bits_hi: LayerBits,
    lo: LayerIds,
    hi: LayerIds,
    zid: Vec<u32>,
}

impl Scratch {
    fn new(nx: usize, ny: usize) -> Self {
        let plane = nx * ny;
        let ids = || LayerIds {
            x: vec![0; plane],
            y: vec![0; plane],
        };
        Self {
            bits_lo: LayerBits::new(nx, ny),
            bits_hi: LayerBits::new(nx, ny),
            lo: ids(),
            hi: ids(),
            zid: vec![0; plane],
        }
    }
}

/// Inside flags of one voxel layer, packed 64 per word, `words_per_row` words per row.
struct LayerBits {
    words_per_row: usize,
    words: Vec<u64>,
}

impl LayerBits {
    fn new(nx: usize, ny: usize) -> Self {
        let words_per_row = nx.div_ceil(64);
        Self {
            words_per_row,
            words: vec![0; words_per_row * ny],
        }
    }
    #[inline]
    fn row(&self, y: usize) -> &[u64] {
        &self.words[y * self.words_per_row..(y + 1) * self.words_per_row]
    }
    #[inline]
    fn row_mut(&mut self, y: usize) -> &mut [u64] {
        &mut self.words[y * self.words_per_row..(y + 1) * self.words_per_row]
    }
}

/// Bit `x` of the result is bit `x + 1` of the row (word `i` of it).
#[inline]
fn shr1(row: &[u64], i: usize) -> u64 {
    (row[i] >> 1) | row.get(i + 1).map_or(0, |w| w << 63)
}

/// Bits of word `i` whose `x` starts an edge along x (or a cube): `x < nx - 1`.
#[inline]
fn edge_mask(nx: usize, i: usize) -> u64 {
    let limit = nx - 1; // number of valid x
    let start = i * 64;
    if limit >= start + 64 {
        u64::MAX
    } else if limit <= start {
        0
    } else {
        (1u64 << (limit - start)) - 1
    }
}
