//! SSIM / MSE / PSNR against scikit-image (fixtures from tests/fixtures/make_ssim.py), plus
//! properties that hold whatever the reference.

use latent_workbench::core::Volume;
use latent_workbench::io::array::read_npy;
use latent_workbench::methods::metrics::{MetricError, SsimOptions, compare, compare_volumes, mse, psnr, ssim};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ssim")
}

fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn matches_scikit_image() {
    let exp = expected();
    let cases = exp["cases"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let a = read_npy(&fixtures().join(c["a"].as_str().unwrap())).unwrap();
        let b = read_npy(&fixtures().join(c["b"].as_str().unwrap())).unwrap();
        let shape: Vec<usize> = c["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(a.shape(), &shape[..], "{name}");
        let range = c["data_range"].as_f64().unwrap();
        let opts = SsimOptions {
            data_range: if c["data_range_is_auto"].as_bool().unwrap() {
                None
            } else {
                Some(range)
            },
            ..Default::default()
        };
        let s = compare(a.values(), b.values(), &shape, &opts).unwrap();
        let want = c["ssim"].as_f64().unwrap();
        assert!(
            (s.ssim - want).abs() < 1e-4,
            "{name}: ssim {} vs skimage {want}",
            s.ssim
        );
        // In fact we agree with skimage's float64 computation to its rounding error (largest,
        // ~3e-9, for `offset_2d`, where skimage's uncentred `E[a²] − E[a]²` cancels badly).
        assert!(
            (s.ssim - want).abs() < 1e-7,
            "{name}: ssim {} vs skimage {want}",
            s.ssim
        );
        assert!(
            (s.data_range - range).abs() <= 1e-12 * range,
            "{name}: range {} vs {range}",
            s.data_range
        );
        let want_mse = c["mse"].as_f64().unwrap();
        assert!(
            (s.mse - want_mse).abs() <= 1e-9 * want_mse,
            "{name}: mse {} vs {want_mse}",
            s.mse
        );
        let want_psnr = c["psnr"].as_f64().unwrap();
        assert!(
            (s.psnr - want_psnr).abs() < 1e-6,
            "{name}: psnr {} vs {want_psnr}",
            s.psnr
        );
        // The single-metric functions agree with compare().
        assert_eq!(ssim(a.values(), b.values(), &shape, &opts).unwrap(), s.ssim);
        assert_eq!(mse(a.values(), b.values()).unwrap(), s.mse);
        assert_eq!(psnr(a.values(), b.values(), s.data_range).unwrap(), s.psnr);
    }
}

#[test]
fn volumes_use_their_x_fastest_layout() {
    let exp = expected();
    let c = exp["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "aniso_3d")
        .unwrap();
    let a = read_npy(&fixtures().join(c["a"].as_str().unwrap())).unwrap();
    let b = read_npy(&fixtures().join(c["b"].as_str().unwrap())).unwrap();
    // numpy shape (Z, Y, X) in C order is exactly a Volume with dims [X, Y, Z].
    let s = a.shape();
    let dims = [s[2], s[1], s[0]];
    let va = Volume::from_spacing(dims, [1.0; 3], a.values().to_vec()).unwrap();
    let vb = Volume::from_spacing(dims, [1.0; 3], b.values().to_vec()).unwrap();
    let got = compare_volumes(&va, &vb, &SsimOptions::default()).unwrap();
    assert!((got.ssim - c["ssim"].as_f64().unwrap()).abs() < 1e-9, "{}", got.ssim);
    let other = Volume::from_spacing(
        [dims[0], dims[1], dims[2] - 1],
        [1.0; 3],
        vec![0.0; dims[0] * dims[1] * (dims[2] - 1)],
    )
    .unwrap();
    assert!(matches!(
        compare_volumes(&va, &other, &SsimOptions::default()),
        Err(MetricError::ShapeMismatch { .. })
    ));
}

fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32) / (1u64 << 24) as f32
        })
        .collect()
}

#[test]
fn identical_inputs_give_one() {
    for dims in [vec![20usize, 30], vec![15, 12, 40]] {
        let n = dims.iter().product();
        let a = noise(n, 7);
        let s = compare(&a, &a, &dims, &SsimOptions::default()).unwrap();
        assert!((s.ssim - 1.0).abs() < 1e-12, "{}", s.ssim);
        assert_eq!(s.mse, 0.0);
        assert_eq!(s.psnr, f64::INFINITY);
    }
    // Constant images: the formula is 0/0 with an automatic range, but identical is 1.
    let c = vec![3.0f32; 400];
    assert_eq!(ssim(&c, &c, &[20, 20], &SsimOptions::default()).unwrap(), 1.0);
}

