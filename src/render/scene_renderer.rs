//! Draws a [`Scene`] into its own multisampled colour + depth targets with wgpu. The app runs it
//! inside egui's paint callback (then blits the result), the CLI and the tests through
//! [`super::offscreen`]: one renderer, so what the tests check is what the user sees.

use super::camera::OrbitCamera;
use super::math::{self, Mat4};
use super::scene::{Coloring, Geometry, RenderSettings, Scene, Shading};
use super::volume_pass::{VolumeLook, VolumeResources};
use crate::core::colormap::Colormap;
use std::collections::{HashMap, HashSet};
use wgpu::util::DeviceExt;

/// The viewport's own colour format: shaders write sRGB-encoded values, so a PNG is a plain copy.
pub const COLOR_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;
pub(super) const DEPTH_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Depth32Float;
pub(super) const SAMPLES: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Globals {
    view_proj: Mat4,
    eye: [f32; 4],
    clip_plane: [f32; 4],
    viewport: [f32; 4],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ObjectUniform {
    offset: [f32; 4],
    base_color: [f32; 4],
    scalar: [f32; 4],
    flags: [f32; 4],
    colormap: [[f32; 4]; 256],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LineUniform {
    offset: [f32; 4],
    color: [f32; 4],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MeshVertex {
    position: [f32; 3],
    normal: [f32; 3],
    scalar: f32,
    color: [u8; 4],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PointInstance {
    position: [f32; 3],
    scalar: f32,
    color: [u8; 4],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GizmoVertex {
    position: [f32; 3],
    color: [f32; 4],
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("no GPU adapter (install Mesa's lavapipe, mesa-vulkan-drivers, for software rendering): {0}")]
    NoAdapter(String),
    #[error("cannot open the GPU device: {0}")]
    Device(String),
    #[error("the GPU rejected the viewport's pipelines: {0}")]
    Pipeline(String),
    #[error("{width}×{height} is larger than this GPU allows ({max} pixels a side)")]
    TooLarge { width: u32, height: u32, max: u32 },
    #[error("reading the image back from the GPU failed: {0}")]
    Readback(String),
    #[error("GPU compute: {0}")]
    Compute(String),
}

/// GPU buffers of one scene object, rebuilt when its `version` changes.
struct GpuObject {
    version: u64,
    /// The geometry it was built from (held, so its address stays its own): a new `Arc` under
    /// the same id re-uploads.
    source: Geometry,
    kind: GpuGeometry,
    uniform: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    line_uniform: wgpu::Buffer,
    line_bind_group: wgpu::BindGroup,
    /// The unique edges, built on first use by the wireframe.
    edges: Option<(wgpu::Buffer, u32)>,
}

enum GpuGeometry {
    Mesh {
        vertices: wgpu::Buffer,
        indices: wgpu::Buffer,
        index_count: u32,
    },
    Points {
        instances: wgpu::Buffer,
        count: u32,
    },
    Volume {
        params: wgpu::Buffer,
        bind_group: wgpu::BindGroup,
        /// The finite value range of the uploaded frame: the window when no colouring is given.
        range: (f32, f32),
    },
}

struct Targets {
    size: [u32; 2],
    msaa: wgpu::TextureView,
    depth: wgpu::TextureView,
    /// The depth target bound as a texture for the volume pass (group 2).
    depth_bind_group: wgpu::BindGroup,
    resolved: wgpu::Texture,
    resolved_view: wgpu::TextureView,
}

pub struct SceneRenderer {
    mesh_pipeline: wgpu::RenderPipeline,
    point_pipeline: wgpu::RenderPipeline,
    wire_pipeline: wgpu::RenderPipeline,
    gizmo_pipeline: wgpu::RenderPipeline,
    volumes: VolumeResources,
    object_layout: wgpu::BindGroupLayout,
    globals: wgpu::Buffer,
    globals_bind_group: wgpu::BindGroup,
    gizmo_globals: wgpu::Buffer,
    gizmo_bind_group: wgpu::BindGroup,
    gizmo_line_bind_group: wgpu::BindGroup,
    gizmo_vertices: wgpu::Buffer,
    objects: HashMap<u64, GpuObject>,
    targets: Option<Targets>,
    max_side: u32,
}

fn uniform_layout(device: &wgpu::Device, label: &str) -> wgpu::BindGroupLayout {
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(label),
        entries: &[wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::VERTEX_FRAGMENT,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }],
    })
}

fn uniform_group(device: &wgpu::Device, layout: &wgpu::BindGroupLayout, buffer: &wgpu::Buffer) -> wgpu::BindGroup {
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout,
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: buffer.as_entire_binding(),
        }],
    })
}

