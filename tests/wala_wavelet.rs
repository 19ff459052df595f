//! WaLa's analytic half against PyWavelets: the 3D multilevel DWT and its inverse
//! (`wavedecn`/`waverecn`, mode 'zero'), the packed wavelet tree (64 × 46³ for 256³) and its
//! inverse with the finest level dropped.
//!
//! Fixtures in `tests/fixtures/wala/` come from `tests/fixtures/make_wala_wavelet.py`
//! (PyWavelets 1.8.0, numpy 2.4.6; see tests/fixtures/README.md). pywt computes in float64 from
//! float32 inputs; the references are stored as float32.

use latent_workbench::core::LatentTensor;
use latent_workbench::io::array::read_safetensors;
use latent_workbench::methods::wala::tree::{
    TreeError, TreeLayout, WALA_TRUNCATION, WaveletTree, decode_tree, encode_sdf, pack, sdf_from_volume, truncate_sdf,
    unpack, volume_from_sdf,
};
use latent_workbench::methods::wala::wavelet::{
    Array3, DetailLevel, Wavelet, WaveletCoeffs, band_key, dwtn, idwtn, wavedecn, waverecn,
};
use std::collections::HashMap;
use std::path::PathBuf;

/// Acceptance tolerance (issue 7): `max|ours − pywt| / max|pywt|` per compared array. Our
/// passes store `f32` between axes and levels (about 6e-8 relative rounding each) and accumulate
/// in `f64`; 1e-6 leaves room for that and for nothing like a wrong tap or index. A packed tree
/// is one tensor and is compared against its own largest value (C0's): the rounding of the
/// DC-sized intermediates lands on small detail channels as up to ~3e-6 of *their* maximum.
const MAX_REL_ERR: f64 = 1e-6;

struct Fixture {
    name: String,
    t: HashMap<String, LatentTensor>,
}

impl Fixture {
    fn load(name: &str) -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/wala")
            .join(format!("{name}.safetensors"));
        let tensors =
            read_safetensors(&path).unwrap_or_else(|e| panic!("{e} (run tests/fixtures/make_wala_wavelet.py)"));
        Self {
            name: name.into(),
            t: tensors.into_iter().map(|t| (t.name.clone(), t)).collect(),
        }
    }
    fn get(&self, k: &str) -> &LatentTensor {
        self.t.get(k).unwrap_or_else(|| panic!("{}: no tensor {k}", self.name))
    }
    fn array(&self, k: &str) -> Array3 {
        let t = self.get(k);
        let s = t.shape();
        assert_eq!(s.len(), 3, "{}: {k} is not 3D", self.name);
        Array3::new([s[0], s[1], s[2]], t.values().to_vec()).unwrap()
    }
    fn ints(&self, k: &str) -> Vec<usize> {
        self.get(k).values().iter().map(|&v| v as usize).collect()
    }
}

/// `max|a − b| / max|b|` over two equally long slices (f64 arithmetic).
fn rel_err(ours: &[f32], reference: &[f32]) -> f64 {
    assert_eq!(ours.len(), reference.len());
    let scale = reference
        .iter()
        .fold(0f64, |m, &v| m.max(f64::from(v).abs()))
        .max(1e-30);
    let diff = ours
        .iter()
        .zip(reference)
        .fold(0f64, |m, (&a, &b)| m.max((f64::from(a) - f64::from(b)).abs()));
    diff / scale
}

fn assert_close(what: &str, ours: &Array3, reference: &Array3) {
    assert_eq!(ours.shape(), reference.shape(), "{what}: shape");
    let e = rel_err(ours.data(), reference.data());
    assert!(e <= MAX_REL_ERR, "{what}: relative error {e:.3e} > {MAX_REL_ERR:.0e}");
}

