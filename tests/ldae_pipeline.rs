//! The LDAE pipeline on a tiny model: loading the published file layout (`from_files`) and a model folder
//! (`from_dir`), encode / invert / decode, interpolation and its baselines, the noise cache, LDAE's MONAI
//! preprocessing and SSIM against MONAI fixtures, and the `interpolate` command end to end.
//! The tiny model is described in `tests/common/ldae.rs`.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use latent_workbench::core::diffusion::Rng;
use latent_workbench::core::manifest::sha256_file;
use latent_workbench::core::volume::Volume;
use latent_workbench::io::nifti::{self, WriteOptions};
use latent_workbench::methods::ldae::interpolate::{
    self as interp, Inverted, NoiseCache, NoiseKey, alpha_from_months, interpolate_codes, linear_blend, nearest_scan,
    synthesise,
};
use latent_workbench::methods::ldae::model::{LdaeError, LdaeModel};
use latent_workbench::methods::ldae::preprocess::{self, Preprocessing};
use latent_workbench::methods::metrics::{MonaiSsimOptions, monai_ssim};

#[path = "common/ldae.rs"]
mod tiny_ldae;
use tiny_ldae::{fixtures, scan, tiny_config, tiny_model};

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap()
}

fn vol_diff(a: &Volume, b: &Volume) -> f32 {
    assert_eq!(a.dims(), b.dims());
    a.data()
        .iter()
        .zip(b.data())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn no_progress() -> impl FnMut(usize, usize) -> Result<(), latent_workbench::core::diffusion::Cancelled> {
    |_, _| Ok(())
}

#[test]
fn official_files_and_model_folder_load_the_same_model() {
    let tiny = tiny_model();
    let a = LdaeModel::from_files(&tiny.files, tiny_config(), &Device::Cpu).unwrap();
    let b = LdaeModel::from_dir(&tiny.dir, &Device::Cpu).unwrap();
    assert_eq!(a.config(), b.config());
    assert!(b.id().starts_with("ldae-tiny@"));
    assert_eq!(b.manifest().unwrap().name, "ldae-tiny");

    let s = scan(1);
    let (ea, eb) = (a.encode(&s).unwrap(), b.encode(&s).unwrap());
    assert_eq!(ea.y_sem.dims(), [1, 16]);
    assert_eq!(ea.z0.dims(), [1, 3, 8, 8, 8]);
    assert_eq!(max_diff(&ea.y_sem, &eb.y_sem), 0.0);
    assert_eq!(max_diff(&ea.z0, &eb.z0), 0.0);
    // z0 is the AE posterior mean × 0.8730.
    let x = latent_workbench::methods::ldae::model::volume_to_tensor(&s, &Device::Cpu).unwrap();
    let mu = a.autoencoder().encode_mean(&x).unwrap();
    assert!(max_diff(&(mu * 0.8730).unwrap(), &ea.z0) < 1e-6);

    let xa = a.invert(&ea, 4, &mut no_progress()).unwrap();
    let xb = b.invert(&eb, 4, &mut no_progress()).unwrap();
    assert_eq!(max_diff(&xa, &xb), 0.0);
    let da = a.decode(&xa, &ea.y_sem, 4, &mut no_progress()).unwrap();
    let db = b.decode(&xb, &eb.y_sem, 4, &mut no_progress()).unwrap();
    assert_eq!(da.dims(), [16; 3]);
    assert_eq!(vol_diff(&da, &db), 0.0);
    assert_eq!(da.spacing_mm(), [3.0; 3]);

    // DDIM's x̂₀ clamp bound comes from the config (upstream's 1 by default) and reaches both the
    // inversion and the sampling.
    assert_eq!(a.config().ddim_options().clip, Some((-1.0, 1.0)));
    let mut cfg = tiny_config();
    cfg.x0_clip = 0.05;
    assert_eq!(cfg.ddim_options().clip, Some((-0.05f32 as f64, 0.05f32 as f64)));
    let narrow = LdaeModel::from_files(&tiny.files, cfg, &Device::Cpu).unwrap();
    let xn = narrow.invert(&ea, 4, &mut no_progress()).unwrap();
    assert!(max_diff(&xn, &xa) > 1e-3, "the inversion ignored x0_clip");
    let zn = narrow.sample_latent(&xa, &ea.y_sem, 4, &mut no_progress()).unwrap();
    let zw = a.sample_latent(&xa, &ea.y_sem, 4, &mut no_progress()).unwrap();
    assert!(max_diff(&zn, &zw) > 1e-3, "the sampling ignored x0_clip");

    // Statistics from the bare-tensor .pt files: standardise ∘ unstandardise = identity.
    let (mean, std) = a.semantic_stats().unwrap();
    assert_eq!(b.semantic_stats().unwrap(), (mean.clone(), std.clone()));
    assert!((mean[14] - 0.719_734_2).abs() < 1e-6 && (std[0] - 1.385_775).abs() < 1e-6);
    let z = a.standardise(&ea.y_sem).unwrap();
    let y0 = ea.y_sem.to_vec2::<f32>().unwrap()[0][3];
    assert!((z.to_vec2::<f32>().unwrap()[0][3] - (y0 - mean[3]) / std[3]).abs() < 1e-5);
    assert!(max_diff(&a.unstandardise(&z).unwrap(), &ea.y_sem) < 1e-5);
}

#[test]
fn wrong_inputs_and_files_are_errors() {
    let tiny = tiny_model();
    let m = LdaeModel::from_dir(&tiny.dir, &Device::Cpu).unwrap();
    let small = Volume::from_spacing([8, 16, 16], [3.0; 3], vec![0.0; 8 * 256]).unwrap();
    let e = m.encode(&small).unwrap_err().to_string();
    assert!(e.contains("preprocess"), "{e}");
    assert!(matches!(m.config().schedule(0), Err(LdaeError::Input(_))));
    // A config that does not fit the weights: every problem named with the file.
    let mut cfg = tiny_config();
    cfg.encoder.backbone_args.convnext.as_mut().unwrap().depths = vec![2, 1];
    let e = LdaeModel::from_files(&tiny.files, cfg, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("encoder.safetensors"), "{e}");
    let mut cfg = tiny_config();
    cfg.x0_clip = 0.0;
    let e = LdaeModel::from_files(&tiny.files, cfg, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("x0_clip"), "{e}");
    // Only one statistics file.
    let mut files = tiny.files.clone();
    files.semantic_std = None;
    assert!(LdaeModel::from_files(&files, tiny_config(), &Device::Cpu).is_err());
    // Cancelling stops the inversion.
    let enc = m.encode(&scan(2)).unwrap();
    let mut calls = 0;
    let mut cancel = |_: usize, _: usize| {
        calls += 1;
        if calls > 2 {
            Err(latent_workbench::core::diffusion::Cancelled)
        } else {
            Ok(())
        }
    };
    assert!(matches!(m.invert(&enc, 5, &mut cancel), Err(LdaeError::Cancelled)));
    assert!(matches!(alpha_from_months(6.0, 6.0, 3.0), Err(LdaeError::Input(_))));
    assert!((alpha_from_months(0.0, 24.0, 6.0).unwrap() - 0.25).abs() < 1e-12);
}

#[test]
fn interpolation_endpoints_guard_baselines_and_cache() {
    let tiny = tiny_model();
    let m = LdaeModel::from_dir(&tiny.dir, &Device::Cpu).unwrap();
    let (s0, s1) = (scan(3), scan(4));
    let steps = 4;
    let mut cache = NoiseCache::new();
    let k0 = NoiseKey::new(interp::volume_key(&s0), &m, steps);
    let k1 = NoiseKey::new(interp::volume_key(&s1), &m, steps);
    assert_ne!(k0, k1);
    let a = cache.get_or_invert(&m, k0.clone(), &s0, &mut no_progress()).unwrap();
    let b = cache.get_or_invert(&m, k1, &s1, &mut no_progress()).unwrap();
    let again = cache.get_or_invert(&m, k0.clone(), &s0, &mut no_progress()).unwrap();
    assert_eq!(cache.stats(), (1, 2));
    assert_eq!(max_diff(&again.x_t, &a.x_t), 0.0);
    // Another step count is another entry.
    assert!(cache.get(&NoiseKey::new(k0.scan.clone(), &m, 5)).is_none());
    // On-disk form round trips.
    let back = NoiseCache::entry_from_bytes(&NoiseCache::to_bytes(&a).unwrap(), &Device::Cpu).unwrap();
    assert_eq!(max_diff(&back.x_t, &a.x_t), 0.0);
    assert_eq!(max_diff(&back.encoded.y_sem, &a.encoded.y_sem), 0.0);
    assert_eq!(back.steps, steps);

    // α = 0 and α = 1 reproduce decoding each endpoint's own (y, x_T).
    let at0 = synthesise(&m, &a, &b, 0.0, steps, &mut no_progress()).unwrap();
    let own0 = m.decode(&a.x_t, &a.encoded.y_sem, steps, &mut no_progress()).unwrap();
    assert!(vol_diff(&at0, &own0) < 1e-5, "{}", vol_diff(&at0, &own0));
    let at1 = synthesise(&m, &a, &b, 1.0, steps, &mut no_progress()).unwrap();
    let own1 = m.decode(&b.x_t, &b.encoded.y_sem, steps, &mut no_progress()).unwrap();
    assert!(vol_diff(&at1, &own1) < 1e-5);
    let mid = synthesise(&m, &a, &b, 0.5, steps, &mut no_progress()).unwrap();
    assert!(mid.data().iter().all(|v| v.is_finite()));

    // slerp of x_T with itself (θ = 0, 0/0 upstream) is x_T; y is lerped.
    let same = Inverted {
        encoded: b.encoded.clone(),
        x_t: a.x_t.clone(),
        steps,
    };
    let (y, x) = interpolate_codes(&a, &same, 0.3).unwrap();
    // Relative: inverted noise of a random tiny model can be large.
    let scale = a
        .x_t
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
        .max(1.0);
    assert!(
        max_diff(&x, &a.x_t) < 1e-5 * scale,
        "{} (max |x_T| {scale})",
        max_diff(&x, &a.x_t)
    );
    let expect = ((&a.encoded.y_sem * 0.7).unwrap() + (&b.encoded.y_sem * 0.3).unwrap()).unwrap();
    assert!(max_diff(&y, &expect) < 1e-6);
    // Slerp keeps the norm of two equal-norm orthogonal-ish noises (not the shrunk lerp norm).
    let (_, xm) = interpolate_codes(&a, &b, 0.5).unwrap();
    let norm = |t: &Tensor| t.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap().sqrt();
    let (na, nb, nm) = (norm(&a.x_t), norm(&b.x_t), norm(&xm));
    assert!(nm > 0.97 * na.min(nb), "{na} {nb} {nm}");

    // Baselines.
    let near = nearest_scan(&s0, &s1, 0.4).unwrap();
    assert_eq!(near.data(), s0.data());
    assert_eq!(nearest_scan(&s0, &s1, 0.6).unwrap().data(), s1.data());
    let blend = linear_blend(&s0, &s1, 0.25).unwrap();
    let i = 8 + 16 * (8 + 16 * 8);
    assert!((blend.data()[i] - (0.75 * s0.data()[i] + 0.25 * s1.data()[i])).abs() < 1e-6);
    // Scores: perfect against itself; the blend scored against the truth and its AE reconstruction.
    let perfect = interp::score(&s0, &s0).unwrap();
    assert!((perfect.ssim - 1.0).abs() < 1e-12 && perfect.mse == 0.0 && perfect.psnr.is_infinite());
    let truth_ae = m.reconstruct_ae(&s1).unwrap();
    let ev = interp::evaluate(&mid, &s0, &s1, 0.5, &s1, &truth_ae).unwrap();
    assert_eq!(ev.nearest.vs_truth.mse, interp::score(&s0, &s1).unwrap().mse);
    assert!(ev.linear_blend.vs_truth.ssim < 1.0 && ev.ldae.vs_ae_reconstruction.mse.is_finite());
}

#[test]
fn twenty_step_interpolation_time() {
    let tiny = tiny_model();
    let m = LdaeModel::from_dir(&tiny.dir, &Device::Cpu).unwrap();
    let t = Instant::now();
    let mut cache = NoiseCache::new();
    let (s0, s1) = (scan(5), scan(6));
    let a = cache
        .get_or_invert(
            &m,
            NoiseKey::new(interp::volume_key(&s0), &m, 20),
            &s0,
            &mut no_progress(),
        )
        .unwrap();
    let b = cache
        .get_or_invert(
            &m,
            NoiseKey::new(interp::volume_key(&s1), &m, 20),
            &s1,
            &mut no_progress(),
        )
        .unwrap();
    let inverted = t.elapsed();
    let mut reports = Vec::new();
    let out = synthesise(&m, &a, &b, 0.5, 20, &mut |d, n| {
        reports.push((d, n));
        Ok(())
    })
    .unwrap();
    // 20 DDIM steps + the autoencoder, reported before each step and at the end.
    assert_eq!(reports.first(), Some(&(0, 21)));
    assert_eq!(reports.last(), Some(&(21, 21)));
    eprintln!(
        "tiny LDAE (16³, latent 3×8³), 20 steps: two inversions {:.3} s, synthesis {:.3} s",
        inverted.as_secs_f64(),
        (t.elapsed() - inverted).as_secs_f64()
    );
    assert_eq!(out.dims(), [16; 3]);
}

// ---------------------------------------------------------------- preprocessing and SSIM vs MONAI

fn fixture_tensors(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixtures().join(name), &Device::Cpu).unwrap()
}

