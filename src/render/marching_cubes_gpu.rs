//! Marching cubes as a wgpu compute kernel (`shaders/marching_cubes.wgsl`), for the live
//! iso-level: the field stays on the GPU, so a new level costs three dispatches and a read-back.
//!
//! The result equals the CPU `methods::isosurface::marching_cubes` (same tables from
//! [`crate::core::isosurface::tables`], same decider, same interpolation and normals, in `f32`
//! instead of `f64` for the interpolation and the affine): the same triangles and one welded vertex
//! per crossed grid edge, in world coordinates. Only the order differs; it is deterministic here:
//! vertices by owning voxel (x, y, z edge, then the cell's centre vertex), triangles by cell.
//!
//! The prefix sums are split: each workgroup of 256 voxels scans its own counts on the GPU, and
//! the per-workgroup totals (2 × 65 536 numbers for 256³) are read back and scanned on the CPU. The
//! host has to read the totals anyway to size the output buffers, and a read-back of 512 KiB costs
//! less than a multi-level GPU scan would save.

use super::scene_renderer::RenderError;
use crate::core::isosurface::Inside;
use crate::core::isosurface::repair_nan_normals;
use crate::core::isosurface::tables::{FACE_CHOICES, tables};
use crate::core::volume::invert;
use crate::core::{Affine, Mesh, Volume};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Voxels per workgroup (`WG` in the shader).
const WG: u64 = 256;
/// Storage buffers the `emit_vertices` pass binds.
pub const STORAGE_BUFFERS_NEEDED: u32 = 6;

/// Where the time of the last [`GpuMarchingCubes::extract`] (and field upload) went, in seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct McTimings {
    /// Copying the field to the GPU (zero when the field was already there).
    pub upload_s: f64,
    /// The three passes, the block-sum read-back and its scan.
    pub compute_s: f64,
    /// Copying vertices and triangles back and building the mesh.
    pub readback_s: f64,
}

/// The uniform block of the shader (`Params` in `marching_cubes.wgsl`; 128 bytes).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    dims: [u32; 4],
    level: f32,
    below: u32,
    flip: u32,
    normals_ok: u32,
    affine: [[f32; 4]; 3],
    normal: [[f32; 4]; 3],
}
const _: () = assert!(std::mem::size_of::<Params>() == 128);

/// Buffers sized to one field, kept until a field of another size comes.
struct FieldBuffers {
    dims: [usize; 3],
    values: wgpu::Buffer,
    info: wgpu::Buffer,
    first_vertex: wgpu::Buffer,
    blocks: wgpu::Buffer,
    blocks_readback: wgpu::Buffer,
    n_blocks: u64,
}

/// A storage buffer and its read-back twin, grown as meshes grow.
struct Output {
    buffer: wgpu::Buffer,
    readback: wgpu::Buffer,
    size: u64,
}

/// Marching cubes on the GPU with its pipelines and its buffers kept between calls.
///
/// ```ignore
/// let mut mc = GpuMarchingCubes::new(&device)?;
/// mc.set_field(&device, &queue, volume.frame(0), volume.dims())?;
/// let mesh = mc.extract(&device, &queue, level, Inside::Above, volume.world_from_voxel())?;
/// ```
pub struct GpuMarchingCubes {
    classify: wgpu::ComputePipeline,
    vertices: wgpu::ComputePipeline,
    triangles: wgpu::ComputePipeline,
    tables: wgpu::Buffer,
    params: wgpu::Buffer,
    field: Option<FieldBuffers>,
    vertex_out: Option<Output>,
    triangle_out: Option<Output>,
    timings: McTimings,
}

/// [`GpuMarchingCubes`] shared between threads for a live iso-level (the app's job threads): it
/// holds the device and queue, builds the pipelines on first use, and keeps the field of the
/// volume it last meshed on the GPU, so moving the level of the same volume uploads nothing.
#[derive(Clone)]
pub struct LiveMarchingCubes {
    device: wgpu::Device,
    queue: wgpu::Queue,
    state: Arc<Mutex<LiveState>>,
}

#[derive(Default)]
struct LiveState {
    mc: Option<GpuMarchingCubes>,
    /// The volume whose first frame is on the GPU; held, so its address stays its own.
    field: Option<Arc<Volume>>,
}

impl LiveMarchingCubes {
    pub fn new(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        Self {
            device,
            queue,
            state: Arc::default(),
        }
    }

