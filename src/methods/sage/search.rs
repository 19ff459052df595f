//! The search: restarts run side by side as one batch, each looking for a failure of the generator
//! that the ensemble agrees on, scored afterwards by the held-out classifier and a normality test.
//!
//! What is searched depends on the [`Objective`]:
//! - [`Objective::Unrelated`]: a starting latent whose image, under the chosen condition, the
//!   ensemble does not recognise as that class (SAGE's "natural but unrelated" failures when the
//!   held-out classifier confidently names another class);
//! - [`Objective::Distorted`]: a starting latent that fails under *every* condition (SAGE's
//!   distorted-region failures: the latent, not the condition, is to blame);
//! - [`Objective::SwitchCondition`]: a free condition embedding, started at the chosen class's,
//!   that makes the generator draw `target` for fresh latents (SAGE's adversarial token embedding).
//!
//! How it is searched is the [`Mode`]: gradients through the generator (SAGE's skip or plain
//! backpropagation, Adam on the variable), a gradient-free antithetic evolution strategy, or
//! random sampling (the baseline). Budgets are counted in generator calls per restart so that
//! modes compare at equal cost: one image generated is one call, and a gradient evaluation (a
//! forward and a backward pass) counts as two.
//!
//! Randomness comes from `(seed, restart, iteration)` alone, so a run repeats exactly and a
//! resumed run ([`SearchState`]) continues as if never stopped.

use super::classifier::{Ensemble, Scores};
use super::error::{Result, SageError};
use super::generator::{Generator, GradientPath};
use super::naturalness::{Naturalness, ks_normal, norm_ratio, project_to_typical_set, typical_set_penalty};
use crate::core::diffusion::Rng;
use crate::core::jobs::JobContext;
use candle_core::{D, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Objective {
    Unrelated,
    Distorted,
    SwitchCondition { target: usize },
}

impl Objective {
    pub fn label(&self) -> &'static str {
        match self {
            Objective::Unrelated => "unrelated",
            Objective::Distorted => "distorted",
            Objective::SwitchCondition { .. } => "condition-switch",
        }
    }
}

/// Which way a search moves, without the parameters of a [`Mode`]: what a user picks first (the
/// CLI's `--mode`, the panel's choice), completed into a `Mode` by [`ModeKind::with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModeKind {
    /// SAGE's approximate gradient (skip connection to the starting noise).
    #[default]
    Skip,
    Backprop,
    Evolution,
    Random,
}

impl ModeKind {
    pub const ALL: [ModeKind; 4] = [Self::Skip, Self::Backprop, Self::Evolution, Self::Random];