fn check_dwt_case(name: &str, wavelet: &str) {
    let f = Fixture::load(name);
    let w = Wavelet::by_name(wavelet).unwrap();
    let levels = f.ints("cfg.levels")[0];
    let c = wavedecn(&f.array("x"), &w, levels);
    assert_eq!(c.details.len(), levels);
    assert_close(&format!("{name} approx"), &c.approx, &f.array("a"));
    for (i, level) in c.details.iter().enumerate() {
        let bands = level.bands.as_ref().unwrap();
        for (b, band) in bands.iter().enumerate() {
            let key = format!("d{}.{}", i + 1, b + 1);
            assert_close(&format!("{name} {key} ({})", band_key(b + 1)), band, &f.array(&key));
        }
    }
    assert_close(&format!("{name} waverecn"), &waverecn(&c, &w).unwrap(), &f.array("rec"));
    let mut dropped = c.clone();
    if let Some(finest) = dropped.details.last_mut() {
        finest.bands = None;
    }
    assert_close(
        &format!("{name} waverecn, finest level zero"),
        &waverecn(&dropped, &w).unwrap(),
        &f.array("rec_drop_finest"),
    );
}

#[test]
fn dwt_bior68_matches_pywt() {
    check_dwt_case("dwt_bior68", "bior6.8");
}

#[test]
fn dwt_haar_matches_pywt_with_odd_sizes_trimmed() {
    check_dwt_case("dwt_haar", "haar");
}

#[test]
fn dwt_db2_matches_pywt_on_odd_sizes() {
    check_dwt_case("dwt_db2", "db2");
}

#[test]
fn band_keys_follow_pywt() {
    let keys: Vec<String> = (1..=7).map(band_key).collect();
    assert_eq!(keys, ["daa", "ada", "dda", "aad", "dad", "add", "ddd"]);
}

#[test]
fn single_level_round_trip_reconstructs_the_input() {
    // bior6.8 is biorthogonal: idwtn(dwtn(x)) == x exactly in exact arithmetic (the 'zero' mode
    // keeps enough coefficients).
    let w = Wavelet::bior6_8();
    let x = Array3::from_fn([10, 14, 9], |a, b, c| ((a * 7 + b * 3 + c * 5) % 11) as f32 - 5.0);
    let bands = dwtn(&x, &w);
    let shape = bands[0].shape();
    let y = idwtn(bands.into_iter().map(Some).collect(), shape, &w);
    // pywt returns one extra sample along odd axes
    assert_eq!(y.shape(), [10, 14, 10]);
    assert_close("round trip", &y.cropped(x.shape()), &x);
}

#[test]
fn wavelet_lengths_chain_256_to_46() {
    let w = Wavelet::bior6_8();
    assert_eq!(w.filter_len(), 18);
    let chain: Vec<usize> = std::iter::successors(Some(256), |&n| Some(w.coeff_len(n)))
        .take(4)
        .collect();
    assert_eq!(chain, [256, 136, 76, 46]);
    assert_eq!([w.rec_len(46), w.rec_len(76), w.rec_len(136)], [76, 136, 256]);
    assert_eq!(TreeLayout::new(w, [256; 3], 3, 2).unwrap(), TreeLayout::wala());
    assert_eq!(TreeLayout::wala().tree_shape(), [64, 46, 46, 46]);
    assert!(Wavelet::by_name("sym4").is_err());
}

fn layout_for(f: &Fixture, wavelet: &str) -> TreeLayout {
    let x = f.get("x").shape().to_vec();
    let layout = TreeLayout::new(
        Wavelet::by_name(wavelet).unwrap(),
        [x[0], x[1], x[2]],
        f.ints("cfg.levels")[0],
        f.ints("cfg.kept")[0],
    )
    .unwrap();
    // level shapes, coarsest first in the fixture
    let coarsest_first: Vec<usize> = layout.level_shapes.iter().rev().map(|s| s[0]).collect();
    assert_eq!(coarsest_first, f.ints("cfg.level_shapes"), "{}: level shapes", f.name);
    assert_eq!(
        layout.tree_shape().to_vec(),
        f.ints("cfg.tree_shape"),
        "{}: tree shape",
        f.name
    );
    layout
}

