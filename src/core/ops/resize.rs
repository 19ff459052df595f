//! 2D image resizing as PyTorch's `F.interpolate(mode="bilinear", align_corners=False,
//! antialias=True)` computes it (torchvision's `Resize` on tensors), written as two matrix
//! products so that candle's autograd differentiates it: candle's own `upsample_bilinear2d` has no
//! backward, and a classifier in an adversarial search must pass gradients to its input.

use candle_core::{Result, Tensor};

/// PyTorch's antialiased bilinear weights (`_upsample_bilinear2d_aa`): output pixel `i` of `out`
/// reads the input pixels under a triangle filter centred at `(i + ½)·in/out`, widened by the
/// scale when shrinking; each row is normalised to sum 1. `[out, in]`, row-major.
pub fn antialias_bilinear_weights(input: usize, output: usize) -> Vec<f32> {
    let scale = input as f64 / output as f64;
    // The filter's support is 1 pixel when enlarging and `scale` pixels when shrinking.
    let (support, inv) = if scale >= 1.0 { (scale, 1.0 / scale) } else { (1.0, 1.0) };
    let mut w = vec![0.0f32; output * input];
    for i in 0..output {
        let center = scale * (i as f64 + 0.5);
        let lo = ((center - support + 0.5).floor().max(0.0)) as usize;
        let hi = ((center + support + 0.5).floor() as usize).min(input);
        let taps: Vec<f64> = (lo..hi)
            .map(|j| (1.0 - ((j as f64 - center + 0.5) * inv).abs()).max(0.0))
            .collect();
        let total: f64 = taps.iter().sum();
        for (j, t) in (lo..hi).zip(taps) {
            if total > 0.0 {
                w[i * input + j] = (t / total) as f32;
            }
        }
    }
    w
}

/// Resizes `[N, C, H, W]` to `[N, C, height, width]` (antialiased bilinear, see the module doc).
/// Equal sizes return the input unchanged.
pub fn resize_bilinear_antialias(x: &Tensor, height: usize, width: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    if (h, w) == (height, width) {
        return Ok(x.clone());
    }
    if height == 0 || width == 0 {
        candle_core::bail!("resize to {height}×{width}: sizes must be positive");
    }
    let dtype = x.dtype();
    let rows = Tensor::from_vec(antialias_bilinear_weights(h, height), (height, h), x.device())?.to_dtype(dtype)?;
    let cols = Tensor::from_vec(antialias_bilinear_weights(w, width), (width, w), x.device())?
        .to_dtype(dtype)?
        .t()?;
    // Columns first ([N·C·H, W] · [W, width]), then rows ([height, H] · [N·C, H, width]).
    let x = x.reshape((n * c * h, w))?.matmul(&cols)?.reshape((n * c, h, width))?;
    let x = rows
        .unsqueeze(0)?
        .broadcast_as((n * c, height, h))?
        .contiguous()?
        .matmul(&x)?;
    x.reshape((n, c, height, width))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_rows_sum_to_one_and_equal_sizes_are_the_identity() {
        for (i, o) in [(512, 224), (16, 224), (7, 3), (5, 5)] {
            let w = antialias_bilinear_weights(i, o);
            for r in w.chunks(i) {
                assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{i}→{o}");
            }
        }
        let w = antialias_bilinear_weights(4, 4);
        for r in 0..4 {
            for c in 0..4 {
                assert_eq!(w[r * 4 + c], if r == c { 1.0 } else { 0.0 });
            }
        }
    }

    #[test]
    fn halving_averages_pixel_pairs_with_their_neighbours() {
        // 4 → 2: output 0 is centred at 1.0 with support 2: taps 0, 1, 2 at distances ¼, ¼, ¾
        // (in output pixels) weigh ¾, ¾, ¼ before normalisation, as PyTorch's kernel computes.
        let w = antialias_bilinear_weights(4, 2);
        let expect = [3.0 / 7.0, 3.0 / 7.0, 1.0 / 7.0, 0.0];
        for (a, b) in w[..4].iter().zip(expect) {
            assert!((a - b as f32).abs() < 1e-6, "{w:?}");
        }
    }
}