    /// The word the CLI takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::Backprop => "backprop",
            Self::Evolution => "evolution",
            Self::Random => "random",
        }
    }

    /// How the panel names it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Skip => "gradient, SAGE skip",
            Self::Backprop => "gradient, full backprop",
            Self::Evolution => "evolution strategy",
            Self::Random => "random search",
        }
    }

    /// The mode of this kind with its parameters (each kind takes the ones it uses).
    pub fn with(self, exact_last: usize, population: usize, sigma: f64) -> Mode {
        match self {
            Self::Skip => Mode::Skip { exact_last },
            Self::Backprop => Mode::Backprop,
            Self::Evolution => Mode::Evolution { population, sigma },
            Self::Random => Mode::Random,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Mode {
    /// SAGE's approximate gradient: the skip path plus exact backpropagation through the last
    /// `exact_last` sampler steps.
    Skip { exact_last: usize },
    /// Backpropagation through every sampler step.
    Backprop,
    /// Antithetic evolution strategy: `population` perturbations of scale `sigma` per update.
    Evolution { population: usize, sigma: f64 },
    /// Fresh random draws; each restart keeps its best.
    Random,
}

impl Mode {
    pub fn kind(&self) -> ModeKind {
        match self {
            Mode::Skip { .. } => ModeKind::Skip,
            Mode::Backprop => ModeKind::Backprop,
            Mode::Evolution { .. } => ModeKind::Evolution,
            Mode::Random => ModeKind::Random,
        }
    }

    pub fn label(&self) -> String {
        match self {
            Mode::Skip { exact_last: 0 } => "skip".into(),
            Mode::Skip { exact_last } => format!("skip+{exact_last}"),
            Mode::Backprop => "backprop".into(),
            Mode::Evolution { .. } => "evolution".into(),
            Mode::Random => "random".into(),
        }
    }

    fn gradient_path(&self) -> Option<GradientPath> {
        match *self {
            Mode::Skip { exact_last } => Some(GradientPath::Skip { exact_last }),
            Mode::Backprop => Some(GradientPath::Full),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchConfig {
    pub objective: Objective,
    /// The condition (class index) whose failures are sought.
    pub class: usize,
    pub mode: Mode,
    pub restarts: usize,
    /// Generator calls per restart.
    pub budget: usize,
    /// Adam step size (latent units).
    pub lr: f64,
    pub seed: u64,
    pub naturalness: Naturalness,
    /// Probability at which the loss stops pushing a class down (or pulling a target up): the
    /// margin objective is clamped at log((1 − s)/s), so the search looks for failures, not ever
    /// more extreme ones.
    pub saturation: f64,
    /// Latents drawn per update for [`Objective::SwitchCondition`].
    pub switch_draws: usize,
    /// Weight of ‖e − e_class‖² / ‖e_class‖² for [`Objective::SwitchCondition`].
    pub embedding_penalty: f64,
    /// Gradient and evolution modes on a latent: random draws per restart before the first
    /// step, the search then starting from the best of them (a multi-start local search: draws
    /// explore, steps refine). Counted in the budget; 0 starts from one draw.
    #[serde(default)]
    pub screen: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            objective: Objective::Unrelated,
            class: 0,
            mode: Mode::Skip { exact_last: 0 },
            restarts: 16,
            budget: 100,
            lr: 0.1,
            seed: 0,
            naturalness: Naturalness::default(),
            saturation: 0.02,
            switch_draws: 8,
            embedding_penalty: 1.0,
            screen: DEFAULT_SCREEN,
        }
    }
}

impl SearchConfig {
    /// Generator calls one evaluation of one candidate costs (before the gradient factor).
    fn calls_per_evaluation(&self, conditions: usize) -> usize {
        match self.objective {
            Objective::Unrelated => 1,
            Objective::Distorted => conditions,
            Objective::SwitchCondition { .. } => self.switch_draws,
        }
    }

    /// Iterations that draw random latents before the steps begin (see [`SearchConfig::screen`]):
    /// none for random search itself and for condition embeddings, which have no distribution to
    /// draw from; at most half the budget, so that a small budget still takes steps.
    pub fn screening_iterations(&self, conditions: usize) -> usize {
        if self.mode == Mode::Random || matches!(self.objective, Objective::SwitchCondition { .. }) {
            return 0;
        }
        self.screen.min(self.budget / 2 / self.calls_per_evaluation(conditions))
    }

    /// Generator calls of one step iteration for one restart.
    pub fn calls_per_iteration(&self, conditions: usize) -> usize {
        let per_eval = self.calls_per_evaluation(conditions);
        match self.mode {
            Mode::Skip { .. } | Mode::Backprop => 2 * per_eval,
            Mode::Evolution { population, .. } => population.max(2) * per_eval,
            Mode::Random => per_eval,
        }
    }

    pub fn iterations(&self, conditions: usize) -> usize {
        let screen = self.screening_iterations(conditions);
        let left = self.budget - screen * self.calls_per_evaluation(conditions);
        let steps = left / self.calls_per_iteration(conditions);
        if screen == 0 { steps.max(1) } else { screen + steps }
    }

    /// Generator calls per restart once `iterations` iterations have run.
    pub fn calls_after(&self, conditions: usize, iterations: usize) -> usize {
        let screen = self.screening_iterations(conditions).min(iterations);
        screen * self.calls_per_evaluation(conditions) + (iterations - screen) * self.calls_per_iteration(conditions)
    }

    /// Generator calls per restart of the whole search (at most the budget, except that every
    /// search takes at least one iteration).
    pub fn calls_per_restart(&self, conditions: usize) -> usize {
        self.calls_after(conditions, self.iterations(conditions))
    }

    pub fn validate(&self, conditions: usize) -> Result<()> {
        let bad = |m: String| Err(SageError::Invalid(m));
        if self.class >= conditions {
            return bad(format!("class {} but the generator knows {conditions}", self.class));
        }
        if self.restarts == 0 || self.budget == 0 {
            return bad("restarts and budget must be at least 1".into());
        }
        if let Objective::SwitchCondition { target } = self.objective {
            if target >= conditions || target == self.class {
                return bad(format!(
                    "switch target {target} must be another of the {conditions} classes"
                ));
            }
            if self.mode == Mode::Random {
                return bad(
                    "random search has no distribution over condition embeddings; use a gradient or evolution mode"
                        .into(),
                );
            }
            if self.switch_draws == 0 {
                return bad("switch_draws must be at least 1".into());
            }
        }
        if let Mode::Evolution { population, sigma } = self.mode
            && (population < 2 || sigma.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater))
        {
            return bad("evolution needs a population of at least 2 and sigma > 0".into());
        }
        if !(self.saturation > 0.0 && self.saturation < 1.0) {
            return bad("saturation must lie in (0, 1)".into());
        }
        Ok(())
    }
}

/// One iteration's numbers, for live curves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IterationRecord {
    pub iteration: usize,
    /// Generator calls so far, per restart.
    pub calls: usize,
    /// Mean over restarts of the objective at this iteration's candidates.
    pub loss: f32,
    /// Mean over restarts of the best objective so far.
    pub best_loss: f32,
    /// Per ensemble member: mean over restarts of its probability of the class the objective
    /// pushes down (or, for a condition switch, of the target).
    pub member_probs: Vec<f32>,
    /// Mean |z|/√d of the current latents (1 for a typical draw); NaN for embedding searches.
    pub norm_ratio: f32,
}

/// Where a search stands: everything needed to continue it exactly (serialisable, so a cancelled
/// run can be saved and resumed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchState {
    pub config: SearchConfig,
    pub iteration: usize,
    /// Current variables `[R, m]`.
    pub current: Vec<f32>,
    pub adam_m: Vec<f32>,
    pub adam_v: Vec<f32>,
    /// Best variables so far `[R, m]`, their objective and iteration.
    pub best: Vec<f32>,
    pub best_loss: Vec<f32>,
    pub best_iteration: Vec<usize>,
    pub width: usize,
    pub history: Vec<IterationRecord>,
}

