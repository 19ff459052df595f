//! Image classifiers as SAGE's surrogate loss, and the ensemble that combines them.
//!
//! A classifier maps images `[N, 3, H, W]` in [0, 1] to class logits `[N, K]`, differentiably,
//! so the search can push gradients through it. The demo's are the relative-representation sprite
//! models' encoders + shape heads ([`SpriteAeClassifier`]): `relreps-sprites-a` and `-b` in the
//! ensemble, `relreps-sprites-wide` (another width, another seed) as the held-out judge. They are
//! independently trained but of one architecture family, so the judge shares more with the
//! ensemble than an ideal one would. For photographs (Stable Diffusion), a user's torchvision
//! ResNet serves ([`super::resnet`]), aligned to the searched classes by label ([`aligned`]).

use super::error::{Result, SageError};
use crate::core::manifest::{Entry, MANIFEST_FILE, Manifest, Origin};
use crate::methods::relreps::demo::SpriteModel;
use candle_core::{D, Device, Tensor};
use std::path::Path;

pub trait ImageClassifier: Send + Sync {
    /// The model's name (its manifest's name), shown next to its scores.
    fn name(&self) -> &str;
    /// The names of its `K` outputs, in order.
    fn labels(&self) -> Vec<String>;
    /// Class logits `[N, K]` of images `[N, 3, H, W]` in [0, 1] (the sprite classifiers take
    /// 64×64; a torchvision ResNet resizes whatever it gets).
    fn logits(&self, images: &Tensor) -> candle_core::Result<Tensor>;
}

/// A sprite autoencoder's encoder followed by its shape head.
pub struct SpriteAeClassifier(pub SpriteModel);

impl ImageClassifier for SpriteAeClassifier {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn labels(&self) -> Vec<String> {
        crate::methods::relreps::sprite_ae::class_names()
            .into_iter()
            .map(str::to_string)
            .collect()
    }
    fn logits(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        self.0.model.classify(&self.0.model.encode(images)?)
    }
}

/// Reads and verifies a `family = "sage"` model folder of the given architecture.
pub(crate) fn open_entry(dir: &Path, architecture: &str) -> Result<Entry> {
    let path = dir.join(MANIFEST_FILE);
    let manifest = Manifest::read(&path)?;
    let bad = |problem: String| SageError::model(&path, problem);
    if manifest.family != "sage" {
        return Err(bad(format!("family is {:?}, not \"sage\"", manifest.family)));
    }
    let arch = manifest.config.get("architecture").and_then(toml::Value::as_str);
    if arch != Some(architecture) {
        return Err(bad(format!("architecture is {arch:?}, expected {architecture:?}")));
    }
    let entry = Entry {
        manifest,
        dir: dir.to_path_buf(),
        origin: Origin::User,
    };
    entry.verify()?;
    Ok(entry)
}

pub(crate) fn config_usize(entry: &Entry, key: &str) -> Result<usize> {
    entry
        .manifest
        .config
        .get(key)
        .and_then(toml::Value::as_integer)
        .filter(|v| *v > 0)
        .map(|v| v as usize)
        .ok_or_else(|| {
            SageError::model(
                &entry.dir.join(MANIFEST_FILE),
                format!("[config] needs a positive integer `{key}`"),
            )
        })
}

/// Loads a classifier folder: a torchvision ResNet folder ([`super::resnet`]: weights and
/// `labels.txt`) or a relative-representation sprite model (encoder + shape head).
pub fn load_classifier(dir: &Path, device: &Device) -> Result<Box<dyn ImageClassifier>> {
    if super::resnet::is_resnet_folder(dir) {
        return Ok(Box::new(super::resnet::TorchvisionResNet::load(dir, device)?));
    }
    let model =
        SpriteModel::load(dir, device).map_err(|e| SageError::model(&dir.join(MANIFEST_FILE), e.to_string()))?;
    Ok(Box::new(SpriteAeClassifier(model)))
}

/// Whether a classifier label names `class`: equal ignoring case, or one of its comma-separated
/// synonyms is (ImageNet's "tabby, tabby cat" names "tabby cat").
fn label_names(label: &str, class: &str) -> bool {
    let class = class.trim();
    label.eq_ignore_ascii_case(class) || label.split(',').any(|s| s.trim().eq_ignore_ascii_case(class))
}

/// A classifier's logits of the generator's classes only, in the generator's order: what the
/// search's class indices need when a classifier knows more classes (ImageNet's 1000) or orders
/// them otherwise. Probabilities are then over those classes.
struct LabelSubset {
    inner: Box<dyn ImageClassifier>,
    classes: Vec<String>,
    indices: Tensor,
}

impl ImageClassifier for LabelSubset {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn labels(&self) -> Vec<String> {
        self.classes.clone()
    }
    fn logits(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        let logits = self.inner.logits(images)?;
        logits.index_select(&self.indices.to_device(logits.device())?, 1)
    }
}

/// `classifier` answering for exactly `classes` (the generator's, in its order): itself when its
/// labels are those, else its outputs of those classes; a class it has no label for is refused
/// by name.
pub fn aligned(classifier: Box<dyn ImageClassifier>, classes: &[String]) -> Result<Box<dyn ImageClassifier>> {
    let labels = classifier.labels();
    if labels.len() == classes.len() && labels.iter().zip(classes).all(|(l, c)| label_names(l, c)) {
        return Ok(classifier);
    }
    let indices = classes
        .iter()
        .map(|c| {
            labels
                .iter()
                .position(|l| label_names(l, c))
                .map(|i| i as u32)
                .ok_or_else(|| {
                    SageError::Invalid(format!(
                        "classifier {} has no label for the class {c:?} (it knows {} labels{})",
                        classifier.name(),
                        labels.len(),
                        if labels.len() <= 12 {
                            format!(": {}", labels.join("; "))
                        } else {
                            String::new()
                        }
                    ))
                })
        })
        .collect::<Result<Vec<u32>>>()?;
    let n = indices.len();
    Ok(Box::new(LabelSubset {
        inner: classifier,
        classes: classes.to_vec(),
        indices: Tensor::from_vec(indices, n, &Device::Cpu).map_err(SageError::compute("label indices"))?,
    }))
}

/// The classifiers whose gradients drive the search, with weights, and one held-out judge that
/// never contributes a gradient (SAGE's guard against fooling the surrogate instead of finding a
/// real generator failure).
pub struct Ensemble {
    pub members: Vec<(Box<dyn ImageClassifier>, f64)>,
    pub held_out: Option<Box<dyn ImageClassifier>>,
}

/// Every classifier's class probabilities for a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    /// `[member][sample][class]`.
    pub members: Vec<Vec<Vec<f32>>>,
    /// `[sample][class]` of the held-out classifier, when there is one.
    pub held_out: Option<Vec<Vec<f32>>>,
}

impl Ensemble {
    /// Probabilities of every member and of the held-out classifier (no gradients kept).
    pub fn scores(&self, images: &Tensor) -> candle_core::Result<Scores> {
        let images = images.detach();
        let probs = |c: &dyn ImageClassifier| -> candle_core::Result<Vec<Vec<f32>>> {
            candle_nn::ops::softmax(&c.logits(&images)?, D::Minus1)?.to_vec2::<f32>()
        };
        Ok(Scores {
            members: self
                .members
                .iter()
                .map(|(c, _)| probs(c.as_ref()))
                .collect::<candle_core::Result<_>>()?,
            held_out: self.held_out.as_ref().map(|c| probs(c.as_ref())).transpose()?,
        })
    }
}
