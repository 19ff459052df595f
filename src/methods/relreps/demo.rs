//! The sprite demo pair: encode a held-out sprite set with two demo models into aligned collections.
//!
//! A demo model is a folder with `model.toml` (family `relreps`, `[config]` of a
//! [`SpriteAeConfig`]) and its safetensors weights, as written by `latent-workbench train
//! relreps-sprites-a`. [`sprite_pair`] draws `count` sprites of a seed that no training stream uses,
//! encodes them with both models and returns two [`LatentCollection`]s holding the same samples in
//! the same order (ids `"0"`, `"1"`, …: sprite `i` of the seed), each labelled with the generative
//! factors (`shape` plus the continuous `scale`, `rotation`, `x`, `y`, `hue`). The factors come
//! back too, so a caller can re-render any input with [`sprites::render_rgb8`] instead of holding
//! thousands of images.

use super::collection::{LabelColumn, LatentCollection};
use super::error::{RelrepsError, Result};
use super::sprite_ae::{self, SpriteAe, SpriteAeConfig};
use crate::core::manifest::{Entry, MANIFEST_FILE, Manifest, Origin};
use crate::core::weights::{LoadOptions, build_model, load_checkpoint};
use crate::methods::demo_data::sprites::{self, Factors};
use candle_core::{D, DType, Device, Tensor};
use std::path::{Path, PathBuf};

/// Seed of the held-out sprites the demo encodes: the models' own held-out seed, which no
/// training stream draws from.
pub const HELDOUT_SEED: u64 = sprite_ae::EVAL_DATA_SEED;
/// Sprites per forward pass (bounds memory: 200 × 3 × 64² floats in, activations of width 16–24).
const CHUNK: usize = 200;
/// Floats per image in the networks' layout (planar RGB, 3 × 64 × 64).
pub const IMAGE_FLOATS: usize = 3 * sprites::SIZE * sprites::SIZE;
/// The label columns every demo collection carries, in order.
pub const LABEL_COLUMNS: [&str; 6] = ["shape", "scale", "rotation", "x", "y", "hue"];

/// A demo sprite model loaded from its folder.
pub struct SpriteModel {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub config: SpriteAeConfig,
    pub model: SpriteAe,
    device: Device,
}

