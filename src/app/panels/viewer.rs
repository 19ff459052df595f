//! The three-plane volume viewer: axial, coronal and sagittal slices with a crosshair linked in
//! world coordinates (mm), window/level, colormaps, an overlay, zoom/pan and PNG export.
//!
//! Mouse: left click/drag moves the crosshair; right drag changes window (horizontal) and level
//! (vertical); middle or shift+left drag pans; wheel scrolls slices; ctrl+wheel zooms;
//! double-click resets the view. Keys over a view: Up/Down (1 slice), PageUp/PageDown (10), R (reset).
//!
//! Slices are extracted and colour-mapped on the CPU (`core::slice`) and cached as textures
//! keyed by everything that changes their pixels, so idle frames upload nothing.

use crate::app::{Command, Session, ViewerSettings};
use crate::core::slice::{Layer, Plane, PlaneImage, render_plane};
use crate::core::stats::percentiles;
use crate::core::{Colormap, Volume};
use std::collections::HashMap;

/// Zoom limits (1 = the slice fits its view).
const MIN_ZOOM: f32 = 0.25;
const MAX_ZOOM: f32 = 32.0;
/// Right-drag sensitivity: window width changes by e^(dx·k), level by dy·width·k.
const WL_SENSITIVITY: f32 = 0.005;

pub struct PlaneView {
    pub zoom: f32,
    pub pan: egui::Vec2,
    texture: Option<(RenderKey, egui::TextureHandle)>,
}

impl Default for PlaneView {
    fn default() -> Self {
        Self {
            zoom: 1.0,
            pan: egui::Vec2::ZERO,
            texture: None,
        }
    }
}

/// Everything that changes a view's pixels.
#[derive(Clone, Debug, PartialEq)]
struct RenderKey {
    base: u64,
    overlay: Option<u64>,
    index: usize,
    frame: usize,
    window: (u32, u32),
    colormap: Colormap,
    overlay_window: (u32, u32),
    overlay_colormap: Colormap,
    opacity: u32,
    smooth: bool,
}

/// The viewer's session state (not persisted).
#[derive(Default)]
pub struct ViewerRuntime {
    /// The crosshair, in world mm.
    pub cursor_world: Option<[f64; 3]>,
    pub frame: usize,
    /// Window `(lo, hi)` per asset id.
    pub windows: HashMap<u64, (f32, f32)>,
    pub views: [PlaneView; 3],
    /// Voxel, world position and value under the pointer, for the status bar.
    pub hover_text: Option<String>,
    shown: Option<u64>,
}

fn plane_slot(plane: Plane) -> usize {
    match plane {
        Plane::Axial => 0,
        Plane::Coronal => 1,
        Plane::Sagittal => 2,
    }
}

/// The window "auto" picks: the configured percentiles of the first frame.
pub fn auto_window(volume: &Volume, pcts: (f64, f64)) -> (f32, f32) {
    let p = percentiles(volume.frame(0), &[pcts.0, pcts.1]);
    let (lo, hi) = (p[0] as f32, p[1] as f32);
    if lo.is_finite() && hi.is_finite() && hi > lo {
        (lo, hi)
    } else if lo.is_finite() {
        (lo, lo + 1.0)
    } else {
        (0.0, 1.0)
    }
}

impl ViewerRuntime {
    /// The window for `id`, computing the automatic one on first use.
    pub fn window(&mut self, id: u64, volume: &Volume, settings: &ViewerSettings) -> (f32, f32) {
        *self
            .windows
            .entry(id)
            .or_insert_with(|| auto_window(volume, settings.auto_percentiles))
    }

    /// The crosshair as a voxel of `volume` (rounded, clamped into the grid).
    pub fn cursor_voxel(&self, volume: &Volume) -> [usize; 3] {
        let dims = volume.dims();
        let w = self.cursor_world.unwrap_or_else(|| volume.center_world());
        let v = volume.voxel_from_world_point(w).unwrap_or([0.0; 3]);
        std::array::from_fn(|k| (v[k].round().max(0.0) as usize).min(dims[k] - 1))
    }

