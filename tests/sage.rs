//! The failure search end to end on a toy generator whose failures are known in closed form, and
//! SAGE's gradient paths through the real demo generator's sampler.

use candle_core::{DType, Device, Tensor, Var};
use latent_workbench::core::jobs::{self, JobContext, JobError};
use latent_workbench::core::train::SeededParams;
use latent_workbench::methods::sage::classifier::{Ensemble, ImageClassifier};
use latent_workbench::methods::sage::generator::{Generator, GradientPath, PRIOR_DIFFUSION_STEPS, SpriteGenerator};
use latent_workbench::methods::sage::prior::{LatentPrior, PriorConfig};
use latent_workbench::methods::sage::renderer::CODE_DIM;
use latent_workbench::methods::sage::search::{Mode, Objective, Search, SearchConfig, SearchState, Stopped};

mod common;
#[path = "common/resnet_folder.rs"]
mod resnet_folder;

const D_LATENT: usize = 64;
/// The conditioned channel's head start in the toy's logits.
const HEAD_START: f32 = 5.0;

/// Three-channel 4×4 "images": channel k = sigmoid(z_k + 5·[k = class]), flat over the pixels. A
/// class is drawn when its channel is the brightest, so a latent fails when some z_j − z_class > 5:
/// for a draw of N(0, I) that is a 3.5σ event (z_j − z_class ~ N(0, 2)), yet on the typical sphere
/// (radius 8) it is easy to reach. Failures are rare but exist: what a search is for.
struct ToyGenerator;

impl ToyGenerator {
    fn new() -> Self {
        Self
    }
}

impl Generator for ToyGenerator {
    fn name(&self) -> &str {
        "toy"
    }
    fn latent_dim(&self) -> usize {
        D_LATENT
    }
    fn class_names(&self) -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }
    fn condition_embedding(&self, classes: &[usize]) -> candle_core::Result<Tensor> {
        let v: Vec<f32> = classes
            .iter()
            .flat_map(|&c| (0..3).map(move |k| if k == c { HEAD_START } else { 0.0 }))
            .collect();
        Tensor::from_vec(v, (classes.len(), 3), &Device::Cpu)
    }
    fn generate(&self, z: &Tensor, cond: &Tensor, path: GradientPath) -> candle_core::Result<Tensor> {
        let z = if path == GradientPath::None {
            z.detach()
        } else {
            z.clone()
        };
        let logits = (z.narrow(1, 0, 3)? + cond)?;
        let n = z.dim(0)?;
        candle_nn::ops::sigmoid(&logits)?
            .reshape((n, 3, 1, 1))?
            .broadcast_as((n, 3, 4, 4))?
            .contiguous()
    }
    fn steps(&self) -> usize {
        1
    }
    /// The brightest channel is the class drawn.
    fn drawn_shares(&self, z: &Tensor, cond: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let top = (z.narrow(1, 0, 3)? + cond)?.argmax(1)?.to_vec1::<u32>()?;
        let one_hot: Vec<f32> = top
            .iter()
            .flat_map(|&t| (0..3).map(move |k| if k == t as usize { 1.0 } else { 0.0 }))
            .collect();
        Tensor::from_vec(one_hot, (top.len(), 3), z.device()).map(Some)
    }
}

/// Reads the channel means with a per-classifier gain: members and the judge disagree a little.
struct ToyClassifier {
    name: String,
    gain: f64,
}

impl ImageClassifier for ToyClassifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn labels(&self) -> Vec<String> {
        ["red", "green", "blue"].map(String::from).to_vec()
    }
    fn logits(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        images.mean((2, 3))? * self.gain
    }
}

fn toy_ensemble() -> Ensemble {
    let c = |name: &str, gain| {
        Box::new(ToyClassifier {
            name: name.into(),
            gain,
        }) as Box<dyn ImageClassifier>
    };
    Ensemble {
        members: vec![(c("m1", 20.0), 1.0), (c("m2", 30.0), 1.0)],
        held_out: Some(c("judge", 25.0)),
    }
}

