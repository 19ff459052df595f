//! The hyper-parameters of WaLa's latent diffusion model under `args.json`'s own key names, so a
//! released model's `args.json` deserialises unchanged (unknown keys are ignored: the file also
//! holds the autoencoder's and the trainer's settings).
//!
//! Upstream reads `args.json` into a dict whose missing keys read as `None` and tests most flags by
//! truthiness, so flags here accept `null`, booleans, numbers and strings with Python's meaning.
//! Keys upstream cannot run without (`transformer_add_num_register`, the diffusion settings, …)
//! are required; [`UvitConfig::validate`] turns upstream's crashes into [`UvitError::Config`].

use serde::{Deserialize, Deserializer, Serialize};

use super::UvitError;

/// `GroupNorm32`: the ResBlocks' norms have 32 groups.
pub const GROUPS: usize = 32;
/// PointNet_Large's attention heads and transformer depth, hard-coded by the trainer.
pub const POINTNET_HEADS: usize = 16;

/// Keys without which upstream cannot build or sample the model.
const REQUIRED: [&str; 15] = [
    "grid_size",
    "e_dim",
    "att_patch_size",
    "att_hidden_size",
    "transformer_num_blocks",
    "transformer_num_heads",
    "transformer_add_num_register",
    "unet_model_channels",
    "unet_num_res_blocks",
    "diffusion_beta_schedule",
    "diffusion_step",
    "diffusion_scale_ratio",
    "diffusion_model_mean_type",
    "diffusion_model_var_type",
    "diffusion_rescale_timestep",
];

/// Python truthiness of a JSON value (`None`, `False`, `0`, `""`, `[]`, `{}` are false).
fn truthy<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    use serde_json::Value;
    Ok(match Value::deserialize(d)? {
        Value::Null => false,
        Value::Bool(b) => b,
        Value::Number(n) => n.as_f64().is_some_and(|v| v != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    })
}

/// `unet_num_res_blocks` is a list upstream (only its first entry is used); a bare count is
/// accepted too.
fn count_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<usize>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum CountOrList {
        One(usize),
        List(Vec<usize>),
    }
    Ok(match CountOrList::deserialize(d)? {
        CountOrList::One(n) => vec![n],
        CountOrList::List(v) => v,
    })
}

/// `diffusion_beta_schedule`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BetaScheduleName {
    /// `linspace(s·1e-4, s·0.02, T)` with `s = 1000/T · diffusion_scale_ratio`.
    Linear,
    /// Nichol & Dhariwal's cosine schedule (β capped at 0.999); ignores the scale ratio.
    Cosine,
}

/// `diffusion_model_mean_type` (improved-diffusion's `ModelMeanType` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MeanType {
    Epsilon,
    StartX,
    /// Accepted so that the config parses; refused by `validate` (the shared DDPM sampler has no
    /// x_{t−1} parameterisation and no released WaLa model uses it).
    PreviousX,
}

/// `diffusion_model_var_type`. `LEARNED*` cannot occur: upstream builds the network with
/// `learn_sigma=False`, so it returns no variance channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VarType {
    FixedSmall,
    FixedLarge,
    Learned,
    LearnedRange,
}

/// What the diffusion model is conditioned on, with the widths that follow from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Unconditional (no `use_*_conditions` flag set).
    None,
    /// Point clouds through PointNet_Large: `num_inds` tokens of `pc_output_dim` channels.
    PointCloud {
        context_dim: usize,
        tokens: usize,
        pc_dims: usize,
    },
    /// 16³ voxel grids through `Encoder_Down_2`: `voxel_dim³` tokens of `voxel_context_dim`
    /// channels.
    Voxel { context_dim: usize, tokens: usize },
}

impl Condition {
    /// `Dc`: the width of a condition token.
    pub fn context_dim(&self) -> Option<usize> {
        match self {
            Condition::None => None,
            Condition::PointCloud { context_dim, .. } | Condition::Voxel { context_dim, .. } => Some(*context_dim),
        }
    }

    /// `Nc`: the number of condition tokens (`cond_pos_emb`'s length).
    pub fn tokens(&self) -> Option<usize> {
        match self {
            Condition::None => None,
            Condition::PointCloud { tokens, .. } | Condition::Voxel { tokens, .. } => Some(*tokens),
        }
    }
}

