//! A differentiable twin of [`render_view`](super::render_view): the same rays, samples and
//! `MipRayMarcher` compositing, written only with candle tensor ops so that an image loss can
//! backpropagate to the triplane features (and to the decoder's weights when they come from
//! `Var`s: [`OsgDecoder`] folds EG3D's gains into its weights with tensor ops and its forward is
//! tensor ops, so the graph reaches the underlying variables).
//!
//! What is differentiable and what is not:
//! - **plane values** (and decoder weights): yes;
//! - **point coordinates** (ray origins, directions, sample depths): no. Ray limits, sample
//!   depths and the bilinear taps (four texel indices and weights per plane) are computed on the
//!   CPU in plain `f32`, with the very arithmetic `PlaneSampler` uses, and enter the graph as
//!   constants. The planes are read with one `index_select` on the flattened planes, so the
//!   backward pass is a scatter-add into the texels a point touched.
//!
//! Sampling is deterministic: one sample at the centre of each of `samples_per_ray` equal bins
//! between the ray's entry into and exit from the triplane's cube (`render_view` with
//! `deterministic: true`). There is no importance pass: `render_view` with
//! `importance_samples: 0` is the like-for-like reference (the unit tests compare the two).
//!
//! Planes are one triplane `(3, C, R, R)` (planes xy, xz, yz, as [`Triplane`](super::Triplane));
//! a batch of triplanes is rendered one call per item. All intermediate tensors are
//! `rays × samples × C` (times 12 taps before aggregation), so callers bound memory by the
//! number of rays per call. Computation runs on the planes' device and in their dtype (`f32` or
//! `f64`; the decoder must hold weights of the same dtype).

use candle_core::{DType, Device, Tensor};

use super::WildFusionError;
use super::camera::ViewCamera;
use super::decoder::{OsgDecoder, softplus};
use super::render::{DENSITY_BIAS, TRANSMITTANCE_EPS, ray_box};
use super::triplane::Aggregation;

/// How [`render_rays`] samples and composites.
#[derive(Clone, Debug, PartialEq)]
pub struct DiffRenderOptions {
    /// Side of the cube the planes cover (the [`Triplane`](super::Triplane)'s `box_size`).
    pub box_size: f32,
    /// Samples per ray, at bin centres (≥ 2).
    pub samples_per_ray: usize,
    /// Colour behind empty space, RGB in `[0, 1]`.
    pub background: [f32; 3],
    pub aggregation: Aggregation,
}

impl Default for DiffRenderOptions {
    fn default() -> Self {
        Self {
            box_size: 2.0,
            samples_per_ray: 48,
            background: [1.0, 1.0, 1.0],
            aggregation: Aggregation::Mean,
        }
    }
}

/// A differentiable render. From [`render_rays`]: `rgb (N, 3)`, `depth (N,)`, `opacity (N,)`;
/// from [`render_image`]: `rgb (H, W, 3)`, `depth (H, W)`, `opacity (H, W)`, row 0 at the top.
/// RGB is composited over the background, depth is the distance along the unit ray.
#[derive(Clone, Debug)]
pub struct DiffRender {
    pub rgb: Tensor,
    pub depth: Tensor,
    pub opacity: Tensor,
}

/// Taps per point: 3 planes × 4 bilinear corners.
const TAPS: usize = 12;

