//! The WildFusion demo trainer (`latent-workbench train wildfusion-demo`): the toy
//! [`Autoencoder`] (image → 2D KL latent → triplane) trained **through the differentiable
//! renderer** on images of the analytic objects ([`analytic`]), with the triplane MLP fixed to the
//! analytic pass-through decoder.
//!
//! Data. A scene is an analytic object (kind, uniform scale in [`SCALE_RANGE`], a colour tint of
//! up to ±[`TINT`] on the colour logits) seen from an input camera at yaw `input_yaw` (pitch 0)
//! and from [`NOVEL_VIEWS`] other views. Every image is drawn by [`render_view`] (48 + 24
//! samples, deterministic) from the exact analytic triplane, so the targets are the renderer's
//! ground truth.
//!
//! View space (the paper's setting, §3.1). The autoencoder explains its input from the canonical
//! view [`P0`]: the predicted triplane is rendered from P0 against the input view, and from the
//! novel view *relative to the input camera* against the same object rendered from that view in
//! the world. With the input camera at pitch 0 the two agree exactly: the world camera at yaw
//! `input_yaw + Δ`, pitch `p` is the relative camera (`Δ`, `p`) turned about the vertical axis by
//! `input_yaw` ([`Scene::world_camera`]). Relative views lie within [`VIEW_RANGE`].
//!
//! Loss per item: mean squared error of the differentiable render (low resolution, few
//! bin-centre samples: `render_size`, `samples_per_ray`) of the posterior-sampled triplane
//! against the input view and against one novel view drawn per step, plus `kl_weight` × KL
//! (LDM's summed KL, averaged over the batch).
//!
//! Why the decoder is fixed: [`OsgDecoder`] folds its gains into weight copies at load, so a
//! trained decoder would have to be rebuilt after every step; with the pass-through decoder the
//! triplane features are density and colour logits directly, as for the analytic objects. Its raw
//! weights are written into the parameter set (`osg.*`, never updated: the loss renders through a
//! constant copy, so they get no gradient), so
//! the saved file loads with [`Autoencoder::load_file`] and renders as it was trained.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use super::analytic::{self, AnalyticObject};
use super::encode::{draw, planar};
use super::{
    Autoencoder, AutoencoderConfig, DiffRenderOptions, OsgDecoder, P0, Triplane, VIEW_RANGE, ViewCamera,
    WildFusionError, passthrough_tensors, render_image,
};
use crate::core::diffusion::Rng;
use crate::core::jobs::JobContext;
use crate::core::train::{
    AdamWConfig, CheckpointPolicy, LrSchedule, Result, SeededParams, StepOutput, TrainError, TrainLoop, TrainReport,
};

/// Held-out scenes are drawn with this data seed (training scenes use the run's seed).
pub const HELDOUT_SEED_BASE: u64 = 900_000;
/// Uniform object scale range.
pub const SCALE_RANGE: (f32, f32) = (0.75, 1.15);
/// Largest shift of each colour logit.
pub const TINT: f32 = 0.8;
/// Novel views per scene besides the input view.
pub const NOVEL_VIEWS: usize = 2;
/// Resolution of the analytic triplanes the data is drawn from.
pub const ANALYTIC_RESOLUTION: usize = 128;
/// Training scenes whose predicted triplanes are averaged for the mean-triplane baseline.
const MEAN_TRIPLANE_SCENES: usize = 32;

/// The demo model: the default toy autoencoder (64×64 input, 4×8×8 Z, 32² planes) with 4
/// triplane channels, the pass-through decoder's density + RGB logits.
pub fn demo_config() -> AutoencoderConfig {
    AutoencoderConfig {
        triplane_channels: analytic::CHANNELS,
        ..AutoencoderConfig::default()
    }
}

/// A very small autoencoder for tests: 32×32 input, 4×8×8 Z, 16² planes.
pub fn tiny_config() -> AutoencoderConfig {
    AutoencoderConfig {
        image_size: 32,
        enc_channels: vec![8, 16, 16],
        latent_level: 2,
        fpn_channels: 16,
        latent_channels: 4,
        d_model: 32,
        heads: 2,
        blocks: 1,
        up_channels: 16,
        triplane_channels: analytic::CHANNELS,
        triplane_resolution: 16,
        box_size: analytic::BOX_SIZE,
        osg_hidden: 64,
    }
}

