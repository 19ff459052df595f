//! A complete LDAE (autoencoder, semantic encoder, shift decoder, semantic statistics) loaded from a
//! model folder or the published files, with encode, invert and decode.
//!
//! Two ways in, one code path:
//! - [`LdaeModel::from_files`]: the published `autoencoderkl.pth`, `encoder.pth`, `decoder.pth` and the
//!   optional `semantic_mean.pt` / `semantic_std.pt` (bare tensors), each read by `core::weights`.
//! - [`LdaeModel::from_dir`]: a model folder (`model.toml` + one `model.safetensors` whose keys are the
//!   official keys of each published file under a prefix: `autoencoderkl.`, `encoder.`, `decoder.`,
//!   plus `semantic_mean` / `semantic_std`). Each part is selected with [`LoadOptions::select_prefix`]
//!   and then built exactly as the published file is.
//!
//! Tensor layout: LDAE's networks take `(B, 1, X, Y, Z)` in NIfTI voxel order (nibabel + MONAI), Z
//! fastest; a [`Volume`] is x-fastest, so [`volume_to_tensor`] transposes. The semantic encoder takes the
//! axial permutation `(B, 1, Z, X, Y)` (LDAE's data module; `shared/research/ldae.md` §2).
//!
//! **Encoding uses the autoencoder's posterior mean** μ (not a sample as upstream's
//! `encode_stage_2_inputs`), times LDAE's fixed 0.8730: deterministic, and what the paper's
//! reconstructions use.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::autoencoder::{AutoencoderError, AutoencoderKL, from_diffusion_space, to_diffusion_space};
use super::config::AutoencoderKlConfig;
use super::preprocess::{PreprocessError, Preprocessing};
use super::semantic_encoder::{SemanticEncoder, SemanticEncoderConfig, SemanticEncoderError};
use super::unet::{ShiftUNet, UNetError};
use super::unet_config::UNetConfig;
use crate::core::diffusion::{Cancelled, Ddim, DdimOptions, DiffusionError, End, Schedule, Shift, ldae_timesteps};
use crate::core::jobs::JobError;
use crate::core::manifest::{MANIFEST_FILE, Manifest, ManifestError};
use crate::core::volume::{Volume, VolumeError};
use crate::core::weights::{Checkpoint, LoadOptions, WeightsError, load_checkpoint};

/// DDIM steps for interactive use (LDAE README: encoded-z_T reconstruction SSIM 0.960 at 20 steps).
pub const DEFAULT_STEPS: usize = 20;
/// DDIM steps of the paper's test, interpolation and manipulation runs.
pub const PAPER_STEPS: usize = 100;
/// Key prefixes of the parts inside a model folder's single safetensors file.
pub const AUTOENCODER_PREFIX: &str = "autoencoderkl.";
pub const ENCODER_PREFIX: &str = "encoder.";
pub const DECODER_PREFIX: &str = "decoder.";
/// Keys of the semantic statistics inside a model folder's safetensors file.
pub const SEMANTIC_MEAN_KEY: &str = "semantic_mean";
pub const SEMANTIC_STD_KEY: &str = "semantic_std";

/// The published file names ([`LdaeFiles::in_dir`]).
pub const OFFICIAL_FILES: [&str; 5] = [
    "autoencoderkl.pth",
    "encoder.pth",
    "decoder.pth",
    "semantic_mean.pt",
    "semantic_std.pt",
];

