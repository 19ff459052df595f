//! `core::diffusion` against references from `tests/fixtures/make_diffusion.py` (diffusers 0.42.1
//! schedulers and numpy restatements of improved-diffusion respacing, the LDAE shift-DDIM loop and the
//! Motion2VecSets EDM sampler), plus property tests: inversion round trip, guidance, slerp, seeds and
//! cancellation.

use candle_core::{D, DType, Device, Tensor};
use latent_workbench::core::diffusion::{
    BatchRng, Cancelled, ClassifierFree, Ddim, DdimOptions, Ddpm, DdpmOptions, Denoiser, DiffusionError, EdmConfig,
    EdmPrecond, End, FnDenoiser, NoiseSource, NullCond, Prediction, Rng, Schedule, Shift, VarianceType, edm_sample,
    edm_sigmas, job_progress, ldae_timesteps, leading_timesteps, lerp, pdae_timesteps, slerp, slerp_flat,
    space_timesteps,
};
use latent_workbench::core::jobs::{JobContext, JobError};
use serde_json::Value;
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::sync::OnceLock;

const T: usize = 1000;

fn fixtures() -> &'static (HashMap<String, Tensor>, Value) {
    static F: OnceLock<(HashMap<String, Tensor>, Value)> = OnceLock::new();
    F.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diffusion");
        let arrays = candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu)
            .expect("read reference.safetensors (run tests/fixtures/make_diffusion.py)");
        let meta: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
        (arrays, meta)
    })
}

fn arr(name: &str) -> &'static Tensor {
    fixtures()
        .0
        .get(name)
        .unwrap_or_else(|| panic!("fixture array {name} missing"))
}
fn vec_f64(name: &str) -> Vec<f64> {
    arr(name).to_dtype(DType::F64).unwrap().to_vec1().unwrap()
}
fn vec_usize(name: &str) -> Vec<usize> {
    arr(name)
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| v as usize)
        .collect()
}
fn f32_of(t: &Tensor) -> Tensor {
    t.to_dtype(DType::F32).unwrap()
}
fn case(name: &str) -> &'static Value {
    &fixtures().1["cases"][name]
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// max |a − b| / max(1, |b|).
fn max_rel(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (flat(a), flat(b));
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
        .fold(0.0, f64::max)
}

fn assert_close_slices(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}[{i}]: got {g}, want {w} (tol {tol})");
    }
}

/// Noise taken in order from a list (the per-step noise the reference used).
struct FixedNoise(VecDeque<Tensor>);

impl FixedNoise {
    fn from_fixture(name: &str, count: usize) -> Self {
        let all = arr(name);
        Self((0..count).map(|k| all.get(k).unwrap()).collect())
    }
    fn remaining(&self) -> usize {
        self.0.len()
    }
}

impl NoiseSource for FixedNoise {
    fn randn(&mut self, shape: &[usize], dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
        let t = self.0.pop_front().expect("the reference supplied fewer noise tensors");
        assert_eq!(t.dims(), shape);
        t.to_dtype(dtype)?.to_device(device)
    }
}

/// The toy denoiser of the fixtures: ε = 0.8·x + 0.05·t/1000.
fn toy(x: &Tensor, t: &Tensor) -> candle_core::Result<Tensor> {
    let b = x.dim(0)?;
    let mut shape = vec![1usize; x.rank()];
    shape[0] = b;
    let tt = t.affine(0.05 / 1000.0, 0.0)?.reshape(shape)?.to_dtype(x.dtype())?;
    x.affine(0.8, 0.0)?.broadcast_add(&tt)
}

fn toy_denoiser(prediction: Prediction) -> impl Denoiser {
    FnDenoiser::new(prediction, |x: &Tensor, t: &Tensor, _c: Option<&Tensor>| toy(x, t))
}

fn no_progress() -> impl FnMut(usize, usize) -> Result<(), Cancelled> {
    |_, _| Ok(())
}

fn linear() -> Schedule {
    Schedule::linear(T, 1e-4, 0.02).unwrap()
}

// ------------------------------------------------------------------------------------------ schedules

