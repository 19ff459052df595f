//! GPU rendering (wgpu only): the 3D viewport's scene renderer, its orbit camera, and offscreen
//! capture for the CLI and the tests, and marching cubes as a compute kernel
//! ([`GpuMarchingCubes`]). The app embeds the same renderer through an egui paint
//! callback (`app::panels::viewport3d`). The three-plane viewer draws CPU-colormapped slices
//! through egui textures and needs none of this.

pub mod camera;
pub mod marching_cubes_gpu;
pub mod math;
pub mod motion;
pub mod offscreen;
pub mod scene;
pub mod scene_renderer;
mod volume_pass;

pub use camera::{OrbitCamera, ViewPreset};
pub use marching_cubes_gpu::{GpuMarchingCubes, LiveMarchingCubes, McTimings};
pub use offscreen::{Gpu, Offscreen, render_image, render_rgba};
pub use scene::{Arrangement, ClipPlane, Coloring, Geometry, RenderSettings, Scene, SceneObject, Shading};
pub use scene_renderer::{COLOR_FORMAT, RenderError, SceneRenderer};
