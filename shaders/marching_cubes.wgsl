// Marching cubes as three compute passes (src/render/marching_cubes_gpu.rs drives them). It mirrors
// the CPU version (src/methods/isosurface/marching_cubes.rs) step for step: the same case tables
// (core::isosurface::tables), the same asymptotic decider on ambiguous faces, the same extra vertex
// inside a cube for the few entries that need one, and the same interpolation and gradient normals.
//
// One invocation per voxel `v` (flat index x + nx * (y + ny * z)). A voxel owns the three grid edges
// leaving it along +x, +y, +z and the cube (cell) whose lowest corner it is. Its vertices are, in
// order: its crossed x edge, y edge, z edge, then its cell's centre vertex if the cell needs one.
//
// 1. `classify`: the crossed owned edges, the cell's table entry, and per workgroup (256 voxels) the
//    sums of vertex and triangle counts. The host reads those sums back (it must know the output sizes
//    to allocate anyway), scans them and writes each workgroup's first vertex and triangle back.
// 2. `vertices`: a workgroup scan gives each voxel its first vertex id; it stores that id and writes
//    its vertices (position and normal, 6 floats).
// 3. `triangles`: another scan gives each cell its first triangle; the cell looks its edges' vertex
//    ids up in the owners' first ids.
//
// Dispatches are 2D (x * y workgroups) because 256³ voxels need 65 536 workgroups, one more than the
// 65 535 a dimension may have.

struct Params {
    // nx, ny, nz, number of voxels
    dims: vec4<u32>,
    level: f32,
    // 1: values at or below the level are inside
    below: u32,
    // 1: the affine flips handedness, so each triangle's winding is reversed
    flip: u32,
    // 0: the affine is singular and every normal is marked unusable
    normals_ok: u32,
    // rows of world_from_voxel (x, y, z rows; w is the translation)
    affine0: vec4<f32>,
    affine1: vec4<f32>,
    affine2: vec4<f32>,
    // rows of the normal matrix (inverse transpose of the linear part)
    normal0: vec4<f32>,
    normal1: vec4<f32>,
    normal2: vec4<f32>,
};

// Layout of `tables`: ambiguous faces of the 256 cases, then the 16 385 entry starts, then the
// edges (one u32 each; 12 is the centre vertex).
const AMBIGUOUS: u32 = 0u;
const START: u32 = 256u;
const EDGES: u32 = 16641u; // 256 + 256 * 64 + 1
const CENTRE: u32 = 12u;
const WG: u32 = 256u;

// Bits of an `info` word: owned crossed edges (bits 0-2), centre vertex (bit 3), table entry
// (bits 4-17), active cell (bit 18).
const ACTIVE: u32 = 0x40000u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read> tables: array<u32>;
@group(0) @binding(3) var<storage, read_write> info: array<u32>;
// Pass 1 writes (vertex count, triangle count) per workgroup; the host replaces them by the
// workgroup's first vertex and first triangle.
@group(0) @binding(4) var<storage, read_write> blocks: array<u32>;
@group(0) @binding(5) var<storage, read_write> first_vertex: array<u32>;
@group(0) @binding(6) var<storage, read_write> vertices: array<f32>;
@group(0) @binding(7) var<storage, read_write> triangles: array<u32>;

var<workgroup> scan_buf: array<vec2<u32>, 256>;

// Exclusive prefix sum over the workgroup (Hillis-Steele); afterwards scan_buf[255] is the total.
fn workgroup_scan(lid: u32, value: vec2<u32>) -> vec2<u32> {
    scan_buf[lid] = value;
    workgroupBarrier();
    for (var off = 1u; off < WG; off = off << 1u) {
        var add = vec2<u32>(0u, 0u);
        if lid >= off {
            add = scan_buf[lid - off];
        }
        workgroupBarrier();
        scan_buf[lid] = scan_buf[lid] + add;
        workgroupBarrier();
    }
    return scan_buf[lid] - value;
}

fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// The field signed so that inside is positive (or zero for `below`).
fn signed_value(i: u32) -> f32 {
    let v = values[i];
    if params.below == 1u {
        return params.level - v;
    }
    return v - params.level;
}

fn is_inside(i: u32) -> bool {
    let v = values[i];
    if params.below == 1u {
        return params.level - v >= 0.0;
    }
    return v - params.level > 0.0;
}

fn coords(i: u32) -> vec3<u32> {
    let nx = params.dims.x;
    let ny = params.dims.y;
    return vec3<u32>(i % nx, (i / nx) % ny, i / (nx * ny));
}

fn flat(p: vec3<u32>) -> u32 {
    return p.x + params.dims.x * (p.y + params.dims.y * p.z);
}

fn stride(axis: u32) -> u32 {
    if axis == 0u {
        return 1u;
    }
    if axis == 1u {
        return params.dims.x;
    }
    return params.dims.x * params.dims.y;
}

// The two axes other than `axis`, in increasing order.
fn other_axes(axis: u32) -> vec2<u32> {
    if axis == 0u {
        return vec2<u32>(1u, 2u);
    }
    if axis == 1u {
        return vec2<u32>(0u, 2u);
    }
    return vec2<u32>(0u, 1u);
}

fn unit(axis: u32) -> vec3<u32> {
    var u = vec3<u32>(0u, 0u, 0u);
    u[axis] = 1u;
    return u;
}

// Bit f set when the bilinear interpolant's saddle on ambiguous face f is inside.
fn decide(cell: vec3<u32>, amb: u32) -> u32 {
    var s: array<f32, 8>;
    for (var c = 0u; c < 8u; c++) {
        s[c] = signed_value(flat(cell + vec3<u32>(c & 1u, (c >> 1u) & 1u, c >> 2u)));
    }
    var bits = 0u;
    for (var f = 0u; f < 6u; f++) {
        if ((amb >> f) & 1u) == 0u {
            continue;
        }
        let axis = f >> 1u;
        let side = f & 1u;
        let uv = other_axes(axis);
        let base = side << axis;
        let a = s[base];
        let b = s[base | (1u << uv.x)];
        let c = s[base | (1u << uv.x) | (1u << uv.y)];
        let d = s[base | (1u << uv.y)];
        let saddle = (a * c - b * d) / (a + c - b - d);
        if saddle > 0.0 || (params.below == 1u && saddle == 0.0) {
            bits |= 1u << f;
        }
    }
    return bits;
}

@compute @workgroup_size(256)
fn classify(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let group = group_index(wid, nwg);
    let i = group * WG + lid;
    var counts = vec2<u32>(0u, 0u);
    if i < params.dims.w {
        let p = coords(i);
        let me = is_inside(i);
        var word = 0u;
        for (var axis = 0u; axis < 3u; axis++) {
            if p[axis] + 1u < params.dims[axis] && is_inside(i + stride(axis)) != me {
                word |= 1u << axis;
            }
        }
        counts.x = countOneBits(word);
        if p.x + 1u < params.dims.x && p.y + 1u < params.dims.y && p.z + 1u < params.dims.z {
            var case_index = 0u;
            for (var c = 0u; c < 8u; c++) {
                if is_inside(flat(p + vec3<u32>(c & 1u, (c >> 1u) & 1u, c >> 2u))) {
                    case_index |= 1u << c;
                }
            }
            if case_index != 0u && case_index != 255u {
                let amb = tables[AMBIGUOUS + case_index];
                var faces = 0u;
                if amb != 0u {
                    faces = decide(p, amb);
                }
                let k = case_index * 64u + faces;
                let s0 = tables[START + k];
                let s1 = tables[START + k + 1u];
                var centre = 0u;
                for (var e = s0; e < s1; e++) {
                    if tables[EDGES + e] == CENTRE {
                        centre = 1u;
                    }
                }
                word |= ACTIVE | (k << 4u) | (centre << 3u);
                counts.x += centre;
                counts.y = (s1 - s0) / 3u;
            }
        }
        info[i] = word;
    }
    workgroup_scan(lid, counts);
    if lid == 0u && group * WG < params.dims.w {
        let total = scan_buf[WG - 1u];
        blocks[2u * group] = total.x;
        blocks[2u * group + 1u] = total.y;
    }
}

