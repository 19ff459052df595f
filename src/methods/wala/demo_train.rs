//! The WaLa demo autoencoder (`latent-workbench train wala-shapes-demo`): WaLa's VQ-VAE
//! architecture ([`super::vqvae`], official key names), small, trained on the wavelet trees of
//! procedural solids (`demo-data shapes`) at 64³.
//!
//! The data path is WaLa's: SDF on a 64³ grid over `[-1, 1)³`, truncated to ±0.1, bior6.8 3-level
//! DWT with the finest level dropped, packed to a 64 × 22³ tree (22 = 4·6 − 2, so a 6³ latent
//! grid). Upstream's training code is unpublished; this is the standard VQ-VAE objective, with
//! WaLa's two emphases in a simple form: the squared error is averaged per wavelet level (low-pass,
//! coarsest details, finer details) and the levels' means averaged, the per-level re-balancing
//! of WaLa's code (a plain mean over the 64 channels gives the one low-pass channel, which fixes
//! most of the surface, 1/64 of the loss); and cells whose low-pass coefficient is below the
//! empty-space value weigh [`SURFACE_WEIGHT`] more. Then the codebook term `‖sg(h) − e‖²` +
//! 0.25 · commitment `‖h − sg(e)‖²` and straight-through gradients.
//!
//! The first [`DemoSettings::ae_warmup`] steps train a plain autoencoder (the decoder sees the
//! encoder's output); then the codebook is set to encoder outputs and quantisation starts, and
//! codes unused for a while are restarted on random encoder outputs. Quantising from the first
//! step made the decoder learn the mean tree and ignore its input: a 600-step run decoded almost
//! no solid (held-out IoU 0.002) while its loss looked low, because most of a tree is the
//! constant empty space.

use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Device, Module, Tensor};
use rayon::prelude::*;

use super::roundtrip::{solid_iou, wala_layout};
use super::tree::{TreeLayout, WALA_TRUNCATION, WaveletTree, decode_tree, encode_sdf, sdf_from_volume, truncate_sdf};
use super::vqvae::{VqVae, VqVaeConfig};
use super::wavelet::Array3;
use crate::core::diffusion::Rng;
use crate::core::jobs::JobContext;
use crate::core::train::{
    AdamWConfig, CheckpointPolicy, LrSchedule, Result, SeededParams, StepOutput, TrainError, TrainLoop, TrainReport,
};
use crate::methods::demo_data::shapes::random_solid;

/// The demo's SDF grid.
pub const DEMO_GRID: usize = 64;
/// Solids must fill at least this share of the grid (as `demo-data shapes`).
pub const MIN_FILL: f64 = 0.02;
/// Commitment weight β (upstream's `beta`).
pub const BETA: f64 = 0.25;
/// Extra weight of the tree cells that touch the solid.
pub const SURFACE_WEIGHT: f64 = 4.0;
/// Seeds of the held-out shapes start here (training shapes use `0..train_shapes`).
pub const HELDOUT_SEED_BASE: u64 = 1_000_000;

/// The demo's VQ-VAE: hidden 32 (WaLa: 128), no transformer blocks (the decoder's are 128 wide
/// upstream), 256 codes of 4 channels on a 6³ grid.
pub fn demo_config() -> VqVaeConfig {
    VqVaeConfig {
        in_channels: 64,
        e_dim: 4,
        n_e: 256,
        grid_size: 6,
        encoder_num_tran: 0,
        decoder_num_tran: 0,
        l2_normalize: false,
        hidden_channel: 32,
        num_heads: 2,
    }
}

/// Everything that fixes a run besides the architecture.
#[derive(Clone, Debug)]
pub struct DemoSettings {
    pub steps: usize,
    pub seed: u64,
    pub batch: usize,
    pub lr: f64,
    pub train_shapes: usize,
    pub heldout_shapes: usize,
    /// Codes unused over this many steps are restarted (0: never).
    pub restart_every: usize,
    /// Steps of plain autoencoder training before quantisation starts.
    pub ae_warmup: usize,
}