fn uniform_buffer(device: &wgpu::Device, bytes: &[u8]) -> wgpu::Buffer {
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytes,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    })
}

fn srgb_bytes_to_f32(c: [u8; 4]) -> [f32; 4] {
    c.map(|v| v as f32 / 255.0)
}

struct PipelineSpec<'a> {
    label: &'a str,
    module: &'a wgpu::ShaderModule,
    vs: &'a str,
    fs: &'a str,
    buffers: &'a [Option<wgpu::VertexBufferLayout<'a>>],
    topology: wgpu::PrimitiveTopology,
    depth_compare: wgpu::CompareFunction,
    depth_write: bool,
    /// Pushes filled triangles back a little so that wireframe lines on them win the depth test.
    depth_bias: bool,
}

fn pipeline(device: &wgpu::Device, layout: &wgpu::PipelineLayout, spec: PipelineSpec<'_>) -> wgpu::RenderPipeline {
    device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some(spec.label),
        layout: Some(layout),
        vertex: wgpu::VertexState {
            module: spec.module,
            entry_point: Some(spec.vs),
            buffers: spec.buffers,
            compilation_options: Default::default(),
        },
        primitive: wgpu::PrimitiveState {
            topology: spec.topology,
            cull_mode: None,
            ..Default::default()
        },
        depth_stencil: Some(wgpu::DepthStencilState {
            format: DEPTH_FORMAT,
            depth_write_enabled: Some(spec.depth_write),
            depth_compare: Some(spec.depth_compare),
            stencil: Default::default(),
            bias: if spec.depth_bias {
                wgpu::DepthBiasState {
                    constant: 2,
                    slope_scale: 1.0,
                    clamp: 0.0,
                }
            } else {
                Default::default()
            },
        }),
        multisample: wgpu::MultisampleState {
            count: SAMPLES,
            mask: !0,
            alpha_to_coverage_enabled: false,
        },
        fragment: Some(wgpu::FragmentState {
            module: spec.module,
            entry_point: Some(spec.fs),
            targets: &[Some(wgpu::ColorTargetState {
                format: COLOR_FORMAT,
                blend: None,
                write_mask: wgpu::ColorWrites::ALL,
            })],
            compilation_options: Default::default(),
        }),
        multiview_mask: None,
        cache: None,
    })
}