/// One training or held-out example (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scene {
    pub object: AnalyticObject,
    pub scale: f32,
    /// Added to the R, G, B logits everywhere.
    pub tint: [f32; 3],
    /// Yaw of the input camera (pitch 0); in view space it is the object's turn.
    pub input_yaw: f32,
    /// Novel views relative to the input camera (which is P0 in view space).
    pub novel: [ViewCamera; NOVEL_VIEWS],
}

impl Scene {
    /// Scene `index` of the data seeded with `seed`.
    pub fn sample(seed: u64, index: u64) -> Self {
        let mut rng = Rng::new(seed ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut sym = |half: f32| (rng.uniform() as f32 * 2.0 - 1.0) * half;
        let kind = ((sym(1.0) + 1.0) * 0.5 * AnalyticObject::ALL.len() as f32) as usize;
        let object = AnalyticObject::ALL[kind.min(AnalyticObject::ALL.len() - 1)];
        let scale = SCALE_RANGE.0 + (SCALE_RANGE.1 - SCALE_RANGE.0) * (sym(1.0) + 1.0) * 0.5;
        let tint = [sym(TINT), sym(TINT), sym(TINT)];
        let input_yaw = sym(VIEW_RANGE.yaw_deg);
        let novel = [(); NOVEL_VIEWS].map(|_| ViewCamera {
            yaw_deg: sym(VIEW_RANGE.yaw_deg),
            pitch_deg: sym(VIEW_RANGE.pitch_deg),
            ..P0
        });
        Self {
            object,
            scale,
            tint,
            input_yaw,
            novel,
        }
    }

    /// The world camera the input image is taken from.
    pub fn input_camera(&self) -> ViewCamera {
        ViewCamera {
            yaw_deg: self.input_yaw,
            ..P0
        }
    }

    /// The world camera of a view given relative to the input camera (exact for an input camera
    /// at pitch 0: both are turned about the vertical axis by `input_yaw`).
    pub fn world_camera(&self, relative: &ViewCamera) -> ViewCamera {
        ViewCamera {
            yaw_deg: self.input_yaw + relative.yaw_deg,
            ..*relative
        }
    }

    /// The exact analytic triplane of this scene (scaled, tinted).
    pub fn triplane(&self) -> std::result::Result<Triplane, WildFusionError> {
        let base = analytic::triplane_scaled(self.object, ANALYTIC_RESOLUTION, self.scale)?;
        // Mean aggregation: plane xy holding 3·t adds t to the logit at every point.
        let mut offset = vec![0f32; 3 * analytic::CHANNELS];
        for (k, t) in self.tint.iter().enumerate() {
            offset[1 + k] = 3.0 * t;
        }
        let offset = Tensor::from_vec(offset, (3, analytic::CHANNELS, 1, 1), &Device::Cpu)?;
        Triplane::new(base.planes().broadcast_add(&offset)?, base.box_size())
    }
}

/// A scene's images: the input `(3, S, S)` planar, and the targets `(H, W, 3)` at the render size
/// for the input view (P0 in view space) and each novel view.
struct Views {
    input: Vec<f32>,
    targets: Vec<Tensor>,
}

fn render_scene(
    scene: &Scene,
    image_size: usize,
    render_size: usize,
    inputs_only: bool,
) -> std::result::Result<Views, WildFusionError> {
    let decoder = analytic::decoder()?;
    let tp = scene.triplane()?;
    let input = planar(&draw(&tp, &decoder, &scene.input_camera(), image_size)?);
    let mut targets = Vec::new();
    if !inputs_only {
        let cams = std::iter::once(scene.input_camera()).chain(scene.novel.iter().map(|v| scene.world_camera(v)));
        for cam in cams {
            let rgb = draw(&tp, &decoder, &cam, render_size)?;
            targets.push(Tensor::from_vec(rgb, (render_size, render_size, 3), &Device::Cpu)?);
        }
    }
    Ok(Views { input, targets })
}

fn render_scenes(
    seed: u64,
    count: usize,
    image_size: usize,
    render_size: usize,
    inputs_only: bool,
) -> std::result::Result<Vec<(Scene, Views)>, WildFusionError> {
    (0..count as u64)
        .into_par_iter()
        .map(|i| {
            let scene = Scene::sample(seed, i);
            Ok((scene, render_scene(&scene, image_size, render_size, inputs_only)?))
        })
        .collect()
}

fn input_batch(views: &[&Views], size: usize) -> candle_core::Result<Tensor> {
    let data: Vec<f32> = views.iter().flat_map(|v| v.input.iter().copied()).collect();
    Tensor::from_vec(data, (views.len(), 3, size, size), &Device::Cpu)
}

/// Everything that fixes a run.
#[derive(Clone, Debug, PartialEq)]
pub struct DemoSettings {
    pub config: AutoencoderConfig,
    pub steps: usize,
    pub seed: u64,
    /// Training scenes (rendered once before the loop).
    pub scenes: usize,
    pub batch: usize,
    /// Held-out scenes [`evaluate`] uses.
    pub heldout: usize,
    /// Side of the differentiable renders the loss compares.
    pub render_size: usize,
    pub samples_per_ray: usize,
    pub peak_lr: f64,
    pub kl_weight: f64,
}

impl DemoSettings {
    /// The shipped demo's settings: [`demo_config`], 256 scenes, batches of 4, 32² renders with
    /// 20 samples per ray.
    pub fn demo(steps: usize, seed: u64) -> Self {
        Self {
            config: demo_config(),
            steps,
            seed,
            scenes: 256,
            batch: 4,
            heldout: 32,
            render_size: 32,
            samples_per_ray: 20,
            peak_lr: 1e-3,
            kl_weight: 1e-6,
        }
    }

