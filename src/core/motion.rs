//! `MotionSequence`: a shape over time (4D), and `Playback`, the timeline that plays it.
//!
//! A sequence is a list of frames of 3D points. With `triangles` it is a mesh sequence of constant
//! topology (Motion2VecSets' output: frame-1 faces, vertices moved per frame); without, a
//! point-cloud sequence. When every frame has the same number of points, point `i` of each frame is
//! the same material point (the sparse inputs of Motion2VecSets, registrations), so per-point
//! displacement and motion trails are defined; partial scans have no such correspondence and
//! varying counts, and the sequence says so through [`MotionSequence::corresponding`].

use super::{Mesh, PointCloud};
use serde::{Deserialize, Serialize};

/// Largest number of frames a sequence may hold (a 4-minute clip at 30 fps).
pub const MAX_FRAMES: usize = 7200;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MotionSequence {
    /// Frame `t`'s points (mesh vertices when `triangles` is not empty).
    pub frames: Vec<Vec<[f32; 3]>>,
    /// Faces shared by every frame; empty for a point-cloud sequence.
    pub triangles: Vec<[u32; 3]>,
    /// Playback rate the sequence was made for (frames per second).
    pub fps: f32,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MotionError {
    #[error("a motion sequence needs at least one frame")]
    Empty,
    #[error("{0} frames is more than the {MAX_FRAMES} a sequence may hold")]
    TooManyFrames(usize),
    #[error("frame {frame} has {got} vertices but the faces need the {expected} of frame 0")]
    VertexCount { frame: usize, got: usize, expected: usize },
    #[error("face {face} refers to vertex {index}, but frames have {count} vertices")]
    FaceIndex { face: usize, index: u32, count: usize },
    #[error("frame {frame}, point {point} is not finite")]
    NotFinite { frame: usize, point: usize },
    #[error("frame rate {0} is not a positive number")]
    Fps(f32),
}

impl MotionSequence {
    /// A point-cloud sequence at `fps`.
    pub fn points(frames: Vec<Vec<[f32; 3]>>, fps: f32) -> Self {
        Self {
            frames,
            triangles: Vec::new(),
            fps,
        }
    }

    /// Checks what the viewer, the exporters and the metrics index by.
    pub fn validate(&self) -> Result<(), MotionError> {
        if self.frames.is_empty() {
            return Err(MotionError::Empty);
        }
        if self.frames.len() > MAX_FRAMES {
            return Err(MotionError::TooManyFrames(self.frames.len()));
        }
        if !(self.fps.is_finite() && self.fps > 0.0) {
            return Err(MotionError::Fps(self.fps));
        }
        let n = self.frames[0].len();
        if self.is_mesh() {
            for (frame, f) in self.frames.iter().enumerate() {
                if f.len() != n {
                    return Err(MotionError::VertexCount {
                        frame,
                        got: f.len(),
                        expected: n,
                    });
                }
            }
            for (face, tri) in self.triangles.iter().enumerate() {
                if let Some(&index) = tri.iter().find(|&&i| i as usize >= n) {
                    return Err(MotionError::FaceIndex { face, index, count: n });
                }
            }
        }
        for (frame, f) in self.frames.iter().enumerate() {
            if let Some(point) = f.iter().position(|p| !p.iter().all(|c| c.is_finite())) {
                return Err(MotionError::NotFinite { frame, point });
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn is_mesh(&self) -> bool {
        !self.triangles.is_empty()
    }

    /// Points per frame when every frame has the same count, which is when point `i` is taken to be
    /// the same material point in every frame.
    pub fn corresponding(&self) -> Option<usize> {
        let n = self.frames.first()?.len();
        self.frames.iter().all(|f| f.len() == n).then_some(n)
    }

    /// Duration in seconds from the first frame to the end of the last.
    pub fn duration(&self) -> f32 {
        self.frames.len() as f32 / self.fps
    }

    /// The box around every frame; `None` when there are no points.
    pub fn bounds(&self) -> Option<([f32; 3], [f32; 3])> {
        self.frames
            .iter()
            .filter_map(|f| super::mesh::bounds(f))
            .reduce(|(a_lo, a_hi), (b_lo, b_hi)| {
                (
                    [a_lo[0].min(b_lo[0]), a_lo[1].min(b_lo[1]), a_lo[2].min(b_lo[2])],
                    [a_hi[0].max(b_hi[0]), a_hi[1].max(b_hi[1]), a_hi[2].max(b_hi[2])],
                )
            })
    }

    /// The points at fractional frame `time`: linear between neighbouring frames when points
    /// correspond, else the nearest earlier frame. `time` is clamped to the sequence.
    pub fn points_at(&self, time: f32) -> Vec<[f32; 3]> {
        let (a, b, w) = self.bracket(time);
        if w == 0.0 || self.corresponding().is_none() {
            return self.frames[a].clone();
        }
        self.frames[a]
            .iter()
            .zip(&self.frames[b])
            .map(|(p, q)| {
                [
                    p[0] + w * (q[0] - p[0]),
                    p[1] + w * (q[1] - p[1]),
                    p[2] + w * (q[2] - p[2]),
                ]
            })
            .collect()
    }

    /// Frames around `time` and the weight of the later one.
    fn bracket(&self, time: f32) -> (usize, usize, f32) {
        let last = self.frames.len().saturating_sub(1);
        let t = if time.is_finite() {
            time.clamp(0.0, last as f32)
        } else {
            0.0
        };
        let a = (t.floor() as usize).min(last);
        let b = (a + 1).min(last);
        (a, b, if a == b { 0.0 } else { t - a as f32 })
    }

    /// Distance of each point at `time` from where it is in frame 0 (empty without
    /// correspondence).
    pub fn displacement_at(&self, time: f32) -> Vec<f32> {
        if self.corresponding().is_none() {
            return Vec::new();
        }
        displacement(&self.frames[0], &self.points_at(time))
    }

    /// The largest displacement from frame 0 over the whole sequence (the colour scale's top).
    pub fn max_displacement(&self) -> f32 {
        if self.corresponding().is_none() {
            return 0.0;
        }
        self.frames
            .iter()
            .flat_map(|f| displacement(&self.frames[0], f))
            .fold(0.0, f32::max)
    }

    /// The frame as a mesh with smooth normals (`None` for a point sequence).
    pub fn mesh_at(&self, time: f32) -> Option<Mesh> {
        if !self.is_mesh() {
            return None;
        }
        let mut mesh = Mesh {
            positions: self.points_at(time),
            triangles: self.triangles.clone(),
            ..Default::default()
        };
        mesh.compute_normals();
        Some(mesh)
    }

    /// The frame as a point cloud (mesh sequences give their vertices).
    pub fn cloud_at(&self, time: f32) -> PointCloud {
        PointCloud::new(self.points_at(time))
    }

    /// Motion trails: for `count` evenly chosen points, their positions over the `length` frames
    /// up to `time` (sub-sampled `per_frame` times per frame), each with its age in frames (0 at
    /// the head). Empty without correspondence.
    pub fn trails(&self, time: f32, count: usize, length: usize, per_frame: usize) -> (Vec<[f32; 3]>, Vec<f32>) {
        let Some(n) = self.corresponding() else {
            return (Vec::new(), Vec::new());
        };
        if n == 0 || count == 0 {
            return (Vec::new(), Vec::new());
        }
        let stride = (n / count.min(n)).max(1);
        let chosen: Vec<usize> = (0..n).step_by(stride).take(count).collect();
        let steps = length * per_frame.max(1);
        let (mut points, mut ages) = (Vec::new(), Vec::new());
        for s in 0..=steps {
            let age = s as f32 / per_frame.max(1) as f32;
            let t = time - age;
            if t < 0.0 {
                break;
            }
            let (a, b, w) = self.bracket(t);
            for &i in &chosen {
                let (p, q) = (self.frames[a][i], self.frames[b][i]);
                points.push([
                    p[0] + w * (q[0] - p[0]),
                    p[1] + w * (q[1] - p[1]),
                    p[2] + w * (q[2] - p[2]),
                ]);
                ages.push(age);
            }
        }
        (points, ages)
    }
}

fn displacement(from: &[[f32; 3]], to: &[[f32; 3]]) -> Vec<f32> {
    from.iter()
        .zip(to)
        .map(|(p, q)| ((q[0] - p[0]).powi(2) + (q[1] - p[1]).powi(2) + (q[2] - p[2]).powi(2)).sqrt())
        .collect()
}

/// The timeline: where playback is (a fractional frame), whether it runs, how fast, and whether
/// it wraps at the end.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Playback {
    /// Current position in frames (fractional between frames).
    pub time: f32,
    pub playing: bool,
    /// Multiplier of the sequence's own frame rate.
    pub speed: f32,
    pub looping: bool,
}

impl Default for Playback {
    fn default() -> Self {
        Self {
            time: 0.0,
            playing: false,
            speed: 1.0,
            looping: true,
        }
    }
}

impl Playback {
    /// Advances by `dt` seconds of a sequence of `frames` frames at `fps`. At the end it wraps
    /// (looping) or stops on the last frame.
    pub fn advance(&mut self, dt: f32, fps: f32, frames: usize) {
        let last = frames.saturating_sub(1) as f32;
        if !self.playing || frames < 2 || !(dt.is_finite() && fps.is_finite()) {
            self.time = self.time.clamp(0.0, last);
            return;
        }
        self.time += dt * fps * self.speed;
        if self.looping && self.time >= frames as f32 {
            // The loop goes last → first as one frame step, so the period is `frames` steps (the
            // time between the last frame and the wrap shows the last frame).
            self.time = self.time.rem_euclid(frames as f32);
        } else if !self.looping && self.time >= last {
            self.time = last;
            self.playing = false;
        } else if self.time < 0.0 {
            self.time = 0.0;
        }
    }

    /// Moves to a whole frame, `delta` frames from the current one (wrapping when looping).
    pub fn step(&mut self, delta: i64, frames: usize) {
        if frames == 0 {
            return;
        }
        let n = frames as i64;
        let current = self.time.round() as i64;
        let next = if self.looping {
            (current + delta).rem_euclid(n)
        } else {
            (current + delta).clamp(0, n - 1)
        };
        self.time = next as f32;
        self.playing = false;
    }

    /// The whole frame shown (nearest to the time).
    pub fn frame(&self) -> usize {
        self.time.max(0.0).round() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moving_triangle() -> MotionSequence {
        let base = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        let frames = (0..4)
            .map(|t| base.iter().map(|p| [p[0] + t as f32, p[1], p[2]]).collect())
            .collect();
        MotionSequence {
            frames,
            triangles: vec![[0, 1, 2]],
            fps: 10.0,
        }
    }

    #[test]
    fn validation_names_the_problem() {
        assert!(moving_triangle().validate().is_ok());
        let mut s = moving_triangle();
        s.frames[2].pop();
        assert_eq!(
            s.validate(),
            Err(MotionError::VertexCount {
                frame: 2,
                got: 2,
                expected: 3
            })
        );
        let mut s = moving_triangle();
        s.triangles[0][2] = 7;
        assert!(matches!(s.validate(), Err(MotionError::FaceIndex { index: 7, .. })));
        let mut s = moving_triangle();
        s.frames[1][0][1] = f32::NAN;
        assert_eq!(s.validate(), Err(MotionError::NotFinite { frame: 1, point: 0 }));
        let mut s = moving_triangle();
        s.fps = 0.0;
        assert_eq!(s.validate(), Err(MotionError::Fps(0.0)));
        assert_eq!(MotionSequence::default().validate(), Err(MotionError::Empty));
        // A point sequence may change its count (partial scans).
        let s = MotionSequence::points(vec![vec![[0.0; 3]; 2], vec![[0.0; 3]; 5]], 1.0);
        assert!(s.validate().is_ok());
        assert_eq!(s.corresponding(), None);
        assert!(s.displacement_at(1.0).is_empty());
    }

    #[test]
    fn frames_interpolate_and_displace() {
        let s = moving_triangle();
        assert_eq!(s.points_at(1.5)[0], [1.5, 0.0, 0.0]);
        assert_eq!(s.points_at(99.0)[0], [3.0, 0.0, 0.0]);
        assert_eq!(s.points_at(-1.0)[0], [0.0, 0.0, 0.0]);
        assert_eq!(s.displacement_at(2.0), vec![2.0; 3]);
        assert_eq!(s.max_displacement(), 3.0);
        assert_eq!(s.bounds(), Some(([0.0, 0.0, 0.0], [4.0, 1.0, 0.0])));
        let m = s.mesh_at(1.0).unwrap();
        assert_eq!(m.positions[1], [2.0, 0.0, 0.0]);
        assert_eq!(m.normals.len(), 3);
    }

    #[test]
    fn trails_follow_points_back_in_time() {
        let s = moving_triangle();
        let (points, ages) = s.trails(2.0, 1, 2, 2);
        // One tracked point, steps at ages 0, 0.5, 1, 1.5, 2.
        assert_eq!(ages, vec![0.0, 0.5, 1.0, 1.5, 2.0]);
        let xs: Vec<f32> = points.iter().map(|p| p[0]).collect();
        assert_eq!(xs, vec![2.0, 1.5, 1.0, 0.5, 0.0]);
        // The trail stops at the first frame.
        assert_eq!(s.trails(0.5, 3, 4, 1).1, vec![0.0, 0.0, 0.0]);
    }

    #[test]
    fn playback_loops_or_stops() {
        let mut p = Playback {
            playing: true,
            ..Default::default()
        };
        p.advance(0.25, 10.0, 4); // 2.5 frames
        assert!((p.time - 2.5).abs() < 1e-6);
        p.advance(0.1, 10.0, 4); // 3.5: between the last frame and the wrap
        assert!((p.time - 3.5).abs() < 1e-6);
        p.advance(0.1, 10.0, 4); // 4.5 → wraps to 0.5
        assert!((p.time - 0.5).abs() < 1e-5, "{}", p.time);
        let mut p = Playback {
            playing: true,
            looping: false,
            speed: 2.0,
            ..Default::default()
        };
        p.advance(1.0, 10.0, 4);
        assert_eq!((p.time, p.playing), (3.0, false));
        p.step(1, 4);
        assert_eq!(p.frame(), 3);
        p.looping = true;
        p.step(1, 4);
        assert_eq!(p.frame(), 0);
        p.step(-1, 4);
        assert_eq!(p.frame(), 3);
    }
}