impl SceneRenderer {
    /// Builds the pipelines; a shader or pipeline the device rejects is an error, not a panic.
    pub fn new(device: &wgpu::Device) -> Result<Self, RenderError> {
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let renderer = Self::build(device);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(RenderError::Pipeline(e.to_string()));
        }
        Ok(renderer)
    }

    fn build(device: &wgpu::Device) -> Self {
        let mesh_module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("mesh.wgsl"),
            source: wgpu::ShaderSource::Wgsl(include_str!("../../shaders/mesh.wgsl").into()),
        });
        let line_module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("lines.wgsl"),
            source: wgpu::ShaderSource::Wgsl(include_str!("../../shaders/lines.wgsl").into()),
        });
        let globals_layout = uniform_layout(device, "viewport globals");
        let object_layout = uniform_layout(device, "viewport object");
        let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("viewport"),
            bind_group_layouts: &[Some(&globals_layout), Some(&object_layout)],
            immediate_size: 0,
        });
        let mesh_attrs = wgpu::vertex_attr_array![0 => Float32x3, 1 => Float32x3, 2 => Float32, 3 => Unorm8x4];
        let mesh_buffer = wgpu::VertexBufferLayout {
            array_stride: size_of::<MeshVertex>() as u64,
            step_mode: wgpu::VertexStepMode::Vertex,
            attributes: &mesh_attrs,
        };
        let point_attrs = wgpu::vertex_attr_array![0 => Float32x3, 1 => Float32, 2 => Unorm8x4];
        let point_buffer = wgpu::VertexBufferLayout {
            array_stride: size_of::<PointInstance>() as u64,
            step_mode: wgpu::VertexStepMode::Instance,
            attributes: &point_attrs,
        };
        let wire_attrs = wgpu::vertex_attr_array![0 => Float32x3];
        let wire_buffer = wgpu::VertexBufferLayout {
            array_stride: size_of::<MeshVertex>() as u64,
            step_mode: wgpu::VertexStepMode::Vertex,
            attributes: &wire_attrs,
        };
        let gizmo_attrs = wgpu::vertex_attr_array![0 => Float32x3, 1 => Float32x4];
        let gizmo_buffer = wgpu::VertexBufferLayout {
            array_stride: size_of::<GizmoVertex>() as u64,
            step_mode: wgpu::VertexStepMode::Vertex,
            attributes: &gizmo_attrs,
        };
        let tri = wgpu::PrimitiveTopology::TriangleList;
        let lines = wgpu::PrimitiveTopology::LineList;
        let less = wgpu::CompareFunction::LessEqual;
        let mesh_pipeline = pipeline(
            device,
            &layout,
            PipelineSpec {
                label: "mesh",
                module: &mesh_module,
                vs: "vs_mesh",
                fs: "fs_mesh",
                buffers: &[Some(mesh_buffer)],
                topology: tri,
                depth_compare: less,
                depth_write: true,
                depth_bias: true,
            },
        );
        let point_pipeline = pipeline(
            device,
            &layout,
            PipelineSpec {
                label: "points",
                module: &mesh_module,
                vs: "vs_points",
                fs: "fs_points",
                buffers: &[Some(point_buffer)],
                topology: tri,
                depth_compare: less,
                depth_write: true,
                depth_bias: false,
            },
        );
        let wire_pipeline = pipeline(
            device,
            &layout,
            PipelineSpec {
                label: "wireframe",
                module: &line_module,
                vs: "vs_wire",
                fs: "fs_line",
                buffers: &[Some(wire_buffer)],
                topology: lines,
                depth_compare: less,
                depth_write: false,
                depth_bias: false,
            },
        );
        let gizmo_pipeline = pipeline(
            device,
            &layout,
            PipelineSpec {
                label: "gizmo",
                module: &line_module,
                vs: "vs_colored",
                fs: "fs_line",
                buffers: &[Some(gizmo_buffer)],
                topology: lines,
                depth_compare: wgpu::CompareFunction::Always,
                depth_write: false,
                depth_bias: false,
            },
        );
        let zero_globals = Globals {
            view_proj: math::IDENTITY,
            eye: [0.0; 4],
            clip_plane: [0.0; 4],
            viewport: [1.0; 4],
        };
        let globals = uniform_buffer(device, bytemuck::bytes_of(&zero_globals));
        let globals_bind_group = uniform_group(device, &globals_layout, &globals);
        let gizmo_globals = uniform_buffer(device, bytemuck::bytes_of(&zero_globals));
        let gizmo_bind_group = uniform_group(device, &globals_layout, &gizmo_globals);
        let gizmo_line = uniform_buffer(
            device,
            bytemuck::bytes_of(&LineUniform {
                offset: [0.0; 4],
                color: [1.0; 4],
            }),
        );
        let gizmo_line_bind_group = uniform_group(device, &object_layout, &gizmo_line);
        let axis = |dir: [f32; 3], color: [f32; 4]| {
            [
                GizmoVertex {
                    position: [0.0; 3],
                    color,
                },
                GizmoVertex { position: dir, color },
            ]
        };
        let gizmo: Vec<GizmoVertex> = [
            axis([1.0, 0.0, 0.0], [0.93, 0.33, 0.31, 1.0]),
            axis([0.0, 1.0, 0.0], [0.45, 0.80, 0.35, 1.0]),
            axis([0.0, 0.0, 1.0], [0.35, 0.55, 0.95, 1.0]),
        ]
        .concat();
        let gizmo_vertices = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("gizmo"),
            contents: bytemuck::cast_slice(&gizmo),
            usage: wgpu::BufferUsages::VERTEX,
        });
        Self {
            mesh_pipeline,
            point_pipeline,
            wire_pipeline,
            gizmo_pipeline,
            volumes: VolumeResources::new(device, &globals_layout),
            object_layout,
            globals,
            globals_bind_group,
            gizmo_globals,
            gizmo_bind_group,
            gizmo_line_bind_group,
            gizmo_vertices,
            objects: HashMap::new(),
            targets: None,
            max_side: device.limits().max_texture_dimension_2d,
        }
    }

    /// The resolved image of the last [`SceneRenderer::render`] (`COLOR_FORMAT`), if any.
    pub fn output(&self) -> Option<(&wgpu::Texture, &wgpu::TextureView)> {
        self.targets.as_ref().map(|t| (&t.resolved, &t.resolved_view))
    }

    /// Records the drawing of `scene` at `size` pixels into `encoder`.
    #[allow(clippy::too_many_arguments)]
    pub fn render(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        scene: &Scene,
        camera: &OrbitCamera,
        settings: &RenderSettings,
        size: [u32; 2],
    ) -> Result<(), RenderError> {
        let [w, h] = [size[0].max(1), size[1].max(1)];
        if w > self.max_side || h > self.max_side {
            return Err(RenderError::TooLarge {
                width: w,
                height: h,
                max: self.max_side,
            });
        }
        if self.targets.as_ref().is_none_or(|t| t.size != [w, h]) {
            self.targets = Some(make_targets(device, [w, h], &self.volumes));
        }
        self.sync(device, queue, scene, settings);
        let aspect = w as f32 / h as f32;
        let eye = camera.eye();
        let globals = Globals {
            view_proj: camera.view_projection(aspect),
            eye: [eye[0], eye[1], eye[2], 1.0],
            clip_plane: settings.clip.map_or([0.0; 4], |c| c.equation()),
            viewport: [w as f32, h as f32, settings.point_size.max(1.0), 0.0],
        };
        queue.write_buffer(&self.globals, 0, bytemuck::bytes_of(&globals));
        let gizmo_side = (w.min(h) as f32 * 0.16).clamp(48.0, 140.0).min(w.min(h) as f32);
        if settings.gizmo {
            queue.write_buffer(&self.gizmo_globals, 0, bytemuck::bytes_of(&gizmo_globals(camera)));
        }
        if settings.wireframe {
            for object in scene.visible() {
                if let (Geometry::Mesh(mesh), Some(gpu)) = (&object.geometry, self.objects.get_mut(&object.id))
                    && gpu.edges.is_none()
                {
                    let edges = unique_edges(&mesh.triangles);
                    let flat: &[u32] = bytemuck::cast_slice(&edges);
                    gpu.edges = Some((index_buffer(device, bytemuck::cast_slice(flat)), flat.len() as u32));
                }
            }
        }
        let targets = self.targets.as_ref().expect("targets were made above");
        let bg = srgb_bytes_to_f32(settings.background);
        // Pass 1, opaque objects: colour and depth kept for pass 2.
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("viewport opaque"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: &targets.msaa,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(wgpu::Color {
                        r: bg[0] as f64,
                        g: bg[1] as f64,
                        b: bg[2] as f64,
                        a: 1.0,
                    }),
                    store: wgpu::StoreOp::Store,
                },
            })],
            depth_stencil_attachment: Some(wgpu::RenderPassDepthStencilAttachment {
                view: &targets.depth,
                depth_ops: Some(wgpu::Operations {
                    load: wgpu::LoadOp::Clear(1.0),
                    store: wgpu::StoreOp::Store,
                }),
                stencil_ops: None,
            }),
            timestamp_writes: None,
            occlusion_query_set: None,
            multiview_mask: None,
        });
        pass.set_bind_group(0, &self.globals_bind_group, &[]);
        for object in scene.visible() {
            let Some(gpu) = self.objects.get(&object.id) else {
                continue;
            };
            pass.set_bind_group(1, &gpu.bind_group, &[]);
            match &gpu.kind {
                GpuGeometry::Mesh {
                    vertices,
                    indices,
                    index_count,
                    ..
                } => {
                    pass.set_pipeline(&self.mesh_pipeline);
                    pass.set_vertex_buffer(0, vertices.slice(..));
                    pass.set_index_buffer(indices.slice(..), wgpu::IndexFormat::Uint32);
                    pass.draw_indexed(0..*index_count, 0, 0..1);
                    if settings.wireframe
                        && let Some((edges, count)) = &gpu.edges
                    {
                        pass.set_pipeline(&self.wire_pipeline);
                        pass.set_bind_group(1, &gpu.line_bind_group, &[]);
                        pass.set_index_buffer(edges.slice(..), wgpu::IndexFormat::Uint32);
                        pass.draw_indexed(0..*count, 0, 0..1);
                    }
                }
                GpuGeometry::Points { instances, count } => {
                    pass.set_pipeline(&self.point_pipeline);
                    pass.set_vertex_buffer(0, instances.slice(..));
                    pass.draw(0..6, 0..*count);
                }
                // Translucent: after every opaque object, in pass 2.
                GpuGeometry::Volume { .. } => {}
            }
        }
        drop(pass);
        // Pass 2, volumes and the gizmo: the depth attachment is read-only, so the volume shader
        // can read the opaque depth as a texture at the same time; then resolve.
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("viewport overlay"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: &targets.msaa,
                depth_slice: None,
                resolve_target: Some(&targets.resolved_view),
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Load,
                    store: wgpu::StoreOp::Discard,
                },
            })],
            depth_stencil_attachment: Some(wgpu::RenderPassDepthStencilAttachment {
                view: &targets.depth,
                depth_ops: None,
                stencil_ops: None,
            }),
            timestamp_writes: None,
            occlusion_query_set: None,
            multiview_mask: None,
        });
        pass.set_bind_group(0, &self.globals_bind_group, &[]);
        pass.set_bind_group(2, &targets.depth_bind_group, &[]);
        for object in scene.visible() {
            if let Some(GpuObject {
                kind: GpuGeometry::Volume { bind_group, .. },
                ..
            }) = self.objects.get(&object.id)
            {
                pass.set_pipeline(&self.volumes.pipeline);
                pass.set_bind_group(1, bind_group, &[]);
                pass.draw(0..36, 0..1);
            }
        }
        if settings.gizmo {
            let margin = 6.0;
            pass.set_viewport(margin, h as f32 - gizmo_side - margin, gizmo_side, gizmo_side, 0.0, 1.0);
            pass.set_pipeline(&self.gizmo_pipeline);
            pass.set_bind_group(0, &self.gizmo_bind_group, &[]);
            pass.set_bind_group(1, &self.gizmo_line_bind_group, &[]);
            pass.set_vertex_buffer(0, self.gizmo_vertices.slice(..));
            pass.draw(0..6, 0..1);
        }
        Ok(())
    }

    /// Uploads new or changed objects, updates styles and offsets, drops removed ones.
    fn sync(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, scene: &Scene, settings: &RenderSettings) {
        let keep: HashSet<u64> = scene.objects.iter().map(|o| o.id).collect();
        self.objects.retain(|id, _| keep.contains(id));
        let offsets = scene.offsets(settings.arrangement);
        for (object, offset) in scene.visible().zip(offsets) {
            let stale = self
                .objects
                .get(&object.id)
                .is_none_or(|g| g.version != object.version || !g.source.same_data(&object.geometry));
            if stale {
                let gpu = self.upload(device, queue, &object.geometry, object.version);
                self.objects.insert(object.id, gpu);
            }
            let gpu = &self.objects[&object.id];
            if let (GpuGeometry::Volume { params, range, .. }, Geometry::Volume(v)) = (&gpu.kind, &object.geometry) {
                let look = volume_look(object.coloring, *range, settings);
                let p = super::volume_pass::params(v, offset, &look);
                queue.write_buffer(params, 0, bytemuck::bytes_of(&p));
                continue;
            }
            let uniform = object_uniform(object.coloring, offset, settings.shading, &object.geometry);
            queue.write_buffer(&gpu.uniform, 0, bytemuck::bytes_of(&uniform));
            let line = LineUniform {
                offset: [offset[0], offset[1], offset[2], 0.0],
                color: srgb_bytes_to_f32(settings.wire_color),
            };
            queue.write_buffer(&gpu.line_uniform, 0, bytemuck::bytes_of(&line));
        }
    }
}