impl SpriteModel {
    /// Loads `dir/model.toml` and its weights (sha256 checked when recorded; every tensor must
    /// be present with its shape, and nothing else in the file).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let manifest = Manifest::read(&dir.join(MANIFEST_FILE))?;
        let bad = |problem: String| RelrepsError::Model {
            path: dir.join(MANIFEST_FILE),
            problem,
        };
        if manifest.family != "relreps" {
            return Err(bad(format!(
                "family is {:?}; the sprite demo needs a `relreps` model",
                manifest.family
            )));
        }
        match manifest.config.get("architecture").and_then(toml::Value::as_str) {
            Some("sprite_ae") | None => {}
            Some(other) => return Err(bad(format!("architecture {other:?} is not a sprite autoencoder"))),
        }
        let config = SpriteAeConfig::from_toml(&manifest.config).map_err(bad)?;
        let entry = Entry {
            manifest,
            dir: dir.to_path_buf(),
            origin: Origin::User,
        };
        entry.verify()?;
        let checkpoint = load_checkpoint(&entry.weights_path(), &LoadOptions::default())?;
        let (model, _) = build_model(&checkpoint, DType::F32, device, true, |vb| SpriteAe::new(config, vb))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest: entry.manifest,
            config,
            model,
            device: device.clone(),
        })
    }

    /// The manifest's name (e.g. `relreps-sprites-a`).
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    pub fn latent_dim(&self) -> usize {
        self.config.latent_dim
    }

    /// Absolute latents of the sprites, `n × latent_dim`, row-major.
    pub fn encode(&self, factors: &[Factors]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(factors.len() * self.latent_dim());
        for chunk in factors.chunks(CHUNK) {
            let z = sprite_ae::batch(chunk, &self.device)
                .and_then(|(x, _)| self.model.encode(&x))
                .and_then(|z| z.flatten_all()?.to_vec1::<f32>())
                .map_err(self.err("encoding sprites"))?;
            out.extend(z);
        }
        Ok(out)
    }

    /// Images `n × 3·64·64` (planar RGB in (0, 1)) decoded from `n × latent_dim` latents.
    pub fn decode(&self, latents: &[f32], n: usize) -> Result<Vec<f32>> {
        let d = self.check_latents(latents, n)?;
        let mut out = Vec::with_capacity(n * IMAGE_FLOATS);
        for chunk in latents.chunks(CHUNK * d) {
            let rows = chunk.len() / d;
            let images = Tensor::from_slice(chunk, (rows, d), &self.device)
                .and_then(|z| self.model.decode(&z))
                .and_then(|x| x.flatten_all()?.to_vec1::<f32>())
                .map_err(self.err("decoding latents"))?;
            out.extend(images);
        }
        Ok(out)
    }

    /// The model's own shape classifier on `n × latent_dim` latents: predicted class indices.
    pub fn classify(&self, latents: &[f32], n: usize) -> Result<Vec<usize>> {
        let d = self.check_latents(latents, n)?;
        let mut out = Vec::with_capacity(n);
        for chunk in latents.chunks(CHUNK * d) {
            let rows = chunk.len() / d;
            let pred = Tensor::from_slice(chunk, (rows, d), &self.device)
                .and_then(|z| self.model.classify(&z)?.argmax(D::Minus1)?.to_vec1::<u32>())
                .map_err(self.err("classifying latents"))?;
            out.extend(pred.into_iter().map(|p| p as usize));
        }
        Ok(out)
    }

    fn check_latents(&self, latents: &[f32], n: usize) -> Result<usize> {
        let d = self.latent_dim();
        if latents.len() != n * d {
            return Err(RelrepsError::WidthMismatch {
                what: "the model's decoder and classifier",
                a: latents.len().checked_div(n).unwrap_or(0),
                b: d,
            });
        }
        Ok(d)
    }

    fn err(&self, step: &str) -> impl FnOnce(candle_core::Error) -> RelrepsError {
        RelrepsError::compute(format!("{step} with {}", self.dir.display()))
    }
}

/// Whether `path` is a model folder (holds a `model.toml`) rather than a latent file.
pub fn is_model_dir(path: &Path) -> bool {
    path.is_dir() && path.join(MANIFEST_FILE).is_file()
}

/// Two demo models' latents of the same held-out sprites.
pub struct SpritePair {
    /// Model A's absolute latents; ids `"0"..`, label columns [`LABEL_COLUMNS`].
    pub a: LatentCollection,
    /// Model B's, same ids, order and labels.
    pub b: LatentCollection,
    /// Row `i` of both collections is sprite `factors[i]` (= `Factors::sample(seed, i)`).
    pub factors: Vec<Factors>,
    pub seed: u64,
    pub model_a: SpriteModel,
    pub model_b: SpriteModel,
}

impl SpritePair {
    /// The input image of row `i`, 64 × 64 interleaved RGB8 (for thumbnails).
    pub fn thumbnail(&self, i: usize) -> Option<Vec<u8>> {
        self.factors.get(i).map(sprites::render_rgb8)
    }

    /// The input images of `rows` in the networks' layout (`rows.len() × 3·64·64`).
    pub fn images(&self, rows: &[usize]) -> Vec<f32> {
        let picked: Vec<Factors> = rows.iter().map(|&i| self.factors[i]).collect();
        sprites::batch_chw(&picked).0
    }
}

/// Loads both models and encodes sprites `0..count` of `seed` (use [`HELDOUT_SEED`]) with each.
pub fn sprite_pair(dir_a: &Path, dir_b: &Path, count: usize, seed: u64, device: &Device) -> Result<SpritePair> {
    if count < 2 {
        return Err(RelrepsError::Invalid(format!(
            "the sprite demo needs at least 2 sprites, asked for {count}"
        )));
    }
    let model_a = SpriteModel::load(dir_a, device)?;
    let model_b = SpriteModel::load(dir_b, device)?;
    let factors = sprite_factors(count, seed);
    let a = sprite_collection(&model_a, &factors)?;
    let b = sprite_collection(&model_b, &factors)?;
    Ok(SpritePair {
        a,
        b,
        factors,
        seed,
        model_a,
        model_b,
    })
}