impl DemoSettings {
    pub fn demo(steps: usize, seed: u64) -> Self {
        Self {
            steps,
            seed,
            batch: 2,
            lr: 2e-3,
            train_shapes: 160,
            heldout_shapes: 12,
            restart_every: 50,
            ae_warmup: steps * 3 / 4,
        }
    }
}

/// One shape as the autoencoder sees it.
pub struct ShapeTree {
    pub seed: u64,
    /// The truncated SDF, `[x, y, z]` order.
    pub sdf: Array3,
    pub tree: WaveletTree,
}

/// The demo's wavelet layout at `grid`³.
pub fn layout(grid: usize) -> std::result::Result<TreeLayout, TrainError> {
    wala_layout([grid; 3]).map_err(|e| TrainError::Invalid(e.to_string()))
}

/// The truncated SDF and wavelet tree of the procedural solid of `seed` at `grid`³.
pub fn shape_tree(seed: u64, grid: usize, layout: &TreeLayout) -> std::result::Result<ShapeTree, TrainError> {
    let invalid = |e: &dyn std::fmt::Display| TrainError::Invalid(e.to_string());
    let (seed, _, volume) = random_solid(seed, grid, MIN_FILL).map_err(|e| invalid(&e))?;
    let mut sdf = sdf_from_volume(&volume);
    truncate_sdf(sdf.data_mut(), WALA_TRUNCATION);
    let tree = encode_sdf(&sdf, layout).map_err(|e| invalid(&e))?;
    Ok(ShapeTree { seed, sdf, tree })
}

/// `(1, C, a, b, c)` of a packed tree (its data is already channel-major, C order).
pub fn tree_tensor(tree: &WaveletTree, device: &Device) -> candle_core::Result<Tensor> {
    let [c, a, b, d] = tree.shape();
    Tensor::from_slice(tree.data(), (1, c, a, b, d), device)
}

/// The tree of a `(1, C, a, b, c)` tensor.
pub fn tensor_tree(t: &Tensor) -> std::result::Result<WaveletTree, TrainError> {
    let (_, c, a, b, d) = t.dims5()?;
    let data = t.flatten_all()?.to_vec1::<f32>()?;
    WaveletTree::new([c, a, b, d], data).map_err(|e| TrainError::Invalid(e.to_string()))
}

/// A trained demo autoencoder.
pub struct Trained {
    pub params: SeededParams,
    pub model: VqVae,
    pub report: TrainReport,
}

/// How well held-out shapes survive encode → quantise → decode.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Evaluation {
    pub shapes: usize,
    /// Mean IoU of the solids, decoded tree against the truncated input SDF.
    pub iou: f64,
    /// The same with the encoder's output decoded unquantised (what quantisation costs).
    pub unquantised_iou: f64,
    /// The same for the analytic tree alone (no autoencoder): the ceiling.
    pub tree_iou: f64,
    /// Mean squared error of the decoded tree's coefficients.
    pub tree_mse: f64,
    /// Distinct codes used by the held-out latents.
    pub codes_used: usize,
}

