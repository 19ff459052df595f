//! Mesh files: round trips through every format, GLB structure, fixtures, and bad input (which
//! must give an error, never a panic).

use latent_workbench::core::Mesh;
use latent_workbench::io::IoError;
use latent_workbench::io::mesh::{self, glb, obj, ply, stl};
use serde_json::Value;
use std::path::Path;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mesh")).join(name)
}

/// A UV sphere (closed, outward, poles shared) with every attribute filled in.
fn sphere(rings: usize, segments: usize) -> Mesh {
    let mut m = Mesh::default();
    m.positions.push([0.0, 0.0, 10.0]);
    for r in 1..rings {
        let th = std::f32::consts::PI * r as f32 / rings as f32;
        for s in 0..segments {
            let ph = std::f32::consts::TAU * s as f32 / segments as f32;
            m.positions
                .push([10.0 * th.sin() * ph.cos(), 10.0 * th.sin() * ph.sin(), 10.0 * th.cos()]);
        }
    }
    m.positions.push([0.0, 0.0, -10.0]);
    let ring = |r: usize, s: usize| (1 + (r - 1) * segments + s % segments) as u32;
    let south = (m.positions.len() - 1) as u32;
    for s in 0..segments {
        m.triangles.push([0, ring(1, s), ring(1, s + 1)]);
        m.triangles.push([south, ring(rings - 1, s + 1), ring(rings - 1, s)]);
    }
    for r in 1..rings - 1 {
        for s in 0..segments {
            m.triangles.push([ring(r, s), ring(r + 1, s), ring(r + 1, s + 1)]);
            m.triangles.push([ring(r, s), ring(r + 1, s + 1), ring(r, s + 1)]);
        }
    }
    m.normals = m.positions.iter().map(|p| p.map(|c| c / 10.0)).collect();
    m.colors = (0..m.positions.len())
        .map(|i| {
            [
                (i * 7 % 256) as u8,
                (i * 13 % 256) as u8,
                (i * 29 % 256) as u8,
                (255 - i % 100) as u8,
            ]
        })
        .collect();
    m.scalars = (0..m.positions.len()).map(|i| i as f32 * 0.25 - 3.0).collect();
    m
}

fn tmp(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    (dir, p)
}

#[test]
fn sphere_helper_is_closed_and_outward() {
    let m = sphere(8, 12);
    m.validate().unwrap();
    assert!(m.signed_volume() > 0.0);
}

#[test]
fn obj_round_trip() {
    let m = sphere(8, 12);
    let (_d, p) = tmp("s.obj");
    mesh::write(&p, &m).unwrap();
    let back = mesh::read(&p).unwrap();
    assert_eq!(back.positions, m.positions);
    assert_eq!(back.triangles, m.triangles);
    assert_eq!(back.normals, m.normals);
    // OBJ keeps RGB only; alpha comes back opaque, scalars are lost.
    let rgb: Vec<[u8; 4]> = m.colors.iter().map(|c| [c[0], c[1], c[2], 255]).collect();
    assert_eq!(back.colors, rgb);
    assert!(back.scalars.is_empty());

    // Without attributes.
    let bare = Mesh {
        positions: m.positions.clone(),
        triangles: m.triangles.clone(),
        ..Default::default()
    };
    let mut bytes = Vec::new();
    obj::encode(&bare, &mut bytes).unwrap();
    assert_eq!(obj::decode(&bytes, &p).unwrap(), bare);
}

#[test]
fn ply_round_trips_binary_and_ascii() {
    let m = sphere(8, 12);
    let (_d, p) = tmp("s.ply");
    mesh::write(&p, &m).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    assert!(bytes.starts_with(b"ply\nformat binary_little_endian 1.0\n"));
    assert_eq!(mesh::read(&p).unwrap(), m, "binary keeps everything");
    ply::write_ascii(&p, &m).unwrap();
    assert!(std::fs::read(&p).unwrap().starts_with(b"ply\nformat ascii 1.0\n"));
    assert_eq!(mesh::read(&p).unwrap(), m, "ASCII keeps everything");

    // A point cloud: no face element written, none read.
    let cloud = Mesh {
        positions: m.positions.clone(),
        normals: m.normals.clone(),
        ..Default::default()
    };
    let mut b = Vec::new();
    ply::encode_binary(&cloud, &mut b).unwrap();
    assert!(!String::from_utf8_lossy(&b[..200]).contains("element face"));
    assert_eq!(ply::decode(&b, &p).unwrap(), cloud);
}

