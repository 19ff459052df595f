//! Learning-rate schedules, as a pure function of the step (so a resumed run gets the same rates).

use std::f64::consts::PI;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LrSchedule {
    Constant(f64),
    /// Linear warm-up over `warmup` steps (step 0 gets `peak / warmup`, step `warmup − 1` gets
    /// `peak`), then half a cosine from `peak` down to `floor` at step `total`.
    WarmupCosine {
        peak: f64,
        floor: f64,
        warmup: usize,
        total: usize,
    },
}

impl LrSchedule {
    /// The demo trainers' schedule: warm-up over the first 1/20 of `total` steps (at least one),
    /// then a cosine from `peak` down to 5 % of it.
    pub fn warmup_cosine(peak: f64, total: usize) -> Self {
        LrSchedule::WarmupCosine {
            peak,
            floor: peak * 0.05,
            warmup: (total / 20).max(1),
            total,
        }
    }

    /// The learning rate for zero-based `step`.
    pub fn at(&self, step: usize) -> f64 {
        match *self {
            LrSchedule::Constant(lr) => lr,
            LrSchedule::WarmupCosine {
                peak,
                floor,
                warmup,
                total,
            } => {
                if step < warmup {
                    return peak * (step + 1) as f64 / warmup as f64;
                }
                let span = total.saturating_sub(warmup).max(1) as f64;
                let progress = ((step - warmup) as f64 / span).min(1.0);
                floor + (peak - floor) * 0.5 * (1.0 + (PI * progress).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_values() {
        assert_eq!(LrSchedule::Constant(0.01).at(123), 0.01);
        let s = LrSchedule::WarmupCosine {
            peak: 1.0,
            floor: 0.1,
            warmup: 4,
            total: 14,
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(s.at(0), 0.25));
        assert!(close(s.at(1), 0.5));
        assert!(close(s.at(3), 1.0));
        assert!(close(s.at(4), 1.0)); // cosine starts at the peak
        assert!(close(s.at(9), 0.55)); // half-way: (peak + floor) / 2
        assert!(close(s.at(14), 0.1));
        assert!(close(s.at(1000), 0.1)); // stays at the floor past the end
        let mid = s.at(6);
        assert!(close(mid, 0.1 + 0.9 * 0.5 * (1.0 + (PI * 0.2).cos())));
    }
}
