//! GPU rendering (wgpu only): the 3D viewport, offscreen capture and compute kernels arrive
//! with the 3D-viewport issue. The three-plane viewer draws CPU-colormapped slices through
//! egui textures, which is fast enough for 256³ volumes.