fn make_targets(device: &wgpu::Device, [w, h]: [u32; 2], volumes: &VolumeResources) -> Targets {
    let size = wgpu::Extent3d {
        width: w,
        height: h,
        depth_or_array_layers: 1,
    };
    let texture = |label, samples, format, usage| {
        device.create_texture(&wgpu::TextureDescriptor {
            label: Some(label),
            size,
            mip_level_count: 1,
            sample_count: samples,
            dimension: wgpu::TextureDimension::D2,
            format,
            usage,
            view_formats: &[],
        })
    };
    let attach = wgpu::TextureUsages::RENDER_ATTACHMENT;
    let msaa = texture("viewport msaa", SAMPLES, COLOR_FORMAT, attach);
    let depth = texture(
        "viewport depth",
        SAMPLES,
        DEPTH_FORMAT,
        attach | wgpu::TextureUsages::TEXTURE_BINDING,
    );
    let depth_only = depth.create_view(&wgpu::TextureViewDescriptor {
        aspect: wgpu::TextureAspect::DepthOnly,
        ..Default::default()
    });
    let resolved = texture(
        "viewport image",
        1,
        COLOR_FORMAT,
        attach | wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_SRC,
    );
    Targets {
        size: [w, h],
        msaa: msaa.create_view(&Default::default()),
        depth: depth.create_view(&Default::default()),
        depth_bind_group: volumes.depth_bind_group(device, &depth_only),
        resolved_view: resolved.create_view(&Default::default()),
        resolved,
    }
}

