//! Volume ray marching in the viewport (`shaders/volume.wgsl`): the volume's first frame as a
//! 3D `R16Float` texture, the box it fills in world space, and the parameters of the transfer
//! function (window, colormap, opacity per voxel and the opacity curve across the window).

use super::math::{self, Mat4};
use crate::core::Volume;
use crate::core::colormap::Colormap;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct VolumeParams {
    pub tex_to_world: Mat4,
    pub world_to_tex: Mat4,
    pub window: [f32; 4],
    pub dims: [f32; 4],
    pub colormap: [[f32; 4]; 256],
}

/// How a volume is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct VolumeLook {
    pub lo: f32,
    pub hi: f32,
    pub colormap: Colormap,
    pub opacity: f32,
    /// The opacity factor across the window.
    pub curve: crate::core::transfer::OpacityCurve,
    pub samples: u32,
}

/// Texture coordinates (`[0, 1]³`, voxel centres at `(i + 0.5) / n`) to world mm, shifted by
/// `offset`, and its inverse; `None` when the affine is singular.
pub(super) fn tex_world(volume: &Volume, offset: [f32; 3]) -> Option<(Mat4, Mat4)> {
    let [nx, ny, nz] = volume.dims().map(|d| d as f32);
    let a = volume.world_from_voxel();
    let inv = crate::core::volume::invert(a)?;
    let col_major =
        |m: &crate::core::Affine| -> Mat4 { std::array::from_fn(|c| std::array::from_fn(|r| m[r][c] as f32)) };
    let tex_to_voxel = [
        [nx, 0.0, 0.0, 0.0],
        [0.0, ny, 0.0, 0.0],
        [0.0, 0.0, nz, 0.0],
        [-0.5, -0.5, -0.5, 1.0],
    ];
    let voxel_to_tex = [
        [1.0 / nx, 0.0, 0.0, 0.0],
        [0.0, 1.0 / ny, 0.0, 0.0],
        [0.0, 0.0, 1.0 / nz, 0.0],
        [0.5 / nx, 0.5 / ny, 0.5 / nz, 1.0],
    ];
    let shift = |d: [f32; 3]| -> Mat4 {
        let mut m = math::IDENTITY;
        m[3] = [d[0], d[1], d[2], 1.0];
        m
    };
    let to_world = math::mul(&shift(offset), &math::mul(&col_major(a), &tex_to_voxel));
    let to_tex = math::mul(&voxel_to_tex, &math::mul(&col_major(&inv), &shift(offset.map(|v| -v))));
    Some((to_world, to_tex))
}

/// The world-space box of the voxels' cells.
pub fn volume_bounds(volume: &Volume) -> Option<([f32; 3], [f32; 3])> {
    let (to_world, _) = tex_world(volume, [0.0; 3])?;
    let mut lo = [f32::INFINITY; 3];
    let mut hi = [f32::NEG_INFINITY; 3];
    for i in 0..8 {
        let c = [(i & 1) as f32, ((i >> 1) & 1) as f32, ((i >> 2) & 1) as f32];
        let w = math::transform_point(&to_world, c);
        for k in 0..3 {
            lo[k] = lo[k].min(w[k]);
            hi[k] = hi[k].max(w[k]);
        }
    }
    Some((lo, hi))
}

pub(super) fn params(volume: &Volume, offset: [f32; 3], look: &VolumeLook) -> VolumeParams {
    let (tex_to_world, world_to_tex) = tex_world(volume, offset).unwrap_or((math::IDENTITY, math::IDENTITY));
    let [nx, ny, nz] = volume.dims().map(|d| d as f32);
    VolumeParams {
        tex_to_world,
        world_to_tex,
        window: [look.lo, look.hi, look.opacity, look.samples as f32],
        dims: [nx, ny, nz, 0.0],
        colormap: colormap_with_curve(look),
    }
}

/// The colormap's 256 colours (linear RGB in [0, 1]) with the opacity curve in alpha: the shader
/// reads both at the same window position.
fn colormap_with_curve(look: &VolumeLook) -> [[f32; 4]; 256] {
    let curve = look.curve.table();
    std::array::from_fn(|i| {
        let [r, g, b, _] = look.colormap.rgba(i as f32 / 255.0).map(|v| v as f32 / 255.0);
        [r, g, b, curve[i]]
    })
}