    /// For tests: [`tiny_config`], 8 scenes, batches of 2, 16² renders with 16 samples.
    pub fn tiny(steps: usize, seed: u64) -> Self {
        Self {
            config: tiny_config(),
            steps,
            seed,
            scenes: 8,
            batch: 2,
            heldout: 4,
            render_size: 16,
            samples_per_ray: 16,
            peak_lr: 3e-3,
            kl_weight: 1e-6,
        }
    }

    fn render_options(&self) -> DiffRenderOptions {
        DiffRenderOptions {
            box_size: self.config.box_size,
            samples_per_ray: self.samples_per_ray,
            ..DiffRenderOptions::default()
        }
    }

    fn validate(&self) -> Result<()> {
        self.config.validate().map_err(invalid)?;
        if self.config.triplane_channels != analytic::CHANNELS || self.config.osg_hidden < analytic::CHANNELS {
            return Err(TrainError::Invalid(format!(
                "the fixed pass-through decoder needs triplane_channels = {} and osg_hidden ≥ {}",
                analytic::CHANNELS,
                analytic::CHANNELS
            )));
        }
        if self.steps == 0 || self.scenes == 0 || self.batch == 0 || self.render_size == 0 || self.samples_per_ray < 2 {
            return Err(TrainError::Invalid(
                "steps, scenes, batch and render size must be ≥ 1 and samples per ray ≥ 2".into(),
            ));
        }
        Ok(())
    }
}

fn invalid(e: WildFusionError) -> TrainError {
    match e {
        WildFusionError::Candle(c) => TrainError::Candle(c),
        other => TrainError::Invalid(other.to_string()),
    }
}

fn to_candle(e: WildFusionError) -> candle_core::Error {
    match e {
        WildFusionError::Candle(c) => c,
        other => candle_core::Error::Msg(other.to_string()),
    }
}

/// A trained model with how it got there.
pub struct Trained {
    pub params: SeededParams,
    pub model: Autoencoder,
    pub report: TrainReport,
    pub scenes: usize,
    pub data_seconds: f64,
}

impl Trained {
    /// The parameters under the autoencoder's keys (what `model.safetensors` holds).
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.params.tensors()
    }
}

/// Builds the model in `params` with the decoder set to the pass-through one. The model is built
/// twice: the first build creates every parameter, the second reads the overwritten `osg.*`
/// (the decoder copies its weights at load).
fn build(params: &SeededParams, cfg: &AutoencoderConfig) -> Result<Autoencoder> {
    let device = Device::Cpu;
    Autoencoder::load(params.var_builder(DType::F32, &device), cfg).map_err(invalid)?;
    let fixed = passthrough_tensors(&cfg.osg()).map_err(invalid)?;
    for (name, var) in params.named_vars() {
        if let Some(t) = name.strip_prefix("osg.").and_then(|k| fixed.get(k)) {
            var.set(t)?;
        }
    }
    Autoencoder::load(params.var_builder(DType::F32, &device), cfg).map_err(invalid)
}

