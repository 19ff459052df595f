//! The demo generator's decoder: a differentiable sprite renderer. A sprite's factor code
//! `[shape weights (3), scale, rotation (cos, sin), x, y, colour (r, g, b)]` becomes the same 64×64
//! picture `demo_data::sprites` draws, with soft edges (a sigmoid of each shape's signed distance)
//! instead of supersampling, so gradients reach every factor.
//!
//! Why not a learned decoder: the sprite autoencoders this project trains in minutes on two cores
//! reconstruct grey blobs (their recon MSE is 40 % below an all-black image), on which every
//! classifier is at chance; a generator whose every output is a failure makes a failure search
//! meaningless. The learned part of the demo generator is its latent diffusion prior over factor
//! codes (class-conditional, [`super::prior`]), which is where SAGE's latent-space failures live.

use crate::methods::demo_data::sprites::{self, Factors};
use candle_core::{D, Device, Tensor};

/// Length of a factor code.
pub const CODE_DIM: usize = 11;
/// Edge softness in pixels.
const EDGE_PX: f64 = 0.6;
/// Sharpness of the shape mixture: weights are softmax(5 · shape code).
const SHAPE_SHARPNESS: f64 = 5.0;

/// The factor code of a sprite (one-hot shape, scale, cos/sin of rotation, x, y, RGB).
pub fn encode(f: &Factors) -> [f32; CODE_DIM] {
    let mut code = [0f32; CODE_DIM];
    code[f.shape.index()] = 1.0;
    code[3] = f.scale;
    code[4] = f.rotation.cos();
    code[5] = f.rotation.sin();
    code[6] = f.x;
    code[7] = f.y;
    code[8..11].copy_from_slice(&f.rgb());
    code
}

/// Images `[B, 3, 64, 64]` in [0, 1] from factor codes `[B, 11]` (differentiable).
pub fn render(codes: &Tensor) -> candle_core::Result<Tensor> {
    let b = codes.dim(0)?;
    let s = sprites::SIZE;
    let dev = codes.device();
    let col = |i: usize| codes.narrow(1, i, 1).map(|t| t.reshape((b, 1, 1)));
    let (scale, c, sn, x, y) = (col(3)??, col(4)??, col(5)??, col(6)??, col(7)??);
    let half = (scale.clamp(0.2, 2.0)? * f64::from(sprites::BASE_HALF_SIZE_PX))?;
    let norm = (c.sqr()? + sn.sqr()?)?.affine(1.0, 1e-6)?.sqrt()?;
    let (c, sn) = (c.div(&norm)?, sn.div(&norm)?);
    let (span, min) = (f64::from(sprites::CENTRE_SPAN_PX), f64::from(sprites::CENTRE_MIN_PX));
    let (cx, cy) = (x.affine(span, min)?, y.affine(span, min)?);
    let (cols, rows) = pixel_grid(dev)?;
    // Screen rows grow downwards; shapes are defined with v up (as `sprites::coverage`).
    let px = cols.broadcast_sub(&cx)?;
    let py = cy.broadcast_sub(&rows)?;
    let u = (px.broadcast_mul(&c)? + py.broadcast_mul(&sn)?)?.broadcast_div(&half)?;
    let v = (py.broadcast_mul(&c)? - px.broadcast_mul(&sn)?)?.broadcast_div(&half)?;
    let soft = |sdf: Tensor| -> candle_core::Result<Tensor> {
        candle_nn::ops::sigmoid(&(sdf.broadcast_mul(&half)? * (-1.0 / EDGE_PX))?)
    };
    let square = soft(u.abs()?.maximum(&v.abs()?)?.affine(1.0, -0.8)?)?;
    let ellipse = soft(
        (u.sqr()? + (&v / 0.625)?.sqr()?)?
            .affine(1.0, 1e-8)?
            .sqrt()?
            .affine(1.0, -1.0)?,
    )?;
    // The heart's implicit function f = (x² + y² − 1)³ − x² y³ is not a distance: being cubic, its
    // gradient vanishes along much of the boundary and sigmoid(−f) would blur it there. Its signed
    // cube root behaves like x² + y² − 1 near the boundary, whose gradient is about 2 per unit of
    // (x, y), i.e. 2 × 1.15 per half-size. The root is smoothed as f·(f² + δ²)^(−1/3) (δ = 1e-3):
    // a plain cube root has an infinite slope at f = 0, exactly on the boundary, which floods the
    // gradient with spikes.
    let (hx, hy) = ((&u * 1.15)?, (&v * 1.15)?.affine(1.0, 0.1)?);
    let r = (hx.sqr()? + hy.sqr()?)?.affine(1.0, -1.0)?;
    let f = ((&r * &r)?.mul(&r)? - hx.sqr()?.mul(&hy.sqr()?.mul(&hy)?)?)?;
    let cube_root = f.sqr()?.affine(1.0, 1e-6)?.powf(-1.0 / 3.0)?.mul(&f)?;
    let heart = soft((cube_root / 2.3)?)?;
    let weights = shape_weights(codes)?;
    let w = |k: usize| weights.narrow(1, k, 1).and_then(|t| t.reshape((b, 1, 1)));
    let coverage =
        ((square.broadcast_mul(&w(0)?)? + ellipse.broadcast_mul(&w(1)?)?)? + heart.broadcast_mul(&w(2)?)?)?;
    let rgb = codes.narrow(1, 8, 3)?.clamp(0.0, 1.0)?.reshape((b, 3, 1, 1))?;
    coverage.reshape((b, 1, s, s))?.broadcast_mul(&rgb)
}