    /// Moves the crosshair to a voxel of `volume`.
    pub fn set_cursor_voxel(&mut self, volume: &Volume, ijk: [usize; 3]) {
        self.cursor_world = Some(volume.world_from_voxel_point(ijk.map(|x| x as f64)));
    }

    /// Scrolls `plane` by `steps` slices (clamped to the volume).
    pub fn scroll(&mut self, volume: &Volume, plane: Plane, steps: i64) {
        let mut ijk = self.cursor_voxel(volume);
        let axis = plane.normal_axis();
        let n = volume.dims()[axis] as i64;
        ijk[axis] = (ijk[axis] as i64 + steps).clamp(0, n - 1) as usize;
        self.set_cursor_voxel(volume, ijk);
    }

    /// Right-drag window/level: horizontal widens/narrows, vertical moves the level.
    pub fn drag_window(&mut self, id: u64, volume: &Volume, settings: &ViewerSettings, delta: egui::Vec2) {
        let (lo, hi) = self.window(id, volume, settings);
        let width = (hi - lo).max(f32::EPSILON);
        let center = 0.5 * (lo + hi) - delta.y * width * WL_SENSITIVITY;
        let width = width * (delta.x * WL_SENSITIVITY * 2.0).exp();
        self.windows.insert(id, (center - 0.5 * width, center + 0.5 * width));
    }

    /// Resets zoom, pan and (when the shown volume changes) the crosshair.
    fn follow(&mut self, id: u64, volume: &Volume) {
        if self.shown != Some(id) {
            self.shown = Some(id);
            self.frame = self.frame.min(volume.frames() - 1);
            let inside = self
                .cursor_world
                .and_then(|w| volume.voxel_from_world_point(w))
                .is_some_and(|v| {
                    v.iter()
                        .zip(volume.dims())
                        .all(|(&c, n)| c >= -0.5 && c <= n as f64 - 0.5)
                });
            if !inside {
                self.cursor_world = Some(volume.center_world());
            }
        }
    }
}

/// Renders one plane exactly as the viewer shows it (for PNG export and tests).
pub fn render_view(settings: &ViewerSettings, session: &Session, plane: Plane) -> Option<PlaneImage> {
    let (id, base) = session.active_volume()?;
    let rt = &session.viewer;
    let window = rt
        .windows
        .get(&id)
        .copied()
        .unwrap_or_else(|| auto_window(base, settings.auto_percentiles));
    let base_layer = Layer {
        volume: base,
        frame: rt.frame.min(base.frames() - 1),
        window,
        colormap: settings.colormap,
        opacity: 1.0,
    };
    let overlay = session
        .overlay_volume()
        .filter(|(oid, _)| *oid != id)
        .map(|(oid, ov)| Layer {
            volume: ov,
            frame: rt.frame.min(ov.frames() - 1),
            window: rt
                .windows
                .get(&oid)
                .copied()
                .unwrap_or_else(|| auto_window(ov, settings.auto_percentiles)),
            colormap: settings.overlay_colormap,
            opacity: settings.overlay_opacity,
        });
    let index = rt.cursor_voxel(base)[plane.normal_axis()];
    Some(render_plane(&base_layer, overlay.as_ref(), plane, index))
}

