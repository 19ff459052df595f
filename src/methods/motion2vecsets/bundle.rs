//! One Motion2VecSets model as the workbench stores it: the four networks (shape and
//! deformation autoencoders, shape and deformation denoisers) in one safetensors file, keys
//! prefixed by the network (`shape_ae.`, `deform_ae.`, `shape_denoiser.`, `deform_denoiser.`)
//! followed by the reference's own key names, and their configurations in the manifest's
//! `[config]` table ([`BundleConfig`]). The official release is four `.pth` files instead; those
//! load network by network through [`super::load_autoencoder`] / [`super::load_denoiser`].

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::config::{AutoEncoderConfig, ConfigError, DenoiserConfig};
use super::pipeline::Models;
use super::{KlAutoEncoder, LatentDenoiser, M2vsError};
use crate::core::manifest::Entry;
use crate::core::weights::{LoadOptions, build_model, load_checkpoint};

/// The manifest family of these models.
pub const FAMILY: &str = "motion2vecsets";

/// Key prefixes of the four networks in the bundle's safetensors file (with the trailing dot).
pub const SHAPE_AE_PREFIX: &str = "shape_ae.";
pub const DEFORM_AE_PREFIX: &str = "deform_ae.";
pub const SHAPE_DENOISER_PREFIX: &str = "shape_denoiser.";
pub const DEFORM_DENOISER_PREFIX: &str = "deform_denoiser.";

/// The manifest's `[config]` table: the four networks' configurations (their serde forms) plus
/// the sequence length and point count the model was trained for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleConfig {
    pub shape_ae: AutoEncoderConfig,
    pub deform_ae: AutoEncoderConfig,
    pub shape_denoiser: DenoiserConfig,
    pub deform_denoiser: DenoiserConfig,
    /// Frames per training sequence (frame 1 plus T − 1 deformations); the deformation
    /// denoiser's temporal attention accepts any T at inference.
    pub frames: usize,
    /// Observed points per frame (the denoisers' `cond_num_inputs`).
    pub points: usize,
}

impl BundleConfig {
    /// Parses and checks a manifest's `[config]` table.
    pub fn from_table(t: &toml::Table) -> Result<Self, M2vsError> {
        let cfg: Self = toml::Value::Table(t.clone())
            .try_into()
            .map_err(|e: toml::de::Error| M2vsError::Config(ConfigError::Invalid(format!("[config]: {e}"))))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The `[config]` table (round-trips through [`BundleConfig::from_table`]).
    pub fn to_table(&self) -> toml::Table {
        // Plain structs of numbers, booleans and a unit enum always serialise.
        toml::Table::try_from(self).unwrap_or_default()
    }

    /// Every network's own checks, the roles, and `points` matching both denoisers.
    pub fn validate(&self) -> Result<(), M2vsError> {
        self.shape_ae.validate()?;
        self.deform_ae.validate()?;
        self.shape_denoiser.validate()?;
        self.deform_denoiser.validate()?;
        let bad = |why: String| Err(M2vsError::Config(ConfigError::Invalid(why)));
        if self.shape_ae.deform || !self.deform_ae.deform {
            return bad("`shape_ae` must have deform = false and `deform_ae` deform = true".into());
        }
        if self.shape_denoiser.is_deform || !self.deform_denoiser.is_deform {
            return bad("`shape_denoiser` must have is_deform = false and `deform_denoiser` is_deform = true".into());
        }
        if self.frames == 0 || self.points == 0 {
            return bad("`frames` and `points` must be positive".into());
        }
        for (name, d) in [
            ("shape_denoiser", &self.shape_denoiser),
            ("deform_denoiser", &self.deform_denoiser),
        ] {
            if d.cond_num_inputs != self.points {
                return bad(format!(
                    "`{name}.cond_num_inputs` = {} differs from `points` = {}",
                    d.cond_num_inputs, self.points
                ));
            }
        }
        Ok(())
    }
}

/// The four networks of one model, owned.
pub struct M2vsBundle {
    pub shape_ae: KlAutoEncoder,
    pub deform_ae: KlAutoEncoder,
    pub shape_denoiser: LatentDenoiser,
    pub deform_denoiser: LatentDenoiser,
    pub device: Device,
    config: BundleConfig,
}

impl std::fmt::Debug for M2vsBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("M2vsBundle")
            .field("config", &self.config)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// The four networks from one builder, each under its prefix.
fn build(
    config: &BundleConfig,
    vb: &VarBuilder,
) -> candle_core::Result<(KlAutoEncoder, KlAutoEncoder, LatentDenoiser, LatentDenoiser)> {
    let pp = |p: &str| vb.pp(p.trim_end_matches('.'));
    Ok((
        KlAutoEncoder::load(pp(SHAPE_AE_PREFIX), &config.shape_ae)?,
        KlAutoEncoder::load(pp(DEFORM_AE_PREFIX), &config.deform_ae)?,
        LatentDenoiser::load(pp(SHAPE_DENOISER_PREFIX), &config.shape_denoiser)?,
        LatentDenoiser::load(pp(DEFORM_DENOISER_PREFIX), &config.deform_denoiser)?,
    ))
}

impl M2vsBundle {
    /// The networks from one safetensors (or torch) file with prefixed keys, strictly: a missing,
    /// misshapen or unused tensor is an error naming the file and the keys.
    pub fn load(config: &BundleConfig, weights: &Path, device: &Device) -> Result<Self, M2vsError> {
        config.validate()?;
        let opts = LoadOptions {
            strip_prefixes: Vec::new(),
            ..LoadOptions::default()
        };
        let ckpt = load_checkpoint(weights, &opts)?;
        let ((shape_ae, deform_ae, shape_denoiser, deform_denoiser), _) =
            build_model(&ckpt, DType::F32, device, true, |vb| build(config, &vb))?;
        Self::assemble(config, shape_ae, deform_ae, shape_denoiser, deform_denoiser, device)
    }

