//! The whole app under egui_kittest (no window, no GPU), shared by the UI test files through
//! `#[path = "common/app.rs"] mod app;`.

use egui_kittest::Harness;
#[path = "wait.rs"]
mod wait;
use latent_workbench::app::{Launch, WorkbenchApp};

pub fn harness(launch: Launch) -> Harness<'static, WorkbenchApp> {
    Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .build_eframe(move |cc| WorkbenchApp::new(cc, launch))
}

/// Steps until `idle` holds for the app (jobs finish on worker threads), then two more frames so
/// the panels show the results.
pub fn settle_until(h: &mut Harness<'static, WorkbenchApp>, idle: impl Fn(&WorkbenchApp) -> bool) {
    wait::until(h, "the app's jobs", idle);
}
