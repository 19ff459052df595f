//! The dockable tabs and their default layout (egui_tiles).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Tab {
    Data,
    Viewer,
    Inspector,
    Interpolation,
    Attributes,
    Stitching,
    FailureSearch,
    Shapes,
    Motion,
    WildFusion,
    Log,
}

impl Tab {
    pub const ALL: [Tab; 11] = [
        Tab::Data,
        Tab::Viewer,
        Tab::Inspector,
        Tab::Interpolation,
        Tab::Attributes,
        Tab::Stitching,
        Tab::FailureSearch,
        Tab::Shapes,
        Tab::Motion,
        Tab::WildFusion,
        Tab::Log,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Data => "Data",
            Tab::Viewer => "Viewer",
            Tab::Inspector => "Latent inspector",
            Tab::Interpolation => "Interpolation",
            Tab::Attributes => "Attributes",
            Tab::Stitching => "Stitching",
            Tab::FailureSearch => "Failure search",
            Tab::Shapes => "Shapes",
            Tab::Motion => "Motion",
            Tab::WildFusion => "Views (WildFusion)",
            Tab::Log => "Log",
        }
    }

    /// Case-insensitive lookup by title or variant name (for `--tab`).
    pub fn from_name(name: &str) -> Option<Tab> {
        let n = name.trim().to_lowercase().replace(['-', '_'], " ");
        Tab::ALL
            .into_iter()
            .find(|t| t.title().to_lowercase() == n || format!("{t:?}").to_lowercase() == n.replace(' ', ""))
    }
}

/// Data and Log on the left; the work tabs on the right.
pub fn default_tree() -> egui_tiles::Tree<Tab> {
    let mut tiles = egui_tiles::Tiles::default();
    let data = tiles.insert_pane(Tab::Data);
    let log = tiles.insert_pane(Tab::Log);
    let left = tiles.insert_tab_tile(vec![data, log]);
    let work: Vec<_> = [
        Tab::Viewer,
        Tab::Inspector,
        Tab::Interpolation,
        Tab::Attributes,
        Tab::Stitching,
        Tab::FailureSearch,
        Tab::Shapes,
        Tab::Motion,
        Tab::WildFusion,
    ]
    .into_iter()
    .map(|t| tiles.insert_pane(t))
    .collect();
    let right = tiles.insert_tab_tile(work);
    let root = tiles.insert_horizontal_tile(vec![left, right]);
    if let Some(egui_tiles::Tile::Container(egui_tiles::Container::Linear(lin))) = tiles.get_mut(root) {
        lin.shares.set_share(left, 0.22);
        lin.shares.set_share(right, 0.78);
    }
    egui_tiles::Tree::new(egui::Id::unique("workbench_tree"), root, tiles)
}

/// Whether every tab is present exactly once (a stored layout from an older version may not be).
pub fn tree_is_complete(tree: &egui_tiles::Tree<Tab>) -> bool {
    Tab::ALL.iter().all(|tab| {
        tree.tiles
            .iter()
            .filter(|(_, t)| matches!(t, egui_tiles::Tile::Pane(p) if p == tab))
            .count()
            == 1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_survives_a_round_trip_through_storage() {
        let tree = default_tree();
        assert!(tree_is_complete(&tree));
        let text = serde_json::to_string(&tree).unwrap();
        let back: egui_tiles::Tree<Tab> = serde_json::from_str(&text).unwrap();
        assert!(tree_is_complete(&back));
        let mut broken = default_tree();
        let log = broken.tiles.find_pane(&Tab::Log).unwrap();
        broken.tiles.remove(log);
        assert!(!tree_is_complete(&broken), "a stored layout missing a tab is replaced");
    }
}