/// The gizmo's camera: the view's rotation only, orthographic, the unit axes filling its square.
fn gizmo_globals(camera: &OrbitCamera) -> Globals {
    let turned = OrbitCamera {
        target: [0.0; 3],
        distance: 3.0,
        ..*camera
    };
    let view = turned.view();
    let s = 1.0 / 1.25;
    let ortho = [
        [s, 0.0, 0.0, 0.0],
        [0.0, s, 0.0, 0.0],
        [0.0, 0.0, -0.25, 0.0],
        // View-space z of the axes lies in [−4, −2]: depth −0.25·z − 0.25 ∈ [0.25, 0.75].
        [0.0, 0.0, -0.25, 1.0],
    ];
    Globals {
        view_proj: math::mul(&ortho, &view),
        eye: [0.0; 4],
        clip_plane: [0.0; 4],
        viewport: [1.0; 4],
    }
}

/// A volume's window and colormap: its scalar colouring, else its full `range` in gray.
fn volume_look(coloring: Coloring, range: (f32, f32), settings: &RenderSettings) -> VolumeLook {
    let (colormap, lo, hi) = match coloring {
        Coloring::Scalar { colormap, lo, hi } => (colormap, lo, hi),
        _ => (Colormap::Gray, range.0, range.1),
    };
    VolumeLook {
        lo,
        hi,
        colormap,
        opacity: settings.volume_opacity,
        curve: settings.volume_curve,
        samples: settings.volume_samples,
    }
}