    /// The iso-surface of `volume`'s first frame at `level` (see [`GpuMarchingCubes::extract`]),
    /// with the timings of this call.
    pub fn extract(&self, volume: &Arc<Volume>, level: f32, inside: Inside) -> Result<(Mesh, McTimings), RenderError> {
        // A panic while meshing poisons the lock; the state is rebuilt rather than trusted.
        let mut state = self.state.lock().unwrap_or_else(|poisoned| {
            let mut s = poisoned.into_inner();
            *s = LiveState::default();
            s
        });
        if state.mc.is_none() {
            state.mc = Some(GpuMarchingCubes::new(&self.device)?);
        }
        let LiveState { mc, field } = &mut *state;
        let mc = mc.as_mut().expect("built above");
        let uploaded = if field.as_ref().is_some_and(|f| Arc::ptr_eq(f, volume)) {
            0.0
        } else {
            *field = None;
            mc.set_field(&self.device, &self.queue, volume.frame(0), volume.dims())?;
            *field = Some(volume.clone());
            mc.timings().upload_s
        };
        let mesh = mc.extract(&self.device, &self.queue, level, inside, volume.world_from_voxel())?;
        let timings = McTimings {
            upload_s: uploaded,
            ..mc.timings()
        };
        Ok((mesh, timings))
    }
}

fn err(e: impl std::fmt::Display) -> RenderError {
    RenderError::Compute(e.to_string())
}