    /// The networks from a builder at the file's root (`vb.pp(prefix)` per network): what
    /// [`M2vsBundle::load`] uses, and what training builds its parameters with.
    pub fn from_var_builder(config: &BundleConfig, vb: VarBuilder, device: &Device) -> Result<Self, M2vsError> {
        config.validate()?;
        let (shape_ae, deform_ae, shape_denoiser, deform_denoiser) = build(config, &vb)?;
        Self::assemble(config, shape_ae, deform_ae, shape_denoiser, deform_denoiser, device)
    }

    fn assemble(
        config: &BundleConfig,
        shape_ae: KlAutoEncoder,
        deform_ae: KlAutoEncoder,
        shape_denoiser: LatentDenoiser,
        deform_denoiser: LatentDenoiser,
        device: &Device,
    ) -> Result<Self, M2vsError> {
        let bundle = Self {
            shape_ae,
            deform_ae,
            shape_denoiser,
            deform_denoiser,
            device: device.clone(),
            config: config.clone(),
        };
        bundle.models().validate()?;
        Ok(bundle)
    }

    /// The borrowed form the pipeline takes (checked to fit together when the bundle was made).
    pub fn models(&self) -> Models<'_> {
        Models {
            shape_ae: &self.shape_ae,
            deform_ae: &self.deform_ae,
            shape_denoiser: &self.shape_denoiser,
            deform_denoiser: &self.deform_denoiser,
            device: self.device.clone(),
        }
    }

    pub fn config(&self) -> &BundleConfig {
        &self.config
    }

    /// A registered model: its manifest's family and `[config]` checked, its weights' sha256
    /// verified, then loaded.
    pub fn from_entry(entry: &Entry, device: &Device) -> Result<Self, M2vsError> {
        let name = &entry.manifest.name;
        if entry.manifest.family != FAMILY {
            return Err(M2vsError::Input(format!(
                "model {name} is of family {:?}, not {FAMILY}",
                entry.manifest.family
            )));
        }
        entry
            .verify()
            .map_err(|e| M2vsError::Input(format!("model {name}: {e}")))?;
        let config = BundleConfig::from_table(&entry.manifest.config)?;
        Self::load(&config, &entry.weights_path(), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::train::{SeededParams, encode_tensors};
    use crate::methods::motion2vecsets::Observation;

    fn tiny() -> BundleConfig {
        BundleConfig {
            shape_ae: AutoEncoderConfig::tiny_shape(),
            deform_ae: AutoEncoderConfig::tiny_deform(),
            shape_denoiser: DenoiserConfig::tiny_shape(),
            deform_denoiser: DenoiserConfig::tiny_deform(Observation::Paired),
            frames: 3,
            points: 12,
        }
    }

    fn write_random(cfg: &BundleConfig, dir: &Path) -> std::path::PathBuf {
        let params = SeededParams::new(3);
        M2vsBundle::from_var_builder(cfg, params.var_builder(DType::F32, &Device::Cpu), &Device::Cpu).unwrap();
        let bytes = encode_tensors(&params.tensors(), &Default::default()).unwrap();
        let path = dir.join("model.safetensors");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn config_table_round_trips() {
        let cfg = tiny();
        let t = cfg.to_table();
        assert!(t.contains_key("shape_ae") && t.contains_key("deform_denoiser"));
        assert_eq!(BundleConfig::from_table(&t).unwrap(), cfg);
        let text = toml::to_string(&t).unwrap();
        let back: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(BundleConfig::from_table(&back).unwrap(), cfg);
        let mut broken = t.clone();
        broken.remove("deform_ae");
        assert!(matches!(BundleConfig::from_table(&broken), Err(M2vsError::Config(_))));
        let mut wrong = cfg.clone();
        wrong.points = 13;
        assert!(BundleConfig::from_table(&wrong.to_table()).is_err());
    }

    #[test]
    fn saved_weights_load_and_fit_together() {
        let cfg = tiny();
        let dir = tempfile::tempdir().unwrap();
        let path = write_random(&cfg, dir.path());
        let bundle = M2vsBundle::load(&cfg, &path, &Device::Cpu).unwrap();
        bundle.models().validate().unwrap();
        assert_eq!(bundle.config(), &cfg);

        // A bundle missing one network's tensor names the file and the key.
        let ck = load_checkpoint(&path, &LoadOptions::default()).unwrap();
        let kept: Vec<_> = ck
            .tensors
            .into_iter()
            .filter(|(k, _)| k != "deform_ae.to_outputs.weight")
            .collect();
        let cut = dir.path().join("cut.safetensors");
        std::fs::write(&cut, encode_tensors(&kept, &Default::default()).unwrap()).unwrap();
        let err = M2vsBundle::load(&cfg, &cut, &Device::Cpu).unwrap_err().to_string();
        assert!(
            err.contains("deform_ae.to_outputs.weight") && err.contains("cut.safetensors"),
            "{err}"
        );
        // The wrong configuration for the file is an error, not a panic.
        let mut other = cfg.clone();
        other.shape_ae.depth = 3;
        assert!(M2vsBundle::load(&other, &path, &Device::Cpu).is_err());
        assert!(M2vsBundle::load(&cfg, &dir.path().join("absent.safetensors"), &Device::Cpu).is_err());
    }
}
