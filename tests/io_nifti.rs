//! NIfTI reader and writer against nibabel: fixtures written by nibabel
//! (tests/fixtures/make_nifti.py) must read with nibabel's shape, affine, spacing and values;
//! bad files must give typed errors; our files must read back identically, here and in nibabel.

use latent_workbench::core::volume::{Affine, IDENTITY};
use latent_workbench::core::{ScalarKind, Volume};
use latent_workbench::io::IoError;
use latent_workbench::io::nifti::{self, WriteOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nifti")
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn affine_of(v: &Value) -> Affine {
    let rows = v.as_array().expect("affine rows");
    let mut a = IDENTITY;
    for (r, row) in rows.iter().enumerate() {
        for (c, x) in f64s(row).into_iter().enumerate() {
            a[r][c] = x;
        }
    }
    a
}

fn max_affine_diff(a: &Affine, b: &Affine) -> f64 {
    (0..4)
        .flat_map(|r| (0..4).map(move |c| (a[r][c] - b[r][c]).abs()))
        .fold(0.0, f64::max)
}

fn variant(e: &IoError) -> &'static str {
    match e {
        IoError::NotFound { .. } => "NotFound",
        IoError::Read { .. } => "Read",
        IoError::Write { .. } => "Write",
        IoError::Malformed { .. } => "Malformed",
        IoError::Unsupported { .. } => "Unsupported",
        IoError::UnknownFormat { .. } => "UnknownFormat",
        IoError::TooLarge { .. } => "TooLarge",
    }
}

