//! `train sage-sprites-generator`: the failure-search demo's class-conditional generator (a latent
//! diffusion prior over sprite factor codes, drawn by a differentiable renderer), see
//! `methods::sage::demo_train`.

use super::train::{Outcome, Request, failed, run_summary};
use crate::core::jobs::{JobContext, JobError};
use crate::core::manifest::Manifest;
use crate::core::train::encode_tensors;
use crate::methods::relreps::sprite_ae;
use crate::methods::sage::demo_train::{self, PRIOR_DATASET};
use crate::methods::sage::generator::{DEFAULT_SAMPLE_STEPS, PRIOR_DIFFUSION_STEPS, SpriteGenerator};
use crate::methods::sage::quality::oracle_rate;
use crate::methods::sage::renderer::CODE_DIM;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// About 0.15 s a step on two cores (a 256-wide MLP on 256 codes); the prior puts at least half the
/// shape weight on the conditioned class for every one of 600 test draws by then.
pub const PRIOR_STEPS: usize = 1500;
const CHECKPOINT_EVERY: usize = 500;
/// Draws per class for the generator's base rate.
const QUALITY_DRAWS: usize = 200;

fn class_list() -> toml::Value {
    toml::Value::Array(sprite_ae::class_names().into_iter().map(toml::Value::from).collect())
}

const CITATION: &str = "Liu, Kortylewski, Bai, Bai, Yuille. Discovering Failure Modes of Text-guided Diffusion \
                        Models via Adversarial Search. ICLR 2024.";
const LICENCE: &str = "MIT OR Apache-2.0 (trained by this project on its own synthetic data)";

pub fn sage_sprites_generator(req: &Request, ctx: &JobContext) -> Result<Outcome, JobError> {
    let resume = req.resume_from();
    let trained = demo_train::train_prior(
        req.steps,
        req.seed,
        ctx,
        Some(req.checkpoint_policy(CHECKPOINT_EVERY)),
        resume,
    )?;

    let mut tensors = trained.params.tensors();
    tensors.push(("latent_mean".into(), trained.latent_mean.clone()));
    tensors.push(("latent_std".into(), trained.latent_std.clone()));
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut meta = BTreeMap::new();
    meta.insert("name".to_string(), req.name.to_string());
    meta.insert("seed".to_string(), req.seed.to_string());
    let weights = encode_tensors(&tensors, &meta).map_err(failed)?;

    ctx.set(1.0, "measuring the generator's base rate");
    let generator = SpriteGenerator::from_parts(
        req.name.to_string(),
        String::new(),
        trained.prior,
        trained.latent_mean,
        trained.latent_std,
        PRIOR_DIFFUSION_STEPS,
        sprite_ae::class_names().into_iter().map(str::to_string).collect(),
    )
    .map_err(failed)?;
    let oracle = oracle_rate(&generator, QUALITY_DRAWS, 7).map_err(failed)?;

    let mut config = demo_train::demo_prior_config().to_toml();
    config.insert("diffusion_steps".into(), (PRIOR_DIFFUSION_STEPS as i64).into());
    config.insert("schedule".into(), "scaled_linear 0.00085-0.012".into());
    config.insert("sample_steps".into(), (DEFAULT_SAMPLE_STEPS as i64).into());
    config.insert("decoder".into(), "sprite renderer (methods::sage::renderer)".into());
    let mut preprocessing = toml::Table::new();
    preprocessing.insert(
        "output".into(),
        "rgb image 64×64, planar [N, 3, 64, 64], values in [0, 1]".into(),
    );
    preprocessing.insert("classes".into(), class_list());
    let mut latent = toml::Table::new();
    latent.insert("shape".into(), toml::Value::Array(vec![(CODE_DIM as i64).into()]));
    latent.insert(
        "name".into(),
        "starting noise z_T ~ N(0, I) of the latent prior over standardised sprite factor codes".into(),
    );
    let description = format!(
        "Demo class-conditional sprite generator for the failure search: a latent diffusion prior (ε-MLP, width 256, \
         4 blocks, Stable Diffusion's scaled-linear schedule of {PRIOR_DIFFUSION_STEPS}) over standardised {CODE_DIM}-number \
         sprite factor codes, drawn by a differentiable renderer (not learned); trained by `latent-workbench train {}` for \
         {} steps with seed {} on {PRIOR_DATASET} sprites. With {DEFAULT_SAMPLE_STEPS} DDIM steps, {:.1} % of random draws \
         put at least half of the shape weight on the conditioned class ({QUALITY_DRAWS} per class).",
        req.name,
        req.steps,
        req.seed,
        oracle * 100.0,
    );
    let manifest = Manifest {
        name: req.name.to_string(),
        family: "sage".into(),
        description,
        weights: PathBuf::from("model.safetensors"),
        sha256: String::new(),
        licence: LICENCE.into(),
        citation: CITATION.into(),
        demo: true,
        config,
        preprocessing,
        latent,
    };
    let summary = run_summary(
        req,
        &trained.report,
        100,
        serde_json::json!({
            "oracle_rate": oracle,
            "parameters": trained.params.count(),
        }),
    );
    Ok(Outcome {
        manifest,
        weights,
        summary,
        extra_files: Vec::new(),
    })
}
