//! The step loop shared by every demo trainer: schedule → loss → gradients → clipping → AdamW,
//! with progress and cancellation through a [`JobContext`] and periodic checkpoints.
//!
//! Randomness per step (batch sampling, noise) comes from [`step_rng`], a generator keyed by the
//! seed and the step number, so a run resumed at step k draws exactly what the uninterrupted run
//! drew from step k on, and the two end with bit-identical weights.

use crate::core::diffusion::Rng;
use crate::core::jobs::JobContext;
use candle_core::Tensor;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{AdamW, AdamWConfig, Checkpoint, LrSchedule, Result, SeededParams, TrainError, clip_grad_norm};

/// Writes bytes to a path atomically (the CLI passes `io::atomic::write_bytes`).
pub type WriteFn = fn(&Path, &[u8]) -> std::io::Result<()>;

#[derive(Clone, Debug)]
pub struct CheckpointPolicy {
    pub path: PathBuf,
    /// Write after every `every` steps (and when cancelled).
    pub every: usize,
    pub write: WriteFn,
}

/// What one step hands back: the scalar loss to minimise and optional extra numbers for the
/// progress message (e.g. accuracy).
pub struct StepOutput {
    pub loss: Tensor,
    pub extra: Vec<(&'static str, f32)>,
}

impl From<Tensor> for StepOutput {
    fn from(loss: Tensor) -> Self {
        Self {
            loss,
            extra: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct TrainReport {
    /// Step the run started from (0, or the checkpoint's step when resumed).
    pub start_step: usize,
    pub steps: usize,
    /// Loss of each step run here.
    pub losses: Vec<f32>,
    pub seconds: f64,
}

impl TrainReport {
    /// Mean loss over the last `n` steps run (a less noisy "final loss").
    pub fn recent_loss(&self, n: usize) -> f32 {
        let tail = &self.losses[self.losses.len().saturating_sub(n.max(1))..];
        if tail.is_empty() {
            f32::NAN
        } else {
            tail.iter().sum::<f32>() / tail.len() as f32
        }
    }
}

/// The generator for step `step` of a run seeded with `seed`.
pub fn step_rng(seed: u64, step: usize) -> Rng {
    Rng::new(seed ^ (step as u64).wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03))
}

pub struct TrainLoop {
    params: SeededParams,
    optimiser: AdamW,
    schedule: LrSchedule,
    steps: usize,
    seed: u64,
    clip_norm: Option<f64>,
    checkpoint: Option<CheckpointPolicy>,
    metadata: BTreeMap<String, String>,
    next_step: usize,
}

impl TrainLoop {
    /// `params` must already hold the model's tensors (build the model first).
    pub fn new(
        params: SeededParams,
        adamw: AdamWConfig,
        schedule: LrSchedule,
        steps: usize,
        seed: u64,
    ) -> Result<Self> {
        if params.count() == 0 {
            return Err(TrainError::Invalid(
                "the model has no parameters (build it before the loop)".into(),
            ));
        }
        let optimiser = AdamW::new(params.named_vars(), adamw)?;
        Ok(Self {
            params,
            optimiser,
            schedule,
            steps,
            seed,
            clip_norm: None,
            checkpoint: None,
            metadata: BTreeMap::new(),
            next_step: 0,
        })
    }

    /// Clip gradients to this global L2 norm before each update.
    pub fn clip_grad_norm(mut self, max_norm: f64) -> Self {
        self.clip_norm = Some(max_norm);
        self
    }

    pub fn checkpoints(mut self, policy: CheckpointPolicy) -> Self {
        self.checkpoint = Some(policy);
        self
    }

    /// A run's persistence as the demo trainers take it: checkpoints per `policy` when given, and
    /// the state of the checkpoint at `resume` when given (read and checked against this run).
    pub fn persisted(mut self, policy: Option<CheckpointPolicy>, resume: Option<&Path>) -> Result<Self> {
        if let Some(policy) = policy {
            self = self.checkpoints(policy);
        }
        if let Some(path) = resume {
            self.resume(&Checkpoint::read(path)?, path)?;
        }
        Ok(self)
    }

    /// Extra header metadata for checkpoints (config, model name); `seed` is added.
    pub fn metadata(mut self, metadata: BTreeMap<String, String>) -> Self {
        self.metadata = metadata;
        self
    }

    pub fn params(&self) -> &SeededParams {
        &self.params
    }

    /// Steps completed so far.
    pub fn step(&self) -> usize {
        self.next_step
    }

    /// The state to write now.
    pub fn snapshot(&self) -> Checkpoint {
        let mut metadata = self.metadata.clone();
        metadata.insert("seed".into(), self.seed.to_string());
        Checkpoint {
            step: self.next_step,
            params: self.params.tensors().into_iter().collect(),
            optimiser: self.optimiser.state().into_iter().collect::<HashMap<_, _>>(),
            metadata,
        }
    }

    /// Continues from a checkpoint of the same model and seed.
    pub fn resume(&mut self, ck: &Checkpoint, source: &Path) -> Result<()> {
        let bad = |problem: String| TrainError::Checkpoint {
            path: source.to_path_buf(),
            problem,
        };
        if let Some(seed) = ck.metadata.get("seed")
            && seed != &self.seed.to_string()
        {
            return Err(bad(format!(
                "was written with seed {seed}, this run uses {}",
                self.seed
            )));
        }
        for (key, value) in &self.metadata {
            if let Some(found) = ck.metadata.get(key)
                && found != value
            {
                return Err(bad(format!("has {key} = {found}, this run has {value}")));
            }
        }
        if ck.step > self.steps {
            return Err(bad(format!(
                "is at step {}, past this run's {} steps",
                ck.step, self.steps
            )));
        }
        self.params.load(&ck.params).map_err(|e| bad(e.to_string()))?;
        self.optimiser
            .load_state(&ck.optimiser, ck.step)
            .map_err(|e| bad(e.to_string()))?;
        self.next_step = ck.step;
        Ok(())
    }

    fn write_checkpoint(&self) -> Result<()> {
        let Some(policy) = &self.checkpoint else { return Ok(()) };
        let bytes = self.snapshot().to_bytes()?;
        (policy.write)(&policy.path, &bytes).map_err(|e| TrainError::Checkpoint {
            path: policy.path.clone(),
            problem: format!("cannot be written ({e})"),
        })
    }

    /// Runs the remaining steps. `step_fn(step, rng)` builds the loss for zero-based `step` with
    /// that step's generator. Cancellation is checked before every step; a cancelled run writes a
    /// checkpoint (when a policy is set) so that it can be resumed, then returns `Cancelled`.
    pub fn run<F, O>(&mut self, ctx: &JobContext, mut step_fn: F) -> Result<TrainReport>
    where
        F: FnMut(usize, &mut Rng) -> candle_core::Result<O>,
        O: Into<StepOutput>,
    {
        let started = Instant::now();
        let mut report = TrainReport {
            start_step: self.next_step,
            steps: self.steps,
            ..TrainReport::default()
        };
        let vars = self.params.vars();
        while self.next_step < self.steps {
            if ctx.check().is_err() {
                self.write_checkpoint()?;
                return Err(TrainError::Cancelled);
            }
            let step = self.next_step;
            let lr = self.schedule.at(step);
            let out: StepOutput = step_fn(step, &mut step_rng(self.seed, step))?.into();
            let loss = out.loss.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?;
            if !loss.is_finite() {
                return Err(TrainError::NonFinite { step, loss });
            }
            let mut grads = out.loss.backward()?;
            if let Some(max) = self.clip_norm {
                clip_grad_norm(&mut grads, &vars, max)?;
            }
            self.optimiser.step(&grads, lr)?;
            self.next_step += 1;
            report.losses.push(loss);
            let mut message = format!("step {}/{} loss {loss:.4}", self.next_step, self.steps);
            for (name, value) in &out.extra {
                message.push_str(&format!(" {name} {value:.3}"));
            }
            ctx.set(self.next_step as f32 / self.steps.max(1) as f32, message);
            if let Some(policy) = &self.checkpoint
                && policy.every > 0
                && self.next_step.is_multiple_of(policy.every)
                && self.next_step < self.steps
            {
                self.write_checkpoint()?;
            }
        }
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }
}
