//! The Views (WildFusion) tab: a thin client of `methods::wildfusion` (a reimplementation from
//! the paper; no official code or weights exist). Two analytic triplanes (sphere, box, cylinder,
//! torus) are blended at `t` and drawn from a view-space camera within [`VIEW_RANGE`]; RGB and
//! colormapped depth show side by side, and dragging either image turns the camera (clamped).
//!
//! Rendering runs in a background job. When the settings change while one runs, the newest
//! request waits and starts once it ends (requests in between are dropped); while the pointer
//! drags, views render at a quarter of the resolution, and at full resolution once released.

use crate::app::{AppState, Session};
use crate::core::colormap::Colormap;
use crate::core::jobs::{JobError, JobHandle, Waker};
use crate::methods::wildfusion::{
    self, AnalyticObject, P0, RenderOptions, RenderedView, VIEW_RANGE, ViewCamera, WildFusionError, analytic,
};
use serde::{Deserialize, Serialize};

/// Shown at the top of the tab (tests look for it).
pub const BANNER: &str = "WildFusion reimplementation from the paper (no official code or weights exist); the demo draws analytic triplanes: no trained autoencoder ships.";

const SIDE_WIDTH: f32 = 270.0;
/// Degrees of yaw or pitch per dragged point.
const DEGREES_PER_POINT: f32 = 0.25;
/// The range of the resolution slider (image side in pixels).
pub const RESOLUTION_RANGE: std::ops::RangeInclusive<usize> = 64..=256;
const DEPTH_COLORMAP: Colormap = Colormap::Viridis;

/// What the tab remembers across restarts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct WildFusionSettings {
    pub object_a: AnalyticObject,
    pub object_b: AnalyticObject,
    /// Blend between A (0) and B (1).
    pub t: f32,
    pub yaw_deg: f32,
    pub pitch_deg: f32,
    pub radius: f32,
    /// Image side in pixels (square).
    pub resolution: usize,
    /// Coarse samples per ray (importance samples are half as many).
    pub samples_per_ray: usize,
}

impl Default for WildFusionSettings {
    fn default() -> Self {
        Self {
            object_a: AnalyticObject::Sphere,
            object_b: AnalyticObject::Torus,
            t: 0.0,
            yaw_deg: P0.yaw_deg,
            pitch_deg: P0.pitch_deg,
            radius: P0.radius,
            resolution: 128,
            samples_per_ray: 48,
        }
    }
}

impl WildFusionSettings {
    /// The camera, clamped into view space.
    pub fn camera(&self) -> ViewCamera {
        ViewCamera {
            yaw_deg: self.yaw_deg,
            pitch_deg: self.pitch_deg,
            radius: self.radius,
            ..P0
        }
        .clamped(&VIEW_RANGE)
    }

    fn set_camera(&mut self, camera: ViewCamera) {
        let c = camera.clamped(&VIEW_RANGE);
        (self.yaw_deg, self.pitch_deg, self.radius) = (c.yaw_deg, c.pitch_deg, c.radius);
    }

    /// The render these settings ask for; a quarter of the resolution while dragging.
    pub fn request(&self, dragging: bool) -> RenderRequest {
        let full = self.resolution.clamp(16, 1024);
        RenderRequest {
            object_a: self.object_a,
            object_b: self.object_b,
            t: self.t.clamp(0.0, 1.0),
            camera: self.camera(),
            size: if dragging { (full / 4).max(16) } else { full },
            samples_per_ray: self.samples_per_ray.clamp(2, 512),
        }
    }
}

/// One render job's input.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderRequest {
    pub object_a: AnalyticObject,
    pub object_b: AnalyticObject,
    pub t: f32,
    pub camera: ViewCamera,
    pub size: usize,
    pub samples_per_ray: usize,
}

fn fail(e: WildFusionError) -> JobError {
    match e {
        WildFusionError::Cancelled => JobError::Cancelled,
        e => JobError::Failed(e.to_string()),
    }
}

/// Builds the blended analytic latent and renders it (the job body; also usable synchronously).
pub fn render(request: &RenderRequest, progress: &mut dyn FnMut(f32) -> bool) -> Result<RenderedView, WildFusionError> {
    let a = analytic::triplane(request.object_a, analytic::RESOLUTION)?;
    let latent = if request.t <= 0.0 || request.object_a == request.object_b {
        a
    } else {
        let b = analytic::triplane(request.object_b, analytic::RESOLUTION)?;
        wildfusion::interpolate(&a, &b, request.t)?
    };
    let decoder = analytic::decoder()?;
    let opts = RenderOptions {
        width: request.size,
        height: request.size,
        samples_per_ray: request.samples_per_ray,
        importance_samples: request.samples_per_ray / 2,
        deterministic: true,
        ..RenderOptions::default()
    };
    wildfusion::render_view(&latent, &decoder, &request.camera, &opts, progress)
}

