//! Stable Diffusion as SAGE's search target (the generator the paper attacks), from a diffusers
//! folder the user already has: `unet/`, `vae/`, `text_encoder/`, `tokenizer/` and `scheduler/`,
//! each with its `config.json` (or `scheduler_config.json`) and weights. Nothing is downloaded.
//!
//! The networks are candle-transformers' `UNet2DConditionModel`, `AutoEncoderKL` and CLIP text
//! transformer, built from the folder's own configs under diffusers' key names. Sampling is our
//! DDIM ([`crate::core::diffusion::Ddim`]) on the scheduler's β schedule with diffusers' "leading"
//! timesteps, `steps_offset` and `set_alpha_to_one`, and classifier-free guidance against the empty
//! prompt: the same arithmetic as diffusers' `StableDiffusionPipeline` with `DDIMScheduler` (η 0),
//! which `tests/sage.rs` (`mod stable_diffusion`) holds to a tiny random pipeline's output.
//!
//! Gradients: SAGE's skip path with `exact_last = 0` (the loss's gradient w.r.t. the clean latent
//! is passed to the starting noise; only the VAE decoder is differentiated) is the paper's own
//! approximation and works. Exact backpropagation through the UNet does not: candle-transformers'
//! attention uses fused softmax and layer-norm kernels that have no backward, so those paths are
//! refused with that reason, and the gradient-free modes (evolution, random) run as they are.

use super::clip_tokenizer::{CONTEXT_LENGTH, ClipTokenizer};
use super::error::{Result, SageError};
use super::generator::{Generator, GradientPath};
use crate::core::diffusion::{
    ClassifierFree, Ddim, DdimOptions, Denoiser, End, NullCond, Prediction, Schedule, leading_timesteps,
};
use crate::core::weights::{LoadOptions, build_model, load_checkpoint};
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::clip::text_model::{Activation, ClipTextConfig, ClipTextTransformer};
use candle_transformers::models::stable_diffusion::unet_2d::{
    BlockConfig, UNet2DConditionModel, UNet2DConditionModelConfig,
};
use candle_transformers::models::stable_diffusion::vae::{AutoEncoderKL, AutoEncoderKLConfig};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// More resolution levels than any Stable Diffusion has (4); bounds the downsampling factors.
const MAX_BLOCKS: usize = 8;

/// How the search samples: image size, steps, guidance and the prompt each class becomes.
#[derive(Clone, Debug, PartialEq)]
pub struct SdOptions {
    /// Output size in pixels; None: the UNet's `sample_size` times the VAE's downsampling.
    pub height: Option<usize>,
    pub width: Option<usize>,
    /// DDIM steps.
    pub steps: usize,
    /// Classifier-free guidance scale (diffusers' `guidance_scale`; at most 1: no guidance).
    pub guidance: f64,
    /// The prompt of a class: `{}` is replaced by the class name.
    pub prompt_template: String,
    /// The classes (the conditions the search knows).
    pub classes: Vec<String>,
}

impl Default for SdOptions {
    fn default() -> Self {
        Self {
            height: None,
            width: None,
            steps: 20,
            guidance: 7.5,
            prompt_template: "a photo of a {}".into(),
            classes: Vec::new(),
        }
    }
}

/// The scheduler settings diffusers' `DDIMScheduler` reads from `scheduler_config.json`.
#[derive(Clone, Debug, PartialEq)]
struct SchedulerSpec {
    train: Schedule,
    steps_offset: usize,
    /// ᾱ after the last step: 1, or ᾱ₀ for `set_alpha_to_one = false`.
    final_alpha_cumprod: f64,
    prediction: Prediction,
}