/// IEEE half-precision bits of `v` (round to nearest; overflow to ±inf, NaN kept), for the
/// `R16Float` texture (filterable on every backend, unlike `R32Float`).
pub fn f16_bits(v: f32) -> u16 {
    let b = v.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let mant = b & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if mant != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // Subnormal half (or zero).
        if e < -10 {
            return sign;
        }
        let m = mant | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = m >> shift;
        let round = (m >> (shift - 1)) & 1;
        return sign | (half + round) as u16;
    }
    let half = sign as u32 | ((e as u32) << 10) | (mant >> 13);
    // Round to nearest (ties away from zero: close enough for display).
    (half + ((mant >> 12) & 1)) as u16
}

/// What the renderer keeps to upload and draw volumes.
pub(super) struct VolumeResources {
    pub pipeline: wgpu::RenderPipeline,
    pub layout: wgpu::BindGroupLayout,
    /// Group 2: the opaque objects' multisampled depth, where rays stop.
    pub depth_layout: wgpu::BindGroupLayout,
    pub sampler: wgpu::Sampler,
    /// The device's largest 3D texture side: bigger grids are strided down to fit.
    pub max_side: u32,
}

impl VolumeResources {
    pub fn new(device: &wgpu::Device, globals_layout: &wgpu::BindGroupLayout) -> Self {
        use super::scene_renderer::{COLOR_FORMAT, DEPTH_FORMAT, SAMPLES};
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("volume.wgsl"),
            source: wgpu::ShaderSource::Wgsl(include_str!("../../shaders/volume.wgsl").into()),
        });
        let entry = |binding, ty| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::VERTEX_FRAGMENT,
            ty,
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("viewport volume"),
            entries: &[
                entry(
                    0,
                    wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                ),
                entry(
                    1,
                    wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Float { filterable: true },
                        view_dimension: wgpu::TextureViewDimension::D3,
                        multisampled: false,
                    },
                ),
                entry(2, wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering)),
            ],
        });
        let depth_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("viewport volume depth"),
            entries: &[wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::FRAGMENT,
                ty: wgpu::BindingType::Texture {
                    sample_type: wgpu::TextureSampleType::Depth,
                    view_dimension: wgpu::TextureViewDimension::D2,
                    multisampled: true,
                },
                count: None,
            }],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("viewport volume"),
            bind_group_layouts: &[Some(globals_layout), Some(&layout), Some(&depth_layout)],
            immediate_size: 0,
        });
        let premultiplied = wgpu::BlendComponent {
            src_factor: wgpu::BlendFactor::One,
            dst_factor: wgpu::BlendFactor::OneMinusSrcAlpha,
            operation: wgpu::BlendOperation::Add,
        };
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("volume"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs_volume"),
                buffers: &[],
                compilation_options: Default::default(),
            },
            // Back faces: every ray that crosses the box has exactly one, even from inside it.
            primitive: wgpu::PrimitiveState {
                cull_mode: Some(wgpu::Face::Front),
                ..Default::default()
            },
            // Drawn after the opaque objects, in a pass whose depth attachment is read-only (the
            // shader reads the same depth as a texture and stops its rays there), so no depth test
            // against the box itself.
            depth_stencil: Some(wgpu::DepthStencilState {
                format: DEPTH_FORMAT,
                depth_write_enabled: Some(false),
                depth_compare: Some(wgpu::CompareFunction::Always),
                stencil: Default::default(),
                bias: Default::default(),
            }),
            multisample: wgpu::MultisampleState {
                count: SAMPLES,
                mask: !0,
                alpha_to_coverage_enabled: false,
            },
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs_volume"),
                targets: &[Some(wgpu::ColorTargetState {
                    format: COLOR_FORMAT,
                    blend: Some(wgpu::BlendState {
                        color: premultiplied,
                        alpha: premultiplied,
                    }),
                    write_mask: wgpu::ColorWrites::ALL,
                })],
                compilation_options: Default::default(),
            }),
            multiview_mask: None,
            cache: None,
        });
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("volume"),
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            ..Default::default()
        });
        Self {
            pipeline,
            layout,
            depth_layout,
            sampler,
            max_side: device.limits().max_texture_dimension_3d,
        }
    }

    /// Group 2 for a frame's depth target (`view` of the depth aspect).
    pub fn depth_bind_group(&self, device: &wgpu::Device, view: &wgpu::TextureView) -> wgpu::BindGroup {
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("volume depth"),
            layout: &self.depth_layout,
            entries: &[wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::TextureView(view),
            }],
        })
    }

    /// The texture (strided to fit the device), its parameter buffer and bind group.
    pub fn upload(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        volume: &Volume,
    ) -> (wgpu::Buffer, wgpu::BindGroup) {
        use wgpu::util::DeviceExt;
        let dims = volume.dims();
        let stride = dims
            .iter()
            .map(|&d| d.div_ceil(self.max_side.max(1) as usize))
            .max()
            .unwrap_or(1)
            .max(1);
        let size = dims.map(|d| d.div_ceil(stride).max(1));
        let frame = volume.frame(0);
        let mut texels = Vec::with_capacity(size[0] * size[1] * size[2]);
        for z in 0..size[2] {
            for y in 0..size[1] {
                for x in 0..size[0] {
                    texels.push(f16_bits(frame[volume.index(x * stride, y * stride, z * stride)]));
                }
            }
        }
        let texture = device.create_texture_with_data(
            queue,
            &wgpu::TextureDescriptor {
                label: Some("volume"),
                size: wgpu::Extent3d {
                    width: size[0] as u32,
                    height: size[1] as u32,
                    depth_or_array_layers: size[2] as u32,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D3,
                format: wgpu::TextureFormat::R16Float,
                usage: wgpu::TextureUsages::TEXTURE_BINDING,
                view_formats: &[],
            },
            wgpu::util::TextureDataOrder::LayerMajor,
            bytemuck::cast_slice(&texels),
        );
        let view = texture.create_view(&Default::default());
        let params = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("volume params"),
            size: size_of::<VolumeParams>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("volume"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::TextureView(&view),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::Sampler(&self.sampler),
                },
            ],
        });
        (params, bind_group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Volume;

    #[test]
    fn half_floats_match_known_bit_patterns() {
        assert_eq!(f16_bits(0.0), 0x0000);
        assert_eq!(f16_bits(1.0), 0x3c00);
        assert_eq!(f16_bits(-2.0), 0xc000);
        assert_eq!(f16_bits(0.5), 0x3800);
        assert_eq!(f16_bits(65504.0), 0x7bff);
        assert_eq!(f16_bits(1e6), 0x7c00);
        assert_eq!(f16_bits(6.0e-8), 0x0001);
        assert_eq!(f16_bits(0.1), 0x2e66);
        assert!(f16_bits(f32::NAN) & 0x7c00 == 0x7c00 && f16_bits(f32::NAN) & 0x3ff != 0);
    }

    #[test]
    fn texture_and_world_coordinates_invert_each_other() {
        let affine = [
            [2.0, 0.0, 0.0, -10.0],
            [0.0, 3.0, 0.0, 5.0],
            [0.0, 0.0, 1.5, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let v = Volume::new([4, 5, 6], 1, [2.0, 3.0, 1.5], affine, vec![0.0; 120]).unwrap();
        let (to_world, to_tex) = tex_world(&v, [1.0, 0.0, 0.0]).unwrap();
        // The centre of voxel (0, 0, 0) is at tex (0.5/4, 0.5/5, 0.5/6) and world (−10, 5, 0) + offset.
        let w = math::transform_point(&to_world, [0.125, 0.1, 1.0 / 12.0]);
        assert!(
            (w[0] + 9.0).abs() < 1e-5 && (w[1] - 5.0).abs() < 1e-5 && w[2].abs() < 1e-5,
            "{w:?}"
        );
        let t = math::transform_point(&to_tex, w);
        assert!((t[0] - 0.125).abs() < 1e-6 && (t[1] - 0.1).abs() < 1e-6);
        let (lo, hi) = volume_bounds(&v).unwrap();
        assert_eq!((lo[0], hi[0]), (-11.0, -3.0));
    }
}
