// Triangle meshes and point sprites of the 3D viewport (src/render/scene_renderer.rs).
// Output is sRGB-encoded into an Rgba8Unorm target, so the offscreen PNG and the egui blit are
// plain copies of it.

struct Globals {
    view_proj: mat4x4<f32>,
    eye: vec4<f32>,
    // Plane n·p + d = 0; fragments with n·p + d < 0 are cut away. n = 0 turns clipping off.
    clip_plane: vec4<f32>,
    // Target width and height in pixels, point size in pixels, unused.
    viewport: vec4<f32>,
};

struct Object {
    offset: vec4<f32>,
    base_color: vec4<f32>,
    // lo, hi of the colormap window; use per-vertex scalars (1) or not (0); flat shading (1).
    scalar: vec4<f32>,
    // use per-vertex colours (1) or not (0).
    flags: vec4<f32>,
    colormap: array<vec4<f32>, 256>,
};

@group(0) @binding(0) var<uniform> globals: Globals;
@group(1) @binding(0) var<uniform> object: Object;

struct VertexOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) world: vec3<f32>,
    @location(1) normal: vec3<f32>,
    @location(2) color: vec4<f32>,
};

fn srgb_to_linear(c: vec3<f32>) -> vec3<f32> {
    return select(pow((c + 0.055) / 1.055, vec3(2.4)), c / 12.92, c <= vec3(0.04045));
}

fn linear_to_srgb(c: vec3<f32>) -> vec3<f32> {
    let x = clamp(c, vec3(0.0), vec3(1.0));
    return select(1.055 * pow(x, vec3(1.0 / 2.4)) - 0.055, x * 12.92, x <= vec3(0.0031308));
}

// The colour of a vertex before lighting, linear RGB.
fn albedo(scalar: f32, rgba: vec4<f32>) -> vec4<f32> {
    if object.scalar.z > 0.5 {
        let lo = object.scalar.x;
        let hi = object.scalar.y;
        let t = clamp((scalar - lo) / max(hi - lo, 1e-20), 0.0, 1.0);
        let c = object.colormap[u32(round(t * 255.0))];
        return vec4(srgb_to_linear(c.rgb), 1.0);
    }
    if object.flags.x > 0.5 {
        return vec4(srgb_to_linear(rgba.rgb), rgba.a);
    }
    return vec4(srgb_to_linear(object.base_color.rgb), object.base_color.a);
}

fn clipped(world: vec3<f32>) -> bool {
    let n = globals.clip_plane.xyz;
    return dot(n, n) > 0.0 && dot(n, world) + globals.clip_plane.w < 0.0;
}

// A headlight (from the eye) with a little fill from above, two-sided.
fn shade(albedo: vec3<f32>, n_in: vec3<f32>, world: vec3<f32>) -> vec3<f32> {
    let v = normalize(globals.eye.xyz - world);
    var n = normalize(n_in);
    if dot(n, v) < 0.0 {
        n = -n;
    }
    let key = max(dot(n, v), 0.0);
    let fill = 0.5 + 0.5 * n.z;
    // The light sits at the eye, so the half vector is the view vector.
    let spec = pow(key, 48.0) * 0.25;
    return albedo * (0.18 + 0.67 * key + 0.15 * fill) + vec3(spec);
}

@vertex
fn vs_mesh(
    @location(0) position: vec3<f32>,
    @location(1) normal: vec3<f32>,
    @location(2) scalar: f32,
    @location(3) color: vec4<f32>,
) -> VertexOut {
    var out: VertexOut;
    let world = position + object.offset.xyz;
    out.clip = globals.view_proj * vec4(world, 1.0);
    out.world = world;
    out.normal = normal;
    out.color = albedo(scalar, color);
    return out;
}

@fragment
fn fs_mesh(in: VertexOut) -> @location(0) vec4<f32> {
    if clipped(in.world) {
        discard;
    }
    var n = in.normal;
    if object.scalar.w > 0.5 || dot(n, n) < 1e-12 {
        // Flat shading: the face normal from the screen-space derivatives of the position.
        n = cross(dpdx(in.world), dpdy(in.world));
    }
    return vec4(linear_to_srgb(shade(in.color.rgb, n, in.world)), 1.0);
}

struct PointOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) world: vec3<f32>,
    @location(1) corner: vec2<f32>,
    @location(2) color: vec4<f32>,
};

// One screen-aligned square per point instance, six vertices each, shaded as a small sphere.
@vertex
fn vs_points(
    @builtin(vertex_index) vertex: u32,
    @location(0) position: vec3<f32>,
    @location(1) scalar: f32,
    @location(2) color: vec4<f32>,
) -> PointOut {
    var corners = array<vec2<f32>, 6>(
        vec2(-1.0, -1.0), vec2(1.0, -1.0), vec2(1.0, 1.0),
        vec2(-1.0, -1.0), vec2(1.0, 1.0), vec2(-1.0, 1.0),
    );
    let c = corners[vertex % 6u];
    var out: PointOut;
    let world = position + object.offset.xyz;
    let centre = globals.view_proj * vec4(world, 1.0);
    let half_px = 0.5 * globals.viewport.z;
    let ndc_per_px = vec2(2.0 / globals.viewport.x, 2.0 / globals.viewport.y);
    out.clip = centre + vec4(c * half_px * ndc_per_px * centre.w, 0.0, 0.0);
    out.world = world;
    out.corner = c;
    out.color = albedo(scalar, color);
    return out;
}

@fragment
fn fs_points(in: PointOut) -> @location(0) vec4<f32> {
    let r2 = dot(in.corner, in.corner);
    if r2 > 1.0 || clipped(in.world) {
        discard;
    }
    let bulge = sqrt(1.0 - r2);
    let light = 0.35 + 0.65 * bulge;
    return vec4(linear_to_srgb(in.color.rgb * light), 1.0);
}