/// Trains from the seed (or resumes from `resume`), reporting through `ctx`.
pub fn train(
    settings: &DemoSettings,
    ctx: &JobContext,
    checkpoint: Option<CheckpointPolicy>,
    resume: Option<&Path>,
) -> Result<Trained> {
    settings.validate()?;
    let cfg = &settings.config;
    let params = SeededParams::new(settings.seed);
    let model = build(&params, cfg)?;

    ctx.set(0.0, format!("rendering {} training scenes", settings.scenes));
    let clock = std::time::Instant::now();
    let data = render_scenes(
        settings.seed,
        settings.scenes,
        cfg.image_size,
        settings.render_size,
        false,
    )
    .map_err(invalid)?;
    let data_seconds = clock.elapsed().as_secs_f64();

    let schedule = LrSchedule::warmup_cosine(settings.peak_lr, settings.steps);
    let adamw = AdamWConfig {
        weight_decay: 1e-4,
        ..AdamWConfig::default()
    };
    let mut meta = BTreeMap::new();
    meta.insert("architecture".to_string(), "wildfusion_autoencoder".to_string());
    meta.insert("config".to_string(), serde_json::to_string(cfg).unwrap_or_default());
    let mut lp = TrainLoop::new(params.clone(), adamw, schedule, settings.steps, settings.seed)?
        .clip_grad_norm(1.0)
        .metadata(meta)
        .persisted(checkpoint, resume)?;
    let opts = settings.render_options();
    // Built from constant tensors, not from the `osg.*` vars: the model's own decoder folds its
    // gains with tracked ops on those vars, so rendering through it would hand them gradients and
    // AdamW would move the saved decoder away from the one the renders used.
    let decoder = OsgDecoder::analytic_passthrough(&cfg.osg()).map_err(invalid)?;
    let report = lp.run(ctx, |_step, rng| {
        let picks: Vec<usize> = (0..settings.batch)
            .map(|_| (rng.next_u64() % data.len() as u64) as usize)
            .collect();
        let views: Vec<&Views> = picks.iter().map(|&i| &data[i].1).collect();
        let images = input_batch(&views, cfg.image_size)?;
        let post = model.encode(&images).map_err(to_candle)?;
        let noise = Tensor::from_vec(rng.normals_f32(post.mean.elem_count()), post.mean.dims(), &Device::Cpu)?;
        let z = post.sample_with(&noise).map_err(to_candle)?;
        let planes = model.decode_planes(&z).map_err(to_candle)?;
        let mut mse = Tensor::zeros((), DType::F32, &Device::Cpu)?;
        let mut terms = 0usize;
        for (b, &i) in picks.iter().enumerate() {
            let (scene, v) = &data[i];
            let novel = 1 + (rng.next_u64() % NOVEL_VIEWS as u64) as usize;
            let item = planes.get(b)?;
            for (camera, target) in [(P0, &v.targets[0]), (scene.novel[novel - 1], &v.targets[novel])] {
                let out = render_image(
                    &item,
                    &decoder,
                    &camera,
                    settings.render_size,
                    settings.render_size,
                    &opts,
                )
                .map_err(to_candle)?;
                mse = (mse + (out.rgb - target)?.sqr()?.mean_all()?)?;
                terms += 1;
            }
        }
        let mse = (mse / terms as f64)?;
        let kl = post.kl().map_err(to_candle)?;
        let loss = (&mse + (&kl * settings.kl_weight)?)?;
        Ok(StepOutput {
            loss,
            extra: vec![("mse", mse.to_scalar::<f32>()?), ("kl", kl.to_scalar::<f32>()?)],
        })
    })?;
    Ok(Trained {
        params,
        model,
        report,
        scenes: data.len(),
        data_seconds,
    })
}

/// Held-out quality: mean PSNR (dB, per image, then averaged) of renders from the model's
/// posterior-mean triplanes, and of two baselines that see no input: an all-background image and
/// the mean of the model's triplanes over training scenes.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Eval {
    pub scenes: usize,
    /// Novel views (relative to the input camera) of held-out scenes.
    pub novel_psnr: f64,
    /// The input view itself (reconstruction), for comparison.
    pub input_view_psnr: f64,
    /// All-background image on the same novel views.
    pub background_psnr: f64,
    /// The mean training triplane on the same novel views.
    pub mean_triplane_psnr: f64,
}

fn psnr(render: &Tensor, target: &Tensor) -> candle_core::Result<f64> {
    let mse = (render - target)?.sqr()?.mean_all()?.to_scalar::<f32>()? as f64;
    Ok(10.0 * (1.0 / mse.max(1e-10)).log10())
}