pub struct StableDiffusionGenerator {
    name: String,
    folder: PathBuf,
    unet: UNet2DConditionModel,
    vae: AutoEncoderKL,
    text: ClipTextTransformer,
    tokenizer: ClipTokenizer,
    scheduler: SchedulerSpec,
    schedule: Schedule,
    scaling_factor: f64,
    /// Latent channels, height, width.
    latent: (usize, usize, usize),
    /// Pixels per latent cell (the VAE's downsampling).
    vae_factor: usize,
    /// The text encoder's width.
    context_width: usize,
    guidance: f64,
    prompt_template: String,
    class_names: Vec<String>,
    /// The empty prompt's embedding, the unconditional branch of guidance `[1, 77·E]`.
    null: Tensor,
}

/// Whether `dir` is laid out as a diffusers Stable Diffusion folder (UNet and VAE configs).
pub fn is_stable_diffusion_folder(dir: &Path) -> bool {
    dir.join("unet").join("config.json").is_file() && dir.join("vae").join("config.json").is_file()
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| SageError::model(path, format!("cannot read ({e})")))?;
    serde_json::from_str(&text).map_err(|e| SageError::model(path, format!("not valid JSON ({e})")))
}

/// The first weights file of a component folder, safetensors preferred.
fn weights_file(dir: &Path) -> Result<PathBuf> {
    const NAMES: [&str; 4] = [
        "diffusion_pytorch_model.safetensors",
        "model.safetensors",
        "diffusion_pytorch_model.bin",
        "pytorch_model.bin",
    ];
    NAMES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| SageError::model(dir, format!("no weights file (looked for {})", NAMES.join(", "))))
}

/// Typed reads of a diffusers config, each naming the file and key when wrong.
struct Config<'a> {
    v: &'a Value,
    path: &'a Path,
}

impl Config<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.v.get(key).filter(|v| !v.is_null())
    }
    fn usize(&self, key: &str, default: Option<usize>) -> Result<usize> {
        match self.get(key) {
            Some(v) => v
                .as_u64()
                .map(|x| x as usize)
                .ok_or_else(|| SageError::model(self.path, format!("`{key}` must be a whole number"))),
            None => default.ok_or_else(|| SageError::model(self.path, format!("missing `{key}`"))),
        }
    }
    fn f64(&self, key: &str, default: f64) -> Result<f64> {
        match self.get(key) {
            Some(v) => v
                .as_f64()
                .ok_or_else(|| SageError::model(self.path, format!("`{key}` must be a number"))),
            None => Ok(default),
        }
    }
    fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            Some(v) => v
                .as_bool()
                .ok_or_else(|| SageError::model(self.path, format!("`{key}` must be true or false"))),
            None => Ok(default),
        }
    }
    fn str(&self, key: &str, default: &str) -> Result<String> {
        match self.get(key) {
            Some(v) => v
                .as_str()
                .map(String::from)
                .ok_or_else(|| SageError::model(self.path, format!("`{key}` must be a string"))),
            None => Ok(default.into()),
        }
    }
    /// A list of whole numbers.
    fn usizes(&self, key: &str) -> Result<Vec<usize>> {
        self.get(key)
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|x| x.as_u64().map(|x| x as usize)).collect())
            .ok_or_else(|| SageError::model(self.path, format!("`{key}` must be a list of whole numbers")))
    }
    /// A list, or one value for every one of `n` entries.
    fn per_block(&self, key: &str, n: usize, default: Option<usize>) -> Result<Vec<usize>> {
        match self.get(key) {
            Some(Value::Array(_)) => {
                let values = self.usizes(key)?;
                if values.len() != n {
                    return Err(SageError::model(
                        self.path,
                        format!("`{key}` has {} entries for {n} blocks", values.len()),
                    ));
                }
                Ok(values)
            }
            _ => Ok(vec![self.usize(key, default)?; n]),
        }
    }
    fn strings(&self, key: &str) -> Result<Vec<String>> {
        self.get(key)
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|x| x.as_str().map(String::from)).collect())
            .ok_or_else(|| SageError::model(self.path, format!("`{key}` must be a list of names")))
    }
}

