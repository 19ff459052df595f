//! `Mesh`: an indexed triangle mesh in world space (mm).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Mesh {
    pub positions: Vec<[f32; 3]>,
    /// Per-vertex normals; empty when the source had none (see [`Mesh::compute_normals`]).
    pub normals: Vec<[f32; 3]>,
    pub triangles: Vec<[u32; 3]>,
    /// Optional per-vertex scalar (e.g. a displacement or a curvature), empty when absent.
    pub scalars: Vec<f32>,
    /// Optional per-vertex RGBA colour, empty when absent.
    pub colors: Vec<[u8; 4]>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MeshError {
    #[error("triangle {triangle} refers to vertex {index} but the mesh has {vertices} vertices")]
    IndexOutOfRange {
        triangle: usize,
        index: u32,
        vertices: usize,
    },
    #[error("{what} has {found} entries but the mesh has {vertices} vertices")]
    AttributeLength {
        what: &'static str,
        found: usize,
        vertices: usize,
    },
    #[error("vertex {0} has a non-finite coordinate")]
    NonFinite(usize),
}

impl Mesh {
    /// Checks indices, attribute lengths and finiteness.
    pub fn validate(&self) -> Result<(), MeshError> {
        let n = self.positions.len();
        for (t, tri) in self.triangles.iter().enumerate() {
            for &i in tri {
                if i as usize >= n {
                    return Err(MeshError::IndexOutOfRange {
                        triangle: t,
                        index: i,
                        vertices: n,
                    });
                }
            }
        }
        for (what, len) in [
            ("normals", self.normals.len()),
            ("scalars", self.scalars.len()),
            ("colors", self.colors.len()),
        ] {
            if len != 0 && len != n {
                return Err(MeshError::AttributeLength {
                    what,
                    found: len,
                    vertices: n,
                });
            }
        }
        if let Some(i) = self.positions.iter().position(|p| p.iter().any(|c| !c.is_finite())) {
            return Err(MeshError::NonFinite(i));
        }
        Ok(())
    }

    /// Area-weighted vertex normals from the triangles' winding.
    pub fn compute_normals(&mut self) {
        self.normals = self.vertex_normals();
    }

    /// The normals [`Mesh::compute_normals`] stores, without storing them.
    pub fn vertex_normals(&self) -> Vec<[f32; 3]> {
        let mut acc = vec![[0.0f64; 3]; self.positions.len()];
        for t in &self.triangles {
            let [a, b, c] = t.map(|i| self.positions[i as usize].map(f64::from));
            let n = cross(sub(b, a), sub(c, a));
            for &i in t {
                for k in 0..3 {
                    acc[i as usize][k] += n[k];
                }
            }
        }
        acc.into_iter()
            .map(|n| {
                let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
                if len > 0.0 {
                    [(n[0] / len) as f32, (n[1] / len) as f32, (n[2] / len) as f32]
                } else {
                    [0.0, 0.0, 0.0]
                }
            })
            .collect()
    }

    /// Total surface area.
    pub fn area(&self) -> f64 {
        self.triangles
            .iter()
            .map(|t| {
                let [a, b, c] = t.map(|i| self.positions[i as usize].map(f64::from));
                let n = cross(sub(b, a), sub(c, a));
                0.5 * (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt()
            })
            .sum()
    }

    /// Signed enclosed volume (divergence theorem); positive for a closed, outward-wound mesh.
    pub fn signed_volume(&self) -> f64 {
        self.triangles
            .iter()
            .map(|t| {
                let [a, b, c] = t.map(|i| self.positions[i as usize].map(f64::from));
                let cr = cross(b, c);
                (a[0] * cr[0] + a[1] * cr[1] + a[2] * cr[2]) / 6.0
            })
            .sum()
    }

    /// Axis-aligned bounds `(min, max)`, `None` for an empty mesh.
    pub fn bounds(&self) -> Option<([f32; 3], [f32; 3])> {
        bounds(&self.positions)
    }
}

pub(crate) fn bounds(points: &[[f32; 3]]) -> Option<([f32; 3], [f32; 3])> {
    let first = *points.first()?;
    Some(points.iter().fold((first, first), |(mut lo, mut hi), p| {
        for k in 0..3 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
        (lo, hi)
    }))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_tetra() -> Mesh {
        Mesh {
            positions: vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            triangles: vec![[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]],
            ..Default::default()
        }
    }

    #[test]
    fn tetra_volume_and_validation() {
        let m = unit_tetra();
        m.validate().unwrap();
        assert!((m.signed_volume() - 1.0 / 6.0).abs() < 1e-12);
        let mut bad = m.clone();
        bad.triangles.push([0, 1, 9]);
        assert!(matches!(
            bad.validate(),
            Err(MeshError::IndexOutOfRange { index: 9, .. })
        ));
    }
}
