//! Volume rendering of a triplane along camera rays, after EG3D's `ImportanceRenderer` with
//! `ray_start = ray_end = 'auto'` and its `MipRayMarcher`:
//!
//! 1. each ray is clipped to the triplane's cube (`get_ray_limits_box`); rays that miss it are
//!    empty (opacity 0, depth = the far end of the cube's bounding sphere);
//! 2. `samples_per_ray` coarse depths, one per equal bin between the limits — the bin's midpoint
//!    (deterministic) or a uniform jitter inside it (stratified; EG3D jitters a `linspace`, which
//!    can overshoot the far limit by one spacing, we keep samples in their bins);
//! 3. optional importance resampling: `importance_samples` more depths drawn by inverse CDF
//!    from the coarse weights + 0.01 (EG3D blurs the weights with a max- then an average-pool
//!    first; we do not), merged and sorted with the coarse ones, all decoded again;
//! 4. compositing as `MipRayMarcher`: for each interval between neighbouring samples the
//!    colours, raw densities and depths are averaged, density is `softplus(σ_mid − 1)`,
//!    `α = 1 − exp(−density·δ)`, weights `α · Π(1 − α + 1e−10)`; RGB `Σ w·c`, opacity `Σ w`,
//!    depth `Σ w·t / Σ w` clamped to the ray's sample range (a ray with no weight gets the far
//!    limit, as EG3D's `nan_to_num(inf)` + clamp does).
//!
//! The RGB returned is in `[0, 1]` (EG3D maps to `[−1, 1]` for its discriminator) and is
//! composited over `background` with the missing opacity. Rays are processed in batches, so
//! memory is bounded, and a callback sees the progress and can cancel.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::WildFusionError;
use super::camera::{Vec3, ViewCamera};
use super::decoder::OsgDecoder;
use super::triplane::{Aggregation, PlaneSampler, Triplane};
use crate::core::colormap::Colormap;

/// EG3D's density activation bias: `softplus(σ − 1)`.
pub const DENSITY_BIAS: f32 = 1.0;
/// EG3D's cumulative-product guard `1 − α + 1e−10`.
pub(super) const TRANSMITTANCE_EPS: f32 = 1e-10;
/// EG3D adds this to the coarse weights before drawing importance samples.
const IMPORTANCE_FLOOR: f32 = 0.01;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RenderOptions {
    pub width: usize,
    pub height: usize,
    /// Coarse samples per ray (EG3D: `depth_resolution`).
    pub samples_per_ray: usize,
    /// Importance samples per ray (EG3D: `depth_resolution_importance`); 0 turns it off.
    pub importance_samples: usize,
    /// Bin midpoints and evenly spaced importance draws instead of random ones (tests, exports
    /// that must reproduce).
    pub deterministic: bool,
    /// Seed of the stratified jitter and importance draws when not deterministic.
    pub seed: u64,
    /// Colour behind empty space, RGB in `[0, 1]`.
    pub background: [f32; 3],
    /// Rays decoded together (bounds memory: `rays × samples × C` floats).
    pub rays_per_batch: usize,
    pub aggregation: Aggregation,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            width: 128,
            height: 128,
            samples_per_ray: 48,
            importance_samples: 24,
            deterministic: false,
            seed: 0,
            background: [1.0, 1.0, 1.0],
            rays_per_batch: 2048,
            aggregation: Aggregation::Mean,
        }
    }
}

/// A rendered view: RGB, expected depth (distance along the ray) and accumulated opacity.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedView {
    pub width: usize,
    pub height: usize,
    /// `height × width × 3`, row 0 at the top, in `[0, 1]`.
    pub rgb: Vec<f32>,
    /// `height × width` distances from the eye.
    pub depth: Vec<f32>,
    /// `height × width` accumulated opacity `Σ w` in `[0, 1]`.
    pub opacity: Vec<f32>,
    pub camera: ViewCamera,
}

impl RenderedView {
    /// RGB as 8-bit RGBA pixels (opaque; the background is already composited).
    pub fn rgba8(&self) -> Vec<[u8; 4]> {
        self.rgb
            .chunks_exact(3)
            .map(|c| {
                let q = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                [q(c[0]), q(c[1]), q(c[2]), 255]
            })
            .collect()
    }
    /// The depth through [`depth_rgba`].
    pub fn depth_rgba8(&self, colormap: Colormap) -> (Vec<[u8; 4]>, Option<(f32, f32)>) {
        depth_rgba(&self.depth, &self.opacity, colormap)
    }
}

