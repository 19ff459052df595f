//! What a search runs against, loaded once: the generator, the ensemble and the held-out judge,
//! with the names and checksums the report records and the base rates a failure is measured
//! against. The CLI (`sage`) and the Failure search panel load it the same way.
//!
//! A generator is a registered `sage` model (the demo's) or a user's Stable Diffusion folder; a
//! classifier is a registered sprite classifier or a user's torchvision ResNet folder. Every
//! classifier is aligned to the generator's classes by label ([`aligned`]).

use super::classifier::{Ensemble, ImageClassifier, aligned, load_classifier};
use super::error::{Result, SageError};
use super::generator::{Generator, SpriteGenerator};
use super::quality::conditional_accuracy;
use super::report::RunInfo;
use super::resnet::{TorchvisionResNet, is_resnet_folder};
use super::stable_diffusion::{SdOptions, StableDiffusionGenerator, is_stable_diffusion_folder};
use crate::core::jobs::JobContext;
use crate::core::manifest::{Entry, find_entry};
use candle_core::Device;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// The registry family of generators the search drives.
pub const GENERATOR_FAMILY: &str = "sage";
/// The registry family of the sprite classifiers (the relative-representation sprite models).
pub const CLASSIFIER_FAMILY: &str = "relreps";
/// Random draws per class behind a base rate: the demo's generator is cheap; a Stable Diffusion
/// image costs a full sampler run, so its base rate rests on a few.
pub const BASE_RATE_DRAWS: usize = 64;
pub const SD_BASE_RATE_DRAWS: usize = 4;
const BASE_RATE_SEED: u64 = 11;

/// A model by name, folder and checksum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRef {
    pub name: String,
    pub dir: PathBuf,
    pub sha256: String,
}

impl ModelRef {
    /// A folder or a registered model's name (`core::manifest::find_entry`), of `family`.
    pub fn find(spec: &str, family: &str) -> Result<Self> {
        let entry = find_entry(spec, family).map_err(SageError::Invalid)?;
        Ok(Self::from_entry(&entry))
    }

    /// A classifier: a torchvision ResNet folder ([`Self::classifier_folder`]) or, as
    /// [`Self::find`], a registered sprite classifier.
    pub fn find_classifier(spec: &str) -> Result<Self> {
        let dir = Path::new(spec);
        if dir.is_dir() && is_resnet_folder(dir) {
            return Ok(Self::classifier_folder(dir));
        }
        Self::find(spec, CLASSIFIER_FAMILY)
    }

    /// A torchvision ResNet folder, named after the folder. Its checksum is left empty here
    /// (hashing a large weights file has no place on a UI thread); [`SageSetup::load`] fills it.
    pub fn classifier_folder(dir: &Path) -> Self {
        Self {
            name: folder_name(dir),
            dir: dir.to_path_buf(),
            sha256: String::new(),
        }
    }

    pub fn from_entry(entry: &Entry) -> Self {
        Self {
            name: entry.manifest.name.clone(),
            dir: entry.dir.clone(),
            sha256: entry.manifest.sha256.clone(),
        }
    }
}

fn folder_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

/// The generator to search.
#[derive(Clone, Debug, PartialEq)]
pub enum GeneratorSpec {
    /// A registered or folder `family = "sage"` model (the demo's latent prior + sprite renderer).
    Model(ModelRef),
    /// A user's Stable Diffusion folder (diffusers layout) and how to sample it; `options.steps`
    /// is replaced by [`SetupSpec::steps`].
    StableDiffusion { dir: PathBuf, options: SdOptions },
}

impl GeneratorSpec {
    /// A Stable Diffusion folder (with `sd`'s settings) or a `sage` model's folder or name.
    pub fn find(spec: &str, sd: &SdOptions) -> Result<Self> {
        let dir = Path::new(spec);
        if dir.is_dir() && is_stable_diffusion_folder(dir) {
            return Ok(Self::StableDiffusion {
                dir: dir.to_path_buf(),
                options: sd.clone(),
            });
        }
        Ok(Self::Model(ModelRef::find(spec, GENERATOR_FAMILY)?))
    }

    pub fn name(&self) -> String {
        match self {
            Self::Model(m) => m.name.clone(),
            Self::StableDiffusion { dir, .. } => folder_name(dir),
        }
    }