fn counts_of(word: u32) -> vec2<u32> {
    if (word & ACTIVE) == 0u {
        return vec2<u32>(countOneBits(word & 7u), 0u);
    }
    let k = (word >> 4u) & 0x3fffu;
    let ntri = (tables[START + k + 1u] - tables[START + k]) / 3u;
    return vec2<u32>(countOneBits(word & 7u) + ((word >> 3u) & 1u), ntri);
}

struct Vertex {
    position: vec3<f32>,
    normal: vec3<f32>,
    // false when the gradient is unusable (the host repairs those normals)
    ok: bool,
};

// Gradient of the field at voxel p (central differences, one-sided at the border), in voxel units,
// signed like the CPU version (negated for `below`).
fn gradient(p: vec3<u32>, ip: u32) -> vec3<f32> {
    var g = vec3<f32>(0.0, 0.0, 0.0);
    for (var k = 0u; k < 3u; k++) {
        var lo = ip;
        var hi = ip;
        var h = 0.0;
        if p[k] > 0u {
            lo = ip - stride(k);
            h += 1.0;
        }
        if p[k] + 1u < params.dims[k] {
            hi = ip + stride(k);
            h += 1.0;
        }
        if h > 0.0 {
            g[k] = (values[hi] - values[lo]) / h;
        }
    }
    if params.below == 1u {
        return -g;
    }
    return g;
}

// The vertex on the edge from voxel a to its neighbour along `axis`.
fn edge_vertex(a: vec3<u32>, axis: u32) -> Vertex {
    let b = a + unit(axis);
    let ia = flat(a);
    let ib = flat(b);
    let sa = signed_value(ia);
    let sb = signed_value(ib);
    var t = sa / (sa - sb);
    if !(t >= 0.0 && t <= 1.0) {
        t = 0.5;
    }
    var p = vec3<f32>(a);
    p[axis] += t;
    let q = vec4<f32>(p, 1.0);
    var out: Vertex;
    out.position = vec3<f32>(dot(params.affine0, q), dot(params.affine1, q), dot(params.affine2, q));
    out.normal = vec3<f32>(0.0, 0.0, 0.0);
    out.ok = false;
    if params.normals_ok == 1u {
        // Outward is where the signed field decreases.
        let g = -(gradient(a, ia) * (1.0 - t) + gradient(b, ib) * t);
        let n = vec3<f32>(dot(params.normal0.xyz, g), dot(params.normal1.xyz, g), dot(params.normal2.xyz, g));
        let len = length(n);
        if len > 0.0 && len < 3.0e38 {
            out.normal = n / len;
            out.ok = true;
        }
    }
    return out;
}

fn write_vertex(id: u32, v: Vertex) {
    let o = 6u * id;
    vertices[o] = v.position.x;
    vertices[o + 1u] = v.position.y;
    vertices[o + 2u] = v.position.z;
    // A zero normal marks an unusable one (a good one has unit length).
    vertices[o + 3u] = v.normal.x;
    vertices[o + 4u] = v.normal.y;
    vertices[o + 5u] = v.normal.z;
}