#[derive(Debug, Error)]
pub enum LdaeError {
    #[error("LDAE config: {0}")]
    Config(String),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    #[error("LDAE: {0}")]
    Input(String),
    #[error("cancelled")]
    Cancelled,
    #[error("LDAE: {0}")]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, LdaeError>;

impl From<Cancelled> for LdaeError {
    fn from(_: Cancelled) -> Self {
        LdaeError::Cancelled
    }
}

impl From<DiffusionError> for LdaeError {
    fn from(e: DiffusionError) -> Self {
        match e {
            DiffusionError::Cancelled => LdaeError::Cancelled,
            DiffusionError::Invalid(m) => LdaeError::Input(m),
            DiffusionError::Candle(e) => LdaeError::Candle(e),
        }
    }
}

impl From<AutoencoderError> for LdaeError {
    fn from(e: AutoencoderError) -> Self {
        match e {
            AutoencoderError::Config(c) => LdaeError::Config(c.to_string()),
            AutoencoderError::Weights(w) => LdaeError::Weights(w),
        }
    }
}

impl From<SemanticEncoderError> for LdaeError {
    fn from(e: SemanticEncoderError) -> Self {
        match e {
            SemanticEncoderError::Config(c) => LdaeError::Config(c),
            SemanticEncoderError::Weights(w) => LdaeError::Weights(w),
        }
    }
}

impl From<UNetError> for LdaeError {
    fn from(e: UNetError) -> Self {
        match e {
            UNetError::Config(c) => LdaeError::Config(c.to_string()),
            UNetError::Weights(w) => LdaeError::Weights(w),
        }
    }
}

impl From<VolumeError> for LdaeError {
    fn from(e: VolumeError) -> Self {
        LdaeError::Input(e.to_string())
    }
}

impl From<LdaeError> for JobError {
    fn from(e: LdaeError) -> Self {
        match e {
            LdaeError::Cancelled => JobError::Cancelled,
            other => JobError::Failed(other.to_string()),
        }
    }
}

/// Progress callback of the long operations: `(done, total)`; returning `Err(Cancelled)` stops before the
/// next network call (`core::diffusion::job_progress` adapts a `JobContext`).
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize) -> std::result::Result<(), Cancelled>;

fn default_timesteps() -> usize {
    1000
}

fn default_betas() -> String {
    "linear".into()
}

fn default_x0_clip() -> f32 {
    1.0
}

/// The `[config]` table of an LDAE `model.toml`: the three networks under upstream's argument names, the
/// diffusion schedule, the model grid and DDIM's x̂₀ clamp bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LdaeConfig {
    /// `vae_args` (MONAI `AutoencoderKL`).
    pub aekl: AutoencoderKlConfig,
    /// `enc_args` (2.5D ConvNeXt semantic encoder).
    pub encoder: SemanticEncoderConfig,
    /// `unet_args` (PDAE UNet / ShiftUNet; `latent_dim` = `encoder.emb_chans`).
    pub unet: UNetConfig,
    /// `timesteps_args.timesteps`.
    #[serde(default = "default_timesteps")]
    pub timesteps: usize,
    /// `timesteps_args.betas_type` (improved-diffusion names: "linear" = 1e-4 → 0.02 at T = 1000).
    #[serde(default = "default_betas")]
    pub betas: String,
    /// Isotropic voxel size of the model grid (mm).
    pub spacing_mm: f32,
    /// Model grid (x, y, z) after pad/crop.
    pub shape: [usize; 3],
    /// Bound c of DDIM's x̂₀ clamp [−c, c]. Upstream clamps to [−1, 1], which suits latents that
    /// 0.8730 keeps inside it; a model trained on latents of another scale (the demo's are of unit
    /// variance) records the bound that plays the same role for them.
    #[serde(default = "default_x0_clip")]
    pub x0_clip: f32,
}

impl LdaeConfig {
    /// The published LDAE: `aekl.yaml`, `enc_args` (ConvNeXt-Small, 768), `ldae_repr_learn.yaml`
    /// `unet_args`, linear β over T = 1000, 1.5 mm, 128×160×128.
    pub fn official() -> Self {
        Self {
            aekl: AutoencoderKlConfig::ldae(),
            encoder: SemanticEncoderConfig::default(),
            unet: UNetConfig::default(),
            timesteps: 1000,
            betas: "linear".into(),
            spacing_mm: 1.5,
            shape: [128, 160, 128],
            x0_clip: default_x0_clip(),
        }
    }