#[test]
fn ply_big_endian_with_other_types() {
    // double coordinates, ushort... colours as float, a uint index list with a ushort count, an
    // extra int property on faces and an unknown element with a list in between.
    let mut b = b"ply\nformat binary_big_endian 1.0\nelement vertex 4\nproperty double x\nproperty double y\n\
        property double z\nproperty float red\nproperty float green\nproperty float blue\n\
        property short value\nelement edge 1\nproperty list uchar short ends\nproperty char tag\n\
        element face 1\nproperty int id\nproperty list ushort uint vertex_indices\nend_header\n"
        .to_vec();
    let pts = [[0.0f64, 0.0, 0.0], [2.0, 0.0, 0.0], [2.0, 3.0, 0.0], [0.0, 3.0, 0.5]];
    for (i, p) in pts.iter().enumerate() {
        for c in p {
            b.extend_from_slice(&c.to_be_bytes());
        }
        for c in [1.0f32, 0.5, 0.0] {
            b.extend_from_slice(&c.to_be_bytes());
        }
        b.extend_from_slice(&(i as i16 * -100).to_be_bytes());
    }
    b.push(2);
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&1i16.to_be_bytes());
    b.push(7);
    b.extend_from_slice(&42i32.to_be_bytes());
    b.extend_from_slice(&4u16.to_be_bytes());
    for i in [0u32, 1, 2, 3] {
        b.extend_from_slice(&i.to_be_bytes());
    }
    let m = ply::decode(&b, Path::new("be.ply")).unwrap();
    assert_eq!(m.positions, pts.map(|p| p.map(|c| c as f32)).to_vec());
    assert_eq!(m.triangles, vec![[0, 1, 2], [0, 2, 3]]);
    assert_eq!(m.colors, vec![[255, 128, 0, 255]; 4]);
    assert_eq!(
        m.scalars,
        vec![0.0, -100.0, -200.0, -300.0],
        "a named integer scalar property"
    );
    // Every proper prefix is an error, never a panic.
    for n in 0..b.len() {
        assert!(ply::decode(&b[..n], Path::new("be.ply")).is_err(), "prefix {n}");
    }
}

/// Weld order follows first use in the triangle list: compare triangle by triangle.
fn assert_same_geometry(a: &Mesh, b: &Mesh) {
    assert_eq!(a.positions.len(), b.positions.len());
    assert_eq!(a.triangles.len(), b.triangles.len());
    for (s, t) in a.triangles.iter().zip(&b.triangles) {
        for k in 0..3 {
            assert_eq!(a.positions[s[k] as usize], b.positions[t[k] as usize]);
        }
    }
}

#[test]
fn stl_round_trips_after_weld() {
    let m = sphere(8, 12);
    let (_d, p) = tmp("s.stl");
    mesh::write(&p, &m).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    assert_eq!(bytes.len(), 84 + 50 * m.triangles.len());
    assert!(!bytes.starts_with(b"solid"));
    let back = mesh::read(&p).unwrap();
    assert_same_geometry(&m, &back);
    assert!(back.normals.is_empty() && back.colors.is_empty() && back.scalars.is_empty());
    assert!((back.signed_volume() - m.signed_volume()).abs() < 1e-6);
    // Facet normals point outward.
    for (k, t) in m.triangles.iter().enumerate() {
        let rec = &bytes[84 + 50 * k..];
        let n: Vec<f32> = (0..3)
            .map(|i| f32::from_le_bytes(rec[4 * i..4 * i + 4].try_into().unwrap()))
            .collect();
        let c = t
            .iter()
            .map(|&i| m.positions[i as usize])
            .fold([0.0f32; 3], |a, p| [a[0] + p[0], a[1] + p[1], a[2] + p[2]]);
        assert!(n[0] * c[0] + n[1] * c[1] + n[2] * c[2] > 0.0);
    }
    let mut a = Vec::new();
    stl::encode_ascii(&m, &mut a).unwrap();
    assert!(a.starts_with(b"solid"));
    assert_same_geometry(&m, &stl::decode(&a, &p).unwrap());
}

