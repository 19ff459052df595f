//! The latent triplane: three axis-aligned feature planes, sampled by projecting a 3D point onto
//! each plane, reading it bilinearly and aggregating the three feature vectors (EG3D's
//! `sample_from_planes` and the `mean(1)` at the top of its `OSGDecoder`).
//!
//! Layout `(3, C, R, R)`, planes in the order **xy, xz, yz**. A plane is an image of `C` channels,
//! `R` rows and `R` columns; for plane `(a, b)` the first coordinate `a` runs along the columns
//! (grid_sample's `x`) and `b` along the rows (its `y`). World points are normalised by
//! `2 / box_size`, so the planes cover the cube `[−box_size/2, box_size/2]³`.
//!
//! Sampling is PyTorch's `grid_sample(mode="bilinear", padding_mode="zeros",
//! align_corners=False)`: normalised `u ∈ [−1, 1]` sits at pixel coordinate `((u + 1)·R − 1)/2`,
//! so `±1` are the outer *edges* of the edge pixels, and corners outside the plane read zero.

use candle_core::{Device, Tensor};

use super::WildFusionError;

/// How the three planes' features combine into one vector per point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Aggregation {
    /// The average of the three (EG3D's `OSGDecoder`: `sampled_features.mean(1)`); the default.
    #[default]
    Mean,
    /// The sum of the three (as some triplane papers describe it).
    Sum,
}

/// A triplane latent: features `(3, C, R, R)` on the CPU or an accelerator.
#[derive(Clone, Debug)]
pub struct Triplane {
    planes: Tensor,
    box_size: f32,
}

impl Triplane {
    /// Wraps `(3, C, R, R)` features covering the cube of side `box_size` (EG3D's `box_warp`).
    pub fn new(planes: Tensor, box_size: f32) -> Result<Self, WildFusionError> {
        match planes.dims() {
            &[3, c, h, w] if c > 0 && h > 0 && h == w => {}
            d => {
                return Err(WildFusionError::Shape(format!(
                    "a triplane must be (3, C, R, R), got {d:?}"
                )));
            }
        }
        if !(box_size.is_finite() && box_size > 0.0) {
            return Err(WildFusionError::Shape(format!(
                "box size must be positive, got {box_size}"
            )));
        }
        Ok(Self {
            planes: planes.to_dtype(candle_core::DType::F32)?,
            box_size,
        })
    }

    /// Builds a triplane from plain values laid out `(3, C, R, R)`, row-major.
    pub fn from_vec(
        values: Vec<f32>,
        channels: usize,
        resolution: usize,
        box_size: f32,
    ) -> Result<Self, WildFusionError> {
        let t = Tensor::from_vec(values, (3, channels, resolution, resolution), &Device::Cpu)?;
        Self::new(t, box_size)
    }

    pub fn planes(&self) -> &Tensor {
        &self.planes
    }
    pub fn channels(&self) -> usize {
        self.planes.dims()[1]
    }
    pub fn resolution(&self) -> usize {
        self.planes.dims()[2]
    }
    /// Side of the cube the planes cover, centred on the origin.
    pub fn box_size(&self) -> f32 {
        self.box_size
    }

    /// `(1 − t)·self + t·other` (exact at both ends).
    pub fn lerp(&self, other: &Triplane, t: f32) -> Result<Triplane, WildFusionError> {
        if self.planes.dims() != other.planes.dims() {
            return Err(WildFusionError::Shape(format!(
                "cannot blend triplanes of shapes {:?} and {:?}",
                self.planes.dims(),
                other.planes.dims()
            )));
        }
        if (self.box_size - other.box_size).abs() > f32::EPSILON * self.box_size {
            return Err(WildFusionError::Shape(format!(
                "cannot blend triplanes over boxes {} and {}",
                self.box_size, other.box_size
            )));
        }
        let planes =
            ((&self.planes * f64::from(1.0 - t))? + (other.planes.to_device(self.planes.device())? * f64::from(t))?)?;
        Triplane::new(planes, self.box_size)
    }

