//! Images (PNG/JPEG/TIFF) and arrays (.npy/.safetensors): files made by numpy, safetensors,
//! tifffile and Pillow (embedded below as hex), round trips, and bad inputs.

use latent_workbench::core::{Channels, Image, ImageData, LatentOrigin, LatentTensor, ScalarKind};
use latent_workbench::io::{self, IoError, array, image};
use std::path::{Path, PathBuf};

fn hex(lines: &[&str]) -> Vec<u8> {
    let s: String = lines.concat();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn npy(lines: &[&str], name: &str) -> Result<LatentTensor, IoError> {
    array::decode_npy(&hex(lines), Path::new(name))
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn msg(e: &IoError) -> String {
    e.to_string()
}

const FLOATS: [f32; 6] = [0.0, 1.0, -2.0, 3.5, 100.0, -7.0];
const SIGNED: [f32; 6] = [0.0, 1.0, -2.0, 3.0, 100.0, -7.0];
const UNSIGNED: [f32; 6] = [0.0, 1.0, 2.0, 3.0, 100.0, 7.0];

// ------------------------------------------------------------------------------- .npy

#[test]
fn npy_dtypes_written_by_numpy() {
    let cases: &[(&[&str], ScalarKind, &[f32; 6])] = &[
        (NPY_F4_LE, ScalarKind::F32, &FLOATS),
        (NPY_F4_BE, ScalarKind::F32, &FLOATS),
        (NPY_F8_BE, ScalarKind::F64, &FLOATS),
        (NPY_F2_LE, ScalarKind::F16, &FLOATS),
        (NPY_F2_BE, ScalarKind::F16, &FLOATS),
        (NPY_I1_LE, ScalarKind::I8, &SIGNED),
        (NPY_I2_LE, ScalarKind::I16, &SIGNED),
        (NPY_I4_BE, ScalarKind::I32, &SIGNED),
        (NPY_I8_LE, ScalarKind::I64, &SIGNED),
        (NPY_U1_LE, ScalarKind::U8, &UNSIGNED),
        (NPY_U2_BE, ScalarKind::U16, &UNSIGNED),
        (NPY_U4_LE, ScalarKind::U32, &UNSIGNED),
        (NPY_U8_BE, ScalarKind::U64, &UNSIGNED),
    ];
    for (i, (bytes, kind, values)) in cases.iter().enumerate() {
        let t = npy(bytes, "dir/latent.npy").unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(t.name, "latent");
        assert_eq!(t.shape(), &[2, 3], "case {i}");
        assert_eq!(t.source_kind, *kind, "case {i}");
        assert_eq!(t.values(), &values[..], "case {i} ({kind})");
    }
    let t = npy(NPY_BOOL, "mask.npy").unwrap();
    assert_eq!(t.source_kind, ScalarKind::Bool);
    assert_eq!(t.values(), &[1.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
}

#[test]
fn npy_fortran_order_scalars_and_versions() {
    let t = npy(NPY_FORTRAN_F4, "f.npy").unwrap();
    assert_eq!(t.shape(), &[2, 3, 4]);
    assert_eq!(t.values(), (0..24).map(|v| v as f32).collect::<Vec<_>>().as_slice());
    let t = npy(NPY_FORTRAN_I2_BE, "f.npy").unwrap();
    assert_eq!(t.shape(), &[3, 4]);
    assert_eq!(t.source_kind, ScalarKind::I16);
    assert_eq!(t.values(), (0..12).map(|v| v as f32).collect::<Vec<_>>().as_slice());
    let t = npy(NPY_SCALAR_F8, "s.npy").unwrap();
    assert_eq!(t.shape(), &[] as &[usize]);
    assert_eq!(t.values(), &[3.25]);
    for v in [NPY_1D_V2, NPY_1D_V3] {
        let t = npy(v, "v.npy").unwrap();
        assert_eq!(t.shape(), &[5]);
        assert_eq!(t.values(), &[0.0, 1.0, 2.0, 3.0, 4.0]);
    }
}

#[test]
fn npy_refuses_objects_and_other_dtypes() {
    let e = npy(NPY_OBJECT, "o.npy").unwrap_err();
    assert!(matches!(e, IoError::Unsupported { .. }), "{e}");
    assert!(msg(&e).contains("object"), "{e}");
    let e = npy(NPY_COMPLEX, "c.npy").unwrap_err();
    assert!(matches!(e, IoError::Unsupported { .. }), "{e}");
    assert!(msg(&e).contains("complex"), "{e}");
}

/// Replaces `from` by `to` (same length) in the header of a .npy file.
fn patch(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = bytes.to_vec();
    let at = out
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .expect("pattern in header");
    out[at..at + to.len()].copy_from_slice(to.as_bytes());
    out
}

#[test]
fn npy_bad_inputs_name_the_problem() {
    let good = hex(NPY_F4_LE);
    let p = Path::new("bad.npy");
    let check = |bytes: &[u8], want: &str| {
        let e = array::decode_npy(bytes, p).unwrap_err();
        assert!(matches!(e, IoError::Malformed { .. }), "{want}: {e}");
        assert!(msg(&e).contains(want), "expected '{want}' in: {e}");
        assert!(msg(&e).contains("bad.npy"), "{e}");
    };
    check(&good[..good.len() - 3], "truncated");
    check(&good[..20], "truncated");
    check(&[], "magic");
    check(b"PK\x03\x04 this is a zip", "magic");
    check(&patch(&good, "'shape': (2, 3)", "'shape': (2, 4)"), "needs 32 bytes");
    check(&patch(&good, "'fortran_order'", "'fortran_ordxx'"), "fortran_order");
    check(&patch(&good, "'descr': '<f4'", "'descr': <'f4'"), "header");
    check(&patch(&good, "{'descr'", "['descr'"), "header");
    check(&patch(&good, "'<f4'", "'<q9'"), "dtype");
    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0, 0, 0, 0]);
    check(&trailing, "trailing");
    // A header length running past the end of the file.
    let mut long = good.clone();
    long[8] = 0xff;
    long[9] = 0x7f;
    check(&long, "truncated");
    let mut v9 = good.clone();
    v9[6] = 9;
    assert!(matches!(array::decode_npy(&v9, p), Err(IoError::Unsupported { .. })));
}

#[test]
fn npy_huge_shapes_are_refused_before_allocating() {
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4000000000, 4000000000), }";
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    let e = array::decode_npy(&bytes, Path::new("huge.npy")).unwrap_err();
    assert!(matches!(e, IoError::TooLarge { .. }), "{e}");
}

