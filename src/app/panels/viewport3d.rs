//! The 3D viewport widget: the library's [`SceneRenderer`] drawn inside egui through a wgpu
//! paint callback. `prepare` renders the scene into the renderer's own multisampled target
//! (its own depth buffer, whatever egui's pass has), `paint` copies that image into the
//! callback's rectangle. Orbit with the left button, pan with the right (or Shift + left),
//! zoom with the wheel; double-click or R frames the scene again, 1–7 pick the view presets.

use crate::render::{OrbitCamera, RenderSettings, Scene, SceneRenderer, ViewPreset};
use eframe::egui_wgpu::{self, wgpu};
use std::collections::HashMap;
use std::sync::Arc;

/// What one viewport remembers between frames (the app state persists it).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ViewportState {
    pub camera: OrbitCamera,
    pub settings: RenderSettings,
    /// The scene bounds the camera was last framed to; a new scene re-frames.
    #[serde(skip)]
    framed_for: Option<([f32; 3], [f32; 3])>,
    /// The box to frame instead of the scene's own: an animation's whole extent, so that playing
    /// (whose every frame has other bounds) does not re-frame the camera each frame.
    #[serde(skip)]
    pub fixed_bounds: Option<([f32; 3], [f32; 3])>,
}

impl ViewportState {
    /// The box the camera frames: `fixed_bounds`, else the scene's.
    fn framing_bounds(&self, scene: &Scene) -> Option<([f32; 3], [f32; 3])> {
        self.fixed_bounds.or_else(|| scene.bounds(self.settings.arrangement))
    }

    /// Frames `scene` again from the current direction.
    pub fn reset(&mut self, scene: &Scene) {
        if let Some((lo, hi)) = self.framing_bounds(scene) {
            self.camera.fit(lo, hi);
            self.framed_for = Some((lo, hi));
        }
    }

    pub fn set_preset(&mut self, scene: &Scene, preset: ViewPreset) {
        self.camera.set_preset(preset);
        self.reset(scene);
    }
}

/// GPU state shared by every viewport, kept in egui-wgpu's callback resources.
pub struct ViewportResources {
    blit: wgpu::RenderPipeline,
    blit_layout: wgpu::BindGroupLayout,
    sampler: wgpu::Sampler,
    /// One renderer (and the bind group showing its image) per viewport id.
    views: HashMap<egui::Id, (SceneRenderer, Option<wgpu::BindGroup>)>,
    error: Option<String>,
}

/// Installs the viewport's GPU resources into eframe's wgpu renderer (once, at start-up).
pub fn install(render_state: &egui_wgpu::RenderState) {
    let device = &render_state.device;
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("blit.wgsl"),
        source: wgpu::ShaderSource::Wgsl(include_str!("../../../shaders/blit.wgsl").into()),
    });
    let blit_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("viewport blit"),
        entries: &[
            wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::FRAGMENT,
                ty: wgpu::BindingType::Texture {
                    sample_type: wgpu::TextureSampleType::Float { filterable: true },
                    view_dimension: wgpu::TextureViewDimension::D2,
                    multisampled: false,
                },
                count: None,
            },
            wgpu::BindGroupLayoutEntry {
                binding: 1,
                visibility: wgpu::ShaderStages::FRAGMENT,
                ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                count: None,
            },
        ],
    });
    let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("viewport blit"),
        bind_group_layouts: &[Some(&blit_layout)],
        immediate_size: 0,
    });
    let target = render_state.target_format;
    let blit = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some("viewport blit"),
        layout: Some(&layout),
        vertex: wgpu::VertexState {
            module: &module,
            entry_point: Some("vs_blit"),
            buffers: &[],
            compilation_options: Default::default(),
        },
        primitive: Default::default(),
        depth_stencil: None,
        multisample: Default::default(),
        fragment: Some(wgpu::FragmentState {
            module: &module,
            entry_point: Some(if target.is_srgb() {
                "fs_blit_linear"
            } else {
                "fs_blit_gamma"
            }),
            targets: &[Some(wgpu::ColorTargetState {
                format: target,
                blend: None,
                write_mask: wgpu::ColorWrites::ALL,
            })],
            compilation_options: Default::default(),
        }),
        multiview_mask: None,
        cache: None,
    });
    let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
        label: Some("viewport blit"),
        ..Default::default()
    });
    render_state
        .renderer
        .write()
        .callback_resources
        .insert(ViewportResources {
            blit,
            blit_layout,
            sampler,
            views: HashMap::new(),
            error: None,
        });
}

/// Whether the viewport can draw in this window.
#[derive(Clone, Debug, PartialEq)]
pub enum GpuStatus {
    /// No wgpu renderer (egui_kittest without wgpu, or the glow renderer): [`install`] never ran.
    Off,
    Ready,
    /// The last frame's rendering failed (e.g. a view larger than the GPU allows).
    Failed(String),
}

pub fn status(frame: Option<&eframe::Frame>) -> GpuStatus {
    let Some(rs) = frame.and_then(|f| f.wgpu_render_state()) else {
        return GpuStatus::Off;
    };
    match rs.renderer.read().callback_resources.get::<ViewportResources>() {
        None => GpuStatus::Off,
        Some(ViewportResources { error: Some(e), .. }) => GpuStatus::Failed(e.clone()),
        Some(_) => GpuStatus::Ready,
    }
}

struct ViewportCallback {
    id: egui::Id,
    scene: Arc<Scene>,
    camera: OrbitCamera,
    settings: RenderSettings,
    size: [u32; 2],
}