fn colormap_table(colormap: Colormap) -> [[f32; 4]; 256] {
    std::array::from_fn(|i| srgb_bytes_to_f32(colormap.rgba(i as f32 / 255.0)))
}

fn object_uniform(coloring: Coloring, offset: [f32; 3], shading: Shading, geometry: &Geometry) -> ObjectUniform {
    let flat = if shading == Shading::Flat { 1.0 } else { 0.0 };
    let has_colors = match geometry {
        Geometry::Mesh(m) => !m.colors.is_empty(),
        Geometry::Points(p) => !p.colors.is_empty(),
        Geometry::Volume(_) => false,
    };
    let has_scalars = !geometry.scalars().is_empty();
    let (base, scalar, flags, table) = match coloring {
        Coloring::Solid(c) => (c, [0.0, 1.0, 0.0, flat], [0.0; 4], [[0.0; 4]; 256]),
        Coloring::Scalar { colormap, lo, hi } if has_scalars => {
            ([255; 4], [lo, hi, 1.0, flat], [0.0; 4], colormap_table(colormap))
        }
        Coloring::Vertex if has_colors => ([255; 4], [0.0, 1.0, 0.0, flat], [1.0, 0.0, 0.0, 0.0], [[0.0; 4]; 256]),
        // Asked for data the geometry lacks: a neutral solid colour.
        _ => (
            super::scene::PALETTE[0],
            [0.0, 1.0, 0.0, flat],
            [0.0; 4],
            [[0.0; 4]; 256],
        ),
    };
    ObjectUniform {
        offset: [offset[0], offset[1], offset[2], 0.0],
        base_color: srgb_bytes_to_f32(base),
        scalar,
        flags,
        colormap: table,
    }
}

