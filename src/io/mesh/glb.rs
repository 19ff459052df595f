//! glTF 2.0 binary (`.glb`) export: one mesh, one primitive; a motion sequence as morph targets
//! with an animation ([`encode_animated`]).
//!
//! Attributes: `POSITION` (float VEC3 with the `min`/`max` the spec requires), `NORMAL` when
//! present (re-normalised; zero normals become +z since glTF requires unit length), `COLOR_0`
//! (normalised unsigned-byte VEC4) when present, and the scalar as the application-specific
//! `_SCALAR` (float SCALAR) when present. Indices are `u32`. A mesh without triangles is written as
//! a `POINTS` primitive. Coordinates are written as they are (world mm); glTF viewers assume
//! metres and +Y up, so a model may look large or lie on its side.

use super::check_writable;
use crate::core::{Mesh, MotionSequence};
use serde_json::{Value, json};
use std::io::Write;

const MAGIC: u32 = 0x4654_6C67; // "glTF"
const CHUNK_JSON: u32 = 0x4E4F_534A; // "JSON"
const CHUNK_BIN: u32 = 0x004E_4942; // "BIN\0"
const FLOAT: u32 = 5126;
const UNSIGNED_BYTE: u32 = 5121;
const UNSIGNED_INT: u32 = 5125;
const ARRAY_BUFFER: u32 = 34962;
const ELEMENT_ARRAY_BUFFER: u32 = 34963;

/// The binary chunk and the buffer views and accessors over it, as a file is assembled.
#[derive(Default)]
struct Builder {
    bin: Vec<u8>,
    views: Vec<Value>,
    accessors: Vec<Value>,
}

impl Builder {
    /// Appends a 4-byte-aligned buffer view (with `target` when it holds vertex or index data)
    /// and an accessor over it; returns the accessor index.
    fn add(&mut self, bytes: Vec<u8>, target: Option<u32>, mut accessor: Value) -> usize {
        self.pad();
        let mut view = json!({
            "buffer": 0,
            "byteOffset": self.bin.len(),
            "byteLength": bytes.len(),
        });
        if let Some(t) = target {
            view["target"] = json!(t);
        }
        self.views.push(view);
        self.bin.extend_from_slice(&bytes);
        accessor["bufferView"] = json!(self.views.len() - 1);
        self.accessors.push(accessor);
        self.accessors.len() - 1
    }

    fn pad(&mut self) {
        while !self.bin.len().is_multiple_of(4) {
            self.bin.push(0);
        }
    }

    /// A VEC3 float vertex attribute; `bounds` adds the `min`/`max` that POSITION needs.
    fn vec3(&mut self, values: impl Iterator<Item = [f32; 3]>, count: usize, bounds: bool) -> usize {
        let values: Vec<[f32; 3]> = values.collect();
        let mut accessor = json!({"componentType": FLOAT, "count": count, "type": "VEC3"});
        if bounds && let Some((lo, hi)) = crate::core::mesh::bounds(&values) {
            accessor["min"] = json!(lo);
            accessor["max"] = json!(hi);
        }
        self.add(f32_bytes(values.into_iter().flatten()), Some(ARRAY_BUFFER), accessor)
    }

