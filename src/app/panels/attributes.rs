//! Attribute manipulation (LDAE). Not built yet: shows the plan.

use super::placeholder;
use crate::app::{AppState, Command, Session, Tab};

/// Per-session state of the panel (jobs, results); never persisted.
#[derive(Default)]
pub struct AttributesRuntime {}

pub fn ui(ui: &mut egui::Ui, _state: &mut AppState, _session: &mut Session, _commands: &mut Vec<Command>) {
    placeholder::ui(ui, Tab::Attributes);
}