pub fn ui(ui: &mut egui::Ui, settings: &mut ViewerSettings, session: &mut Session, commands: &mut Vec<Command>) {
    let Some((id, _)) = session.active_volume() else {
        ui.heading("Viewer");
        match session.active() {
            Some(a) => ui.label(format!(
                "{} is a {}; the three-plane viewer shows volumes. See it in the Latent inspector tab.",
                a.name,
                a.asset.kind()
            )),
            None => ui.label("Open a NIfTI volume (File > Open, Ctrl+O, or drop it here) to view it in three planes."),
        };
        return;
    };
    // Take the runtime out so the volumes can stay borrowed from the session while it changes.
    let mut rt = std::mem::take(&mut session.viewer);
    let (_, base) = session.active_volume().expect("checked above");
    rt.follow(id, base);
    let overlay = session.overlay_volume().filter(|(oid, _)| *oid != id);
    if let Some((oid, ov)) = overlay {
        rt.window(oid, ov, settings);
    }
    toolbar(
        ui,
        settings,
        session,
        &mut rt,
        id,
        base,
        overlay.map(|(oid, _)| oid),
        commands,
    );
    ui.separator();

    let area = ui.available_rect_before_wrap();
    ui.allocate_rect(area, egui::Sense::hover());
    let gap = 4.0;
    let half = egui::vec2((area.width() - gap) / 2.0, (area.height() - gap) / 2.0);
    let cell = |col: f32, row: f32| {
        egui::Rect::from_min_size(area.min + egui::vec2(col * (half.x + gap), row * (half.y + gap)), half)
    };
    let cells = [
        (Plane::Axial, cell(0.0, 0.0)),
        (Plane::Sagittal, cell(1.0, 0.0)),
        (Plane::Coronal, cell(0.0, 1.0)),
    ];
    let mut hover = None;
    for (plane, rect) in cells {
        if let Some(h) = view_ui(ui, rect, plane, settings, &mut rt, id, base, overlay) {
            hover = Some(h);
        }
    }
    info_cell(ui, cell(1.0, 1.0), &mut rt, id, base, session);
    rt.hover_text = hover;
    session.viewer = rt;
}

#[expect(clippy::too_many_arguments, reason = "one toolbar reads the whole viewer context")]
fn toolbar(
    ui: &mut egui::Ui,
    settings: &mut ViewerSettings,
    session: &Session,
    rt: &mut ViewerRuntime,
    id: u64,
    base: &Volume,
    overlay_id: Option<u64>,
    commands: &mut Vec<Command>,
) {
    ui.horizontal_wrapped(|ui| {
        let name_of = |i: u64| session.get(i).map_or(String::new(), |a| a.name.clone());
        egui::ComboBox::from_label("Volume")
            .selected_text(name_of(id))
            .show_ui(ui, |ui| {
                for a in session.volumes() {
                    if ui.selectable_label(a.id == id, &a.name).clicked() {
                        commands.push(Command::SetActive(a.id));
                    }
                }
            });
        colormap_combo(ui, "Colormap", &mut settings.colormap);
        let (mut lo, mut hi) = rt.window(id, base, settings);
        let speed = ((hi - lo).abs() * 0.005).max(1e-6);
        ui.label("Window");
        let a = ui.add(egui::DragValue::new(&mut lo).speed(speed).prefix("lo "));
        let b = ui.add(egui::DragValue::new(&mut hi).speed(speed).prefix("hi "));
        if a.changed() || b.changed() {
            rt.windows.insert(id, (lo, hi.max(lo + f32::EPSILON)));
        }
        ui.menu_button("Presets", |ui| {
            let presets: [(&str, Option<(f64, f64)>); 4] = [
                ("Auto (1-99 %)", Some((1.0, 99.0))),
                ("Auto (0.5-99.5 %)", Some((0.5, 99.5))),
                ("Full range", Some((0.0, 100.0))),
                ("0 to 1", None),
            ];
            for (label, pcts) in presets {
                if ui.button(label).clicked() {
                    let w = pcts.map_or((0.0, 1.0), |p| auto_window(base, p));
                    rt.windows.insert(id, w);
                }
            }
        });
        if base.frames() > 1 {
            ui.add(egui::Slider::new(&mut rt.frame, 0..=base.frames() - 1).text("frame"));
        }
        ui.separator();
        let overlay_name = overlay_id.map_or("None".to_string(), name_of);
        egui::ComboBox::from_label("Overlay")
            .selected_text(overlay_name)
            .show_ui(ui, |ui| {
                if ui.selectable_label(overlay_id.is_none(), "None").clicked() {
                    commands.push(Command::SetOverlay(None));
                }
                for a in session.volumes().filter(|a| a.id != id) {
                    if ui.selectable_label(overlay_id == Some(a.id), &a.name).clicked() {
                        commands.push(Command::SetOverlay(Some(a.id)));
                    }
                }
            });
        if overlay_id.is_some() {
            ui.add(egui::Slider::new(&mut settings.overlay_opacity, 0.0..=1.0).text("opacity"));
            colormap_combo(ui, "Overlay map", &mut settings.overlay_colormap);
        }
        ui.separator();
        ui.checkbox(&mut settings.show_crosshair, "Crosshair");
        ui.checkbox(&mut settings.smooth, "Smooth");
        if ui.button("Reset views").clicked() {
            rt.views.iter_mut().for_each(|v| {
                v.zoom = 1.0;
                v.pan = egui::Vec2::ZERO;
            });
        }
        ui.menu_button("Save PNG", |ui| {
            for plane in Plane::ALL {
                if ui.button(plane.name()).clicked() {
                    commands.push(Command::SaveViewPng { plane, path: None });
                }
            }
        });
    });
}

