//! Runs a `core::jobs` job from the command line and shows its progress: a bar on a terminal,
//! plain periodic lines on stderr otherwise (logs, CI). Ctrl-C asks the job to cancel (it stops
//! within one step and writes nothing half-done); a second Ctrl-C exits at once.

use crate::core::jobs::{self, JobContext, JobError};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Ctrl-C presses since the handler was installed.
static INTERRUPTS: AtomicU32 = AtomicU32::new(0);
static HANDLER: OnceLock<bool> = OnceLock::new();

const POLL: Duration = Duration::from_millis(100);
/// How often a plain line is printed when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

fn install_ctrl_c() -> bool {
    *HANDLER.get_or_init(|| {
        ctrlc::set_handler(|| {
            if INTERRUPTS.fetch_add(1, Ordering::SeqCst) >= 1 {
                eprintln!("interrupted twice: exiting without waiting");
                std::process::exit(130);
            }
        })
        .is_ok()
    })
}

/// Runs `body` as a job named `name`, showing its progress on stderr until it ends.
pub fn run<T, F>(name: &str, body: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce(&JobContext) -> Result<T, JobError> + Send + 'static,
{
    let ctrl_c = install_ctrl_c();
    let seen_interrupts = INTERRUPTS.load(Ordering::SeqCst);
    let handle = jobs::spawn(name, None, body);
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stderr_with_hz(10));
        let style =
            ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_bar} {percent:>3}% (eta {eta}) {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(name.to_string());
        bar
    });
    let started = Instant::now();
    let mut last_line = started;
    let mut cancelling = false;
    let result = loop {
        if let Some(result) = handle.poll() {
            break result;
        }
        if ctrl_c && !cancelling && INTERRUPTS.load(Ordering::SeqCst) > seen_interrupts {
            cancelling = true;
            handle.cancel();
            let note = "cancelling after the current step (Ctrl-C again to exit now)";
            match &bar {
                Some(b) => b.println(note),
                None => eprintln!("{name}: {note}"),
            }
        }
        let p = handle.progress();
        let (fraction, message) = (p.fraction(), p.message());
        match &bar {
            Some(b) => {
                b.set_position((fraction * 1000.0).round() as u64);
                b.set_message(message);
            }
            None if last_line.elapsed() >= LINE_EVERY => {
                last_line = Instant::now();
                eprintln!("{}", plain_line(name, fraction, &message, started.elapsed()));
            }
            None => {}
        }
        std::thread::sleep(POLL);
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match result {
        Ok(v) => Ok(v),
        Err(JobError::Cancelled) => anyhow::bail!("{name}: cancelled"),
        Err(e) => anyhow::bail!("{name}: {e}"),
    }
}

/// `name: 42% (12 s) message`.
fn plain_line(name: &str, fraction: f32, message: &str, elapsed: Duration) -> String {
    format!(
        "{name}: {:>3.0}% ({:.0} s) {message}",
        fraction * 100.0,
        elapsed.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_and_errors_pass_through() {
        let v = run("sum", |ctx| {
            ctx.set(0.5, "half");
            Ok(40 + 2)
        })
        .unwrap();
        assert_eq!(v, 42);
        let e = run::<(), _>("boom", |_| Err(JobError::Failed("no data".into()))).unwrap_err();
        assert_eq!(e.to_string(), "boom: no data");
        assert_eq!(
            plain_line("train", 0.425, "step 3/7", Duration::from_secs(12)),
            "train:  42% (12 s) step 3/7"
        );
    }
}