/// Trains from the seed (or resumes), reporting through `ctx`.
pub fn train(
    settings: &DemoSettings,
    ctx: &JobContext,
    checkpoint: Option<CheckpointPolicy>,
    resume: Option<&std::path::Path>,
) -> Result<Trained> {
    if settings.steps == 0 || settings.batch == 0 || settings.train_shapes == 0 {
        return Err(TrainError::Invalid("steps, batch and shapes must be at least 1".into()));
    }
    let device = Device::Cpu;
    let cfg = demo_config();
    let layout = layout(DEMO_GRID)?;
    ctx.set(0.0, format!("making {} training shapes", settings.train_shapes));
    let trees: Vec<Tensor> = (0..settings.train_shapes as u64)
        .into_par_iter()
        .map(|s| shape_tree(s, DEMO_GRID, &layout).and_then(|t| Ok(tree_tensor(&t.tree, &device)?)))
        .collect::<Result<Vec<_>>>()?;
    let params = SeededParams::new(settings.seed);
    let model = VqVae::load(params.var_builder(DType::F32, &device), &cfg)?;
    let codebook_key = "quantize.embedding.weight".to_string();
    let schedule = LrSchedule::warmup_cosine(settings.lr, settings.steps);
    let mut meta = BTreeMap::new();
    meta.insert("architecture".to_string(), "wala_vqvae".to_string());
    let mut lp = TrainLoop::new(
        params.clone(),
        AdamWConfig::default(),
        schedule,
        settings.steps,
        settings.seed,
    )?
    .clip_grad_norm(1.0)
    .metadata(meta)
    .persisted(checkpoint, resume)?;
    let levels = level_weights(&layout, &device)?;
    let n = trees.len();
    let mut last_used = vec![0usize; cfg.n_e];
    let report = lp.run(ctx, |step, rng| {
        let picks: Vec<usize> = (0..settings.batch)
            .map(|_| (rng.next_u64() % n as u64) as usize)
            .collect();
        let x = Tensor::cat(&picks.iter().map(|&i| trees[i].clone()).collect::<Vec<_>>(), 0)?;
        let weights = surface_weights(&x)?.broadcast_mul(&levels)?;
        let h = model.encoder.forward(&x)?;
        if step < settings.ae_warmup {
            let sq = (model.decoder.forward(&h)? - &x)?.sqr()?;
            let mse = sq.mean_all()?;
            let loss = sq.broadcast_mul(&weights)?.mean_all()?;
            return Ok(StepOutput {
                extra: vec![("mse", mse.to_scalar::<f32>()?)],
                loss,
            });
        }
        if step == settings.ae_warmup {
            init_codebook(&model, &params, &trees, &codebook_key, settings.seed)?;
            last_used.iter_mut().for_each(|u| *u = step);
        }
        let nearest = model.quantizer.nearest(&h)?;
        let (b, c, g0, g1, g2) = h.dims5()?;
        let z = h.permute((0, 2, 3, 4, 1))?.reshape((b * g0 * g1 * g2, c))?;
        // Straight-through: the decoder sees the codes, the encoder gets the decoder's gradient.
        let st = (&z + (&nearest.codes - &z)?.detach())?;
        let latent = st.reshape((b, g0, g1, g2, c))?.permute((0, 4, 1, 2, 3))?.contiguous()?;
        let recon = model.decoder.forward(&latent)?;
        let sq = (recon - &x)?.sqr()?;
        let mse = sq.mean_all()?;
        let weighted = sq.broadcast_mul(&weights)?.mean_all()?;
        let codebook = (&nearest.codes - z.detach())?.sqr()?.mean_all()?;
        let commit = (&z - nearest.codes.detach())?.sqr()?.mean_all()?;
        let loss = ((&weighted + &codebook)? + (commit * BETA)?)?;
        for i in nearest.indices.to_vec1::<u32>()? {
            last_used[i as usize] = step;
        }
        if settings.restart_every > 0 && step > 0 && step.is_multiple_of(settings.restart_every) {
            restart_dead_codes(
                &params,
                &codebook_key,
                &z,
                &mut last_used,
                step,
                settings.restart_every,
                rng,
            )?;
        }
        Ok(StepOutput {
            extra: vec![("mse", mse.to_scalar::<f32>()?)],
            loss,
        })
    })?;
    Ok(Trained { params, model, report })
}