/// Sprites `0..count` of `seed`.
pub fn sprite_factors(count: usize, seed: u64) -> Vec<Factors> {
    (0..count as u64).map(|i| Factors::sample(seed, i)).collect()
}

/// One model's latents of `factors` as a collection named after the model folder, ids `"0"..`,
/// labelled with the factors.
pub fn sprite_collection(model: &SpriteModel, factors: &[Factors]) -> Result<LatentCollection> {
    let values = model.encode(factors)?;
    let mut c = LatentCollection::new(
        model.dir.display().to_string(),
        factors.len(),
        model.latent_dim(),
        values,
        None,
    )?;
    for column in factor_columns(factors) {
        c.set_column(column)?;
    }
    Ok(c)
}

/// The factors as label columns ([`LABEL_COLUMNS`]): the shape's name and the continuous factors
/// printed with 4 decimals.
pub fn factor_columns(factors: &[Factors]) -> Vec<LabelColumn> {
    // The continuous factors after the shape, in LABEL_COLUMNS order.
    let continuous: [fn(&Factors) -> f32; 5] = [|f| f.scale, |f| f.rotation, |f| f.x, |f| f.y, |f| f.hue];
    let shape = factors.iter().map(|f| f.shape.name().to_string()).collect();
    std::iter::once(shape)
        .chain(
            continuous
                .iter()
                .map(|get| factors.iter().map(|f| format!("{:.4}", get(f))).collect()),
        )
        .zip(LABEL_COLUMNS)
        .map(|(values, name)| LabelColumn {
            name: name.into(),
            values,
        })
        .collect()
}

/// One image in the networks' layout (planar `3 × 64 × 64`, values in [0, 1]) as interleaved
/// RGB8, the layout of [`sprites::render_rgb8`] and of egui's `ColorImage::from_rgb`.
pub fn image_rgb8(planar: &[f32]) -> Vec<u8> {
    let plane = planar.len() / 3;
    (0..plane)
        .flat_map(|p| (0..3).map(move |c| (planar[c * plane + p].clamp(0.0, 1.0) * 255.0).round() as u8))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factor_columns_and_rgb8_layout() {
        let f = sprite_factors(3, 7);
        assert_eq!(f[2], Factors::sample(7, 2));
        let cols = factor_columns(&f);
        let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, LABEL_COLUMNS);
        assert_eq!(cols[0].values[1], f[1].shape.name());
        assert_eq!(cols[5].values[0], format!("{:.4}", f[0].hue));
        // Rendering planar then converting gives the interleaved renderer's bytes (±1 rounding).
        let mut planar = Vec::new();
        sprites::render_chw(&f[0], &mut planar);
        let ours = image_rgb8(&planar);
        let reference = sprites::render_rgb8(&f[0]);
        assert_eq!(ours.len(), reference.len());
        assert!(ours.iter().zip(&reference).all(|(a, b)| a.abs_diff(*b) <= 1));
    }

    #[test]
    fn missing_or_foreign_model_folders_are_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_model_dir(dir.path()));
        let err = SpriteModel::load(dir.path(), &Device::Cpu).err().unwrap().to_string();
        assert!(err.contains("model.toml"), "{err}");
        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            "name='x'\nfamily='wala'\nweights='w.safetensors'\n",
        )
        .unwrap();
        assert!(is_model_dir(dir.path()));
        let err = SpriteModel::load(dir.path(), &Device::Cpu).err().unwrap().to_string();
        assert!(err.contains("relreps") && err.contains("model.toml"), "{err}");
        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            "name='x'\nfamily='relreps'\nweights='w.safetensors'\n[config]\nwidth=4\n",
        )
        .unwrap();
        let err = SpriteModel::load(dir.path(), &Device::Cpu).err().unwrap().to_string();
        assert!(err.contains("config.latent_dim"), "{err}");
        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            "name='x'\nfamily='relreps'\nweights='w.safetensors'\n[config]\nwidth=4\nlatent_dim=8\nclasses=3\n",
        )
        .unwrap();
        let err = SpriteModel::load(dir.path(), &Device::Cpu).err().unwrap().to_string();
        assert!(err.contains("w.safetensors"), "{err}");
    }
}