#[test]
fn schedules_match_the_reference() {
    let cases = [
        ("linear", linear()),
        ("improved_linear_250", Schedule::improved_linear(250).unwrap()),
        ("scaled_linear", Schedule::scaled_linear(T, 0.00085, 0.012).unwrap()),
        ("cosine", Schedule::cosine(T).unwrap()),
    ];
    for (name, s) in &cases {
        let betas = vec_f64(&format!("schedule.{name}.betas"));
        let ac = vec_f64(&format!("schedule.{name}.alphas_cumprod"));
        assert_close_slices(&format!("{name} betas"), s.betas(), &betas, 1e-12);
        assert_close_slices(&format!("{name} alphas_cumprod"), s.alphas_cumprod(), &ac, 1e-12);
        if *name != "improved_linear_250" {
            // diffusers builds its schedules in float32
            let name = name.to_string();
            let db = vec_f64(&format!("diffusers.{name}.betas"));
            let dac = vec_f64(&format!("diffusers.{name}.alphas_cumprod"));
            assert_close_slices(&format!("{name} vs diffusers betas"), s.betas(), &db, 1e-6);
            assert_close_slices(
                &format!("{name} vs diffusers alphas_cumprod"),
                s.alphas_cumprod(),
                &dac,
                1e-6,
            );
        }
    }
    assert_eq!(
        Schedule::named("linear", 250).unwrap(),
        Schedule::improved_linear(250).unwrap()
    );
    assert_eq!(
        Schedule::named("squaredcos_cap_v2", T).unwrap(),
        Schedule::cosine(T).unwrap()
    );
    assert!(Schedule::named("sigmoid", T).is_err());
    assert!(Schedule::from_betas(vec![0.1, 1.5]).is_err());
}

#[test]
fn respacing_matches_improved_diffusion() {
    let lin = linear();
    let cos = Schedule::cosine(T).unwrap();
    let list = fixtures().1["respacings"].as_array().unwrap();
    assert!(list.len() >= 8);
    for r in list {
        let (sched, spec, key) = (
            r["schedule"].as_str().unwrap(),
            r["spec"].as_str().unwrap(),
            r["key"].as_str().unwrap(),
        );
        let kept = space_timesteps(T, spec).unwrap();
        assert_eq!(kept, vec_usize(&format!("{key}.timesteps")), "{key}");
        let base = if sched == "linear" { &lin } else { &cos };
        let s = base.respaced(spec).unwrap();
        assert_eq!(s.timestep_map(), kept.as_slice());
        assert_close_slices(key, s.betas(), &vec_f64(&format!("{key}.betas")), 1e-12);
        for (i, &k) in kept.iter().enumerate() {
            assert_eq!(s.model_timestep(i), k as f64);
            assert_eq!(s.alpha_cumprod(i), base.alpha_cumprod(k));
        }
    }
    for steps in [10, 100] {
        assert_eq!(
            pdae_timesteps(T, steps).unwrap(),
            vec_usize(&format!("respace.pdae.ddim{steps}.timesteps"))
        );
        assert_eq!(
            ldae_timesteps(T, steps),
            vec_usize(&format!("respace.ldae.ddim{steps}.timesteps"))
        );
    }
    assert_eq!(leading_timesteps(T, 20, 0), vec_usize("respace.leading.20.timesteps"));
}

// ------------------------------------------------------------------------------------------ DDIM

fn prediction_of(name: &str) -> Prediction {
    match name {
        "epsilon" => Prediction::Epsilon,
        "sample" => Prediction::Sample,
        "v_prediction" => Prediction::VPrediction,
        other => panic!("unknown prediction {other}"),
    }
}