#[test]
fn glb_structure_and_contents() {
    let m = sphere(6, 10);
    let (_d, p) = tmp("s.glb");
    mesh::write(&p, &m).unwrap();
    let b = std::fs::read(&p).unwrap();
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize;
    assert_eq!(&b[..4], b"glTF");
    assert_eq!(u32_at(4), 2, "version");
    assert_eq!(u32_at(8), b.len(), "total length");
    let json_len = u32_at(12);
    assert_eq!(&b[16..20], b"JSON");
    assert_eq!(json_len % 4, 0);
    let json_bytes = &b[20..20 + json_len];
    let trailing = json_bytes.iter().rev().take_while(|&&c| c == b' ').count();
    assert!(trailing < 4, "padding is spaces, fewer than 4");
    let doc: Value = serde_json::from_slice(json_bytes).unwrap();
    let bin_start = 20 + json_len;
    let bin_len = u32_at(bin_start);
    assert_eq!(&b[bin_start + 4..bin_start + 8], b"BIN\0");
    assert_eq!(bin_len % 4, 0);
    assert_eq!(bin_start + 8 + bin_len, b.len());
    let bin = &b[bin_start + 8..];

    assert_eq!(doc["asset"]["version"], "2.0");
    assert_eq!(doc["asset"]["generator"], "latent-workbench");
    assert_eq!(doc["buffers"][0]["byteLength"].as_u64().unwrap() as usize, bin_len);
    let prim = &doc["meshes"][0]["primitives"][0];
    assert_eq!(prim["mode"], 4);
    let attrs = prim["attributes"].as_object().unwrap();
    for key in ["POSITION", "NORMAL", "COLOR_0", "_SCALAR"] {
        assert!(attrs.contains_key(key), "{key}");
    }
    // Every accessor fits its view; views are aligned and inside the buffer.
    let accessor_bytes = |a: &Value| -> &[u8] {
        let view = &doc["bufferViews"][a["bufferView"].as_u64().unwrap() as usize];
        let (off, len) = (
            view["byteOffset"].as_u64().unwrap() as usize,
            view["byteLength"].as_u64().unwrap() as usize,
        );
        assert_eq!(off % 4, 0);
        assert!(off + len <= bin_len);
        let comp = match a["componentType"].as_u64().unwrap() {
            5126 | 5125 => 4,
            5121 => 1,
            t => panic!("component type {t}"),
        };
        let n = match a["type"].as_str().unwrap() {
            "SCALAR" => 1,
            "VEC3" => 3,
            "VEC4" => 4,
            t => panic!("type {t}"),
        };
        assert_eq!(len, a["count"].as_u64().unwrap() as usize * comp * n, "{a}");
        &bin[off..off + len]
    };
    let accessors = doc["accessors"].as_array().unwrap();
    for a in accessors {
        accessor_bytes(a);
    }
    let get = |i: &Value| &accessors[i.as_u64().unwrap() as usize];
    let pos = get(&attrs["POSITION"]);
    assert_eq!(pos["count"].as_u64().unwrap() as usize, m.positions.len());
    let (lo, hi) = m.bounds().unwrap();
    let as_f32 = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect::<Vec<_>>()
    };
    assert_eq!(as_f32(&pos["min"]), lo.to_vec());
    assert_eq!(as_f32(&pos["max"]), hi.to_vec());
    let floats: Vec<f32> = accessor_bytes(pos)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(floats, m.positions.iter().flatten().copied().collect::<Vec<_>>());
    let col = get(&attrs["COLOR_0"]);
    assert_eq!(col["normalized"], true);
    assert_eq!(
        accessor_bytes(col),
        m.colors.iter().flatten().copied().collect::<Vec<_>>()
    );
    let idx = get(&prim["indices"]);
    assert_eq!(idx["count"].as_u64().unwrap() as usize, 3 * m.triangles.len());
    let ids: Vec<u32> = accessor_bytes(idx)
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(ids, m.triangles.iter().flatten().copied().collect::<Vec<_>>());
    assert_eq!(
        doc["bufferViews"][idx["bufferView"].as_u64().unwrap() as usize]["target"],
        34963
    );

    // Minimal mesh without attributes: only POSITION and indices; a point cloud is POINTS.
    let bare = Mesh {
        positions: vec![[0.0; 3], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
        triangles: vec![[0, 1, 2]],
        ..Default::default()
    };
    let mut out = Vec::new();
    glb::encode(&bare, &mut out).unwrap();
    let doc: Value =
        serde_json::from_slice(&out[20..20 + u32::from_le_bytes(out[12..16].try_into().unwrap()) as usize]).unwrap();
    assert_eq!(
        doc["meshes"][0]["primitives"][0]["attributes"]
            .as_object()
            .unwrap()
            .len(),
        1
    );
    let cloud = Mesh {
        triangles: vec![],
        ..bare
    };
    let mut out = Vec::new();
    glb::encode(&cloud, &mut out).unwrap();
    let doc: Value =
        serde_json::from_slice(&out[20..20 + u32::from_le_bytes(out[12..16].try_into().unwrap()) as usize]).unwrap();
    assert_eq!(doc["meshes"][0]["primitives"][0]["mode"], 0);
    assert!(doc["meshes"][0]["primitives"][0].get("indices").is_none());
}