    /// Every network config valid, and the grid compatible with them.
    pub fn validate(&self) -> Result<()> {
        self.aekl.validate().map_err(|e| LdaeError::Config(e.to_string()))?;
        self.encoder.validate()?;
        self.unet.validate().map_err(|e| LdaeError::Config(e.to_string()))?;
        if self.timesteps < 2 {
            return Err(LdaeError::Config(format!(
                "timesteps must be at least 2, got {}",
                self.timesteps
            )));
        }
        Schedule::named(&self.betas, self.timesteps).map_err(|e| LdaeError::Config(e.to_string()))?;
        if !(self.spacing_mm.is_finite() && self.spacing_mm > 0.0) {
            return Err(LdaeError::Config(format!(
                "spacing_mm must be positive, got {}",
                self.spacing_mm
            )));
        }
        if !(self.x0_clip.is_finite() && self.x0_clip > 0.0) {
            return Err(LdaeError::Config(format!(
                "x0_clip must be positive, got {}",
                self.x0_clip
            )));
        }
        let f = self.aekl.downsample_factor();
        if self.shape.iter().any(|&n| n == 0 || !n.is_multiple_of(f)) {
            return Err(LdaeError::Config(format!(
                "the grid {:?} must be a positive multiple of the autoencoder's factor {f} on every axis",
                self.shape
            )));
        }
        if self.shape[2] > self.encoder.seq_len {
            return Err(LdaeError::Config(format!(
                "the grid has {} axial slices but the semantic encoder accepts at most seq_len = {}",
                self.shape[2], self.encoder.seq_len
            )));
        }
        if self.unet.input_channel != self.aekl.latent_channels {
            return Err(LdaeError::Config(format!(
                "the UNet takes {} channels but the autoencoder's latent has {}",
                self.unet.input_channel, self.aekl.latent_channels
            )));
        }
        Ok(())
    }

    /// LDAE's DDIM (η 0, ε recomputed, the shift from the denoiser) with this model's x̂₀ clamp.
    pub fn ddim_options(&self) -> DdimOptions<'static> {
        let c = self.x0_clip as f64;
        DdimOptions {
            clip: Some((-c, c)),
            ..DdimOptions::ldae(Shift::FromDenoiser)
        }
    }

    /// The preprocessing onto this model's grid.
    pub fn preprocessing(&self) -> Preprocessing {
        Preprocessing {
            spacing_mm: self.spacing_mm,
            shape: self.shape,
            minmax: true,
        }
    }

    /// Shape of a diffusion latent `(C, X/f, Y/f, Z/f)`.
    pub fn latent_shape(&self) -> [usize; 4] {
        let f = self.aekl.downsample_factor();
        [
            self.aekl.latent_channels,
            self.shape[0] / f,
            self.shape[1] / f,
            self.shape[2] / f,
        ]
    }

    /// The DDIM schedule of `steps` steps: the training schedule respaced with LDAE's "ddimS" rule.
    pub fn schedule(&self, steps: usize) -> Result<Schedule> {
        if steps == 0 || steps >= self.timesteps {
            return Err(LdaeError::Input(format!(
                "DDIM steps must be between 1 and {}, got {steps}",
                self.timesteps - 1
            )));
        }
        let base = Schedule::named(&self.betas, self.timesteps).map_err(|e| LdaeError::Config(e.to_string()))?;
        Ok(base.respace(&ldae_timesteps(self.timesteps, steps))?)
    }
}

/// The published files of an LDAE model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdaeFiles {
    pub autoencoderkl: PathBuf,
    pub encoder: PathBuf,
    pub decoder: PathBuf,
    pub semantic_mean: Option<PathBuf>,
    pub semantic_std: Option<PathBuf>,
}

impl LdaeFiles {
    /// The official names ([`OFFICIAL_FILES`]) in `dir`; the statistics only where those files exist.
    pub fn in_dir(dir: &Path) -> Self {
        let opt = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
        Self {
            autoencoderkl: dir.join(OFFICIAL_FILES[0]),
            encoder: dir.join(OFFICIAL_FILES[1]),
            decoder: dir.join(OFFICIAL_FILES[2]),
            semantic_mean: opt(OFFICIAL_FILES[3]),
            semantic_std: opt(OFFICIAL_FILES[4]),
        }
    }
}