#[test]
fn ddim_trajectories_match_diffusers() {
    let base = linear();
    for name in [
        "eps_eta0",
        "eps_eta05_clip",
        "eps_clip05_recompute",
        "v_eta0",
        "sample_eta03_final_ac0",
    ] {
        let c = case(&format!("ddim.{name}"));
        let mut ts = vec_usize(&format!("ddim.{name}.timesteps"));
        ts.reverse();
        let sched = base.respace(&ts).unwrap();
        let range = c["clip_range"].as_f64().unwrap();
        let options = DdimOptions {
            eta: c["eta"].as_f64().unwrap(),
            clip: c["clip"].as_bool().unwrap().then_some((-range, range)),
            recompute_eps: c["use_clipped_model_output"].as_bool().unwrap(),
            final_alpha_cumprod: if c["set_alpha_to_one"].as_bool().unwrap() {
                1.0
            } else {
                base.alpha_cumprod(0)
            },
            ..DdimOptions::default()
        };
        let ddim = Ddim::new(&sched, options);
        let den = toy_denoiser(prediction_of(c["prediction"].as_str().unwrap()));
        let traj = arr(&format!("ddim.{name}.trajectory"));
        let used = c["noise_used"].as_u64().unwrap() as usize;

        // step by step against every state
        let mut noise = FixedNoise::from_fixture(&format!("ddim.{name}.noise"), used);
        let mut x = f32_of(&traj.get(0).unwrap());
        let mut worst = 0.0f64;
        for (k, i) in (0..sched.len()).rev().enumerate() {
            let to = if i == 0 { End::Clean } else { End::Index(i - 1) };
            x = ddim.step(&den, &x, i, to, None, Some(&mut noise)).unwrap().x;
            worst = worst.max(max_rel(&x, &traj.get(k + 1).unwrap()));
        }
        assert_eq!(noise.remaining(), 0, "{name}: noise draws");
        assert!(worst < 1e-5, "ddim {name}: max error {worst:e}");

        // the whole loop
        let mut noise = FixedNoise::from_fixture(&format!("ddim.{name}.noise"), used);
        let x_t = f32_of(&traj.get(0).unwrap());
        let out = ddim
            .sample(&den, &x_t, None, Some(&mut noise), &mut no_progress())
            .unwrap();
        let err = max_rel(&out, &traj.get(sched.len()).unwrap());
        assert!(err < 1e-5, "ddim {name} loop: max error {err:e}");
    }
}

#[test]
fn ddim_with_eta_needs_noise() {
    let sched = linear().respaced("ddim10").unwrap();
    let ddim = Ddim::new(
        &sched,
        DdimOptions {
            eta: 1.0,
            ..Default::default()
        },
    );
    let x = Tensor::zeros((1, 2), DType::F32, &Device::Cpu).unwrap();
    let r = ddim.sample(&toy_denoiser(Prediction::Epsilon), &x, None, None, &mut no_progress());
    assert!(matches!(r, Err(DiffusionError::Invalid(_))));
}

/// G = 0.3·x − 0.2·y + 0.01·t/1000 (the fixture's toy gradient estimator).
fn toy_shift(x: &Tensor, t: &Tensor, y: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let tt = t.affine(0.01 / 1000.0, 0.0)?.reshape((x.dim(0)?, 1, 1, 1))?;
    (x.affine(0.3, 0.0)? - y.unwrap().affine(0.2, 0.0)?)?.broadcast_add(&tt)
}

/// A ShiftUNet stand-in returning (ε, G) from one call.
struct ShiftModel;
impl Denoiser for ShiftModel {
    fn predict(&self, x: &Tensor, t: &Tensor, _cond: Option<&Tensor>) -> candle_core::Result<Tensor> {
        toy(x, t)
    }
    fn predict_with_shift(
        &self,
        x: &Tensor,
        t: &Tensor,
        cond: Option<&Tensor>,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        Ok((toy(x, t)?, Some(toy_shift(x, t, cond)?)))
    }
}

#[test]
fn ldae_shift_inversion_and_sampling_match_the_reference() {
    let sched = linear().respace(&ldae_timesteps(T, 10)).unwrap();
    assert_eq!(sched.len(), 11);
    let x0 = f32_of(arr("ldae.x0"));
    let y = f32_of(arr("ldae.y"));
    let g = toy_shift;
    let plain = toy_denoiser(Prediction::Epsilon);
    let variants: [(&dyn Denoiser, Shift); 2] = [(&plain, Shift::Fn(&g)), (&ShiftModel, Shift::FromDenoiser)];
    for (den, shift) in variants {
        let ddim = Ddim::new(&sched, DdimOptions::ldae(shift));
        let z_t = ddim.invert(den, &x0, Some(&y), &mut no_progress()).unwrap();
        let err = max_rel(&z_t, arr("ldae.z_t"));
        assert!(err < 1e-5, "LDAE inversion: {err:e}");
        let rec = ddim
            .sample_range(
                den,
                &f32_of(arr("ldae.z_t")),
                Some(&y),
                10,
                End::Index(0),
                None,
                &mut no_progress(),
            )
            .unwrap();
        let err = max_rel(&rec, arr("ldae.reconstruction"));
        assert!(err < 1e-5, "LDAE sampling: {err:e}");
    }
    // Shift::FromDenoiser on a model without a shift is an error, not a silent no-op
    let ddim = Ddim::new(&sched, DdimOptions::ldae(Shift::FromDenoiser));
    assert!(ddim.invert(&plain, &x0, Some(&y), &mut no_progress()).is_err());
}

