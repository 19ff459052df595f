//! One file per panel. Each draws from the session and queues commands.

pub mod attributes;
pub mod data;
pub mod failure_search;
pub mod inspector;
pub mod interpolation;
pub mod log;
pub mod motion;
pub mod shapes;
pub mod stitching;
pub mod viewer;
pub mod viewport3d;
pub mod wildfusion;

use super::{AppState, Command, Session, Tab};

/// Routes each tab to its panel.
pub struct TabBehavior<'a> {
    pub state: &'a mut AppState,
    pub session: &'a mut Session,
    pub commands: &'a mut Vec<Command>,
    /// Whether the 3D viewport can draw: its GPU resources installed, its last frame rendered.
    pub gpu_viewport: viewport3d::GpuStatus,
}

impl egui_tiles::Behavior<Tab> for TabBehavior<'_> {
    fn tab_title_for_pane(&mut self, pane: &Tab) -> egui::WidgetText {
        pane.title().into()
    }

    fn pane_ui(&mut self, ui: &mut egui::Ui, _tile_id: egui_tiles::TileId, pane: &mut Tab) -> egui_tiles::UiResponse {
        egui::Frame::new().inner_margin(6.0).show(ui, |ui| match pane {
            Tab::Data => data::ui(ui, self.state, self.session, self.commands),
            Tab::Viewer => viewer::ui(ui, &mut self.state.viewer, self.session, self.commands),
            Tab::Inspector => inspector::ui(ui, self.session, self.commands),
            Tab::Log => log::ui(ui, self.session),
            Tab::Interpolation => interpolation::ui(ui, self.state, self.session, self.commands),
            Tab::Attributes => attributes::ui(ui, self.state, self.session, self.commands),
            Tab::Stitching => stitching::ui(ui, self.state, self.session, self.commands),
            Tab::FailureSearch => failure_search::ui(ui, self.state, self.session, self.commands),
            Tab::Shapes => shapes::ui(ui, self.state, self.session, self.commands, &self.gpu_viewport),
            Tab::Motion => motion::ui(ui, self.state, self.session, self.commands, &self.gpu_viewport),
            Tab::WildFusion => wildfusion::ui(ui, self.state, self.session),
        });
        egui_tiles::UiResponse::None
    }

    fn simplification_options(&self) -> egui_tiles::SimplificationOptions {
        egui_tiles::SimplificationOptions {
            all_panes_must_have_tabs: true,
            ..Default::default()
        }
    }

    fn is_tab_closable(&self, _tiles: &egui_tiles::Tiles<Tab>, _tile_id: egui_tiles::TileId) -> bool {
        false
    }
}

/// A name made safe as a file stem for a save dialog's suggestion (letters, digits, - and _ kept,
/// anything else `_`).
pub fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A one-line description of an asset for lists.
pub fn describe(asset: &crate::core::Asset) -> String {
    use crate::core::Asset;
    match asset {
        Asset::Volume(v) => describe_volume(v),
        Asset::Image(i) => format!(
            "image {}x{} {} {}-bit",
            i.width(),
            i.height(),
            i.channels().name(),
            i.bit_depth().bits()
        ),
        Asset::Mesh(m) => format!("mesh {} vertices, {} faces", m.positions.len(), m.triangles.len()),
        Asset::PointCloud(p) => format!("point cloud {} points", p.len()),
        Asset::Motion(m) => format!(
            "{} sequence, {} frames × {} {}",
            if m.is_mesh() { "mesh" } else { "point" },
            m.len(),
            m.frames.first().map_or(0, Vec::len),
            if m.is_mesh() { "vertices" } else { "points" }
        ),
        Asset::Tensors(ts) => match ts.as_slice() {
            [t] => format!("tensor {:?} {}", t.shape(), t.source_kind.name()),
            _ => format!("{} tensors", ts.len()),
        },
    }
}

pub fn describe_volume(v: &crate::core::Volume) -> String {
    let s = v.spacing_mm();
    let shape: Vec<String> = v.shape().iter().map(ToString::to_string).collect();
    format!(
        "volume {} {}, {:.2}x{:.2}x{:.2} mm",
        shape.join("x"),
        v.source_kind.name(),
        s[0],
        s[1],
        s[2]
    )
}
