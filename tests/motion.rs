//! 4D sequences: reading (folders of frames, `.npz`, `.npy`), writing (frames, animated `.glb`
//! checked by the `gltf` crate's strict parser), the procedural demo data, and the CLI around them.

use latent_workbench::core::motion::MotionSequence;
use latent_workbench::core::{Asset, LatentTensor};
use latent_workbench::io::{self, IoError};
use latent_workbench::methods::demo_data::motion::{MotionKind, MotionSpec, generate, sample_sparse};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/motion")
        .join(name)
}

fn walking(frames: usize) -> MotionSequence {
    generate(&MotionSpec {
        frames,
        resolution: 32,
        ..MotionSpec::new(MotionKind::WalkingFigure)
    })
    .unwrap()
    .sequence
}

/// Positions of a glTF primitive's morph target `t` added to its base, read through `gltf`.
fn morphed(doc: &gltf::Document, blob: &[u8], target: Option<usize>) -> Vec<[f32; 3]> {
    let prim = doc.meshes().next().unwrap().primitives().next().unwrap();
    let read = |acc: gltf::Accessor| -> Vec<[f32; 3]> {
        let view = acc.view().unwrap();
        let start = view.offset() + acc.offset();
        blob[start..start + acc.count() * 12]
            .chunks_exact(12)
            .map(|c| [0, 1, 2].map(|k| f32::from_le_bytes(c[4 * k..4 * k + 4].try_into().unwrap())))
            .collect()
    };
    let base = read(prim.get(&gltf::Semantic::Positions).unwrap());
    match target {
        None => base,
        Some(t) => {
            let delta = read(prim.morph_targets().nth(t).unwrap().positions().unwrap());
            base.iter()
                .zip(delta)
                .map(|(b, d)| [b[0] + d[0], b[1] + d[1], b[2] + d[2]])
                .collect()
        }
    }
}

#[test]
fn animated_glb_passes_a_strict_gltf_parse_with_one_target_per_later_frame() {
    let seq = walking(5);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("walk.glb");
    io::motion::write_glb(&path, &seq).unwrap();
    let gltf = gltf::Gltf::from_slice(&std::fs::read(&path).unwrap()).expect("valid glTF 2.0");
    let blob = gltf.blob.as_deref().expect("binary chunk");
    let doc = &gltf.document;
    let prim = doc.meshes().next().unwrap().primitives().next().unwrap();
    assert_eq!(prim.mode(), gltf::mesh::Mode::Triangles);
    assert_eq!(prim.morph_targets().count(), 4, "frames 2..5 as targets");
    assert!(
        prim.morph_targets()
            .all(|t| t.positions().is_some() && t.normals().is_some())
    );
    assert_eq!(prim.indices().unwrap().count(), 3 * seq.triangles.len());
    // One animation stepping the weights through the frames at the sequence's rate.
    let anim = doc.animations().next().expect("an animation");
    let channel = anim.channels().next().unwrap();
    assert_eq!(
        channel.target().property(),
        gltf::animation::Property::MorphTargetWeights
    );
    let sampler = channel.sampler();
    assert_eq!(sampler.input().count(), 5);
    assert_eq!(sampler.output().count(), 5 * 4);
    assert_eq!(sampler.interpolation(), gltf::animation::Interpolation::Linear);
    let max = sampler.input().max().unwrap();
    assert!((max[0].as_f64().unwrap() - 4.0 / f64::from(seq.fps)).abs() < 1e-6);
    // Base + target t is frame t + 1 exactly (to f32 rounding).
    assert_eq!(morphed(doc, blob, None), seq.frames[0]);
    for t in 0..4 {
        let got = morphed(doc, blob, Some(t));
        let worst = got
            .iter()
            .zip(&seq.frames[t + 1])
            .flat_map(|(a, b)| (0..3).map(move |k| (a[k] - b[k]).abs()))
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-6, "frame {}: {worst}", t + 1);
    }
}