/// The exact ε of Gaussian data N(μ, s²): ε*(x, t) = √(1−ᾱ)·(x − √ᾱ·μ)/(ᾱ·s² + 1 − ᾱ).
struct GaussianData {
    schedule: Schedule,
    mu: f64,
    s2: f64,
}

impl Denoiser for GaussianData {
    fn predict(&self, x: &Tensor, t: &Tensor, _c: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let step = t.to_vec1::<f32>()?[0] as usize;
        let a = self.schedule.alpha_cumprod(step);
        let k = (1.0 - a).sqrt() / (a * self.s2 + 1.0 - a);
        x.affine(k, -k * a.sqrt() * self.mu)
    }
}

#[test]
fn ddim_inversion_then_sampling_reconstructs_x0() {
    let base = linear();
    let den = GaussianData {
        schedule: base.clone(),
        mu: 0.3,
        s2: 0.25,
    };
    let mut rng = Rng::new(5);
    let x0 = rng
        .randn(&[2, 3, 8, 8], DType::F32, &Device::Cpu)
        .unwrap()
        .affine(0.5, 0.3)
        .unwrap();
    // DDIM inversion is first order: the round trip error shrinks about linearly with the step count
    // (a float64 numpy run of the same setup gives max errors 0.011 at 1000 steps and 0.043 at 250).
    let mut errors = Vec::new();
    for (steps, tol) in [(1000, 0.02), (250, 0.08)] {
        let sched = base.respace(&ldae_timesteps(T, steps)).unwrap();
        let ddim = Ddim::new(&sched, DdimOptions::default());
        let z_t = ddim.invert(&den, &x0, None, &mut no_progress()).unwrap();
        // x_T is close to unit Gaussian noise, not a copy of x0
        let zv = flat(&z_t);
        let var = zv.iter().map(|v| v * v).sum::<f64>() / zv.len() as f64;
        assert!((var - 1.0).abs() < 0.3, "var of x_T {var}");
        let back = ddim
            .sample_range(
                &den,
                &z_t,
                None,
                sched.len() - 1,
                End::Index(0),
                None,
                &mut no_progress(),
            )
            .unwrap();
        let err = flat(&(&back - &x0).unwrap()).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(err < tol, "{steps} steps: reconstruction error {err}");
        errors.push(err);
    }
    assert!(errors[0] < errors[1] / 2.5, "errors {errors:?}");
}

// ------------------------------------------------------------------------------------------ DDPM