/// The texel indices (into the planes flattened to `(3·R·R, C)`) and weights of every point's
/// twelve taps: `grid_sample(bilinear, zeros, align_corners=False)` exactly as
/// `PlaneSampler::add_bilinear` computes it, with the aggregation weight folded in. Corners
/// outside the plane (or points outside it) get index 0 and weight 0, so they add nothing.
fn bilinear_taps(points: &[f32], resolution: usize, scale: f32, aggregation: Aggregation) -> (Vec<u32>, Vec<f32>) {
    let n = points.len() / 3;
    let mut index = Vec::with_capacity(n * TAPS);
    let mut weight = Vec::with_capacity(n * TAPS);
    let agg = match aggregation {
        Aggregation::Mean => 1.0 / 3.0,
        Aggregation::Sum => 1.0,
    };
    let r = resolution;
    let rf = r as f32;
    for p in points.chunks_exact(3) {
        let (x, y, z) = (p[0] * scale, p[1] * scale, p[2] * scale);
        for (plane, (u, v)) in [(x, y), (x, z), (y, z)].into_iter().enumerate() {
            let ix = ((u + 1.0) * rf - 1.0) * 0.5;
            let iy = ((v + 1.0) * rf - 1.0) * 0.5;
            if !(ix.is_finite() && iy.is_finite()) || ix <= -1.0 || iy <= -1.0 || ix >= rf || iy >= rf {
                index.extend_from_slice(&[0; 4]);
                weight.extend_from_slice(&[0.0; 4]);
                continue;
            }
            let (x0, y0) = (ix.floor(), iy.floor());
            let (fx, fy) = (ix - x0, iy - y0);
            let (x0, y0) = (x0 as isize, y0 as isize);
            for (dy, wy) in [(0isize, 1.0 - fy), (1, fy)] {
                let yy = y0 + dy;
                for (dx, wx) in [(0isize, 1.0 - fx), (1, fx)] {
                    let xx = x0 + dx;
                    if yy < 0 || yy >= r as isize || xx < 0 || xx >= r as isize {
                        index.push(0);
                        weight.push(0.0);
                    } else {
                        index.push((plane * r * r + yy as usize * r + xx as usize) as u32);
                        // Same association as `PlaneSampler`: (aggregation · wx) · wy.
                        weight.push(agg * wx * wy);
                    }
                }
            }
        }
    }
    (index, weight)
}

fn check_planes(planes: &Tensor, decoder: &OsgDecoder) -> Result<(usize, usize), WildFusionError> {
    let (c, r) = match planes.dims() {
        &[3, c, h, w] if c > 0 && h > 0 && h == w => (c, h),
        d => {
            return Err(WildFusionError::Shape(format!(
                "differentiable rendering wants planes (3, C, R, R), got {d:?}"
            )));
        }
    };
    if decoder.config().n_features != c {
        return Err(WildFusionError::Shape(format!(
            "the decoder reads {} features but the planes have {c} channels",
            decoder.config().n_features
        )));
    }
    Ok((c, r))
}