/// One restart's result, scored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub restart: usize,
    pub iteration: usize,
    pub objective_value: f32,
    /// The latent (latent objectives) or condition embedding (switch) found.
    #[serde(skip)]
    pub variable: Vec<f32>,
    /// The images scored: one per condition (distorted), the one image (unrelated), or the
    /// first few fresh draws (switch); planar RGB `3 × H × W` each.
    #[serde(skip)]
    pub images: Vec<Vec<f32>>,
    /// Per image and member: class probabilities.
    pub member_probs: Vec<Vec<Vec<f32>>>,
    pub held_out_probs: Option<Vec<Vec<f32>>>,
    /// The ensemble agrees the generator failed.
    pub auto_success: bool,
    /// The held-out classifier agrees too (None without one).
    pub held_out_success: Option<bool>,
    /// Per judged image, the shares of each class the generator really drew (generators that
    /// know, see [`Generator::drawn_shares`]).
    #[serde(default)]
    pub drawn_shares: Option<Vec<Vec<f32>>>,
    /// By the generator's own account, a real failure (judged by the held-out rule on the drawn
    /// shares); None when the generator cannot tell.
    #[serde(default)]
    pub generator_failure: Option<bool>,
    /// KS test of the latent against N(0, 1) (latent objectives only).
    pub ks_statistic: Option<f64>,
    pub ks_p: Option<f64>,
    pub non_gaussian: Option<bool>,
    pub norm_ratio: Option<f64>,
    pub failure_type: String,
    /// Human verdict: `true` failure, `false` not, `None` not judged yet.
    pub human: Option<bool>,
}

impl Candidate {
    /// The ensemble calls it a failure and the held-out judge confirms it.
    pub fn held_out_confirmed(&self) -> bool {
        self.auto_success && self.held_out_success == Some(true)
    }
}

/// A finished search.
#[derive(Clone, Debug)]
pub struct SearchResult {
    pub config: SearchConfig,
    pub candidates: Vec<Candidate>,
    pub history: Vec<IterationRecord>,
    pub generator_calls: usize,
    pub seconds: f64,
    /// `[C, H, W]` of the generator's images.
    pub image_shape: [usize; 3],
}

/// Why a search stopped early: cancelled (with the state to resume from) or failed.
pub enum Stopped {
    Cancelled(Box<SearchState>),
    Failed(Box<SageError>),
}

impl From<SageError> for Stopped {
    fn from(e: SageError) -> Self {
        Stopped::Failed(Box::new(e))
    }
}

impl From<candle_core::Error> for Stopped {
    fn from(e: candle_core::Error) -> Self {
        Stopped::Failed(Box::new(SageError::Compute {
            context: "failure search".into(),
            source: e,
        }))
    }
}

/// The generator, the ensemble and what is being asked of them.
pub struct Search<'a> {
    pub generator: &'a dyn Generator,
    pub ensemble: &'a Ensemble,
    pub config: SearchConfig,
    device: Device,
    classes: usize,
    class_embedding: Tensor,
}

/// Screening draws per restart by default: a fifth of the default budget. On the demo (heart,
/// 100 calls per restart, 128 restarts, seed 1) the gradient modes' ensemble success rose from
/// 32 % (backprop, step 0.3, no screening) to 62 % (step 0.1, 20 draws), random search's being
/// 44 %: a local search started at one draw rarely leaves the basin it starts in.
pub const DEFAULT_SCREEN: usize = 20;

const ADAM_BETA1: f64 = 0.9;
const ADAM_BETA2: f64 = 0.999;
const ADAM_EPS: f64 = 1e-8;
/// Fresh latents a condition-switch candidate is judged on.
const SWITCH_EVAL_DRAWS: usize = 16;
/// Images of a switch candidate kept for the gallery.
const SWITCH_GALLERY_IMAGES: usize = 4;

/// An iteration's objective per restart, per-member probabilities and the step direction (None:
/// no step).
type Evaluated = (Vec<f32>, Vec<Vec<f32>>, Option<Tensor>);
/// A restart's judged images (planar RGB), their scores and, when the generator can tell, the
/// per-image shares of each class it really drew.
type JudgedRestart = (Vec<Vec<f32>>, Scores, Option<Vec<Vec<f32>>>);