fn colormap_combo(ui: &mut egui::Ui, label: &str, cmap: &mut Colormap) {
    egui::ComboBox::from_label(label)
        .selected_text(cmap.name())
        .show_ui(ui, |ui| {
            for c in Colormap::ALL {
                ui.selectable_value(cmap, c, c.name());
            }
        });
}

/// Draws one plane and handles its input; returns the hover readout when the pointer is over it.
#[expect(
    clippy::too_many_arguments,
    reason = "a view needs the volumes, settings and runtime together"
)]
fn view_ui(
    ui: &mut egui::Ui,
    rect: egui::Rect,
    plane: Plane,
    settings: &ViewerSettings,
    rt: &mut ViewerRuntime,
    id: u64,
    base: &Volume,
    overlay: Option<(u64, &Volume)>,
) -> Option<String> {
    let label = format!("{} view", capitalised(plane.name()));
    let response = ui
        .interact(
            rect,
            egui::Id::unique(("viewer", plane.name())),
            egui::Sense::click_and_drag(),
        )
        .on_hover_cursor(egui::CursorIcon::Crosshair);
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Canvas, true, &label));

    handle_view_input(ui, &response, plane, settings, rt, id, base);

    let dims = base.dims();
    let cursor = rt.cursor_voxel(base);
    let index = cursor[plane.normal_axis()];
    let key = RenderKey {
        base: id,
        overlay: overlay.map(|o| o.0),
        index,
        frame: rt.frame,
        window: bits(rt.window(id, base, settings)),
        colormap: settings.colormap,
        overlay_window: overlay.map_or((0, 0), |(oid, ov)| bits(rt.window(oid, ov, settings))),
        overlay_colormap: settings.overlay_colormap,
        opacity: settings.overlay_opacity.to_bits(),
        smooth: settings.smooth,
    };
    let slot = plane_slot(plane);
    let stale = rt.views[slot].texture.as_ref().is_none_or(|(k, _)| *k != key);
    if stale {
        let base_layer = Layer {
            volume: base,
            frame: rt.frame.min(base.frames() - 1),
            window: rt.window(id, base, settings),
            colormap: settings.colormap,
            opacity: 1.0,
        };
        let ov_layer = overlay.map(|(oid, ov)| Layer {
            volume: ov,
            frame: rt.frame.min(ov.frames() - 1),
            window: rt.window(oid, ov, settings),
            colormap: settings.overlay_colormap,
            opacity: settings.overlay_opacity,
        });
        let img = render_plane(&base_layer, ov_layer.as_ref(), plane, index);
        let pixels: Vec<u8> = img.pixels.iter().flatten().copied().collect();
        let color = egui::ColorImage::from_rgba_unmultiplied([img.width, img.height], &pixels);
        let options = if settings.smooth {
            egui::TextureOptions::LINEAR
        } else {
            egui::TextureOptions::NEAREST
        };
        match &mut rt.views[slot].texture {
            Some((k, tex)) => {
                tex.set(color, options);
                *k = key;
            }
            None => {
                let tex = ui
                    .ctx()
                    .load_texture(format!("viewer-{}", plane.name()), color, options);
                rt.views[slot].texture = Some((key, tex));
            }
        }
    }

    let (w, h) = plane.size(dims);
    let (pw, ph) = plane.pixel_mm(base.spacing_mm());
    let view = &rt.views[slot];
    let (mm_w, mm_h) = (w as f32 * pw.abs().max(1e-6), h as f32 * ph.abs().max(1e-6));
    let fit = (rect.width() / mm_w).min(rect.height() / mm_h) * view.zoom;
    let img_rect = egui::Rect::from_center_size(rect.center() + view.pan, egui::vec2(mm_w * fit, mm_h * fit));
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, egui::Color32::BLACK);
    if let Some((_, tex)) = &view.texture {
        let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
        painter.image(tex.id(), img_rect, uv, egui::Color32::WHITE);
    }
    if settings.show_crosshair {
        let (c, r) = plane.pixel_of_voxel(dims, cursor.map(|x| x as f64));
        let x = img_rect.min.x + (c as f32 + 0.5) / w as f32 * img_rect.width();
        let y = img_rect.min.y + (r as f32 + 0.5) / h as f32 * img_rect.height();
        let stroke = egui::Stroke::new(1.0, egui::Color32::from_rgba_unmultiplied(255, 200, 0, 160));
        painter.line_segment([egui::pos2(rect.left(), y), egui::pos2(rect.right(), y)], stroke);
        painter.line_segment([egui::pos2(x, rect.top()), egui::pos2(x, rect.bottom())], stroke);
    }
    let title = format!(
        "{}  {}/{}",
        capitalised(plane.name()),
        index,
        dims[plane.normal_axis()] - 1
    );
    painter.text(
        rect.left_top() + egui::vec2(6.0, 4.0),
        egui::Align2::LEFT_TOP,
        title,
        egui::FontId::proportional(13.0),
        egui::Color32::from_gray(220),
    );

    // Pointer → voxel, for clicks and the readout.
    let pointer = response.hover_pos().or_else(|| response.interact_pointer_pos())?;
    let col = ((pointer.x - img_rect.min.x) / img_rect.width() * w as f32).floor();
    let row = ((pointer.y - img_rect.min.y) / img_rect.height() * h as f32).floor();
    if col < 0.0 || row < 0.0 || col >= w as f32 || row >= h as f32 {
        return response.hovered().then(|| "outside the volume".to_string());
    }
    let ijk = plane.voxel_of_pixel(dims, index, col as usize, row as usize);
    let shift = ui.input(|i| i.modifiers.shift);
    if (response.clicked() || response.dragged_by(egui::PointerButton::Primary)) && !shift {
        rt.set_cursor_voxel(base, ijk);
    }
    if !response.hovered() {
        return None;
    }
    Some(readout(base, rt.frame, ijk, overlay.map(|o| o.1)))
}

