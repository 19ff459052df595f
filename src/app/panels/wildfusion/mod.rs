//! The Views (WildFusion) tab: a thin client of `methods::wildfusion` (a reimplementation from
//! the paper; no official code or weights exist). Two objects (sphere, box, cylinder, torus) are
//! blended at `t` and drawn from a view-space camera within [`VIEW_RANGE`]; RGB and colormapped
//! depth show side by side, and dragging either image turns the camera (clamped). The latents are
//! either the objects' analytic triplanes (blended as triplanes) or, with a WildFusion-family
//! autoencoder, the objects' input views encoded to the paper's 2D latent Z (blended in Z and
//! decoded to a triplane, as the paper interpolates). The loaded model, each object's Z and the
//! last decoded triplane are cached, so turning the camera only renders.
//!
//! Rendering runs in a background job. When the settings change while one runs, the newest
//! request waits and starts once it ends (requests in between are dropped); while the pointer
//! drags, views render at a quarter of the resolution, and at full resolution once released.

use crate::app::{AppState, Session};
use crate::core::colormap::Colormap;
use crate::core::jobs::{JobError, JobHandle, Waker};
use crate::core::manifest::Entry;
use crate::methods::wildfusion::{
    self, AnalyticObject, Autoencoder, OsgDecoder, P0, RenderOptions, RenderedView, Triplane, VIEW_RANGE, ViewCamera,
    WildFusionError, analytic, encode,
};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// Shown at the top of the tab (tests look for it).
pub const BANNER: &str = "WildFusion reimplementation from the paper (no official code or weights exist). Latents: analytic triplanes, or images encoded by a WildFusion-family autoencoder (none ships: the toy that `train wildfusion-demo` makes learns only the mean object).";

const SIDE_WIDTH: f32 = 270.0;
/// Degrees of yaw or pitch per dragged point.
const DEGREES_PER_POINT: f32 = 0.25;
/// The range of the resolution slider (image side in pixels).
pub const RESOLUTION_RANGE: std::ops::RangeInclusive<usize> = 64..=256;
const DEPTH_COLORMAP: Colormap = Colormap::Viridis;
/// Side of the encoder-input thumbnails in points.
const INPUT_THUMB: f32 = 96.0;

/// Where the latents come from.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum LatentSource {
    /// The objects' exact analytic triplanes, blended as triplanes.
    #[default]
    Analytic,
    /// The objects drawn from the input view and encoded by an autoencoder: Z blended, decoded.
    Encoded,
}

/// What the tab remembers across restarts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct WildFusionSettings {
    pub source: LatentSource,
    /// The autoencoder's model name (the first WildFusion-family model when unset or gone).
    pub model: Option<String>,
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
            source: LatentSource::Analytic,
            model: None,
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

    /// The render these settings ask for; a quarter of the resolution while dragging. `encoder` is
    /// the chosen model when the source is [`LatentSource::Encoded`] (none: analytic latents).
    pub fn request(&self, dragging: bool, encoder: Option<&Entry>) -> RenderRequest {
        let full = self.resolution.clamp(16, 1024);
        let encoder = match self.source {
            LatentSource::Encoded => encoder.cloned().map(EncoderModel),
            LatentSource::Analytic => None,
        };
        RenderRequest {
            encoder,
            object_a: self.object_a,
            object_b: self.object_b,
            t: self.t.clamp(0.0, 1.0),
            camera: self.camera(),
            size: if dragging { (full / 4).max(16) } else { full },
            samples_per_ray: self.samples_per_ray.clamp(2, 512),
        }
    }
}

/// The autoencoder a render encodes with (compared by folder and checksum).
#[derive(Clone, Debug)]
pub struct EncoderModel(pub Entry);

impl PartialEq for EncoderModel {
    fn eq(&self, other: &Self) -> bool {
        self.0.dir == other.0.dir && self.0.manifest.sha256 == other.0.manifest.sha256
    }
}

/// One render job's input.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderRequest {
    /// Encode the objects with this model; analytic triplanes when `None`.
    pub encoder: Option<EncoderModel>,
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

/// What a render job hands back: the view, and the images the encoder saw (none for analytic
/// latents).
#[derive(Clone, Debug)]
pub struct Rendered {
    pub view: RenderedView,
    pub inputs: Vec<EncoderInput>,
}

/// One object's input view as the autoencoder saw it.
#[derive(Clone, Debug)]
pub struct EncoderInput {
    pub object: AnalyticObject,
    pub size: usize,
    /// `(H, W, 3)` in `[0, 1]`.
    pub rgb: Vec<f32>,
}

/// What encoding keeps between renders: the model, each object's Z and input view, and the last
/// decoded triplane. Shared with the job threads.
#[derive(Default)]
pub struct EncodedCache {
    model: Option<(EncoderModel, Arc<Autoencoder>)>,
    latents: Vec<(AnalyticObject, Tensor, EncoderInput)>,
    /// (a, b, t) and its triplane.
    decoded: Option<((AnalyticObject, AnalyticObject, u32), Triplane)>,
    /// Images encoded and triplanes decoded since the model was loaded.
    work: EncoderWork,
}