/// Colormapped depth: pixels with opacity ≥ 0.5 through `colormap` over their own depth range
/// (near = low end), the others transparent. Returns the pixels and the `(near, far)` window
/// (`None` when nothing is opaque).
pub fn depth_rgba(depth: &[f32], opacity: &[f32], colormap: Colormap) -> (Vec<[u8; 4]>, Option<(f32, f32)>) {
    const SHOWN: f32 = 0.5;
    let shown: Vec<f32> = depth
        .iter()
        .zip(opacity)
        .map(|(&d, &a)| if a >= SHOWN { d } else { f32::NAN })
        .collect();
    let (lo, hi) = shown
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return (vec![[0, 0, 0, 0]; depth.len()], None);
    }
    (colormap.apply(&shown, lo, hi.max(lo + 1e-6)), Some((lo, hi)))
}

/// SplitMix64: a tiny deterministic generator for the jitter (one stream per pixel, so results
/// do not depend on the batch size).
struct SplitMix(u64);
impl SplitMix {
    fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Entry and exit distances of a ray through the cube `[−h, h]³` (slab test), if it enters.
pub(super) fn ray_box(o: Vec3, d: Vec3, h: f32) -> Option<(f32, f32)> {
    let (mut t0, mut t1) = (0.0f32, f32::INFINITY);
    for k in 0..3 {
        if d[k].abs() < 1e-12 {
            if o[k].abs() > h {
                return None;
            }
            continue;
        }
        let (a, b) = ((-h - o[k]) / d[k], (h - o[k]) / d[k]);
        t0 = t0.max(a.min(b));
        t1 = t1.min(a.max(b));
    }
    (t1 > t0 + 1e-6).then_some((t0, t1))
}

fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// One ray's samples, sorted by depth: depth, raw σ, colour.
struct RaySamples {
    t: Vec<f32>,
    sigma: Vec<f32>,
    rgb: Vec<f32>,
}

struct Composite {
    rgb: [f32; 3],
    opacity: f32,
    depth: f32,
    /// Weight of each interval between neighbouring samples.
    weights: Vec<f32>,
}

/// EG3D's `MipRayMarcher` on one ray.
fn composite(s: &RaySamples) -> Composite {
    let n = s.t.len();
    let mut rgb = [0.0f32; 3];
    let (mut acc, mut depth, mut trans) = (0.0f32, 0.0f32, 1.0f32);
    let mut weights = Vec::with_capacity(n.saturating_sub(1));
    for k in 0..n.saturating_sub(1) {
        let delta = s.t[k + 1] - s.t[k];
        let sigma = softplus(0.5 * (s.sigma[k] + s.sigma[k + 1]) - DENSITY_BIAS);
        let alpha = 1.0 - (-sigma * delta).exp();
        let w = alpha * trans;
        trans *= 1.0 - alpha + TRANSMITTANCE_EPS;
        for (c, out) in rgb.iter_mut().enumerate() {
            *out += w * 0.5 * (s.rgb[3 * k + c] + s.rgb[3 * (k + 1) + c]);
        }
        depth += w * 0.5 * (s.t[k] + s.t[k + 1]);
        acc += w;
        weights.push(w);
    }
    let (first, last) = (s.t[0], s.t[n - 1]);
    let depth = if acc > 0.0 {
        (depth / acc).clamp(first, last)
    } else {
        last
    };
    Composite {
        rgb,
        opacity: acc,
        depth,
        weights,
    }
}

/// Inverse-CDF draws of `m` depths from the piecewise-constant pdf `weights + floor` over the
/// intervals between `t` (sorted).
fn importance_depths(t: &[f32], weights: &[f32], m: usize, rng: Option<&mut SplitMix>) -> Vec<f32> {
    let w: Vec<f32> = weights.iter().map(|w| w + IMPORTANCE_FLOOR).collect();
    let total: f32 = w.iter().sum();
    let mut cdf = Vec::with_capacity(w.len() + 1);
    cdf.push(0.0f32);
    for x in &w {
        cdf.push(cdf[cdf.len() - 1] + x / total);
    }
    let mut us: Vec<f32> = match rng {
        None => (0..m).map(|j| (j as f32 + 0.5) / m as f32).collect(),
        Some(r) => (0..m).map(|_| r.next_f32()).collect(),
    };
    us.sort_by(f32::total_cmp);
    us.iter()
        .map(|&u| {
            let k = cdf.partition_point(|&c| c <= u).clamp(1, w.len()) - 1;
            let span = cdf[k + 1] - cdf[k];
            let f = if span > 0.0 {
                ((u - cdf[k]) / span).clamp(0.0, 1.0)
            } else {
                0.5
            };
            t[k] + f * (t[k + 1] - t[k])
        })
        .collect()
}

/// Points → raw σ and colour through the triplane and decoder.
struct Field<'a> {
    sampler: PlaneSampler,
    decoder: &'a OsgDecoder,
    device: Device,
    features: Vec<f32>,
}