    /// Writes the document (with the buffer when anything was added) as a `.glb`.
    fn finish(mut self, mut doc: Value, w: &mut dyn Write) -> std::io::Result<()> {
        self.pad();
        if !self.accessors.is_empty() {
            doc["accessors"] = json!(self.accessors);
            doc["bufferViews"] = json!(self.views);
            doc["buffers"] = json!([{"byteLength": self.bin.len()}]);
        }
        let mut text = serde_json::to_vec(&doc).map_err(std::io::Error::other)?;
        while !text.len().is_multiple_of(4) {
            text.push(b' ');
        }
        let bin = self.bin;
        let bin_chunk = if bin.is_empty() { 0 } else { 8 + bin.len() };
        let total = 12 + 8 + text.len() + bin_chunk;
        let total = u32::try_from(total)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "too large for a .glb (4 GiB)"))?;
        w.write_all(&MAGIC.to_le_bytes())?;
        w.write_all(&2u32.to_le_bytes())?;
        w.write_all(&total.to_le_bytes())?;
        w.write_all(&(text.len() as u32).to_le_bytes())?;
        w.write_all(&CHUNK_JSON.to_le_bytes())?;
        w.write_all(&text)?;
        if !bin.is_empty() {
            w.write_all(&(bin.len() as u32).to_le_bytes())?;
            w.write_all(&CHUNK_BIN.to_le_bytes())?;
            w.write_all(&bin)?;
        }
        Ok(())
    }

    /// The primitive's index accessor (TRIANGLES) or the POINTS mode when there are no faces.
    fn faces(&mut self, triangles: &[[u32; 3]], primitive: &mut Value) {
        if triangles.is_empty() {
            primitive["mode"] = json!(0); // POINTS
            return;
        }
        let mut idx = Vec::with_capacity(triangles.len() * 12);
        for i in triangles.iter().flatten() {
            idx.extend_from_slice(&i.to_le_bytes());
        }
        let a = self.add(
            idx,
            Some(ELEMENT_ARRAY_BUFFER),
            json!({"componentType": UNSIGNED_INT, "count": triangles.len() * 3, "type": "SCALAR"}),
        );
        primitive["indices"] = json!(a);
        primitive["mode"] = json!(4); // TRIANGLES
    }
}

/// glTF requires unit normals: re-normalised, zero or non-finite ones become +z.
fn unit_normal(v: &[f32; 3]) -> [f32; 3] {
    let len = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    if len > 0.0 && len.is_finite() {
        [v[0] / len, v[1] / len, v[2] / len]
    } else {
        [0.0, 0.0, 1.0]
    }
}

fn header() -> Value {
    json!({
        "asset": {"version": "2.0", "generator": "latent-workbench"},
        "scene": 0,
    })
}

pub fn encode(mesh: &Mesh, w: &mut dyn Write) -> std::io::Result<()> {
    check_writable(mesh)?;
    let mut b = Builder::default();
    let n = mesh.positions.len();
    let mut doc = header();
    if n == 0 {
        doc["scenes"] = json!([{"nodes": []}]);
        return b.finish(doc, w);
    }
    let mut primitive = json!({ "attributes": {} });
    let pos = b.vec3(mesh.positions.iter().copied(), n, true);
    primitive["attributes"]["POSITION"] = json!(pos);
    if !mesh.normals.is_empty() {
        let a = b.vec3(mesh.normals.iter().map(unit_normal), n, false);
        primitive["attributes"]["NORMAL"] = json!(a);
    }
    if !mesh.colors.is_empty() {
        let a = b.add(
            mesh.colors.iter().flatten().copied().collect(),
            Some(ARRAY_BUFFER),
            json!({"componentType": UNSIGNED_BYTE, "normalized": true, "count": n, "type": "VEC4"}),
        );
        primitive["attributes"]["COLOR_0"] = json!(a);
    }
    if !mesh.scalars.is_empty() {
        let a = b.add(
            f32_bytes(mesh.scalars.iter().copied()),
            Some(ARRAY_BUFFER),
            json!({"componentType": FLOAT, "count": n, "type": "SCALAR"}),
        );
        primitive["attributes"]["_SCALAR"] = json!(a);
    }
    b.faces(&mesh.triangles, &mut primitive);
    doc["scenes"] = json!([{"nodes": [0]}]);
    doc["nodes"] = json!([{"mesh": 0}]);
    doc["meshes"] = json!([{"primitives": [primitive]}]);
    b.finish(doc, w)
}

