//! WaLa generation through the library: a WaLa model folder as upstream publishes one (args.json
//! and a checkpoint of random tiny weights), sampled, decoded and meshed; seeds, cancellation and
//! the errors a user meets.

use latent_workbench::core::diffusion::Cancelled;
use latent_workbench::core::manifest::find_entry;
use latent_workbench::core::train::SeededParams;
use latent_workbench::methods::wala::generate::{Framing, GenerateOptions, WalaGenerator, frame_points};
use latent_workbench::methods::wala::latent::LatentModel;
use latent_workbench::methods::wala::uvit::SampleOptions;
use latent_workbench::methods::wala::vqvae::{CHECKPOINT_PREFIX, VqVae, VqVaeConfig};
use std::collections::HashMap;

#[path = "common/model_folder.rs"]
mod model_folder;
#[path = "common/wala.rs"]
mod wala;

fn options(seed: u64) -> GenerateOptions {
    GenerateOptions {
        sample: SampleOptions {
            steps: 3,
            guidance: 1.5,
        },
        seed,
    }
}

fn sphere_points(n: usize, centre: [f32; 3], r: f32) -> Vec<[f32; 3]> {
    (0..n)
        .map(|i| {
            // A Fibonacci sphere: deterministic, even.
            let y = 1.0 - 2.0 * (i as f32 + 0.5) / n as f32;
            let ring = (1.0 - y * y).sqrt();
            let a = i as f32 * 2.399_963;
            [
                centre[0] + r * ring * a.cos(),
                centre[1] + r * y,
                centre[2] + r * ring * a.sin(),
            ]
        })
        .collect()
}

fn no_progress() -> impl FnMut(usize, usize) -> Result<(), Cancelled> {
    |_, _| Ok(())
}

#[test]
fn a_self_contained_folder_generates_the_same_shape_for_the_same_seed() {
    let dir = tempfile::tempdir().unwrap();
    // The autoencoder inside the checkpoint, configured by args.json as upstream does (its
    // hidden width is fixed at 128 there).
    let vq_args = serde_json::json!({
        "e_dim": 4, "n_e": 16, "grid_size": 6, "max_depth": 3, "max_training_level": 2,
        "encoder_num_tran": 0, "decoder_num_tran": 0, "resolution": 64,
    });
    let vq_cfg = VqVaeConfig::from_args_json(&vq_args).unwrap();
    let params = SeededParams::new(11);
    VqVae::load(
        params.var_builder(candle_core::DType::F32, &candle_core::Device::Cpu),
        &vq_cfg,
    )
    .unwrap();
    let ae: HashMap<_, _> = params
        .tensors()
        .into_iter()
        .map(|(k, t)| (format!("{CHECKPOINT_PREFIX}{k}"), t))
        .collect();
    let folder = wala::random_wala_diffusion(&dir.path().join("WaLa-PC-tiny"), 5, vq_args, ae);
    let generator = WalaGenerator::open(&folder, None).unwrap();
    assert!(generator.autoencoder_in_checkpoint);
    assert_eq!(generator.autoencoder.grid, 64);
    assert!(
        generator.describe().contains("point-cloud conditioned"),
        "{}",
        generator.describe()
    );

    let cond = frame_points(sphere_points(200, [5.0, 5.0, 5.0], 2.0), Framing::Fit).unwrap();
    let mut steps = Vec::new();
    let mut record = |done: usize, total: usize| -> Result<(), Cancelled> {
        steps.push((done, total));
        Ok(())
    };
    let a = generator
        .generate(Some(&cond.points), &options(1), &mut record)
        .unwrap();
    assert_eq!(steps.first(), Some(&(0, 3)));
    assert_eq!(steps.last(), Some(&(3, 3)));
    let (shape, za) = a.latent.values().unwrap();
    assert_eq!(shape, [4, 6, 6, 6]);
    assert_eq!(a.decoded.sdf.shape(), [64; 3]);
    assert_eq!(a.decoded.codes.len(), 216);
    let (_, za2) = generator
        .generate(Some(&cond.points), &options(1), &mut no_progress())
        .unwrap()
        .latent
        .values()
        .unwrap();
    assert_eq!(za, za2, "the same seed gives the same latent");
    let (_, zb) = generator
        .generate(Some(&cond.points), &options(2), &mut no_progress())
        .unwrap()
        .latent
        .values()
        .unwrap();
    assert_ne!(za, zb);
    // Another condition changes the sample too (the encoder path is live).
    let other = frame_points(sphere_points(200, [0.0; 3], 1.0), Framing::AsGiven).unwrap();
    let (_, zc) = generator
        .generate(Some(&other.points), &options(1), &mut no_progress())
        .unwrap()
        .latent
        .values()
        .unwrap();
    assert_ne!(za, zc);
    // Any mesh lies in the model's [-1, 1]³ frame.
    if let Some(mesh) = generator.mesh(&a).unwrap() {
        assert!(mesh.positions.iter().flatten().all(|v| (-1.0..=1.0).contains(v)));
    }
}

#[test]
fn cancelling_stops_the_sampler_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let ae_dir = dir.path().join("ae");
    std::fs::create_dir(&ae_dir).unwrap();
    wala::random_wala_model(&ae_dir, "wala-ae", 3);
    let ae = LatentModel::from_entry(&find_entry(ae_dir.to_str().unwrap(), "wala").unwrap()).unwrap();
    let folder = wala::random_wala_diffusion(&dir.path().join("pc"), 5, serde_json::json!({}), HashMap::new());
    let generator = WalaGenerator::open(&folder, Some(ae)).unwrap();
    assert!(!generator.autoencoder_in_checkpoint);
    assert!(generator.describe().contains("wala-ae"), "{}", generator.describe());
    let pts = sphere_points(64, [0.0; 3], 0.5);
    let mut calls = 0;
    let mut cancel_at_second = |_: usize, _: usize| -> Result<(), Cancelled> {
        calls += 1;
        if calls == 2 { Err(Cancelled) } else { Ok(()) }
    };
    let err = generator
        .generate(Some(&pts), &options(1), &mut cancel_at_second)
        .err()
        .unwrap();
    assert!(err.is_cancelled(), "{err}");
    assert_eq!(calls, 2);
    // A point-cloud model asks for its points.
    let err = generator.generate(None, &options(1), &mut no_progress()).err().unwrap();
    assert!(err.to_string().contains("needs a point cloud"), "{err}");
}

#[test]
fn broken_folders_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = WalaGenerator::open(&dir.path().join("absent"), None)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("absent") && err.contains("not a folder"), "{err}");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = WalaGenerator::open(&empty, None).err().unwrap().to_string();
    assert!(err.contains("checkpoint.ckpt"), "{err}");
    // A checkpoint without the autoencoder it needs (and no stand-in): the missing key is named.
    let folder = wala::random_wala_diffusion(&dir.path().join("pc"), 5, serde_json::json!({}), HashMap::new());
    let err = WalaGenerator::open(&folder, None).err().unwrap().to_string();
    assert!(err.contains("max_depth") || err.contains("e_dim"), "{err}");
    std::fs::write(folder.join("args.json"), b"{ not json").unwrap();
    let err = WalaGenerator::open(&folder, None).err().unwrap().to_string();
    assert!(err.contains("args.json") && err.contains("not JSON"), "{err}");
}