#[test]
fn a_point_sequence_becomes_an_animated_point_set_and_a_mismatched_one_is_refused() {
    let seq = walking(3);
    let points = MotionSequence::points(sample_sparse(&seq, 50, 0.001, 1), 12.0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("points.glb");
    io::motion::write_glb(&path, &points).unwrap();
    let gltf = gltf::Gltf::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let prim = gltf.document.meshes().next().unwrap().primitives().next().unwrap();
    assert_eq!(prim.mode(), gltf::mesh::Mode::Points);
    assert_eq!(prim.morph_targets().count(), 2);

    let ragged = MotionSequence::points(vec![vec![[0.0; 3]; 3], vec![[0.0; 3]; 4]], 10.0);
    let bad = dir.path().join("ragged.glb");
    let e = io::motion::write_glb(&bad, &ragged).unwrap_err();
    assert!(e.to_string().contains("different point counts"), "{e}");
    assert!(!bad.exists(), "no half-written file");
}

#[test]
fn frames_written_to_a_folder_read_back_as_the_same_sequence() {
    let seq = walking(4);
    let dir = tempfile::tempdir().unwrap();
    for ext in ["ply", "obj"] {
        let out = dir.path().join(ext);
        let files = io::motion::write_frames(&out, &seq, ext).unwrap();
        assert_eq!(files.len(), 4);
        assert!(files[0].ends_with(format!("frame_0000.{ext}")));
        let Asset::Motion(back) = io::load(&out).unwrap() else {
            panic!("a folder of frames loads as a motion sequence")
        };
        assert_eq!(back.triangles, seq.triangles, "{ext}: same faces, so a mesh sequence");
        let worst = back
            .frames
            .iter()
            .flatten()
            .zip(seq.frames.iter().flatten())
            .flat_map(|(a, b)| (0..3).map(move |k| (a[k] - b[k]).abs()))
            .fold(0.0f32, f32::max);
        // PLY is binary f32 (exact); OBJ prints enough digits to round-trip f32.
        assert!(worst < 1e-6, "{ext}: {worst}");
    }
    // Frame order follows the numbers in the names, not the text order.
    let plain = dir.path().join("numbered");
    std::fs::create_dir(&plain).unwrap();
    for (i, name) in [(0, "f1.ply"), (1, "f2.ply"), (2, "f10.ply")] {
        let m = seq.mesh_at(i as f32).unwrap();
        io::mesh::write(&plain.join(name), &m).unwrap();
    }
    let Asset::Motion(back) = io::load(&plain).unwrap() else {
        panic!()
    };
    assert_eq!(back.frames[2], seq.frames[2]);
}

#[test]
fn npz_sequences_load_with_their_faces_and_bad_ones_are_named() {
    let Asset::Motion(seq) = io::load(&fixture("tetra_rising.npz")).unwrap() else {
        panic!("an .npz is a motion sequence")
    };
    assert_eq!((seq.len(), seq.frames[0].len(), seq.triangles.len()), (3, 4, 4));
    assert_eq!(seq.frames[2][3], [0.0, 0.0, 2.0]);
    assert_eq!(seq.triangles[0], [0, 2, 1]);
    let Asset::Motion(seq) = io::load(&fixture("points_compressed.npz")).unwrap() else {
        panic!()
    };
    assert!(!seq.is_mesh() && seq.len() == 3);

    let e = io::load(&fixture("no_points.npz")).unwrap_err();
    assert!(matches!(e, IoError::Malformed { .. }));
    assert!(
        e.to_string().contains("no `points`") && e.to_string().contains("no_points.npz"),
        "{e}"
    );
    let e = io::load(&fixture("bad_faces.npz")).unwrap_err().to_string();
    assert!(e.contains("vertex 9") && e.contains("bad_faces.npz"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.npz");
    let bytes = std::fs::read(fixture("tetra_rising.npz")).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = io::load(&cut).unwrap_err().to_string();
    assert!(e.contains("cut.npz"), "{e}");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = io::load(&empty).unwrap_err().to_string();
    assert!(e.contains("no frame files"), "{e}");
}

#[test]
fn a_txnx3_array_plays_as_a_point_sequence() {
    let t = LatentTensor::new(
        "seq",
        vec![2, 2, 3],
        vec![0., 0., 0., 1., 0., 0., 0., 0., 1., 1., 0., 1.],
    )
    .unwrap();
    let seq = io::motion::from_tensor(&t, Path::new("seq.npy")).unwrap();
    assert_eq!(seq.displacement_at(1.0), vec![1.0, 1.0]);
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_latent-workbench"))
}

#[test]
fn demo_data_motion_writes_meshes_points_and_glb_that_convert_and_describe() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("motion");
    let o = bin()
        .args(["demo-data", "motion", "-o"])
        .arg(&out)
        .args(["--count", "2", "--frames", "5", "--resolution", "24", "--points", "64"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.join("sequences.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.contains("bending_capsule,bending_capsule,0,5,"), "{csv}");
    let seq_dir = out.join("twisting_bar");
    assert_eq!(std::fs::read_dir(seq_dir.join("mesh")).unwrap().count(), 5);
    let points = io::array::read_npy(&seq_dir.join("points.npy")).unwrap();
    assert_eq!(points.shape(), &[5, 64, 3]);
    assert!(points.values().iter().all(|v| v.abs() <= 0.5));
    // The partial scan loads as a point sequence of 64 points per frame, front half only.
    let partial = match io::load(&seq_dir.join("partial")).unwrap() {
        latent_workbench::core::Asset::Motion(m) => m,
        other => panic!("partial/ loaded as {}", other.kind()),
    };
    assert_eq!(partial.len(), 5);
    assert!(!partial.is_mesh() && partial.corresponding() == Some(64));
    gltf::Gltf::from_slice(&std::fs::read(seq_dir.join("motion.glb")).unwrap()).unwrap();

    // info describes the folder as a sequence; convert turns it into a .glb and back to frames.
    let o = bin()
        .arg("info")
        .arg(seq_dir.join("mesh"))
        .arg("--json")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["kind"], "motion");
    assert_eq!(info["frames"], 5);
    let glb = dir.path().join("bar.glb");
    let o = bin()
        .arg("convert")
        .arg(seq_dir.join("mesh"))
        .arg(&glb)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    gltf::Gltf::from_slice(&std::fs::read(&glb).unwrap()).unwrap();
    let o = bin()
        .arg("convert")
        .arg(seq_dir.join("points.npy"))
        .arg(&glb)
        .output()
        .unwrap();
    assert!(!o.status.success(), "a .npy converts as a tensor, not a sequence");
    let o = bin()
        .arg("convert")
        .arg(seq_dir.join("mesh"))
        .arg(dir.path().join("bar.stl"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("animated .glb"), "{err}");
    let o = bin()
        .args(["demo-data", "motion", "-o"])
        .arg(&out)
        .args(["--frames", "1"])
        .output()
        .unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--frames"));
}