impl GpuMarchingCubes {
    /// Builds the pipelines and uploads the case tables. The device needs 6 storage buffers per
    /// shader stage (wgpu's default limits allow 8; the downlevel defaults only 4).
    pub fn new(device: &wgpu::Device) -> Result<Self, RenderError> {
        let have = device.limits().max_storage_buffers_per_shader_stage;
        if have < STORAGE_BUFFERS_NEEDED {
            return Err(err(format!(
                "the device allows {have} storage buffers per shader stage, marching cubes needs {STORAGE_BUFFERS_NEEDED}"
            )));
        }
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("marching cubes"),
            source: wgpu::ShaderSource::Wgsl(include_str!("../../shaders/marching_cubes.wgsl").into()),
        });
        let pipeline = |entry: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let (classify, vertices, triangles) = (
            pipeline("classify"),
            pipeline("emit_vertices"),
            pipeline("emit_triangles"),
        );
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(RenderError::Pipeline(e.to_string()));
        }

        let t = tables();
        debug_assert_eq!(t.start.len(), 256 * FACE_CHOICES + 1);
        let mut words: Vec<u32> = t.ambiguous.iter().map(|&a| u32::from(a)).collect();
        words.extend_from_slice(&t.start);
        words.extend(t.edges.iter().map(|&e| u32::from(e)));
        use wgpu::util::DeviceExt;
        let tables = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("marching cubes tables"),
            contents: bytemuck::cast_slice(&words),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let params = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("marching cubes params"),
            size: std::mem::size_of::<Params>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Self {
            classify,
            vertices,
            triangles,
            tables,
            params,
            field: None,
            vertex_out: None,
            triangle_out: None,
            timings: McTimings::default(),
        })
    }

    /// The timings of the last [`Self::set_field`] + [`Self::extract`].
    pub fn timings(&self) -> McTimings {
        self.timings
    }

    /// Copies a field (`dims[0] * dims[1] * dims[2]` values, x fastest) to the GPU, reusing the
    /// buffers when the size is unchanged.
    pub fn set_field(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        values: &[f32],
        dims: [usize; 3],
    ) -> Result<(), RenderError> {
        let start = Instant::now();
        let n = dims.iter().product::<usize>();
        if values.len() != n {
            return Err(err(format!(
                "{} values for a {}×{}×{} grid",
                values.len(),
                dims[0],
                dims[1],
                dims[2]
            )));
        }
        let limits = device.limits();
        let bytes = (n.max(1) * 4) as u64;
        let max = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        if bytes > max {
            return Err(err(format!(
                "a {}×{}×{} grid needs {bytes}-byte buffers; this GPU binds at most {max}",
                dims[0], dims[1], dims[2]
            )));
        }
        if self.field.as_ref().is_none_or(|f| f.dims != dims) {
            let storage = |label, size| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                })
            };
            let n_blocks = (n as u64).div_ceil(WG).max(1);
            self.field = Some(FieldBuffers {
                dims,
                values: storage("marching cubes field", bytes),
                info: storage("marching cubes cell info", bytes),
                first_vertex: storage("marching cubes first vertex", bytes),
                blocks: storage("marching cubes block sums", n_blocks * 8),
                blocks_readback: device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("marching cubes block sums read-back"),
                    size: n_blocks * 8,
                    usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
                    mapped_at_creation: false,
                }),
                n_blocks,
            });
        }
        let field = self.field.as_ref().expect("made above");
        if n > 0 {
            queue.write_buffer(&field.values, 0, bytemuck::cast_slice(values));
        }
        queue.submit([]);
        device.poll(wgpu::PollType::wait_indefinitely()).map_err(err)?;
        self.timings = McTimings {
            upload_s: start.elapsed().as_secs_f64(),
            ..Default::default()
        };
        Ok(())
    }

    /// Uploads the field and extracts the surface: [`Self::set_field`] then [`Self::extract`].
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        values: &[f32],
        dims: [usize; 3],
        level: f32,
        inside: Inside,
        world_from_voxel: &Affine,
    ) -> Result<Mesh, RenderError> {
        self.set_field(device, queue, values, dims)?;
        let upload = self.timings.upload_s;
        let mesh = self.extract(device, queue, level, inside, world_from_voxel)?;
        self.timings.upload_s = upload;
        Ok(mesh)
    }

    /// The iso-surface of the field last given to [`Self::set_field`] at `level`, with vertices
    /// in world coordinates (`world_from_voxel` applied to voxel indices). See the CPU
    /// `methods::isosurface::marching_cubes` for the contract; the result is the same mesh up to
    /// the order of vertices and triangles (and `f32` rounding of positions and normals).
    pub fn extract(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        level: f32,
        inside: Inside,
        world_from_voxel: &Affine,
    ) -> Result<Mesh, RenderError> {
        self.timings = McTimings::default();
        let Some(field) = &self.field else {
            return Err(err("no field: call set_field first"));
        };
        let dims = field.dims;
        if dims.iter().any(|&d| d < 2) {
            return Ok(Mesh::default());
        }
        let start = Instant::now();
        let n = dims.iter().product::<usize>() as u32;
        queue.write_buffer(
            &self.params,
            0,
            bytemuck::bytes_of(&params(dims, n, level, inside, world_from_voxel)),
        );

        // 2D dispatch: at most 65 535 workgroups a dimension.
        let max_dim = u64::from(device.limits().max_compute_workgroups_per_dimension);
        let gx = field.n_blocks.min(max_dim);
        let gy = field.n_blocks.div_ceil(gx);
        if gy > max_dim {
            return Err(err("the grid needs more workgroups than this GPU dispatches"));
        }
        let (gx, gy) = (gx as u32, gy as u32);

        let bind = |pipeline: &wgpu::ComputePipeline, extra: &[(u32, &wgpu::Buffer)]| {
            let mut entries = vec![
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: self.params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: self.tables.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: field.info.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: field.blocks.as_entire_binding(),
                },
            ];
            for &(binding, buffer) in extra {
                entries.push(wgpu::BindGroupEntry {
                    binding,
                    resource: buffer.as_entire_binding(),
                });
            }
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            })
        };
        let dispatch =
            |encoder: &mut wgpu::CommandEncoder, pipeline: &wgpu::ComputePipeline, group: &wgpu::BindGroup| {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, group, &[]);
                pass.dispatch_workgroups(gx, gy, 1);
            };

        // Pass 1 and the block sums' read-back.
        let classify = bind(&self.classify, &[(1, &field.values)]);
        let mut encoder = device.create_command_encoder(&Default::default());
        dispatch(&mut encoder, &self.classify, &classify);
        encoder.copy_buffer_to_buffer(&field.blocks, 0, &field.blocks_readback, 0, field.n_blocks * 8);
        queue.submit([encoder.finish()]);
        let sums: Vec<u32> = read(device, &field.blocks_readback, field.n_blocks * 8)?;
        let mut offsets = Vec::with_capacity(sums.len());
        let (mut nv, mut nt) = (0u64, 0u64);
        for pair in sums.chunks_exact(2) {
            offsets.extend([nv as u32, nt as u32]);
            nv += u64::from(pair[0]);
            nt += u64::from(pair[1]);
        }
        if nv > u64::from(u32::MAX) || nt * 3 > u64::from(u32::MAX) {
            return Err(err(format!("{nv} vertices and {nt} triangles overflow 32-bit indices")));
        }
        if nv == 0 || nt == 0 {
            self.timings.compute_s = start.elapsed().as_secs_f64();
            return Ok(Mesh::default());
        }
        queue.write_buffer(&field.blocks, 0, bytemuck::cast_slice(&offsets));

        let max = device
            .limits()
            .max_storage_buffer_binding_size
            .min(device.limits().max_buffer_size);
        let vertex_bytes = nv * 24;
        let triangle_bytes = nt * 12;
        if vertex_bytes.max(triangle_bytes) > max {
            return Err(err(format!(
                "{nv} vertices and {nt} triangles need more than the {max} bytes a buffer may bind"
            )));
        }
        grow(
            device,
            &mut self.vertex_out,
            vertex_bytes,
            max,
            "marching cubes vertices",
        );
        grow(
            device,
            &mut self.triangle_out,
            triangle_bytes,
            max,
            "marching cubes triangles",
        );
        let (vout, tout) = (
            self.vertex_out.as_ref().expect("grown"),
            self.triangle_out.as_ref().expect("grown"),
        );

        // Passes 2 and 3.
        let vertices = bind(
            &self.vertices,
            &[(1, &field.values), (5, &field.first_vertex), (6, &vout.buffer)],
        );
        let triangles = bind(&self.triangles, &[(5, &field.first_vertex), (7, &tout.buffer)]);
        let mut encoder = device.create_command_encoder(&Default::default());
        dispatch(&mut encoder, &self.vertices, &vertices);
        dispatch(&mut encoder, &self.triangles, &triangles);
        queue.submit([encoder.finish()]);
        device.poll(wgpu::PollType::wait_indefinitely()).map_err(err)?;
        let computed = Instant::now();
        self.timings.compute_s = (computed - start).as_secs_f64();

        // Read-back.
        let mut encoder = device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&vout.buffer, 0, &vout.readback, 0, vertex_bytes);
        encoder.copy_buffer_to_buffer(&tout.buffer, 0, &tout.readback, 0, triangle_bytes);
        queue.submit([encoder.finish()]);
        let verts: Vec<f32> = read(device, &vout.readback, vertex_bytes)?;
        let tris: Vec<u32> = read(device, &tout.readback, triangle_bytes)?;
        let mut bad = false;
        let mut positions = Vec::with_capacity(nv as usize);
        let mut normals = Vec::with_capacity(nv as usize);
        for v in verts.chunks_exact(6) {
            positions.push([v[0], v[1], v[2]]);
            let normal = if v[3] == 0.0 && v[4] == 0.0 && v[5] == 0.0 {
                bad = true;
                [f32::NAN; 3]
            } else {
                [v[3], v[4], v[5]]
            };
            normals.push(normal);
        }
        let mut mesh = Mesh {
            positions,
            normals,
            triangles: tris.chunks_exact(3).map(|t| [t[0], t[1], t[2]]).collect(),
            ..Default::default()
        };
        if bad {
            repair_nan_normals(&mut mesh);
        }
        self.timings.readback_s = computed.elapsed().as_secs_f64();
        Ok(mesh)
    }
}