/// The keys of a WaLa `args.json` that the diffusion model, its condition path and its sampler
/// read (see the porting notes in `PARITY.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UvitConfig {
    /// `"latent_dit"` selects the plain DiT (not ported); anything else is `Latent_UVIT`.
    #[serde(default)]
    pub network_type: Option<String>,
    /// Latent grid side `G` (12 in WaLa).
    pub grid_size: usize,
    /// Latent channels `E` (4 in WaLa).
    pub e_dim: usize,
    pub att_patch_size: usize,
    /// Transformer width `H`, also the time embedding's width.
    pub att_hidden_size: usize,
    pub transformer_num_blocks: usize,
    pub transformer_num_heads: usize,
    /// `"cross_dit"`: blocks with cross-attention to the condition tokens; anything else: plain
    /// DiT blocks, the condition then only enters through `global_proj`.
    #[serde(default)]
    pub dit_block_type: Option<String>,
    #[serde(default, deserialize_with = "truthy")]
    pub add_condition_time_ch: bool,
    /// Register tokens `R` (upstream crashes on a missing value, hence required).
    pub transformer_add_num_register: usize,
    /// ResBlock width `C` (a multiple of 32).
    pub unet_model_channels: usize,
    #[serde(deserialize_with = "count_list")]
    pub unet_num_res_blocks: Vec<usize>,
    #[serde(default)]
    pub add_condition_res_ch: Option<usize>,
    #[serde(default)]
    pub learnable_skip_r: Option<usize>,

    #[serde(default, deserialize_with = "truthy")]
    pub use_pointcloud_conditions: bool,
    #[serde(default, deserialize_with = "truthy")]
    pub use_voxel_conditions: bool,
    #[serde(default, deserialize_with = "truthy")]
    pub use_image_conditions: bool,
    #[serde(default, deserialize_with = "truthy")]
    pub use_depth_conditions: bool,
    #[serde(default, deserialize_with = "truthy")]
    pub use_multiple_views_grids: bool,
    #[serde(default, deserialize_with = "truthy")]
    pub use_multiple_views_inferences: bool,
    #[serde(default, deserialize_with = "truthy")]
    pub use_wavelet_conditions: bool,
    #[serde(default)]
    pub pc_output_dim: Option<usize>,
    #[serde(default)]
    pub pc_dims: Option<usize>,
    #[serde(default)]
    pub num_inds: Option<usize>,
    #[serde(default)]
    pub pc_encoder_type: Option<String>,
    #[serde(default)]
    pub voxel_context_dim: Option<usize>,
    #[serde(default)]
    pub voxel_dim: Option<usize>,
    #[serde(default)]
    pub cond_num_mapping_layers: Option<usize>,

    /// Set (any value) ⇒ classifier-free guidance at inference.
    #[serde(default)]
    pub dp_cond: Option<f64>,
    /// Must be absent: upstream's other null conditions crash at inference.
    #[serde(default)]
    pub dp_cond_type: Option<String>,
    pub diffusion_beta_schedule: BetaScheduleName,
    /// `T`, the trained number of steps.
    pub diffusion_step: usize,
    pub diffusion_scale_ratio: f64,
    pub diffusion_model_mean_type: MeanType,
    pub diffusion_model_var_type: VarType,
    /// Sampling steps stored with the model (WaLa's `run.py` overrides it, default 100).
    pub diffusion_rescale_timestep: usize,
    /// Guidance of image/depth models (point-cloud and voxel inference ignore it, see
    /// [`super::SampleOptions`]).
    #[serde(default)]
    pub scale: Option<f64>,
}

