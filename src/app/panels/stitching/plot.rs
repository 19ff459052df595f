//! One 2-D scatter plot of a projected space, drawn with the painter: points as small squares in
//! one mesh (at most [`MAX_DRAWN`] of them, evenly spread over the rows, so 1M points cost the
//! same frame as 20k), anchors outlined, selected points enlarged and drawn on top. Left drag
//! selects a rectangle (shift adds), a click picks the nearest point (shift toggles it),
//! double-click clears.

use egui::{Color32, Pos2, Rect, Sense, Stroke, Vec2, pos2, vec2};

/// Points drawn per plot at most; hit tests still see every point.
pub const MAX_DRAWN: usize = 20_000;
/// Selected points drawn enlarged at most (all stay selected).
const MAX_HIGHLIGHTED: usize = 5_000;
const POINT_PX: f32 = 3.0;
const SELECTED_PX: f32 = 6.0;
const ANCHOR_PX: f32 = 7.0;
/// A click farther than this from every point selects nothing.
const PICK_RADIUS_PX: f32 = 8.0;
/// Empty border around the data inside the plot rectangle.
const MARGIN_PX: f32 = 14.0;

/// Maps data coordinates into the plot rectangle, equal scale on both axes, y up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlotFrame {
    pub rect: Rect,
    centre: [f32; 2],
    scale: f32,
}

impl PlotFrame {
    pub fn fit(rect: Rect, points: &[[f32; 2]]) -> Self {
        let (mut lo, mut hi) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
        for p in points {
            for k in 0..2 {
                lo[k] = lo[k].min(p[k]);
                hi[k] = hi[k].max(p[k]);
            }
        }
        if !lo[0].is_finite() {
            (lo, hi) = ([-1.0; 2], [1.0; 2]);
        }
        let span = [(hi[0] - lo[0]).max(1e-12), (hi[1] - lo[1]).max(1e-12)];
        let inner = rect.shrink(MARGIN_PX);
        let scale = (inner.width() / span[0]).min(inner.height() / span[1]).max(1e-12);
        Self {
            rect,
            centre: [0.5 * (lo[0] + hi[0]), 0.5 * (lo[1] + hi[1])],
            scale,
        }
    }

    pub fn to_screen(&self, p: [f32; 2]) -> Pos2 {
        let c = self.rect.center();
        pos2(
            c.x + (p[0] - self.centre[0]) * self.scale,
            c.y - (p[1] - self.centre[1]) * self.scale,
        )
    }
}

/// What a plot draws.
pub struct PlotData<'a> {
    /// Accessible label, e.g. "Space A plot".
    pub label: &'a str,
    pub title: &'a str,
    pub axes: [String; 2],
    pub points: &'a [[f32; 2]],
    /// One colour per point.
    pub colors: &'a [Color32],
    pub anchors: &'a [usize],
    pub selected: &'a [bool],
    pub selected_rows: &'a [usize],
    pub ids: &'a [String],
}

/// A change of selection asked for in a plot.
#[derive(Clone, Debug, PartialEq)]
pub enum SelectionEdit {
    Replace(Vec<usize>),
    Add(Vec<usize>),
    Toggle(usize),
    Clear,
}

/// Per-plot interaction state kept between frames.
#[derive(Default)]
pub struct PlotView {
    /// Where the last frame drew, so tests and hit tests map rows to the screen.
    pub frame: Option<PlotFrame>,
    drag_from: Option<Pos2>,
    drag_to: Option<Pos2>,
}

/// Rows `0, n/m, 2n/m, …`: an even spread of at most `m` rows.
fn drawn_rows(n: usize, m: usize) -> impl Iterator<Item = usize> {
    let shown = n.min(m);
    (0..shown).map(move |i| if n <= m { i } else { i * n / m })
}

fn square(mesh: &mut egui::Mesh, c: Pos2, size: f32, color: Color32) {
    mesh.add_colored_rect(Rect::from_center_size(c, Vec2::splat(size)), color);
}