fn affine_of(v: &serde_json::Value) -> [[f64; 4]; 4] {
    std::array::from_fn(|r| std::array::from_fn(|c| v[r][c].as_f64().unwrap()))
}

fn dims_of(v: &serde_json::Value) -> [usize; 3] {
    std::array::from_fn(|i| v[i].as_u64().unwrap() as usize)
}

fn values(t: &HashMap<String, Tensor>, key: &str) -> Vec<f32> {
    t[key].to_dtype(DType::F32).unwrap().to_vec1().unwrap()
}

fn close(ours: &[f32], monai: &[f32], tol: f32, what: &str) {
    assert_eq!(ours.len(), monai.len(), "{what}: length");
    let scale = monai.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    let err = ours.iter().zip(monai).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max) / scale;
    assert!(err <= tol, "{what}: relative error {err}");
}

#[test]
fn preprocessing_matches_monai() {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("preprocess.json")).unwrap()).unwrap();
    let t = fixture_tensors("preprocess.safetensors");
    for case in ["aniso", "flipped", "half", "ongrid"] {
        let m = &meta[case];
        let dims = dims_of(&m["input_dims"]);
        let input = Volume::new(
            dims,
            1,
            [1.0; 3],
            affine_of(&m["input_affine"]),
            values(&t, &format!("{case}.input")),
        )
        .unwrap();
        let pixdim = m["pixdim"].as_f64().unwrap() as f32;
        let shape = dims_of(&m["shape"]);

        let spaced = preprocess::resample_to_spacing(&input, pixdim).unwrap();
        assert_eq!(spaced.dims(), dims_of(&m["spaced_dims"]), "{case}: Spacing shape");
        assert_eq!(
            spaced.world_from_voxel(),
            &affine_of(&m["spaced_affine"]),
            "{case}: Spacing affine"
        );
        close(spaced.data(), &values(&t, &format!("{case}.spaced")), 1e-5, case);

        // Pad/crop on MONAI's own Spacing output, so its values are compared alone (exact: copies only).
        let monai_spaced = Volume::new(
            spaced.dims(),
            1,
            [pixdim; 3],
            affine_of(&m["spaced_affine"]),
            values(&t, &format!("{case}.spaced")),
        )
        .unwrap();
        let sized = preprocess::resize_with_pad_or_crop(&monai_spaced, shape).unwrap();
        assert_eq!(sized.dims(), shape);
        assert_eq!(
            sized.data(),
            values(&t, &format!("{case}.sized")).as_slice(),
            "{case}: pad/crop"
        );
        let sa = affine_of(&m["sized_affine"]);
        let wv = sized.world_from_voxel();
        for (got, want) in wv.iter().zip(&sa).take(3) {
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-9, "{case}: pad/crop affine");
            }
        }
        close(
            preprocess::min_max(sized).data(),
            &values(&t, &format!("{case}.scaled")),
            1e-6,
            case,
        );

        // The whole chain.
        let p = Preprocessing {
            spacing_mm: pixdim,
            shape,
            minmax: true,
        };
        let all = preprocess::preprocess(&input, &p).unwrap();
        close(all.data(), &values(&t, &format!("{case}.scaled")), 2e-5, case);
        assert!(preprocess::is_on_grid(&all, &p));
    }
}

