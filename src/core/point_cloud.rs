//! `PointCloud`: unconnected points in world space (mm) with optional attributes.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PointCloud {
    pub points: Vec<[f32; 3]>,
    /// Empty when absent, else one per point.
    pub normals: Vec<[f32; 3]>,
    pub colors: Vec<[u8; 4]>,
    pub scalars: Vec<f32>,
}

impl PointCloud {
    pub fn new(points: Vec<[f32; 3]>) -> Self {
        Self {
            points,
            ..Default::default()
        }
    }
    pub fn len(&self) -> usize {
        self.points.len()
    }
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
    pub fn bounds(&self) -> Option<([f32; 3], [f32; 3])> {
        super::mesh::bounds(&self.points)
    }
}