#[test]
fn ddpm_trajectories_match_diffusers() {
    let base = linear();
    for name in ["fixed_small_clip", "fixed_large", "learned_range", "wala5_cfg"] {
        let c = case(&format!("ddpm.{name}"));
        let mut ts = vec_usize(&format!("ddpm.{name}.timesteps"));
        ts.reverse();
        let sched = base.respace(&ts).unwrap();
        let variance = match c["variance"].as_str().unwrap() {
            "fixed_small" => VarianceType::FixedSmall,
            "fixed_large" => VarianceType::FixedLarge,
            "learned_range" => VarianceType::LearnedRange,
            v => panic!("{v}"),
        };
        let ddpm = Ddpm::new(
            &sched,
            DdpmOptions {
                variance,
                clip: c["clip"].as_bool().unwrap().then_some((-1.0, 1.0)),
            },
        );
        let traj = arr(&format!("ddpm.{name}.trajectory"));
        let used = c["noise_used"].as_u64().unwrap() as usize;
        let mut noise = FixedNoise::from_fixture(&format!("ddpm.{name}.noise"), used);
        let x_t = f32_of(&traj.get(0).unwrap());
        let learned = FnDenoiser::new(Prediction::Epsilon, |x: &Tensor, t: &Tensor, _c: Option<&Tensor>| {
            Tensor::cat(&[toy(x, t)?, x.affine(0.3, 0.0)?.clamp(-1.0, 1.0)?], 1)
        });
        let conditional = FnDenoiser::new(
            Prediction::Epsilon,
            |x: &Tensor, t: &Tensor, c: Option<&Tensor>| match c {
                Some(c) => toy(x, t)? + c.affine(0.2, 0.0)?,
                None => toy(x, t),
            },
        );
        let plain = toy_denoiser(Prediction::Epsilon);
        let cond;
        let (den, cond): (Box<dyn Denoiser + '_>, Option<&Tensor>) = match name {
            "learned_range" => (Box::new(&learned), None),
            "wala5_cfg" => {
                cond = f32_of(arr("ddpm.wala5_cfg.cond"));
                let w = c["cfg_scale"].as_f64().unwrap();
                (Box::new(ClassifierFree::new(&conditional, w)), Some(&cond))
            }
            _ => (Box::new(&plain), None),
        };
        let mut x = x_t.clone();
        let mut worst = 0.0f64;
        for (k, i) in (0..sched.len()).rev().enumerate() {
            x = ddpm.step(den.as_ref(), &x, i, cond, &mut noise).unwrap().x;
            worst = worst.max(max_rel(&x, &traj.get(k + 1).unwrap()));
        }
        assert_eq!(noise.remaining(), 0);
        assert!(worst < 1e-5, "ddpm {name}: max error {worst:e}");
        let mut noise = FixedNoise::from_fixture(&format!("ddpm.{name}.noise"), used);
        let out = ddpm
            .sample(den.as_ref(), &x_t, cond, &mut noise, &mut no_progress())
            .unwrap();
        assert!(max_rel(&out, &traj.get(sched.len()).unwrap()) < 1e-5);
    }
}

// ------------------------------------------------------------------------------------------ guidance

fn cond_model() -> impl Denoiser {
    FnDenoiser::new(Prediction::Epsilon, |x: &Tensor, t: &Tensor, c: Option<&Tensor>| {
        let base = toy(x, t)?;
        match c {
            Some(c) => base + (c.affine(0.2, 0.1)? * x)?,
            None => base.affine(1.0, -0.05),
        }
    })
}