fn config(mode: Mode, budget: usize) -> SearchConfig {
    SearchConfig {
        objective: Objective::Unrelated,
        class: 0,
        mode,
        restarts: 12,
        budget,
        lr: 0.3,
        seed: 3,
        ..SearchConfig::default()
    }
}

fn run(g: &dyn Generator, e: &Ensemble, cfg: SearchConfig) -> latent_workbench::methods::sage::search::SearchResult {
    let search = Search::new(g, e, cfg).unwrap();
    match search.run(search.initial_state().unwrap(), &JobContext::detached(), &mut |_, _| {}) {
        Ok(r) => r,
        Err(Stopped::Failed(e)) => panic!("{e}"),
        Err(Stopped::Cancelled(_)) => panic!("cancelled"),
    }
}

#[test]
fn gradient_search_finds_held_out_confirmed_failures_that_random_search_misses() {
    let (g, e) = (ToyGenerator::new(), toy_ensemble());
    let grad = run(&g, &e, config(Mode::Skip { exact_last: 0 }, 60));
    let random = run(&g, &e, config(Mode::Random, 60));
    assert_eq!(grad.generator_calls, random.generator_calls, "equal budgets");
    assert_eq!(grad.image_shape, [3, 4, 4], "the toy's images");
    let (gs, rs) = (grad.summary(), random.summary());
    // Random draws keep the head start: 30 draws per restart rarely hold a 3.5σ one.
    assert!(rs.ssr_auto < 0.2, "{rs:?}");
    assert!(gs.ssr_auto > 0.8 && gs.held_out_confirmed_rate.unwrap() > 0.8, "{gs:?}");
    // The toy's classifiers read its images truly, so every confirmation is a real failure by
    // the generator's own account, and nothing else is.
    assert_eq!(
        gs.confirmed_generator_failure_rate, gs.held_out_confirmed_rate,
        "{gs:?}"
    );
    for c in &grad.candidates {
        let real = c.generator_failure.expect("the toy knows what it drew");
        assert_eq!(real, c.held_out_success.unwrap(), "{c:?}");
    }
    for c in &grad.candidates {
        // Re-projection keeps every updated latent on the typical sphere.
        assert!(c.iteration == 0 || (c.norm_ratio.unwrap() - 1.0).abs() < 1e-4, "{c:?}");
        assert_eq!(c.failure_type, "unrelated");
        assert!(c.ks_p.unwrap() >= 0.0 && c.ks_p.unwrap() <= 1.0);
    }
    // The loss curve goes down and every member's probability of the class with it.
    let (first, last) = (&grad.history[0], grad.history.last().unwrap());
    assert!(last.best_loss < first.loss, "{first:?} {last:?}");
    assert!(last.member_probs.iter().zip(&first.member_probs).all(|(l, f)| l < f));
    // Evolution (no gradients) gets there too at this budget, more slowly.
    let es = run(
        &g,
        &e,
        config(
            Mode::Evolution {
                population: 4,
                sigma: 0.1,
            },
            240,
        ),
    );
    assert!(es.summary().ssr_auto > rs.ssr_auto, "{:?}", es.summary());
}

#[test]
fn screening_draws_come_first_and_the_steps_start_from_each_restarts_best_draw() {
    let (g, e) = (ToyGenerator::new(), toy_ensemble());
    let cfg = SearchConfig {
        screen: 10,
        ..config(Mode::Skip { exact_last: 0 }, 60)
    };
    assert_eq!(cfg.iterations(3), 10 + 25, "10 draws, then 25 steps of two calls");
    assert_eq!(cfg.calls_per_restart(3), 60);
    let search = Search::new(&g, &e, cfg).unwrap();
    let mut after_screening = None;
    let result = match search.run(search.initial_state().unwrap(), &JobContext::detached(), &mut |_, s| {
        if s.iteration == 10 {
            after_screening = Some(s.clone());
        }
    }) {
        Ok(r) => r,
        Err(_) => panic!("the search failed"),
    };
    assert_eq!(
        result.generator_calls,
        run(&g, &e, config(Mode::Random, 60)).generator_calls
    );
    let calls: Vec<usize> = result.history.iter().map(|h| h.calls).collect();
    assert_eq!((calls[0], calls[9], calls[10], calls[34]), (1, 10, 12, 60), "{calls:?}");
    let s = after_screening.expect("the observer saw the end of screening");
    assert_eq!(s.current, s.best, "the first step starts from the best draw");
    assert_eq!(s.adam_m, vec![0.0; s.adam_m.len()], "no step taken while screening");
    // At most half the budget goes to screening.
    assert_eq!(SearchConfig { screen: 50, ..cfg }.iterations(3), 30 + 15);
    // Random search and embeddings have nothing to screen.
    assert_eq!(
        SearchConfig {
            screen: 10,
            ..config(Mode::Random, 60)
        }
        .screening_iterations(3),
        0
    );
}