/// How much encoding work the cache has done (tests check that turning the camera does none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncoderWork {
    pub models_loaded: usize,
    pub images_encoded: usize,
    pub triplanes_decoded: usize,
}

impl EncodedCache {
    fn model(&mut self, choice: &EncoderModel) -> Result<Arc<Autoencoder>, WildFusionError> {
        if let Some((held, model)) = &self.model
            && held == choice
        {
            return Ok(model.clone());
        }
        let model = Arc::new(encode::load_model(&choice.0)?);
        let work = EncoderWork {
            models_loaded: self.work.models_loaded + 1,
            ..EncoderWork::default()
        };
        *self = Self {
            model: Some((choice.clone(), model.clone())),
            work,
            ..Self::default()
        };
        Ok(model)
    }

    fn latent(
        &mut self,
        model: &Autoencoder,
        object: AnalyticObject,
    ) -> Result<(Tensor, EncoderInput), WildFusionError> {
        if let Some((_, z, input)) = self.latents.iter().find(|(o, _, _)| *o == object) {
            return Ok((z.clone(), input.clone()));
        }
        let size = model.config().image_size;
        let rgb = encode::object_image(object, size)?;
        let z = encode::encode_image(model, &rgb)?;
        self.work.images_encoded += 1;
        let input = EncoderInput { object, size, rgb };
        self.latents.push((object, z.clone(), input.clone()));
        Ok((z, input))
    }
}

/// The request's latent triplane and the decoder that reads it, with the encoder's inputs.
fn latent(
    request: &RenderRequest,
    cache: &Mutex<EncodedCache>,
) -> Result<(Triplane, OsgDecoder, Vec<EncoderInput>), WildFusionError> {
    let single = request.t <= 0.0 || request.object_a == request.object_b;
    let Some(choice) = &request.encoder else {
        let a = analytic::triplane(request.object_a, analytic::RESOLUTION)?;
        let latent = if single {
            a
        } else {
            let b = analytic::triplane(request.object_b, analytic::RESOLUTION)?;
            wildfusion::interpolate(&a, &b, request.t)?
        };
        return Ok((latent, analytic::decoder()?, Vec::new()));
    };
    // A poisoned lock only means an earlier job panicked mid-update: start the cache afresh.
    let mut cache = cache.lock().unwrap_or_else(|p| {
        let mut guard = p.into_inner();
        *guard = EncodedCache::default();
        guard
    });
    let model = cache.model(choice)?;
    let (za, input_a) = cache.latent(&model, request.object_a)?;
    let mut inputs = vec![input_a];
    let t = if single { 0.0 } else { request.t.clamp(0.0, 1.0) };
    let zb = if single {
        za.clone()
    } else {
        let (zb, input_b) = cache.latent(&model, request.object_b)?;
        inputs.push(input_b);
        zb
    };
    let key = (request.object_a, request.object_b, t.to_bits());
    let triplane = match &cache.decoded {
        Some((k, tp)) if *k == key => tp.clone(),
        _ => {
            let tp = encode::decode_blend(&model, &za, &zb, t)?;
            cache.work.triplanes_decoded += 1;
            cache.decoded = Some((key, tp.clone()));
            tp
        }
    };
    Ok((triplane, model.osg().clone(), inputs))
}

/// Builds the request's latent and renders it (the job body; also usable synchronously).
pub fn render(
    request: &RenderRequest,
    cache: &Mutex<EncodedCache>,
    progress: &mut dyn FnMut(f32) -> bool,
) -> Result<Rendered, WildFusionError> {
    let (latent, decoder, inputs) = latent(request, cache)?;
    let opts = RenderOptions {
        width: request.size,
        height: request.size,
        samples_per_ray: request.samples_per_ray,
        importance_samples: request.samples_per_ray / 2,
        deterministic: true,
        ..RenderOptions::default()
    };
    let view = wildfusion::render_view(&latent, &decoder, &request.camera, &opts, progress)?;
    Ok(Rendered { view, inputs })
}

/// The last finished render and its textures.
struct Shown {
    request: RenderRequest,
    view: RenderedView,
    rgb: egui::TextureHandle,
    depth: egui::TextureHandle,
    /// Near and far depth of the opaque pixels.
    window: Option<(f32, f32)>,
    /// The encoder's input views (empty for analytic latents).
    inputs: Vec<(AnalyticObject, egui::TextureHandle)>,
}