/// The packed tree equals numpy's packing (built from WaLa's index tables) and decoding it equals
/// pywt's `waverecn` with the dropped levels zero.
fn check_full_tree(name: &str, wavelet: &str) {
    let f = Fixture::load(name);
    let layout = layout_for(&f, wavelet);
    let tree = encode_sdf(&f.array("x"), &layout).unwrap();
    let reference = f.get("tree");
    assert_eq!(tree.shape().to_vec(), reference.shape());
    let cell = tree.channel(0).len();
    let scale = reference.values().iter().fold(0f64, |m, &v| m.max(f64::from(v).abs()));
    for ch in 0..tree.shape()[0] {
        let r = &reference.values()[ch * cell..(ch + 1) * cell];
        let diff = rel_err(tree.channel(ch), r) * r.iter().fold(0f64, |m, &v| m.max(f64::from(v).abs()));
        assert!(
            diff / scale <= MAX_REL_ERR,
            "{name} tree channel {ch}: relative error {:.3e}",
            diff / scale
        );
    }
    assert_close(
        &format!("{name} decode"),
        &decode_tree(&tree, &layout).unwrap(),
        &f.array("rec"),
    );
}

#[test]
fn tree_db2_matches_numpy_packing() {
    check_full_tree("tree_db2_24", "db2");
}

#[test]
fn tree_haar_512_channels_matches_numpy_packing() {
    check_full_tree("tree_haar_16_all", "haar");
}

#[test]
fn tree_bior68_matches_numpy_packing_with_pad_8() {
    let f = Fixture::load("tree_bior68_24");
    let layout = layout_for(&f, "bior6.8");
    let tree = encode_sdf(&f.array("x"), &layout).unwrap();
    let w = f.get("proj_w").values();
    let (proj, absmax) = (f.get("tree_proj").values(), f.get("tree_absmax").values());
    for ch in 0..tree.shape()[0] {
        let ours: f64 = tree
            .channel(ch)
            .iter()
            .zip(w)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        // an error of ε·max|channel| per value moves the projection by at most ε·max|channel|·Σ|w|
        let bound = MAX_REL_ERR * f64::from(absmax[ch]) * w.iter().map(|v| f64::from(v.abs())).sum::<f64>();
        let diff = (ours - f64::from(proj[ch])).abs();
        assert!(
            diff <= bound.max(1e-12),
            "channel {ch}: projection off by {diff:.3e} (bound {bound:.3e})"
        );
        let ours_max = tree.channel(ch).iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(
            (ours_max - absmax[ch]).abs() <= 1e-6 * absmax[ch].max(1e-30),
            "channel {ch} max"
        );
    }
    let chans = f.ints("some_channels.index");
    let whole = f.get("some_channels").values();
    let cell = tree.channel(0).len();
    for (i, &ch) in chans.iter().enumerate() {
        let e = rel_err(tree.channel(ch), &whole[i * cell..(i + 1) * cell]);
        assert!(e <= MAX_REL_ERR, "tree channel {ch}: relative error {e:.3e}");
    }
    assert_close(
        "bior6.8 24³ decode",
        &decode_tree(&tree, &layout).unwrap(),
        &f.array("rec"),
    );
}