#[test]
fn fixtures_read() {
    let cube = mesh::read(&fixture("cube_quads.obj")).unwrap();
    assert_eq!(cube.positions.len(), 8);
    assert_eq!(cube.triangles.len(), 12);
    assert!((cube.signed_volume() - 1.0).abs() < 1e-6);
    assert!((cube.area() - 6.0).abs() < 1e-6);
    // Some faces lack normals: recomputed from the winding, so they point outward.
    for (p, n) in cube.positions.iter().zip(&cube.normals) {
        let d: f32 = (0..3).map(|k| (p[k] - 0.5) * n[k]).sum();
        assert!(d > 0.0);
    }

    let tetra = mesh::read(&fixture("tetra_ascii.ply")).unwrap();
    assert_eq!(tetra.triangles.len(), 4);
    assert!((tetra.signed_volume() - 1.0 / 6.0).abs() < 1e-7);
    assert_eq!(tetra.colors[2], [0, 0, 255, 128]);
    assert_eq!(tetra.scalars, vec![0.5, 1.5, 2.5, 3.5]);

    let stl_tetra = mesh::read(&fixture("tetra_ascii.stl")).unwrap();
    assert_eq!(stl_tetra.positions.len(), 4, "welded");
    assert!((stl_tetra.signed_volume() - 1.0 / 6.0).abs() < 1e-7);

    let cloud = mesh::read(&fixture("points.ply")).unwrap();
    assert!(cloud.triangles.is_empty());
    assert_eq!(cloud.positions[0], [1.5, 2.5, 3.5]);
    assert_eq!(cloud.normals[1], [1.0, 0.0, 0.0]);
}

/// Deterministic pseudo-random bytes (no rand dependency).
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 56) as u8
        })
        .collect()
}

type Decoder = fn(&[u8], &Path) -> Result<Mesh, IoError>;