/// `UNet2DConditionModel` settings from diffusers' `unet/config.json`: (config, in channels, out
/// channels, sample size). Features candle-transformers' UNet does not have are refused by name.
fn unet_config(v: &Value, path: &Path) -> Result<(UNet2DConditionModelConfig, usize, usize, usize)> {
    let c = Config { v, path };
    for key in [
        "class_embed_type",
        "addition_embed_type",
        "encoder_hid_dim",
        "num_class_embeds",
    ] {
        if c.get(key).is_some() {
            return Err(SageError::model(
                path,
                format!("`{key}` is set: this UNet variant is not supported"),
            ));
        }
    }
    if c.str("mid_block_type", "UNetMidBlock2DCrossAttn")? != "UNetMidBlock2DCrossAttn" {
        return Err(SageError::model(
            path,
            "only the cross-attention middle block is supported",
        ));
    }
    let channels: Vec<usize> = c.usizes("block_out_channels")?;
    let down = c.strings("down_block_types")?;
    let up = c.strings("up_block_types")?;
    let n = channels.len();
    if n > MAX_BLOCKS {
        return Err(SageError::model(
            path,
            format!("{n} blocks: at most {MAX_BLOCKS} are supported"),
        ));
    }
    if n == 0 || down.len() != n || up.len() != n {
        return Err(SageError::model(
            path,
            "block_out_channels, down_block_types and up_block_types differ in length",
        ));
    }
    // diffusers' `attention_head_dim` is the number of heads in these UNets (its own naming quirk),
    // which is how candle-transformers reads it too.
    let heads = match c.get("num_attention_heads") {
        Some(_) => c.per_block("num_attention_heads", n, None)?,
        None => c.per_block("attention_head_dim", n, Some(8))?,
    };
    let layers = c.per_block("transformer_layers_per_block", n, Some(1))?;
    let mut blocks = Vec::with_capacity(n);
    for i in 0..n {
        let cross = match down[i].as_str() {
            "CrossAttnDownBlock2D" => true,
            "DownBlock2D" => false,
            other => {
                return Err(SageError::model(
                    path,
                    format!("down block type {other:?} is not supported"),
                ));
            }
        };
        let up_cross = match up[n - 1 - i].as_str() {
            "CrossAttnUpBlock2D" => true,
            "UpBlock2D" => false,
            other => {
                return Err(SageError::model(
                    path,
                    format!("up block type {other:?} is not supported"),
                ));
            }
        };
        if cross != up_cross {
            return Err(SageError::model(path, "up blocks must mirror the down blocks"));
        }
        blocks.push(BlockConfig {
            out_channels: channels[i],
            use_cross_attn: cross.then_some(layers[i]),
            attention_head_dim: heads[i],
        });
    }
    // candle-transformers' down and up blocks build their ResNets with 32 groups whatever the
    // config says (every Stable Diffusion release uses 32).
    let groups = c.usize("norm_num_groups", Some(32))?;
    if groups != 32 {
        return Err(SageError::model(
            path,
            format!("norm_num_groups {groups}: only 32 is supported"),
        ));
    }
    let cfg = UNet2DConditionModelConfig {
        center_input_sample: c.bool("center_input_sample", false)?,
        flip_sin_to_cos: c.bool("flip_sin_to_cos", true)?,
        freq_shift: c.f64("freq_shift", 0.0)?,
        blocks,
        layers_per_block: c.usize("layers_per_block", Some(2))?,
        downsample_padding: c.usize("downsample_padding", Some(1))?,
        mid_block_scale_factor: c.f64("mid_block_scale_factor", 1.0)?,
        norm_num_groups: groups,
        norm_eps: c.f64("norm_eps", 1e-5)?,
        cross_attention_dim: c.usize("cross_attention_dim", Some(1280))?,
        sliced_attention_size: None,
        use_linear_projection: c.bool("use_linear_projection", false)?,
    };
    Ok((
        cfg,
        c.usize("in_channels", Some(4))?,
        c.usize("out_channels", Some(4))?,
        c.usize("sample_size", Some(64))?,
    ))
}

