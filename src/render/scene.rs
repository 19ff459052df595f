//! What the viewport shows: objects (meshes, point clouds) with their style, and the settings
//! that apply to the whole view. Plain data: the app, the CLI and the tests build it the same way.

use super::math::{self, Vec3};
use crate::core::colormap::Colormap;
use crate::core::stats::finite_range;
use crate::core::{Mesh, PointCloud, Volume};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub enum Geometry {
    Mesh(Arc<Mesh>),
    Points(Arc<PointCloud>),
    /// Ray-marched (its first frame), coloured and made opaque by a window on its values.
    Volume(Arc<Volume>),
}

impl Geometry {
    pub fn bounds(&self) -> Option<(Vec3, Vec3)> {
        match self {
            Geometry::Mesh(m) => m.bounds(),
            Geometry::Points(p) => p.bounds(),
            Geometry::Volume(v) => super::volume_pass::volume_bounds(v),
        }
    }

    /// Whether both share the same data (renderers cache GPU buffers by it). The cache keeps its
    /// own clone of the `Arc`, so the address cannot be freed and reused by a different geometry
    /// while it is compared against (a bare address went stale that way: the next frame of an
    /// animation, allocated where the dropped previous frame was, reused its GPU buffers).
    pub fn same_data(&self, other: &Geometry) -> bool {
        match (self, other) {
            (Geometry::Mesh(a), Geometry::Mesh(b)) => Arc::ptr_eq(a, b),
            (Geometry::Points(a), Geometry::Points(b)) => Arc::ptr_eq(a, b),
            (Geometry::Volume(a), Geometry::Volume(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Per-vertex (per-point) scalars, empty when the geometry has none.
    pub fn scalars(&self) -> &[f32] {
        match self {
            Geometry::Mesh(m) => &m.scalars,
            Geometry::Points(p) => &p.scalars,
            // A volume's values are its voxels (see `Coloring::Scalar` for its window).
            Geometry::Volume(v) => v.frame(0),
        }
    }
}

/// How an object's surface is coloured.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Coloring {
    /// One colour (sRGB bytes).
    Solid([u8; 4]),
    /// The per-vertex scalar through a colormap, clamped to `[lo, hi]`.
    Scalar { colormap: Colormap, lo: f32, hi: f32 },
    /// The geometry's own per-vertex colours.
    Vertex,
}

#[derive(Clone, Debug)]
pub struct SceneObject {
    /// Stable identity: the renderer caches GPU buffers per id and re-uploads when `version`
    /// changes.
    pub id: u64,
    pub version: u64,
    pub name: String,
    pub geometry: Geometry,
    pub coloring: Coloring,
    pub visible: bool,
}

impl SceneObject {
    pub fn new(id: u64, name: impl Into<String>, geometry: Geometry) -> Self {
        Self {
            id,
            version: 0,
            name: name.into(),
            geometry,
            coloring: Coloring::Solid(PALETTE[id as usize % PALETTE.len()]),
            visible: true,
        }
    }

    /// Colours by the geometry's scalars over their full finite range (solid when there are none).
    pub fn with_scalar_coloring(mut self, colormap: Colormap) -> Self {
        if let Some((lo, hi)) = finite_range(self.geometry.scalars()) {
            self.coloring = Coloring::Scalar { colormap, lo, hi };
        }
        self
    }
}

/// Distinct default colours for objects shown together.
pub const PALETTE: [[u8; 4]; 5] = [
    [200, 200, 210, 255],
    [230, 160, 90, 255],
    [110, 170, 230, 255],
    [140, 200, 120, 255],
    [210, 120, 170, 255],
];

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shading {
    /// Interpolated vertex normals.
    #[default]
    Smooth,
    /// One normal per triangle.
    Flat,
}

/// How several objects share the view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arrangement {
    /// In their own coordinates, on top of each other.
    #[default]
    Overlay,
    /// Laid out left to right along X with a gap, each keeping its Y and Z.
    SideBySide,
}

/// A cutting plane through a point with a normal: the half-space the normal points away from is
/// cut away.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClipPlane {
    pub normal: Vec3,
    pub point: Vec3,
}

impl ClipPlane {
    /// `(n, d)` with `n·p + d ≥ 0` on the kept side (n normalised).
    pub fn equation(&self) -> [f32; 4] {
        let n = math::normalize(self.normal);
        [n[0], n[1], n[2], -math::dot(n, self.point)]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RenderSettings {
    pub shading: Shading,
    pub wireframe: bool,
    /// sRGB bytes of the wireframe lines.
    pub wire_color: [u8; 4],
    pub gizmo: bool,
    pub clip: Option<ClipPlane>,
    pub arrangement: Arrangement,
    /// sRGB bytes.
    pub background: [u8; 4],
    /// Diameter of a point sprite, in pixels.
    pub point_size: f32,
    /// Opacity of one voxel at the top of a volume's window, scaled by `volume_curve` across the
    /// window.
    pub volume_opacity: f32,
    /// The opacity factor over a volume's window (the transfer function's curve; a ramp by
    /// default).
    pub volume_curve: crate::core::transfer::OpacityCurve,
    /// Samples along each ray through a volume.
    pub volume_samples: u32,
}

impl Default for RenderSettings {
    fn default() -> Self {
        Self {
            shading: Shading::Smooth,
            wireframe: false,
            wire_color: [20, 20, 28, 255],
            gizmo: true,
            clip: None,
            arrangement: Arrangement::Overlay,
            background: [38, 40, 46, 255],
            point_size: 4.0,
            volume_opacity: 0.08,
            volume_curve: Default::default(),
            volume_samples: 256,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Scene {
    pub objects: Vec<SceneObject>,
}

impl Scene {
    pub fn visible(&self) -> impl Iterator<Item = &SceneObject> {
        self.objects.iter().filter(|o| o.visible)
    }

    /// The translation of each visible object under `arrangement`, in the order of
    /// [`Scene::visible`].
    pub fn offsets(&self, arrangement: Arrangement) -> Vec<Vec3> {
        let bounds: Vec<Option<(Vec3, Vec3)>> = self.visible().map(|o| o.geometry.bounds()).collect();
        match arrangement {
            Arrangement::Overlay => vec![[0.0; 3]; bounds.len()],
            Arrangement::SideBySide => {
                let widest = bounds
                    .iter()
                    .flatten()
                    .map(|(lo, hi)| math::length(math::sub(*hi, *lo)))
                    .fold(0.0f32, f32::max);
                let gap = 0.15 * widest;
                let mut cursor = 0.0f32;
                bounds
                    .iter()
                    .map(|b| match b {
                        Some((lo, hi)) => {
                            let shift = cursor - lo[0];
                            cursor += hi[0] - lo[0] + gap;
                            [shift, 0.0, 0.0]
                        }
                        None => [0.0; 3],
                    })
                    .collect()
            }
        }
    }

    /// The box around every visible object once arranged; `None` for an empty scene.
    pub fn bounds(&self, arrangement: Arrangement) -> Option<(Vec3, Vec3)> {
        let offsets = self.offsets(arrangement);
        self.visible()
            .zip(offsets)
            .filter_map(|(o, off)| {
                o.geometry
                    .bounds()
                    .map(|(lo, hi)| (math::add(lo, off), math::add(hi, off)))
            })
            .reduce(|(a_lo, a_hi), (b_lo, b_hi)| {
                (
                    [a_lo[0].min(b_lo[0]), a_lo[1].min(b_lo[1]), a_lo[2].min(b_lo[2])],
                    [a_hi[0].max(b_hi[0]), a_hi[1].max(b_hi[1]), a_hi[2].max(b_hi[2])],
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud(points: Vec<[f32; 3]>) -> Geometry {
        Geometry::Points(Arc::new(PointCloud::new(points)))
    }

    #[test]
    fn side_by_side_puts_objects_left_to_right_without_overlap() {
        let scene = Scene {
            objects: vec![
                SceneObject::new(0, "a", cloud(vec![[0.0, 0.0, 0.0], [2.0, 1.0, 1.0]])),
                SceneObject::new(1, "b", cloud(vec![[0.0, 0.0, 0.0], [2.0, 1.0, 1.0]])),
            ],
        };
        let off = scene.offsets(Arrangement::SideBySide);
        assert_eq!(off[0], [0.0; 3]);
        assert!(off[1][0] > 2.0, "{off:?}");
        let (lo, hi) = scene.bounds(Arrangement::SideBySide).unwrap();
        assert_eq!(lo, [0.0; 3]);
        assert!(hi[0] > 4.0 && hi[1] == 1.0);
        assert_eq!(scene.bounds(Arrangement::Overlay).unwrap().1, [2.0, 1.0, 1.0]);
    }

    #[test]
    fn clip_plane_equation_keeps_the_normal_side() {
        let e = ClipPlane {
            normal: [0.0, 0.0, 2.0],
            point: [0.0, 0.0, 5.0],
        }
        .equation();
        assert_eq!(e, [0.0, 0.0, 1.0, -5.0]);
    }
}