#[test]
fn a_run_repeats_exactly_and_a_cancelled_run_resumes_to_the_same_result() {
    let (g, e) = (ToyGenerator::new(), toy_ensemble());
    // Plain, and cancelled while still screening.
    for cfg in [
        config(Mode::Backprop, 40),
        SearchConfig {
            screen: 8,
            ..config(Mode::Backprop, 40)
        },
    ] {
        resumes_to_the_same_result(&g, &e, cfg);
    }
}

fn resumes_to_the_same_result(g: &ToyGenerator, e: &Ensemble, cfg: SearchConfig) {
    let full = run(g, e, cfg);
    assert_eq!(full.candidates, run(g, e, cfg).candidates);
    // Cancel after five iterations: the job hands back its state; resume it from JSON.
    let h = jobs::spawn("sage", None, move |ctx| {
        let (g, e) = (ToyGenerator::new(), toy_ensemble());
        let search = Search::new(&g, &e, cfg).unwrap();
        let mut seen = 0;
        let out = search.run(search.initial_state().unwrap(), ctx, &mut |_, _| {
            seen += 1;
            if seen == 5 {
                ctx.progress().cancel();
            }
        });
        match out {
            Err(Stopped::Cancelled(state)) => Ok(serde_json::to_string(&*state).unwrap()),
            _ => Err(JobError::Failed("expected a cancelled search".into())),
        }
    });
    let saved: SearchState = serde_json::from_str(&h.wait().unwrap()).unwrap();
    assert_eq!(saved.iteration, 5, "stops within one iteration of the request");
    let search = Search::new(g, e, cfg).unwrap();
    let resumed = match search.run(saved.clone(), &JobContext::detached(), &mut |_, _| {}) {
        Ok(r) => r,
        Err(_) => panic!("resume failed"),
    };
    assert_eq!(resumed.candidates, full.candidates);
    assert_eq!(resumed.history, full.history);
    // Settings that differ from the saved ones are refused.
    let other = Search::new(g, e, SearchConfig { lr: 0.2, ..cfg }).unwrap();
    assert!(matches!(
        other.run(saved, &JobContext::detached(), &mut |_, _| {}),
        Err(Stopped::Failed(_))
    ));
}

#[test]
fn the_live_preview_shows_the_best_restart_as_its_candidate_is_drawn() {
    let (g, e) = (ToyGenerator::new(), toy_ensemble());
    let cfg = config(Mode::Backprop, 20);
    let search = Search::new(&g, &e, cfg).unwrap();
    let mut last: Option<SearchState> = None;
    let result = match search.run(search.initial_state().unwrap(), &JobContext::detached(), &mut |_, s| {
        last = Some(s.clone());
    }) {
        Ok(r) => r,
        Err(_) => panic!("the search failed"),
    };
    let state = last.expect("the observer saw every iteration");
    let (k, image) = search.preview(&state).unwrap().expect("a best restart");
    let lowest = (0..cfg.restarts)
        .min_by(|&a, &b| {
            result.candidates[a]
                .objective_value
                .total_cmp(&result.candidates[b].objective_value)
        })
        .unwrap();
    assert_eq!(k, lowest);
    let drawn = image.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(
        drawn, result.candidates[k].images[0],
        "the same latent under the searched class"
    );
    let fresh = search.initial_state().unwrap();
    assert!(
        search.preview(&fresh).unwrap().is_none(),
        "nothing to show before the first iteration"
    );
}