impl egui_wgpu::CallbackTrait for ViewportCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &egui_wgpu::ScreenDescriptor,
        encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(res) = resources.get_mut::<ViewportResources>() else {
            return Vec::new();
        };
        let (renderer, bind_group) = match res.views.entry(self.id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => match SceneRenderer::new(device) {
                Ok(r) => slot.insert((r, None)),
                Err(e) => {
                    res.error = Some(e.to_string());
                    return Vec::new();
                }
            },
        };
        let before = renderer.output().map(|(t, _)| t.size());
        if let Err(e) = renderer.render(
            device,
            queue,
            encoder,
            &self.scene,
            &self.camera,
            &self.settings,
            self.size,
        ) {
            res.error = Some(e.to_string());
            return Vec::new();
        }
        let (texture, view) = renderer.output().expect("rendered");
        if bind_group.is_none() || before != Some(texture.size()) {
            *bind_group = Some(device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("viewport image"),
                layout: &res.blit_layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: wgpu::BindingResource::TextureView(view),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: wgpu::BindingResource::Sampler(&res.sampler),
                    },
                ],
            }));
        }
        res.error = None;
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &egui_wgpu::CallbackResources,
    ) {
        let Some(res) = resources.get::<ViewportResources>() else {
            return;
        };
        let Some((_, Some(bind_group))) = res.views.get(&self.id) else {
            return;
        };
        pass.set_pipeline(&res.blit);
        pass.set_bind_group(0, bind_group, &[]);
        pass.draw(0..3, 0..1);
    }
}

/// Draws `scene` in the remaining space of `ui` and applies the user's camera input to `state`.
pub fn show(ui: &mut egui::Ui, id_salt: &str, scene: &Arc<Scene>, state: &mut ViewportState, gpu: &GpuStatus) {
    let id = ui.make_persistent_id(id_salt);
    let bounds = state.framing_bounds(scene);
    if bounds.is_some() && state.framed_for != bounds {
        state.reset(scene);
    }
    if let GpuStatus::Failed(e) = gpu {
        ui.colored_label(ui.visuals().error_fg_color, format!("3D viewport: {e}"));
    }
    let (rect, response) = ui.allocate_exact_size(
        ui.available_size().max(egui::vec2(64.0, 64.0)),
        egui::Sense::click_and_drag(),
    );
    handle_input(ui, &response, scene, state);
    if *gpu == GpuStatus::Off {
        ui.painter().rect_filled(rect, 0.0, ui.visuals().extreme_bg_color);
        ui.put(
            rect,
            egui::Label::new(
                egui::RichText::new("The 3D viewport needs the wgpu renderer (it is off in this window).").weak(),
            ),
        );
        return;
    }
    let ppp = ui.ctx().pixels_per_point();
    let size = [
        (rect.width() * ppp).round().max(1.0) as u32,
        (rect.height() * ppp).round().max(1.0) as u32,
    ];
    let callback = ViewportCallback {
        id,
        scene: scene.clone(),
        camera: state.camera,
        settings: state.settings,
        size,
    };
    ui.painter()
        .add(egui_wgpu::Callback::new_paint_callback(rect, callback));
}

fn handle_input(ui: &egui::Ui, response: &egui::Response, scene: &Scene, state: &mut ViewportState) {
    let shift = ui.input(|i| i.modifiers.shift);
    if response.dragged_by(egui::PointerButton::Primary) && !shift {
        let d = response.drag_delta();
        state.camera.orbit(d.x, d.y);
    } else if response.dragged_by(egui::PointerButton::Secondary)
        || response.dragged_by(egui::PointerButton::Middle)
        || (response.dragged_by(egui::PointerButton::Primary) && shift)
    {
        let d = response.drag_delta();
        state.camera.pan(d.x, d.y, response.rect.height());
    }
    if response.hovered() {
        let scroll = ui.input(|i| i.smooth_scroll_delta.y);
        if scroll != 0.0 {
            state.camera.zoom((-scroll * 0.002).exp());
        }
        let keys = [
            (egui::Key::Num1, ViewPreset::Front),
            (egui::Key::Num2, ViewPreset::Back),
            (egui::Key::Num3, ViewPreset::Left),
            (egui::Key::Num4, ViewPreset::Right),
            (egui::Key::Num5, ViewPreset::Top),
            (egui::Key::Num6, ViewPreset::Bottom),
            (egui::Key::Num7, ViewPreset::Iso),
        ];
        for (key, preset) in keys {
            if ui.input(|i| i.key_pressed(key)) {
                state.set_preset(scene, preset);
            }
        }
        if ui.input(|i| i.key_pressed(egui::Key::R)) {
            state.reset(scene);
        }
    }
    if response.double_clicked() {
        state.reset(scene);
    }
}

/// The viewport's toolbar: presets, reset, shading, wireframe, gizmo, arrangement.
pub fn toolbar(ui: &mut egui::Ui, scene: &Scene, state: &mut ViewportState) {
    use crate::render::{Arrangement, Shading};
    ui.horizontal_wrapped(|ui| {
        ui.label("View:");
        for preset in ViewPreset::ALL {
            if ui.small_button(preset.name()).clicked() {
                state.set_preset(scene, preset);
            }
        }
        if ui
            .small_button("Reset")
            .on_hover_text("Frame the scene again (R, or double-click the view)")
            .clicked()
        {
            state.reset(scene);
        }
        ui.separator();
        let s = &mut state.settings;
        ui.selectable_value(&mut s.shading, Shading::Smooth, "Smooth");
        ui.selectable_value(&mut s.shading, Shading::Flat, "Flat");
        ui.checkbox(&mut s.wireframe, "Wireframe");
        ui.checkbox(&mut s.gizmo, "Axes");
        let before = s.arrangement;
        ui.selectable_value(&mut s.arrangement, Arrangement::Overlay, "Overlay");
        ui.selectable_value(&mut s.arrangement, Arrangement::SideBySide, "Side by side");
        if s.arrangement != before {
            state.reset(scene);
        }
    });
}