impl SceneRenderer {
    /// GPU buffers for one object's geometry.
    fn upload(&self, device: &wgpu::Device, queue: &wgpu::Queue, geometry: &Geometry, version: u64) -> GpuObject {
        let kind = match geometry {
            Geometry::Mesh(mesh) => {
                let computed;
                let normals = if mesh.normals.len() == mesh.positions.len() {
                    &mesh.normals
                } else {
                    computed = mesh.vertex_normals();
                    &computed
                };
                let vertices: Vec<MeshVertex> = (0..mesh.positions.len())
                    .map(|i| MeshVertex {
                        position: mesh.positions[i],
                        normal: normals.get(i).copied().unwrap_or([0.0; 3]),
                        scalar: mesh.scalars.get(i).copied().unwrap_or(0.0),
                        color: mesh.colors.get(i).copied().unwrap_or([255; 4]),
                    })
                    .collect();
                let indices: &[u32] = bytemuck::cast_slice(&mesh.triangles);
                GpuGeometry::Mesh {
                    vertices: vertex_buffer(device, bytemuck::cast_slice(&vertices)),
                    indices: index_buffer(device, bytemuck::cast_slice(indices)),
                    index_count: indices.len() as u32,
                }
            }
            Geometry::Points(cloud) => {
                let instances: Vec<PointInstance> = (0..cloud.points.len())
                    .map(|i| PointInstance {
                        position: cloud.points[i],
                        scalar: cloud.scalars.get(i).copied().unwrap_or(0.0),
                        color: cloud.colors.get(i).copied().unwrap_or([255; 4]),
                    })
                    .collect();
                GpuGeometry::Points {
                    instances: vertex_buffer(device, bytemuck::cast_slice(&instances)),
                    count: instances.len() as u32,
                }
            }
            Geometry::Volume(volume) => {
                let (params, bind_group) = self.volumes.upload(device, queue, volume);
                let range = crate::core::stats::finite_range(volume.frame(0)).unwrap_or((0.0, 1.0));
                GpuGeometry::Volume {
                    params,
                    bind_group,
                    range,
                }
            }
        };
        let uniform = uniform_buffer(device, &[0u8; size_of::<ObjectUniform>()]);
        let bind_group = uniform_group(device, &self.object_layout, &uniform);
        let line_uniform = uniform_buffer(device, &[0u8; size_of::<LineUniform>()]);
        let line_bind_group = uniform_group(device, &self.object_layout, &line_uniform);
        GpuObject {
            version,
            source: geometry.clone(),
            kind,
            uniform,
            bind_group,
            line_uniform,
            line_bind_group,
            edges: None,
        }
    }
}

/// wgpu rejects empty buffers in some paths: keep at least one element's worth.
fn vertex_buffer(device: &wgpu::Device, bytes: &[u8]) -> wgpu::Buffer {
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: if bytes.is_empty() { &[0u8; 64] } else { bytes },
        usage: wgpu::BufferUsages::VERTEX,
    })
}

fn index_buffer(device: &wgpu::Device, bytes: &[u8]) -> wgpu::Buffer {
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: if bytes.is_empty() { &[0u8; 12] } else { bytes },
        usage: wgpu::BufferUsages::INDEX,
    })
}

/// Each undirected edge of the triangles once (a shared edge would otherwise be drawn twice).
pub fn unique_edges(triangles: &[[u32; 3]]) -> Vec<[u32; 2]> {
    let mut edges: Vec<[u32; 2]> = triangles
        .iter()
        .flat_map(|t| [[t[0], t[1]], [t[1], t[2]], [t[2], t[0]]])
        .map(|[a, b]| if a < b { [a, b] } else { [b, a] })
        .collect();
    edges.sort_unstable();
    edges.dedup();
    edges
}

#[cfg(test)]
mod tests {
    #[test]
    fn shared_edges_are_listed_once() {
        let e = super::unique_edges(&[[0, 1, 2], [2, 1, 3]]);
        assert_eq!(e, vec![[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]]);
    }
}