    /// A CPU copy of the features for fast repeated sampling (one per render).
    pub fn sampler(&self, aggregation: Aggregation) -> Result<PlaneSampler, WildFusionError> {
        let data = self.planes.flatten_all()?.to_vec1::<f32>()?;
        Ok(PlaneSampler {
            data,
            channels: self.channels(),
            resolution: self.resolution(),
            scale: 2.0 / self.box_size,
            aggregation,
        })
    }

    /// Aggregated features `(N, C)` at `points` (world coordinates), on the planes' device.
    pub fn sample(&self, points: &[[f32; 3]], aggregation: Aggregation) -> Result<Tensor, WildFusionError> {
        let sampler = self.sampler(aggregation)?;
        let flat: Vec<f32> = points.iter().flatten().copied().collect();
        let mut out = Vec::new();
        sampler.sample_into(&flat, &mut out);
        Ok(Tensor::from_vec(
            out,
            (points.len(), self.channels()),
            self.planes.device(),
        )?)
    }
}

/// Triplane features copied out for sampling many points (see [`Triplane::sampler`]).
#[derive(Clone, Debug)]
pub struct PlaneSampler {
    data: Vec<f32>,
    channels: usize,
    resolution: usize,
    /// World → normalised grid coordinates (`2 / box_size`).
    scale: f32,
    aggregation: Aggregation,
}

impl PlaneSampler {
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Features of the points `xyz xyz …` into `out` (`N × C`, overwritten).
    pub fn sample_into(&self, points: &[f32], out: &mut Vec<f32>) {
        let c = self.channels;
        let n = points.len() / 3;
        out.clear();
        out.resize(n * c, 0.0);
        let weight = match self.aggregation {
            Aggregation::Mean => 1.0 / 3.0,
            Aggregation::Sum => 1.0,
        };
        for (p, o) in points.chunks_exact(3).zip(out.chunks_exact_mut(c)) {
            let (x, y, z) = (p[0] * self.scale, p[1] * self.scale, p[2] * self.scale);
            // xy, xz, yz: first coordinate along the columns, second along the rows.
            for (plane, (u, v)) in [(x, y), (x, z), (y, z)].into_iter().enumerate() {
                self.add_bilinear(plane, u, v, weight, o);
            }
        }
    }

    /// `out += weight · grid_sample(plane, (u, v))` with zeros padding, `align_corners=False`.
    fn add_bilinear(&self, plane: usize, u: f32, v: f32, weight: f32, out: &mut [f32]) {
        let r = self.resolution;
        let rf = r as f32;
        let ix = ((u + 1.0) * rf - 1.0) * 0.5;
        let iy = ((v + 1.0) * rf - 1.0) * 0.5;
        if !(ix.is_finite() && iy.is_finite()) || ix <= -1.0 || iy <= -1.0 || ix >= rf || iy >= rf {
            return;
        }
        let x0 = ix.floor();
        let y0 = iy.floor();
        let (fx, fy) = (ix - x0, iy - y0);
        let (x0, y0) = (x0 as isize, y0 as isize);
        let plane_len = self.channels * r * r;
        let base = plane * plane_len;
        for (dy, wy) in [(0isize, 1.0 - fy), (1, fy)] {
            let yy = y0 + dy;
            if yy < 0 || yy >= r as isize || wy == 0.0 {
                continue;
            }
            for (dx, wx) in [(0isize, 1.0 - fx), (1, fx)] {
                let xx = x0 + dx;
                if xx < 0 || xx >= r as isize || wx == 0.0 {
                    continue;
                }
                let w = weight * wx * wy;
                let offset = base + yy as usize * r + xx as usize;
                for (ch, o) in out.iter_mut().enumerate() {
                    *o += w * self.data[offset + ch * r * r];
                }
            }
        }
    }
}