#[test]
fn bad_input_never_panics() {
    let p = Path::new("bad");
    let decoders: [(&str, Decoder); 3] = [("obj", obj::decode), ("ply", ply::decode), ("stl", stl::decode)];
    for (name, decode) in decoders {
        // Random bytes, also behind a plausible header.
        for seed in 0..200u64 {
            let mut b = noise(seed, (seed as usize * 37) % 3000);
            let _ = decode(&b, p);
            let header: &[u8] = match name {
                "ply" => b"ply\nformat binary_little_endian 1.0\nelement vertex 5\nproperty float x\nproperty float y\nproperty float z\nelement face 3\nproperty list uchar int vertex_indices\nend_header\n",
                "obj" => b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf ",
                _ => b"solid ",
            };
            b.splice(0..0, header.iter().copied());
            let _ = decode(&b, p);
        }
        assert!(decode(b"", p).is_err() || name == "obj", "{name}: empty");
    }
    // An empty OBJ is a valid, empty mesh; empty PLY and STL are errors.
    assert_eq!(obj::decode(b"", p).unwrap(), Mesh::default());
    for (name, e) in [
        ("ply", ply::decode(b"", p).unwrap_err()),
        ("stl", stl::decode(b"", p).unwrap_err()),
    ] {
        assert!(e.to_string().contains("empty"), "{name}: {e}");
    }

    // Every truncation of valid binary files is an error, and of text files never a panic.
    let m = sphere(3, 4);
    let mut bin_ply = Vec::new();
    ply::encode_binary(&m, &mut bin_ply).unwrap();
    let mut bin_stl = Vec::new();
    stl::encode_binary(&m, &mut bin_stl).unwrap();
    for n in 0..bin_ply.len() {
        assert!(ply::decode(&bin_ply[..n], p).is_err(), "ply prefix {n}");
    }
    for n in 0..bin_stl.len() {
        assert!(stl::decode(&bin_stl[..n], p).is_err(), "stl prefix {n}");
    }
    let mut text = Vec::new();
    obj::encode(&m, &mut text).unwrap();
    let mut ascii_ply = Vec::new();
    ply::encode_ascii(&m, &mut ascii_ply).unwrap();
    let mut ascii_stl = Vec::new();
    stl::encode_ascii(&m, &mut ascii_stl).unwrap();
    for n in 0..text.len() {
        let _ = obj::decode(&text[..n], p);
    }
    for n in 0..ascii_ply.len() {
        let _ = ply::decode(&ascii_ply[..n], p);
    }
    for n in 0..ascii_stl.len() {
        let _ = stl::decode(&ascii_stl[..n], p);
    }
}

#[test]
fn absurd_counts_are_refused_before_allocating() {
    let p = Path::new("huge");
    let e = ply::decode(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 4000000000\nproperty float x\nend_header\n",
        p,
    )
    .unwrap_err();
    assert!(matches!(e, IoError::TooLarge { .. }), "{e}");
    let e = ply::decode(b"ply\nformat ascii 1.0\nelement vertex 1000000000\nproperty float x\nproperty float y\nproperty float z\nend_header\n1 2 3\n", p)
        .unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    // A face list claiming 4 billion entries.
    let mut b = b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nelement face 1\nproperty list uint int vertex_indices\nend_header\n".to_vec();
    b.extend_from_slice(&[0; 12]);
    b.extend_from_slice(&u32::MAX.to_le_bytes());
    let e = ply::decode(&b, p).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    // Binary STL header claiming 4 billion triangles.
    let mut b = vec![b' '; 80];
    b.extend_from_slice(&u32::MAX.to_le_bytes());
    b.extend_from_slice(&[0; 50]);
    let e = stl::decode(&b, p).unwrap_err();
    assert!(
        matches!(e, IoError::TooLarge { .. }) || e.to_string().contains("truncated"),
        "{e}"
    );
}

#[test]
fn out_of_range_indices_name_the_face() {
    let p = Path::new("idx");
    let e = obj::decode(b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\nf 1 2 -4\n", p)
        .unwrap_err()
        .to_string();
    assert!(e.contains("face 2"), "{e}");
    let e = ply::decode(
        b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n\
          element face 2\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n3 0 1 3\n",
        p,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("face 1 refers to vertex 3"), "{e}");
    let e = ply::decode(
        b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n\
          element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 -1 2\n",
        p,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("face 0 refers to vertex -1"), "{e}");
    // Writers refuse an invalid mesh rather than panicking.
    let bad = Mesh {
        positions: vec![[0.0; 3]],
        triangles: vec![[0, 0, 7]],
        ..Default::default()
    };
    let mut sink = Vec::new();
    assert!(obj::encode(&bad, &mut sink).is_err());
    assert!(ply::encode_binary(&bad, &mut sink).is_err());
    assert!(ply::encode_ascii(&bad, &mut sink).is_err());
    assert!(stl::encode_binary(&bad, &mut sink).is_err());
    assert!(stl::encode_ascii(&bad, &mut sink).is_err());
    assert!(glb::encode(&bad, &mut sink).is_err());
}