#[test]
fn npy_never_panics_on_damaged_bytes() {
    for fixture in [NPY_F4_LE, NPY_FORTRAN_F4, NPY_1D_V3, NPY_OBJECT] {
        let good = hex(fixture);
        for n in 0..good.len() {
            assert!(array::decode_npy(&good[..n], Path::new("t.npy")).is_err());
        }
        for i in 0..good.len().min(140) {
            for v in [0u8, b'(', b',', b'\'', 0xff] {
                let mut b = good.clone();
                b[i] = v;
                let _ = array::decode_npy(&b, Path::new("t.npy"));
            }
        }
    }
}

#[test]
fn npy_round_trip() {
    let dir = tmp();
    for shape in [vec![], vec![7], vec![2, 3, 4], vec![1, 0, 3]] {
        let n = shape.iter().product::<usize>();
        let values: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
        let t = LatentTensor::new("z", shape.clone(), values.clone()).unwrap();
        let path = dir.path().join("z.npy");
        array::write_npy(&path, &t).unwrap();
        let back = array::read_npy(&path).unwrap();
        assert_eq!(back.shape(), &shape[..]);
        assert_eq!(back.values(), &values[..]);
        assert_eq!(back.source_kind, ScalarKind::F32);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00", "version 1.0");
        let hl = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + hl) % 64, 0, "data aligned to 64 bytes");
    }
    let e = array::read_npy(&dir.path().join("missing.npy")).unwrap_err();
    assert!(matches!(e, IoError::NotFound { .. }), "{e}");
    let t = LatentTensor::new("z", vec![1], vec![1.0]).unwrap();
    let e = array::write_npy(&dir.path().join("no/such/dir/z.npy"), &t).unwrap_err();
    assert!(matches!(e, IoError::Write { .. }), "{e}");
}

// ------------------------------------------------------------------------ .safetensors