/// `values` as a tensor of `dtype` on `device`.
fn constant(values: Vec<f32>, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor, WildFusionError> {
    Ok(Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?)
}

/// Renders the rays `origins[i] + t·directions[i]` (directions unit length, so depth is a
/// distance) through `planes` `(3, C, R, R)` and `decoder`, differentiably in the planes (see
/// the module docs). Rays that miss the cube get the background, opacity 0 and depth
/// `|origin| + box_size·√3/2` (for a [`ViewCamera`] that is `render_view`'s far default).
pub fn render_rays(
    planes: &Tensor,
    decoder: &OsgDecoder,
    origins: &[[f32; 3]],
    directions: &[[f32; 3]],
    opts: &DiffRenderOptions,
) -> Result<DiffRender, WildFusionError> {
    let (_, r) = check_planes(planes, decoder)?;
    if origins.len() != directions.len() {
        return Err(WildFusionError::Shape(format!(
            "{} ray origins but {} directions",
            origins.len(),
            directions.len()
        )));
    }
    if opts.samples_per_ray < 2 || !(opts.box_size.is_finite() && opts.box_size > 0.0) {
        return Err(WildFusionError::Config(format!(
            "need ≥ 2 samples per ray and a positive box size (got {} samples, box {})",
            opts.samples_per_ray, opts.box_size
        )));
    }
    let (dtype, device) = (planes.dtype(), planes.device().clone());
    let n_rays = origins.len();
    let s = opts.samples_per_ray;
    let half = opts.box_size * 0.5;

    // Rays, limits and sample depths on the CPU: constants of the graph.
    let mut hit_rays = Vec::new();
    let mut t_all = Vec::new();
    let mut points = Vec::new();
    let mut far = Vec::with_capacity(n_rays);
    for (i, (&o, &d)) in origins.iter().zip(directions).enumerate() {
        far.push((o[0] * o[0] + o[1] * o[1] + o[2] * o[2]).sqrt() + half * 3f32.sqrt());
        let Some((t0, t1)) = ray_box(o, d, half) else {
            continue;
        };
        hit_rays.push(i);
        let bin = (t1 - t0) / s as f32;
        for k in 0..s {
            let t = t0 + (k as f32 + 0.5) * bin;
            t_all.push(t);
            points.extend_from_slice(&[o[0] + t * d[0], o[1] + t * d[1], o[2] + t * d[2]]);
        }
    }
    let hits = hit_rays.len();
    let bg = constant(opts.background.to_vec(), &[1, 3], dtype, &device)?;

    // Per hit ray: composited rgb (hits, 3), depth (hits,), opacity (hits,).
    let (rgb_hit, depth_hit, opacity_hit) = if hits == 0 {
        (
            Tensor::zeros((0, 3), dtype, &device)?,
            Tensor::zeros(0, dtype, &device)?,
            Tensor::zeros(0, dtype, &device)?,
        )
    } else {
        let (sigma, rgb) = decode(planes, decoder, &points, r, opts)?;
        let sigma = sigma.reshape((hits, s))?;
        let rgb = rgb.reshape((hits, s, 3))?;
        composite(&sigma, &rgb, &t_all, hits, s, &bg)?
    };

    // Scatter back to all rays: misses read a background row / their far default.
    let row: Vec<u32> = {
        let mut row = vec![hits as u32; n_rays];
        for (h, &i) in hit_rays.iter().enumerate() {
            row[i] = h as u32;
        }
        row
    };
    let depth_row: Vec<u32> = (0..n_rays)
        .map(|i| {
            if row[i] == hits as u32 {
                (hits + i) as u32
            } else {
                row[i]
            }
        })
        .collect();
    let row = Tensor::from_vec(row, n_rays, &device)?;
    let depth_row = Tensor::from_vec(depth_row, n_rays, &device)?;
    let rgb = Tensor::cat(&[&rgb_hit, &bg], 0)?.index_select(&row, 0)?;
    let opacity = Tensor::cat(&[&opacity_hit, &Tensor::zeros(1, dtype, &device)?], 0)?.index_select(&row, 0)?;
    let far = constant(far, &[n_rays], dtype, &device)?;
    let depth = Tensor::cat(&[&depth_hit, &far], 0)?.index_select(&depth_row, 0)?;
    Ok(DiffRender { rgb, depth, opacity })
}

/// Raw σ `(P,)` and colour `(P, 3)` at `points` (`xyz xyz …`): gather the taps from the
/// flattened planes, weight, aggregate, decode.
fn decode(
    planes: &Tensor,
    decoder: &OsgDecoder,
    points: &[f32],
    r: usize,
    opts: &DiffRenderOptions,
) -> Result<(Tensor, Tensor), WildFusionError> {
    let (dtype, device) = (planes.dtype(), planes.device());
    let c = planes.dims()[1];
    let n = points.len() / 3;
    let (index, weight) = bilinear_taps(points, r, 2.0 / opts.box_size, opts.aggregation);
    // (3, C, R, R) → (3·R·R, C): one row per texel, so a tap is one row.
    let flat = planes
        .reshape((3, c, r * r))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((3 * r * r, c))?;
    let index = Tensor::from_vec(index, n * TAPS, device)?;
    let weight = constant(weight, &[n * TAPS, 1], dtype, device)?;
    let features = flat
        .index_select(&index, 0)?
        .broadcast_mul(&weight)?
        .reshape((n, TAPS, c))?
        .sum(1)?;
    let out = decoder.forward(&features)?;
    let sigma = out.sigma.flatten_all()?;
    let channels = out.rgb.dims()[1];
    // As `render_view`: the first three channels, or gray from a single one.
    let rgb = if channels >= 3 {
        out.rgb.narrow(1, 0, 3)?
    } else {
        out.rgb.narrow(1, 0, 1)?.repeat((1, 3))?
    };
    Ok((sigma, rgb))
}

/// EG3D's `MipRayMarcher` on `(hits, s)` raw densities and `(hits, s, 3)` colours at depths
/// `t` (row-major `hits × s`), over background `bg (1, 3)`, as `render.rs::composite`.
fn composite(
    sigma: &Tensor,
    rgb: &Tensor,
    t: &[f32],
    hits: usize,
    s: usize,
    bg: &Tensor,
) -> Result<(Tensor, Tensor, Tensor), WildFusionError> {
    let (dtype, device) = (sigma.dtype(), sigma.device());
    let m = s - 1;
    // Interval lengths and midpoints, computed in f32 like render.rs.
    let mut delta = Vec::with_capacity(hits * m);
    let mut t_mid = Vec::with_capacity(hits * m);
    let mut first = Vec::with_capacity(hits);
    let mut last = Vec::with_capacity(hits);
    for ray in t.chunks_exact(s) {
        for k in 0..m {
            delta.push(ray[k + 1] - ray[k]);
            t_mid.push(0.5 * (ray[k] + ray[k + 1]));
        }
        first.push(ray[0]);
        last.push(ray[m]);
    }
    let delta = constant(delta, &[hits, m], dtype, device)?;
    let t_mid = constant(t_mid, &[hits, m], dtype, device)?;
    let first = constant(first, &[hits], dtype, device)?;
    let last = constant(last, &[hits], dtype, device)?;

    let sigma_mid = ((sigma.narrow(1, 0, m)? + sigma.narrow(1, 1, m)?)? * 0.5)?;
    let rgb_mid = ((rgb.narrow(1, 0, m)? + rgb.narrow(1, 1, m)?)? * 0.5)?;
    let density = softplus(&(sigma_mid - f64::from(DENSITY_BIAS))?)?;
    // 1 − α written as exp(−σδ) directly: the same value, and its log below keeps a bounded
    // gradient where α rounds to 1.
    let keep = (density * delta)?.neg()?.exp()?;
    let alpha = (1.0 - &keep)?;
    // Transmittance before interval k: Π_{j<k} (1 − α_j + ε) = exp(Σ_{j<k} log(…)), the
    // cumulative product candle lacks.
    let log_keep = (keep + f64::from(TRANSMITTANCE_EPS))?.log()?;
    let before = Tensor::cat(
        &[
            &Tensor::zeros((hits, 1), dtype, device)?,
            &log_keep.narrow(1, 0, m - 1)?,
        ],
        1,
    )?
    .cumsum(1)?;
    let weights = (alpha * before.exp()?)?;

    let opacity = weights.sum(1)?;
    let rgb = weights.unsqueeze(2)?.broadcast_mul(&rgb_mid)?.sum(1)?;
    let rgb = (rgb + (1.0 - &opacity)?.unsqueeze(1)?.broadcast_mul(bg)?)?;
    // Depth Σ w·t / Σ w clamped to the samples' range; a ray with no weight gets its last
    // sample. The denominator is made safe first so an empty ray's gradient is 0, not NaN.
    let has_weight = opacity.gt(0.0)?;
    let safe = has_weight.where_cond(&opacity, &Tensor::ones_like(&opacity)?)?;
    let depth = ((weights * t_mid)?.sum(1)? / safe)?.maximum(&first)?.minimum(&last)?;
    let depth = has_weight.where_cond(&depth, &last)?;
    Ok((rgb, depth, opacity))
}

/// [`render_rays`] for the `width × height` pixel rays of `camera` (as `render_view` makes them),
/// reshaped to images: `rgb (H, W, 3)`, `depth (H, W)`, `opacity (H, W)`.
pub fn render_image(
    planes: &Tensor,
    decoder: &OsgDecoder,
    camera: &ViewCamera,
    width: usize,
    height: usize,
    opts: &DiffRenderOptions,
) -> Result<DiffRender, WildFusionError> {
    if width == 0 || height == 0 {
        return Err(WildFusionError::Config(format!(
            "need a non-empty image, got {width}×{height}"
        )));
    }
    let (origins, directions): (Vec<_>, Vec<_>) = (0..width * height)
        .map(|pixel| camera.ray(pixel % width, pixel / width, width, height))
        .unzip();
    let out = render_rays(planes, decoder, &origins, &directions, opts)?;
    Ok(DiffRender {
        rgb: out.rgb.reshape((height, width, 3))?,
        depth: out.depth.reshape((height, width))?,
        opacity: out.opacity.reshape((height, width))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::wildfusion::{DecoderConfig, RenderOptions, Triplane, analytic, render_view};
    use candle_core::Var;
    use candle_nn::{Optimizer, VarBuilder};
    use std::collections::HashMap;

    /// Deterministic values in `[−1, 1)` (a tiny LCG; tests must not depend on a global RNG).
    fn uniform(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// A decoder with random raw weights, in `dtype`.
    fn random_decoder(cfg: &DecoderConfig, dtype: DType, seed: u64) -> OsgDecoder {
        let dev = Device::Cpu;
        let (c, h, o) = (cfg.n_features, cfg.hidden_dim, 1 + cfg.decoder_output_dim);
        let t = |n: usize, shape: &[usize], k: u64| Tensor::from_vec(uniform(n, seed + k), shape, &dev).unwrap();
        let tensors = HashMap::from([
            ("net.0.weight".to_string(), t(h * c, &[h, c], 1)),
            ("net.0.bias".to_string(), t(h, &[h], 2)),
            ("net.2.weight".to_string(), (t(o * h, &[o, h], 3) * 2.0).unwrap()),
            // Raw σ biased up so that views are partly opaque, colours left centred.
            ("net.2.bias".to_string(), {
                let mut b = uniform(o, seed + 4);
                b[0] += 2.5;
                Tensor::from_vec(b, o, &dev).unwrap()
            }),
        ]);
        OsgDecoder::load(VarBuilder::from_tensors(tensors, dtype, &dev), cfg).unwrap()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    /// Renders with both paths (deterministic, no importance) and returns the largest
    /// differences in rgb, depth and opacity.
    /// Also returns how many rays missed the cube (opacity exactly 0 in the reference).
    fn compare(triplane: &Triplane, decoder: &OsgDecoder, camera: &ViewCamera) -> ([f32; 3], usize) {
        let (w, h, s) = (12, 10, 16);
        let reference = render_view(
            triplane,
            decoder,
            camera,
            &RenderOptions {
                width: w,
                height: h,
                samples_per_ray: s,
                importance_samples: 0,
                deterministic: true,
                background: [0.2, 0.5, 0.9],
                ..RenderOptions::default()
            },
            &mut |_| true,
        )
        .unwrap();
        let opts = DiffRenderOptions {
            box_size: triplane.box_size(),
            samples_per_ray: s,
            background: [0.2, 0.5, 0.9],
            aggregation: Aggregation::Mean,
        };
        let ours = render_image(triplane.planes(), decoder, camera, w, h, &opts).unwrap();
        let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let opacity = v(&ours.opacity);
        let densest = opacity.iter().copied().fold(0.0, f32::max);
        assert!(densest > 0.5, "the view must show something (max opacity {densest})");
        let missed = reference.opacity.iter().filter(|&&a| a == 0.0).count();
        (
            [
                max_diff(&v(&ours.rgb), &reference.rgb),
                max_diff(&v(&ours.depth), &reference.depth),
                max_diff(&opacity, &reference.opacity),
            ],
            missed,
        )
    }

    #[test]
    fn matches_render_view_on_analytic_triplanes() {
        let decoder = analytic::decoder().unwrap();
        let camera = ViewCamera {
            yaw_deg: 25.0,
            pitch_deg: 10.0,
            ..ViewCamera::default()
        };
        for object in [analytic::AnalyticObject::Sphere, analytic::AnalyticObject::Torus] {
            let triplane = analytic::triplane(object, 32).unwrap();
            let ([rgb, depth, opacity], _) = compare(&triplane, &decoder, &camera);
            eprintln!("{object:?}: max |Δ| rgb {rgb:e}, depth {depth:e}, opacity {opacity:e}");
            assert!(rgb < 1e-4 && depth < 1e-4 && opacity < 1e-4, "{object:?}");
        }
    }

    #[test]
    fn matches_render_view_on_random_triplane_and_decoder() {
        let cfg = DecoderConfig {
            n_features: 5,
            hidden_dim: 16,
            ..DecoderConfig::default()
        };
        let decoder = random_decoder(&cfg, DType::F32, 7);
        let r = 8;
        let values = uniform(3 * 5 * r * r, 11).into_iter().map(|v| 2.0 * v).collect();
        let triplane = Triplane::from_vec(values, 5, r, 1.6).unwrap();
        // A wide view, so the outer rays miss the cube (background, far default).
        let camera = ViewCamera {
            yaw_deg: -20.0,
            pitch_deg: 15.0,
            radius: 3.5,
            fov_deg: 50.0,
        };
        let ([rgb, depth, opacity], missed) = compare(&triplane, &decoder, &camera);
        eprintln!("random: max |Δ| rgb {rgb:e}, depth {depth:e}, opacity {opacity:e}; {missed} rays miss");
        assert!(missed > 0, "some rays must miss the cube");
        assert!(rgb < 1e-4 && depth < 1e-4 && opacity < 1e-4);
    }

    #[test]
    fn plane_gradients_match_finite_differences() {
        let cfg = DecoderConfig {
            n_features: 3,
            hidden_dim: 8,
            ..DecoderConfig::default()
        };
        let decoder = random_decoder(&cfg, DType::F64, 3);
        let (c, r) = (3, 4);
        let values: Vec<f64> = uniform(3 * c * r * r, 5)
            .into_iter()
            .map(|v| 1.5 * f64::from(v))
            .collect();
        let opts = DiffRenderOptions {
            box_size: 1.8,
            samples_per_ray: 8,
            background: [0.3, 0.6, 0.1],
            aggregation: Aggregation::Mean,
        };
        // Wide enough that corner rays miss the cube: their path must give zero, not NaN.
        let camera = ViewCamera {
            yaw_deg: 15.0,
            pitch_deg: -8.0,
            fov_deg: 45.0,
            ..ViewCamera::default()
        };
        let (w, h) = (5, 4);
        let rgb_weights = Tensor::from_vec(uniform(w * h * 3, 9), (h, w, 3), &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap();
        // A scalar touching all three outputs.
        let loss = |planes: &Tensor| -> Tensor {
            let out = render_image(planes, &decoder, &camera, w, h, &opts).unwrap();
            let a = (out.rgb * &rgb_weights).unwrap().sum_all().unwrap();
            let b = (out.depth.sum_all().unwrap() * 0.1).unwrap();
            let o = out.opacity.sqr().unwrap().sum_all().unwrap();
            ((a + b).unwrap() + o).unwrap()
        };
        let shape = (3, c, r, r);
        let var = Var::from_tensor(&Tensor::from_vec(values.clone(), shape, &Device::Cpu).unwrap()).unwrap();
        let grads = loss(var.as_tensor()).backward().unwrap();
        let grad = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        assert!(grad.iter().all(|g| g.is_finite()));
        // The entries with the largest gradients, plus a few fixed ones (some may be untouched).
        let mut order: Vec<usize> = (0..grad.len()).collect();
        order.sort_by(|&a, &b| grad[b].abs().total_cmp(&grad[a].abs()));
        let mut picks: Vec<usize> = order[..6].to_vec();
        picks.extend([0, 17, 40, 77, 131]);
        let eps = 1e-5;
        let mut worst = 0f64;
        for &i in &picks {
            let at = |dv: f64| {
                let mut v = values.clone();
                v[i] += dv;
                let t = Tensor::from_vec(v, shape, &Device::Cpu).unwrap();
                loss(&t).to_scalar::<f64>().unwrap()
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps);
            let err = (grad[i] - fd).abs() / (1.0 + fd.abs());
            worst = worst.max(err);
            assert!(err < 1e-6, "entry {i}: backward {} vs finite difference {fd}", grad[i]);
        }
        eprintln!(
            "largest |grad| {:e}, worst relative error {worst:e} over {} entries",
            grad[order[0]].abs(),
            picks.len()
        );
        assert!(grad[order[0]].abs() > 1e-3, "the loss must depend on the planes");
    }

    /// The decoder's weights are reachable too when they come from `Var`s. `OsgDecoder` folds
    /// EG3D's gains into copies at load time, so a trainer must rebuild it from the `VarMap`
    /// after each update (done here after setting the values); the graph still leads back to the
    /// variables.
    #[test]
    fn decoder_vars_receive_gradients() {
        let cfg = DecoderConfig {
            n_features: 3,
            hidden_dim: 8,
            ..DecoderConfig::default()
        };
        let dev = Device::Cpu;
        let mut varmap = candle_nn::VarMap::new();
        OsgDecoder::load(VarBuilder::from_varmap(&varmap, DType::F32, &dev), &cfg).unwrap();
        let (c, h, o) = (cfg.n_features, cfg.hidden_dim, 1 + cfg.decoder_output_dim);
        for (k, (name, shape)) in [
            ("net.0.weight", vec![h, c]),
            ("net.0.bias", vec![h]),
            ("net.2.weight", vec![o, h]),
            ("net.2.bias", vec![o]),
        ]
        .into_iter()
        .enumerate()
        {
            let n = shape.iter().product();
            let value = Tensor::from_vec(uniform(n, 20 + k as u64), shape, &dev).unwrap();
            varmap.set_one(name, value).unwrap();
        }
        let decoder = OsgDecoder::load(VarBuilder::from_varmap(&varmap, DType::F32, &dev), &cfg).unwrap();
        let planes = Tensor::from_vec(uniform(3 * c * 4 * 4, 2), (3, c, 4, 4), &dev).unwrap();
        let opts = DiffRenderOptions {
            samples_per_ray: 6,
            ..DiffRenderOptions::default()
        };
        let out = render_image(&planes, &decoder, &ViewCamera::default(), 4, 3, &opts).unwrap();
        let grads = out.rgb.sum_all().unwrap().backward().unwrap();
        let vars = varmap.data().lock().unwrap();
        for (name, var) in vars.iter() {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {name}"));
            let g = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(
                g.iter().all(|v| v.is_finite()) && g.iter().any(|&v| v != 0.0),
                "{name}: {g:?}"
            );
        }
    }

    #[test]
    fn zero_planes_learn_an_analytic_view() {
        let decoder = analytic::decoder().unwrap();
        let r = 16;
        let target_planes = analytic::triplane(analytic::AnalyticObject::Sphere, r).unwrap();
        let opts = DiffRenderOptions {
            box_size: analytic::BOX_SIZE,
            samples_per_ray: 24,
            ..DiffRenderOptions::default()
        };
        let (w, h) = (16, 16);
        let cameras = [
            ViewCamera::default(),
            ViewCamera {
                yaw_deg: 30.0,
                ..ViewCamera::default()
            },
        ];
        let targets: Vec<Tensor> = cameras
            .iter()
            .map(|cam| {
                render_image(target_planes.planes(), &decoder, cam, w, h, &opts)
                    .unwrap()
                    .rgb
            })
            .collect();
        let planes = Var::zeros((3, analytic::CHANNELS, r, r), DType::F32, &Device::Cpu).unwrap();
        let mut opt = candle_nn::AdamW::new(
            vec![planes.clone()],
            candle_nn::ParamsAdamW {
                lr: 0.3,
                weight_decay: 0.0,
                ..Default::default()
            },
        )
        .unwrap();
        let loss = || -> Tensor {
            let mut total = Tensor::zeros((), DType::F32, &Device::Cpu).unwrap();
            for (cam, target) in cameras.iter().zip(&targets) {
                let out = render_image(planes.as_tensor(), &decoder, cam, w, h, &opts).unwrap();
                total = (total + (out.rgb - target).unwrap().sqr().unwrap().mean_all().unwrap()).unwrap();
            }
            total
        };
        const STEPS: usize = 30;
        let start = std::time::Instant::now();
        let initial = loss().to_scalar::<f32>().unwrap();
        for _ in 0..STEPS {
            opt.backward_step(&loss()).unwrap();
        }
        let last = loss().to_scalar::<f32>().unwrap();
        eprintln!(
            "L2 loss {initial:e} → {last:e} (ratio {:.3}) in {STEPS} Adam steps, {:.2?}",
            last / initial,
            start.elapsed()
        );
        assert!(last < 0.3 * initial, "{initial} → {last}");
    }
}