fn mean_planes(model: &Autoencoder, views: &[&Views]) -> std::result::Result<Tensor, WildFusionError> {
    let size = model.config().image_size;
    let mut all = Vec::new();
    for chunk in views.chunks(8) {
        let z = model.encode(&input_batch(chunk, size)?)?.mean;
        all.push(model.decode_planes(&z)?.detach());
    }
    Ok(Tensor::cat(&all, 0)?)
}

/// Mean render MSE of `model`'s posterior-mean triplanes over every view of `data` (the
/// training objective without sampling noise and KL), and of an all-background image.
#[cfg(test)]
fn data_mse(
    model: &Autoencoder,
    data: &[(Scene, Views)],
    settings: &DemoSettings,
) -> std::result::Result<(f64, f64), WildFusionError> {
    let size = settings.render_size;
    let opts = settings.render_options();
    let refs: Vec<&Views> = data.iter().map(|(_, v)| v).collect();
    let planes = mean_planes(model, &refs)?;
    let bg = Tensor::new(&opts.background, &Device::Cpu)?.broadcast_as((size, size, 3))?;
    let (mut model_sum, mut bg_sum, mut n) = (0.0, 0.0, 0usize);
    for (i, (scene, v)) in data.iter().enumerate() {
        let item = planes.get(i)?;
        for (camera, target) in std::iter::once(P0).chain(scene.novel).zip(&v.targets) {
            let out = render_image(&item, model.osg(), &camera, size, size, &opts)?;
            model_sum += (out.rgb - target)?.sqr()?.mean_all()?.to_scalar::<f32>()? as f64;
            bg_sum += (&bg - target)?.sqr()?.mean_all()?.to_scalar::<f32>()? as f64;
            n += 1;
        }
    }
    Ok((model_sum / n.max(1) as f64, bg_sum / n.max(1) as f64))
}

