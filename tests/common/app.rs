//! The whole app under egui_kittest (no window, no GPU), shared by the UI test files through
//! `#[path = "common/app.rs"] mod app;`.

use egui_kittest::Harness;
use latent_workbench::app::{Launch, WorkbenchApp};

pub fn harness(launch: Launch) -> Harness<'static, WorkbenchApp> {
    Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .build_eframe(move |cc| WorkbenchApp::new(cc, launch))
}
