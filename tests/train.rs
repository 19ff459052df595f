//! Training utilities end to end: a tiny regression fitted deterministically, checkpoints that
//! resume bit-identically, cancellation between steps, and the `train` command's unknown-name error.

use candle_core::{DType, Device, Module, Tensor};
use latent_workbench::core::jobs::{self, JobContext, JobError};
use latent_workbench::core::train::{AdamWConfig, Checkpoint, CheckpointPolicy, LrSchedule, SeededParams, TrainLoop};
use std::path::Path;

/// y = 2·x0 − 3·x1 + 0.5 fitted by a linear layer on batches drawn from each step's generator.
fn fit(
    seed: u64,
    steps: usize,
    ctx: &JobContext,
    checkpoint: Option<(&Path, usize)>,
    resume: Option<&Path>,
    cancel_at: Option<usize>,
) -> Result<Vec<f32>, JobError> {
    let dev = Device::Cpu;
    let params = SeededParams::new(seed);
    let layer = candle_nn::linear(2, 1, params.var_builder(DType::F32, &dev).pp("fc")).unwrap();
    let schedule = LrSchedule::WarmupCosine {
        peak: 0.1,
        floor: 0.005,
        warmup: 10,
        total: steps,
    };
    let mut lp = TrainLoop::new(
        params.clone(),
        AdamWConfig {
            weight_decay: 0.0,
            ..Default::default()
        },
        schedule,
        steps,
        seed,
    )
    .map_err(JobError::from)?
    .clip_grad_norm(5.0);
    if let Some((path, every)) = checkpoint {
        lp = lp.checkpoints(CheckpointPolicy {
            path: path.to_path_buf(),
            every,
            write: |p, b| latent_workbench::io::atomic::write_bytes(p, b).map_err(std::io::Error::other),
        });
    }
    if let Some(path) = resume {
        lp.resume(&Checkpoint::read(path).map_err(JobError::from)?, path)
            .map_err(JobError::from)?;
    }
    lp.run(ctx, |step, rng| {
        // Cancelling from inside the step (not from a watcher thread racing a fast loop) makes
        // the stop deterministic: the loop sees it before the next step.
        if cancel_at == Some(step) {
            ctx.progress().cancel();
        }
        let x = Tensor::from_vec(rng.normals_f32(64), (32, 2), &dev)?;
        let target = (((x.narrow(1, 0, 1)? * 2.0)? - (x.narrow(1, 1, 1)? * 3.0)?)? + 0.5)?;
        (layer.forward(&x)? - target)?.sqr()?.mean_all()
    })
    .map_err(JobError::from)?;
    Ok(params
        .tensors()
        .iter()
        .flat_map(|(_, t)| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .collect())
}

#[test]
fn regression_fits_and_repeats_bit_identically() {
    let ctx = JobContext::detached();
    let a = fit(11, 200, &ctx, None, None, None).unwrap();
    let b = fit(11, 200, &ctx, None, None, None).unwrap();
    assert_eq!(a, b, "same seed, same weights to the bit");
    // Names sort as fc.bias, fc.weight.
    let (bias, w0, w1) = (a[0], a[1], a[2]);
    assert!(
        (bias - 0.5).abs() < 0.02 && (w0 - 2.0).abs() < 0.02 && (w1 + 3.0).abs() < 0.02,
        "{a:?}"
    );
    assert_ne!(fit(12, 200, &ctx, None, None, None).unwrap(), a);
    assert_eq!(ctx.progress().fraction(), 1.0);
    assert!(
        ctx.progress().message().contains("step 200/200 loss"),
        "{}",
        ctx.progress().message()
    );
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck.safetensors");
    let full = fit(5, 60, &JobContext::detached(), None, None, None).unwrap();
    // Stop a checkpointing run by cancelling it during step 25: it finishes that step, writes a
    // checkpoint and says Cancelled.
    let h = jobs::spawn("fit", None, {
        let ck = ck.clone();
        move |ctx| fit(5, 60, ctx, Some((&ck, 1000)), None, Some(25))
    });
    assert_eq!(h.wait(), Err(JobError::Cancelled));
    let saved = Checkpoint::read(&ck).unwrap();
    assert_eq!(saved.step, 26);
    let resumed = fit(5, 60, &JobContext::detached(), None, Some(&ck), None).unwrap();
    assert_eq!(resumed, full);
    // A checkpoint from another seed is refused with the file named.
    let e = fit(6, 60, &JobContext::detached(), None, Some(&ck), None).unwrap_err();
    assert!(
        e.to_string().contains("seed") && e.to_string().contains("ck.safetensors"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary files left"
    );
}

#[test]
fn train_command_lists_known_models_for_an_unknown_name() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_latent-workbench"))
        .args(["train", "no-such-model", "--output"])
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-model") && err.contains("relreps-sprites-a") && err.contains("relreps-sprites-wide"),
        "{err}"
    );
}

#[test]
fn sprites_command_writes_pngs_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_latent-workbench"))
        .args(["demo-data", "sprites", "--count", "5", "--seed", "3", "--json", "-o"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = std::fs::read_to_string(dir.path().join("labels.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "id,file,shape,scale,rotation,x,y,colour");
    assert_eq!(lines.len(), 6);
    let file = lines[1].split(',').nth(1).unwrap();
    let img = latent_workbench::io::image::read(&dir.path().join(file)).unwrap();
    assert_eq!((img.width(), img.height()), (64, 64));
}