#[test]
fn classifier_free_guidance() {
    let dev = Device::Cpu;
    let mut rng = Rng::new(11);
    let x = rng.randn(&[3, 2, 4], DType::F32, &dev).unwrap();
    let c = rng.randn(&[3, 2, 4], DType::F32, &dev).unwrap();
    let t = Tensor::new(&[500f32, 500., 500.], &dev).unwrap();
    let m = cond_model();
    let e_c = m.predict(&x, &t, Some(&c)).unwrap();
    let e_u = m.predict(&x, &t, Some(&c.zeros_like().unwrap())).unwrap();
    for batched in [true, false] {
        let mut g = ClassifierFree::new(&m, 1.0);
        g.batched = batched;
        assert!(max_rel(&g.predict(&x, &t, Some(&c)).unwrap(), &e_c) < 1e-6);
        g.scale = 0.0;
        assert!(max_rel(&g.predict(&x, &t, Some(&c)).unwrap(), &e_u) < 1e-6);
        g.scale = 2.5;
        let want = (&e_u + ((&e_c - &e_u).unwrap() * 2.5).unwrap()).unwrap();
        assert!(
            max_rel(&g.predict(&x, &t, Some(&c)).unwrap(), &want) < 1e-6,
            "batched {batched}"
        );
        // no condition: plain unconditional call
        let plain = m.predict(&x, &t, None).unwrap();
        assert!(max_rel(&g.predict(&x, &t, None).unwrap(), &plain) < 1e-7);
    }
    // learned null embedding, broadcast over the batch
    let null = rng.randn(&[1, 2, 4], DType::F32, &dev).unwrap();
    let mut g = ClassifierFree::new(&m, 3.0);
    g.null = NullCond::Tensor(null.clone());
    let e_n = m
        .predict(
            &x,
            &t,
            Some(&null.broadcast_as((3, 2, 4)).unwrap().contiguous().unwrap()),
        )
        .unwrap();
    let want = (&e_n + ((&e_c - &e_n).unwrap() * 3.0).unwrap()).unwrap();
    assert!(max_rel(&g.predict(&x, &t, Some(&c)).unwrap(), &want) < 1e-6);
    // absent null condition: the unconditional pass gets None
    g.null = NullCond::Absent;
    let e_none = m.predict(&x, &t, None).unwrap();
    let want = (&e_none + ((&e_c - &e_none).unwrap() * 3.0).unwrap()).unwrap();
    assert!(max_rel(&g.predict(&x, &t, Some(&c)).unwrap(), &want) < 1e-6);
    // learned variance: only the first channel guided, the variance channel from the conditional pass
    let two = FnDenoiser::new(Prediction::Epsilon, |x: &Tensor, t: &Tensor, c: Option<&Tensor>| {
        let e = cond_model().predict(x, t, c)?;
        Tensor::cat(&[e.clone(), e.affine(-1.0, 0.0)?], 1)
    });
    let mut g = ClassifierFree::new(&two, 2.0);
    g.guided_channels = Some(2);
    let out = g.predict(&x, &t, Some(&c)).unwrap();
    let want_eps = (&e_u + ((&e_c - &e_u).unwrap() * 2.0).unwrap()).unwrap();
    assert!(max_rel(&out.narrow(1, 0, 2).unwrap(), &want_eps) < 1e-6);
    assert!(max_rel(&out.narrow(1, 2, 2).unwrap(), &e_c.affine(-1.0, 0.0).unwrap()) < 1e-6);
}

// ------------------------------------------------------------------------------------------ EDM

#[test]
fn edm_heun_matches_the_reference() {
    assert_close_slices(
        "sigmas 18",
        &edm_sigmas(18, 0.002, 80.0, 7.0),
        &vec_f64("edm.sigmas_18"),
        1e-12,
    );
    assert_close_slices(
        "sigmas 5",
        &edm_sigmas(5, 0.01, 10.0, 3.0),
        &vec_f64("edm.sigmas_5"),
        1e-12,
    );

    let calls = Cell::new(0usize);
    let net = FnDenoiser::new(
        Prediction::Epsilon,
        |x: &Tensor, c_noise: &Tensor, _c: Option<&Tensor>| {
            calls.set(calls.get() + 1);
            assert_eq!(x.dtype(), DType::F32);
            let b = x.dim(0)?;
            let cn = c_noise.affine(0.1, 0.0)?.reshape((b, 1, 1, 1))?;
            x.affine(-0.5, 0.0)?.broadcast_add(&cn)
        },
    );
    let pre = EdmPrecond::new(&net);
    let latents = f32_of(arr("edm.latents"));
    let cfg = EdmConfig::default();
    let out = edm_sample(&pre, &latents, None, &cfg, None, &mut no_progress()).unwrap();
    assert_eq!(out.dtype(), DType::F32);
    assert_eq!(calls.get(), 2 * 18 - 1);
    let err = max_rel(&out, arr("edm.deterministic"));
    assert!(err < 1e-5, "deterministic EDM: {err:e}");

    let churn = EdmConfig {
        s_churn: 10.0,
        s_min: 0.05,
        s_max: 50.0,
        s_noise: 1.003,
        ..EdmConfig::default()
    };
    let used = case("edm")["churn"]["noise_used"].as_u64().unwrap() as usize;
    let mut noise = FixedNoise::from_fixture("edm.churn_noise", used);
    let out = edm_sample(&pre, &latents, None, &churn, Some(&mut noise), &mut no_progress()).unwrap();
    assert_eq!(noise.remaining(), 0);
    let err = max_rel(&out, arr("edm.churn"));
    assert!(err < 1e-5, "EDM with churn: {err:e}");
    assert!(edm_sample(&pre, &latents, None, &churn, None, &mut no_progress()).is_err());
}