#[test]
fn preprocessing_shapes_for_the_official_and_demo_grids() {
    // A raw 1 mm MNI-registered scan (182×218×182) → 1.5 mm: 121×145×121 → pad to 128×160×128.
    let v = Volume::from_spacing([182, 218, 182], [1.0; 3], vec![0.0; 182 * 218 * 182]).unwrap();
    let (_, shape) = preprocess::spacing_grid(&v, 1.5).unwrap();
    assert_eq!(shape, [122, 146, 122]); // round(181/1.5 + 1) = round(121.67)
    let plans: Vec<_> = (0..3)
        .map(|a| preprocess::axis_plan(shape[a], [128, 160, 128][a]))
        .collect();
    assert_eq!((plans[0].pad_before, plans[0].pad_after), (3, 3));
    assert_eq!((plans[1].pad_before, plans[1].pad_after), (7, 7));
    // Demo grid: 3 mm, 64×80×64.
    let (_, demo) = preprocess::spacing_grid(&v, 3.0).unwrap();
    assert_eq!(demo, [61, 73, 61]);
    let p = preprocess::axis_plan(73, 80);
    assert_eq!((p.pad_before, p.pad_after), (3, 4));
}

#[test]
fn monai_ssim_matches_monai_generative() {
    let t = fixture_tensors("monai_ssim.safetensors");
    let dims: Vec<usize> = values(&t, "dims").iter().map(|&d| d as usize).collect();
    let (a, b) = (values(&t, "a"), values(&t, "b"));
    let expected: Vec<f64> = t["ssim"].to_vec1().unwrap();
    for (k, e) in values(&t, "kernel_sizes").iter().zip(expected) {
        let opts = MonaiSsimOptions {
            kernel_size: *k as usize,
            ..Default::default()
        };
        let ours = monai_ssim(&a, &b, &dims, &opts).unwrap();
        // MONAI computes in float32.
        assert!((ours - e).abs() < 2e-5, "kernel {k}: {ours} vs {e}");
    }
}

