//! Persisted UI state: settings and preferences that survive a restart. Session data (loaded
//! volumes, jobs, GPU textures) lives in `session.rs` and is never saved.

use crate::core::Colormap;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Bumped when a field changes meaning; older state is then discarded instead of misread.
pub const STATE_VERSION: u32 = 1;
/// How many recent files the File menu keeps.
pub const MAX_RECENT: usize = 12;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct AppState {
    pub version: u32,
    pub recent_files: Vec<PathBuf>,
    pub viewer: ViewerSettings,
    pub dark_mode: bool,
    /// Open the built-in MNI152 demo when no file is given.
    pub open_demo_on_start: bool,
}

impl Default for AppState {
    fn default() -> Self {
        Self {
            version: STATE_VERSION,
            recent_files: Vec::new(),
            viewer: ViewerSettings::default(),
            dark_mode: true,
            open_demo_on_start: true,
        }
    }
}

impl AppState {
    /// Moves `path` to the top of the recent list.
    pub fn push_recent(&mut self, path: PathBuf) {
        self.recent_files.retain(|p| p != &path);
        self.recent_files.insert(0, path);
        self.recent_files.truncate(MAX_RECENT);
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ViewerSettings {
    pub colormap: Colormap,
    pub overlay_colormap: Colormap,
    pub overlay_opacity: f32,
    /// Bilinear texture filtering instead of crisp voxels.
    pub smooth: bool,
    pub show_crosshair: bool,
    /// Percentiles used by "auto" window/level.
    pub auto_percentiles: (f64, f64),
}

impl Default for ViewerSettings {
    fn default() -> Self {
        Self {
            colormap: Colormap::Gray,
            overlay_colormap: Colormap::Magma,
            overlay_opacity: 0.5,
            smooth: false,
            show_crosshair: true,
            auto_percentiles: (1.0, 99.0),
        }
    }
}