#[test]
fn safetensors_written_by_python() {
    let dir = tmp();
    let path = dir.path().join("py.safetensors");
    std::fs::write(&path, hex(SAFETENSORS_PY)).unwrap();
    let ts = array::read_safetensors(&path).unwrap();
    let names: Vec<&str> = ts.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["d", "h", "i", "m", "u", "w"], "sorted by name");
    let get = |n: &str| ts.iter().find(|t| t.name == n).unwrap();
    assert_eq!(get("w").shape(), &[2, 3]);
    assert_eq!(get("w").values(), &FLOATS);
    assert_eq!(get("w").source_kind, ScalarKind::F32);
    assert_eq!(
        get("w").origin,
        LatentOrigin {
            model: "vae-x".into(),
            input: "brain.nii.gz".into(),
            note: "encode".into()
        }
    );
    assert_eq!(get("h").values(), &[0.5, -1.0, 65504.0]);
    assert_eq!(get("h").source_kind, ScalarKind::F16);
    assert_eq!(get("i").values(), &[1.0, -2.0, 3.0, -4.0]);
    assert_eq!(get("i").source_kind, ScalarKind::I64);
    assert_eq!(get("m").values(), &[1.0, 0.0]);
    assert_eq!(get("m").source_kind, ScalarKind::Bool);
    assert_eq!(get("u").values(), &[0.0, 7.0, 255.0, 1.0]);
    assert_eq!(get("d").values(), &[1e-3f64 as f32]);
    assert_eq!(get("d").source_kind, ScalarKind::F64);
    assert_eq!(get("d").origin, LatentOrigin::default());
    // io::load dispatches on the extension.
    match io::load(&path).unwrap() {
        latent_workbench::core::Asset::Tensors(v) => assert_eq!(v.len(), 6),
        other => panic!("{}", other.kind()),
    }
}