/// `AutoEncoderKL` settings from `vae/config.json`: (config, image channels, scaling factor,
/// downsampling factor).
fn vae_config(v: &Value, path: &Path) -> Result<(AutoEncoderKLConfig, usize, f64, usize)> {
    let c = Config { v, path };
    let channels: Vec<usize> = c.usizes("block_out_channels")?;
    if channels.is_empty() || channels.len() > MAX_BLOCKS {
        return Err(SageError::model(
            path,
            format!("`block_out_channels` must have 1 to {MAX_BLOCKS} entries"),
        ));
    }
    let image_channels = c.usize("in_channels", Some(3))?;
    if image_channels != 3 || c.usize("out_channels", Some(3))? != 3 {
        return Err(SageError::model(path, "the VAE must map RGB images"));
    }
    let cfg = AutoEncoderKLConfig {
        block_out_channels: channels.clone(),
        layers_per_block: c.usize("layers_per_block", Some(1))?,
        latent_channels: c.usize("latent_channels", Some(4))?,
        norm_num_groups: c.usize("norm_num_groups", Some(32))?,
        use_quant_conv: c.bool("use_quant_conv", true)?,
        use_post_quant_conv: c.bool("use_post_quant_conv", true)?,
    };
    Ok((
        cfg,
        image_channels,
        c.f64("scaling_factor", 0.18215)?,
        1 << (channels.len() - 1),
    ))
}

/// The CLIP text transformer's settings from `text_encoder/config.json`.
fn text_config(v: &Value, path: &Path) -> Result<ClipTextConfig> {
    let c = Config { v, path };
    let act = c.str("hidden_act", "quick_gelu")?;
    if act != "quick_gelu" {
        return Err(SageError::model(
            path,
            format!("text encoder activation {act:?}: only quick_gelu (Stable Diffusion 1.x) is supported"),
        ));
    }
    let embed_dim = c.usize("hidden_size", None)?;
    Ok(ClipTextConfig {
        vocab_size: c.usize("vocab_size", None)?,
        embed_dim,
        activation: Activation::QuickGelu,
        intermediate_size: c.usize("intermediate_size", None)?,
        max_position_embeddings: c.usize("max_position_embeddings", Some(CONTEXT_LENGTH))?,
        pad_with: None,
        num_hidden_layers: c.usize("num_hidden_layers", None)?,
        num_attention_heads: c.usize("num_attention_heads", None)?,
        projection_dim: c.usize("projection_dim", Some(embed_dim))?,
    })
}

fn scheduler_spec(v: &Value, path: &Path) -> Result<SchedulerSpec> {
    let c = Config { v, path };
    let steps = c.usize("num_train_timesteps", Some(1000))?;
    let (start, end) = (c.f64("beta_start", 0.0001)?, c.f64("beta_end", 0.02)?);
    let train = match c.str("beta_schedule", "linear")?.as_str() {
        "linear" => Schedule::linear(steps, start, end),
        "scaled_linear" => Schedule::scaled_linear(steps, start, end),
        other => {
            return Err(SageError::model(
                path,
                format!("beta schedule {other:?} is not supported"),
            ));
        }
    }
    .map_err(|e| SageError::model(path, e.to_string()))?;
    let prediction = match c.str("prediction_type", "epsilon")?.as_str() {
        "epsilon" => Prediction::Epsilon,
        "v_prediction" => Prediction::VPrediction,
        "sample" => Prediction::Sample,
        other => {
            return Err(SageError::model(
                path,
                format!("prediction type {other:?} is not supported"),
            ));
        }
    };
    if c.bool("clip_sample", false)? || c.bool("thresholding", false)? || c.bool("rescale_betas_zero_snr", false)? {
        return Err(SageError::model(
            path,
            "clip_sample, thresholding and rescale_betas_zero_snr are not supported",
        ));
    }
    if c.get("trained_betas").is_some() {
        return Err(SageError::model(path, "trained_betas are not supported"));
    }
    let spacing = c.str("timestep_spacing", "leading")?;
    if spacing != "leading" {
        return Err(SageError::model(
            path,
            format!("timestep spacing {spacing:?}: only \"leading\" is supported"),
        ));
    }
    let final_alpha_cumprod = if c.bool("set_alpha_to_one", true)? {
        1.0
    } else {
        train.alpha_cumprod(0)
    };
    Ok(SchedulerSpec {
        steps_offset: c.usize("steps_offset", Some(0))?,
        final_alpha_cumprod,
        prediction,
        train,
    })
}