#[test]
fn distorted_and_switch_objectives_find_their_failures() {
    let (g, e) = (ToyGenerator::new(), toy_ensemble());
    // Distorted: a latent that fails under every condition cannot exist in the toy (under the
    // condition of its largest z_k that channel always wins), so the search must report none,
    // however far it pushes the objective.
    let d = run(
        &g,
        &e,
        SearchConfig {
            objective: Objective::Distorted,
            ..config(Mode::Skip { exact_last: 0 }, 60)
        },
    );
    assert!(d.history.last().unwrap().best_loss < d.history[0].loss);
    assert_eq!(d.candidates[0].member_probs.len(), 3, "one image per condition");
    assert_eq!(d.summary().ssr_auto, 0.0, "{:?}", d.summary());
    // Switch: an embedding near class a's that draws class b.
    let s = run(
        &g,
        &e,
        SearchConfig {
            objective: Objective::SwitchCondition { target: 1 },
            embedding_penalty: 0.1,
            ..config(Mode::Backprop, 800)
        },
    );
    let summary = s.summary();
    assert!(
        summary.ssr_auto > 0.9 && summary.held_out_confirmed_rate.unwrap() > 0.9,
        "{summary:?}"
    );
    assert!(s.candidates.iter().all(|c| c.ks_p.is_none() && c.variable.len() == 3));
    // Random search has no distribution over embeddings: refused with a reason.
    let e2 = toy_ensemble();
    let err = Search::new(
        &g,
        &e2,
        SearchConfig {
            objective: Objective::SwitchCondition { target: 1 },
            ..config(Mode::Random, 10)
        },
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("random"), "{err}");
}

/// The demo generator's architecture with a randomly initialised prior: the sampler and renderer
/// are real, the weights are not (the gradient paths do not depend on them). Codes are
/// de-standardised around a plausible sprite so the renderer draws something.
fn random_sprite_generator(steps: usize) -> SpriteGenerator {
    let params = SeededParams::new(9);
    let config = PriorConfig {
        latent_dim: CODE_DIM,
        width: 32,
        blocks: 1,
        classes: 3,
    };
    let prior = LatentPrior::new(config, params.var_builder(DType::F32, &Device::Cpu)).unwrap();
    // A random ε head predicts O(1) noise, which the first DDIM step divides by √ᾱ ≈ 0.07 and
    // the renderer then saturates (zero gradients everywhere); a small head keeps the sampler
    // in the range where the renderer responds.
    for (name, var) in params.named_vars() {
        if name.starts_with("out.") {
            var.set(&(var.as_tensor() * 0.01).unwrap()).unwrap();
        }
    }
    // Squares: the heart's soft edge bends sharply within a few hundredths of a pixel, too fine
    // for finite differences through the sampler's ×15 (the renderer's own test checks it).
    let mean = Tensor::new(
        &[[3.0f32, 0.0, -3.0, 0.75, 0.7, 0.7, 0.5, 0.5, 0.5, 0.5, 0.5]],
        &Device::Cpu,
    )
    .unwrap();
    let std = Tensor::new(
        &[[0.1f32, 0.1, 0.1, 0.15, 0.5, 0.5, 0.3, 0.3, 0.4, 0.4, 0.4]],
        &Device::Cpu,
    )
    .unwrap();
    let names = vec!["square".into(), "ellipse".into(), "heart".into()];
    SpriteGenerator::from_parts(
        "random".into(),
        String::new(),
        prior,
        mean,
        std,
        PRIOR_DIFFUSION_STEPS,
        names,
    )
    .unwrap()
    .with_steps(steps)
    .unwrap()
}

