// Wireframe overlays and the axis gizmo (src/render/scene_renderer.rs): unlit lines in one
// colour per vertex, written sRGB-encoded like mesh.wgsl.

struct Globals {
    view_proj: mat4x4<f32>,
    eye: vec4<f32>,
    clip_plane: vec4<f32>,
    viewport: vec4<f32>,
};

struct LineObject {
    offset: vec4<f32>,
    color: vec4<f32>,
};

@group(0) @binding(0) var<uniform> globals: Globals;
@group(1) @binding(0) var<uniform> line: LineObject;

struct LineOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) world: vec3<f32>,
    @location(1) color: vec4<f32>,
};

// Wireframe: positions from the mesh's own vertex buffer, colour from the object.
@vertex
fn vs_wire(@location(0) position: vec3<f32>) -> LineOut {
    var out: LineOut;
    let world = position + line.offset.xyz;
    out.clip = globals.view_proj * vec4(world, 1.0);
    out.world = world;
    out.color = line.color;
    return out;
}

// Gizmo: a position and a colour per vertex.
@vertex
fn vs_colored(@location(0) position: vec3<f32>, @location(1) color: vec4<f32>) -> LineOut {
    var out: LineOut;
    out.clip = globals.view_proj * vec4(position, 1.0);
    out.world = position;
    out.color = color;
    return out;
}

@fragment
fn fs_line(in: LineOut) -> @location(0) vec4<f32> {
    let n = globals.clip_plane.xyz;
    if dot(n, n) > 0.0 && dot(n, in.world) + globals.clip_plane.w < 0.0 {
        discard;
    }
    return in.color;
}
