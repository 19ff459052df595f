//! Session data: what is loaded now, running jobs, the log and per-panel runtime state.
//! Never persisted.

use super::notify::Log;
use super::panels::{
    attributes::AttributesRuntime, inspector::InspectorRuntime, interpolation::InterpolationRuntime,
    stitching::StitchingRuntime, viewer::ViewerRuntime,
};
use crate::core::Asset;
use crate::core::jobs::{JobHandle, Waker};
use std::path::PathBuf;
use std::sync::mpsc::Receiver;

pub struct LoadedAsset {
    pub id: u64,
    pub name: String,
    /// `None` for built-in or generated data.
    pub path: Option<PathBuf>,
    pub asset: Asset,
}

/// What a load job hands back.
pub struct Loaded {
    pub name: String,
    pub path: Option<PathBuf>,
    pub asset: Asset,
}

#[derive(Default)]
pub struct Session {
    pub assets: Vec<LoadedAsset>,
    /// The asset the viewer and inspector show.
    pub active: Option<u64>,
    /// A second volume blended over the active one.
    pub overlay: Option<u64>,
    pub loads: Vec<JobHandle<Loaded>>,
    pub log: Log,
    pub viewer: ViewerRuntime,
    pub inspector: InspectorRuntime,
    pub interpolation: InterpolationRuntime,
    pub attributes: AttributesRuntime,
    pub stitching: StitchingRuntime,
    pub shapes: super::panels::shapes::ShapesRuntime,
    pub motion: super::panels::motion::MotionRuntime,
    pub failure_search: super::panels::failure_search::FailureSearchRuntime,
    pub wildfusion: super::panels::wildfusion::WildFusionRuntime,
    /// Paths picked in a file dialog running on its own thread.
    pub dialog: Option<Receiver<Vec<PathBuf>>>,
    /// A save dialog for a view PNG.
    pub save_dialog: Option<(crate::core::slice::Plane, Receiver<Option<PathBuf>>)>,
    pub waker: Option<Waker>,
    /// Registered models (shipped and the user's) and the manifests that failed to parse.
    pub models: Vec<crate::core::manifest::Entry>,
    pub model_errors: Vec<String>,
    /// A file dialog picking a checkpoint to register, with its family.
    pub model_dialog: Option<(String, Receiver<Option<PathBuf>>)>,
    next_id: u64,
}

impl Session {
    /// Rescans the model folders.
    pub fn rescan_models(&mut self) {
        let (entries, errors) = crate::core::manifest::scan(&crate::core::manifest::search_dirs());
        self.models = entries;
        self.model_errors = errors.iter().map(ToString::to_string).collect();
    }

    pub fn add(&mut self, loaded: Loaded) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.assets.push(LoadedAsset {
            id,
            name: loaded.name,
            path: loaded.path,
            asset: loaded.asset,
        });
        id
    }
    pub fn get(&self, id: u64) -> Option<&LoadedAsset> {
        self.assets.iter().find(|a| a.id == id)
    }
    pub fn active(&self) -> Option<&LoadedAsset> {
        self.active.and_then(|id| self.get(id))
    }
    /// The active asset when it is a volume.
    pub fn active_volume(&self) -> Option<(u64, &crate::core::Volume)> {
        self.active().and_then(|a| match &a.asset {
            Asset::Volume(v) => Some((a.id, v)),
            _ => None,
        })
    }
    pub fn overlay_volume(&self) -> Option<(u64, &crate::core::Volume)> {
        self.overlay.and_then(|id| self.get(id)).and_then(|a| match &a.asset {
            Asset::Volume(v) => Some((a.id, v)),
            _ => None,
        })
    }
    pub fn volumes(&self) -> impl Iterator<Item = &LoadedAsset> {
        self.assets.iter().filter(|a| matches!(a.asset, Asset::Volume(_)))
    }
    pub fn remove(&mut self, id: u64) {
        self.assets.retain(|a| a.id != id);
        if self.active == Some(id) {
            self.active = self.assets.last().map(|a| a.id);
        }
        if self.overlay == Some(id) {
            self.overlay = None;
        }
    }
}