/// `(1, C, 1, 1, 1)`: `C / (L · |level|)` for each channel, so that the weighted mean over the
/// channels is the mean of the `L` levels' own means.
pub fn level_weights(layout: &TreeLayout, device: &Device) -> candle_core::Result<Tensor> {
    let groups = layout.level_channels();
    let c = layout.channels();
    let mut w = vec![0f32; c];
    for g in &groups {
        for ch in g.clone() {
            w[ch] = c as f32 / (groups.len() * g.len()) as f32;
        }
    }
    Tensor::from_vec(w, (1, c, 1, 1, 1), device)
}

/// `(B, 1, a, b, c)`: 1, or 1 + [`SURFACE_WEIGHT`] where the low-pass channel is below 90 % of its
/// largest value (the truncated empty space) in that tree.
fn surface_weights(x: &Tensor) -> candle_core::Result<Tensor> {
    let c0 = x.narrow(1, 0, 1)?;
    let top = c0.flatten_from(1)?.max_keepdim(1)?.reshape((x.dim(0)?, 1, 1, 1, 1))?;
    let near = c0.broadcast_lt(&(top * 0.9)?)?.to_dtype(c0.dtype())?;
    (near * SURFACE_WEIGHT)? + 1.0
}

/// The codebook set to encoder outputs of random training cells (plus a little noise), so that
/// every code starts where the latents are.
fn init_codebook(
    model: &VqVae,
    params: &SeededParams,
    trees: &[Tensor],
    key: &str,
    seed: u64,
) -> candle_core::Result<()> {
    let mut rng = Rng::new(seed ^ 0xC0DE);
    let take = trees.len().min(16);
    let mut rows = Vec::new();
    for t in trees.iter().take(take) {
        let h = model.encoder.forward(t)?;
        let (b, c, g0, g1, g2) = h.dims5()?;
        rows.push(h.permute((0, 2, 3, 4, 1))?.reshape((b * g0 * g1 * g2, c))?);
    }
    let z = Tensor::cat(&rows, 0)?;
    set_codes(params, key, &z, &(0..model.config().n_e).collect::<Vec<_>>(), &mut rng)
}

/// Codes not chosen in the last `window` steps move to random rows of `z` (the current batch's
/// latents).
fn restart_dead_codes(
    params: &SeededParams,
    key: &str,
    z: &Tensor,
    last_used: &mut [usize],
    step: usize,
    window: usize,
    rng: &mut Rng,
) -> candle_core::Result<()> {
    let dead: Vec<usize> = (0..last_used.len())
        .filter(|&i| step.saturating_sub(last_used[i]) >= window)
        .collect();
    if dead.is_empty() {
        return Ok(());
    }
    for &i in &dead {
        last_used[i] = step;
    }
    set_codes(params, key, &z.detach(), &dead, rng)
}

/// Codes `which` set to random rows of `z` plus 1 % noise.
fn set_codes(params: &SeededParams, key: &str, z: &Tensor, which: &[usize], rng: &mut Rng) -> candle_core::Result<()> {
    let rows = z.dim(0)?;
    let z = z.to_vec2::<f32>()?;
    let vars: HashMap<String, candle_core::Var> = params.named_vars().into_iter().collect();
    let var = vars
        .get(key)
        .ok_or_else(|| candle_core::Error::Msg(format!("no parameter {key}")))?;
    let mut book = var.as_tensor().to_vec2::<f32>()?;
    let scale = z.iter().flatten().map(|v| v.abs()).fold(0.0f32, f32::max).max(1e-3) * 0.01;
    for &i in which {
        let r = &z[(rng.next_u64() % rows as u64) as usize];
        book[i] = r.iter().map(|v| v + scale * rng.normals_f32(1)[0]).collect();
    }
    let (n, c) = (book.len(), book.first().map_or(0, Vec::len));
    let flat: Vec<f32> = book.into_iter().flatten().collect();
    var.set(&Tensor::from_vec(flat, (n, c), var.device())?)
}

