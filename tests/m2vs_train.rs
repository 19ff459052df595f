//! `train m2vs-demo`'s library part at tiny scale: a few steps lower the shape autoencoder's
//! loss, and the trained parameters, saved with the bundle's key prefixes, load through
//! `M2vsBundle::load` and reconstruct a sparse point sequence.

use candle_core::Device;
use latent_workbench::core::diffusion::Cancelled;
use latent_workbench::core::jobs::JobContext;
use latent_workbench::core::train::encode_tensors;
use latent_workbench::methods::demo_data::motion::{generate, sample_sparse};
use latent_workbench::methods::motion2vecsets::demo_train::{self, DemoSettings, StageSteps, heldout_specs};
use latent_workbench::methods::motion2vecsets::pipeline::sample_shape;
use latent_workbench::methods::motion2vecsets::{
    GridOptions, M2vsBundle, MiseOptions, PipelineOptions, Stage, reconstruct,
};

#[test]
fn tiny_training_lowers_the_loss_and_the_bundle_reconstructs() {
    let steps = StageSteps {
        shape_ae: 24,
        deform_ae: 3,
        shape_denoiser: 3,
        deform_denoiser: 3,
    };
    let settings = DemoSettings::tiny(steps, 7);
    let trained = demo_train::train(&settings, &JobContext::detached(), None, None).unwrap();
    assert_eq!(trained.stages.len(), 4);
    let shape = &trained.stages[0];
    assert_eq!(shape.stage, "shape_ae");
    assert_eq!(shape.ran, 24);
    let l = &shape.losses;
    assert!(l.iter().all(|v| v.is_finite()));
    let first = l[..4].iter().sum::<f32>();
    let last = l[l.len() - 4..].iter().sum::<f32>();
    assert!(last < first, "shape AE loss {first} → {last}");
    for s in &trained.stages[1..] {
        assert_eq!(s.ran, 3, "{}", s.stage);
        assert!(s.final_loss.is_finite(), "{}", s.stage);
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    std::fs::write(&path, encode_tensors(&trained.tensors(), &Default::default()).unwrap()).unwrap();
    let table = settings.config.to_table();
    let cfg = latent_workbench::methods::motion2vecsets::BundleConfig::from_table(&table).unwrap();
    let bundle = M2vsBundle::load(&cfg, &path, &Device::Cpu).unwrap();
    let models = bundle.models();
    models.validate().unwrap();

    let spec = heldout_specs(1)[0];
    let seq = generate(&spec).unwrap().sequence;
    let obs: Vec<Vec<[f32; 3]>> = sample_sparse(&seq, cfg.points, 0.001, 3)
        .into_iter()
        .take(cfg.frames)
        .collect();
    let mut quiet = |_: Stage, _: usize, _: usize| -> Result<(), Cancelled> { Ok(()) };
    let mut opts = PipelineOptions {
        steps: 3,
        mise: MiseOptions {
            resolution_0: 8,
            upsampling_steps: 0,
            ..MiseOptions::default()
        },
        ..PipelineOptions::default()
    };
    // An untrained-looking toy field may sit on one side of logit 0: mesh at its median instead.
    let z = sample_shape(&models, &obs[0], &opts, &mut quiet).unwrap();
    let mut grid = bundle
        .shape_ae
        .occupancy_grid(
            &z,
            &GridOptions {
                points_per_axis: 9,
                ..GridOptions::default()
            },
        )
        .unwrap();
    grid.sort_by(f32::total_cmp);
    opts.mise.threshold = grid[grid.len() / 2];
    let rec = reconstruct(&models, &obs, &opts, &mut quiet).unwrap();
    assert_eq!(rec.sequence.frames.len(), cfg.frames);
    assert!(!rec.sequence.triangles.is_empty());
    assert!(rec.sequence.frames.iter().flatten().flatten().all(|c| c.is_finite()));

    // The cheap held-out check runs on the same networks.
    let eval = demo_train::evaluate(&bundle, &settings, 1, 2, &JobContext::detached()).unwrap();
    assert!(
        (0.0..=1.0).contains(&eval.shape_ae_iou) && eval.static_l2 > 0.0,
        "{eval:?}"
    );
}
