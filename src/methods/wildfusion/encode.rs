//! Latents from images: a trained [`Autoencoder`] read from its model folder, the image it is
//! given for an analytic object, and the paper's interpolation (encode two images to their 2D
//! latents Z, blend Z, decode one triplane). The Views tab, `wildfusion-render --model` and the
//! demo trainer share these so that all three draw the same input.

use candle_core::{Device, Tensor};

use super::analytic::{self, AnalyticObject};
use super::{Autoencoder, AutoencoderConfig, OsgDecoder, P0, RenderOptions, Triplane, ViewCamera, WildFusionError};
use crate::core::manifest::Entry;

/// The manifest family of WildFusion-family autoencoders.
pub const FAMILY: &str = "wildfusion";

/// Loads the autoencoder a model folder describes (config from its manifest, weights checked
/// against the manifest's sha256 when it has one), on the CPU: the toy model needs no more.
pub fn load_model(entry: &Entry) -> Result<Autoencoder, WildFusionError> {
    let name = &entry.manifest.name;
    if entry.manifest.family != FAMILY {
        return Err(WildFusionError::Config(format!(
            "model {name} is of family {:?}, not {FAMILY}",
            entry.manifest.family
        )));
    }
    entry
        .verify()
        .map_err(|e| WildFusionError::Config(format!("model {name}: {e}")))?;
    let config: AutoencoderConfig = entry
        .manifest
        .config
        .clone()
        .try_into()
        .map_err(|e| WildFusionError::Config(format!("model {name}: its [config] is not an autoencoder's: {e}")))?;
    Autoencoder::load_file(&entry.weights_path(), &config, &Device::Cpu)
}

/// RGB `(H, W, 3)` row-major of `triplane` seen from `camera` at `size`², as the demo data is drawn
/// (deterministic samples, the renderer's default counts).
pub fn draw(
    triplane: &Triplane,
    decoder: &OsgDecoder,
    camera: &ViewCamera,
    size: usize,
) -> Result<Vec<f32>, WildFusionError> {
    let opts = RenderOptions {
        width: size,
        height: size,
        deterministic: true,
        ..RenderOptions::default()
    };
    Ok(super::render_view(triplane, decoder, camera, &opts, &mut |_| true)?.rgb)
}

/// `(H, W, 3)` interleaved pixels → planar `(3, H, W)` (what the encoder reads).
pub fn planar(hwc: &[f32]) -> Vec<f32> {
    let n = hwc.len() / 3;
    let mut out = vec![0f32; 3 * n];
    for (p, px) in hwc.chunks_exact(3).enumerate() {
        for (c, v) in px.iter().enumerate() {
            out[c * n + p] = *v;
        }
    }
    out
}

/// The image an autoencoder with `image_size` inputs is given for `object`: the analytic object
/// (scale 1, no tint) drawn from the input view P0, `(H, W, 3)` in `[0, 1]`.
pub fn object_image(object: AnalyticObject, image_size: usize) -> Result<Vec<f32>, WildFusionError> {
    let triplane = analytic::triplane(object, super::demo_train::ANALYTIC_RESOLUTION)?;
    draw(&triplane, &analytic::decoder()?, &P0, image_size)
}

/// The posterior mean Z `(1, Zc, h, w)` of one `(H, W, 3)` image.
pub fn encode_image(model: &Autoencoder, hwc: &[f32]) -> Result<Tensor, WildFusionError> {
    let s = model.config().image_size;
    if hwc.len() != s * s * 3 {
        return Err(WildFusionError::Shape(format!(
            "the encoder wants a {s}×{s} RGB image ({} values), got {}",
            s * s * 3,
            hwc.len()
        )));
    }
    let image = Tensor::from_vec(planar(hwc), (3, s, s), &Device::Cpu)?;
    model.encode_mean(&image)
}

/// The triplane of `(1 − t)·a + t·b` in Z (the paper interpolates its 2D latent, then decodes).
pub fn decode_blend(model: &Autoencoder, a: &Tensor, b: &Tensor, t: f32) -> Result<Triplane, WildFusionError> {
    let z = if t <= 0.0 {
        a.clone()
    } else if t >= 1.0 {
        b.clone()
    } else {
        ((a * (1.0 - t) as f64)? + (b * t as f64)?)?
    };
    model
        .decode(&z)?
        .pop()
        .ok_or_else(|| WildFusionError::Shape("the decoder returned no triplane".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ops::max_abs_diff;
    use crate::core::train::SeededParams;

    fn untrained(cfg: &AutoencoderConfig) -> Autoencoder {
        let params = SeededParams::new(3);
        Autoencoder::load(params.var_builder(candle_core::DType::F32, &Device::Cpu), cfg).unwrap()
    }

    #[test]
    fn planar_moves_each_channel_into_its_own_plane() {
        let hwc = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(planar(&hwc), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }

    #[test]
    fn the_blend_of_z_ends_at_each_latent_and_is_linear_between() {
        let cfg = super::super::demo_train::tiny_config();
        let model = untrained(&cfg);
        let a = encode_image(&model, &object_image(AnalyticObject::Sphere, cfg.image_size).unwrap()).unwrap();
        let b = encode_image(&model, &object_image(AnalyticObject::Torus, cfg.image_size).unwrap()).unwrap();
        assert!(max_abs_diff(&a, &b).unwrap() > 1e-4, "two objects, one latent");
        let at = |t| decode_blend(&model, &a, &b, t).unwrap().planes().clone();
        let only = |z: &Tensor| model.decode(z).unwrap().pop().unwrap().planes().clone();
        assert_eq!(max_abs_diff(&at(0.0), &only(&a)).unwrap(), 0.0);
        assert_eq!(max_abs_diff(&at(1.0), &only(&b)).unwrap(), 0.0);
        let mid = ((&a + &b).unwrap() * 0.5).unwrap();
        assert!(max_abs_diff(&at(0.5), &only(&mid)).unwrap() < 1e-5);
    }

    #[test]
    fn a_wrong_sized_image_is_refused_with_the_expected_size() {
        let cfg = super::super::demo_train::tiny_config();
        let model = untrained(&cfg);
        let e = encode_image(&model, &[0.5; 12]).unwrap_err().to_string();
        assert!(e.contains("32×32"), "{e}");
    }
}