// ---------------------------------------------------------------- command line

fn write_scan(path: &Path, v: &Volume) {
    nifti::write(path, v, &WriteOptions::default()).unwrap();
}

fn run_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_latent-workbench"))
        .args(args)
        .env("LW_DEVICE", "cpu")
        .output()
        .unwrap()
}

#[test]
fn interpolate_command_writes_nifti_and_provenance() {
    let tiny = tiny_model();
    let work = tempfile::tempdir().unwrap();
    let p = |n: &str| work.path().join(n);
    write_scan(&p("a.nii.gz"), &scan(7));
    write_scan(&p("b.nii.gz"), &scan(8));
    // The truth off the model grid (1.5 mm, 32³): preprocessing brings it onto the grid.
    let mut rng = Rng::new(9);
    let fine: Vec<f32> = rng.normals_f32(32 * 32 * 32).iter().map(|v| v.abs()).collect();
    write_scan(&p("t.nii.gz"), &Volume::from_spacing([32; 3], [1.5; 3], fine).unwrap());
    let out = p("mid.nii.gz");
    let cache = p("cache");
    let (dir, a, b, t, o, c) = (
        tiny.dir.to_str().unwrap(),
        p("a.nii.gz"),
        p("b.nii.gz"),
        p("t.nii.gz"),
        out.clone(),
        cache.clone(),
    );
    let args = |target: &str| -> Vec<String> {
        [
            "interpolate",
            "--model",
            dir,
            "--start",
            a.to_str().unwrap(),
            "--start-month",
            "0",
            "--end",
            b.to_str().unwrap(),
            "--end-month",
            "24",
            "--target-month",
            target,
            "--truth",
            t.to_str().unwrap(),
            "--steps",
            "3",
            "-o",
            o.to_str().unwrap(),
            "--cache-dir",
            c.to_str().unwrap(),
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let first = run_cli(&args("12").iter().map(String::as_str).collect::<Vec<_>>());
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let j: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(j["alpha"], 0.5);
    assert_eq!(j["steps"], 3);
    assert_eq!(j["model"]["name"], "ldae-tiny");
    assert_eq!(j["cache"]["start_cached"], false);
    assert_eq!(j["inputs"]["start"]["sha256"], sha256_file(&a).unwrap());
    assert!(
        j["inputs"]["truth"]["preprocessing"]
            .as_str()
            .unwrap()
            .starts_with("spacing")
    );
    for m in ["ldae", "nearest_scan", "linear_blend"] {
        let s = j["evaluation"][m]["vs_truth"]["ssim"].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&s), "{m}: {s}");
        assert!(j["evaluation"][m]["vs_ae_reconstruction"]["mse"].as_f64().is_some());
    }
    let synth = nifti::read(&out).unwrap();
    assert_eq!(synth.dims(), [16; 3]);
    let prov: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p("mid.provenance.json")).unwrap()).unwrap();
    assert_eq!(prov["alpha"], 0.5);
    assert_eq!(prov["model"]["sha256"], j["model"]["sha256"]);

    // Another target time: both noises come from the cache.
    let second = run_cli(&args("6").iter().map(String::as_str).collect::<Vec<_>>());
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    let j2: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(j2["alpha"], 0.25);
    assert_eq!(j2["cache"]["start_cached"], true);
    assert_eq!(j2["cache"]["end_cached"], true);

    // Bad input: one line naming the file.
    let bad = run_cli(&[
        "interpolate",
        "--model",
        dir,
        "--start",
        p("missing.nii.gz").to_str().unwrap(),
        "--start-month",
        "0",
        "--end",
        b.to_str().unwrap(),
        "--end-month",
        "24",
        "--target-month",
        "12",
        "-o",
        o.to_str().unwrap(),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("missing.nii.gz"));
}

