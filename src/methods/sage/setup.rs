//! What a search runs against, loaded once: the generator, the ensemble and the held-out judge,
//! with the names and sha256s the report records and the base rates a failure is measured
//! against. The CLI (`sage`) and the Failure search panel load it the same way.

use super::classifier::{Ensemble, ImageClassifier, load_classifier};
use super::error::{Result, SageError};
use super::generator::{Generator, SpriteGenerator};
use super::quality::conditional_accuracy;
use super::report::RunInfo;
use crate::core::manifest::{Entry, find_entry};
use candle_core::Device;
use serde_json::{Value, json};
use std::path::PathBuf;

/// The registry family of generators the search drives.
pub const GENERATOR_FAMILY: &str = "sage";
/// The registry family of the sprite classifiers (the relative-representation sprite models).
pub const CLASSIFIER_FAMILY: &str = "relreps";
/// Random draws per class behind a base rate.
const BASE_RATE_DRAWS: usize = 64;
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

    pub fn from_entry(entry: &Entry) -> Self {
        Self {
            name: entry.manifest.name.clone(),
            dir: entry.dir.clone(),
            sha256: entry.manifest.sha256.clone(),
        }
    }
}

/// Which models to load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetupSpec {
    pub generator: ModelRef,
    /// The ensemble (equal weights).
    pub classifiers: Vec<ModelRef>,
    /// The judge that never gives gradients.
    pub held_out: Option<ModelRef>,
    /// DDIM steps of the generator during the search.
    pub steps: usize,
}

/// The loaded models.
pub struct SageSetup {
    pub spec: SetupSpec,
    pub generator: SpriteGenerator,
    pub ensemble: Ensemble,
}

impl SageSetup {
    pub fn load(spec: SetupSpec, device: &Device) -> Result<Self> {
        if spec.classifiers.is_empty() {
            return Err(SageError::Invalid("the ensemble needs at least one classifier".into()));
        }
        let generator = SpriteGenerator::load(&spec.generator.dir, device)?.with_steps(spec.steps)?;
        let load = |m: &ModelRef| -> Result<Box<dyn ImageClassifier>> { load_classifier(&m.dir, device) };
        let members = spec
            .classifiers
            .iter()
            .map(|m| Ok((load(m)?, 1.0)))
            .collect::<Result<Vec<_>>>()?;
        let held_out = spec.held_out.as_ref().map(load).transpose()?;
        Ok(Self {
            spec,
            generator,
            ensemble: Ensemble { members, held_out },
        })
    }

    /// Generator, ensemble and judge as the report records them.
    pub fn models_json(&self) -> Value {
        let g = &self.generator;
        json!({
            "generator": {"name": g.name(), "sha256": g.sha256(), "sampler_steps": g.steps()},
            "ensemble": self.spec.classifiers.iter()
                .map(|c| json!({"name": c.name, "sha256": c.sha256, "weight": 1.0}))
                .collect::<Vec<_>>(),
            "held_out": self.spec.held_out.as_ref().map(|c| json!({"name": c.name, "sha256": c.sha256})),
        })
    }

    /// Every classifier's names: the members, then the judge.
    pub fn classifier_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.spec.classifiers.iter().map(|c| c.name.clone()).collect();
        names.extend(self.spec.held_out.iter().map(|c| c.name.clone()));
        names
    }

    /// Per classifier (members, then the judge), the share of plain random draws it labels as
    /// the conditioned class.
    pub fn base_rates(&self) -> Result<Value> {
        let mut all: Vec<&dyn ImageClassifier> = self.ensemble.members.iter().map(|(c, _)| c.as_ref()).collect();
        if let Some(h) = &self.ensemble.held_out {
            all.push(h.as_ref());
        }
        let rates = conditional_accuracy(&self.generator, &all, BASE_RATE_DRAWS, BASE_RATE_SEED)
            .map_err(SageError::compute("base rates"))?;
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