#[test]
fn the_skip_gradient_is_the_decoder_gradient_at_the_generated_latent_and_full_backprop_is_exact() {
    let g = random_sprite_generator(4);
    let d = g.latent_dim();
    // Small starting latents: the sampler scales z_T by about 1/√ᾱ_T ≈ 15 on the way to z₀.
    let z = (Tensor::from_vec(
        latent_workbench::core::diffusion::Rng::new(1).normals_f32(2 * d),
        (2, d),
        &Device::Cpu,
    )
    .unwrap()
        * 0.05)
        .unwrap();
    let cond = g.condition_embedding(&[0, 2]).unwrap();
    // A fixed random linear readout of the image as the loss.
    let probe = Tensor::from_vec(
        latent_workbench::core::diffusion::Rng::new(2).normals_f32(2 * 3 * 64 * 64),
        (2, 3, 64, 64),
        &Device::Cpu,
    )
    .unwrap();
    let loss_of = |images: &Tensor| (images * &probe).unwrap().sum_all().unwrap();
    let grad = |path: GradientPath, at: &Tensor| {
        let var = Var::from_tensor(at).unwrap();
        let l = loss_of(&g.generate(var.as_tensor(), &cond, path).unwrap());
        l.backward().unwrap().get(var.as_tensor()).unwrap().clone()
    };
    let skip = grad(GradientPath::Skip { exact_last: 0 }, &z);
    // The same images with no gradient path give the same pixels.
    let plain = g.generate(&z, &cond, GradientPath::None).unwrap();
    let tracked = g.generate(&z, &cond, GradientPath::Skip { exact_last: 0 }).unwrap();
    assert_eq!(max_abs(&(plain - &tracked).unwrap()), 0.0);
    // The skip gradient is the decoder's gradient at the generated latent z₀: the residual path
    // stands in for dz₀/dz_T with the identity.
    let z0 = Var::from_tensor(&g.denoise(&z, &cond, GradientPath::None).unwrap()).unwrap();
    let decoder_grad = loss_of(&g.decode_standardised(z0.as_tensor()).unwrap())
        .backward()
        .unwrap()
        .get(z0.as_tensor())
        .unwrap()
        .clone();
    assert_eq!(skip.to_vec2::<f32>().unwrap(), decoder_grad.to_vec2::<f32>().unwrap());
    // Full backpropagation matches central finite differences of the loss along a direction
    // (without the x̂₀ clamp, which makes the sampler piecewise).
    let g = random_sprite_generator(4).with_x0_clip(None);
    let grad = |path: GradientPath, at: &Tensor| {
        let var = Var::from_tensor(at).unwrap();
        let l = loss_of(&g.generate(var.as_tensor(), &cond, path).unwrap());
        l.backward().unwrap().get(var.as_tensor()).unwrap().clone()
    };
    let skip = grad(GradientPath::Skip { exact_last: 0 }, &z);
    let full = grad(GradientPath::Full, &z);
    let dir = Tensor::from_vec(
        latent_workbench::core::diffusion::Rng::new(3).normals_f32(2 * d),
        (2, d),
        &Device::Cpu,
    )
    .unwrap();
    // The sampler multiplies z_T by about 15 on its way to z₀: a small step, a loose tolerance.
    let h = 3e-4;
    let at = |s: f64| {
        let zz = (&z + (&dir * s).unwrap()).unwrap();
        loss_of(&g.generate(&zz, &cond, GradientPath::None).unwrap())
            .to_scalar::<f32>()
            .unwrap() as f64
    };
    let fd = (at(h) - at(-h)) / (2.0 * h);
    assert!(max_abs(&full) > 1e-2, "a gradient to check");
    let analytic = (&full * &dir).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() as f64;
    assert!(
        (fd - analytic).abs() <= 0.1 * analytic.abs().max(1.0),
        "fd {fd} vs backprop {analytic}"
    );
    // The skip gradient is an approximation: it differs from the exact one, and exact_last = all
    // steps gives the exact one back.
    let exact_all = grad(GradientPath::Skip { exact_last: 4 }, &z);
    let diff = |a: &Tensor, b: &Tensor| max_abs(&(a - b).unwrap());
    let top = max_abs(&full);
    assert!(diff(&exact_all, &full) < 1e-4 * top.max(1.0));
    assert!(diff(&skip, &full) > 0.01 * top, "{} vs {top}", diff(&skip, &full));
}

/// max |t|.
fn max_abs(t: &Tensor) -> f32 {
    t.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
}