#[test]
fn packed_tree_round_trips() {
    for (wavelet, n, levels, kept) in [
        ("bior6.8", 24, 3, 2),
        ("db2", 24, 3, 2),
        ("haar", 16, 3, 3),
        ("haar", 16, 3, 0),
    ] {
        let layout = TreeLayout::new(Wavelet::by_name(wavelet).unwrap(), [n; 3], levels, kept).unwrap();
        let x = Array3::from_fn([n; 3], |a, b, c| ((a * 31 + b * 17 + c * 7) % 23) as f32 * 0.1 - 1.0);
        let coeffs = wavedecn(&x, &layout.wavelet, levels);
        let tree = pack(&coeffs, &layout).unwrap();
        let back = unpack(&tree, &layout).unwrap();
        // kept levels come back bit for bit, dropped ones as None
        assert_eq!(back.approx, coeffs.approx, "{wavelet}");
        for (e, (b, c)) in back.details.iter().zip(&coeffs.details).enumerate() {
            if e < kept {
                assert_eq!(b, c, "{wavelet} level {e}");
            } else {
                assert_eq!(b.bands, None);
                assert_eq!(b.shape, c.shape);
            }
        }
        assert_eq!(pack(&back, &layout).unwrap(), tree, "{wavelet}: pack ∘ unpack");
    }
}

#[test]
fn tree_shape_errors_are_reported() {
    let layout = TreeLayout::new(Wavelet::by_name("db2").unwrap(), [24; 3], 3, 2).unwrap();
    let bad = WaveletTree::new([63, 5, 5, 5], vec![0.0; 63 * 125]).unwrap();
    assert!(matches!(unpack(&bad, &layout), Err(TreeError::TreeShape { .. })));
    assert!(matches!(
        TreeLayout::new(Wavelet::bior6_8(), [24; 3], 2, 3),
        Err(TreeError::TooManyKept { .. })
    ));
    // bior6.8 on 23: 23 → 20 → 18 → 17, level 2 of 20 under 17·4 = 68: pad 24, fine; on 25 the
    // middle level (21) is odd: 2·19 − 21 = 17 cannot be split evenly
    assert!(matches!(
        TreeLayout::new(Wavelet::bior6_8(), [25; 3], 3, 2),
        Err(TreeError::Padding { .. })
    ));
    let dropped = WaveletCoeffs {
        approx: Array3::zeros([5; 3]),
        details: vec![
            DetailLevel {
                shape: [5; 3],
                bands: None,
            };
            3
        ],
    };
    assert!(matches!(pack(&dropped, &layout), Err(TreeError::Coeffs(_))));
}

/// The analytic SDF of `make_wala_wavelet.py::analytic_sdf`, same operations in the same order
/// (f64, then rounded to f32), so the inputs are bit-identical.
fn analytic_sdf(n: usize) -> Array3 {
    let g = |i: usize| i as f64 * 2.0 / n as f64 - 1.0;
    Array3::from_fn([n; 3], |i, j, k| {
        let (x, y, z) = (g(i), g(j), g(k));
        let (sx, sy, sz) = (x - 0.2, y - (-0.1), z - 0.05);
        let sphere = (sx * sx + sy * sy + sz * sz).sqrt() - 0.45;
        let (qx, qy, qz) = (
            (x - (-0.3)).abs() - 0.35,
            (y - 0.25).abs() - 0.2,
            (z - (-0.2)).abs() - 0.3,
        );
        let (mx, my, mz) = (qx.max(0.0), qy.max(0.0), qz.max(0.0));
        let outside = (mx * mx + my * my + mz * mz).sqrt();
        let inside = qx.max(qy.max(qz)).min(0.0);
        sphere.min(outside + inside) as f32
    })
}

