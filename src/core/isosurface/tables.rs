//! Marching-cubes case tables, generated once at first use from a face-consistent rule instead
//! of being transcribed.
//!
//! For every cube configuration (8 inside/outside corner bits) and every choice for its ambiguous
//! faces, the generator
//! 1. draws on each of the six faces the segments joining the crossed edges (two crossed edges:
//!    one segment; four crossed edges, an ambiguous face: two segments, which cut off either the
//!    two outside corners, the inside corners being "joined" across the face, or the two inside
//!    corners),
//! 2. orients each segment so that, walking along it, the surface's outward side (towards the
//!    outside corners) is consistent with a right-handed outward normal,
//! 3. chains the segments into closed loops (each crossed edge lies on exactly two faces) and
//!    triangulates every loop with the shortest total diagonal length, never drawing a diagonal
//!    between two vertices on the same cube face (the neighbouring cube could draw the same one,
//!    leaving four triangles on an edge). About a hundred of the 16 384 entries have a loop that
//!    cannot be triangulated that way; it gets a fan around an extra vertex inside the cube
//!    ([`CENTRE`], placed at the mean of the loop's vertices), as Lewiner's MC33 does.
//!
//! A face's segments depend only on its own four corners and its decision bit, and both cubes
//! sharing a face take the same decision (see `marching_cubes.rs`), so neighbouring cubes always
//! agree on the boundary of the surface between them: the result is watertight by construction.
//!
//! Conventions: corner `i` sits at `(i & 1, (i >> 1) & 1, (i >> 2) & 1)`; edge `e` runs along axis
//! `e >> 2` and its position on the two other axes (in increasing axis order) is `e & 1` and
//! `(e >> 1) & 1`; face `f` is the plane `axis = f >> 1` at coordinate `f & 1`.

use std::sync::OnceLock;

/// Vertex id, in table entries, of the extra vertex inside the cube (at most one per cube).
pub const CENTRE: u8 = 12;

/// Number of table entries per case: one per subset of the six faces' decision bits.
pub const FACE_CHOICES: usize = 64;

pub struct Tables {
    /// For each case, the faces (bit `f`) whose corners alternate inside/outside.
    pub ambiguous: [u8; 256],
    /// `triangles[start[k]..start[k + 1]]` lists the edges of entry `k = case * 64 + face_bits`,
    /// three per triangle, wound so the normal (right-hand rule) points away from the inside.
    pub start: Vec<u32>,
    pub edges: Vec<u8>,
}

pub fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(build)
}

/// The two axes other than `axis`, in increasing order.
pub const fn other_axes(axis: usize) -> (usize, usize) {
    match axis {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    }
}

fn corner_pos(i: usize) -> [f64; 3] {
    [(i & 1) as f64, ((i >> 1) & 1) as f64, ((i >> 2) & 1) as f64]
}

/// Edge between two corners that differ along exactly one axis.
fn edge_between(c1: usize, c2: usize) -> usize {
    let diff = c1 ^ c2;
    let dir = diff.trailing_zeros() as usize;
    let (a, b) = other_axes(dir);
    dir * 4 + ((c1 >> a) & 1) + (((c1 >> b) & 1) << 1)
}

fn edge_mid(e: usize) -> [f64; 3] {
    let dir = e >> 2;
    let (a, b) = other_axes(dir);
    let mut p = [0.0; 3];
    p[dir] = 0.5;
    p[a] = (e & 1) as f64;
    p[b] = ((e >> 1) & 1) as f64;
    p
}