/// Stable Diffusion as the search target: a tiny random diffusers pipeline
/// (`tests/fixtures/make_sage_sd.py`) against what diffusers' `StableDiffusionPipeline` with
/// `DDIMScheduler` made of the same starting noise.
mod stable_diffusion {
    use super::*;
    use latent_workbench::methods::sage::stable_diffusion::{SdOptions, StableDiffusionGenerator};
    use std::collections::HashMap;
    use std::path::PathBuf;

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sage")
    }

    fn reference() -> HashMap<String, Tensor> {
        candle_core::safetensors::load(fixtures().join("tiny-sd-reference.safetensors"), &Device::Cpu).unwrap()
    }

    fn options(steps: usize, guidance: f64) -> SdOptions {
        SdOptions {
            height: Some(16),
            width: Some(16),
            steps,
            guidance,
            prompt_template: "a photo of a {}".into(),
            classes: vec!["cat".into(), "dog".into()],
        }
    }

    fn load(steps: usize, guidance: f64) -> StableDiffusionGenerator {
        StableDiffusionGenerator::load(&fixtures().join("tiny-sd"), &options(steps, guidance), &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        latent_workbench::core::ops::max_abs_diff(a, b).unwrap()
    }

    #[test]
    fn prompts_embed_as_the_transformers_text_encoder_does() {
        let g = load(4, 7.5);
        let r = reference();
        let emb = g.condition_embedding(&[0, 1]).unwrap();
        let want = r["embeddings"].flatten_from(1).unwrap();
        assert_eq!(emb.dims(), want.dims());
        let d = max_diff(&emb, &want);
        assert!(d < 1e-5, "text embedding differs by {d}");
    }

    #[test]
    fn images_match_diffusers_with_and_without_guidance() {
        let r = reference();
        let z = r["latents"].flatten_from(1).unwrap();
        for (steps, guidance, key) in [
            (3, 1.0, "images_steps3_guidance1.0"),
            (4, 7.5, "images_steps4_guidance7.5"),
        ] {
            let g = load(steps, guidance);
            assert_eq!(g.steps(), steps);
            assert_eq!(g.latent_dim(), 4 * 8 * 8);
            let cond = g.condition_embedding(&[0, 1]).unwrap();
            let images = g.generate(&z, &cond, GradientPath::None).unwrap();
            assert_eq!(images.dims(), [2, 3, 16, 16]);
            let d = max_diff(&images, &r[key]);
            assert!(d < 1e-4, "{key}: images differ from diffusers by {d}");
        }
    }

    #[test]
    fn the_skip_path_reaches_the_noise_and_exact_backpropagation_is_refused_with_the_reason() {
        let g = load(2, 7.5);
        let z = Var::from_tensor(&reference()["latents"].flatten_from(1).unwrap()).unwrap();
        let cond = g.condition_embedding(&[0, 1]).unwrap();
        let images = g
            .generate(z.as_tensor(), &cond, GradientPath::Skip { exact_last: 0 })
            .unwrap();
        let grads = images.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let gz = grads.get(z.as_tensor()).expect("a gradient w.r.t. the starting noise");
        let norm = gz.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(norm.is_finite() && norm > 0.0, "gradient norm² {norm}");
        // The skip path changes gradients only: the images are those of no gradient.
        let plain = g.generate(z.as_tensor(), &cond, GradientPath::None).unwrap();
        assert_eq!(max_diff(&images, &plain), 0.0);
        for path in [GradientPath::Full, GradientPath::Skip { exact_last: 1 }] {
            let err = g.generate(z.as_tensor(), &cond, path).unwrap_err().to_string();
            assert!(err.contains("no backward"), "{err}");
        }
    }

    /// Class k's logit is the mean of colour channel k, scaled: a stand-in judge for 2 classes.
    struct ChannelMeans(f64);

    impl ImageClassifier for ChannelMeans {
        fn name(&self) -> &str {
            "channel-means"
        }
        fn labels(&self) -> Vec<String> {
            vec!["cat".into(), "dog".into()]
        }
        fn logits(&self, images: &Tensor) -> candle_core::Result<Tensor> {
            images.narrow(1, 0, 2)?.mean((2, 3))? * self.0
        }
    }

    #[test]
    fn the_search_drives_stable_diffusion_with_the_skip_path_and_gradient_free() {
        let g = load(2, 7.5);
        let ensemble = Ensemble {
            members: vec![(Box::new(ChannelMeans(40.0)) as Box<dyn ImageClassifier>, 1.0)],
            held_out: Some(Box::new(ChannelMeans(30.0))),
        };
        for mode in [Mode::Skip { exact_last: 0 }, Mode::Random] {
            let cfg = SearchConfig {
                restarts: 2,
                budget: 6,
                screen: 2,
                ..config(mode, 6)
            };
            let result = run(&g, &ensemble, cfg);
            assert_eq!(result.image_shape, [3, 16, 16]);
            assert_eq!(result.candidates.len(), 2, "{mode:?}");
            assert!(
                result.generator_calls > 0 && result.generator_calls <= 2 * 6,
                "{mode:?}"
            );
        }
        // Backpropagation through the UNet is refused with its reason, not a panic.
        let search = Search::new(&g, &ensemble, config(Mode::Backprop, 4)).unwrap();
        match search.run(search.initial_state().unwrap(), &JobContext::detached(), &mut |_, _| {}) {
            Err(Stopped::Failed(e)) => assert!(e.to_string().contains("no backward"), "{e}"),
            _ => panic!("backprop through candle-transformers' UNet should fail"),
        }
    }

    #[test]
    fn a_broken_folder_is_refused_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("lw-sd-broken-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let copy = |rel: &str| {
            let to = dir.join(rel);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(fixtures().join("tiny-sd").join(rel), to).unwrap();
        };
        for rel in [
            "unet/config.json",
            "vae/config.json",
            "text_encoder/config.json",
            "scheduler/scheduler_config.json",
            "tokenizer/vocab.json",
            "tokenizer/merges.txt",
            "unet/diffusion_pytorch_model.safetensors",
            "vae/diffusion_pytorch_model.safetensors",
        ] {
            copy(rel);
        }
        let err = StableDiffusionGenerator::load(&dir, &options(2, 7.5), &Device::Cpu)
            .err()
            .expect("no text encoder weights")
            .to_string();
        assert!(err.contains("text_encoder") && err.contains("no weights file"), "{err}");
        std::fs::write(dir.join("unet/config.json"), "{\"block_out_channels\": [8, 16]").unwrap();
        let err = StableDiffusionGenerator::load(&dir, &options(2, 7.5), &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("unet/config.json") && err.contains("not valid JSON"),
            "{err}"
        );
        let nan_guidance = SdOptions {
            guidance: f64::NAN,
            ..options(2, 7.5)
        };
        let err = StableDiffusionGenerator::load(&fixtures().join("tiny-sd"), &nan_guidance, &Device::Cpu)
            .err()
            .expect("a NaN guidance scale")
            .to_string();
        assert!(err.contains("guidance"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A user's torchvision ResNet as a classifier: the differentiable resize and the network against
/// torch/torchvision (`tests/fixtures/make_sage_resnet.py`; weights by formula, see there), label
/// alignment, and a whole search of the tiny Stable Diffusion pipeline judged by ResNets.
mod resnet {
    use super::resnet_folder;
    use super::*;
    use latent_workbench::core::ops::resize_bilinear_antialias;
    use latent_workbench::methods::sage::classifier::aligned;
    use latent_workbench::methods::sage::resnet::{LABELS_FILE, TorchvisionResNet};
    use std::collections::HashMap;
    use std::path::PathBuf;

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sage")
    }

    fn reference() -> HashMap<String, Tensor> {
        candle_core::safetensors::load(fixtures().join("resnet-reference.safetensors"), &Device::Cpu).unwrap()
    }

    use super::common::rel_err as rel;

    /// ‖ours − reference‖ / ‖reference‖.
    fn l2_rel(ours: &Tensor, reference: &Tensor) -> f32 {
        let d = (ours - reference)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let r = reference.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        (d / r).sqrt()
    }

    /// `<f(x), g>`'s gradient w.r.t. `x`.
    fn input_gradient(f: impl Fn(&Tensor) -> Tensor, x: &Tensor, g: &Tensor) -> (Tensor, Tensor) {
        let v = Var::from_tensor(x).unwrap();
        let y = f(v.as_tensor());
        let grads = (&y * g).unwrap().sum_all().unwrap().backward().unwrap();
        (y.detach(), grads.get(v.as_tensor()).unwrap().clone())
    }

    #[test]
    fn the_resize_matches_torch_antialiased_bilinear_with_its_gradient() {
        let r = reference();
        for tag in ["up", "mixed", "down"] {
            let x = &r[&format!("resize_{tag}_in")];
            let want = &r[&format!("resize_{tag}_out")];
            let (_, _, h, w) = want.dims4().unwrap();
            let (y, grad) = input_gradient(
                |x| resize_bilinear_antialias(x, h, w).unwrap(),
                x,
                &r[&format!("resize_{tag}_g")],
            );
            assert!(rel(&y, want) < 1e-5, "{tag}: forward {}", rel(&y, want));
            let want_grad = &r[&format!("resize_{tag}_grad")];
            assert!(
                rel(&grad, want_grad) < 1e-5,
                "{tag}: gradient {}",
                rel(&grad, want_grad)
            );
        }
    }

    #[test]
    fn resnet_18_and_50_match_torchvision_with_input_gradients() {
        let r = reference();
        let labels = ["a", "b", "c", "d", "e"];
        for depth in [18, 50] {
            let dir = std::env::temp_dir().join(format!("lw-resnet{depth}-{}", std::process::id()));
            resnet_folder::write(&dir, depth, &labels.join("\n"));
            let net = TorchvisionResNet::load(&dir, &Device::Cpu).unwrap();
            assert_eq!(net.depth(), depth);
            assert_eq!(net.labels(), labels);
            let key = |k: &str| r[&format!("resnet{depth}_{k}")].clone();
            let (logits, grad) = input_gradient(|x| net.logits(x).unwrap(), &key("images"), &key("g"));
            assert!(
                rel(&logits, &key("logits")) < 1e-4,
                "resnet{depth}: logits {}",
                rel(&logits, &key("logits"))
            );
            // The reference gradient is torch's in float64; a ReLU network's input gradient is
            // only as good in float32 as torch's own float32 one (units near zero flip).
            let torch32 = key("grad32_err").to_vec1::<f32>().unwrap()[0];
            let ours = l2_rel(&grad, &key("grad"));
            assert!(
                ours <= 2.0 * torch32 && ours < 2e-2,
                "resnet{depth}: input gradient off by {ours} (L2, relative); torch's float32 one by {torch32}"
            );
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn classifiers_are_aligned_to_the_generator_classes_by_label() {
        let dir = std::env::temp_dir().join(format!("lw-resnet-labels-{}", std::process::id()));
        resnet_folder::write(&dir, 18, "tabby, tabby cat\ndog\ncar\ntree\nboat");
        let images = reference()["resnet18_images"].clone();
        let net = || Box::new(TorchvisionResNet::load(&dir, &Device::Cpu).unwrap()) as Box<dyn ImageClassifier>;
        let full = net().logits(&images).unwrap().to_vec2::<f32>().unwrap();
        let classes = vec!["Dog".to_string(), "tabby cat".to_string()];
        let two = aligned(net(), &classes).unwrap();
        assert_eq!(two.labels(), classes);
        let got = two.logits(&images).unwrap().to_vec2::<f32>().unwrap();
        for (g, f) in got.iter().zip(&full) {
            assert_eq!(g, &vec![f[1], f[0]]);
        }
        let err = aligned(net(), &["tabby".to_string(), "horse".to_string()])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("no label for the class \"horse\""), "{err}");
        // A labels file that does not match the network's outputs is refused by name.
        std::fs::write(dir.join(LABELS_FILE), "cat\ndog\n").unwrap();
        let err = TorchvisionResNet::load(&dir, &Device::Cpu).err().unwrap().to_string();
        assert!(
            err.contains("labels.txt") && err.contains("2 class names") && err.contains("5 outputs"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