impl Field<'_> {
    fn evaluate(&mut self, points: &[f32]) -> Result<(Vec<f32>, Vec<f32>), WildFusionError> {
        let n = points.len() / 3;
        if n == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        self.sampler.sample_into(points, &mut self.features);
        let c = self.sampler.channels();
        let f = Tensor::from_slice(&self.features, (n, c), &Device::Cpu)?.to_device(&self.device)?;
        let out = self.decoder.forward(&f)?;
        let sigma = out.sigma.flatten_all()?.to_vec1::<f32>()?;
        let rgb = out.rgb.narrow(1, 0, 3.min(out.rgb.dims()[1]))?;
        let mut rgb = rgb.flatten_all()?.to_vec1::<f32>()?;
        if out.rgb.dims()[1] < 3 {
            // Gray from a single channel.
            rgb = rgb.iter().flat_map(|&v| [v, v, v]).collect();
        }
        Ok((sigma, rgb))
    }
}

/// Renders `triplane` through `decoder` from `camera`. `progress(fraction)` is called after each
/// batch; returning `false` cancels (the result is then `Err(Cancelled)`).
pub fn render_view(
    triplane: &Triplane,
    decoder: &OsgDecoder,
    camera: &ViewCamera,
    opts: &RenderOptions,
    progress: &mut dyn FnMut(f32) -> bool,
) -> Result<RenderedView, WildFusionError> {
    let (w, h) = (opts.width, opts.height);
    if w == 0 || h == 0 || opts.samples_per_ray < 2 || opts.rays_per_batch == 0 {
        return Err(WildFusionError::Config(format!(
            "need a non-empty image, ≥ 2 samples per ray and ≥ 1 ray per batch (got {w}×{h}, {} samples, {} rays)",
            opts.samples_per_ray, opts.rays_per_batch
        )));
    }
    if decoder.config().n_features != triplane.channels() {
        return Err(WildFusionError::Shape(format!(
            "the decoder reads {} features but the triplane has {} channels",
            decoder.config().n_features,
            triplane.channels()
        )));
    }
    let half = triplane.box_size() * 0.5;
    let far_default = camera.radius + half * 3f32.sqrt();
    let mut field = Field {
        sampler: triplane.sampler(opts.aggregation)?,
        decoder,
        device: triplane.planes().device().clone(),
        features: Vec::new(),
    };
    let n = opts.samples_per_ray;
    let total = w * h;
    let mut out = RenderedView {
        width: w,
        height: h,
        rgb: Vec::with_capacity(total * 3),
        depth: Vec::with_capacity(total),
        opacity: Vec::with_capacity(total),
        camera: *camera,
    };
    let bg = opts.background;
    let mut start = 0;
    while start < total {
        let end = (start + opts.rays_per_batch).min(total);
        // Coarse pass.
        let mut rays = Vec::with_capacity(end - start);
        let mut points = Vec::new();
        for pixel in start..end {
            let (o, d) = camera.ray(pixel % w, pixel / w, w, h);
            let mut rng =
                (!opts.deterministic).then(|| SplitMix(opts.seed ^ (pixel as u64).wrapping_mul(0xA24B_AED4_963E_E407)));
            let limits = ray_box(o, d, half);
            let ts: Vec<f32> = match limits {
                None => Vec::new(),
                Some((t0, t1)) => {
                    let bin = (t1 - t0) / n as f32;
                    (0..n)
                        .map(|k| {
                            let u = rng.as_mut().map_or(0.5, SplitMix::next_f32);
                            t0 + (k as f32 + u) * bin
                        })
                        .collect()
                }
            };
            for &t in &ts {
                points.extend_from_slice(&[o[0] + t * d[0], o[1] + t * d[1], o[2] + t * d[2]]);
            }
            rays.push((o, d, ts, rng));
        }
        let (sigma, rgb) = field.evaluate(&points)?;
        let mut offset = 0;
        let mut coarse = Vec::with_capacity(rays.len());
        for (_, _, ts, _) in &rays {
            let k = ts.len();
            coarse.push(RaySamples {
                t: ts.clone(),
                sigma: sigma[offset..offset + k].to_vec(),
                rgb: rgb[3 * offset..3 * (offset + k)].to_vec(),
            });
            offset += k;
        }
        // Importance pass.
        if opts.importance_samples > 0 {
            let mut fine_t = Vec::with_capacity(rays.len());
            let mut points = Vec::new();
            for ((o, d, ts, rng), c) in rays.iter_mut().zip(&coarse) {
                if ts.is_empty() {
                    fine_t.push(Vec::new());
                    continue;
                }
                let weights = composite(c).weights;
                let extra = importance_depths(ts, &weights, opts.importance_samples, rng.as_mut());
                for &t in &extra {
                    points.extend_from_slice(&[o[0] + t * d[0], o[1] + t * d[1], o[2] + t * d[2]]);
                }
                fine_t.push(extra);
            }
            let (sigma, rgb) = field.evaluate(&points)?;
            let mut offset = 0;
            for (c, extra) in coarse.iter_mut().zip(fine_t) {
                let k = extra.len();
                if k == 0 {
                    continue;
                }
                let mut merged: Vec<(f32, f32, [f32; 3])> =
                    c.t.iter()
                        .enumerate()
                        .map(|(i, &t)| (t, c.sigma[i], [c.rgb[3 * i], c.rgb[3 * i + 1], c.rgb[3 * i + 2]]))
                        .collect();
                for (j, &t) in extra.iter().enumerate() {
                    let i = offset + j;
                    merged.push((t, sigma[i], [rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]]));
                }
                merged.sort_by(|a, b| a.0.total_cmp(&b.0));
                c.t = merged.iter().map(|m| m.0).collect();
                c.sigma = merged.iter().map(|m| m.1).collect();
                c.rgb = merged.iter().flat_map(|m| m.2).collect();
                offset += k;
            }
        }
        for c in &coarse {
            if c.t.is_empty() {
                out.rgb.extend_from_slice(&bg);
                out.depth.push(far_default);
                out.opacity.push(0.0);
                continue;
            }
            let r = composite(c);
            let miss = 1.0 - r.opacity;
            for (k, v) in r.rgb.iter().enumerate() {
                out.rgb.push(v + miss * bg[k]);
            }
            out.depth.push(r.depth);
            out.opacity.push(r.opacity);
        }
        start = end;
        if !progress(start as f32 / total as f32) {
            return Err(WildFusionError::Cancelled);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ray_box_limits_and_misses() {
        let (t0, t1) = ray_box([0.0, 0.0, 3.0], [0.0, 0.0, -1.0], 1.0).unwrap();
        assert!((t0 - 2.0).abs() < 1e-6 && (t1 - 4.0).abs() < 1e-6);
        assert!(ray_box([0.0, 2.0, 3.0], [0.0, 0.0, -1.0], 1.0).is_none());
    }

    #[test]
    fn importance_draws_stay_in_range_and_follow_weight() {
        let t: Vec<f32> = (0..11).map(|k| k as f32 * 0.1).collect();
        let mut w = vec![0.0; 10];
        w[6] = 1.0;
        let d = importance_depths(&t, &w, 20, None);
        assert!(d.iter().all(|&x| (0.0..=1.0).contains(&x)));
        let inside = d.iter().filter(|&&x| (0.6..=0.7).contains(&x)).count();
        assert!(inside >= 15, "{d:?}");
    }
}
