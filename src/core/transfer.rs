//! The opacity half of a volume's transfer function: a piecewise-linear curve from the window
//! position t ∈ [0, 1] (0 at the bottom of the window, 1 at the top) to an opacity factor in
//! [0, 1], which scales the opacity per voxel. The default is the ramp a(t) = t.
//!
//! A few control points, sorted by t, the first at t = 0 and the last at t = 1; fixed capacity so
//! render settings stay `Copy`. Stored as a list of `[t, a]` pairs.

use serde::{Deserialize, Serialize};

/// Control points at most.
pub const MAX_POINTS: usize = 8;
/// Entries of the table the renderer samples.
pub const TABLE_SIZE: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<[f32; 2]>", into = "Vec<[f32; 2]>")]
pub struct OpacityCurve {
    points: [[f32; 2]; MAX_POINTS],
    len: usize,
}

impl Default for OpacityCurve {
    fn default() -> Self {
        Self::ramp()
    }
}

impl OpacityCurve {
    /// a(t) = t.
    pub fn ramp() -> Self {
        Self::from_points(&[[0.0, 0.0], [1.0, 1.0]]).expect("a valid ramp")
    }

    /// A curve through `points` (`[t, a]`): at least two, at most [`MAX_POINTS`], finite, t
    /// strictly increasing from exactly 0 to exactly 1, a in [0, 1].
    pub fn from_points(points: &[[f32; 2]]) -> Result<Self, String> {
        if points.len() < 2 || points.len() > MAX_POINTS {
            return Err(format!(
                "an opacity curve has 2 to {MAX_POINTS} points, not {}",
                points.len()
            ));
        }
        if points.iter().flatten().any(|v| !v.is_finite()) {
            return Err("an opacity curve's points must be finite".into());
        }
        if points[0][0] != 0.0 || points[points.len() - 1][0] != 1.0 {
            return Err("an opacity curve starts at t = 0 and ends at t = 1".into());
        }
        if points.windows(2).any(|w| w[1][0] <= w[0][0]) {
            return Err("an opacity curve's t values must increase".into());
        }
        if points.iter().any(|p| !(0.0..=1.0).contains(&p[1])) {
            return Err("an opacity curve's values lie in [0, 1]".into());
        }
        let mut out = [[0.0; 2]; MAX_POINTS];
        out[..points.len()].copy_from_slice(points);
        Ok(Self {
            points: out,
            len: points.len(),
        })
    }

    /// Parses `t:a,t:a,...` (the CLI's form).
    pub fn parse(text: &str) -> Result<Self, String> {
        let points = text
            .split(',')
            .map(|pair| {
                let (t, a) = pair.split_once(':').ok_or_else(|| format!("{pair:?}: expected t:a"))?;
                let num = |s: &str| s.trim().parse::<f32>().map_err(|e| format!("{s:?}: {e}"));
                Ok([num(t)?, num(a)?])
            })
            .collect::<Result<Vec<_>, String>>()?;
        Self::from_points(&points)
    }

    pub fn points(&self) -> &[[f32; 2]] {
        &self.points[..self.len]
    }

    /// The opacity factor at window position `t` (clamped to [0, 1]).
    pub fn eval(&self, t: f32) -> f32 {
        let t = t.clamp(0.0, 1.0);
        let p = self.points();
        let i = p.iter().rposition(|q| q[0] <= t).unwrap_or(0).min(p.len() - 2);
        let ([t0, a0], [t1, a1]) = (p[i], p[i + 1]);
        let u = ((t - t0) / (t1 - t0)).clamp(0.0, 1.0);
        a0 + (a1 - a0) * u
    }

    /// The curve sampled at `i / (TABLE_SIZE − 1)`.
    pub fn table(&self) -> [f32; TABLE_SIZE] {
        std::array::from_fn(|i| self.eval(i as f32 / (TABLE_SIZE - 1) as f32))
    }

    /// Adds the point `[t, a]`; returns its index, or None when the curve is full or `t` is too
    /// close to a neighbour.
    pub fn insert(&mut self, t: f32, a: f32) -> Option<usize> {
        let t = t.clamp(0.0, 1.0);
        if self.len == MAX_POINTS {
            return None;
        }
        let i = self.points().iter().position(|p| p[0] > t)?;
        if i == 0 || t - self.points[i - 1][0] < MIN_GAP || self.points[i][0] - t < MIN_GAP {
            return None;
        }
        self.points.copy_within(i..self.len, i + 1);
        self.points[i] = [t, a.clamp(0.0, 1.0)];
        self.len += 1;
        Some(i)
    }