/// Draws the plot in `rect` and returns a selection edit when the user made one.
pub fn show(ui: &mut egui::Ui, rect: Rect, view: &mut PlotView, data: &PlotData) -> Option<SelectionEdit> {
    let id = egui::Id::unique(("stitching-plot", data.label));
    let response = ui
        .interact(rect, id, Sense::click_and_drag())
        .on_hover_cursor(egui::CursorIcon::Crosshair);
    let selected_count = data.selected_rows.len();
    let label = format!("{} ({} selected)", data.label, selected_count);
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Canvas, true, &label));

    let frame = PlotFrame::fit(rect, data.points);
    view.frame = Some(frame);
    let visuals = ui.visuals().clone();
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 2.0, visuals.extreme_bg_color);
    painter.rect_stroke(
        rect,
        2.0,
        Stroke::new(1.0, visuals.widgets.noninteractive.bg_stroke.color),
        egui::StrokeKind::Inside,
    );

    // All points, one mesh; a selection dims the rest so it stands out in both plots.
    let dim = selected_count > 0;
    let mut mesh = egui::Mesh::default();
    for i in drawn_rows(data.points.len(), MAX_DRAWN) {
        let c = data.colors.get(i).copied().unwrap_or(visuals.text_color());
        let c = if dim { c.gamma_multiply(0.35) } else { c };
        square(&mut mesh, frame.to_screen(data.points[i]), POINT_PX, c);
    }
    let ring = visuals.strong_text_color();
    for &i in data.selected_rows.iter().take(MAX_HIGHLIGHTED) {
        let p = frame.to_screen(data.points[i]);
        square(&mut mesh, p, SELECTED_PX + 2.0, ring);
        square(&mut mesh, p, SELECTED_PX, data.colors.get(i).copied().unwrap_or(ring));
    }
    painter.add(egui::Shape::mesh(mesh));
    let anchor_stroke = Stroke::new(1.5, ring);
    for &i in data.anchors {
        let p = frame.to_screen(data.points[i]);
        let r = ANCHOR_PX * 0.5;
        let diamond = vec![
            pos2(p.x, p.y - r),
            pos2(p.x + r, p.y),
            pos2(p.x, p.y + r),
            pos2(p.x - r, p.y),
        ];
        painter.add(egui::Shape::closed_line(diamond, anchor_stroke));
    }

    let font = egui::FontId::proportional(12.0);
    painter.text(
        rect.left_top() + vec2(6.0, 4.0),
        egui::Align2::LEFT_TOP,
        data.title,
        egui::FontId::proportional(13.0),
        visuals.strong_text_color(),
    );
    painter.text(
        rect.right_bottom() + vec2(-6.0, -4.0),
        egui::Align2::RIGHT_BOTTOM,
        &data.axes[0],
        font.clone(),
        visuals.weak_text_color(),
    );
    painter.text(
        rect.left_bottom() + vec2(6.0, -4.0),
        egui::Align2::LEFT_BOTTOM,
        &data.axes[1],
        font,
        visuals.weak_text_color(),
    );

    // Rubber band, from where the button went down to where the pointer was last seen.
    let shift = ui.input(|i| i.modifiers.shift);
    if response.drag_started() {
        view.drag_from = ui
            .input(|i| i.pointer.press_origin())
            .or(response.interact_pointer_pos());
        view.drag_to = view.drag_from;
    }
    let mut edit = None;
    if let Some(from) = view.drag_from {
        if let Some(now) = response.interact_pointer_pos() {
            view.drag_to = Some(now);
        }
        let band = Rect::from_two_pos(from, view.drag_to.unwrap_or(from));
        painter.rect_filled(band, 0.0, visuals.selection.bg_fill.gamma_multiply(0.25));
        painter.rect_stroke(
            band,
            0.0,
            Stroke::new(1.0, visuals.selection.stroke.color),
            egui::StrokeKind::Inside,
        );
        if response.drag_stopped() {
            let rows = rows_in(&frame, data.points, band);
            edit = Some(if shift {
                SelectionEdit::Add(rows)
            } else {
                SelectionEdit::Replace(rows)
            });
            view.drag_from = None;
        }
    }
    if !response.dragged() && !response.drag_stopped() {
        view.drag_from = None;
    }
    if response.double_clicked() {
        edit = Some(SelectionEdit::Clear);
    } else if response.clicked()
        && let Some(pos) = response.interact_pointer_pos()
    {
        edit = Some(match nearest(&frame, data.points, 0..data.points.len(), pos) {
            Some(i) if shift => SelectionEdit::Toggle(i),
            Some(i) => SelectionEdit::Replace(vec![i]),
            None if shift => return None,
            None => SelectionEdit::Clear,
        });
    }
    if let Some(pos) = response.hover_pos()
        && view.drag_from.is_none()
        && let Some(i) = nearest(&frame, data.points, drawn_rows(data.points.len(), MAX_DRAWN), pos)
    {
        let p = frame.to_screen(data.points[i]);
        painter.circle_stroke(p, SELECTED_PX, Stroke::new(1.0, ring));
        response.on_hover_text_at_pointer(format!("id {}", data.ids.get(i).map_or("?", String::as_str)));
    }
    edit
}

/// Rows whose points fall inside the screen rectangle `band`.
pub fn rows_in(frame: &PlotFrame, points: &[[f32; 2]], band: Rect) -> Vec<usize> {
    points
        .iter()
        .enumerate()
        .filter(|(_, p)| band.contains(frame.to_screen(**p)))
        .map(|(i, _)| i)
        .collect()
}

/// Of `rows`, the one drawn nearest `pos` within the pick radius.
fn nearest(frame: &PlotFrame, points: &[[f32; 2]], rows: impl Iterator<Item = usize>, pos: Pos2) -> Option<usize> {
    let mut best = (PICK_RADIUS_PX * PICK_RADIUS_PX, None);
    for i in rows {
        let d = frame.to_screen(points[i]).distance_sq(pos);
        if d <= best.0 {
            best = (d, Some(i));
        }
    }
    best.1
}
