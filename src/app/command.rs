//! Commands: panels queue them, the app applies them once per frame, so no panel mutates
//! shared session state while another is drawing.

use super::tabs::Tab;
use crate::core::slice::Plane;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Show the system file dialog (on a worker thread) and open what is picked.
    OpenDialog,
    /// Show the system folder dialog and open the picked folder as a sequence of frames.
    OpenFolderDialog,
    Open(PathBuf),
    LoadDemo,
    /// Add the Shapes tab's two procedural SDF volumes to the session.
    AddDemoShapes,
    /// Add the Motion tab's procedural sequences (a walking figure, a bending capsule).
    AddDemoMotion,
    Remove(u64),
    SetActive(u64),
    SetOverlay(Option<u64>),
    ShowTab(Tab),
    /// Save a PNG of one viewer plane; `None` asks for a path with the save dialog.
    SaveViewPng {
        plane: Plane,
        path: Option<PathBuf>,
    },
    CancelJob(u64),
    ClearRecent,
    /// Pick a checkpoint file and register it as a model of this family.
    AddModelDialog {
        family: String,
    },
    AddModel {
        path: PathBuf,
        family: String,
    },
    ResetLayout,
}