    /// Removes an inner point (the end points stay); false when `i` is an end point.
    pub fn remove(&mut self, i: usize) -> bool {
        if i == 0 || i + 1 >= self.len {
            return false;
        }
        self.points.copy_within(i + 1..self.len, i);
        self.len -= 1;
        true
    }

    /// Moves point `i` to `[t, a]`: end points only up and down, inner points between their
    /// neighbours (the order never changes).
    pub fn move_point(&mut self, i: usize, t: f32, a: f32) {
        if i >= self.len {
            return;
        }
        let t = if i == 0 {
            0.0
        } else if i + 1 == self.len {
            1.0
        } else {
            t.clamp(self.points[i - 1][0] + MIN_GAP, self.points[i + 1][0] - MIN_GAP)
        };
        self.points[i] = [t, a.clamp(0.0, 1.0)];
    }
}

/// The least distance in t between neighbouring points.
const MIN_GAP: f32 = 1e-3;

impl TryFrom<Vec<[f32; 2]>> for OpacityCurve {
    type Error = String;
    fn try_from(points: Vec<[f32; 2]>) -> Result<Self, String> {
        Self::from_points(&points)
    }
}

impl From<OpacityCurve> for Vec<[f32; 2]> {
    fn from(c: OpacityCurve) -> Self {
        c.points().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_ramp_and_points_interpolate_linearly() {
        let r = OpacityCurve::default();
        for t in [0.0, 0.25, 0.5, 1.0] {
            assert_eq!(r.eval(t), t);
        }
        assert_eq!(r.eval(-1.0), 0.0);
        assert_eq!(r.eval(2.0), 1.0);
        let step = OpacityCurve::parse("0:0, 0.5:0, 0.6:1, 1:1").unwrap();
        assert_eq!(step.eval(0.3), 0.0);
        assert!((step.eval(0.55) - 0.5).abs() < 1e-6);
        assert_eq!(step.eval(0.8), 1.0);
        let table = step.table();
        assert_eq!((table[0], table[TABLE_SIZE - 1]), (0.0, 1.0));
    }

    #[test]
    fn bad_curves_are_refused_with_a_reason() {
        for bad in [
            "0:0",
            "0.1:0,1:1",
            "0:0,1:2",
            "0:0,0.5:1,0.4:1,1:1",
            "0:0,x:1,1:1",
            "0:0,nan:1,1:1",
        ] {
            assert!(OpacityCurve::parse(bad).is_err(), "{bad}");
        }
        let json = serde_json::to_string(&OpacityCurve::ramp()).unwrap();
        assert_eq!(json, "[[0.0,0.0],[1.0,1.0]]");
        assert!(serde_json::from_str::<OpacityCurve>("[[0.0,0.0],[0.5,0.5]]").is_err());
        let too_many = format!(
            "[{}]",
            (0..=MAX_POINTS)
                .map(|i| format!("[{}, 0]", i as f32 / MAX_POINTS as f32))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(serde_json::from_str::<OpacityCurve>(&too_many).is_err());
    }

    #[test]
    fn editing_keeps_the_curve_valid() {
        let mut c = OpacityCurve::ramp();
        assert_eq!(c.insert(0.5, 0.9), Some(1));
        assert_eq!(c.insert(0.5, 0.2), None, "too close to a point");
        c.move_point(1, 5.0, -1.0);
        assert!(c.points()[1][0] < 1.0 && c.points()[1][1] == 0.0, "{:?}", c.points());
        c.move_point(0, 0.7, 0.3);
        assert_eq!(c.points()[0], [0.0, 0.3], "end points move only up and down");
        assert!(!c.remove(0) && !c.remove(2));
        assert!(c.remove(1));
        assert_eq!(c.points().len(), 2);
        while c.len < MAX_POINTS {
            let t = c.points()[0][0] + (c.points()[1][0] - c.points()[0][0]) / 2.0;
            c.insert(t, 0.5).unwrap();
        }
        assert_eq!(c.insert(0.9, 0.5), None, "full");
        assert!(OpacityCurve::from_points(c.points()).is_ok());
    }
}
