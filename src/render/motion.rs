//! Scenes of motion sequences at a point in time: each sequence's frame (interpolated between
//! frames), optionally coloured by each point's displacement from frame 1, with motion trails,
//! several sequences laid out side by side from their whole-sequence boxes (so that nothing
//! shifts while playing). The Motion tab, `render-motion` and the tests build their scenes here.

use super::camera::OrbitCamera;
use super::math::Vec3;
use super::offscreen::Offscreen;
use super::scene::{Coloring, Geometry, RenderSettings, Scene, SceneObject};
use super::scene_renderer::RenderError;
use crate::core::PointCloud;
use crate::core::colormap::Colormap;
use crate::core::motion::MotionSequence;
use std::sync::Arc;

/// An axis-aligned box `(min, max)`.
pub type Bounds = (Vec3, Vec3);

/// Scene ids of the trails: the sequence's id plus this.
pub const TRAIL_ID_BASE: u64 = 1 << 40;
/// Trail samples per frame of history.
const TRAIL_SAMPLES_PER_FRAME: usize = 3;

/// A sequence to show, with what is computed once per sequence.
#[derive(Clone, Debug)]
pub struct ShownSequence {
    pub id: u64,
    pub name: String,
    pub sequence: Arc<MotionSequence>,
    /// Largest displacement from frame 1 over the sequence (the colour scale's top).
    pub max_displacement: f32,
    /// The box around every frame.
    pub bounds: Option<Bounds>,
}

impl ShownSequence {
    pub fn new(id: u64, name: impl Into<String>, sequence: Arc<MotionSequence>) -> Self {
        Self {
            id,
            name: name.into(),
            max_displacement: sequence.max_displacement(),
            bounds: sequence.bounds(),
            sequence,
        }
    }
}

/// How the sequences are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MotionStyle {
    /// Colour by displacement through this colormap, the scale's top at this fraction of the
    /// largest displacement.
    pub displacement: Option<(Colormap, f32)>,
    /// Trails of `(frames of history, points)`.
    pub trails: Option<(usize, usize)>,
    pub side_by_side: bool,
}

/// Per sequence, the translation that lays them out left to right by their whole-sequence boxes
/// (zero when overlaid), and the box around everything over all frames.
pub fn layout(shown: &[ShownSequence], side_by_side: bool) -> (Vec<Vec3>, Option<Bounds>) {
    let widest = shown
        .iter()
        .filter_map(|s| s.bounds)
        .map(|(lo, hi)| hi[0] - lo[0])
        .fold(0.0f32, f32::max);
    let mut cursor = 0.0f32;
    let mut offsets = Vec::with_capacity(shown.len());
    let mut total: Option<Bounds> = None;
    for s in shown {
        let off = match (s.bounds, side_by_side) {
            (Some((lo, hi)), true) => {
                let shift = cursor - lo[0];
                cursor += hi[0] - lo[0] + 0.15 * widest;
                [shift, 0.0, 0.0]
            }
            _ => [0.0; 3],
        };
        if let Some((lo, hi)) = s.bounds {
            let (lo, hi) = ([lo[0] + off[0], lo[1], lo[2]], [hi[0] + off[0], hi[1], hi[2]]);
            total = Some(match total {
                None => (lo, hi),
                Some((a, b)) => (
                    [a[0].min(lo[0]), a[1].min(lo[1]), a[2].min(lo[2])],
                    [b[0].max(hi[0]), b[1].max(hi[1]), b[2].max(hi[2])],
                ),
            });
        }
        offsets.push(off);
    }
    (offsets, total)
}

fn translate(points: &mut [[f32; 3]], off: Vec3) {
    if off != [0.0; 3] {
        for p in points {
            for k in 0..3 {
                p[k] += off[k];
            }
        }
    }
}