#[test]
fn safetensors_round_trip_keeps_origins() {
    let dir = tmp();
    let path = dir.path().join("out.safetensors");
    let origin = LatentOrigin {
        model: "ldm-brain".into(),
        input: "/data/sub-01 \"T1w\".nii.gz".into(),
        note: "encode, scale=0.18215".into(),
    };
    let a = LatentTensor::new("encoder.mean", vec![4, 2, 3], (0..24).map(|i| i as f32 / 7.0).collect())
        .unwrap()
        .with_origin(origin.clone());
    let b = LatentTensor::new("b", vec![], vec![-1.5]).unwrap();
    let c = LatentTensor::new("a.empty", vec![0, 3], vec![]).unwrap();
    array::write_safetensors(&path, &[a.clone(), b.clone(), c.clone()]).unwrap();
    let back = array::read_safetensors(&path).unwrap();
    assert_eq!(back.len(), 3);
    assert_eq!(back[0].name, "a.empty");
    assert_eq!(back[0].shape(), &[0, 3]);
    assert_eq!(back[1].name, "b");
    assert_eq!(back[1].values(), b.values());
    assert_eq!(back[1].origin, LatentOrigin::default());
    assert_eq!(back[2].name, "encoder.mean");
    assert_eq!(back[2].shape(), a.shape());
    assert_eq!(back[2].values(), a.values());
    assert_eq!(back[2].origin, origin);
    // The origin is plain JSON in __metadata__, readable by any safetensors reader.
    let bytes = std::fs::read(&path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let json = meta.metadata().as_ref().unwrap().get("encoder.mean.origin").unwrap();
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(v["model"], "ldm-brain");
    // Duplicate names are refused and leave no file.
    let path2 = dir.path().join("dup.safetensors");
    let e = array::write_safetensors(&path2, &[b.clone(), b.clone()]).unwrap_err();
    assert!(msg(&e).contains("duplicate"), "{e}");
    assert!(!path2.exists());
}

#[test]
fn safetensors_bf16_and_unsupported_dtypes() {
    use safetensors::{Dtype, tensor::TensorView};
    let dir = tmp();
    // bf16 of 1.0, -2.5, 3.140625
    let bf: Vec<u8> = [0x3f80u16, 0xc020, 0x4049]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let f8 = [0x38u8, 0x40];
    let path = dir.path().join("bf.safetensors");
    let bytes = safetensors::serialize([("x", TensorView::new(Dtype::BF16, vec![3], &bf).unwrap())], None).unwrap();
    std::fs::write(&path, bytes).unwrap();
    let t = array::read_safetensors(&path).unwrap();
    assert_eq!(t[0].values(), &[1.0, -2.5, 3.140625]);
    assert_eq!(t[0].source_kind, ScalarKind::Bf16);
    let bytes = safetensors::serialize([("q", TensorView::new(Dtype::F8_E4M3, vec![2], &f8).unwrap())], None).unwrap();
    std::fs::write(&path, bytes).unwrap();
    let e = array::read_safetensors(&path).unwrap_err();
    assert!(matches!(e, IoError::Unsupported { .. }), "{e}");
    assert!(msg(&e).contains("F8_E4M3") && msg(&e).contains("'q'"), "{e}");
}

#[test]
fn safetensors_bad_inputs() {
    let good = hex(SAFETENSORS_PY);
    let p = Path::new("m.safetensors");
    for bad in [
        &good[..good.len() - 1],
        &good[..4],
        &good[..40],
        b"not a safetensors file at all".as_slice(),
    ] {
        let e = array::decode_safetensors(bad, p).unwrap_err();
        assert!(matches!(e, IoError::Malformed { .. }), "{e}");
        assert!(msg(&e).contains("safetensors"), "{e}");
    }
    let mut garbage = good.clone();
    garbage[8] = b'[';
    assert!(matches!(
        array::decode_safetensors(&garbage, p),
        Err(IoError::Malformed { .. })
    ));
    for n in 0..good.len() {
        assert!(array::decode_safetensors(&good[..n], p).is_err());
    }
}

// ------------------------------------------------------------------------------ images

fn img(lines: &[&str], name: &str) -> Image {
    image::decode(&hex(lines), Path::new(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

const F32_PIXELS: [f32; 12] = [0.5, -1.25, 3.0, 1e6, 0.0, 2.5, -7.0, 1e-3, 9.0, 8.0, 7.0, 6.0];

#[test]
fn float_and_integer_tiff() {
    for (fixture, name) in [
        (TIFF_GRAY_F32, "f.tif"),
        (TIFF_GRAY_F32_ZLIB, "z.tiff"),
        (TIFF_GRAY_F64_BE, "d.tif"),
    ] {
        let i = img(fixture, name);
        assert_eq!((i.width(), i.height(), i.channels()), (4, 3, Channels::Gray), "{name}");
        assert_eq!(i.data(), &ImageData::F32(F32_PIXELS.to_vec()), "{name}");
    }
    let i = img(TIFF_GRAY_I16, "ct.tif");
    assert_eq!((i.width(), i.height()), (3, 2));
    assert_eq!(
        i.data(),
        &ImageData::F32(vec![-1000.0, 0.0, 3000.0, 5.0, -5.0, 32767.0])
    );
    let i = img(TIFF_GRAY_U16, "u.tif");
    assert_eq!(i.data(), &ImageData::U16(vec![0, 65535, 1234, 4321, 1, 2]));
    let i = img(TIFF_RGB_F32, "rgb.tif");
    assert_eq!((i.width(), i.height(), i.channels()), (4, 3, Channels::Rgb));
    let ImageData::F32(v) = i.data() else {
        panic!("float rgb")
    };
    assert_eq!(&v[..3], &[0.5, 1.0, -0.5]);
}

#[test]
fn png_and_jpeg_from_pillow() {
    let i = img(PNG_GRAY16_PIL, "g.png");
    assert_eq!((i.width(), i.height(), i.channels()), (3, 2, Channels::Gray));
    assert_eq!(i.data(), &ImageData::U16(vec![0, 65535, 1234, 4321, 1, 2]));
    let i = img(PNG_RGBA8_PIL, "c.png");
    assert_eq!(i.channels(), Channels::Rgba);
    assert_eq!(
        i.data(),
        &ImageData::U8(vec![255, 0, 0, 255, 0, 255, 0, 128, 0, 0, 255, 0, 10, 20, 30, 40])
    );
    let i = img(JPEG_RGB_PIL, "p.jpg");
    assert_eq!((i.width(), i.height(), i.channels()), (8, 8, Channels::Rgb));
    let ImageData::U8(v) = i.data() else {
        panic!("8-bit jpeg")
    };
    for px in v.chunks(3) {
        for (got, want) in px.iter().zip([200u8, 100, 50]) {
            assert!(got.abs_diff(want) <= 3, "{px:?}");
        }
    }
}

#[test]
fn png_round_trips_keep_depth_and_channels() {
    let dir = tmp();
    let cases = [
        Image::new(3, 2, Channels::Gray, ImageData::U8(vec![0, 1, 2, 253, 254, 255])).unwrap(),
        Image::new(2, 2, Channels::GrayAlpha, ImageData::U8(vec![1, 2, 3, 4, 5, 6, 7, 8])).unwrap(),
        Image::new(2, 1, Channels::Rgb, ImageData::U8(vec![1, 2, 3, 4, 5, 6])).unwrap(),
        Image::new(
            3,
            2,
            Channels::Gray,
            ImageData::U16(vec![0, 1, 256, 4095, 65534, 65535]),
        )
        .unwrap(),
        Image::new(1, 2, Channels::GrayAlpha, ImageData::U16(vec![1, 60000, 300, 2])).unwrap(),
        Image::new(1, 1, Channels::Rgb, ImageData::U16(vec![1, 2, 65535])).unwrap(),
        Image::new(1, 1, Channels::Rgba, ImageData::U16(vec![9, 8, 7, 6])).unwrap(),
        image::rgba8_to_image(2, 1, vec![[1, 2, 3, 4], [250, 251, 252, 253]]),
    ];
    for (i, im) in cases.iter().enumerate() {
        let path = dir.path().join(format!("{i}.png"));
        image::write_png(&path, im).unwrap();
        assert_eq!(&image::read(&path).unwrap(), im, "case {i}");
    }
    let f = Image::new(1, 1, Channels::Gray, ImageData::F32(vec![0.5])).unwrap();
    let path = dir.path().join("f.png");
    let e = image::write_png(&path, &f).unwrap_err();
    assert!(matches!(e, IoError::Unsupported { .. }), "{e}");
    assert!(!path.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        cases.len(),
        "no temporary files left"
    );
}

#[test]
#[should_panic(expected = "width × height")]
fn rgba8_to_image_checks_the_count() {
    image::rgba8_to_image(2, 2, vec![[0; 4]; 3]);
}

#[test]
fn bad_images_are_errors_not_panics() {
    let dir = tmp();
    let p = |n: &str| -> PathBuf { dir.path().join(n) };
    let png = hex(PNG_RGBA8_PIL);
    let e = image::decode(&png[..png.len() / 2], &p("half.png")).unwrap_err();
    assert!(matches!(e, IoError::Malformed { .. }), "{e}");
    let e = image::decode(b"definitely not an image", &p("x.png")).unwrap_err();
    assert!(matches!(e, IoError::Malformed { .. }), "{e}");
    assert!(msg(&e).contains("PNG"), "{e}");
    let e = image::decode(b"", &p("empty.jpg")).unwrap_err();
    assert!(matches!(e, IoError::Malformed { .. }), "{e}");
    let e = image::decode(b"BM\x00\x00 a bitmap", &p("x.bmp")).unwrap_err();
    assert!(matches!(e, IoError::Unsupported { .. }), "{e}");
    let e = image::decode(b"????", &p("x.weird")).unwrap_err();
    assert!(matches!(e, IoError::Unsupported { .. }), "{e}");
    let e = image::read(&p("missing.png")).unwrap_err();
    assert!(matches!(e, IoError::NotFound { .. }), "{e}");
    let tif = hex(TIFF_GRAY_F32);
    let e = image::decode(&tif[..tif.len() - 5], &p("cut.tif")).unwrap_err();
    assert!(matches!(e, IoError::Malformed { .. }), "{e}");
    // Every truncation and many single-byte corruptions of each fixture: errors, no panics.
    for fixture in [
        PNG_GRAY16_PIL,
        PNG_RGBA8_PIL,
        JPEG_RGB_PIL,
        TIFF_GRAY_F32,
        TIFF_GRAY_F32_ZLIB,
        TIFF_GRAY_I16,
    ] {
        let good = hex(fixture);
        for n in 0..good.len() {
            let _ = image::decode(&good[..n], Path::new("t.tif"));
        }
        for i in (0..good.len()).step_by(3) {
            for v in [0u8, 0xff, 0x7f] {
                let mut b = good.clone();
                b[i] = v;
                let _ = image::decode(&b, Path::new("t.png"));
            }
        }
    }
}

// Generated by `tests/fixtures/make_ssim.py --print-io-fixtures`; do not edit by hand.
const NPY_F4_LE: &[&str] = &[
    "934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a2046616c73",
    "652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020",
    "202020202020202020202020202020202020202020202020202020202020200a000000000000803f000000c000006040",
    "0000c8420000e0c0",
];
const NPY_F8_BE: &[&str] = &[
    "934e554d5059010076007b276465736372273a20273e6638272c2027666f727472616e5f6f72646572273a2046616c73",
    "652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020",
    "202020202020202020202020202020202020202020202020202020202020200a00000000000000003ff0000000000000",
    "c000000000000000400c0000000000004059000000000000c01c000000000000",
];
const NPY_F2_LE: &[&str] = &[
    "934e554d5059010076007b276465736372273a20273c6632272c2027666f727472616e5f6f72646572273a2046616c73",
    "652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020",
    "202020202020202020202020202020202020202020202020202020202020200a0000003c00c00043405600c7",
];
const NPY_F2_BE: &[&str] = &[
    "934e554d5059010076007b276465736372273a20273e6632272c2027666f727472616e5f6f72646572273a2046616c73",
    "652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020",
    "202020202020202020202020202020202020202020202020202020202020200a00003c00c00043005640c700",
];
const NPY_F4_BE: &[&str] = &[
    "934e554d5059010076007b276465736372273a20273e6634272c2027666f727472616e5f6f72646572273a2046616c73",
    "652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020",
    "202020202020202020202020202020202020202020202020202020202020200a000000003f800000c000000040600000",
    "42c80000c0e00000",
];
const NPY_I1_LE: &[&str] = &[
    "934e554d5059010076007b276465736372273a20277c6931272c2027666f727472616e5f6f72646572273a2046616c73",
    "652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020",
    "202020202020202020202020202020202020202020202020202020202020200a0001fe0364f9",
];
const NPY_I2_LE: &[&str] = &[
    "934e554d5059010076007b276465736372273a20273c6932272c2027666f727472616e5f6f72646572273a2046616c73",
    "652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020",
    "202020202020202020202020202020202020202020202020202020202020200a00000100feff03006400f9ff",
];
const NPY_I4_BE: &[&str] = &[
    "934e554d5059010076007b276465736372273a20273e6934272c2027666f727472616e5f6f72646572273a2046616c73",
    "652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020",
    "202020202020202020202020202020202020202020202020202020202020200a0000000000000001fffffffe00000003",
    "00000064fffffff9",
];
const NPY_I8_LE: &[&str] = &[
    "934e554d5059010076007b276465736372273a20273c6938272c2027666f727472616e5f6f72646572273a2046616c73",
    "652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020",
    "202020202020202020202020202020202020202020202020202020202020200a00000000000000000100000000000000",
    "feffffffffffffff03000000000000006400000000000000f9ffffffffffffff",
];
const NPY_U1_LE: &[&str] = &[
    "934e554d5059010076007b276465736372273a20277c7531272c2027666f727472616e5f6f72646572273a2046616c73",
    "652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020",
    "202020202020202020202020202020202020202020202020202020202020200a000102036407",
];
const NPY_U2_BE: &[&str] = &[
    "934e554d5059010076007b276465736372273a20273e7532272c2027666f727472616e5f6f72646572273a2046616c73",
    "652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020",
    "202020202020202020202020202020202020202020202020202020202020200a000000010002000300640007",
];
const NPY_U4_LE: &[&str] = &[
    "934e554d5059010076007b276465736372273a20273c7534272c2027666f727472616e5f6f72646572273a2046616c73",
    "652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020",
    "202020202020202020202020202020202020202020202020202020202020200a00000000010000000200000003000000",
    "6400000007000000",
];
const NPY_U8_BE: &[&str] = &[
    "934e554d5059010076007b276465736372273a20273e7538272c2027666f727472616e5f6f72646572273a2046616c73",
    "652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020",
    "202020202020202020202020202020202020202020202020202020202020200a00000000000000000000000000000001",
    "0000000000000002000000000000000300000000000000640000000000000007",
];
const NPY_BOOL: &[&str] = &[
    "934e554d5059010076007b276465736372273a20277c6231272c2027666f727472616e5f6f72646572273a2046616c73",
    "652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020",
    "202020202020202020202020202020202020202020202020202020202020200a010001010000",
];
const NPY_FORTRAN_F4: &[&str] = &[
    "934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a2054727565",
    "2c20277368617065273a2028322c20332c2034292c207d20202020202020202020202020202020202020202020202020",
    "202020202020202020202020202020202020202020202020202020202020200a00000000000040410000804000008041",
    "000000410000a0410000803f000050410000a04000008841000010410000a84100000040000060410000c04000009041",
    "000020410000b04100004040000070410000e04000009841000030410000b841",
];
const NPY_FORTRAN_I2_BE: &[&str] = &[
    "934e554d5059010076007b276465736372273a20273e6932272c2027666f727472616e5f6f72646572273a2054727565",
    "2c20277368617065273a2028332c2034292c207d20202020202020202020202020202020202020202020202020202020",
    "202020202020202020202020202020202020202020202020202020202020200a00000004000800010005000900020006",
    "000a00030007000b",
];
const NPY_SCALAR_F8: &[&str] = &[
    "934e554d5059010076007b276465736372273a20273c6638272c2027666f727472616e5f6f72646572273a2046616c73",
    "652c20277368617065273a2028292c207d20202020202020202020202020202020202020202020202020202020202020",
    "202020202020202020202020202020202020202020202020202020202020200a0000000000000a40",
];
const NPY_1D_V2: &[&str] = &[
    "934e554d50590200740000007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a204661",
    "6c73652c20277368617065273a2028352c292c207d202020202020202020202020202020202020202020202020202020",
    "202020202020202020202020202020202020202020202020202020202020200a000000000000803f0000004000004040",
    "00008040",
];
const NPY_1D_V3: &[&str] = &[
    "934e554d50590300740000007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a204661",
    "6c73652c20277368617065273a2028352c292c207d202020202020202020202020202020202020202020202020202020",
    "202020202020202020202020202020202020202020202020202020202020200a000000000000803f0000004000004040",
    "00008040",
];
const NPY_OBJECT: &[&str] = &[
    "934e554d5059010076007b276465736372273a20277c4f272c2027666f727472616e5f6f72646572273a2046616c7365",
    "2c20277368617065273a2028332c292c207d202020202020202020202020202020202020202020202020202020202020",
    "202020202020202020202020202020202020202020202020202020202020200a80049593000000000000008c166e756d",
    "70792e5f636f72652e6d756c74696172726179948c0c5f7265636f6e7374727563749493948c056e756d7079948c076e",
    "6461727261799493944b0085944301629487945294284b014b03859468038c0564747970659493948c024f3894898887",
    "945294284b038c017c944e4e4e4affffffff4affffffff4b3f749462895d94284b018c0374776f944e657494622e",
];
const NPY_COMPLEX: &[&str] = &[
    "934e554d5059010076007b276465736372273a20273c6338272c2027666f727472616e5f6f72646572273a2046616c73",
    "652c20277368617065273a2028312c292c207d2020202020202020202020202020202020202020202020202020202020",
    "202020202020202020202020202020202020202020202020202020202020200a0000803f00000040",
];
const SAFETENSORS_PY: &[&str] = &[
    "b8010000000000007b225f5f6d657461646174615f5f223a7b22772e6f726967696e223a227b5c226d6f64656c5c223a",
    "205c227661652d785c222c205c22696e7075745c223a205c22627261696e2e6e69692e677a5c222c205c226e6f74655c",
    "223a205c22656e636f64655c227d227d2c2269223a7b226474797065223a22493634222c227368617065223a5b322c32",
    "5d2c22646174615f6f666673657473223a5b302c33325d7d2c2264223a7b226474797065223a22463634222c22736861",
    "7065223a5b315d2c22646174615f6f666673657473223a5b33322c34305d7d2c2277223a7b226474797065223a224633",
    "32222c227368617065223a5b322c335d2c22646174615f6f666673657473223a5b34302c36345d7d2c2268223a7b2264",
    "74797065223a22463136222c227368617065223a5b335d2c22646174615f6f666673657473223a5b36342c37305d7d2c",
    "2275223a7b226474797065223a225538222c227368617065223a5b345d2c22646174615f6f666673657473223a5b3730",
    "2c37345d7d2c226d223a7b226474797065223a22424f4f4c222c227368617065223a5b325d2c22646174615f6f666673",
    "657473223a5b37342c37365d7d7d20200100000000000000feffffffffffffff0300000000000000fcffffffffffffff",
    "fca9f1d24d62503f000000000000803f000000c0000060400000c8420000e0c0003800bcff7b0007ff010100",
];
const TIFF_GRAY_F32: &[&str] = &[
    "49492a00080000000f000001040001000000040000000101040001000000030000000201030001000000200000000301",
    "030001000000010000000601030001000000010000000e01020012000000c20000001101040001000000000100001501",
    "030001000000010000001601040001000000030000001701040001000000300000001a01050001000000e40000001b01",
    "050001000000ec000000280103000100000001000000310102000c000000f40000005301030001000000030000000000",
    "00007b227368617065223a205b332c20345d7d0000000000000000000000000000000000010000000100000001000000",
    "010000007469666666696c652e7079000000003f0000a0bf000040400024744900000000000020400000e0c06f12833a",
    "00001041000000410000e0400000c040",
];
const TIFF_GRAY_F32_ZLIB: &[&str] = &[
    "49492a00080000000f000001040001000000040000000101040001000000030000000201030001000000200000000301",
    "030001000000080000000601030001000000010000000e01020012000000c20000001101040001000000000100001501",
    "030001000000010000001601040001000000030000001701040001000000310000001a01050001000000e40000001b01",
    "050001000000ec000000280103000100000001000000310102000c000000f40000005301030001000000030000000000",
    "00007b227368617065223a205b332c20345d7d0000000000000000000000000000000000010000000100000001000000",
    "010000007469666666696c652e707900789c636060b0676058b09f81c1c18141a5c493010c141c18181e1cc8176ab662",
    "601070040a00f103a0d8010700c6df08f0",
];
const TIFF_GRAY_F64_BE: &[&str] = &[
    "4d4d002a00000008000f0100000400000001000000040101000400000001000000030102000300000001004000000103",
    "00030000000100010000010600030000000100010000010e000200000012000000c20111000400000001000001000115",
    "00030000000100010000011600040000000100000003011700040000000100000060011a000500000001000000e4011b",
    "000500000001000000ec012800030000000100010000013100020000000c000000f40153000300000001000300000000",
    "00007b227368617065223a205b332c20345d7d0000000000000000000000000000000000000000010000000100000001",
    "000000017469666666696c652e7079003fe0000000000000bff40000000000004008000000000000412e848000000000",
    "00000000000000004004000000000000c01c0000000000003f50624de000000040220000000000004020000000000000",
    "401c0000000000004018000000000000",
];
const TIFF_GRAY_I16: &[&str] = &[
    "49492a00080000000f000001040001000000030000000101040001000000020000000201030001000000100000000301",
    "030001000000010000000601030001000000010000000e01020012000000c20000001101040001000000000100001501",
    "0300010000000100000016010400010000000200000017010400010000000c0000001a01050001000000e40000001b01",
    "050001000000ec000000280103000100000001000000310102000c000000f40000005301030001000000020000000000",
    "00007b227368617065223a205b322c20335d7d0000000000000000000000000000000000010000000100000001000000",
    "010000007469666666696c652e70790018fc0000b80b0500fbffff7f",
];
const TIFF_RGB_F32: &[&str] = &[
    "49492a000800000010000001040001000000040000000101040001000000030000000201030003000000ce0000000301",
    "030001000000010000000601030001000000020000000e01020015000000d40000001101040001000000200100001501",
    "030001000000030000001601040001000000030000001701040001000000900000001a01050001000000f80000001b01",
    "050001000000000100001c0103000100000001000000280103000100000001000000310102000c000000080100005301",
    "03000300000014010000000000002000200020007b227368617065223a205b332c20342c20335d7d0000000000000000",
    "0000000000000000010000000100000001000000010000007469666666696c652e707900030003000300000000000000",
    "0000003f0000803f000000bf0000a0bf000020c00000a03f000040400000c040000040c0002474490024f449002474c9",
    "000000000000000000000080000020400000a040000020c00000e0c0000060c10000e0406f12833a6f12033b6f1283ba",
    "0000104100009041000010c10000004100008041000000c10000e040000060410000e0c00000c040000040410000c0c0",
];
const TIFF_GRAY_U16: &[&str] = &[
    "49492a00080000000e000001040001000000030000000101040001000000020000000201030001000000100000000301",
    "030001000000010000000601030001000000010000000e01020012000000b60000001101040001000000000100001501",
    "0300010000000100000016010400010000000200000017010400010000000c0000001a01050001000000d80000001b01",
    "050001000000e0000000280103000100000001000000310102000c000000e8000000000000007b227368617065223a20",
    "5b322c20335d7d0000000000000000000000000000000000010000000100000001000000010000007469666666696c65",
    "2e7079000000000000000000000000000000ffffd204e11001000200",
];
const PNG_GRAY16_PIL: &[&str] = &[
    "89504e470d0a1a0a0000000d4948445200000003000000021000000000e88fe5850000001649444154789c636060f8ff",
    "9fe51283c0430646062600207703c9cb97e4bb0000000049454e44ae426082",
];
const PNG_RGBA8_PIL: &[&str] = &[
    "89504e470d0a1a0a0000000d494844520000000200000002080600000072b60d240000001a49444154789c63f8cfc0f0",
    "9fe13f43030303c37f062e11390d0036a904e1248cad840000000049454e44ae426082",
];
const JPEG_RGB_PIL: &[&str] = &[
    "ffd8ffe000104a46494600010100000100010000ffdb0043000201010101010201010102020202020403020202020504",
    "040304060506060605060606070908060709070606080b08090a0a0a0a0a06080b0c0b0a0c090a0a0affdb0043010202",
    "02020202050303050a0706070a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a",
    "0a0a0a0a0a0a0a0a0a0a0a0a0a0affc00011080008000803012200021101031101ffc4001f0000010501010101010100",
    "000000000000000102030405060708090a0bffc400b5100002010303020403050504040000017d010203000411051221",
    "31410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a",
    "434445464748494a535455565758595a636465666768696a737475767778797a838485868788898a9293949596979899",
    "9aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1",
    "f2f3f4f5f6f7f8f9faffc4001f0100030101010101010101010000000000000102030405060708090a0bffc400b51100",
    "020102040403040705040400010277000102031104052131061241510761711322328108144291a1b1c109233352f015",
    "6272d10a162434e125f11718191a262728292a35363738393a434445464748494a535455565758595a63646566676869",
    "6a737475767778797a82838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4",
    "c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9faffda000c03010002110311003f00cf",
    "a28a2bf95cfed83fffd9",
];
