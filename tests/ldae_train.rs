//! The demo LDAE trainer end to end at toy size: three stages of a few steps on 16³ volumes, the model
//! folder written as `train ldae-demo` writes it, every part loaded back strictly through the same
//! checkpoint path an official `.pth` takes (official key names under the per-file prefixes), the
//! manifest's config deserialising into the networks' configs, and resume from the stage files.

use candle_core::{DType, Device, Tensor};
use latent_workbench::core::diffusion::{NoiseSource, Rng};
use latent_workbench::core::jobs::JobContext;
use latent_workbench::core::manifest::Manifest;
use latent_workbench::core::train::encode_tensors;
use latent_workbench::core::weights::LoadOptions;
use latent_workbench::methods::demo_data::{cohort, warp};
use latent_workbench::methods::ldae::autoencoder::AutoencoderKL;
use latent_workbench::methods::ldae::config::AutoencoderKlConfig;
use latent_workbench::methods::ldae::demo_train::{
    self, CohortSplit, DemoArchitecture, DemoSettings, Grid, Persistence, REFERENCE_BLUR_VOXELS, Scan, ScanGeometry,
    StageSteps,
};
use latent_workbench::methods::ldae::model::LdaeModel;
use latent_workbench::methods::ldae::semantic_encoder::{SemanticEncoder, SemanticEncoderConfig};
use latent_workbench::methods::ldae::unet::ShiftUNet;
use latent_workbench::methods::ldae::unet_config::UNetConfig;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Smooth random volumes in [0, 1]: a few Gaussian blobs each.
fn scans(n: usize, seed: u64) -> Vec<Scan> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let centres: Vec<[f32; 3]> = (0..3)
                .map(|_| [0; 3].map(|_| 4.0 + 8.0 * rng.uniform() as f32))
                .collect();
            let mut v = Vec::with_capacity(16 * 16 * 16);
            for x in 0..16 {
                for y in 0..16 {
                    for z in 0..16 {
                        let p = [x as f32, y as f32, z as f32];
                        let s: f32 = centres
                            .iter()
                            .map(|c| {
                                let d2: f32 = (0..3).map(|k| (p[k] - c[k]).powi(2)).sum();
                                (-d2 / 12.0).exp()
                            })
                            .sum();
                        v.push(s.min(1.0));
                    }
                }
            }
            Scan {
                subject: format!("sub-{i:03}"),
                month: 0,
                tensor: Tensor::from_vec(v, (1, 1, 16, 16, 16), &Device::Cpu).unwrap(),
                geometry: None,
            }
        })
        .collect()
}

fn settings() -> DemoSettings {
    let mut s = DemoSettings::demo(
        StageSteps {
            ae: 3,
            unet: 3,
            repr: 2,
        },
        7,
    );
    s.arch = DemoArchitecture::tiny();
    s.ae_crop = [8, 8, 8];
    s.unet_batch = 2;
    s.eval_scans = 1;
    s
}

fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