// ------------------------------------------------------------------------------------------ interpolation

#[test]
fn slerp_and_lerp() {
    let a = f32_of(arr("slerp.a"));
    let b = f32_of(arr("slerp.b"));
    for alpha in ["0.25", "0.5", "0.8"] {
        let got = slerp(&a, &b, alpha.parse().unwrap()).unwrap();
        let err = max_rel(&got, arr(&format!("slerp.{alpha}")));
        assert!(err < 1e-5, "slerp {alpha}: {err:e}");
    }
    assert!(max_rel(&slerp(&a, &b, 0.0).unwrap(), &a) < 1e-6);
    assert!(max_rel(&slerp(&a, &b, 1.0).unwrap(), &b) < 1e-6);
    assert!(max_rel(&lerp(&a, &b, 0.0).unwrap(), &a) < 1e-7);
    assert!(max_rel(&lerp(&a, &b, 1.0).unwrap(), &b) < 1e-7);

    // equal norms: slerp stays on the sphere, lerp cuts through it
    let dev = Device::Cpu;
    let mut rng = Rng::new(3);
    let p = rng.randn(&[2, 64], DType::F32, &dev).unwrap();
    let q = rng.randn(&[2, 64], DType::F32, &dev).unwrap();
    let norms = |t: &Tensor| -> Vec<f32> {
        t.sqr()
            .unwrap()
            .sum(D::Minus1)
            .unwrap()
            .sqrt()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let q = q
        .broadcast_mul(
            &Tensor::new(
                norms(&p).iter().zip(norms(&q)).map(|(a, b)| a / b).collect::<Vec<_>>(),
                &dev,
            )
            .unwrap()
            .reshape((2, 1))
            .unwrap(),
        )
        .unwrap();
    for alpha in [0.1, 0.5, 0.9] {
        let s = norms(&slerp(&p, &q, alpha).unwrap());
        let l = norms(&lerp(&p, &q, alpha).unwrap());
        for (i, n) in norms(&p).iter().enumerate() {
            assert!((s[i] - n).abs() / n < 1e-5, "slerp norm {} vs {n}", s[i]);
            assert!(l[i] < 0.99 * n, "lerp norm {} vs {n}", l[i]);
        }
    }
    // parallel inputs fall back to lerp instead of 0/0
    let two_p = p.affine(2.0, 0.0).unwrap();
    let s = slerp(&p, &two_p, 0.5).unwrap();
    assert!(flat(&s).iter().all(|v| v.is_finite()));
    assert!(max_rel(&s, &p.affine(1.5, 0.0).unwrap()) < 1e-6);
    // per item vs whole tensor
    let one_a = a.narrow(0, 0, 1).unwrap();
    let one_b = b.narrow(0, 0, 1).unwrap();
    assert!(
        max_rel(
            &slerp_flat(&one_a, &one_b, 0.3).unwrap(),
            &slerp(&one_a, &one_b, 0.3).unwrap()
        ) < 1e-6
    );
}

// ------------------------------------------------------------------------------------------ seeds

fn ddpm_sample_with(noise: &mut dyn NoiseSource, x_t: &Tensor) -> Tensor {
    let sched = linear().respaced("25").unwrap();
    let ddpm = Ddpm::new(&sched, DdpmOptions::default());
    ddpm.sample(&toy_denoiser(Prediction::Epsilon), x_t, None, noise, &mut no_progress())
        .unwrap()
}

#[test]
fn the_same_seed_repeats_exactly() {
    let dev = Device::Cpu;
    let run = |seed: u64| {
        let mut rng = Rng::new(seed);
        let x_t = rng.randn(&[2, 3, 4, 4], DType::F32, &dev).unwrap();
        flat(&ddpm_sample_with(&mut rng, &x_t))
    };
    let a = run(42);
    assert_eq!(a, run(42));
    assert_ne!(a, run(43));

    // per-item seeds: an item's sample does not depend on its batch
    let run_batch = |seeds: &[u64]| {
        let mut rng = BatchRng::new(seeds);
        let x_t = rng.randn(&[seeds.len(), 3, 4, 4], DType::F32, &dev).unwrap();
        ddpm_sample_with(&mut rng, &x_t)
    };
    let ab = run_batch(&[7, 8]);
    let b = run_batch(&[8]);
    assert_eq!(flat(&ab.get(1).unwrap()), flat(&b.get(0).unwrap()));
    assert_ne!(flat(&ab.get(0).unwrap()), flat(&ab.get(1).unwrap()));

    // the noise does not depend on the dtype asked for
    let n32 = Rng::new(9).randn(&[5], DType::F32, &dev).unwrap();
    let n64 = Rng::new(9).randn(&[5], DType::F64, &dev).unwrap();
    assert_eq!(flat(&n32), flat(&n64));
}

// ------------------------------------------------------------------------------------------ cancellation

/// Counts model calls.
struct Counting<'a> {
    calls: &'a Cell<usize>,
    on_call: Option<(usize, &'a JobContext)>,
}

impl Denoiser for Counting<'_> {
    fn predict(&self, x: &Tensor, t: &Tensor, _c: Option<&Tensor>) -> candle_core::Result<Tensor> {
        self.calls.set(self.calls.get() + 1);
        if let Some((k, ctx)) = self.on_call
            && self.calls.get() == k
        {
            ctx.progress().cancel();
        }
        toy(x, t)
    }
}