/// Values equal as f32 (NaN equal to NaN).
fn same(a: f32, b: f32) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// Compares one volume with a nibabel description (`describe()` in make_nifti.py); returns
/// the differences found.
fn compare(name: &str, vol: &Volume, want: &Value, affine_tol: f64) -> Vec<String> {
    let mut problems = Vec::new();
    let shape: Vec<usize> = want["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let mut dims = [1usize; 3];
    for (d, s) in dims.iter_mut().zip(&shape) {
        *d = *s;
    }
    let frames: usize = shape.iter().skip(3).product();
    if vol.dims() != dims || vol.frames() != frames {
        problems.push(format!(
            "{name}: shape {:?}×{} but nibabel {shape:?}",
            vol.dims(),
            vol.frames()
        ));
    }
    let diff = max_affine_diff(vol.world_from_voxel(), &affine_of(&want["affine"]));
    if diff > affine_tol {
        problems.push(format!(
            "{name}: affine differs by {diff:e}: {:?} vs {}",
            vol.world_from_voxel(),
            want["affine"]
        ));
    }
    let zooms = f64s(&want["zooms"]);
    let spacing: [f32; 3] = std::array::from_fn(|i| zooms.get(i).map_or(1.0, |&z| z as f32));
    if vol.spacing_mm() != spacing {
        problems.push(format!("{name}: spacing {:?} vs nibabel {zooms:?}", vol.spacing_mm()));
    }
    if vol.source_kind.name() != want["dtype"].as_str().unwrap() {
        problems.push(format!(
            "{name}: dtype {} vs nibabel {}",
            vol.source_kind, want["dtype"]
        ));
    }
    if let Some(bits) = want["values_f32_bits"].as_array() {
        let expect: Vec<f32> = bits
            .iter()
            .map(|b| f32::from_bits(b.as_u64().unwrap() as u32))
            .collect();
        if expect.len() != vol.data().len() {
            problems.push(format!(
                "{name}: {} values vs nibabel {}",
                vol.data().len(),
                expect.len()
            ));
        } else if let Some(i) = (0..expect.len()).find(|&i| !same(vol.data()[i], expect[i])) {
            problems.push(format!(
                "{name}: value {i} is {} but nibabel gives {}",
                vol.data()[i],
                expect[i]
            ));
        }
    }
    problems
}

#[test]
fn good_fixtures_match_nibabel() {
    let dir = fixtures().join("good");
    let mut problems = Vec::new();
    let mut count = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for json_path in entries.iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
        let want = json(json_path);
        let name = want["file"].as_str().unwrap();
        let path = dir.join(name);
        let (vol, info) = match nifti::read_with_info(&path) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{name}: {e}"));
                continue;
            }
        };
        count += 1;
        problems.extend(compare(name, &vol, &want, 1e-6));
        let version = want["version"].as_u64().unwrap() as u8;
        let big = want["big_endian"].as_bool().unwrap();
        let codes = (
            want["qform_code"].as_i64().unwrap() as i32,
            want["sform_code"].as_i64().unwrap() as i32,
        );
        if (info.version, info.big_endian, (info.qform_code, info.sform_code)) != (version, big, codes) {
            problems.push(format!(
                "{name}: info {info:?} vs version {version}, big endian {big}, codes {codes:?}"
            ));
        }
        if info.datatype != vol.source_kind {
            problems.push(format!(
                "{name}: info datatype {} vs volume {}",
                info.datatype, vol.source_kind
            ));
        }
    }
    assert!(count >= 75, "only {count} good fixtures found in {}", dir.display());
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn bad_fixtures_give_typed_errors() {
    let dir = fixtures().join("bad");
    let expected = json(&dir.join("expected.json"));
    let expected = expected.as_object().unwrap();
    assert!(expected.len() >= 15, "too few bad fixtures");
    let mut problems = Vec::new();
    for (name, want) in expected {
        let path = dir.join(name);
        let (error, phrase) = (want["error"].as_str().unwrap(), want["contains"].as_str().unwrap());
        match nifti::read(&path) {
            Ok(v) => problems.push(format!("{name}: read as {:?} instead of failing", v.shape())),
            Err(e) => {
                let msg = e.to_string();
                if variant(&e) != error || !msg.contains(phrase) || !msg.contains(name.as_str()) {
                    problems.push(format!(
                        "{name}: expected {error} containing {phrase:?}, got {}: {msg}",
                        variant(&e)
                    ));
                }
            }
        }
        // The same bytes under a neutral name fail the same way (except pairs, refused by name).
        if !name.ends_with(".img") && !name.ends_with(".hdr") {
            let bytes = std::fs::read(&path).unwrap();
            match nifti::decode(&bytes, Path::new("in-memory.nii")) {
                Ok(_) => problems.push(format!("{name}: decode succeeded")),
                Err(e) if variant(&e) != error => problems.push(format!("{name}: decode gave {e}")),
                Err(_) => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn missing_file_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["nothing.nii", "nothing.nii.gz", "nothing.hdr"] {
        let e = nifti::read(&dir.path().join(name)).unwrap_err();
        assert!(matches!(e, IoError::NotFound { .. }), "{name}: {e}");
        assert!(e.to_string().contains(name), "{e}");
    }
}

#[test]
fn gzip_is_detected_by_magic_not_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let good = fixtures().join("good");
    let gz_as_nii = dir.path().join("actually_gzipped.nii");
    std::fs::copy(good.join("int16_le_n1.nii.gz"), &gz_as_nii).unwrap();
    let plain_as_gz = dir.path().join("actually_plain.nii.gz");
    std::fs::copy(good.join("int16_le_n1.nii"), &plain_as_gz).unwrap();
    let a = nifti::read(&gz_as_nii).unwrap();
    let b = nifti::read(&plain_as_gz).unwrap();
    assert_eq!(a.shape(), vec![7, 6, 5]);
    assert_eq!(a.data(), b.data());
}

/// A deterministic miniature fuzz: every truncation and many single-byte corruptions of real
/// files must give `Ok` or a typed error, never a panic.
#[test]
fn corrupted_fixtures_never_panic() {
    let good = fixtures().join("good");
    let path = Path::new("corrupt.nii");
    for name in [
        "int16_be_n1.nii",
        "float64_le_n2.nii",
        "int16_le_n2.nii.gz",
        "float32_4d_n1.nii.gz",
    ] {
        let bytes = std::fs::read(good.join(name)).unwrap();
        for cut in 0..bytes.len() {
            let _ = nifti::decode(&bytes[..cut], path);
        }
        let header_len = if name.contains("n2") { 552 } else { 360 };
        for pos in 0..header_len.min(bytes.len()) {
            for value in [0x00, 0x7f, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[pos] = value;
                let _ = nifti::decode(&b, path);
            }
        }
    }
}

fn rotated_affine() -> Affine {
    let (c, s) = (0.6f64, 0.8f64);
    [
        [c * 1.5, -s * 2.0, 0.0, -10.25],
        [s * 1.5, c * 2.0, 0.0, 20.5],
        [0.0, 0.0, 2.5, 3.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
}

/// Test values that `kind` stores exactly.
fn values_for(kind: ScalarKind, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let i = i as i64;
            match kind {
                ScalarKind::U8 => (i * 37 % 256) as f32,
                ScalarKind::I8 => (i * 37 % 256 - 128) as f32,
                ScalarKind::U16 => (i * 997 % 65536) as f32,
                ScalarKind::I16 => (i * 997 % 65536 - 32768) as f32,
                ScalarKind::U32 | ScalarKind::U64 => (i * 1_234_567 % 16_777_216) as f32,
                ScalarKind::I32 | ScalarKind::I64 => (i * 1_234_567 % 16_777_216 - 8_388_608) as f32,
                _ => (i as f32 - 100.0) * 0.37 + 1.0e-3,
            }
        })
        .collect()
}

const WRITE_KINDS: [ScalarKind; 10] = [
    ScalarKind::U8,
    ScalarKind::I8,
    ScalarKind::I16,
    ScalarKind::U16,
    ScalarKind::I32,
    ScalarKind::U32,
    ScalarKind::I64,
    ScalarKind::U64,
    ScalarKind::F32,
    ScalarKind::F64,
];

/// Writes every kind × version × compression (3D, plus a 4D one per combination) into `dir`;
/// returns (file name, volume written, options).
fn write_all(dir: &Path) -> Vec<(String, Volume, WriteOptions)> {
    let mut written = Vec::new();
    for kind in WRITE_KINDS {
        for version in [1u8, 2] {
            for ext in ["nii", "nii.gz"] {
                for frames in [1usize, 3] {
                    let dims = [7, 6, 5];
                    let data = values_for(kind, 7 * 6 * 5 * frames);
                    let vol = Volume::new(dims, frames, [1.5, 2.0, 2.5], rotated_affine(), data).unwrap();
                    let name = format!("{}_v{version}_t{frames}.{ext}", kind.name());
                    let opts = WriteOptions {
                        datatype: kind,
                        version,
                    };
                    nifti::write(&dir.join(&name), &vol, &opts).unwrap();
                    written.push((name, vol, opts));
                }
            }
        }
    }
    // An affine with shear cannot be a qform: sform only.
    let mut sheared = rotated_affine();
    sheared[0][2] = 0.7;
    let vol = Volume::new([4, 3, 2], 1, [1.5, 2.0, 2.5], sheared, values_for(ScalarKind::F32, 24)).unwrap();
    nifti::write(&dir.join("sheared.nii"), &vol, &WriteOptions::default()).unwrap();
    written.push(("sheared.nii".into(), vol, WriteOptions::default()));
    written
}

#[test]
fn round_trip_every_dtype_version_and_compression() {
    let dir = tempfile::tempdir().unwrap();
    for (name, vol, opts) in write_all(dir.path()) {
        let path = dir.path().join(&name);
        let (back, info) = nifti::read_with_info(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(back.data(), vol.data(), "{name}");
        assert_eq!((back.dims(), back.frames()), (vol.dims(), vol.frames()), "{name}");
        assert_eq!(back.spacing_mm(), vol.spacing_mm(), "{name}");
        assert_eq!(back.source_kind, opts.datatype, "{name}");
        let tol = if opts.version == 1 { 1e-6 } else { 0.0 };
        let diff = max_affine_diff(back.world_from_voxel(), vol.world_from_voxel());
        assert!(diff <= tol, "{name}: affine differs by {diff:e}");
        assert_eq!(
            (info.version, info.datatype, info.big_endian),
            (opts.version, opts.datatype, false)
        );
        assert_eq!(
            (info.sform_code, info.qform_code),
            (1, if name == "sheared.nii" { 0 } else { 1 }),
            "{name}"
        );
        assert_eq!(
            (info.scl_slope, info.scl_inter, info.xyzt_units),
            (1.0, 0.0, 10),
            "{name}"
        );
        assert_eq!(info.vox_offset, if opts.version == 1 { 352 } else { 544 }, "{name}");
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(
            raw.starts_with(&[0x1f, 0x8b]),
            name.ends_with(".gz"),
            "{name}: gzip iff .nii.gz"
        );
    }
    // No temporary files are left beside the outputs.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn writer_refuses_pairs_and_unstorable_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let vol = Volume::from_spacing([2, 2, 2], [1.0; 3], vec![0.0; 8]).unwrap();
    let e = nifti::write(&dir.path().join("x.hdr"), &vol, &WriteOptions::default()).unwrap_err();
    assert!(matches!(e, IoError::Unsupported { .. }), "{e}");
    let opts = WriteOptions {
        datatype: ScalarKind::Bf16,
        version: 1,
    };
    let e = nifti::write(&dir.path().join("x.nii"), &vol, &opts).unwrap_err();
    assert!(matches!(e, IoError::Unsupported { .. }), "{e}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing written");
}

/// The interpreter with nibabel: `LW_PYTHON`, else `python3`. `None` (skip) when nibabel is not
/// importable, unless `LW_REQUIRE_PYTHON=1`, when that is a failure.
fn python_with_nibabel() -> Option<String> {
    let python = std::env::var("LW_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import nibabel, numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return Some(python);
    }
    let message = format!(
        "{python} cannot import nibabel and numpy; set LW_PYTHON to an interpreter that can \
         (e.g. a venv with `pip install nibabel==5.4.2 numpy`)"
    );
    if std::env::var("LW_REQUIRE_PYTHON").is_ok_and(|v| v == "1") {
        panic!("LW_REQUIRE_PYTHON=1 but {message}");
    }
    eprintln!("SKIPPED written_files_read_back_in_nibabel: {message}");
    None
}

#[test]
fn written_files_read_back_in_nibabel() {
    let Some(python) = python_with_nibabel() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let written = write_all(dir.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/make_nifti.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg("verify")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{python} verify failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("verify prints JSON");
    let mut problems = Vec::new();
    for (name, vol, opts) in &written {
        let Some(seen) = report.get(name.as_str()) else {
            problems.push(format!("{name}: not read by nibabel"));
            continue;
        };
        // Our writer's affine is stored as float32 in NIfTI-1.
        let tol = if opts.version == 1 { 1e-5 } else { 1e-9 };
        let as_written = vol.clone().with_source_kind(opts.datatype);
        problems.extend(compare(name, &as_written, seen, tol));
        if seen["dtype"].as_str() != Some(opts.datatype.name()) {
            problems.push(format!("{name}: nibabel dtype {}", seen["dtype"]));
        }
        let expect_qform = name != "sheared.nii";
        let codes = (seen["qform_code"].as_i64(), seen["sform_code"].as_i64());
        if codes != (Some(i64::from(expect_qform)), Some(1)) {
            problems.push(format!("{name}: nibabel codes (qform, sform) {codes:?}"));
        }
        if expect_qform {
            let diff = max_affine_diff(&affine_of(&seen["qform"]), vol.world_from_voxel());
            if diff > 1e-5 {
                problems.push(format!("{name}: nibabel qform differs from the affine by {diff:e}"));
            }
        }
        if seen["xyzt_units"] != serde_json::json!(["mm", "sec"]) {
            problems.push(format!("{name}: units {}", seen["xyzt_units"]));
        }
        let offset = if opts.version == 1 { 352 } else { 544 };
        if seen["vox_offset"].as_u64() != Some(offset) {
            problems.push(format!("{name}: vox_offset {}", seen["vox_offset"]));
        }
        let sum: f64 = vol.data().iter().map(|&v| f64::from(v)).sum();
        let nib_sum = seen["sum"].as_f64().unwrap();
        if (sum - nib_sum).abs() > 1e-9 * sum.abs().max(1.0) {
            problems.push(format!("{name}: sum {sum} vs nibabel {nib_sum}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