/// The shape mixture weights `[B, 3]` of factor codes (square, ellipse, heart).
pub fn shape_weights(codes: &Tensor) -> candle_core::Result<Tensor> {
    candle_nn::ops::softmax(&(codes.narrow(1, 0, 3)? * SHAPE_SHARPNESS)?, D::Minus1)
}

/// Pixel-centre column and row coordinates, each `[1, 64, 64]`.
fn pixel_grid(dev: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    let s = sprites::SIZE;
    let cols: Vec<f32> = (0..s * s).map(|i| (i % s) as f32 + 0.5).collect();
    let rows: Vec<f32> = (0..s * s).map(|i| (i / s) as f32 + 0.5).collect();
    Ok((
        Tensor::from_vec(cols, (1, s, s), dev)?,
        Tensor::from_vec(rows, (1, s, s), dev)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Var};

    #[test]
    fn gradients_match_finite_differences_for_every_shape() {
        let probe = Tensor::from_vec(
            crate::core::diffusion::Rng::new(2).normals_f32(3 * 64 * 64),
            (1, 3, 64, 64),
            &Device::Cpu,
        )
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
        let loss = |c: &Tensor| {
            (render(c).unwrap().to_dtype(DType::F64).unwrap() * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
        };
        for shape in 0..3 {
            let mut code = vec![0.0f32, 0.0, 0.0, 0.8, 0.6, 0.7, 0.45, 0.55, 0.9, 0.2, 0.4];
            code[shape] = 3.0;
            let codes = Tensor::from_vec(code, (1, CODE_DIM), &Device::Cpu).unwrap();
            let var = Var::from_tensor(&codes).unwrap();
            let g = loss(var.as_tensor())
                .backward()
                .unwrap()
                .get(var.as_tensor())
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            // Scale, rotation, position, colour. The heart's soft edge bends within hundredths of a
            // pixel (its smoothed cube root), so the step is small: 1e-4 code units.
            for j in [3, 4, 6, 7, 8] {
                let h = 1e-4f32;
                let mut e = vec![0f32; CODE_DIM];
                e[j] = h;
                let d = Tensor::from_vec(e, (1, CODE_DIM), &Device::Cpu).unwrap();
                let at = |t: Tensor| loss(&t).to_scalar::<f64>().unwrap();
                let fd = (at((&codes + &d).unwrap()) - at((&codes - &d).unwrap())) / (2.0 * h as f64);
                let bp = g[0][j] as f64;
                assert!(
                    (fd - bp).abs() <= 0.03 * bp.abs().max(1.0),
                    "shape {shape} factor {j}: fd {fd} vs backprop {bp}"
                );
            }
        }
    }

    #[test]
    fn rendered_codes_match_the_supersampled_sprites() {
        let factors: Vec<Factors> = (0..24).map(|i| Factors::sample(5, i)).collect();
        let codes: Vec<f32> = factors.iter().flat_map(encode).collect();
        let codes = Tensor::from_vec(codes, (24, CODE_DIM), &Device::Cpu).unwrap();
        let soft = render(&codes).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (exact, _) = sprites::batch_chw(&factors);
        let n = 3 * 64 * 64;
        let mut shares = Vec::new();
        for (i, f) in factors.iter().enumerate() {
            let (a, b) = (&soft[i * n..(i + 1) * n], &exact[i * n..(i + 1) * n]);
            let mae = a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / n as f32;
            let ink: f32 = b.iter().sum::<f32>() / n as f32;
            // Edges differ (soft vs supersampled), interiors agree: the error is a small share of
            // the ink (largest for small sprites, which are mostly edge).
            assert!(mae < 0.25 * ink, "sprite {i} ({:?}): mae {mae}, ink {ink}", f.shape);
            shares.push(mae / ink);
        }
        let mean = shares.iter().sum::<f32>() / shares.len() as f32;
        assert!(mean < 0.12, "{shares:?}");
    }
}
