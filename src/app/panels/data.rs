//! The Data tab: what is loaded, which one is shown, the overlay, recent files.

use super::describe;
use crate::app::{AppState, Command, Session};

pub fn ui(ui: &mut egui::Ui, state: &AppState, session: &Session, commands: &mut Vec<Command>) {
    ui.horizontal(|ui| {
        if ui
            .button("Open...")
            .on_hover_text("Open files (Ctrl+O), or drop them on the window")
            .clicked()
        {
            commands.push(Command::OpenDialog);
        }
        if ui
            .button("Demo")
            .on_hover_text("Open the MNI152 T1 demo volume")
            .clicked()
        {
            commands.push(Command::LoadDemo);
        }
    });
    ui.separator();
    if session.assets.is_empty() {
        ui.weak("Nothing loaded. Open a NIfTI volume, an image, a mesh or a tensor file, or drop one here.");
    }
    for a in &session.assets {
        let active = session.active == Some(a.id);
        let is_overlay = session.overlay == Some(a.id);
        ui.horizontal(|ui| {
            let label = ui.selectable_label(active, &a.name).on_hover_text(
                a.path
                    .as_ref()
                    .map_or("built-in".to_string(), |p| p.display().to_string()),
            );
            if label.clicked() {
                commands.push(Command::SetActive(a.id));
            }
            if matches!(a.asset, crate::core::Asset::Volume(_)) {
                let text = if is_overlay { "Overlay on" } else { "Overlay" };
                if ui
                    .selectable_label(is_overlay, text)
                    .on_hover_text("Blend this volume over the one shown")
                    .clicked()
                {
                    commands.push(Command::SetOverlay(if is_overlay { None } else { Some(a.id) }));
                }
            }
            if ui.small_button("Remove").clicked() {
                commands.push(Command::Remove(a.id));
            }
        });
        ui.weak(describe(&a.asset));
        ui.add_space(2.0);
    }
    for job in &session.loads {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(&job.name);
        });
    }
    ui.separator();
    ui.collapsing("Recent files", |ui| {
        if state.recent_files.is_empty() {
            ui.weak("(none yet)");
        }
        for p in &state.recent_files {
            let name = p
                .file_name()
                .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned());
            if ui.link(name).on_hover_text(p.display().to_string()).clicked() {
                commands.push(Command::Open(p.clone()));
            }
        }
    });
}