// The extra vertex inside the cell: the mean of the vertices of the loop around it.
fn centre_vertex(cell: vec3<u32>, k: u32) -> Vertex {
    let s0 = tables[START + k];
    let s1 = tables[START + k + 1u];
    var loop_edges = 0u;
    for (var t = s0; t < s1; t += 3u) {
        let e0 = tables[EDGES + t];
        let e1 = tables[EDGES + t + 1u];
        let e2 = tables[EDGES + t + 2u];
        if e0 == CENTRE || e1 == CENTRE || e2 == CENTRE {
            loop_edges |= ((1u << e0) | (1u << e1) | (1u << e2)) & 0xfffu;
        }
    }
    var p = vec3<f32>(0.0, 0.0, 0.0);
    var n = vec3<f32>(0.0, 0.0, 0.0);
    var count = 0.0;
    var ok = true;
    for (var e = 0u; e < 12u; e++) {
        if ((loop_edges >> e) & 1u) == 0u {
            continue;
        }
        let dir = e >> 2u;
        let ab = other_axes(dir);
        var v = cell;
        v[ab.x] += e & 1u;
        v[ab.y] += (e >> 1u) & 1u;
        let vert = edge_vertex(v, dir);
        p += vert.position;
        n += vert.normal;
        ok = ok && vert.ok;
        count += 1.0;
    }
    var out: Vertex;
    out.position = p / count;
    out.normal = vec3<f32>(0.0, 0.0, 0.0);
    out.ok = false;
    let len = length(n);
    if ok && len > 0.0 && len < 3.0e38 {
        out.normal = n / len;
        out.ok = true;
    }
    return out;
}

@compute @workgroup_size(256)
fn emit_vertices(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let group = group_index(wid, nwg);
    let i = group * WG + lid;
    var word = 0u;
    if i < params.dims.w {
        word = info[i];
    }
    let local = workgroup_scan(lid, counts_of(word));
    if i >= params.dims.w {
        return;
    }
    var id = blocks[2u * group] + local.x;
    first_vertex[i] = id;
    let p = coords(i);
    for (var axis = 0u; axis < 3u; axis++) {
        if ((word >> axis) & 1u) == 1u {
            write_vertex(id, edge_vertex(p, axis));
            id += 1u;
        }
    }
    if ((word >> 3u) & 1u) == 1u {
        write_vertex(id, centre_vertex(p, (word >> 4u) & 0x3fffu));
    }
}

// The vertex id of edge e (12: the centre) of the cell whose lowest corner is voxel i at p.
fn edge_id(i: u32, p: vec3<u32>, e: u32) -> u32 {
    if e == CENTRE {
        return first_vertex[i] + countOneBits(info[i] & 7u);
    }
    let dir = e >> 2u;
    let ab = other_axes(dir);
    var owner = p;
    owner[ab.x] += e & 1u;
    owner[ab.y] += (e >> 1u) & 1u;
    let o = flat(owner);
    let before = info[o] & ((1u << dir) - 1u);
    return first_vertex[o] + countOneBits(before);
}

@compute @workgroup_size(256)
fn emit_triangles(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let group = group_index(wid, nwg);
    let i = group * WG + lid;
    var word = 0u;
    if i < params.dims.w {
        word = info[i];
    }
    let local = workgroup_scan(lid, counts_of(word));
    if i >= params.dims.w || (word & ACTIVE) == 0u {
        return;
    }
    var tri = blocks[2u * group + 1u] + local.y;
    let p = coords(i);
    let k = (word >> 4u) & 0x3fffu;
    let s0 = tables[START + k];
    let s1 = tables[START + k + 1u];
    for (var t = s0; t < s1; t += 3u) {
        let a = edge_id(i, p, tables[EDGES + t]);
        let b = edge_id(i, p, tables[EDGES + t + 1u]);
        let c = edge_id(i, p, tables[EDGES + t + 2u]);
        let o = 3u * tri;
        triangles[o] = a;
        if params.flip == 1u {
            triangles[o + 1u] = c;
            triangles[o + 2u] = b;
        } else {
            triangles[o + 1u] = b;
            triangles[o + 2u] = c;
        }
        tri += 1u;
    }
}
