//! The view-space camera: fixed intrinsics (one vertical field of view) and an eye on a sphere
//! around a pivot at the origin. P0, the view every latent is explained from, is yaw 0, pitch 0:
//! the eye on `+z` looking at the pivot along `−z`, `y` up, `x` to the right. Novel views are
//! yaw (about `y`, positive moves the eye towards `+x`) and pitch (positive moves it up) within a
//! bounded range ([`VIEW_RANGE`]): view space has no back side, so there are no full orbits.
//!
//! Rays are unit-length, so a depth along a ray is a distance from the eye.

use serde::{Deserialize, Serialize};

/// The bounded range of novel views, as data (the paper samples novel views within tens of
/// degrees of P0; the exact appendix numbers are not reproduced here).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewRange {
    pub yaw_deg: f32,
    pub pitch_deg: f32,
    pub radius_min: f32,
    pub radius_max: f32,
}

/// ±35° yaw, ±20° pitch, radius 2.2–4.5 (scene units; the objects fit in `[−1, 1]³`).
pub const VIEW_RANGE: ViewRange = ViewRange {
    yaw_deg: 35.0,
    pitch_deg: 20.0,
    radius_min: 2.2,
    radius_max: 4.5,
};

/// Eye on a sphere around the origin.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ViewCamera {
    pub yaw_deg: f32,
    pub pitch_deg: f32,
    pub radius: f32,
    /// Vertical field of view; fixed across views (the paper's fixed intrinsics).
    pub fov_deg: f32,
}

/// The canonical view P0.
pub const P0: ViewCamera = ViewCamera {
    yaw_deg: 0.0,
    pitch_deg: 0.0,
    radius: 3.0,
    fov_deg: 30.0,
};

impl Default for ViewCamera {
    fn default() -> Self {
        P0
    }
}

pub(crate) type Vec3 = [f32; 3];

pub(crate) fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}
fn unit(a: Vec3) -> Vec3 {
    let n = (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt();
    if n > 0.0 { [a[0] / n, a[1] / n, a[2] / n] } else { a }
}

impl ViewCamera {
    /// The same camera with yaw, pitch and radius clamped into `range`.
    pub fn clamped(self, range: &ViewRange) -> Self {
        Self {
            yaw_deg: self.yaw_deg.clamp(-range.yaw_deg, range.yaw_deg),
            pitch_deg: self.pitch_deg.clamp(-range.pitch_deg, range.pitch_deg),
            radius: self.radius.clamp(range.radius_min, range.radius_max),
            fov_deg: self.fov_deg,
        }
    }

    /// Whether yaw, pitch and radius lie within `range`.
    pub fn within(&self, range: &ViewRange) -> bool {
        *self == self.clamped(range)
    }

    /// The eye position in world space.
    pub fn eye(&self) -> Vec3 {
        let (yaw, pitch) = (self.yaw_deg.to_radians(), self.pitch_deg.to_radians());
        [
            self.radius * yaw.sin() * pitch.cos(),
            self.radius * pitch.sin(),
            self.radius * yaw.cos() * pitch.cos(),
        ]
    }

    /// Right, up and forward unit vectors (a right-handed camera looking at the origin).
    pub fn basis(&self) -> (Vec3, Vec3, Vec3) {
        let forward = unit(sub([0.0; 3], self.eye()));
        let right = unit(cross(forward, [0.0, 1.0, 0.0]));
        let up = cross(right, forward);
        (right, up, forward)
    }

    /// Origin and unit direction of the ray through the centre of pixel `(column, row)` of a
    /// `width × height` image (row 0 at the top).
    pub fn ray(&self, column: usize, row: usize, width: usize, height: usize) -> (Vec3, Vec3) {
        let (right, up, forward) = self.basis();
        let half = (self.fov_deg.to_radians() * 0.5).tan();
        let aspect = width as f32 / height as f32;
        let sx = ((column as f32 + 0.5) / width as f32 * 2.0 - 1.0) * half * aspect;
        let sy = (1.0 - (row as f32 + 0.5) / height as f32 * 2.0) * half;
        let d = unit([
            forward[0] + sx * right[0] + sy * up[0],
            forward[1] + sx * right[1] + sy * up[1],
            forward[2] + sx * right[2] + sy * up[2],
        ]);
        (self.eye(), d)
    }

    /// `n` views evenly across the allowed yaw range at this pitch and radius (a turntable
    /// within view space; one view is P0's yaw).
    pub fn turntable(&self, n: usize, range: &ViewRange) -> Vec<ViewCamera> {
        (0..n)
            .map(|k| {
                let t = if n > 1 { k as f32 / (n - 1) as f32 } else { 0.5 };
                ViewCamera {
                    yaw_deg: -range.yaw_deg + 2.0 * range.yaw_deg * t,
                    ..*self
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p0_looks_down_minus_z_and_centre_ray_hits_pivot() {
        let (o, d) = P0.ray(50, 50, 101, 101);
        assert_eq!(o, [0.0, 0.0, 3.0]);
        assert!((d[2] + 1.0).abs() < 1e-6 && d[0].abs() < 1e-6 && d[1].abs() < 1e-6);
        let cam = ViewCamera { yaw_deg: 30.0, ..P0 };
        assert!(cam.eye()[0] > 0.0);
        let top = P0.ray(50, 0, 101, 101).1;
        assert!(top[1] > 0.0, "row 0 looks up");
        assert!(!ViewCamera { yaw_deg: 90.0, ..P0 }.within(&VIEW_RANGE));
    }
}