/// The tab's working state (not persisted).
#[derive(Default)]
pub struct WildFusionRuntime {
    job: Option<(RenderRequest, JobHandle<Rendered>)>,
    cache: Arc<Mutex<EncodedCache>>,
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
        let cache = self.cache.clone();
        let job = crate::core::jobs::spawn("wildfusion-render", waker, move |ctx| {
            let size = job_request.size;
            if job_request.encoder.is_some() {
                ctx.set(0.0, "encoding");
            }
            render(&job_request, &cache, &mut |f| {
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
                Ok(rendered) => {
                    self.error = None;
                    self.renders += 1;
                    self.show(ctx, request, rendered);
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

    /// The encoding work done so far (zero while a job holds the cache: this never waits).
    pub fn encoder_work(&self) -> EncoderWork {
        self.cache.try_lock().map(|c| c.work).unwrap_or_default()
    }

    /// The encoder's input views of the last finished render (empty for analytic latents).
    pub fn encoder_inputs(&self) -> Vec<AnalyticObject> {
        self.shown
            .as_ref()
            .map(|s| s.inputs.iter().map(|(o, _)| *o).collect())
            .unwrap_or_default()
    }

    fn show(&mut self, ctx: &egui::Context, request: RenderRequest, rendered: Rendered) {
        let Rendered { view, inputs } = rendered;
        let size = [view.width, view.height];
        let flat = |pixels: Vec<[u8; 4]>| pixels.into_iter().flatten().collect::<Vec<u8>>();
        let inputs: Vec<_> = inputs
            .iter()
            .enumerate()
            .map(|(k, input)| {
                let pixels: Vec<u8> = input
                    .rgb
                    .chunks_exact(3)
                    .flat_map(|p| {
                        let c = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                        [c(p[0]), c(p[1]), c(p[2]), 255]
                    })
                    .collect();
                let image = egui::ColorImage::from_rgba_unmultiplied([input.size, input.size], &pixels);
                let name = format!("wildfusion-input-{k}");
                (
                    input.object,
                    ctx.load_texture(name, image, egui::TextureOptions::NEAREST),
                )
            })
            .collect();
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
                shown.inputs = inputs;
            }
            None => {
                self.shown = Some(Shown {
                    request,
                    view,
                    rgb: ctx.load_texture("wildfusion-rgb", rgb, options),
                    depth: ctx.load_texture("wildfusion-depth", depth, options),
                    window,
                    inputs,
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
    let models = wildfusion_models(&session.models);
    egui::Panel::left("wildfusion-side")
        .resizable(true)
        .default_size(SIDE_WIDTH)
        .show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| side_panel(ui, settings, rt, &models));
        });
    central(ui, settings, rt);

    let request = settings.request(rt.dragging, chosen_model(settings, &models));
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

/// The registered WildFusion-family models.
fn wildfusion_models(models: &[Entry]) -> Vec<&Entry> {
    models.iter().filter(|m| m.manifest.family == encode::FAMILY).collect()
}

/// The model the settings name among `family`, or the first when they name none that exists.
fn chosen_model<'a>(settings: &WildFusionSettings, family: &[&'a Entry]) -> Option<&'a Entry> {
    settings
        .model
        .as_ref()
        .and_then(|n| family.iter().find(|m| &m.manifest.name == n))
        .or(family.first())
        .copied()
}

fn source_section(ui: &mut egui::Ui, settings: &mut WildFusionSettings, models: &[&Entry]) {
    ui.horizontal(|ui| {
        ui.radio_value(&mut settings.source, LatentSource::Analytic, "Analytic")
            .on_hover_text("The objects' exact analytic triplanes, blended as triplanes");
        ui.radio_value(&mut settings.source, LatentSource::Encoded, "Encoded")
            .on_hover_text("Each object drawn from the input view, encoded to Z; Z blended and decoded");
    });
    if settings.source != LatentSource::Encoded {
        return;
    }
    if models.is_empty() {
        ui.weak(
            "No WildFusion-family model found (showing analytic latents): `latent-workbench train wildfusion-demo` \
             makes a toy one.",
        );
        return;
    }
    let Some(chosen) = chosen_model(settings, models) else {
        return;
    };
    let current = chosen.manifest.name.clone();
    egui::ComboBox::new("wildfusion-model", "model")
        .selected_text(&current)
        .show_ui(ui, |ui| {
            for m in models {
                let name = &m.manifest.name;
                if ui
                    .selectable_label(*name == current, name)
                    .on_hover_text(&m.manifest.description)
                    .clicked()
                {
                    settings.model = Some(name.clone());
                }
            }
        })
        .response
        .on_hover_text(format!("{}\n\n{}", chosen.manifest.description, chosen.dir.display()));
}

fn side_panel(ui: &mut egui::Ui, settings: &mut WildFusionSettings, rt: &WildFusionRuntime, models: &[&Entry]) {
    ui.heading("Latents");
    source_section(ui, settings, models);
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
        if let Some(model) = &q.encoder {
            ui.label(format!(
                "Encoded by {}; what it saw (input view P0):",
                model.0.manifest.name
            ));
            ui.horizontal(|ui| {
                for (object, texture) in &shown.inputs {
                    ui.vertical(|ui| {
                        ui.add(egui::Image::new(egui::load::SizedTexture::new(
                            texture.id(),
                            egui::vec2(INPUT_THUMB, INPUT_THUMB),
                        )));
                        ui.weak(object.name());
                    });
                }
            });
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