fn params(dims: [usize; 3], n: u32, level: f32, inside: Inside, a: &Affine) -> Params {
    let det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
        + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
    let inv = invert(a);
    let row = |r: usize| [a[r][0] as f32, a[r][1] as f32, a[r][2] as f32, a[r][3] as f32];
    // Normals transform with the inverse transpose of the linear part: row r is column r of the
    // inverse.
    let normal_row = |r: usize| inv.map_or([0.0; 4], |m| [m[0][r] as f32, m[1][r] as f32, m[2][r] as f32, 0.0]);
    Params {
        dims: [dims[0] as u32, dims[1] as u32, dims[2] as u32, n],
        level,
        below: u32::from(inside == Inside::Below),
        flip: u32::from(det < 0.0),
        normals_ok: u32::from(inv.is_some()),
        affine: [row(0), row(1), row(2)],
        normal: [normal_row(0), normal_row(1), normal_row(2)],
    }
}

/// Makes sure `out` holds at least `bytes` (with headroom, up to `max`).
fn grow(device: &wgpu::Device, out: &mut Option<Output>, bytes: u64, max: u64, label: &str) {
    if out.as_ref().is_some_and(|o| o.size >= bytes) {
        return;
    }
    let size = (bytes + bytes / 4)
        .min(max)
        .next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT);
    let make = |usage| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: false,
        })
    };
    *out = Some(Output {
        buffer: make(wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC),
        readback: make(wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ),
        size,
    });
}

/// Maps the first `bytes` of a read-back buffer (after the submitted copy) and copies them out.
fn read<T: bytemuck::Pod>(device: &wgpu::Device, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<T>, RenderError> {
    let slice = buffer.slice(..bytes);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| RenderError::Readback(e.to_string()))?;
    rx.recv()
        .map_err(|e| RenderError::Readback(e.to_string()))?
        .map_err(|e| RenderError::Readback(e.to_string()))?;
    let out = {
        let mapped = slice
            .get_mapped_range()
            .map_err(|e| RenderError::Readback(e.to_string()))?;
        bytemuck::cast_slice::<u8, T>(&mapped).to_vec()
    };
    buffer.unmap();
    Ok(out)
}