/// The scene at fractional frame `time`.
pub fn scene_at(shown: &[ShownSequence], time: f32, style: &MotionStyle) -> Scene {
    let (offsets, _) = layout(shown, style.side_by_side);
    let mut scene = Scene::default();
    for (s, off) in shown.iter().zip(offsets) {
        let seq = &s.sequence;
        let scalars = if style.displacement.is_some() {
            seq.displacement_at(time)
        } else {
            Vec::new()
        };
        let geometry = match seq.mesh_at(time) {
            Some(mut mesh) => {
                translate(&mut mesh.positions, off);
                mesh.scalars = scalars;
                Geometry::Mesh(Arc::new(mesh))
            }
            None => {
                let mut cloud = seq.cloud_at(time);
                translate(&mut cloud.points, off);
                cloud.scalars = scalars;
                Geometry::Points(Arc::new(cloud))
            }
        };
        let mut object = SceneObject::new(s.id, s.name.clone(), geometry);
        if let Some((colormap, range)) = style.displacement
            && s.max_displacement > 0.0
        {
            object.coloring = Coloring::Scalar {
                colormap,
                lo: 0.0,
                hi: (range * s.max_displacement).max(1e-6),
            };
        }
        scene.objects.push(object);
        if let Some((length, count)) = style.trails {
            let (mut points, ages) = seq.trails(time, count, length, TRAIL_SAMPLES_PER_FRAME);
            if !points.is_empty() {
                translate(&mut points, off);
                // Coloured by freshness: bright at the head, fading to dark `length` frames back.
                let freshness = ages.iter().map(|a| length as f32 - a).collect();
                let cloud = PointCloud {
                    points,
                    scalars: freshness,
                    ..Default::default()
                };
                let mut trail = SceneObject::new(
                    s.id + TRAIL_ID_BASE,
                    format!("{} trails", s.name),
                    Geometry::Points(Arc::new(cloud)),
                );
                trail.coloring = Coloring::Scalar {
                    colormap: Colormap::Magma,
                    lo: 0.0,
                    hi: length as f32,
                };
                scene.objects.push(trail);
            }
        }
    }
    scene
}

/// What each image of an animation export shows: the time (fractional frame) and the camera.
pub type View = (f32, OrbitCamera);

/// One view per frame of the longest sequence, from `camera`.
pub fn playback_views(shown: &[ShownSequence], camera: OrbitCamera) -> Vec<View> {
    let frames = shown.iter().map(|s| s.sequence.len()).max().unwrap_or(0);
    (0..frames).map(|t| (t as f32, camera)).collect()
}

/// `count` views turning once around the scene (about the vertical axis) at frame `time`,
/// starting from `camera`.
pub fn turntable_views(time: f32, camera: OrbitCamera, count: usize) -> Vec<View> {
    (0..count)
        .map(|k| {
            let mut c = camera;
            c.yaw += std::f32::consts::TAU * k as f32 / count.max(1) as f32;
            (time, c)
        })
        .collect()
}

/// Renders each view offscreen, handing every image to `each` as it is made (so a long
/// animation is written without holding it in memory; `each` may stop the run with an error).
pub fn render_views<E: From<RenderError>>(
    shown: &[ShownSequence],
    style: &MotionStyle,
    settings: &RenderSettings,
    size: [u32; 2],
    views: &[View],
    mut each: impl FnMut(usize, crate::core::Image) -> Result<(), E>,
) -> Result<(), E> {
    let mut offscreen = Offscreen::new()?;
    for (k, (time, camera)) in views.iter().enumerate() {
        let scene = scene_at(shown, *time, style);
        let image = offscreen.render(&scene, camera, settings, size)?;
        each(k, image)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(x: f32) -> Arc<MotionSequence> {
        Arc::new(MotionSequence::points(
            vec![
                vec![[x, 0.0, 0.0], [x + 1.0, 0.0, 0.0]],
                vec![[x, 0.0, 1.0], [x + 1.0, 0.0, 2.0]],
            ],
            10.0,
        ))
    }

    #[test]
    fn side_by_side_layout_uses_whole_sequence_boxes() {
        let shown = vec![
            ShownSequence::new(1, "a", line(0.0)),
            ShownSequence::new(2, "b", line(0.0)),
        ];
        let (off, total) = layout(&shown, true);
        assert_eq!(off[0], [0.0; 3]);
        assert!((off[1][0] - 1.15).abs() < 1e-6, "{off:?}");
        assert_eq!(total.unwrap().1, [2.15, 0.0, 2.0]);
        let (off, _) = layout(&shown, false);
        assert_eq!(off, vec![[0.0; 3]; 2]);
    }

    #[test]
    fn scenes_colour_by_displacement_and_add_trails() {
        let shown = vec![ShownSequence::new(1, "a", line(0.0))];
        let style = MotionStyle {
            displacement: Some((Colormap::Viridis, 1.0)),
            trails: Some((1, 2)),
            side_by_side: false,
        };
        let scene = scene_at(&shown, 0.5, &style);
        assert_eq!(scene.objects.len(), 2);
        assert_eq!(scene.objects[0].geometry.scalars(), &[0.5, 1.0]);
        assert!(matches!(scene.objects[0].coloring, Coloring::Scalar { hi: 2.0, .. }));
        assert_eq!(scene.objects[1].id, 1 + TRAIL_ID_BASE);
        let plain = MotionStyle {
            displacement: None,
            trails: None,
            side_by_side: false,
        };
        let scene = scene_at(&shown, 1.0, &plain);
        assert_eq!(scene.objects.len(), 1);
        assert!(matches!(scene.objects[0].coloring, Coloring::Solid(_)));
    }
}
