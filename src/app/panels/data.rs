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
        let hover = a
            .path
            .as_ref()
            .map_or("built-in".to_string(), |p| p.display().to_string());
        if ui.selectable_label(active, &a.name).on_hover_text(hover).clicked() {
            commands.push(Command::SetActive(a.id));
        }
        ui.weak(describe(&a.asset));
        ui.horizontal(|ui| {
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
        ui.add_space(4.0);
    }
    for job in &session.loads {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(&job.name);
        });
    }
    ui.separator();
    ui.collapsing(format!("Models ({})", session.models.len()), |ui| {
        if session.models.is_empty() {
            ui.weak("No models registered yet. Demo models arrive with the method issues.");
        }
        for m in &session.models {
            let present = m.weights_path().is_file();
            let origin = match m.origin {
                crate::core::manifest::Origin::Builtin => "built-in",
                crate::core::manifest::Origin::User => "yours",
            };
            ui.label(format!("{} - {} ({origin})", m.manifest.name, m.manifest.family))
                .on_hover_text(m.dir.display().to_string());
            if !present {
                ui.colored_label(ui.visuals().warn_fg_color, "weights file missing");
            }
        }
        for e in &session.model_errors {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        ui.menu_button("Register a checkpoint...", |ui| {
            ui.label("Family:");
            // A WaLa diffusion model is a folder (args.json beside the checkpoint), opened from
            // the Shapes tab, not a single checkpoint file.
            let single_file = crate::core::manifest::FAMILIES
                .into_iter()
                .filter(|f| *f != crate::methods::wala::generate::DIFFUSION_FAMILY);
            for family in single_file {
                if ui.button(family).clicked() {
                    commands.push(Command::AddModelDialog {
                        family: family.to_string(),
                    });
                }
            }
        });
    });
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