fn rng_for(seed: u64, restart: usize, iteration: usize, purpose: u64) -> Rng {
    let mix = seed
        ^ (restart as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (iteration as u64 + 1).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ purpose.wrapping_mul(0x1656_67B1_9E37_79F9);
    Rng::new(mix)
}

impl<'a> Search<'a> {
    pub fn new(generator: &'a dyn Generator, ensemble: &'a Ensemble, config: SearchConfig) -> Result<Self> {
        let classes = generator.class_names().len();
        config.validate(classes)?;
        if ensemble.members.is_empty() {
            return Err(SageError::Invalid("the ensemble needs at least one classifier".into()));
        }
        let class_embedding = generator
            .condition_embedding(&[config.class])
            .map_err(SageError::compute("condition embedding"))?;
        Ok(Self {
            generator,
            ensemble,
            config,
            device: class_embedding.device().clone(),
            classes,
            class_embedding,
        })
    }

    fn searches_embedding(&self) -> bool {
        matches!(self.config.objective, Objective::SwitchCondition { .. })
    }

    /// Length of one restart's variable.
    pub fn width(&self) -> Result<usize> {
        Ok(if self.searches_embedding() {
            self.class_embedding
                .dim(1)
                .map_err(SageError::compute("embedding width"))?
        } else {
            self.generator.latent_dim()
        })
    }

    /// The starting state: latents drawn from N(0, I) per restart, or the class's embedding.
    pub fn initial_state(&self) -> Result<SearchState> {
        let r = self.config.restarts;
        let m = self.width()?;
        let current: Vec<f32> = if self.searches_embedding() {
            let e = self
                .class_embedding
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(SageError::compute("condition embedding"))?;
            (0..r).flat_map(|_| e.iter().copied()).collect()
        } else {
            (0..r)
                .flat_map(|k| rng_for(self.config.seed, k, 0, 1).normals_f32(m))
                .collect()
        };
        Ok(SearchState {
            config: self.config,
            iteration: 0,
            adam_m: vec![0.0; r * m],
            adam_v: vec![0.0; r * m],
            best: current.clone(),
            best_loss: vec![f32::MAX; r],
            best_iteration: vec![0; r],
            current,
            width: m,
            history: Vec::new(),
        })
    }

    /// Fresh latents for the switch objective: `draws` per restart, `[R·draws, d]`.
    fn switch_latents(&self, iteration: usize, draws: usize, purpose: u64) -> candle_core::Result<Tensor> {
        let d = self.generator.latent_dim();
        let r = self.config.restarts;
        let z: Vec<f32> = (0..r)
            .flat_map(|k| rng_for(self.config.seed, k, iteration, purpose).normals_f32(draws * d))
            .collect();
        Tensor::from_vec(z, (r * draws, d), &self.device)
    }

    /// Per-restart objective `[R]` (lower is a stronger failure) and per-member probabilities
    /// `[members][R]` of the class being pushed, for variables `v` `[R, m]`.
    ///
    /// Each member contributes the margin log p(class) − max_{j≠class} log p(j) (Carlini–Wagner's
    /// logit margin), not log p(class): once a classifier is sure, log-softmax gradients vanish
    /// below float precision (p = 1 − 1e-12) and a restart started there never moves, while the
    /// margin's gradient does not saturate.
    fn objective(
        &self,
        v: &Tensor,
        path: GradientPath,
        iteration: usize,
    ) -> candle_core::Result<(Tensor, Vec<Vec<f32>>)> {
        let r = self.config.restarts;
        let kappa = ((1.0 - self.config.saturation) / self.config.saturation).ln();
        let members = self.ensemble.members.len();
        let total_weight: f64 = self.ensemble.members.iter().map(|(_, w)| w).sum();
        // Weighted mean of the members' margins of `class`, per image, and each member's mean
        // probability of it over the restarts.
        let score = |images: &Tensor, class_of: &dyn Fn(usize) -> usize| -> candle_core::Result<(Tensor, Vec<f32>)> {
            let n = images.dim(0)?;
            let ids: Vec<u32> = (0..n).map(|i| class_of(i) as u32).collect();
            let mut acc: Option<Tensor> = None;
            let mut probs = Vec::with_capacity(members);
            for (c, w) in &self.ensemble.members {
                let lp = candle_nn::ops::log_softmax(&c.logits(images)?, D::Minus1)?;
                let k = lp.dim(1)?;
                let mask: Vec<f32> = ids
                    .iter()
                    .flat_map(|&id| (0..k).map(move |j| if j == id as usize { 1.0 } else { 0.0 }))
                    .collect();
                let mask = Tensor::from_vec(mask, (n, k), &self.device)?;
                let own = (&lp * &mask)?.sum(1)?;
                let others = (&lp + (&mask * -1e9)?)?.max(1)?;
                probs.push(own.detach().exp()?.mean_all()?.to_scalar::<f32>()?);
                let margin = ((own - others)? * (w / total_weight))?;
                acc = Some(match acc {
                    None => margin,
                    Some(a) => (a + margin)?,
                });
            }
            Ok((acc.expect("non-empty ensemble"), probs))
        };
        match self.config.objective {
            Objective::Unrelated => {
                let cond = self.class_embedding.repeat((r, 1))?;
                let images = self.generator.generate(v, &cond, path)?;
                let (margin, probs) = score(&images, &|_| self.config.class)?;
                Ok((
                    margin.clamp(-kappa, f64::MAX)?,
                    probs.into_iter().map(|p| vec![p]).collect(),
                ))
            }
            Objective::Distorted => {
                let mut total: Option<Tensor> = None;
                let mut per_member = vec![Vec::new(); members];
                for k in 0..self.classes {
                    let cond = self.generator.condition_embedding(&vec![k; r])?;
                    let images = self.generator.generate(v, &cond, path)?;
                    let (margin, probs) = score(&images, &|_| k)?;
                    let margin = (margin.clamp(-kappa, f64::MAX)? / self.classes as f64)?;
                    total = Some(match total {
                        None => margin,
                        Some(t) => (t + margin)?,
                    });
                    for (m, p) in probs.into_iter().enumerate() {
                        per_member[m].push(p);
                    }
                }
                Ok((total.expect("at least one class"), per_member))
            }
            Objective::SwitchCondition { target } => {
                let draws = self.config.switch_draws;
                let z = self.switch_latents(iteration, draws, 2)?;
                let m = v.dim(1)?;
                let cond = v.unsqueeze(1)?.repeat((1, draws, 1))?.reshape((r * draws, m))?;
                let images = self.generator.generate(&z, &cond, path)?;
                let (margin, probs) = score(&images, &|_| target)?;
                // Pull the target's margin up until it saturates.
                let pull = margin.clamp(f64::MIN, kappa)?.neg()?.reshape((r, draws))?.mean(1)?;
                let e0 = self.class_embedding.broadcast_as((r, m))?;
                let scale = self.class_embedding.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
                let drift = ((v - e0)?.sqr()?.sum(1)? * (self.config.embedding_penalty / scale.max(1e-12)))?;
                Ok(((pull + drift)?, probs.into_iter().map(|p| vec![p]).collect()))
            }
        }
    }

    /// Objective plus the naturalness penalty (latent objectives), per restart `[R]`.
    fn penalised(&self, v: &Tensor, objective: &Tensor) -> candle_core::Result<Tensor> {
        if self.searches_embedding() || self.config.naturalness.penalty == 0.0 {
            return Ok(objective.clone());
        }
        objective + (typical_set_penalty(v)? * self.config.naturalness.penalty)?
    }

    /// Runs the search from `state` (from [`Search::initial_state`] or a cancelled run) to the end
    /// of its budget. Cancellation is checked before every iteration; a cancelled search hands
    /// back its state. `observe` sees every iteration's record (live curves) and the state after
    /// it (for [`Search::preview`]).
    pub fn run(
        &self,
        mut state: SearchState,
        ctx: &JobContext,
        observe: &mut dyn FnMut(&IterationRecord, &SearchState),
    ) -> std::result::Result<SearchResult, Stopped> {
        let started = std::time::Instant::now();
        let cfg = self.config;
        if state.config != cfg {
            return Err(SageError::Invalid("the saved search used other settings; start a new run".into()).into());
        }
        let (r, m) = (cfg.restarts, state.width);
        let iterations = cfg.iterations(self.classes);
        let screen = cfg.screening_iterations(self.classes);
        let label = format!("{} search ({})", cfg.objective.label(), cfg.mode.label());
        while state.iteration < iterations {
            if ctx.check().is_err() {
                return Err(Stopped::Cancelled(Box::new(state)));
            }
            let it = state.iteration;
            let v = Tensor::from_vec(state.current.clone(), (r, m), &self.device)?;
            let screening = it < screen;
            let (values, member_probs, grad) = match cfg.mode {
                _ if screening => self.random_draws(&mut state, it, 6)?,
                Mode::Skip { .. } | Mode::Backprop => {
                    let path = cfg.mode.gradient_path().expect("a gradient mode");
                    let var = Var::from_tensor(&v)?;
                    let (obj, probs) = self.objective(var.as_tensor(), path, it)?;
                    let total = self.penalised(var.as_tensor(), &obj)?.sum_all()?;
                    let grads = total.backward()?;
                    let g = grads
                        .get(var.as_tensor())
                        .cloned()
                        .unwrap_or_else(|| var.as_tensor().zeros_like().expect("zeros"));
                    (obj.to_vec1::<f32>()?, probs, Some(g))
                }
                Mode::Evolution { population, sigma } => {
                    let pairs = (population / 2).max(1);
                    let (obj, probs) = self.objective(&v, GradientPath::None, it)?;
                    let mut g = v.zeros_like()?;
                    for p in 0..pairs {
                        let eps: Vec<f32> = (0..r)
                            .flat_map(|k| rng_for(cfg.seed, k, it, 100 + p as u64).normals_f32(m))
                            .collect();
                        let eps = Tensor::from_vec(eps, (r, m), &self.device)?;
                        let plus = (&v + (&eps * sigma)?)?;
                        let minus = (&v - (&eps * sigma)?)?;
                        let (fp, _) = self.objective(&plus, GradientPath::None, it)?;
                        let (fm, _) = self.objective(&minus, GradientPath::None, it)?;
                        let fp = self.penalised(&plus, &fp)?;
                        let fm = self.penalised(&minus, &fm)?;
                        let diff = ((fp - fm)? / (2.0 * sigma * pairs as f64))?;
                        g = (g + eps.broadcast_mul(&diff.unsqueeze(1)?)?)?;
                    }
                    (obj.to_vec1::<f32>()?, probs, Some(g))
                }
                Mode::Random => self.random_draws(&mut state, it, 3)?,
            };
            // Keep each restart's best (the candidates just evaluated).
            for (k, &value) in values.iter().enumerate().take(r) {
                if value < state.best_loss[k] {
                    state.best_loss[k] = value;
                    state.best_iteration[k] = it;
                    state.best[k * m..(k + 1) * m].copy_from_slice(&state.current[k * m..(k + 1) * m]);
                }
            }
            if screening && it + 1 == screen {
                // The steps start from each restart's best draw.
                state.current = state.best.clone();
            }
            let norm = if self.searches_embedding() {
                f32::NAN
            } else {
                (0..r)
                    .map(|k| norm_ratio(&state.current[k * m..(k + 1) * m]) as f32)
                    .sum::<f32>()
                    / r as f32
            };
            let record = IterationRecord {
                iteration: it,
                calls: cfg.calls_after(self.classes, it + 1),
                loss: values.iter().sum::<f32>() / r as f32,
                best_loss: state.best_loss.iter().sum::<f32>() / r as f32,
                member_probs: member_probs
                    .iter()
                    .map(|p| p.iter().sum::<f32>() / p.len().max(1) as f32)
                    .collect(),
                norm_ratio: norm,
            };
            if let Some(g) = grad {
                self.adam_update(&mut state, &v, &g, it + 1 - screen)?;
            }
            state.iteration += 1;
            ctx.set(
                state.iteration as f32 / iterations as f32,
                format!("{label}: {}/{iterations}, loss {:.3}", state.iteration, record.loss),
            );
            observe(&record, &state);
            state.history.push(record);
        }
        let (candidates, image_shape) = self.score_candidates(&state)?;
        Ok(SearchResult {
            config: cfg,
            candidates,
            history: state.history,
            generator_calls: cfg.calls_per_restart(self.classes) * r,
            seconds: started.elapsed().as_secs_f64(),
            image_shape,
        })
    }

    /// The restart with the lowest objective so far and its current best image `[1, C, H, W]`
    /// under the searched condition (a condition switch: its embedding on one fixed fresh
    /// latent), for a live view; not counted in the budget. None before the first iteration.
    pub fn preview(&self, state: &SearchState) -> Result<Option<(usize, Tensor)>> {
        let Some((k, _)) = state
            .best_loss
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite() && **l < f32::MAX)
            .min_by(|a, b| a.1.total_cmp(b.1))
        else {
            return Ok(None);
        };
        let m = state.width;
        let best = Tensor::from_vec(state.best[k * m..(k + 1) * m].to_vec(), (1, m), &self.device)
            .map_err(SageError::compute("preview"))?;
        let (z, cond) = if self.searches_embedding() {
            let d = self.generator.latent_dim();
            let z = Tensor::from_vec(rng_for(self.config.seed, k, 0, 5).normals_f32(d), (1, d), &self.device)
                .map_err(SageError::compute("preview"))?;
            (z, best)
        } else {
            (best, self.class_embedding.clone())
        };
        let image = self
            .generator
            .generate(&z, &cond, GradientPath::None)
            .map_err(SageError::compute("preview"))?;
        Ok(Some((k, image)))
    }

    /// Fresh N(0, I) latents for every restart (random search, and the screening draws of the
    /// other modes, `purpose` keeping their streams apart), evaluated and made current.
    fn random_draws(&self, state: &mut SearchState, it: usize, purpose: u64) -> candle_core::Result<Evaluated> {
        let (r, m) = (self.config.restarts, state.width);
        let z: Vec<f32> = (0..r)
            .flat_map(|k| rng_for(self.config.seed, k, it, purpose).normals_f32(m))
            .collect();
        let z = Tensor::from_vec(z, (r, m), &self.device)?;
        let (obj, probs) = self.objective(&z, GradientPath::None, it)?;
        state.current = z.flatten_all()?.to_vec1::<f32>()?;
        Ok((obj.to_vec1::<f32>()?, probs, None))
    }

    /// One Adam step (`t`: steps taken so far, this one included) on the current variables.
    fn adam_update(&self, state: &mut SearchState, v: &Tensor, g: &Tensor, t: usize) -> candle_core::Result<()> {
        let (r, m) = (self.config.restarts, state.width);
        let t = t as i32;
        let g = g.flatten_all()?.to_vec1::<f32>()?;
        let lr = self.config.lr;
        let (c1, c2) = (1.0 - ADAM_BETA1.powi(t), 1.0 - ADAM_BETA2.powi(t));
        let mut next = v.flatten_all()?.to_vec1::<f32>()?;
        for i in 0..r * m {
            let gi = g[i] as f64;
            let mi = ADAM_BETA1 * state.adam_m[i] as f64 + (1.0 - ADAM_BETA1) * gi;
            let vi = ADAM_BETA2 * state.adam_v[i] as f64 + (1.0 - ADAM_BETA2) * gi * gi;
            state.adam_m[i] = mi as f32;
            state.adam_v[i] = vi as f32;
            next[i] -= (lr * (mi / c1) / ((vi / c2).sqrt() + ADAM_EPS)) as f32;
        }
        if !self.searches_embedding() && self.config.naturalness.reproject {
            let t = Tensor::from_vec(next, (r, m), &self.device)?;
            next = project_to_typical_set(&t)?.flatten_all()?.to_vec1::<f32>()?;
        }
        state.current = next;
        Ok(())
    }

    /// Generates each restart's best, scores it with every classifier and the normality test;
    /// also returns the generator's image shape `[C, H, W]`.
    fn score_candidates(&self, state: &SearchState) -> std::result::Result<(Vec<Candidate>, [usize; 3]), Stopped> {
        let mut image_shape = [0; 3];
        let mut note_shape = |x: &Tensor| -> candle_core::Result<()> {
            let (_, c, h, w) = x.dims4()?;
            image_shape = [c, h, w];
            Ok(())
        };
        let cfg = self.config;
        let (r, m) = (cfg.restarts, state.width);
        let best = Tensor::from_vec(state.best.clone(), (r, m), &self.device)?;
        let images_of = |t: Tensor| -> candle_core::Result<Vec<Vec<f32>>> {
            let n = t.dim(0)?;
            Ok(t.flatten_all()?
                .to_vec1::<f32>()?
                .chunks(t.elem_count() / n.max(1))
                .map(<[f32]>::to_vec)
                .collect())
        };
        // Per image, what the generator really drew, when it can tell.
        let shares_of = |z: &Tensor, cond: &Tensor| -> candle_core::Result<Option<Vec<Vec<f32>>>> {
            self.generator
                .drawn_shares(z, cond)?
                .map(|t| t.to_vec2::<f32>())
                .transpose()
        };
        // Per restart: the images judged, the class each must (not) show, and the drawn shares.
        let mut per_restart: Vec<JudgedRestart> = Vec::with_capacity(r);
        match cfg.objective {
            Objective::Unrelated | Objective::Distorted => {
                let conditions: Vec<usize> = match cfg.objective {
                    Objective::Unrelated => vec![cfg.class],
                    _ => (0..self.classes).collect(),
                };
                let mut images = Vec::new();
                let mut scores = Vec::new();
                let mut shares = Vec::new();
                for &k in &conditions {
                    let cond = self.generator.condition_embedding(&vec![k; r])?;
                    let x = self.generator.generate(&best, &cond, GradientPath::None)?;
                    note_shape(&x)?;
                    scores.push(self.ensemble.scores(&x)?);
                    images.push(images_of(x)?);
                    shares.push(shares_of(&best, &cond)?);
                }
                let shares: Option<Vec<Vec<Vec<f32>>>> = shares.into_iter().collect();
                for k in 0..r {
                    let imgs = images.iter().map(|per_cond| per_cond[k].clone()).collect();
                    let drawn = shares
                        .as_ref()
                        .map(|per_cond| per_cond.iter().map(|s| s[k].clone()).collect());
                    per_restart.push((imgs, pick(&scores, k), drawn));
                }
            }
            Objective::SwitchCondition { .. } => {
                let draws = SWITCH_EVAL_DRAWS;
                let z = self.switch_latents(usize::MAX / 2, draws, 4)?;
                let cond = best.unsqueeze(1)?.repeat((1, draws, 1))?.reshape((r * draws, m))?;
                let x = self.generator.generate(&z, &cond, GradientPath::None)?;
                note_shape(&x)?;
                let scores = self.ensemble.scores(&x)?;
                let imgs = images_of(x)?;
                let shares = shares_of(&z, &cond)?;
                for k in 0..r {
                    let rows = k * draws..(k + 1) * draws;
                    let sub = Scores {
                        members: scores.members.iter().map(|s| s[rows.clone()].to_vec()).collect(),
                        held_out: scores.held_out.as_ref().map(|s| s[rows.clone()].to_vec()),
                    };
                    per_restart.push((
                        imgs[rows.clone()].iter().take(SWITCH_GALLERY_IMAGES).cloned().collect(),
                        sub,
                        shares.as_ref().map(|s| s[rows.clone()].to_vec()),
                    ));
                }
            }
        }
        let mut out = Vec::with_capacity(r);
        for (k, (images, scores, drawn)) in per_restart.into_iter().enumerate() {
            let variable = state.best[k * m..(k + 1) * m].to_vec();
            let (auto, held) = self.judge(&scores);
            let generator_failure = drawn.as_deref().map(|d| self.fails(d, true));
            let latent = !self.searches_embedding();
            let ks = latent.then(|| ks_normal(&variable));
            out.push(Candidate {
                restart: k,
                iteration: state.best_iteration[k],
                objective_value: state.best_loss[k],
                member_probs: transpose_members(&scores.members),
                held_out_probs: scores.held_out.clone(),
                auto_success: auto,
                held_out_success: held,
                drawn_shares: drawn,
                generator_failure,
                ks_statistic: ks.map(|(d, _)| d),
                ks_p: ks.map(|(_, p)| p),
                non_gaussian: ks.map(|(_, p)| p < cfg.naturalness.alpha),
                norm_ratio: latent.then(|| norm_ratio(&variable)),
                failure_type: cfg.objective.label().to_string(),
                human: None,
                variable,
                images,
            });
        }
        Ok((out, image_shape))
    }

    /// Whether the ensemble (every member) and the held-out classifier see the failure (the
    /// judge by the strict rule of [`Search::fails`]).
    fn judge(&self, scores: &Scores) -> (bool, Option<bool>) {
        let auto = scores.members.iter().all(|probs| self.fails(probs, false));
        let held = scores.held_out.as_ref().map(|probs| self.fails(probs, true));
        (auto, held)
    }

    /// Whether per-image class probabilities (`[image][class]`) show this objective's failure:
    ///
    /// - unrelated: the image is not recognised as the class; with `strict_other` (the judge, and
    ///   a generator's own account) another class must moreover have probability ≥ ½ (natural,
    ///   but something else);
    /// - distorted: under every condition, the conditioned class gets probability < ½;
    /// - condition switch: on at least half of the fresh latents the target is the top class.
    fn fails(&self, probs: &[Vec<f32>], strict_other: bool) -> bool {
        let cfg = self.config;
        let argmax = |p: &[f32]| {
            p.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i)
        };
        match cfg.objective {
            Objective::Unrelated => {
                let p = &probs[0];
                let top = argmax(p);
                top != cfg.class && (!strict_other || p[top] >= 0.5)
            }
            Objective::Distorted => probs.iter().enumerate().all(|(k, p)| p[k] < 0.5),
            Objective::SwitchCondition { target } => {
                let hits = probs.iter().filter(|p| argmax(p) == target).count();
                2 * hits >= probs.len()
            }
        }
    }
}

