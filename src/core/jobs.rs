//! Background jobs: a named worker thread per job, shared progress, cooperative cancellation,
//! and a result the UI collects without blocking a frame.
//!
//! A job's body receives a [`JobContext`]; it reports progress with [`JobContext::set`] and calls
//! [`JobContext::check`] between steps, which returns `Err(JobError::Cancelled)` once the user has
//! pressed cancel. Writers inside a job write atomically, so a cancelled job leaves no half file.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError, channel};
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum JobError {
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Failed(String),
    #[error("the worker thread stopped unexpectedly")]
    Lost,
}

/// Progress shared between a job and whoever watches it.
#[derive(Debug, Default)]
pub struct Progress {
    fraction_bits: AtomicU32,
    message: Mutex<String>,
    cancelled: AtomicBool,
}

impl Progress {
    pub fn fraction(&self) -> f32 {
        f32::from_bits(self.fraction_bits.load(Ordering::Relaxed))
    }
    pub fn message(&self) -> String {
        self.message.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}

/// What a running job sees.
#[derive(Clone, Debug)]
pub struct JobContext {
    progress: Arc<Progress>,
    /// The part of the job's bar this context reports into: `set(f, …)` shows `start + span·f`.
    /// A job made of stages hands each stage a [`JobContext::within`] so that each stage's own
    /// 0–1 fills its share, and the bar fills once.
    start: f32,
    span: f32,
}

impl JobContext {
    /// A context with no watcher, for running job bodies synchronously (CLI, tests).
    pub fn detached() -> Self {
        Self {
            progress: Arc::default(),
            start: 0.0,
            span: 1.0,
        }
    }
    /// The same job (progress, cancellation) seen by one stage of it: the stage's fractions 0–1
    /// fill `[start, start + span]` of this context's range.
    pub fn within(&self, start: f32, span: f32) -> Self {
        let start = start.clamp(0.0, 1.0);
        let span = span.clamp(0.0, 1.0 - start);
        Self {
            progress: self.progress.clone(),
            start: self.start + self.span * start,
            span: self.span * span,
        }
    }
    /// Reports progress: `fraction` in 0–1 (of this context's range) and a short message.
    pub fn set(&self, fraction: f32, message: impl Into<String>) {
        let shown = self.start + self.span * fraction.clamp(0.0, 1.0);
        self.progress
            .fraction_bits
            .store(shown.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
        *self.progress.message.lock().unwrap_or_else(PoisonError::into_inner) = message.into();
    }
    /// `Err(Cancelled)` once cancellation was requested; call between steps.
    pub fn check(&self) -> Result<(), JobError> {
        if self.progress.is_cancelled() {
            Err(JobError::Cancelled)
        } else {
            Ok(())
        }
    }
    pub fn progress(&self) -> &Arc<Progress> {
        &self.progress
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A running (or finished) job producing `T`.
pub struct JobHandle<T> {
    pub id: u64,
    pub name: String,
    progress: Arc<Progress>,
    rx: Receiver<Result<T, JobError>>,
}

impl<T> JobHandle<T> {
    pub fn progress(&self) -> &Progress {
        &self.progress
    }
    pub fn cancel(&self) {
        self.progress.cancel();
    }
    /// The result once the job has finished; `None` while it runs. Never blocks.
    pub fn poll(&self) -> Option<Result<T, JobError>> {
        match self.rx.try_recv() {
            Ok(r) => Some(r),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Err(JobError::Lost)),
        }
    }
    /// Blocks until the job finishes (CLI and tests).
    pub fn wait(self) -> Result<T, JobError> {
        self.rx.recv().unwrap_or(Err(JobError::Lost))
    }
}

/// Called when a job finishes, e.g. to wake the UI for a repaint.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Starts `body` on a named thread.
pub fn spawn<T, F>(name: impl Into<String>, waker: Option<Waker>, body: F) -> JobHandle<T>
where
    T: Send + 'static,
    F: FnOnce(&JobContext) -> Result<T, JobError> + Send + 'static,
{
    let name = name.into();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let ctx = JobContext::detached();
    let progress = ctx.progress.clone();
    let (tx, rx) = channel();
    let thread_name = format!("job-{id}");
    let spawned = std::thread::Builder::new().name(thread_name).spawn(move || {
        let result = body(&ctx);
        let _ = tx.send(result);
        if let Some(w) = waker {
            w();
        }
    });
    if let Err(e) = spawned {
        // The receiver then reports the failure on the first poll.
        log::error!("cannot start job thread for {name}: {e}");
    }
    JobHandle { id, name, progress, rx }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn job_reports_progress_and_result() {
        let h = spawn("sum", None, |ctx| {
            ctx.set(0.5, "half");
            Ok(2 + 2)
        });
        assert_eq!(h.wait(), Ok(4));
    }

    #[test]
    fn a_stage_fills_only_its_share_of_the_bar() {
        let ctx = JobContext::detached();
        let generate = ctx.within(0.1, 0.4);
        generate.set(0.0, "first");
        assert!((ctx.progress().fraction() - 0.1).abs() < 1e-6);
        generate.set(1.0, "last");
        assert!((ctx.progress().fraction() - 0.5).abs() < 1e-6);
        assert_eq!(ctx.progress().message(), "last");
        // Nested stages compose; out-of-range fractions stay inside the stage's share.
        let inner = generate.within(0.5, 0.5);
        inner.set(0.5, "inner");
        assert!((ctx.progress().fraction() - 0.4).abs() < 1e-6);
        inner.set(7.0, "past the end");
        assert!((ctx.progress().fraction() - 0.5).abs() < 1e-6);
        // A span past the end of the bar is cut at 1.
        ctx.within(0.8, 0.9).set(1.0, "end");
        assert!((ctx.progress().fraction() - 1.0).abs() < 1e-6);
        // Cancelling the job reaches every stage.
        ctx.progress().cancel();
        assert_eq!(inner.check(), Err(JobError::Cancelled));
    }

    #[test]
    fn cancel_stops_within_one_step() {
        let h = spawn("loop", None, |ctx| {
            let mut steps = 0u32;
            loop {
                ctx.check()?;
                steps += 1;
                ctx.set(0.0, format!("step {steps}"));
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        h.cancel();
        assert_eq!(h.wait(), Err::<(), _>(JobError::Cancelled));
    }
}