#[test]
fn cancellation_stops_within_one_step() {
    let dev = Device::Cpu;
    let x = Rng::new(1).randn(&[1, 2, 3, 3], DType::F32, &dev).unwrap();
    let sched = linear().respaced("ddim20").unwrap();

    // a callback refusing at step 3: exactly 3 model calls happened
    let calls = Cell::new(0);
    let den = Counting {
        calls: &calls,
        on_call: None,
    };
    let mut seen = Vec::new();
    let mut stop_at_3 = |done: usize, total: usize| {
        seen.push((done, total));
        if done == 3 { Err(Cancelled) } else { Ok(()) }
    };
    let r = Ddim::new(&sched, DdimOptions::default()).sample(&den, &x, None, None, &mut stop_at_3);
    assert!(matches!(r, Err(DiffusionError::Cancelled)));
    assert_eq!(calls.get(), 3);
    assert_eq!(seen, vec![(0, 20), (1, 20), (2, 20), (3, 20)]);

    // a job cancelled while the 5th model call runs: no 6th call, JobError::Cancelled
    for sampler in ["ddim", "ddpm", "invert", "edm"] {
        let ctx = JobContext::detached();
        let calls = Cell::new(0);
        let den = Counting {
            calls: &calls,
            on_call: Some((5, &ctx)),
        };
        let mut progress = job_progress(&ctx, "sampling");
        let mut rng = Rng::new(2);
        let r = match sampler {
            "ddim" => Ddim::new(&sched, DdimOptions::default()).sample(&den, &x, None, None, &mut progress),
            "ddpm" => Ddpm::new(&sched, DdpmOptions::default()).sample(&den, &x, None, &mut rng, &mut progress),
            "invert" => Ddim::new(&sched, DdimOptions::default()).invert(&den, &x, None, &mut progress),
            _ => edm_sample(
                &EdmPrecond::new(&den),
                &x,
                None,
                &EdmConfig::default(),
                None,
                &mut progress,
            ),
        };
        let e: JobError = r.unwrap_err().into();
        assert_eq!(e, JobError::Cancelled, "{sampler}");
        // EDM calls the model twice per step, so the step with the 5th call finishes with its 6th.
        let expected = if sampler == "edm" { 6 } else { 5 };
        assert_eq!(calls.get(), expected, "{sampler}");
        let p = ctx.progress();
        assert!(p.fraction() > 0.0 && p.fraction() < 1.0);
        assert!(p.message().starts_with("sampling "), "{}", p.message());
    }
    // a finished run reports 100 %
    let ctx = JobContext::detached();
    let mut progress = job_progress(&ctx, "ddim");
    Ddim::new(&sched, DdimOptions::default())
        .sample(&toy_denoiser(Prediction::Epsilon), &x, None, None, &mut progress)
        .unwrap();
    assert_eq!(ctx.progress().fraction(), 1.0);
    assert_eq!(ctx.progress().message(), "ddim 20/20");
}