/// The UNet as a [`Denoiser`] on flat condition embeddings `[B, 77·E]`.
struct UnetDenoiser<'a> {
    unet: &'a UNet2DConditionModel,
    context: (usize, usize),
    prediction: Prediction,
}

impl Denoiser for UnetDenoiser<'_> {
    fn predict(&self, x_t: &Tensor, t: &Tensor, cond: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let Some(cond) = cond else {
            candle_core::bail!("Stable Diffusion needs a text embedding")
        };
        let ts = t.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        let Some(&t0) = ts.first() else {
            candle_core::bail!("empty batch")
        };
        // candle-transformers' UNet takes one timestep per call; the sampler's batch shares it.
        if ts.iter().any(|&x| x != t0) {
            candle_core::bail!("Stable Diffusion: one timestep per batch")
        }
        let ctx = cond.reshape((cond.dim(0)?, self.context.0, self.context.1))?;
        self.unet.forward(x_t, t0, &ctx)
    }

    fn parameterization(&self) -> Prediction {
        self.prediction
    }
}

impl StableDiffusionGenerator {
    /// Loads a diffusers Stable Diffusion folder.
    pub fn load(dir: &Path, options: &SdOptions, device: &Device) -> Result<Self> {
        if options.classes.is_empty() {
            return Err(SageError::Invalid(
                "Stable Diffusion as a search target needs at least one class".into(),
            ));
        }
        if !options.guidance.is_finite() || options.guidance < 0.0 {
            return Err(SageError::Invalid(format!(
                "guidance scale {} must be a finite number ≥ 0",
                options.guidance
            )));
        }
        if !options.prompt_template.contains("{}") {
            return Err(SageError::Invalid(format!(
                "the prompt template {:?} has no {{}} for the class name",
                options.prompt_template
            )));
        }
        let sub = |name: &str| dir.join(name);
        let unet_cfg_path = sub("unet").join("config.json");
        let (unet_cfg, in_ch, out_ch, sample_size) = unet_config(&read_json(&unet_cfg_path)?, &unet_cfg_path)?;
        let vae_cfg_path = sub("vae").join("config.json");
        let (vae_cfg, image_ch, scaling_factor, down) = vae_config(&read_json(&vae_cfg_path)?, &vae_cfg_path)?;
        let text_cfg_path = sub("text_encoder").join("config.json");
        let text_cfg = text_config(&read_json(&text_cfg_path)?, &text_cfg_path)?;
        let sched_path = sub("scheduler").join("scheduler_config.json");
        let scheduler = scheduler_spec(&read_json(&sched_path)?, &sched_path)?;
        if in_ch != vae_cfg.latent_channels || out_ch != in_ch {
            return Err(SageError::model(
                dir,
                "the UNet's channels do not match the VAE's latent channels",
            ));
        }
        if unet_cfg.cross_attention_dim != text_cfg.embed_dim {
            return Err(SageError::model(
                dir,
                "the UNet's cross-attention width differs from the text encoder's",
            ));
        }
        // The image must survive the VAE's and the UNet's downsampling exactly.
        let multiple = down * (1 << (unet_cfg.blocks.len() - 1));
        let pixels = |v: Option<usize>| -> Result<usize> {
            let p = v.unwrap_or(sample_size * down);
            if p == 0 || !p.is_multiple_of(multiple) {
                return Err(SageError::Invalid(format!(
                    "image size {p} must be a positive multiple of {multiple}"
                )));
            }
            Ok(p / down)
        };
        let latent = (in_ch, pixels(options.height)?, pixels(options.width)?);

        let opts = LoadOptions::default();
        let load = |component: &str| -> Result<_> {
            let file = weights_file(&sub(component))?;
            Ok(load_checkpoint(&file, &opts)?)
        };
        let (unet, _) = build_model(&load("unet")?, DType::F32, device, false, |vb| {
            UNet2DConditionModel::new(vb, in_ch, out_ch, false, unet_cfg.clone())
        })?;
        let (vae, _) = build_model(&load("vae")?, DType::F32, device, false, |vb| {
            AutoEncoderKL::new(vb, image_ch, image_ch, vae_cfg.clone())
        })?;
        let text_ckpt = load("text_encoder")?;
        // transformers 4 saves CLIPTextModel under `text_model.`, transformers 5 without it.
        let prefixed = text_ckpt.tensors.contains_key("text_model.final_layer_norm.weight");
        let (text, _) = build_model(&text_ckpt, DType::F32, device, false, |vb| {
            ClipTextTransformer::new(if prefixed { vb.pp("text_model") } else { vb }, &text_cfg)
        })?;
        let tokenizer = ClipTokenizer::load(&sub("tokenizer"), None)?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "stable-diffusion".into());
        let mut generator = Self {
            name,
            folder: dir.to_path_buf(),
            unet,
            vae,
            text,
            tokenizer,
            schedule: scheduler.train.clone(),
            scheduler,
            scaling_factor,
            latent,
            vae_factor: down,
            context_width: text_cfg.embed_dim,
            guidance: options.guidance,
            prompt_template: options.prompt_template.clone(),
            class_names: options.classes.clone(),
            // A placeholder on the right device until the empty prompt is embedded just below.
            null: Tensor::zeros(1, DType::F32, device).map_err(SageError::compute("Stable Diffusion"))?,
        };
        generator.null = generator
            .embed_prompts(&[String::new()])
            .map_err(SageError::compute("embedding the empty prompt"))?;
        generator.with_steps(options.steps)
    }

    /// Re-spaces the sampler to `steps` DDIM steps (diffusers' "leading" timesteps).
    pub fn with_steps(mut self, steps: usize) -> Result<Self> {
        let total = self.scheduler.train.len();
        if steps == 0 || steps > total {
            return Err(SageError::Invalid(format!(
                "DDIM steps must be 1..={total}, got {steps}"
            )));
        }
        let keep = leading_timesteps(total, steps, self.scheduler.steps_offset);
        if keep.last().is_some_and(|&t| t >= total) {
            return Err(SageError::Invalid(format!(
                "{steps} steps with steps_offset {} run past the {total} training timesteps",
                self.scheduler.steps_offset
            )));
        }
        self.schedule = self
            .scheduler
            .train
            .respace(&keep)
            .map_err(|e| SageError::Invalid(format!("sampler schedule: {e}")))?;
        Ok(self)
    }

    /// The text encoder's last hidden states of `prompts`, flattened to `[B, 77·E]`.
    pub fn embed_prompts(&self, prompts: &[String]) -> candle_core::Result<Tensor> {
        let ids: Vec<u32> = prompts.iter().flat_map(|p| self.tokenizer.encode(p)).collect();
        let ids = Tensor::from_vec(ids, (prompts.len(), CONTEXT_LENGTH), self.null.device())?;
        let hidden = self.text.forward_with_mask(&ids, usize::MAX)?;
        hidden.flatten_from(1)
    }

    /// The clean latent from starting noise `z` `[B, C·h·w]` (no gradient).
    pub fn sample_latent(&self, z: &Tensor, cond: &Tensor) -> candle_core::Result<Tensor> {
        let den = UnetDenoiser {
            unet: &self.unet,
            context: (CONTEXT_LENGTH, self.context_width),
            prediction: self.scheduler.prediction,
        };
        let guided = ClassifierFree {
            null: NullCond::Tensor(self.null.clone()),
            ..ClassifierFree::new(&den, self.guidance)
        };
        let ddim = Ddim::new(
            &self.schedule,
            DdimOptions {
                recompute_eps: false,
                final_alpha_cumprod: self.scheduler.final_alpha_cumprod,
                ..DdimOptions::default()
            },
        );
        let mut x = z.detach().reshape(self.latent_shape(z)?)?;
        let cond = cond.detach();
        for i in (0..self.schedule.len()).rev() {
            let to = if i == 0 { End::Clean } else { End::Index(i - 1) };
            // diffusers guides only above 1.
            let step = if self.guidance <= 1.0 {
                ddim.step(&den, &x, i, to, Some(&cond), None)
            } else {
                ddim.step(&guided, &x, i, to, Some(&cond), None)
            };
            x = step.map_err(|e| candle_core::Error::Msg(e.to_string()))?.x;
        }
        Ok(x)
    }

    /// The `[B, C, h, w]` shape of flat starting latents `z` `[B, C·h·w]`.
    fn latent_shape(&self, z: &Tensor) -> candle_core::Result<(usize, usize, usize, usize)> {
        Ok((z.dim(0)?, self.latent.0, self.latent.1, self.latent.2))
    }

    /// Images in [0, 1] from clean latents `[B, C, h, w]`.
    pub fn decode(&self, latents: &Tensor) -> candle_core::Result<Tensor> {
        let scaled = latents.affine(1.0 / self.scaling_factor, 0.0)?;
        // One latent at a time: for a batch of two, candle-transformers' VAE middle block differs
        // from diffusers' by 0.5 (its attention block and ResNets alone match to 1e-6 on one
        // sample), and decoding each latent alone matches diffusers' batched decode.
        let images = (0..scaled.dim(0)?)
            .map(|i| self.vae.decode(&scaled.narrow(0, i, 1)?))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Tensor::cat(&images, 0)?.affine(0.5, 0.5)?.clamp(0.0, 1.0)
    }
}

