//! The opacity curve editor of the volume transfer function: the curve over the window, drawn
//! over the colormap it scales. Drag a point to move it (the end points only up and down),
//! double-click to add one, right-click a point to remove it.

use crate::core::colormap::Colormap;
use crate::core::transfer::OpacityCurve;

pub const EDITOR_HEIGHT: f32 = 90.0;
/// How near (in points) a press must land to pick a control point.
const PICK_RADIUS: f32 = 8.0;

/// Draws the editor `width` wide and applies the user's edits to `curve`; the response says
/// whether it changed.
pub fn curve_editor(ui: &mut egui::Ui, curve: &mut OpacityCurve, colormap: Colormap, width: f32) -> egui::Response {
    let (rect, mut response) = ui.allocate_exact_size(egui::vec2(width, EDITOR_HEIGHT), egui::Sense::click_and_drag());
    let plot = rect.shrink(6.0);
    let to_screen = |p: [f32; 2]| egui::pos2(plot.left() + p[0] * plot.width(), plot.bottom() - p[1] * plot.height());
    let from_screen = |s: egui::Pos2| {
        [
            ((s.x - plot.left()) / plot.width()).clamp(0.0, 1.0),
            ((plot.bottom() - s.y) / plot.height()).clamp(0.0, 1.0),
        ]
    };
    let nearest = |pos: egui::Pos2, curve: &OpacityCurve| {
        curve
            .points()
            .iter()
            .enumerate()
            .map(|(i, p)| (i, to_screen(*p).distance(pos)))
            .filter(|(_, d)| *d <= PICK_RADIUS)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    };
    let drag_id = response.id.with("dragged_point");
    let before = *curve;
    // The point under the press, not under the pointer when the drag is recognised (a few
    // points later).
    if response.drag_started()
        && let Some(pos) = ui.input(|i| i.pointer.press_origin())
    {
        let picked = nearest(pos, curve);
        ui.data_mut(|d| d.insert_temp(drag_id, picked));
    }
    if response.dragged()
        && let (Some(Some(i)), Some(pos)) = (
            ui.data(|d| d.get_temp::<Option<usize>>(drag_id)),
            response.interact_pointer_pos(),
        )
    {
        let [t, a] = from_screen(pos);
        curve.move_point(i, t, a);
    }
    if response.drag_stopped() {
        ui.data_mut(|d| d.remove::<Option<usize>>(drag_id));
    }
    if response.double_clicked()
        && let Some(pos) = response.interact_pointer_pos()
        && nearest(pos, curve).is_none()
    {
        let [t, a] = from_screen(pos);
        curve.insert(t, a);
    }
    if response.secondary_clicked()
        && let Some(pos) = response.interact_pointer_pos()
        && let Some(i) = nearest(pos, curve)
    {
        curve.remove(i);
    }
    if *curve != before {
        response.mark_changed();
    }

    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
    // The colormap as a strip whose height is the opacity: what a voxel at that window position
    // looks like and how much of it shows.
    let columns = plot.width().max(1.0) as usize;
    for c in 0..columns {
        let t = (c as f32 + 0.5) / columns as f32;
        let [r, g, b, _] = colormap.rgba(t);
        let top = to_screen([t, curve.eval(t)]).y;
        let x = plot.left() + c as f32;
        painter.rect_filled(
            egui::Rect::from_min_max(egui::pos2(x, top), egui::pos2(x + 1.0, plot.bottom())),
            0.0,
            egui::Color32::from_rgba_unmultiplied(r, g, b, 150),
        );
    }
    let line: Vec<egui::Pos2> = curve.points().iter().map(|p| to_screen(*p)).collect();
    let stroke_color = ui.visuals().strong_text_color();
    painter.add(egui::Shape::line(line.clone(), egui::Stroke::new(1.5, stroke_color)));
    for p in line {
        painter.circle(
            p,
            4.0,
            ui.visuals().extreme_bg_color,
            egui::Stroke::new(1.5, stroke_color),
        );
    }
    let text = format!(
        "opacity curve: {}",
        curve
            .points()
            .iter()
            .map(|p| format!("{:.2}:{:.2}", p[0], p[1]))
            .collect::<Vec<_>>()
            .join(", ")
    );
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Canvas, true, &text));
    response.on_hover_text(
        "Opacity across the window (left: transparent below, right: opaque at). Drag a point; double-click to \
         add one; right-click a point to remove it.",
    )
}