#[test]
fn wala_256_pipeline_matches_pywt_at_sampled_voxels() {
    let f = Fixture::load("wala256_samples");
    let mut sdf = analytic_sdf(256);
    truncate_sdf(sdf.data_mut(), WALA_TRUNCATION);
    let layout = TreeLayout::wala();
    let tree = encode_sdf(&sdf, &layout).unwrap();
    assert_eq!(tree.shape(), [64, 46, 46, 46]);
    let tree_scale = f64::from(f.get("tree.absmax").values()[0]);
    let ti = f.ints("tree.index");
    let tv = f.get("tree.value").values();
    let [_, n1, n2, n3] = tree.shape();
    let worst = ti
        .chunks(4)
        .zip(tv)
        .map(|(i, &v)| (f64::from(tree.data()[((i[0] * n1 + i[1]) * n2 + i[2]) * n3 + i[3]]) - f64::from(v)).abs())
        .fold(0f64, f64::max);
    assert!(
        worst / tree_scale <= MAX_REL_ERR,
        "256³ tree: relative error {:.3e}",
        worst / tree_scale
    );
    for (ch, &s) in f.get("tree.channel_sum").values().iter().enumerate() {
        let ours: f64 = tree.channel(ch).iter().map(|&v| f64::from(v)).sum();
        let bound = MAX_REL_ERR * tree_scale * tree.channel(ch).len() as f64;
        assert!((ours - f64::from(s)).abs() <= bound, "256³ tree channel {ch} sum");
    }

    let rec = decode_tree(&tree, &layout).unwrap();
    assert_eq!(rec.shape(), [256; 3]);
    let rec_scale = f64::from(f.get("rec.absmax").values()[0]);
    let ri = f.ints("rec.index");
    let worst = ri
        .chunks(3)
        .zip(f.get("rec.value").values())
        .map(|(i, &v)| (f64::from(rec.get(i[0], i[1], i[2])) - f64::from(v)).abs())
        .fold(0f64, f64::max);
    assert!(
        worst / rec_scale <= MAX_REL_ERR,
        "256³ decode: relative error {:.3e}",
        worst / rec_scale
    );
    // dropping the finest level costs accuracy, by the same amount as in pywt
    let ours_loss = rec
        .data()
        .iter()
        .zip(sdf.data())
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    let pywt_loss = f.get("rec.max_err_vs_input").values()[0];
    assert!(
        (ours_loss - pywt_loss).abs() <= 1e-5,
        "loss {ours_loss} vs pywt {pywt_loss}"
    );
}

#[test]
fn volume_conversion_keeps_xyz_indexing() {
    let x = Array3::from_fn([3, 4, 5], |a, b, c| (a * 100 + b * 10 + c) as f32);
    let mut affine = latent_workbench::core::volume::IDENTITY;
    affine[0][0] = 2.0;
    let v = volume_from_sdf(&x, affine).unwrap();
    assert_eq!(v.dims(), [3, 4, 5]);
    assert_eq!(v.spacing_mm(), [2.0, 1.0, 1.0]);
    // x fastest in the volume
    assert_eq!(v.data()[1], 100.0);
    assert_eq!(v.data()[3], 10.0);
    assert_eq!(sdf_from_volume(&v), x);
}

#[test]
fn truncation_clips_both_sides() {
    let mut v = vec![-0.5, -0.1, 0.05, 0.2, f32::NAN];
    truncate_sdf(&mut v, WALA_TRUNCATION);
    assert_eq!(&v[..4], &[-0.1, -0.1, 0.05, 0.1]);
    assert!(v[4].is_nan());
}

#[test]
fn level_channels_name_the_channels_each_level_unpacks_from() {
    let layout = TreeLayout::new(Wavelet::bior6_8(), [64; 3], 3, 2).unwrap();
    let groups = layout.level_channels();
    assert_eq!(groups.iter().map(|g| g.len()).collect::<Vec<_>>(), [1, 7, 56]);
    let [c, a, b, d] = layout.tree_shape();
    let cell = a * b * d;
    for (k, group) in groups.iter().enumerate() {
        let mut data = vec![0f32; c * cell];
        for ch in group.clone() {
            data[ch * cell..(ch + 1) * cell].fill(1.0);
        }
        let coeffs = unpack(&WaveletTree::new([c, a, b, d], data).unwrap(), &layout).unwrap();
        let any = |x: &Array3| x.data().iter().any(|&v| v != 0.0);
        assert_eq!(any(&coeffs.approx), k == 0, "group {k}: low-pass");
        for (e, level) in coeffs.details.iter().enumerate() {
            let set = level.bands.as_ref().is_some_and(|bands| bands.iter().any(any));
            assert_eq!(set, k == e + 1, "group {k}: detail level {e} (coarsest first)");
        }
    }
}