/// A scan in LDAE's two latent spaces.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Semantic code `(B, emb_chans)` (768 for the published model).
    pub y_sem: Tensor,
    /// Clean diffusion latent `(B, C, x, y, z)`: autoencoder posterior mean × 0.8730.
    pub z0: Tensor,
}

/// A loaded LDAE, ready for inference on one device.
pub struct LdaeModel {
    config: LdaeConfig,
    autoencoder: AutoencoderKL,
    encoder: SemanticEncoder,
    decoder: ShiftUNet,
    semantic_mean: Option<Tensor>,
    semantic_std: Option<Tensor>,
    device: Device,
    id: String,
    manifest: Option<Manifest>,
    dir: Option<PathBuf>,
}

impl std::fmt::Debug for LdaeModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdaeModel")
            .field("id", &self.id)
            .field("shape", &self.config.shape)
            .field("spacing_mm", &self.config.spacing_mm)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// Where one part's tensors come from: a file on its own, or a prefix inside a shared file.
fn part_options(prefix: Option<&str>) -> LoadOptions {
    LoadOptions {
        select_prefix: prefix.map(str::to_owned),
        ..LoadOptions::default()
    }
}

/// A file's identity for caches: path, size and modification time.
fn file_stamp(path: &Path) -> String {
    let meta = std::fs::metadata(path).ok();
    let size = meta.as_ref().map_or(0, |m| m.len());
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("{}:{size}:{mtime}", path.display())
}

/// The one tensor of a statistics file: `torch.save(tensor)` (the published `.pt`) or a one-tensor dict.
fn single_vector(ckpt: &Checkpoint, key: Option<&str>, dim: usize) -> Result<Tensor> {
    let src = ckpt.source.display();
    let t = match key {
        Some(k) => ckpt
            .tensors
            .get(k)
            .ok_or_else(|| LdaeError::Input(format!("{src}: no tensor `{k}`")))?,
        None => {
            let mut it = ckpt.tensors.values();
            match (it.next(), it.next()) {
                (Some(t), None) => t,
                _ => {
                    return Err(LdaeError::Input(format!(
                        "{src}: expected one tensor of semantic statistics, found {}",
                        ckpt.tensors.len()
                    )));
                }
            }
        }
    };
    let t = t.to_dtype(DType::F32)?.flatten_all()?;
    if t.dim(0)? != dim {
        return Err(LdaeError::Input(format!(
            "{src}: semantic statistics have {} values but the encoder gives {dim}",
            t.dim(0)?
        )));
    }
    let v = t.to_vec1::<f32>()?;
    if v.iter().any(|x| !x.is_finite()) {
        return Err(LdaeError::Input(format!("{src}: semantic statistics are not finite")));
    }
    Ok(t)
}