/// The four corners of face `f` in cyclic order `(u, v) = (0,0), (1,0), (1,1), (0,1)`, where `u`
/// and `v` are the face's two axes in increasing order.
pub fn face_corners(f: usize) -> [usize; 4] {
    let axis = f >> 1;
    let side = f & 1;
    let (u, v) = other_axes(axis);
    [(0, 0), (1, 0), (1, 1), (0, 1)].map(|(a, b)| (side << axis) | (a << u) | (b << v))
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn ambiguous_faces(case: usize) -> u8 {
    let mut m = 0u8;
    for f in 0..6 {
        let p = face_corners(f);
        let ins = p.map(|c| (case >> c) & 1);
        if ins[0] == ins[2] && ins[1] == ins[3] && ins[0] != ins[1] {
            m |= 1 << f;
        }
    }
    m
}

/// Triangles (edge triples) for one case and one set of face decisions (bit `f` set: the inside
/// corners of face `f` are joined across it). `None` only if the segments fail to chain into
/// loops, which the tests rule out for every entry.
pub fn triangulate(case: usize, face_bits: u8) -> Option<Vec<[u8; 3]>> {
    let inside = |c: usize| (case >> c) & 1 == 1;
    let mut next = [u8::MAX; 12];
    let mut incoming = [0u8; 12];
    for f in 0..6 {
        let axis = f >> 1;
        let mut n_face = [0.0; 3];
        n_face[axis] = if f & 1 == 1 { 1.0 } else { -1.0 };
        let p = face_corners(f);
        let e = [0, 1, 2, 3].map(|k| edge_between(p[k], p[(k + 1) % 4]));
        let crossed: Vec<usize> = (0..4).filter(|&k| inside(p[k]) != inside(p[(k + 1) % 4])).collect();
        // (edge a, edge b, an outside corner on the outside side of the segment)
        let mut segments: Vec<(usize, usize, usize)> = Vec::with_capacity(2);
        match crossed.len() {
            0 => {}
            2 => {
                let out = *p.iter().find(|&&c| !inside(c))?;
                segments.push((e[crossed[0]], e[crossed[1]], out));
            }
            4 => {
                let join_inside = (face_bits >> f) & 1 == 1;
                for k in 0..4 {
                    // Cut off corner k: the segment joins its two face edges.
                    let cut = p[k];
                    if inside(cut) == join_inside {
                        continue;
                    }
                    let out = if inside(cut) { p[(k + 1) % 4] } else { cut };
                    segments.push((e[(k + 3) % 4], e[k], out));
                }
            }
            _ => return None,
        }
        for (a, b, out) in segments {
            let (pa, pb) = (edge_mid(a), edge_mid(b));
            let mid = [(pa[0] + pb[0]) / 2.0, (pa[1] + pb[1]) / 2.0, (pa[2] + pb[2]) / 2.0];
            let u = sub(corner_pos(out), mid);
            let (from, to) = if dot(sub(pb, pa), cross(u, n_face)) > 0.0 {
                (a, b)
            } else {
                (b, a)
            };
            if next[from] != u8::MAX {
                return None;
            }
            next[from] = to as u8;
            incoming[to] += 1;
        }
    }
    let mut tris = Vec::new();
    let mut centres = false;
    let mut seen = [false; 12];
    for start in 0..12 {
        if next[start] == u8::MAX || seen[start] {
            continue;
        }
        if incoming[start] != 1 {
            return None;
        }
        let mut lp = vec![start];
        seen[start] = true;
        let mut cur = next[start] as usize;
        while cur != start {
            if cur >= 12 || seen[cur] || incoming[cur] != 1 {
                return None;
            }
            seen[cur] = true;
            lp.push(cur);
            cur = next[cur] as usize;
        }
        if lp.len() < 3 {
            return None;
        }
        // Triangulate in a canonical direction so that a case and its complement (the same
        // loops, reversed) get the same triangles with opposite winding.
        let reversed = lp[1] > lp[lp.len() - 1];
        if reversed {
            lp[1..].reverse();
        }
        let first = tris.len();
        match triangulate_loop(&lp) {
            Some(ts) => tris.extend(ts.into_iter().map(|t| t.map(|e| e as u8))),
            None => {
                // No triangulation avoids face diagonals: fan around an extra vertex inside the
                // cube ([`CENTRE`]; the tests check no cube needs two).
                if centres {
                    return None;
                }
                centres = true;
                let c = CENTRE;
                for k in 0..lp.len() {
                    tris.push([lp[k] as u8, lp[(k + 1) % lp.len()] as u8, c]);
                }
            }
        }
        if reversed {
            for t in &mut tris[first..] {
                t.swap(1, 2);
            }
        }
    }
    Some(tris)
}

/// The two faces an edge lies on.
fn edge_faces(e: usize) -> [usize; 2] {
    let (a, b) = other_axes(e >> 2);
    [a * 2 + (e & 1), b * 2 + ((e >> 1) & 1)]
}

/// Triangulates one oriented loop of edge vertices, keeping its orientation, with the shortest
/// total diagonal length among triangulations whose diagonals never join two vertices of the
/// same cube face. (Such a diagonal could also be chosen by the neighbouring cube, which would
/// put four triangles on one edge.) `None` if no such triangulation exists.
fn triangulate_loop(lp: &[usize]) -> Option<Vec<[usize; 3]>> {
    let n = lp.len();
    let side = |i: usize, j: usize| j == i + 1 || (i == 0 && j == n - 1);
    let good = |i: usize, j: usize| {
        side(i, j) || {
            let (fa, fb) = (edge_faces(lp[i]), edge_faces(lp[j]));
            !fa.iter().any(|f| fb.contains(f))
        }
    };
    let len = |i: usize, j: usize| {
        let d = sub(edge_mid(lp[i]), edge_mid(lp[j]));
        dot(d, d).sqrt()
    };
    // best[i][j]: (cost, split) of triangulating the sub-polygon i..=j closed by chord (i, j).
    let mut best = vec![vec![None::<(f64, usize)>; n]; n];
    for i in 0..n - 1 {
        best[i][i + 1] = Some((0.0, usize::MAX));
    }
    for span in 2..n {
        for i in 0..n - span {
            let j = i + span;
            if !good(i, j) {
                continue;
            }
            let chord = if side(i, j) { 0.0 } else { len(i, j) };
            for k in i + 1..j {
                if let (Some((c1, _)), Some((c2, _))) = (best[i][k], best[k][j]) {
                    let c = c1 + c2 + chord;
                    if best[i][j].is_none_or(|(b, _)| c < b - 1e-12) {
                        best[i][j] = Some((c, k));
                    }
                }
            }
        }
    }
    best[0][n - 1]?;
    let mut out = Vec::with_capacity(n - 2);
    let mut stack = vec![(0, n - 1)];
    while let Some((i, j)) = stack.pop() {
        if j - i < 2 {
            continue;
        }
        let (_, k) = best[i][j]?;
        out.push([lp[i], lp[k], lp[j]]);
        stack.push((i, k));
        stack.push((k, j));
    }
    Some(out)
}

fn build() -> Tables {
    let mut ambiguous = [0u8; 256];
    let mut start = Vec::with_capacity(256 * FACE_CHOICES + 1);
    let mut edges = Vec::new();
    for (case, amb) in ambiguous.iter_mut().enumerate() {
        *amb = ambiguous_faces(case);
        for bits in 0..FACE_CHOICES as u8 {
            start.push(edges.len() as u32);
            // Bits of non-ambiguous faces are never set at run time: leave those entries empty.
            if bits & !*amb != 0 {
                continue;
            }
            for t in triangulate(case, bits).unwrap_or_default() {
                edges.extend_from_slice(&t);
            }
        }
    }
    start.push(edges.len() as u32);
    Tables {
        ambiguous,
        start,
        edges,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_chains_into_loops_covering_the_crossed_edges() {
        let (mut max_centres, mut with_centre) = (0, 0);
        for case in 0..256usize {
            let amb = ambiguous_faces(case);
            for bits in 0..64u8 {
                if bits & !amb != 0 {
                    continue;
                }
                let tris = triangulate(case, bits).unwrap_or_else(|| panic!("case {case} bits {bits}"));
                // Every crossed edge is a vertex; no other edge is.
                let mut used = [false; 12];
                let mut centres = 0;
                for t in &tris {
                    for &e in t {
                        if e == CENTRE {
                            centres = 1;
                        } else {
                            used[e as usize] = true;
                        }
                    }
                }
                max_centres = max_centres.max(centres);
                with_centre += usize::from(centres > 0);
                for (e, &u) in used.iter().enumerate() {
                    let dir = e >> 2;
                    let (a, b) = other_axes(dir);
                    let c0 = ((e & 1) << a) | (((e >> 1) & 1) << b);
                    let c1 = c0 | (1 << dir);
                    let crossed = ((case >> c0) & 1) != ((case >> c1) & 1);
                    assert_eq!(u, crossed, "case {case} bits {bits} edge {e}");
                }
                if case == 0 || case == 255 {
                    assert!(tris.is_empty());
                }
            }
        }
        assert_eq!(max_centres, 1);
        assert!(
            with_centre > 0 && with_centre < 200,
            "{with_centre} entries need a centre vertex"
        );
    }

    #[test]
    fn complement_is_the_same_surface_reversed() {
        for case in 0..256usize {
            let amb = ambiguous_faces(case);
            for bits in (0..64u8).filter(|b| b & !amb == 0) {
                let a = triangulate(case, bits).unwrap();
                // The complement swaps inside and outside: a joined face becomes a separated one.
                let b = triangulate(255 - case, amb & !bits).unwrap();
                let flipped: Vec<[u8; 3]> = a.iter().map(|t| [t[0], t[2], t[1]]).collect();
                assert_eq!(b, flipped, "case {case} bits {bits}");
            }
        }
    }

    #[test]
    fn single_corner_points_away_from_it() {
        // Corner 0 inside: one triangle on edges 0 (x), 4 (y), 8 (z), normal towards +x+y+z.
        let t = triangulate(1, 0).unwrap();
        assert_eq!(t.len(), 1);
        let [a, b, c] = t[0].map(|e| edge_mid(e as usize));
        let n = cross(sub(b, a), sub(c, a));
        assert!(n.iter().all(|&x| x > 0.0), "{n:?}");
        // Complement: same triangle, reversed.
        let t = triangulate(254, 0).unwrap();
        let [a, b, c] = t[0].map(|e| edge_mid(e as usize));
        let n = cross(sub(b, a), sub(c, a));
        assert!(n.iter().all(|&x| x < 0.0), "{n:?}");
    }

    #[test]
    fn table_sizes() {
        let t = tables();
        assert_eq!(t.start.len(), 256 * FACE_CHOICES + 1);
        let max = (0..256 * FACE_CHOICES)
            .map(|k| t.start[k + 1] - t.start[k])
            .max()
            .unwrap();
        assert!(max <= 3 * 12, "at most 12 triangles per cube, got {}", max / 3);
        assert_eq!(t.ambiguous[0b0110_1001], 0b11_1111, "checkerboard: all faces ambiguous");
    }
}