/// The last finished render and its textures.
struct Shown {
    request: RenderRequest,
    view: RenderedView,
    rgb: egui::TextureHandle,
    depth: egui::TextureHandle,
    /// Near and far depth of the opaque pixels.
    window: Option<(f32, f32)>,
}

/// The tab's working state (not persisted).
#[derive(Default)]
pub struct WildFusionRuntime {
    job: Option<(RenderRequest, JobHandle<RenderedView>)>,
    /// The newest request not started yet: it starts when the running job ends.
    pending: Option<RenderRequest>,
    /// The last request queued (settings are compared with it each frame).
    latest: Option<RenderRequest>,
    shown: Option<Shown>,
    error: Option<String>,
    /// Whether the pointer drags one of the images.
    dragging: bool,
    /// Finished renders so far.
    renders: usize,
}

impl WildFusionRuntime {
    /// Whether a render runs or waits.
    pub fn busy(&self) -> bool {
        self.job.is_some() || self.pending.is_some()
    }

    /// The size (width, height) of the last finished render.
    pub fn rendered(&self) -> Option<(usize, usize)> {
        self.shown.as_ref().map(|s| (s.view.width, s.view.height))
    }

    /// The last finished render.
    pub fn rendered_view(&self) -> Option<&RenderedView> {
        self.shown.as_ref().map(|s| &s.view)
    }

    /// What the last finished render was asked to draw.
    pub fn rendered_request(&self) -> Option<&RenderRequest> {
        self.shown.as_ref().map(|s| &s.request)
    }

    /// How many renders have finished.
    pub fn renders(&self) -> usize {
        self.renders
    }

    /// The last render's error, if it failed.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    fn start(&mut self, request: RenderRequest, waker: Option<Waker>) {
        let job_request = request.clone();
        let job = crate::core::jobs::spawn("wildfusion-render", waker, move |ctx| {
            let size = job_request.size;
            render(&job_request, &mut |f| {
                ctx.set(f, format!("{size}×{size}"));
                ctx.check().is_ok()
            })
            .map_err(fail)
        });
        self.job = Some((request, job));
    }

    /// Takes a finished job's result and starts the waiting request, if any.
    fn poll(&mut self, ctx: &egui::Context, waker: Option<Waker>) {
        let finished = self.job.as_ref().and_then(|(_, job)| job.poll());
        if let Some(result) = finished {
            let (request, _) = self.job.take().expect("a job was running");
            match result {
                Ok(view) => {
                    self.error = None;
                    self.renders += 1;
                    self.show(ctx, request, view);
                }
                Err(JobError::Cancelled) => {}
                Err(e) => self.error = Some(e.to_string()),
            }
        }
        if self.job.is_none()
            && let Some(request) = self.pending.take()
        {
            self.start(request, waker);
        }
    }

    fn show(&mut self, ctx: &egui::Context, request: RenderRequest, view: RenderedView) {
        let size = [view.width, view.height];
        let flat = |pixels: Vec<[u8; 4]>| pixels.into_iter().flatten().collect::<Vec<u8>>();
        let rgb = egui::ColorImage::from_rgba_unmultiplied(size, &flat(view.rgba8()));
        let (depth_pixels, window) = view.depth_rgba8(DEPTH_COLORMAP);
        let depth = egui::ColorImage::from_rgba_unmultiplied(size, &flat(depth_pixels));
        let options = egui::TextureOptions::LINEAR;
        match &mut self.shown {
            Some(shown) => {
                shown.rgb.set(rgb, options);
                shown.depth.set(depth, options);
                shown.request = request;
                shown.view = view;
                shown.window = window;
            }
            None => {
                self.shown = Some(Shown {
                    request,
                    view,
                    rgb: ctx.load_texture("wildfusion-rgb", rgb, options),
                    depth: ctx.load_texture("wildfusion-depth", depth, options),
                    window,
                });
            }
        }
    }

    /// Queues `request` unless it is the last one queued; starts it now when nothing runs.
    fn want(&mut self, request: RenderRequest, waker: Option<Waker>) {
        if self.latest.as_ref() != Some(&request) {
            self.latest = Some(request.clone());
            self.pending = Some(request);
        }
        if self.job.is_none()
            && let Some(request) = self.pending.take()
        {
            self.start(request, waker);
        }
    }
}

pub fn ui(ui: &mut egui::Ui, state: &mut AppState, session: &mut Session) {
    let settings = &mut state.wildfusion;
    let waker = session.waker.clone();
    let rt = &mut session.wildfusion;
    rt.poll(ui.ctx(), waker.clone());

    egui::Panel::top("wildfusion-banner").show(ui, |ui| {
        ui.label(egui::RichText::new(BANNER).strong());
    });
    egui::Panel::left("wildfusion-side")
        .resizable(true)
        .default_size(SIDE_WIDTH)
        .show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| side_panel(ui, settings, rt));
        });
    central(ui, settings, rt);

    let request = settings.request(rt.dragging);
    rt.want(request, waker);
    if rt.busy() {
        ui.ctx().request_repaint_after(std::time::Duration::from_millis(50));
    }
}