impl LdaeModel {
    /// Loads a model folder (`model.toml` + its weights file, see the module docs). The manifest's
    /// `[config]` is an [`LdaeConfig`]; `spacing_mm`/`shape` missing there are taken from `[preprocessing]`.
    pub fn from_dir(dir: &Path, device: &Device) -> Result<Self> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let manifest = Manifest::read(&manifest_path)?;
        if manifest.family != "ldae" {
            return Err(LdaeError::Config(format!(
                "{}: family is {:?}, not \"ldae\"",
                manifest_path.display(),
                manifest.family
            )));
        }
        let config = config_from_manifest(&manifest, &manifest_path)?;
        config.validate()?;
        let weights = if manifest.weights.is_absolute() {
            manifest.weights.clone()
        } else {
            dir.join(&manifest.weights)
        };
        // A folder registered on the published files (`models add autoencoderkl.pth --family ldae` plus a
        // [config]): the three .pth files side by side.
        let name = weights.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if OFFICIAL_FILES[..3].contains(&name)
            && let Some(parent) = weights.parent()
        {
            let files = LdaeFiles::in_dir(parent);
            let mut model = Self::from_files(&files, config, device)?;
            if !manifest.sha256.is_empty() {
                model.id = format!("{}@{}", manifest.name, manifest.sha256);
            }
            model.manifest = Some(manifest);
            model.dir = Some(dir.to_path_buf());
            return Ok(model);
        }
        let ae_ckpt = load_checkpoint(&weights, &part_options(Some(AUTOENCODER_PREFIX)))?;
        let enc_ckpt = load_checkpoint(&weights, &part_options(Some(ENCODER_PREFIX)))?;
        let dec_ckpt = load_checkpoint(&weights, &part_options(Some(DECODER_PREFIX)))?;
        let stats = load_checkpoint(&weights, &part_options(Some("semantic_")))?;
        let e = config.encoder.emb_chans;
        let (mean, std) = match (stats.tensors.contains_key("mean"), stats.tensors.contains_key("std")) {
            (true, true) => (
                Some(single_vector(&stats, Some("mean"), e)?),
                Some(single_vector(&stats, Some("std"), e)?),
            ),
            (false, false) => (None, None),
            _ => {
                return Err(LdaeError::Input(format!(
                    "{}: has only one of {SEMANTIC_MEAN_KEY} and {SEMANTIC_STD_KEY}",
                    weights.display()
                )));
            }
        };
        let id = if manifest.sha256.is_empty() {
            format!("{}@{}", manifest.name, file_stamp(&weights))
        } else {
            format!("{}@{}", manifest.name, manifest.sha256)
        };
        let mut model = Self::build(config, &ae_ckpt, enc_ckpt, &dec_ckpt, (mean, std), device, id)?;
        model.manifest = Some(manifest);
        model.dir = Some(dir.to_path_buf());
        Ok(model)
    }

    /// Loads the published files (or files in their key layout) with `config`.
    pub fn from_files(files: &LdaeFiles, config: LdaeConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        let ae_ckpt = load_checkpoint(&files.autoencoderkl, &part_options(None))?;
        let enc_ckpt = load_checkpoint(&files.encoder, &part_options(None))?;
        let dec_ckpt = load_checkpoint(&files.decoder, &part_options(None))?;
        let e = config.encoder.emb_chans;
        let stat = |p: &Option<PathBuf>| -> Result<Option<Tensor>> {
            match p {
                None => Ok(None),
                Some(p) => Ok(Some(single_vector(&load_checkpoint(p, &part_options(None))?, None, e)?)),
            }
        };
        let stats = (stat(&files.semantic_mean)?, stat(&files.semantic_std)?);
        if stats.0.is_some() != stats.1.is_some() {
            return Err(LdaeError::Input(
                "give both semantic_mean and semantic_std, or neither".into(),
            ));
        }
        let id = [&files.autoencoderkl, &files.encoder, &files.decoder]
            .iter()
            .map(|p| file_stamp(p))
            .collect::<Vec<_>>()
            .join("|");
        Self::build(config, &ae_ckpt, enc_ckpt, &dec_ckpt, stats, device, id)
    }

    /// The shared construction: every part strict (all tensors used, none missing or misshapen).
    fn build(
        config: LdaeConfig,
        ae_ckpt: &Checkpoint,
        mut enc_ckpt: Checkpoint,
        dec_ckpt: &Checkpoint,
        stats: (Option<Tensor>, Option<Tensor>),
        device: &Device,
        id: String,
    ) -> Result<Self> {
        use crate::core::weights::build_model;
        let dt = DType::F32;
        let (autoencoder, _) = build_model(ae_ckpt, dt, device, true, |vb| AutoencoderKL::load(vb, &config.aekl))?;
        super::semantic_encoder::drop_duplicate_backbone(&mut enc_ckpt);
        let (encoder, _) = build_model(&enc_ckpt, dt, device, true, |vb| {
            SemanticEncoder::load(vb, &config.encoder)
        })?;
        let e = config.encoder.emb_chans;
        let (decoder, _) = build_model(dec_ckpt, dt, device, true, |vb| ShiftUNet::load(vb, &config.unet, e))?;
        let (semantic_mean, semantic_std) = match stats {
            (Some(m), Some(s)) => {
                if s.to_vec1::<f32>()?.iter().any(|&v| v <= 0.0) {
                    return Err(LdaeError::Input("semantic_std has values ≤ 0".into()));
                }
                (Some(m.to_device(device)?), Some(s.to_device(device)?))
            }
            _ => (None, None),
        };
        Ok(Self {
            config,
            autoencoder,
            encoder,
            decoder,
            semantic_mean,
            semantic_std,
            device: device.clone(),
            id,
            manifest: None,
            dir: None,
        })
    }

    pub fn config(&self) -> &LdaeConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Identifies the weights (manifest name + sha256, or file paths with sizes and mtimes): caches of
    /// inverted noise are keyed by it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The manifest, when loaded from a folder.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    /// The folder, when loaded from one.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    pub fn autoencoder(&self) -> &AutoencoderKL {
        &self.autoencoder
    }

    pub fn semantic_encoder(&self) -> &SemanticEncoder {
        &self.encoder
    }

    pub fn decoder(&self) -> &ShiftUNet {
        &self.decoder
    }

    /// Whether `semantic_mean`/`semantic_std` were loaded ([`Self::standardise`] needs them).
    pub fn has_semantic_stats(&self) -> bool {
        self.semantic_mean.is_some()
    }

    /// The statistics as vectors (mean, population std), when loaded.
    pub fn semantic_stats(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        let m = self.semantic_mean.as_ref()?.to_vec1::<f32>().ok()?;
        let s = self.semantic_std.as_ref()?.to_vec1::<f32>().ok()?;
        Some((m, s))
    }

    /// LDAE's preprocessing onto this model's grid (`preprocess.rs`).
    pub fn preprocess(&self, volume: &Volume) -> Result<Volume> {
        Ok(super::preprocess::preprocess(volume, &self.config.preprocessing())?)
    }

    /// Whether `volume` already lies on the model grid (shape and spacing), so preprocessing would only
    /// rescale its intensities.
    pub fn is_on_grid(&self, volume: &Volume) -> bool {
        super::preprocess::is_on_grid(volume, &self.config.preprocessing())
    }

    /// `volume` on this model's grid: only min-max rescaled when it already lies on the grid (where
    /// resampling would change nothing), LDAE's whole preprocessing otherwise.
    pub fn onto_grid(&self, volume: Volume) -> Result<Volume> {
        if self.is_on_grid(&volume) {
            Ok(super::preprocess::min_max(volume))
        } else {
            self.preprocess(&volume)
        }
    }

    /// Checks that a volume is a preprocessed scan on the model grid.
    fn check_scan(&self, scan: &Volume) -> Result<()> {
        if scan.frames() != 1 {
            return Err(LdaeError::Input(format!(
                "expected a 3D scan, got {} frames",
                scan.frames()
            )));
        }
        if scan.dims() != self.config.shape {
            return Err(LdaeError::Input(format!(
                "the scan is {:?} but the model grid is {:?}; preprocess it first",
                scan.dims(),
                self.config.shape
            )));
        }
        Ok(())
    }

    /// Encodes a preprocessed scan (on the model grid, intensities in [0, 1]): y_sem from the semantic
    /// encoder on the axial permutation, z0 = AE posterior **mean** × 0.8730.
    pub fn encode(&self, scan: &Volume) -> Result<Encoded> {
        self.check_scan(scan)?;
        self.encode_tensor(&volume_to_tensor(scan, &self.device)?)
    }

    /// [`Self::encode`] for a batch `(B, 1, X, Y, Z)` already in the networks' layout.
    pub fn encode_tensor(&self, x: &Tensor) -> Result<Encoded> {
        let x = x.to_device(&self.device)?.to_dtype(DType::F32)?;
        let z0 = to_diffusion_space(&self.autoencoder.encode_mean(&x)?)?;
        let y_sem = self.semantic_code(&x)?;
        Ok(Encoded { y_sem, z0 })
    }

    /// y_sem only, of a batch `(B, 1, X, Y, Z)`.
    pub fn semantic_code(&self, x: &Tensor) -> Result<Tensor> {
        let axial = x.permute((0, 1, 4, 2, 3))?.contiguous()?;
        Ok(self.encoder.forward(&axial)?)
    }

    fn check_latent(&self, x: &Tensor, y: &Tensor) -> Result<()> {
        let [c, a, b, d] = self.config.latent_shape();
        let dims = x.dims();
        if dims.len() != 5 || dims[1..] != [c, a, b, d] {
            return Err(LdaeError::Input(format!(
                "expected a diffusion latent (B, {c}, {a}, {b}, {d}), got {dims:?}"
            )));
        }
        if y.dims() != [dims[0], self.config.encoder.emb_chans] {
            return Err(LdaeError::Input(format!(
                "expected a semantic code ({}, {}), got {:?}",
                dims[0],
                self.config.encoder.emb_chans,
                y.dims()
            )));
        }
        Ok(())
    }

    /// Deterministic DDIM inversion of `enc.z0` conditioned on `enc.y_sem` with the shift (LDAE's
    /// `latent_representation_learning_ddim_encode`): x_T. `steps` is the DDIM step count
    /// ([`DEFAULT_STEPS`], [`PAPER_STEPS`]).
    pub fn invert(&self, enc: &Encoded, steps: usize, progress: Progress) -> Result<Tensor> {
        self.check_latent(&enc.z0, &enc.y_sem)?;
        let schedule = self.config.schedule(steps)?;
        let ddim = Ddim::new(&schedule, self.config.ddim_options());
        let y = enc.y_sem.to_device(&self.device)?;
        Ok(ddim.invert(&self.decoder, &enc.z0.to_device(&self.device)?, Some(&y), progress)?)
    }

    /// DDIM sampling from x_T conditioned on y_sem (LDAE's `representation_learning_ddim_sample`): the
    /// clean diffusion latent z0 (state of entry 0).
    pub fn sample_latent(&self, x_t: &Tensor, y_sem: &Tensor, steps: usize, progress: Progress) -> Result<Tensor> {
        self.check_latent(x_t, y_sem)?;
        let schedule = self.config.schedule(steps)?;
        let ddim = Ddim::new(&schedule, self.config.ddim_options());
        let y = y_sem.to_device(&self.device)?;
        let x = x_t.to_device(&self.device)?;
        Ok(ddim.sample_range(
            &self.decoder,
            &x,
            Some(&y),
            schedule.len() - 1,
            End::Index(0),
            None,
            progress,
        )?)
    }

    /// The autoencoder's image of a diffusion latent (÷ 0.8730, decode), as `(B, 1, X, Y, Z)`.
    pub fn decode_latent(&self, z0: &Tensor) -> Result<Tensor> {
        Ok(self.autoencoder.decode(&from_diffusion_space(z0)?)?)
    }

    /// DDIM sampling (with the shift) then autoencoder decoding: a volume on the model grid (the first
    /// batch item). Progress counts the DDIM steps plus one for the autoencoder.
    pub fn decode(&self, x_t: &Tensor, y_sem: &Tensor, steps: usize, progress: Progress) -> Result<Volume> {
        let mut inner = |done: usize, total: usize| progress(done, total + 1);
        let z0 = self.sample_latent(x_t, y_sem, steps, &mut inner)?;
        let image = self.decode_latent(&z0.narrow(0, 0, 1)?)?;
        progress(steps + 1, steps + 1)?;
        self.grid_volume(&image)
    }

    /// The autoencoder alone, encode (mean) then decode: the paper's comparison target.
    pub fn reconstruct_ae(&self, scan: &Volume) -> Result<Volume> {
        self.check_scan(scan)?;
        let x = volume_to_tensor(scan, &self.device)?;
        let image = self.autoencoder.reconstruct(&x)?;
        with_geometry_of(self.grid_volume(&image)?, scan)
    }

    /// `(B, 1, X, Y, Z)` (first item) → a volume on the model grid (spacing on the diagonal, origin 0).
    pub fn grid_volume(&self, image: &Tensor) -> Result<Volume> {
        let s = self.config.spacing_mm;
        let mut v = tensor_to_volume(image, [s; 3])?;
        if v.dims() != self.config.shape {
            return Err(LdaeError::Input(format!(
                "decoded volume is {:?}, the model grid {:?}",
                v.dims(),
                self.config.shape
            )));
        }
        v = Volume::from_spacing(v.dims(), [s; 3], v.into_data())?;
        Ok(v)
    }

    fn stats(&self) -> Result<(&Tensor, &Tensor)> {
        match (&self.semantic_mean, &self.semantic_std) {
            (Some(m), Some(s)) => Ok((m, s)),
            _ => Err(LdaeError::Input(
                "this model has no semantic_mean/semantic_std (needed to standardise y_sem)".into(),
            )),
        }
    }

    /// (y − mean) / std, per feature (`(B, d)`).
    pub fn standardise(&self, y: &Tensor) -> Result<Tensor> {
        let (m, s) = self.stats()?;
        let y = y.to_device(&self.device)?;
        Ok(y.broadcast_sub(&m.unsqueeze(0)?)?.broadcast_div(&s.unsqueeze(0)?)?)
    }

    /// y · std + mean, per feature (`(B, d)`).
    pub fn unstandardise(&self, y: &Tensor) -> Result<Tensor> {
        let (m, s) = self.stats()?;
        let y = y.to_device(&self.device)?;
        Ok(y.broadcast_mul(&s.unsqueeze(0)?)?.broadcast_add(&m.unsqueeze(0)?)?)
    }
}