/// Scores of restart `k` out of per-condition batch scores: one row per condition.
fn pick(per_condition: &[Scores], k: usize) -> Scores {
    Scores {
        members: (0..per_condition[0].members.len())
            .map(|m| per_condition.iter().map(|s| s.members[m][k].clone()).collect())
            .collect(),
        held_out: per_condition[0].held_out.as_ref().map(|_| {
            per_condition
                .iter()
                .map(|s| s.held_out.as_ref().expect("held out")[k].clone())
                .collect()
        }),
    }
}

/// `[member][image][class]` → `[image][member][class]`.
fn transpose_members(members: &[Vec<Vec<f32>>]) -> Vec<Vec<Vec<f32>>> {
    let images = members.first().map_or(0, Vec::len);
    (0..images)
        .map(|i| members.iter().map(|m| m[i].clone()).collect())
        .collect()
}

/// The summary SAGE reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub restarts: usize,
    /// SSR(A): share of restarts whose result the ensemble calls a failure.
    pub ssr_auto: f64,
    /// Share of restarts the held-out classifier confirms as well (automatic and held-out).
    pub held_out_confirmed_rate: Option<f64>,
    /// SSR(H): share of human-judged candidates judged real failures (None until someone judges).
    pub ssr_human: Option<f64>,
    pub human_judged: usize,
    /// NGR: share of automatic successes whose latent fails the normality test.
    pub non_gaussian_rate: Option<f64>,
    /// Share of restarts whose result is a real generator failure by the generator's own account
    /// (generators that know what they drew), whatever the classifiers said.
    #[serde(default)]
    pub generator_failure_rate: Option<f64>,
    /// Share of restarts held-out-confirmed *and* a real generator failure: the confirmations
    /// that are not classifier errors.
    #[serde(default)]
    pub confirmed_generator_failure_rate: Option<f64>,
    pub generator_calls: usize,
    pub seconds: f64,
}