#[test]
fn ssim_is_symmetric_and_bounded() {
    let dims = [14usize, 17, 23];
    let n = dims.iter().product();
    let a = noise(n, 1);
    let b: Vec<f32> = a.iter().zip(noise(n, 2)).map(|(x, y)| x + 0.5 * y).collect();
    let opts = SsimOptions::default();
    let ab = ssim(&a, &b, &dims, &opts).unwrap();
    let ba = ssim(&b, &a, &dims, &opts).unwrap();
    assert!((ab - ba).abs() < 1e-12);
    assert!(ab > -1.0 && ab < 1.0);
}

#[test]
fn errors_name_the_problem() {
    let opts = SsimOptions::default();
    let a = vec![0.5f32; 400];
    let e = ssim(&a, &a[..399], &[20, 20], &opts).unwrap_err();
    assert!(matches!(e, MetricError::ShapeMismatch { .. }), "{e}");
    let e = ssim(&a, &a, &[20, 21], &opts).unwrap_err();
    assert!(
        matches!(
            e,
            MetricError::LengthMismatch {
                expected: 420,
                found: 400,
                ..
            }
        ),
        "{e}"
    );
    let e = ssim(&a, &a, &[40, 10], &opts).unwrap_err();
    assert!(matches!(e, MetricError::TooSmall { win_size: 11, .. }), "{e}");
    assert!(e.to_string().contains("11"), "{e}");
    let e = ssim(&a, &a, &[400], &opts).unwrap_err();
    assert!(matches!(e, MetricError::Dimensions { .. }), "{e}");
    let mut bad = a.clone();
    bad[17] = f32::NAN;
    let e = ssim(&a, &bad, &[20, 20], &opts).unwrap_err();
    assert!(
        matches!(
            e,
            MetricError::NonFinite {
                input: 'b',
                index: 17,
                ..
            }
        ),
        "{e}"
    );
    let e = mse(&[], &[]).unwrap_err();
    assert_eq!(e, MetricError::Empty);
    let e = psnr(&a, &a, 0.0).unwrap_err();
    assert!(matches!(e, MetricError::InvalidOption(_)), "{e}");
    let neg = SsimOptions {
        sigma: -1.0,
        ..Default::default()
    };
    assert!(matches!(
        ssim(&a, &a, &[20, 20], &neg),
        Err(MetricError::InvalidOption(_))
    ));
    // A smaller window accepts smaller images.
    let small = SsimOptions {
        sigma: 0.5,
        ..Default::default()
    };
    assert_eq!(small.win_size(), 5);
    assert!(ssim(&a[..36], &a[..36], &[6, 6], &small).is_ok());
}

#[test]
fn large_volume_is_consistent_across_slabs() {
    // Big enough to run the parallel paths with many tasks; compare against a 2D-per-plane
    // invariant: SSIM of a volume whose planes along z are identical equals the SSIM of one
    // plane computed in 2D (the z filter of a constant-in-z field is the identity).
    let (nz, ny, nx) = (16usize, 70, 90);
    let pa = noise(ny * nx, 3);
    let pb: Vec<f32> = pa
        .iter()
        .zip(noise(ny * nx, 4))
        .map(|(x, y)| 0.7 * x + 0.3 * y)
        .collect();
    let va: Vec<f32> = (0..nz).flat_map(|_| pa.iter().copied()).collect();
    let vb: Vec<f32> = (0..nz).flat_map(|_| pb.iter().copied()).collect();
    let opts = SsimOptions {
        data_range: Some(1.0),
        ..Default::default()
    };
    let s3 = ssim(&va, &vb, &[nz, ny, nx], &opts).unwrap();
    let s2 = ssim(&pa, &pb, &[ny, nx], &opts).unwrap();
    assert!((s3 - s2).abs() < 1e-12, "{s3} vs {s2}");
}

#[test]
fn multi_frame_volumes_average_their_frames() {
    let dims = [20usize, 16, 12];
    let n: usize = dims.iter().product();
    let f0 = noise(n, 8);
    let g0: Vec<f32> = f0.iter().zip(noise(n, 9)).map(|(x, y)| x + 0.5 * y).collect();
    let a: Vec<f32> = f0.iter().chain(&f0).copied().collect();
    let b: Vec<f32> = g0.iter().chain(&f0).copied().collect();
    let va = Volume::new(dims, 2, [1.0; 3], latent_workbench::core::volume::IDENTITY, a.clone()).unwrap();
    let vb = Volume::new(dims, 2, [1.0; 3], latent_workbench::core::volume::IDENTITY, b.clone()).unwrap();
    let got = compare_volumes(&va, &vb, &SsimOptions::default()).unwrap();
    let opts = SsimOptions {
        data_range: Some(got.data_range),
        ..Default::default()
    };
    let s0 = ssim(&f0, &g0, &[dims[2], dims[1], dims[0]], &opts).unwrap();
    assert!(
        (got.ssim - (s0 + 1.0) / 2.0).abs() < 1e-12,
        "{} vs {}",
        got.ssim,
        (s0 + 1.0) / 2.0
    );
    assert_eq!(got.mse, mse(&a, &b).unwrap());
}