/// A motion sequence as one animated `.glb`: frame 0 is the base mesh (or point set), every later
/// frame a morph target (POSITION and, for meshes, NORMAL deltas from frame 0) named `frame_K`,
/// and one animation that steps the weights through the frames at the sequence's rate — linear
/// between neighbouring one-hot weight vectors, which is exactly linear interpolation between
/// frames. Points must correspond across frames (constant count).
pub fn encode_animated(seq: &MotionSequence, w: &mut dyn Write) -> std::io::Result<()> {
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
    seq.validate()
        .map_err(|e| invalid(format!("cannot write an invalid sequence: {e}")))?;
    let n = seq
        .corresponding()
        .ok_or_else(|| invalid("frames have different point counts, so they cannot be morph targets".into()))?;
    if n == 0 {
        return Err(invalid("the sequence has no points".into()));
    }
    let mut b = Builder::default();
    let frames = seq.len();
    let normals: Vec<Vec<[f32; 3]>> = if seq.is_mesh() {
        (0..frames)
            .map(|t| {
                let mesh = Mesh {
                    positions: seq.frames[t].clone(),
                    triangles: seq.triangles.clone(),
                    ..Default::default()
                };
                mesh.vertex_normals().iter().map(unit_normal).collect()
            })
            .collect()
    } else {
        Vec::new()
    };

    let mut primitive = json!({ "attributes": {} });
    primitive["attributes"]["POSITION"] = json!(b.vec3(seq.frames[0].iter().copied(), n, true));
    if let Some(base) = normals.first() {
        primitive["attributes"]["NORMAL"] = json!(b.vec3(base.iter().copied(), n, false));
    }
    let delta = |a: &[[f32; 3]], b: &[[f32; 3]]| -> Vec<[f32; 3]> {
        a.iter()
            .zip(b)
            .map(|(p, q)| [q[0] - p[0], q[1] - p[1], q[2] - p[2]])
            .collect()
    };
    let mut targets = Vec::with_capacity(frames - 1);
    for t in 1..frames {
        let mut target = json!({});
        let d = delta(&seq.frames[0], &seq.frames[t]);
        target["POSITION"] = json!(b.vec3(d.into_iter(), n, true));
        if !normals.is_empty() {
            let d = delta(&normals[0], &normals[t]);
            target["NORMAL"] = json!(b.vec3(d.into_iter(), n, false));
        }
        targets.push(target);
    }
    if !targets.is_empty() {
        primitive["targets"] = json!(targets);
    }
    b.faces(&seq.triangles, &mut primitive);

    let mut mesh = json!({"primitives": [primitive]});
    let mut doc = header();
    doc["scenes"] = json!([{"nodes": [0]}]);
    doc["nodes"] = json!([{"mesh": 0}]);
    if frames > 1 {
        let names: Vec<String> = (1..frames).map(|t| format!("frame_{t}")).collect();
        mesh["weights"] = json!(vec![0.0; frames - 1]);
        mesh["extras"] = json!({"targetNames": names});
        let times: Vec<f32> = (0..frames).map(|t| t as f32 / seq.fps).collect();
        let input = b.add(
            f32_bytes(times.iter().copied()),
            None,
            json!({"componentType": FLOAT, "count": frames, "type": "SCALAR",
                   "min": [times[0]], "max": [times[frames - 1]]}),
        );
        // Keyframe t: weight 1 on target t (frame t), 0 elsewhere; keyframe 0 is all zeros.
        let weights = (0..frames).flat_map(|k| (1..frames).map(move |t| if t == k { 1.0 } else { 0.0 }));
        let output = b.add(
            f32_bytes(weights),
            None,
            json!({"componentType": FLOAT, "count": frames * (frames - 1), "type": "SCALAR"}),
        );
        doc["animations"] = json!([{
            "name": "motion",
            "samplers": [{"input": input, "output": output, "interpolation": "LINEAR"}],
            "channels": [{"sampler": 0, "target": {"node": 0, "path": "weights"}}],
        }]);
    }
    doc["meshes"] = json!([mesh]);
    b.finish(doc, w)
}

fn f32_bytes(values: impl Iterator<Item = f32>) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.size_hint().0 * 4);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_mesh_is_a_valid_glb() {
        let mut b = Vec::new();
        encode(&Mesh::default(), &mut b).unwrap();
        assert_eq!(&b[..4], b"glTF");
        assert_eq!(u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize, b.len());
        let len = u32::from_le_bytes(b[12..16].try_into().unwrap()) as usize;
        assert_eq!(b.len(), 20 + len);
        let doc: Value = serde_json::from_slice(&b[20..]).unwrap();
        assert_eq!(doc["asset"]["version"], "2.0");
    }
}