impl UvitConfig {
    /// From the parsed `args.json` of a WaLa model, validated.
    pub fn from_args_json(args: &serde_json::Value) -> Result<Self, UvitError> {
        // Missing and `null` mean the same upstream; name the key rather than leave serde to say
        // "invalid type: null".
        if let Some(key) = REQUIRED
            .iter()
            .find(|k| args.get(**k).is_none_or(serde_json::Value::is_null))
        {
            return Err(UvitError::Config(format!("args.json lacks `{key}`")));
        }
        let cfg: Self = serde_json::from_value(args.clone())
            .map_err(|e| UvitError::Config(format!("args.json does not describe a WaLa diffusion model: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// From an `args.json` file.
    pub fn from_args_file(path: &std::path::Path) -> Result<Self, UvitError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| UvitError::Config(format!("cannot read {}: {e}", path.display())))?;
        let args: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| UvitError::Config(format!("{} is not JSON: {e}", path.display())))?;
        Self::from_args_json(&args)
    }

    /// The condition, decided in upstream's order (`get_context_dim`: wavelet, point cloud,
    /// voxel, multi-view, image, depth; the first flag set wins).
    pub fn condition(&self) -> Result<Condition, UvitError> {
        let need = |v: Option<usize>, key: &str| {
            v.filter(|&n| n > 0)
                .ok_or_else(|| UvitError::Config(format!("args.json lacks a positive `{key}`")))
        };
        let unsupported = |what: &str| {
            Err(UvitError::Config(format!(
                "{what}-conditioned WaLa models are not supported (point-cloud, voxel and unconditional are)"
            )))
        };
        if self.use_wavelet_conditions {
            return unsupported("wavelet");
        }
        if self.use_pointcloud_conditions {
            return Ok(Condition::PointCloud {
                context_dim: need(self.pc_output_dim, "pc_output_dim")?,
                tokens: need(self.num_inds, "num_inds")?,
                pc_dims: need(self.pc_dims, "pc_dims")?,
            });
        }
        if self.use_voxel_conditions {
            let side = need(self.voxel_dim, "voxel_dim")?;
            return Ok(Condition::Voxel {
                context_dim: need(self.voxel_context_dim, "voxel_context_dim")?,
                tokens: side * side * side,
            });
        }
        if self.use_multiple_views_inferences || self.use_multiple_views_grids {
            return unsupported("multi-view");
        }
        if self.use_image_conditions {
            return unsupported("image");
        }
        if self.use_depth_conditions {
            return unsupported("depth");
        }
        Ok(Condition::None)
    }

    /// `dit_block_type == "cross_dit"`.
    pub fn cross_attention(&self) -> bool {
        self.dit_block_type.as_deref() == Some("cross_dit")
    }

    /// ResBlocks on each side of the transformer (`unet_num_res_blocks[0]`).
    pub fn num_res_blocks(&self) -> usize {
        self.unet_num_res_blocks.first().copied().unwrap_or(0)
    }

    /// Tokens per side of the patch grid, `G / p`.
    pub fn patch_grid(&self) -> usize {
        self.grid_size / self.att_patch_size.max(1)
    }

    /// Classifier-free guidance at inference (`dp_cond` set).
    pub fn guided(&self) -> bool {
        self.dp_cond.is_some()
    }

    /// Upstream's constructor checks plus the ones it leaves to a crash (zero sizes, shapes that
    /// do not divide, unsupported variants).
    pub fn validate(&self) -> Result<(), UvitError> {
        let bad = |m: String| Err(UvitError::Config(m));
        if self.network_type.as_deref() == Some("latent_dit") {
            return bad("network_type \"latent_dit\" (plain DiT) is not supported; only Latent_UVIT is".into());
        }
        for (key, v) in [
            ("grid_size", self.grid_size),
            ("e_dim", self.e_dim),
            ("att_patch_size", self.att_patch_size),
            ("att_hidden_size", self.att_hidden_size),
            ("transformer_num_heads", self.transformer_num_heads),
            ("unet_model_channels", self.unet_model_channels),
            ("diffusion_step", self.diffusion_step),
        ] {
            if v == 0 {
                return bad(format!("`{key}` must be positive"));
            }
        }
        if !self.grid_size.is_multiple_of(self.att_patch_size) {
            return bad(format!(
                "grid_size {} is not a multiple of att_patch_size {}",
                self.grid_size, self.att_patch_size
            ));
        }
        if !self.att_hidden_size.is_multiple_of(self.transformer_num_heads) {
            return bad(format!(
                "att_hidden_size {} does not split into {} heads",
                self.att_hidden_size, self.transformer_num_heads
            ));
        }
        if !self.unet_model_channels.is_multiple_of(GROUPS) {
            return bad(format!(
                "unet_model_channels {} is not a multiple of GroupNorm's {GROUPS} groups",
                self.unet_model_channels
            ));
        }
        if self.unet_num_res_blocks.is_empty() {
            return bad("unet_num_res_blocks is empty".into());
        }
        if let Some(r) = self.learnable_skip_r
            && (r == 0 || self.unet_model_channels / r == 0)
        {
            return bad(format!(
                "learnable_skip_r {r} leaves no channels of unet_model_channels {}",
                self.unet_model_channels
            ));
        }
        if self.add_condition_res_ch == Some(0) {
            return bad("add_condition_res_ch must be positive when set".into());
        }
        let condition = self.condition()?;
        match &condition {
            Condition::None => {
                if self.cross_attention() {
                    return bad("a cross_dit network needs a condition (upstream crashes without one)".into());
                }
                if self.add_condition_res_ch.is_some() {
                    return bad("add_condition_res_ch needs a condition".into());
                }
            }
            Condition::PointCloud {
                context_dim, pc_dims, ..
            } => {
                if !matches!(self.pc_encoder_type.as_deref(), None | Some("PointNet_Large")) {
                    return bad(format!(
                        "pc_encoder_type {:?} is not supported (PointNet_Large is)",
                        self.pc_encoder_type
                    ));
                }
                if !pc_dims.is_multiple_of(POINTNET_HEADS) || !context_dim.is_multiple_of(POINTNET_HEADS) {
                    return bad(format!(
                        "pc_dims {pc_dims} and pc_output_dim {context_dim} must be multiples of the encoder's {POINTNET_HEADS} heads"
                    ));
                }
            }
            Condition::Voxel { .. } => {}
        }
        if condition.context_dim().is_some() && self.cond_num_mapping_layers.is_none() {
            return bad("args.json lacks `cond_num_mapping_layers` (upstream crashes without it)".into());
        }
        if let Some(t) = &self.dp_cond_type {
            return bad(format!(
                "dp_cond_type {t:?}: only the zero null condition (no dp_cond_type) works at inference upstream"
            ));
        }
        if self.diffusion_model_mean_type == MeanType::PreviousX {
            return bad("diffusion_model_mean_type PREVIOUS_X is not supported (EPSILON and START_X are)".into());
        }
        if matches!(self.diffusion_model_var_type, VarType::Learned | VarType::LearnedRange) {
            return bad(
                "a learned variance cannot be used: upstream builds the network without variance outputs".into(),
            );
        }
        if !(self.diffusion_scale_ratio.is_finite() && self.diffusion_scale_ratio > 0.0) {
            return bad(format!(
                "diffusion_scale_ratio must be positive, got {}",
                self.diffusion_scale_ratio
            ));
        }
        Ok(())
    }
}
