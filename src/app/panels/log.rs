//! The log tab: every message and error of this session, newest last.

use crate::app::{Level, Session};

pub fn ui(ui: &mut egui::Ui, session: &Session) {
    let errors = session.log.errors().count();
    ui.label(format!("{} messages, {} errors", session.log.entries.len(), errors));
    ui.separator();
    egui::ScrollArea::vertical()
        .stick_to_bottom(true)
        .auto_shrink([false; 2])
        .show(ui, |ui| {
            for e in &session.log.entries {
                let secs =
                    e.at.duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs() % 86_400)
                        .unwrap_or(0);
                let stamp = format!("{:02}:{:02}:{:02}", secs / 3600, (secs / 60) % 60, secs % 60);
                let text = format!("{stamp}  {}", e.message);
                match e.level {
                    Level::Error => ui.colored_label(ui.visuals().error_fg_color, text),
                    Level::Warning => ui.colored_label(ui.visuals().warn_fg_color, text),
                    Level::Info => ui.label(text),
                };
            }
        });
}