fn handle_view_input(
    ui: &egui::Ui,
    response: &egui::Response,
    plane: Plane,
    settings: &ViewerSettings,
    rt: &mut ViewerRuntime,
    id: u64,
    base: &Volume,
) {
    let slot = plane_slot(plane);
    if response.dragged_by(egui::PointerButton::Secondary) {
        rt.drag_window(id, base, settings, response.drag_delta());
    }
    let shift = ui.input(|i| i.modifiers.shift);
    if response.dragged_by(egui::PointerButton::Middle) || (shift && response.dragged_by(egui::PointerButton::Primary))
    {
        rt.views[slot].pan += response.drag_delta();
    }
    if response.double_clicked() {
        rt.views[slot] = PlaneView {
            texture: rt.views[slot].texture.take(),
            ..Default::default()
        };
    }
    if !response.hovered() {
        return;
    }
    let (steps, zoom, reset) = ui.input_mut(|i| {
        let mut steps = 0i64;
        let mut zoom = 1.0f32;
        for e in &i.events {
            if let egui::Event::MouseWheel { delta, modifiers, .. } = e {
                let dir = if delta.y > 0.0 {
                    1
                } else if delta.y < 0.0 {
                    -1
                } else {
                    0
                };
                if modifiers.command || modifiers.ctrl {
                    zoom *= 1.15f32.powi(dir);
                } else {
                    steps += i64::from(dir);
                }
            }
        }
        for (key, n) in [
            (egui::Key::ArrowUp, 1),
            (egui::Key::ArrowDown, -1),
            (egui::Key::PageUp, 10),
            (egui::Key::PageDown, -10),
        ] {
            if i.consume_key(egui::Modifiers::NONE, key) {
                steps += n;
            }
        }
        let reset = i.consume_key(egui::Modifiers::NONE, egui::Key::R);
        (steps, zoom, reset)
    });
    if steps != 0 {
        rt.scroll(base, plane, steps);
    }
    let view = &mut rt.views[slot];
    if zoom != 1.0 {
        view.zoom = (view.zoom * zoom).clamp(MIN_ZOOM, MAX_ZOOM);
    }
    if reset {
        view.zoom = 1.0;
        view.pan = egui::Vec2::ZERO;
    }
}

