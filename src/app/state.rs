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
    pub stitching: super::panels::stitching::StitchingSettings,
    /// Choices of the LDAE panels (Interpolation and Attributes).
    pub ldae: super::panels::interpolation::LdaeSettings,
    /// The Shapes tab: camera, view settings, clip plane, wavelet choices.
    #[serde(default)]
    pub shapes: super::panels::shapes::ShapesSettings,
    /// The Motion tab: camera, colours, trails, playback speed and loop.
    #[serde(default)]
    pub motion: super::panels::motion::MotionSettings,
    /// The Failure search tab: models, class, objective, mode and budget.
    #[serde(default)]
    pub failure_search: super::panels::failure_search::FailureSearchSettings,
    /// The Views (WildFusion) tab: objects, blend, camera and render settings.
    #[serde(default)]
    pub wildfusion: super::panels::wildfusion::WildFusionSettings,
}

impl Default for AppState {
    fn default() -> Self {
        Self {
            version: STATE_VERSION,
            recent_files: Vec::new(),
            viewer: ViewerSettings::default(),
            dark_mode: true,
            open_demo_on_start: true,
            stitching: Default::default(),
            ldae: Default::default(),
            shapes: Default::default(),
            motion: Default::default(),
            failure_search: Default::default(),
            wildfusion: Default::default(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_from_an_older_version_keeps_known_fields() {
        // A stored state missing newer fields still loads, with defaults for the rest.
        let old = r#"{"version":1,"recent_files":["/data/a.nii.gz"],"viewer":{"colormap":"Magma"}}"#;
        let s: AppState = serde_json::from_str(old).unwrap();
        assert_eq!(s.recent_files, vec![PathBuf::from("/data/a.nii.gz")]);
        assert_eq!(s.viewer.colormap, Colormap::Magma);
        assert_eq!(s.viewer.overlay_opacity, ViewerSettings::default().overlay_opacity);
        assert!(s.open_demo_on_start);
    }

    #[test]
    fn recent_files_are_unique_newest_first_and_bounded() {
        let mut s = AppState::default();
        for i in 0..20 {
            s.push_recent(PathBuf::from(format!("/f{i}")));
        }
        s.push_recent(PathBuf::from("/f15"));
        assert_eq!(s.recent_files.len(), MAX_RECENT);
        assert_eq!(s.recent_files[0], PathBuf::from("/f15"));
        assert_eq!(s.recent_files.iter().filter(|p| p.ends_with("f15")).count(), 1);
    }
}
