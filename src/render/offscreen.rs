//! Rendering with no window: a headless wgpu device (a GPU, or Mesa's lavapipe on a CPU-only
//! machine) and a read-back of the viewport image. The CLI's `render` and the render tests use it.

use super::camera::OrbitCamera;
use super::scene::{RenderSettings, Scene};
use super::scene_renderer::{RenderError, SceneRenderer};

/// A device and queue with no surface.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    /// The adapter's name and backend, for logs and reports.
    pub adapter: String,
}

impl Gpu {
    /// Opens the first adapter wgpu finds (honouring `WGPU_BACKEND`, `WGPU_ADAPTER_NAME`).
    pub fn headless() -> Result<Self, RenderError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::from_env().unwrap_or_default(),
            force_fallback_adapter: false,
            compatible_surface: None,
            apply_limit_buckets: false,
        }))
        .map_err(|e| RenderError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("latent-workbench offscreen"),
            // Marching cubes binds 6 storage buffers in one stage; the downlevel defaults allow 4.
            required_limits: wgpu::Limits {
                max_storage_buffers_per_shader_stage: adapter.limits().max_storage_buffers_per_shader_stage.min(8),
                ..wgpu::Limits::downlevel_defaults().using_resolution(adapter.limits())
            },
            ..Default::default()
        }))
        .map_err(|e| RenderError::Device(e.to_string()))?;
        Ok(Self {
            device,
            queue,
            adapter: format!("{} ({:?})", info.name, info.backend),
        })
    }
}

/// Renders `scene` to `width`×`height` RGBA8 pixels (sRGB, rows top to bottom).
pub fn render_rgba(
    gpu: &Gpu,
    renderer: &mut SceneRenderer,
    scene: &Scene,
    camera: &OrbitCamera,
    settings: &RenderSettings,
    [width, height]: [u32; 2],
) -> Result<Vec<u8>, RenderError> {
    let (device, queue) = (&gpu.device, &gpu.queue);
    let mut encoder = device.create_command_encoder(&Default::default());
    renderer.render(device, queue, &mut encoder, scene, camera, settings, [width, height])?;
    let (texture, _) = renderer.output().expect("render made the targets");
    // Rows of a texture-to-buffer copy are padded to 256 bytes.
    let row = width as usize * 4;
    let padded =
        row.div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT as usize) * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT as usize;
    let buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("viewport readback"),
        size: (padded * height as usize) as u64,
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
        mapped_at_creation: false,
    });
    encoder.copy_texture_to_buffer(
        texture.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &buffer,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(padded as u32),
                rows_per_image: Some(height),
            },
        },
        texture.size(),
    );
    queue.submit([encoder.finish()]);
    let (tx, rx) = std::sync::mpsc::channel();
    buffer.slice(..).map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| RenderError::Readback(e.to_string()))?;
    rx.recv()
        .map_err(|e| RenderError::Readback(e.to_string()))?
        .map_err(|e| RenderError::Readback(e.to_string()))?;
    let mapped = buffer
        .slice(..)
        .get_mapped_range()
        .map_err(|e| RenderError::Readback(e.to_string()))?;
    let mut pixels = Vec::with_capacity(row * height as usize);
    for y in 0..height as usize {
        pixels.extend_from_slice(&mapped[y * padded..y * padded + row]);
    }
    Ok(pixels)
}

/// A device and a renderer kept for many images (frames of an animation, a turntable).
pub struct Offscreen {
    gpu: Gpu,
    renderer: SceneRenderer,
}

impl Offscreen {
    pub fn new() -> Result<Self, RenderError> {
        let gpu = Gpu::headless()?;
        let renderer = SceneRenderer::new(&gpu.device)?;
        Ok(Self { gpu, renderer })
    }

    pub fn render(
        &mut self,
        scene: &Scene,
        camera: &OrbitCamera,
        settings: &RenderSettings,
        size: [u32; 2],
    ) -> Result<crate::core::Image, RenderError> {
        let pixels = render_rgba(&self.gpu, &mut self.renderer, scene, camera, settings, size)?;
        Ok(rgba_image(size, pixels))
    }
}

/// One-shot: opens a device, builds the renderer and renders once.
pub fn render_image(
    scene: &Scene,
    camera: &OrbitCamera,
    settings: &RenderSettings,
    size: [u32; 2],
) -> Result<crate::core::Image, RenderError> {
    let gpu = Gpu::headless()?;
    let mut renderer = SceneRenderer::new(&gpu.device)?;
    let pixels = render_rgba(&gpu, &mut renderer, scene, camera, settings, size)?;
    Ok(rgba_image(size, pixels))
}

fn rgba_image([w, h]: [u32; 2], pixels: Vec<u8>) -> crate::core::Image {
    use crate::core::image::{Channels, ImageData};
    crate::core::Image::new(w as usize, h as usize, Channels::Rgba, ImageData::U8(pixels))
        .expect("the read-back holds width × height RGBA pixels")
}
