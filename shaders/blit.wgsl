// Copies the viewport's offscreen image (sRGB-encoded Rgba8Unorm) into egui's render pass.

@group(0) @binding(0) var image: texture_2d<f32>;
@group(0) @binding(1) var image_sampler: sampler;

struct BlitOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

// A triangle that covers the whole viewport (egui sets the viewport to the callback's rect).
@vertex
fn vs_blit(@builtin(vertex_index) vertex: u32) -> BlitOut {
    let x = f32((vertex << 1u) & 2u);
    let y = f32(vertex & 2u);
    var out: BlitOut;
    out.clip = vec4(x * 2.0 - 1.0, 1.0 - y * 2.0, 0.0, 1.0);
    out.uv = vec2(x, y);
    return out;
}

// egui's preferred framebuffers are not sRGB-aware: the encoded bytes go through unchanged.
@fragment
fn fs_blit_gamma(in: BlitOut) -> @location(0) vec4<f32> {
    return textureSample(image, image_sampler, in.uv);
}

// An sRGB framebuffer encodes on write, so decode first.
@fragment
fn fs_blit_linear(in: BlitOut) -> @location(0) vec4<f32> {
    let c = textureSample(image, image_sampler, in.uv);
    let lin = select(pow((c.rgb + 0.055) / 1.055, vec3(2.4)), c.rgb / 12.92, c.rgb <= vec3(0.04045));
    return vec4(lin, c.a);
}
