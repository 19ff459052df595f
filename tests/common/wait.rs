//! Waiting for background jobs in headless UI tests, shared through
//! `#[path = "common/wait.rs"] mod wait;`.

use egui_kittest::Harness;
use std::time::{Duration, Instant};

/// How long a UI test waits for a job. A wall-clock bound, not a frame count: on a loaded 2-core
/// CI machine a frame (and the job behind it) can take many times longer than on a quiet one, and
/// a job that is merely slow must not read as a hung one.
pub const LIMIT: Duration = Duration::from_secs(600);

/// Steps frames until `done` holds for the harness state (jobs run on worker threads), then two
/// more so the panels show the results; panics naming `what` after [`LIMIT`].
pub fn until<S>(h: &mut Harness<'static, S>, what: &str, done: impl Fn(&S) -> bool) {
    let start = Instant::now();
    loop {
        h.step();
        if done(h.state()) {
            h.run_steps(2);
            return;
        }
        assert!(start.elapsed() < LIMIT, "timed out after {LIMIT:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