/// The folder of an LDAE model given as a folder path (holding `model.toml`) or as the name of a
/// registered model (`core::manifest` search folders: the shipped `models/` and the user's).
pub fn find_model_dir(spec: &str) -> Result<PathBuf> {
    crate::core::manifest::find_entry(spec, "ldae")
        .map(|e| e.dir)
        .map_err(LdaeError::Input)
}

/// Reads `[config]` of an LDAE manifest, filling `spacing_mm`/`shape` from `[preprocessing]` when absent.
pub fn config_from_manifest(manifest: &Manifest, path: &Path) -> Result<LdaeConfig> {
    let mut table = manifest.config.clone();
    for key in ["spacing_mm", "shape"] {
        if !table.contains_key(key)
            && let Some(v) = manifest.preprocessing.get(key)
        {
            table.insert(key.into(), v.clone());
        }
    }
    toml::Value::Table(table)
        .try_into::<LdaeConfig>()
        .map_err(|e| LdaeError::Config(format!("{}: [config]: {}", path.display(), e.message())))
}

/// A volume as LDAE's networks take it: `(1, 1, X, Y, Z)`, Z fastest, values unchanged.
pub fn volume_to_tensor(volume: &Volume, device: &Device) -> Result<Tensor> {
    let [nx, ny, nz] = volume.dims();
    let t = Tensor::from_slice(volume.frame(0), (1, 1, nz, ny, nx), device)?;
    Ok(t.permute((0, 1, 4, 3, 2))?.contiguous()?)
}

