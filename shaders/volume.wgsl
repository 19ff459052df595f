// Ray-marched volume rendering (src/render/volume_pass.rs): the back faces of the volume's box are
// drawn, each fragment marches from where its eye ray enters the box to where it leaves, front to
// back, with a windowed colormap as colour and the opacity curve (the colormap table's alpha: a
// ramp by default) times the opacity per voxel as the transfer function.
// Rays stop at the opaque objects already drawn (their depth, sample 0 of the multisampled depth
// buffer), so a mesh inside a volume hides what lies behind it. Output is premultiplied and
// sRGB-encoded like mesh.wgsl.

struct Globals {
    view_proj: mat4x4<f32>,
    eye: vec4<f32>,
    clip_plane: vec4<f32>,
    viewport: vec4<f32>,
};

struct VolumeParams {
    // Texture coordinates ([0, 1]³ over the voxel centres' cells) to world mm, and back.
    tex_to_world: mat4x4<f32>,
    world_to_tex: mat4x4<f32>,
    // lo, hi of the window; opacity of one voxel at the top of the window; samples per ray.
    window: vec4<f32>,
    // Grid size in voxels.
    dims: vec4<f32>,
    colormap: array<vec4<f32>, 256>,
};

@group(0) @binding(0) var<uniform> globals: Globals;
@group(1) @binding(0) var<uniform> params: VolumeParams;
@group(1) @binding(1) var volume_tex: texture_3d<f32>;
@group(1) @binding(2) var volume_sampler: sampler;
@group(2) @binding(0) var scene_depth: texture_depth_multisampled_2d;

struct VolumeOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) tex: vec3<f32>,
};

@vertex
fn vs_volume(@builtin(vertex_index) vertex: u32) -> VolumeOut {
    // 12 triangles of the unit cube, corner bits (x, y, z).
    var corners = array<u32, 36>(
        0u, 2u, 1u, 1u, 2u, 3u, 4u, 5u, 6u, 5u, 7u, 6u,
        0u, 1u, 4u, 1u, 5u, 4u, 2u, 6u, 3u, 3u, 6u, 7u,
        0u, 4u, 2u, 2u, 4u, 6u, 1u, 3u, 5u, 3u, 7u, 5u,
    );
    let c = corners[vertex];
    let tex = vec3(f32(c & 1u), f32((c >> 1u) & 1u), f32((c >> 2u) & 1u));
    var out: VolumeOut;
    out.clip = globals.view_proj * (params.tex_to_world * vec4(tex, 1.0));
    out.tex = tex;
    return out;
}

@fragment
fn fs_volume(in: VolumeOut) -> @location(0) vec4<f32> {
    let eye = (params.world_to_tex * vec4(globals.eye.xyz, 1.0)).xyz;
    var dir = in.tex - eye;
    dir = select(dir, vec3(1e-7), abs(dir) < vec3(1e-7));
    let t0 = (vec3(0.0) - eye) / dir;
    let t1 = (vec3(1.0) - eye) / dir;
    let near = min(t0, t1);
    let far = max(t0, t1);
    let enter = max(max(max(near.x, near.y), near.z), 0.0);
    let leave = min(min(far.x, far.y), far.z);
    if leave <= enter {
        discard;
    }
    let steps = max(u32(params.window.w), 1u);
    let dt = (leave - enter) / f32(steps);
    // Opacity is given per voxel: correct it for the step's length in voxels.
    let step_voxels = max(length(dir * dt * params.dims.xyz), 1e-4);
    let lo = params.window.x;
    let span = max(params.window.y - params.window.x, 1e-20);
    let n = globals.clip_plane.xyz;
    // Texture coordinates straight to clip space, to compare each sample's depth with the scene's.
    let tex_to_clip = globals.view_proj * params.tex_to_world;
    let opaque_depth = textureLoad(scene_depth, vec2<i32>(in.clip.xy), 0);
    var color = vec3(0.0);
    var alpha = 0.0;
    for (var i = 0u; i < steps; i++) {
        let p = eye + dir * (enter + (f32(i) + 0.5) * dt);
        let clip = tex_to_clip * vec4(p, 1.0);
        if clip.z >= opaque_depth * clip.w {
            break;
        }
        if dot(n, n) > 0.0 {
            let w = (params.tex_to_world * vec4(p, 1.0)).xyz;
            if dot(n, w) + globals.clip_plane.w < 0.0 {
                continue;
            }
        }
        let v = textureSampleLevel(volume_tex, volume_sampler, p, 0.0).r;
        let t = clamp((v - lo) / span, 0.0, 1.0);
        // Colour and the opacity curve's factor at this window position.
        let entry = params.colormap[u32(round(t * 255.0))];
        if entry.a <= 0.0 {
            continue;
        }
        let a = 1.0 - pow(1.0 - clamp(params.window.z * entry.a, 0.0, 0.999), step_voxels);
        let c = entry.rgb;
        color += (1.0 - alpha) * a * c;
        alpha += (1.0 - alpha) * a;
        if alpha > 0.99 {
            break;
        }
    }
    if alpha <= 0.0 {
        discard;
    }
    return vec4(color, alpha);
}