/// Scores `model` on `heldout` scenes never trained on (data seed [`HELDOUT_SEED_BASE`]).
pub fn evaluate(
    model: &Autoencoder,
    settings: &DemoSettings,
    heldout: usize,
    ctx: &JobContext,
) -> std::result::Result<Eval, WildFusionError> {
    let cfg = model.config();
    let size = settings.render_size;
    let opts = settings.render_options();
    let decoder = model.osg();
    ctx.set(1.0, format!("evaluating on {heldout} held-out scenes"));
    let test = render_scenes(HELDOUT_SEED_BASE, heldout, cfg.image_size, size, false)?;
    let train_inputs = render_scenes(
        settings.seed,
        settings.scenes.min(MEAN_TRIPLANE_SCENES),
        cfg.image_size,
        size,
        true,
    )?;
    let refs: Vec<&Views> = train_inputs.iter().map(|(_, v)| v).collect();
    let mean = mean_planes(model, &refs)?.mean(0)?;
    let refs: Vec<&Views> = test.iter().map(|(_, v)| v).collect();
    let predicted = mean_planes(model, &refs)?;
    let bg = Tensor::new(&opts.background, &Device::Cpu)?.broadcast_as((size, size, 3))?;

    let (mut novel, mut input_view, mut background, mut mean_tp, mut views) = (0.0, 0.0, 0.0, 0.0, 0usize);
    for (i, (scene, v)) in test.iter().enumerate() {
        ctx.check().map_err(|_| WildFusionError::Cancelled)?;
        let planes = predicted.get(i)?;
        let own = render_image(&planes, decoder, &P0, size, size, &opts)?;
        input_view += psnr(&own.rgb, &v.targets[0])?;
        for (camera, target) in scene.novel.iter().zip(&v.targets[1..]) {
            novel += psnr(&render_image(&planes, decoder, camera, size, size, &opts)?.rgb, target)?;
            mean_tp += psnr(&render_image(&mean, decoder, camera, size, size, &opts)?.rgb, target)?;
            background += psnr(&bg, target)?;
            views += 1;
        }
    }
    let per_view = |s: f64| s / views.max(1) as f64;
    Ok(Eval {
        scenes: test.len(),
        novel_psnr: per_view(novel),
        input_view_psnr: input_view / test.len().max(1) as f64,
        background_psnr: per_view(background),
        mean_triplane_psnr: per_view(mean_tp),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ops::max_abs_diff;

    #[test]
    fn view_space_novel_view_equals_the_world_view() {
        // The relative camera on the object turned by −input_yaw sees what the world camera sees
        // on the object: compare the eyes after turning them back.
        let scene = Scene::sample(5, 3);
        for rel in &scene.novel {
            assert!(rel.within(&VIEW_RANGE));
            let world = scene.world_camera(rel).eye();
            let (s, c) = scene.input_yaw.to_radians().sin_cos();
            let e = rel.eye();
            let turned = [c * e[0] + s * e[2], e[1], -s * e[0] + c * e[2]];
            for k in 0..3 {
                assert!((turned[k] - world[k]).abs() < 1e-5, "{turned:?} vs {world:?}");
            }
        }
        assert_eq!(scene, Scene::sample(5, 3));
        assert_ne!(scene, Scene::sample(5, 4));
    }

    #[test]
    fn tiny_training_lowers_the_loss_and_the_file_loads_back() {
        let settings = DemoSettings::tiny(100, 7);
        let data = render_scenes(
            settings.seed,
            settings.scenes,
            settings.config.image_size,
            settings.render_size,
            false,
        )
        .unwrap();
        // The same seed builds the same starting weights as `train` does.
        let untrained = build(&SeededParams::new(settings.seed), &settings.config).unwrap();
        let (before, background) = data_mse(&untrained, &data, &settings).unwrap();
        let clock = std::time::Instant::now();
        let trained = train(&settings, &JobContext::detached(), None, None).unwrap();
        let seconds = clock.elapsed().as_secs_f64();
        let (after, _) = data_mse(&trained.model, &data, &settings).unwrap();
        eprintln!(
            "tiny: training-set render MSE {before:.5} → {after:.5} (ratio {:.3}; all-background {background:.5}), \
             {} steps in {seconds:.1} s",
            after / before,
            settings.steps
        );
        assert!(after < 0.65 * before, "render MSE {before} → {after}");
        assert!(
            after < 0.8 * background,
            "render MSE {after} vs background {background}"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let bytes = crate::core::train::encode_tensors(&trained.tensors(), &BTreeMap::new()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let again = Autoencoder::load_file(&path, &settings.config, &Device::Cpu).unwrap();
        let data = render_scenes(HELDOUT_SEED_BASE, 2, settings.config.image_size, 8, true).unwrap();
        let refs: Vec<&Views> = data.iter().map(|(_, v)| v).collect();
        let a = mean_planes(&trained.model, &refs).unwrap();
        let b = mean_planes(&again, &refs).unwrap();
        let d = max_abs_diff(&a, &b).unwrap();
        assert_eq!(d, 0.0);
        // The loaded decoder is the pass-through one it was trained through.
        let opts = settings.render_options();
        let r1 = render_image(&a.get(0).unwrap(), trained.model.osg(), &P0, 8, 8, &opts).unwrap();
        let r2 = render_image(&a.get(0).unwrap(), &analytic::decoder().unwrap(), &P0, 8, 8, &opts).unwrap();
        let d = max_abs_diff(&r1.rgb, &r2.rgb).unwrap();
        assert_eq!(d, 0.0);
        let r3 = render_image(&a.get(0).unwrap(), again.osg(), &P0, 8, 8, &opts).unwrap();
        let d = max_abs_diff(&r3.rgb, &r2.rgb).unwrap();
        assert_eq!(d, 0.0);

        let eval = evaluate(&trained.model, &settings, 2, &JobContext::detached()).unwrap();
        eprintln!("tiny eval: {eval:?}");
        assert_eq!(eval.scenes, 2);
        assert!(eval.novel_psnr.is_finite() && eval.background_psnr.is_finite() && eval.mean_triplane_psnr.is_finite());
    }

    /// Timing of the demo settings (not a check): `cargo test --lib demo_settings_step_time -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing only; renders 16 demo scenes and runs 5 demo-size steps"]
    fn demo_settings_step_time() {
        let settings = DemoSettings {
            scenes: 16,
            ..DemoSettings::demo(5, 1)
        };
        let trained = train(&settings, &JobContext::detached(), None, None).unwrap();
        eprintln!(
            "demo settings: {} scenes rendered in {:.1} s, {} steps in {:.1} s ({:.2} s/step), losses {:?}",
            trained.scenes,
            trained.data_seconds,
            settings.steps,
            trained.report.seconds,
            trained.report.seconds / settings.steps as f64,
            trained.report.losses
        );
    }
}