impl Generator for StableDiffusionGenerator {
    fn name(&self) -> &str {
        &self.name
    }
    fn latent_dim(&self) -> usize {
        self.latent.0 * self.latent.1 * self.latent.2
    }
    fn class_names(&self) -> Vec<String> {
        self.class_names.clone()
    }
    fn condition_embedding(&self, classes: &[usize]) -> candle_core::Result<Tensor> {
        let prompts = classes
            .iter()
            .map(|&k| {
                self.class_names
                    .get(k)
                    .map(|name| self.prompt_template.replace("{}", name))
                    .ok_or_else(|| candle_core::Error::Msg(format!("class {k} out of range")))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        self.embed_prompts(&prompts)
    }
    fn steps(&self) -> usize {
        self.schedule.len()
    }
    /// The folder and the sampling settings. The weights are not hashed: a Stable Diffusion
    /// folder holds gigabytes, and the report names the folder instead.
    fn provenance(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "kind": "stable_diffusion",
            "folder": self.folder.display().to_string(),
            "sampler_steps": self.steps(),
            "guidance": self.guidance,
            "prompt_template": self.prompt_template,
            "image_size": [self.latent.1 * self.vae_factor, self.latent.2 * self.vae_factor],
        })
    }

    fn generate(&self, z: &Tensor, cond: &Tensor, path: GradientPath) -> candle_core::Result<Tensor> {
        // Refused before sampling, so that a refused path costs no sampler steps.
        let clean = match path {
            GradientPath::None => self.sample_latent(z, cond)?,
            // SAGE's residual path: equal to the clean latent, with the identity as its gradient
            // w.r.t. the starting noise.
            GradientPath::Skip { exact_last: 0 } => {
                (self.sample_latent(z, cond)? + (z - z.detach())?.reshape(self.latent_shape(z)?)?)?
            }
            GradientPath::Skip { .. } | GradientPath::Full => candle_core::bail!(
                "Stable Diffusion: exact backpropagation through the UNet is not available (candle-transformers' \
                 fused softmax and layer-norm kernels have no backward); use SAGE's skip path with no exact \
                 steps, or a gradient-free mode"
            ),
        };
        self.decode(&clean)
    }
}
