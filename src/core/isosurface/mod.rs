//! What the CPU marching cubes (`methods::isosurface`) and the GPU kernel
//! (`render::marching_cubes_gpu`) share: the case tables, which side is inside, and the repair of
//! unusable normals, so both produce the same mesh.

pub mod tables;

use super::Mesh;

/// Which side of the level is the solid (the region the surface encloses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inside {
    /// Values strictly above the level are inside (a bright object on a dark background; like
    /// scikit-image's default `gradient_direction="descent"`).
    Above,
    /// Values at or below the level are inside (e.g. a signed distance function, negative
    /// inside).
    Below,
}

/// Replaces NaN normals by the area-weighted normal of the faces around the vertex (zero where
/// that is degenerate too).
pub fn repair_nan_normals(mesh: &mut Mesh) {
    let bad: Vec<bool> = mesh.normals.iter().map(|n| n[0].is_nan()).collect();
    let mut acc = vec![[0.0f64; 3]; mesh.positions.len()];
    for t in &mesh.triangles {
        if !t.iter().any(|&i| bad[i as usize]) {
            continue;
        }
        let [a, b, c] = t.map(|i| mesh.positions[i as usize].map(f64::from));
        let u = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
        let v = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
        let n = [
            u[1] * v[2] - u[2] * v[1],
            u[2] * v[0] - u[0] * v[2],
            u[0] * v[1] - u[1] * v[0],
        ];
        for &i in t {
            for k in 0..3 {
                acc[i as usize][k] += n[k];
            }
        }
    }
    for (i, n) in mesh.normals.iter_mut().enumerate() {
        if bad[i] {
            let a = acc[i];
            let len = (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt();
            *n = if len > 0.0 && len.is_finite() {
                a.map(|x| (x / len) as f32)
            } else {
                [0.0; 3]
            };
        }
    }
}
