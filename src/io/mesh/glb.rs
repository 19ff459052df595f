//! glTF 2.0 binary (`.glb`) export: one mesh, one primitive.
//!
//! Attributes: `POSITION` (float VEC3 with the `min`/`max` the spec requires), `NORMAL` when
//! present (re-normalised; zero normals become +z since glTF requires unit length), `COLOR_0`
//! (normalised unsigned-byte VEC4) when present, and the scalar as the application-specific
//! `_SCALAR` (float SCALAR) when present. Indices are `u32`. A mesh without triangles is written as
//! a `POINTS` primitive. Coordinates are written as they are (world mm); glTF viewers assume
//! metres and +Y up, so a model may look large or lie on its side.

use super::check_writable;
use crate::core::Mesh;
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

pub fn encode(mesh: &Mesh, w: &mut dyn Write) -> std::io::Result<()> {
    check_writable(mesh)?;
    let mut bin: Vec<u8> = Vec::new();
    let mut views: Vec<Value> = Vec::new();
    let mut accessors: Vec<Value> = Vec::new();
    let n = mesh.positions.len();

    // Appends a 4-byte-aligned buffer view and an accessor over it; returns the accessor index.
    let mut add = |bytes: Vec<u8>, target: u32, mut accessor: Value| -> usize {
        while !bin.len().is_multiple_of(4) {
            bin.push(0);
        }
        views.push(json!({
            "buffer": 0,
            "byteOffset": bin.len(),
            "byteLength": bytes.len(),
            "target": target,
        }));
        bin.extend_from_slice(&bytes);
        accessor["bufferView"] = json!(views.len() - 1);
        accessors.push(accessor);
        accessors.len() - 1
    };

    let mut primitive = json!({ "attributes": {} });
    if n > 0 {
        let (lo, hi) = mesh.bounds().unwrap_or(([0.0; 3], [0.0; 3]));
        let pos = add(
            f32_bytes(mesh.positions.iter().flatten().copied()),
            ARRAY_BUFFER,
            json!({"componentType": FLOAT, "count": n, "type": "VEC3", "min": lo, "max": hi}),
        );
        primitive["attributes"]["POSITION"] = json!(pos);
        if !mesh.normals.is_empty() {
            let unit = mesh.normals.iter().flat_map(|v| {
                let len = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
                if len > 0.0 && len.is_finite() {
                    [v[0] / len, v[1] / len, v[2] / len]
                } else {
                    [0.0, 0.0, 1.0]
                }
            });
            let a = add(
                f32_bytes(unit),
                ARRAY_BUFFER,
                json!({"componentType": FLOAT, "count": n, "type": "VEC3"}),
            );
            primitive["attributes"]["NORMAL"] = json!(a);
        }
        if !mesh.colors.is_empty() {
            let a = add(
                mesh.colors.iter().flatten().copied().collect(),
                ARRAY_BUFFER,
                json!({"componentType": UNSIGNED_BYTE, "normalized": true, "count": n, "type": "VEC4"}),
            );
            primitive["attributes"]["COLOR_0"] = json!(a);
        }
        if !mesh.scalars.is_empty() {
            let a = add(
                f32_bytes(mesh.scalars.iter().copied()),
                ARRAY_BUFFER,
                json!({"componentType": FLOAT, "count": n, "type": "SCALAR"}),
            );
            primitive["attributes"]["_SCALAR"] = json!(a);
        }
        if mesh.triangles.is_empty() {
            primitive["mode"] = json!(0); // POINTS
        } else {
            let mut idx = Vec::with_capacity(mesh.triangles.len() * 12);
            for i in mesh.triangles.iter().flatten() {
                idx.extend_from_slice(&i.to_le_bytes());
            }
            let a = add(
                idx,
                ELEMENT_ARRAY_BUFFER,
                json!({"componentType": UNSIGNED_INT, "count": mesh.triangles.len() * 3, "type": "SCALAR"}),
            );
            primitive["indices"] = json!(a);
            primitive["mode"] = json!(4); // TRIANGLES
        }
    }
    while !bin.len().is_multiple_of(4) {
        bin.push(0);
    }

    let mut doc = json!({
        "asset": {"version": "2.0", "generator": "latent-workbench"},
        "scene": 0,
    });
    if n > 0 {
        doc["scenes"] = json!([{"nodes": [0]}]);
        doc["nodes"] = json!([{"mesh": 0}]);
        doc["meshes"] = json!([{"primitives": [primitive]}]);
        doc["accessors"] = json!(accessors);
        doc["bufferViews"] = json!(views);
        doc["buffers"] = json!([{"byteLength": bin.len()}]);
    } else {
        doc["scenes"] = json!([{"nodes": []}]);
    }
    let mut text = serde_json::to_vec(&doc).map_err(std::io::Error::other)?;
    while !text.len().is_multiple_of(4) {
        text.push(b' ');
    }

    let bin_chunk = if bin.is_empty() { 0 } else { 8 + bin.len() };
    let total = 12 + 8 + text.len() + bin_chunk;
    let total = u32::try_from(total)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "mesh too large for a .glb (4 GiB)"))?;
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