/// Held-out shapes through the trained autoencoder (as WaLa decodes: quantise, then decode).
pub fn evaluate(model: &VqVae, shapes: usize, ctx: &JobContext) -> Result<Evaluation> {
    let device = Device::Cpu;
    let layout = layout(DEMO_GRID)?;
    let (mut iou, mut unquantised_iou, mut tree_iou, mut mse) = (0.0, 0.0, 0.0, 0.0);
    let mut codes = std::collections::BTreeSet::new();
    for i in 0..shapes {
        ctx.check().map_err(|_| TrainError::Cancelled)?;
        ctx.set(
            i as f32 / shapes.max(1) as f32,
            format!("evaluating held-out shape {}", i + 1),
        );
        let shape = shape_tree(HELDOUT_SEED_BASE + i as u64, DEMO_GRID, &layout)?;
        let x = tree_tensor(&shape.tree, &device)?;
        let h = model.encoder.forward(&x)?;
        let q = model.quantizer.quantize(&h)?;
        codes.extend(q.indices.to_vec1::<u32>()?);
        let y = model.decoder.forward(&q.latent)?;
        mse += (&y - &x)?.sqr()?.mean_all()?.to_scalar::<f32>()? as f64;
        let solid = |y: &Tensor| -> Result<f64> {
            let decoded = decode_tree(&tensor_tree(y)?, &layout).map_err(|e| TrainError::Invalid(e.to_string()))?;
            Ok(solid_iou(shape.sdf.data(), decoded.data()))
        };
        iou += solid(&y)?;
        unquantised_iou += solid(&model.decoder.forward(&h)?)?;
        let analytic = decode_tree(&shape.tree, &layout).map_err(|e| TrainError::Invalid(e.to_string()))?;
        tree_iou += solid_iou(shape.sdf.data(), analytic.data());
    }
    let k = shapes.max(1) as f64;
    Ok(Evaluation {
        shapes,
        iou: iou / k,
        unquantised_iou: unquantised_iou / k,
        tree_iou: tree_iou / k,
        tree_mse: mse / k,
        codes_used: codes.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_trees_fit_the_demo_autoencoder() {
        let layout = layout(DEMO_GRID).unwrap();
        let cfg = demo_config();
        assert_eq!(
            layout.tree_shape(),
            [64, cfg.input_side(), cfg.input_side(), cfg.input_side()]
        );
        let shape = shape_tree(3, DEMO_GRID, &layout).unwrap();
        let t = tree_tensor(&shape.tree, &Device::Cpu).unwrap();
        assert_eq!(tensor_tree(&t).unwrap().data(), shape.tree.data());
    }

    #[test]
    fn level_weights_average_the_levels_means() {
        let layout = layout(DEMO_GRID).unwrap();
        let w = level_weights(&layout, &Device::Cpu).unwrap().flatten_all().unwrap();
        let w = w.to_vec1::<f32>().unwrap();
        // An error of 1 in one level only: that level's mean is 1, the others 0, so 1/3 overall.
        for g in layout.level_channels() {
            let only: f32 = g.clone().map(|ch| w[ch]).sum::<f32>() / w.len() as f32;
            assert!((only - 1.0 / 3.0).abs() < 1e-6, "{g:?}: {only}");
        }
        assert!((w[0] - 64.0 / 3.0).abs() < 1e-5, "the low-pass channel: {}", w[0]);
    }

    #[test]
    fn a_few_steps_lower_the_loss_and_keep_codes_alive() {
        let settings = DemoSettings {
            steps: 12,
            batch: 1,
            train_shapes: 3,
            restart_every: 4,
            lr: 3e-3,
            ..DemoSettings::demo(12, 5)
        };
        let ctx = JobContext::detached();
        let trained = train(&settings, &ctx, None, None).unwrap();
        let losses = &trained.report.losses;
        assert_eq!(losses.len(), 12);
        assert!(losses.iter().all(|l| l.is_finite()));
        let first = losses[..3].iter().sum::<f32>();
        let last = losses[9..].iter().sum::<f32>();
        assert!(last < first, "loss {first} → {last}");
    }
}