fn flat(t: &[(String, Tensor)]) -> Vec<(String, Vec<f32>)> {
    t.iter()
        .map(|(k, v)| (k.clone(), v.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

#[test]
fn demo_trainer_writes_an_official_layout_folder_and_resumes_from_stage_files() {
    let dir = tempfile::tempdir().unwrap();
    let train = scans(3, 1);
    let mut heldout = scans(1, 2);
    // A grid in world mm (12 mm voxels around the MNI origin), so the ventricle proxy is reported.
    let geometry = ScanGeometry {
        spacing_mm: [12.0; 3],
        world_from_voxel: [
            [12.0, 0.0, 0.0, -90.0],
            [0.0, 12.0, 0.0, -110.0],
            [0.0, 0.0, 12.0, -70.0],
            [0.0, 0.0, 0.0, 1.0],
        ],
    };
    heldout[0].geometry = Some(geometry);
    let settings = settings();
    let ctx = JobContext::detached();
    let persist = Persistence {
        checkpoint: dir.path().join("checkpoint.safetensors"),
        dir: dir.path().to_path_buf(),
        every: 2,
        write,
        resume: false,
    };
    let lines = std::sync::Mutex::new(Vec::new());
    let log = |l: &str| lines.lock().unwrap().push(l.to_string());
    let model = demo_train::train(&settings, &train, &heldout, &Device::Cpu, &ctx, Some(&persist), &log).unwrap();
    assert_eq!(model.stages.len(), 3);
    assert!(model.stages.iter().all(|s| !s.loaded && s.final_loss.is_finite()));
    let eval = model.ae_eval.as_ref().unwrap();
    assert!(eval.ssim.is_finite());
    let input_ml = cohort::ventricle_csf_ml(&geometry.volume(&heldout[0].tensor).unwrap());
    assert_eq!(eval.ventricle_ml_input, Some(input_ml), "the proxy of the input scan");
    assert!(
        eval.ventricle_ml_reconstruction
            .is_some_and(|ml| ml.is_finite() && ml >= 0.0)
    );
    // The blur yardstick: slightly blurred, the input stays close to itself (SSIM below 1 and well
    // above the untrained autoencoder's), and its proxy is its own measure of the blurred scan.
    assert!(
        eval.blurred_ssim < 1.0 && eval.blurred_ssim > 0.5 && eval.blurred_ssim > eval.ssim,
        "{eval:?}"
    );
    let input = heldout[0].tensor.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let blurred = warp::smooth(&input, [16; 3], REFERENCE_BLUR_VOXELS);
    let blurred = Tensor::from_vec(blurred, (1, 1, 16, 16, 16), &Device::Cpu).unwrap();
    assert_eq!(
        eval.ventricle_ml_blurred,
        Some(cohort::ventricle_csf_ml(&geometry.volume(&blurred).unwrap())),
        "the proxy of the blurred input"
    );
    assert_eq!(model.latent_shape, vec![3, 8, 8, 8]);
    assert!(lines.lock().unwrap().len() >= 3);

    // The folder as the CLI writes it.
    let weights = dir.path().join("model.safetensors");
    std::fs::write(&weights, encode_tensors(&model.tensors, &BTreeMap::new()).unwrap()).unwrap();
    let split = CohortSplit {
        seed: 0,
        train: 0..3,
        heldout: 3..4,
        months: vec![0],
    };
    let grid = Grid {
        spacing_mm: 12.0,
        shape: [16, 16, 16],
    };
    let manifest = demo_train::manifest("ldae-test", &settings.arch, grid, &split, &model, "test".into()).unwrap();
    let text = toml::to_string_pretty(&manifest).unwrap();
    std::fs::write(dir.path().join("model.toml"), &text).unwrap();
    // The pipeline's loader reads the folder as written.
    let loaded = LdaeModel::from_dir(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(loaded.config().aekl, settings.arch.aekl);
    assert!(loaded.has_semantic_stats());
    let back: Manifest = toml::from_str(&text).unwrap();
    assert_eq!(back.family, "ldae");
    let aekl: AutoencoderKlConfig = back.config["aekl"].clone().try_into().unwrap();
    let enc: SemanticEncoderConfig = back.config["encoder"].clone().try_into().unwrap();
    let unet: UNetConfig = back.config["unet"].clone().try_into().unwrap();
    assert_eq!(
        (&aekl, &enc, &unet),
        (&settings.arch.aekl, &settings.arch.encoder, &settings.arch.unet)
    );
    assert_eq!(back.config["timesteps"].as_integer(), Some(1000));
    assert_eq!(
        back.latent["heldout_subjects"].as_array().unwrap()[0].as_str(),
        Some("sub-003")
    );

    // Each part loads strictly (every tensor used, none missing) under its prefix.
    let opts = |p: &str| LoadOptions {
        select_prefix: Some(p.to_string()),
        ..LoadOptions::default()
    };
    let dev = Device::Cpu;
    let (ae, _) = AutoencoderKL::from_checkpoint(&weights, &opts("autoencoderkl."), &aekl, DType::F32, &dev).unwrap();
    let (encoder, _) = SemanticEncoder::from_checkpoint(&weights, &opts("encoder."), &enc, DType::F32, &dev).unwrap();
    let (decoder, _) =
        ShiftUNet::from_checkpoint(&weights, &opts("decoder."), &unet, enc.emb_chans, DType::F32, &dev).unwrap();
    let keys: Vec<&str> = model.tensors.iter().map(|(k, _)| k.as_str()).collect();
    for k in [
        "autoencoderkl.encoder.blocks.0.conv.weight",
        "autoencoderkl.quant_conv_mu.conv.weight",
        "encoder.backbone.backbone.features.0.0.weight",
        "encoder.positional_encoding.pe",
        "encoder.cross_attention.in_proj_weight",
        "decoder.input_blocks.0.0.weight",
        "decoder.label_emb.weight",
        "semantic_mean",
        "semantic_std",
    ] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
    let stats: HashMap<&str, &Tensor> = model.tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    assert_eq!(stats["semantic_std"].dims(), [enc.emb_chans]);
    // The loaded parts run: y_sem, (ε̂, G), a reconstruction.
    let x = &train[0].tensor;
    let y = encoder.forward(&demo_train::encoder_input(x).unwrap()).unwrap();
    let z = ae.encode_mean(x).unwrap();
    let noise = Rng::new(3).randn(z.dims(), DType::F32, &dev).unwrap();
    let (eps, g) = decoder
        .forward(&noise, &Tensor::new(&[10f32], &dev).unwrap(), &y)
        .unwrap();
    assert_eq!((eps.dims(), g.dims()), (z.dims(), z.dims()));
    assert_eq!(ae.reconstruct(x).unwrap().dims(), x.dims());

    // Resume: the finished stages are reloaded instead of retrained, and give the same model.
    let resumed = demo_train::train(
        &settings,
        &train,
        &heldout,
        &dev,
        &ctx,
        Some(&Persistence {
            resume: true,
            ..persist.clone()
        }),
        &|_| {},
    )
    .unwrap();
    assert!(resumed.stages.iter().all(|s| s.loaded));
    assert_eq!(flat(&resumed.tensors), flat(&model.tensors));
    assert_eq!(resumed.latent_scale, model.latent_scale);

    // The latents LDAE diffuses (0.8730 × the strictly loaded encoder's means) have unit variance per
    // channel over the training scans, and the recorded x̂₀ clamp puts their 99.9 % quantile at 0.9 of it.
    let z: Vec<Tensor> = train
        .iter()
        .map(|s| (ae.encode_mean(&s.tensor).unwrap() * 0.8730).unwrap())
        .collect();
    let z = Tensor::cat(&z, 0).unwrap();
    assert_eq!(loaded.config().x0_clip, model.x0_clip);
    assert!(model.x0_clip > 1.0, "{}", model.x0_clip);
    for c in 0..3 {
        let v = z
            .narrow(1, c, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let std = (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(
            mean.abs() < 1e-3 && (std - 1.0).abs() < 1e-3,
            "channel {c}: mean {mean}, std {std}"
        );
        let outside = v.iter().filter(|x| x.abs() > 0.9 * model.x0_clip).count();
        assert!(
            outside as f64 <= 0.002 * n,
            "channel {c}: {outside} of {n} beyond 0.9 × x0_clip"
        );
    }

    // An autoencoder stage file from an earlier rule (latents a quarter of the size, as the old rule
    // left them smaller): resume refuses the later stages' files, trained on those latents, by name;
    // without them it normalises the autoencoder again, back to the same encoder, and records the
    // composed scale; a further resume then loads every stage as it is.
    let stage_ae = persist.stage_file("ae");
    let mut old_rule: Vec<(String, Tensor)> = candle_core::safetensors::load(&stage_ae, &dev)
        .unwrap()
        .into_iter()
        .collect();
    for (k, v) in old_rule.iter_mut() {
        *v = match k.as_str() {
            "autoencoderkl.quant_conv_mu.conv.weight"
            | "autoencoderkl.quant_conv_mu.conv.bias"
            | "ldae_demo.latent_scale" => (&*v * 0.25).unwrap(),
            "autoencoderkl.quant_conv_log_sigma.conv.bias" => (&*v + 2.0 * 0.25f64.ln()).unwrap(),
            "autoencoderkl.post_quant_conv.conv.weight" => (&*v * 4.0).unwrap(),
            _ => continue,
        };
    }
    std::fs::write(&stage_ae, encode_tensors(&old_rule, &BTreeMap::new()).unwrap()).unwrap();
    let resume = Persistence {
        resume: true,
        ..persist.clone()
    };
    let err = match demo_train::train(&settings, &train, &heldout, &dev, &ctx, Some(&resume), &|_| {}) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a later stage trained on other latents was accepted"),
    };
    assert!(err.contains("stage-unet.safetensors"), "{err}");
    for stage in ["unet", "repr"] {
        std::fs::remove_file(persist.stage_file(stage)).unwrap();
    }
    // The last stage's checkpoint is left beside them (the CLI removes it with the stage files).
    if persist.checkpoint.is_file() {
        assert!(err.contains("checkpoint.safetensors"), "{err}");
        std::fs::remove_file(&persist.checkpoint).unwrap();
    }
    let renormalised = demo_train::train(&settings, &train, &heldout, &dev, &ctx, Some(&resume), &|_| {}).unwrap();
    let loaded_flags: Vec<bool> = renormalised.stages.iter().map(|s| s.loaded).collect();
    assert_eq!(loaded_flags, [true, false, false]);
    let close = |a: &[f32], b: &[f32], tol: f32| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol * y.abs().max(1.0));
    assert!(
        close(&renormalised.latent_scale, &model.latent_scale, 1e-4),
        "{:?} against {:?}",
        renormalised.latent_scale,
        model.latent_scale
    );
    let ae_of = |t: &[(String, Tensor)]| -> Vec<(String, Vec<f32>)> {
        flat(t)
            .into_iter()
            .filter(|(k, _)| k.starts_with("autoencoderkl."))
            .collect()
    };
    for ((k, a), (_, b)) in ae_of(&renormalised.tensors).iter().zip(ae_of(&model.tensors).iter()) {
        assert!(close(a, b, 1e-4), "{k}");
    }
    let again = demo_train::train(&settings, &train, &heldout, &dev, &ctx, Some(&resume), &|_| {}).unwrap();
    assert!(again.stages.iter().all(|s| s.loaded));
    assert_eq!(again.latent_scale, renormalised.latent_scale);
}