#[test]
fn code_use_sees_a_decoder_that_reads_the_code_and_none_between_equal_codes() {
    use latent_workbench::methods::ldae::code_use::code_use;
    let tiny = tiny_model();
    let m = LdaeModel::from_dir(&tiny.dir, &Device::Cpu).unwrap();
    let encoded: Vec<_> = [scan(3), scan(4), scan(5), scan(6)]
        .iter()
        .map(|s| m.encode(s).unwrap())
        .collect();
    let ts = [100, 500, 900];
    let mut ticks = Vec::new();
    let r = code_use(&m, &encoded, &ts, 1, &mut |i, n| {
        ticks.push((i, n));
        Ok(())
    })
    .unwrap();
    assert_eq!(ticks, vec![(1, 4), (2, 4), (3, 4), (4, 4)]);
    assert_eq!((r.scans, r.timesteps.as_slice()), (4, &ts[..]));
    for k in 0..ts.len() {
        assert!(r.own_code[k].is_finite() && r.own_code[k] > 0.0, "{r:?}");
        // The tiny model's random shift branch reads the code: another scan's changes the error.
        assert_ne!(r.own_code[k], r.other_code[k], "{r:?}");
        assert_ne!(r.own_code[k], r.no_shift[k], "{r:?}");
    }
    // Between scans with the same code, swapping codes changes nothing.
    let same = vec![encoded[0].clone(), encoded[0].clone()];
    let r = code_use(&m, &same, &ts, 1, &mut no_progress()).unwrap();
    assert_eq!(r.own_code, r.other_code);
    assert_eq!(r.other_code_penalty(), 0.0);
    // The other scan's latent is this scan's own, so the no-network reference recovers ε exactly.
    assert!(r.mean_latent.iter().all(|&e| e < 1e-8), "{r:?}");
    // Too few scans, or a timestep past the schedule, is an input error.
    assert!(matches!(
        code_use(&m, &encoded[..1], &ts, 1, &mut no_progress()),
        Err(LdaeError::Input(_))
    ));
    let past = m.config().timesteps;
    assert!(matches!(
        code_use(&m, &encoded, &[past], 1, &mut no_progress()),
        Err(LdaeError::Input(_))
    ));
}