/// The first item of `(B, 1, X, Y, Z)` as an x-fastest volume with the given spacing (diagonal affine).
pub fn tensor_to_volume(t: &Tensor, spacing_mm: [f32; 3]) -> Result<Volume> {
    let dims = t.dims();
    if dims.len() != 5 || dims[1] != 1 || dims[0] == 0 {
        return Err(LdaeError::Input(format!(
            "expected a (B, 1, X, Y, Z) image, got {dims:?}"
        )));
    }
    let (nx, ny, nz) = (dims[2], dims[3], dims[4]);
    let data = t
        .narrow(0, 0, 1)?
        .permute((0, 1, 4, 3, 2))?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    Ok(Volume::from_spacing([nx, ny, nz], spacing_mm, data)?)
}

/// `v` with the affine and spacing of `like` (same grid shape required).
pub fn with_geometry_of(v: Volume, like: &Volume) -> Result<Volume> {
    if v.dims() != like.dims() || v.frames() != like.frames() {
        return Err(LdaeError::Input(format!(
            "cannot copy the geometry of a {:?} volume onto a {:?} one",
            like.dims(),
            v.dims()
        )));
    }
    let dims = v.dims();
    let frames = v.frames();
    Ok(Volume::new(
        dims,
        frames,
        like.spacing_mm(),
        *like.world_from_voxel(),
        v.into_data(),
    )?)
}
