//! Point colours from a label column: a categorical palette for class-like columns, a continuous
//! colormap (`core::colormap`) for numeric columns with many distinct values.

use crate::core::Colormap;
use crate::methods::relreps::LabelColumn;
use egui::Color32;
use std::collections::BTreeMap;

/// Tableau 10: distinct under the common colour-vision deficiencies, readable on dark and light.
const PALETTE: [Color32; 10] = [
    Color32::from_rgb(78, 121, 167),
    Color32::from_rgb(242, 142, 43),
    Color32::from_rgb(225, 87, 89),
    Color32::from_rgb(118, 183, 178),
    Color32::from_rgb(89, 161, 79),
    Color32::from_rgb(237, 201, 72),
    Color32::from_rgb(176, 122, 161),
    Color32::from_rgb(255, 157, 167),
    Color32::from_rgb(156, 117, 95),
    Color32::from_rgb(186, 176, 172),
];
/// A numeric column with more distinct values than this is shown as a continuous range.
const MAX_CATEGORIES: usize = 12;
const CONTINUOUS_MAP: Colormap = Colormap::Viridis;

pub enum Legend {
    /// No column: every point the same colour.
    Plain,
    /// Class names and their colours (colours repeat past the palette's size).
    Categories(Vec<(String, Color32)>),
    /// A numeric range through the continuous map.
    Range { lo: f32, hi: f32 },
}

pub struct Coloring {
    pub colors: Vec<Color32>,
    pub legend: Legend,
}

/// Whether a column is shown as classes (so it can also stratify anchors).
pub fn is_categorical(column: &LabelColumn) -> bool {
    numeric(column).is_none()
}

/// The values as numbers when every one parses and there are too many distinct ones for classes.
fn numeric(column: &LabelColumn) -> Option<Vec<f32>> {
    let values: Vec<f32> = column
        .values
        .iter()
        .map(|v| v.trim().parse::<f32>().ok())
        .collect::<Option<_>>()?;
    let mut distinct: Vec<u32> = values.iter().map(|v| v.to_bits()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    (distinct.len() > MAX_CATEGORIES).then_some(values)
}

pub fn color_by(column: Option<&LabelColumn>, n: usize, plain: Color32) -> Coloring {
    let Some(column) = column.filter(|c| c.values.len() == n) else {
        return Coloring {
            colors: vec![plain; n],
            legend: Legend::Plain,
        };
    };
    if let Some(values) = numeric(column) {
        let lo = values.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let colors = CONTINUOUS_MAP
            .apply(&values, lo, hi)
            .into_iter()
            .map(|[r, g, b, _]| Color32::from_rgb(r, g, b))
            .collect();
        return Coloring {
            colors,
            legend: Legend::Range { lo, hi },
        };
    }
    // Classes in sorted order, so the same column gets the same colours every time.
    let mut classes: BTreeMap<&str, usize> = column.values.iter().map(|v| (v.as_str(), 0)).collect();
    for (k, slot) in classes.values_mut().enumerate() {
        *slot = k;
    }
    let colors = column
        .values
        .iter()
        .map(|v| PALETTE[classes[v.as_str()] % PALETTE.len()])
        .collect();
    let legend = classes
        .iter()
        .map(|(name, &k)| ((*name).to_string(), PALETTE[k % PALETTE.len()]))
        .collect();
    Coloring {
        colors,
        legend: Legend::Categories(legend),
    }
}

/// Colour of `t` in [0, 1] on the continuous map (for the legend's gradient).
pub fn ramp(t: f32) -> Color32 {
    let [r, g, b, _] = CONTINUOUS_MAP.rgba(t);
    Color32::from_rgb(r, g, b)
}