fn object_combo(ui: &mut egui::Ui, label: &str, object: &mut AnalyticObject) {
    egui::ComboBox::from_label(label)
        .selected_text(object.name())
        .show_ui(ui, |ui| {
            for o in AnalyticObject::ALL {
                ui.selectable_value(object, o, o.name());
            }
        });
}

fn side_panel(ui: &mut egui::Ui, settings: &mut WildFusionSettings, rt: &WildFusionRuntime) {
    ui.heading("Latents");
    object_combo(ui, "Object A", &mut settings.object_a);
    object_combo(ui, "Object B", &mut settings.object_b);
    ui.add(egui::Slider::new(&mut settings.t, 0.0..=1.0).text("t (A to B)"));

    ui.separator();
    ui.heading("View");
    let r = VIEW_RANGE;
    ui.add(egui::Slider::new(&mut settings.yaw_deg, -r.yaw_deg..=r.yaw_deg).text("yaw °"));
    ui.add(egui::Slider::new(&mut settings.pitch_deg, -r.pitch_deg..=r.pitch_deg).text("pitch °"));
    ui.add(egui::Slider::new(&mut settings.radius, r.radius_min..=r.radius_max).text("radius"));
    ui.weak(format!(
        "View space: yaw ±{}°, pitch ±{}°, radius {}–{}. Drag an image to turn.",
        r.yaw_deg, r.pitch_deg, r.radius_min, r.radius_max
    ));
    if ui.button("Reset view (P0)").clicked() {
        settings.set_camera(P0);
    }

    ui.separator();
    ui.heading("Render");
    ui.add(egui::Slider::new(&mut settings.resolution, RESOLUTION_RANGE).text("resolution px"));
    ui.add(egui::Slider::new(&mut settings.samples_per_ray, 8..=128).text("samples per ray"));
    ui.weak("Importance samples: half the samples per ray. Quarter resolution while dragging.");

    ui.separator();
    if let Some((request, job)) = &rt.job {
        let p = job.progress();
        ui.add(
            egui::ProgressBar::new(p.fraction())
                .text(format!("rendering {}×{}", request.size, request.size))
                .show_percentage(),
        );
    }
    if let Some(e) = rt.error() {
        ui.colored_label(ui.visuals().error_fg_color, format!("Render failed: {e}"));
    }
    if let Some(shown) = &rt.shown {
        let q = &shown.request;
        let what = if q.t <= 0.0 || q.object_a == q.object_b {
            q.object_a.name().to_string()
        } else {
            format!("{} to {} at t = {:.2}", q.object_a.name(), q.object_b.name(), q.t)
        };
        ui.label(format!(
            "Shown: {what}, yaw {:.1}°, pitch {:.1}°, radius {:.2}, {}×{}",
            q.camera.yaw_deg, q.camera.pitch_deg, q.camera.radius, q.size, q.size
        ));
        if let Some((near, far)) = shown.window {
            ui.weak(format!(
                "Depth {near:.2}–{far:.2} (near = dark, {})",
                DEPTH_COLORMAP.name()
            ));
        }
    }
}

fn central(ui: &mut egui::Ui, settings: &mut WildFusionSettings, rt: &mut WildFusionRuntime) {
    let avail = ui.available_size();
    let spacing = ui.spacing().item_spacing.x;
    let side = ((avail.x - spacing) / 2.0).min(avail.y - 30.0).max(32.0);
    let size = egui::vec2(side, side);
    let mut dragging = false;
    let mut delta = egui::Vec2::ZERO;
    ui.horizontal_top(|ui| {
        let textures = rt.shown.as_ref().map(|s| (s.rgb.id(), s.depth.id()));
        for (k, title) in ["RGB", "Depth"].into_iter().enumerate() {
            ui.vertical(|ui| {
                ui.label(title);
                match textures {
                    Some((rgb, depth)) => {
                        let id = if k == 0 { rgb } else { depth };
                        let response = ui
                            .add(egui::Image::new(egui::load::SizedTexture::new(id, size)).sense(egui::Sense::drag()));
                        if response.dragged() {
                            dragging = true;
                            delta += response.drag_delta();
                        }
                    }
                    None => {
                        ui.allocate_ui(size, |ui| {
                            ui.spinner();
                        });
                    }
                }
            });
        }
    });
    if delta != egui::Vec2::ZERO {
        let camera = ViewCamera {
            yaw_deg: settings.yaw_deg - delta.x * DEGREES_PER_POINT,
            pitch_deg: settings.pitch_deg + delta.y * DEGREES_PER_POINT,
            ..settings.camera()
        };
        settings.set_camera(camera);
    }
    rt.dragging = dragging;
}
