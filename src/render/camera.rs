//! An orbit camera: a target point, a distance, and two angles. Z is up (world mm, RAS-like), so
//! meshes from NIfTI volumes and shapes stand upright.

use super::math::{self, Mat4, Vec3};
use serde::{Deserialize, Serialize};

/// Fixed directions a user can jump to (the names say where the eye is).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ViewPreset {
    Front,
    Back,
    Left,
    Right,
    Top,
    Bottom,
    Iso,
}

impl ViewPreset {
    pub const ALL: [ViewPreset; 7] = [
        ViewPreset::Front,
        ViewPreset::Back,
        ViewPreset::Left,
        ViewPreset::Right,
        ViewPreset::Top,
        ViewPreset::Bottom,
        ViewPreset::Iso,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ViewPreset::Front => "front",
            ViewPreset::Back => "back",
            ViewPreset::Left => "left",
            ViewPreset::Right => "right",
            ViewPreset::Top => "top",
            ViewPreset::Bottom => "bottom",
            ViewPreset::Iso => "iso",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name().eq_ignore_ascii_case(s))
    }

    /// (yaw, pitch) in radians. Anatomical (RAS) names: the front view looks at the face from +Y
    /// (anterior), left from −X, top from +Z. Yaw 0 has the eye on −Y.
    fn angles(self) -> (f32, f32) {
        use std::f32::consts::{FRAC_PI_2, FRAC_PI_4, PI};
        let top = FRAC_PI_2 - 1e-3;
        match self {
            ViewPreset::Front => (PI, 0.0),
            ViewPreset::Back => (0.0, 0.0),
            ViewPreset::Left => (-FRAC_PI_2, 0.0),
            ViewPreset::Right => (FRAC_PI_2, 0.0),
            ViewPreset::Top => (0.0, top),
            ViewPreset::Bottom => (0.0, -top),
            ViewPreset::Iso => (FRAC_PI_4, 0.6),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OrbitCamera {
    pub target: Vec3,
    pub distance: f32,
    /// Around the world Z axis, radians.
    pub yaw: f32,
    /// Above the XY plane, radians, kept inside (−π/2, π/2).
    pub pitch: f32,
    /// Vertical field of view, radians.
    pub fov_y: f32,
    /// The radius of the scene it was fitted to: sets the clip planes and the pan/zoom speed.
    pub scene_radius: f32,
}

impl Default for OrbitCamera {
    fn default() -> Self {
        let mut c = Self {
            target: [0.0; 3],
            distance: 3.0,
            yaw: 0.0,
            pitch: 0.0,
            fov_y: 40f32.to_radians(),
            scene_radius: 1.0,
        };
        c.set_preset(ViewPreset::Iso);
        c
    }
}

impl OrbitCamera {
    /// A camera that frames the axis-aligned box `(min, max)` from `preset`.
    pub fn framing(min: Vec3, max: Vec3, preset: ViewPreset) -> Self {
        let mut c = Self::default();
        c.fit(min, max);
        c.set_preset(preset);
        c
    }

    /// Centres the box and backs off until its bounding sphere fills the view.
    pub fn fit(&mut self, min: Vec3, max: Vec3) {
        self.target = math::scale(math::add(min, max), 0.5);
        let radius = (math::length(math::sub(max, min)) * 0.5).max(1e-3);
        self.scene_radius = radius;
        self.distance = radius / (self.fov_y * 0.5).sin() * 1.05;
    }

    pub fn set_preset(&mut self, preset: ViewPreset) {
        (self.yaw, self.pitch) = preset.angles();
    }

    /// Turns by a drag of `(dx, dy)` points (a full viewport width ≈ one turn).
    pub fn orbit(&mut self, dx: f32, dy: f32) {
        const RAD_PER_POINT: f32 = 0.01;
        let limit = std::f32::consts::FRAC_PI_2 - 1e-3;
        self.yaw -= dx * RAD_PER_POINT;
        self.pitch = (self.pitch + dy * RAD_PER_POINT).clamp(-limit, limit);
    }

    /// Moves the target so that the scene follows a drag of `(dx, dy)` points in a viewport
    /// `height` points tall.
    pub fn pan(&mut self, dx: f32, dy: f32, height: f32) {
        let world_per_point = 2.0 * self.distance * (self.fov_y * 0.5).tan() / height.max(1.0);
        let (right, up, _) = self.basis();
        let shift = math::add(
            math::scale(right, -dx * world_per_point),
            math::scale(up, dy * world_per_point),
        );
        self.target = math::add(self.target, shift);
    }

    /// Multiplies the distance by `factor` (< 1 zooms in), within sane bounds of the scene size.
    pub fn zoom(&mut self, factor: f32) {
        let r = self.scene_radius;
        self.distance = (self.distance * factor).clamp(r * 0.05, r * 50.0);
    }

    pub fn eye(&self) -> Vec3 {
        let (_, _, back) = self.basis();
        math::add(self.target, math::scale(back, self.distance))
    }

    /// (right, up, back) unit vectors of the view.
    fn basis(&self) -> (Vec3, Vec3, Vec3) {
        let (sy, cy) = self.yaw.sin_cos();
        let (sp, cp) = self.pitch.sin_cos();
        // The eye sits at −Y for yaw 0 (behind a RAS head, looking toward its face).
        let back = [sy * cp, -cy * cp, sp];
        let right = [cy, sy, 0.0];
        let up = math::cross(back, right);
        (right, math::normalize(up), back)
    }

    pub fn view(&self) -> Mat4 {
        let (_, up, _) = self.basis();
        math::look_at(self.eye(), self.target, up)
    }

    pub fn projection(&self, aspect: f32) -> Mat4 {
        let r = self.scene_radius;
        let near = (self.distance - 4.0 * r).max(self.distance * 0.01).max(1e-4);
        let far = self.distance + 4.0 * r;
        math::perspective(self.fov_y, aspect.max(1e-3), near, far)
    }

    pub fn view_projection(&self, aspect: f32) -> Mat4 {
        math::mul(&self.projection(aspect), &self.view())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_the_whole_box_inside_the_view() {
        let (min, max) = ([-10.0, 0.0, 5.0], [30.0, 20.0, 45.0]);
        for preset in ViewPreset::ALL {
            let c = OrbitCamera::framing(min, max, preset);
            let vp = c.view_projection(1.0);
            for i in 0..8 {
                let corner = [
                    if i & 1 == 0 { min[0] } else { max[0] },
                    if i & 2 == 0 { min[1] } else { max[1] },
                    if i & 4 == 0 { min[2] } else { max[2] },
                ];
                let p = transform_point(&vp, corner);
                assert!(p[0].abs() <= 1.0 && p[1].abs() <= 1.0, "{preset:?} {corner:?} → {p:?}");
                assert!((0.0..=1.0).contains(&p[2]), "{preset:?} depth {p:?}");
            }
        }
    }

    #[test]
    fn presets_follow_anatomical_names() {
        let front = OrbitCamera::framing([-1.0; 3], [1.0; 3], ViewPreset::Front);
        assert!(front.eye()[1] > 1.0 && front.eye()[0].abs() < 1e-4);
        let top = OrbitCamera::framing([-1.0; 3], [1.0; 3], ViewPreset::Top);
        assert!(top.eye()[2] > 1.0);
        let left = OrbitCamera::framing([-1.0; 3], [1.0; 3], ViewPreset::Left);
        assert!(left.eye()[0] < -1.0);
        // Facing the subject, its right (+X in RAS) is on the viewer's left; superior is up.
        let vp = front.view_projection(1.0);
        assert!(transform_point(&vp, [1.0, 0.0, 0.0])[0] < 0.0);
        assert!(transform_point(&vp, [0.0, 0.0, 1.0])[1] > 0.0);
    }

    #[test]
    fn pan_moves_the_target_in_the_view_plane_and_zoom_is_bounded() {
        let mut c = OrbitCamera::framing([-1.0; 3], [1.0; 3], ViewPreset::Front);
        let before = c.target;
        c.pan(100.0, 0.0, 500.0);
        // Dragging right moves the scene right, so the target moves to the view's left (+X in
        // the front view).
        assert!(c.target[0] > before[0] && (c.target[1] - before[1]).abs() < 1e-5);
        for _ in 0..100 {
            c.zoom(0.5);
        }
        assert!(c.distance >= c.scene_radius * 0.05 - 1e-6);
    }

    #[test]
    fn orbit_clamps_the_pitch() {
        let mut c = OrbitCamera::default();
        c.orbit(0.0, 1e6);
        assert!(c.pitch < std::f32::consts::FRAC_PI_2);
        assert_eq!(ViewPreset::from_name("TOP"), Some(ViewPreset::Top));
    }

    use super::math::transform_point;
}