impl SearchResult {
    /// Restarts held-out-confirmed *and* drawn wrong by the generator's own account; None unless
    /// the generator tells for every candidate.
    pub fn confirmed_generator_failures(&self) -> Option<usize> {
        self.candidates
            .iter()
            .map(|c| c.generator_failure.map(|real| real && c.held_out_confirmed()))
            .collect::<Option<Vec<bool>>>()
            .map(|v| v.iter().filter(|b| **b).count())
    }

    pub fn summary(&self) -> Summary {
        let n = self.candidates.len().max(1) as f64;
        let auto: Vec<&Candidate> = self.candidates.iter().filter(|c| c.auto_success).collect();
        let confirmed = self
            .candidates
            .iter()
            .map(|c| c.held_out_success.map(|_| c.held_out_confirmed()))
            .collect::<Option<Vec<bool>>>()
            .map(|v| v.iter().filter(|b| **b).count() as f64 / n);
        let truth = self
            .candidates
            .iter()
            .map(|c| c.generator_failure)
            .collect::<Option<Vec<bool>>>();
        let confirmed_truth = self.confirmed_generator_failures().map(|k| k as f64 / n);
        let judged: Vec<bool> = self.candidates.iter().filter_map(|c| c.human).collect();
        let ng: Vec<bool> = auto.iter().filter_map(|c| c.non_gaussian).collect();
        Summary {
            restarts: self.candidates.len(),
            ssr_auto: auto.len() as f64 / n,
            held_out_confirmed_rate: confirmed,
            ssr_human: (!judged.is_empty()).then(|| judged.iter().filter(|b| **b).count() as f64 / judged.len() as f64),
            human_judged: judged.len(),
            non_gaussian_rate: (!ng.is_empty()).then(|| ng.iter().filter(|b| **b).count() as f64 / ng.len() as f64),
            generator_failure_rate: truth.map(|t| t.iter().filter(|b| **b).count() as f64 / n),
            confirmed_generator_failure_rate: confirmed_truth,
            generator_calls: self.generator_calls,
            seconds: self.seconds,
        }
    }
}