    /// Random draws per class behind the base rates (see [`BASE_RATE_DRAWS`]).
    pub fn base_rate_draws(&self) -> usize {
        match self {
            Self::Model(_) => BASE_RATE_DRAWS,
            Self::StableDiffusion { .. } => SD_BASE_RATE_DRAWS,
        }
    }

    fn load(&self, steps: usize, device: &Device) -> Result<Box<dyn Generator>> {
        Ok(match self {
            Self::Model(m) => Box::new(SpriteGenerator::load(&m.dir, device)?.with_steps(steps)?),
            Self::StableDiffusion { dir, options } => Box::new(StableDiffusionGenerator::load(
                dir,
                &SdOptions {
                    steps,
                    ..options.clone()
                },
                device,
            )?),
        })
    }
}

/// Which models to load.
#[derive(Clone, Debug, PartialEq)]
pub struct SetupSpec {
    pub generator: GeneratorSpec,
    /// The ensemble (equal weights).
    pub classifiers: Vec<ModelRef>,
    /// The judge that never gives gradients.
    pub held_out: Option<ModelRef>,
    /// DDIM steps of the generator during the search.
    pub steps: usize,
}

/// The loaded models.
pub struct SageSetup {
    /// What was asked for (what a cache compares).
    pub requested: SetupSpec,
    /// The same with the checksums of classifier folders filled in (what the report records).
    pub spec: SetupSpec,
    pub generator: Box<dyn Generator>,
    pub ensemble: Ensemble,
}

impl SageSetup {
    pub fn load(requested: SetupSpec, device: &Device) -> Result<Self> {
        if requested.classifiers.is_empty() {
            return Err(SageError::Invalid("the ensemble needs at least one classifier".into()));
        }
        let mut spec = requested.clone();
        for m in spec.classifiers.iter_mut().chain(spec.held_out.as_mut()) {
            if m.sha256.is_empty() && is_resnet_folder(&m.dir) {
                m.sha256 = TorchvisionResNet::weights_sha256(&m.dir)?;
            }
        }
        let generator = spec.generator.load(spec.steps, device)?;
        let classes = generator.class_names();
        let load =
            |m: &ModelRef| -> Result<Box<dyn ImageClassifier>> { aligned(load_classifier(&m.dir, device)?, &classes) };
        let members = spec
            .classifiers
            .iter()
            .map(|m| Ok((load(m)?, 1.0)))
            .collect::<Result<Vec<_>>>()?;
        let held_out = spec.held_out.as_ref().map(load).transpose()?;
        Ok(Self {
            requested,
            spec,
            generator,
            ensemble: Ensemble { members, held_out },
        })
    }

    /// Generator, ensemble and judge as the report records them.
    pub fn models_json(&self) -> Value {
        json!({
            "generator": self.generator.provenance(),
            "ensemble": self.spec.classifiers.iter()
                .map(|c| json!({"name": c.name, "sha256": c.sha256, "weight": 1.0}))
                .collect::<Vec<_>>(),
            "held_out": self.spec.held_out.as_ref().map(|c| json!({"name": c.name, "sha256": c.sha256})),
            "base_rate_draws_per_class": self.spec.generator.base_rate_draws(),
        })
    }

    /// Every classifier's names: the members, then the judge.
    pub fn classifier_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.spec.classifiers.iter().map(|c| c.name.clone()).collect();
        names.extend(self.spec.held_out.iter().map(|c| c.name.clone()));
        names
    }

    /// Per classifier (members, then the judge), the share of plain random draws it labels as
    /// the conditioned class (cancellable through `ctx`, with progress).
    pub fn base_rates(&self, ctx: &JobContext) -> Result<Value> {
        let mut all: Vec<&dyn ImageClassifier> = self.ensemble.members.iter().map(|(c, _)| c.as_ref()).collect();
        if let Some(h) = &self.ensemble.held_out {
            all.push(h.as_ref());
        }
        let draws = self.spec.generator.base_rate_draws();
        let rates = conditional_accuracy(self.generator.as_ref(), &all, draws, BASE_RATE_SEED, ctx)?;
        Ok(all
            .iter()
            .zip(rates)
            .map(|(c, r)| (c.name().to_string(), json!(r)))
            .collect::<serde_json::Map<_, _>>()
            .into())
    }

    /// What the report says about this setup.
    pub fn run_info(&self, base_rates: Value) -> RunInfo {
        RunInfo {
            models: self.models_json(),
            class_names: self.generator.class_names(),
            base_rates,
        }
    }
}