/// The text under the pointer: voxel, world position and values.
fn readout(base: &Volume, frame: usize, ijk: [usize; 3], overlay: Option<&Volume>) -> String {
    let world = base.world_from_voxel_point(ijk.map(|x| x as f64));
    let value = base.get(ijk[0], ijk[1], ijk[2], frame.min(base.frames() - 1));
    let mut s = format!(
        "voxel ({}, {}, {})  world ({:.1}, {:.1}, {:.1}) mm  value {}",
        ijk[0],
        ijk[1],
        ijk[2],
        world[0],
        world[1],
        world[2],
        value.map_or("-".into(), fmt_value)
    );
    if let Some(ov) = overlay
        && let Some(v) = ov.voxel_from_world_point(world)
    {
        let r = v.map(f64::round);
        let inside = r.iter().zip(ov.dims()).all(|(&c, n)| c >= 0.0 && c < n as f64);
        if inside {
            let value = ov.get(r[0] as usize, r[1] as usize, r[2] as usize, frame.min(ov.frames() - 1));
            s.push_str(&format!("  overlay {}", value.map_or("-".into(), fmt_value)));
        }
    }
    s
}

fn info_cell(ui: &mut egui::Ui, rect: egui::Rect, rt: &mut ViewerRuntime, id: u64, base: &Volume, session: &Session) {
    let mut child = ui.new_child(egui::UiBuilder::new().max_rect(rect.shrink(8.0)));
    let name = session.get(id).map_or("", |a| a.name.as_str());
    child.strong(name);
    child.label(super::describe_volume(base));
    let ijk = rt.cursor_voxel(base);
    child.label(format!(
        "Crosshair: {}",
        readout(base, rt.frame, ijk, session.overlay_volume().map(|o| o.1))
    ));
    let (lo, hi) = rt.windows.get(&id).copied().unwrap_or((0.0, 1.0));
    child.label(format!("Window: {} to {}", fmt_value(lo), fmt_value(hi)));
    child.add_space(6.0);
    child.weak(
        "Left: crosshair   Right drag: window/level   Wheel: slice   Ctrl+wheel: zoom\n\
         Middle or Shift+left drag: pan   Double-click or R: reset view   Up/Down, PgUp/PgDn: slice",
    );
}

fn fmt_value(v: f32) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.fract() == 0.0 && v.abs() < 1e7 {
        format!("{v:.0}")
    } else if v.abs() >= 1e-3 && v.abs() < 1e5 {
        format!("{v:.4}")
    } else {
        format!("{v:.4e}")
    }
}

fn bits((a, b): (f32, f32)) -> (u32, u32) {
    (a.to_bits(), b.to_bits())
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}
