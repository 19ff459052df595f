//! The Motion2VecSets reconstruction pipeline (`methods::motion2vecsets::pipeline`) end to end on
//! the parity fixtures' tiny networks (reference layout, random weights; the denoisers' observed
//! point count, which no weight depends on, set to 64) and a short sparse sequence from
//! `demo_data::motion`.
//!
//! Random weights give a random occupancy field, so each run meshes at the median logit of a
//! coarse grid of the sampled shape (a threshold is an option like any other): that guarantees a
//! surface without trained weights.

use std::path::PathBuf;

use candle_core::{Device, IndexOp, Tensor};
use latent_workbench::core::diffusion::Cancelled;
use latent_workbench::methods::demo_data::motion::{MotionKind, MotionSpec, generate, sample_sparse};
use latent_workbench::methods::motion2vecsets::pipeline::{
    Normalisation, UnitCube, decode_frames, mesh_shape, sample_shape,
};
use latent_workbench::methods::motion2vecsets::{
    AutoEncoderConfig, DenoiserConfig, GridOptions, KlAutoEncoder, LatentDenoiser, M2vsError, MeshStats, MiseOptions,
    Models, Observation, PipelineOptions, Reconstruction, Stage, load_autoencoder, load_denoiser, reconstruct,
};

const T: usize = 3;
const N: usize = 64;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/m2vs")
        .join(name)
}

struct Nets {
    shape_ae: KlAutoEncoder,
    deform_ae: KlAutoEncoder,
    shape_dn: LatentDenoiser,
    sparse_dn: LatentDenoiser,
    partial_dn: LatentDenoiser,
}

fn nets() -> Nets {
    let dev = Device::Cpu;
    let ae = |f: &str, c: AutoEncoderConfig| load_autoencoder(&fixture(f), &c, &dev).unwrap().0;
    let dn = |f: &str, c: DenoiserConfig| {
        let c = DenoiserConfig {
            cond_num_inputs: N,
            ..c
        };
        load_denoiser(&fixture(f), &c, &dev).unwrap().0
    };
    Nets {
        shape_ae: ae("shape_ae.pth", AutoEncoderConfig::tiny_shape()),
        deform_ae: ae("deform_ae.pth", AutoEncoderConfig::tiny_deform()),
        shape_dn: dn("shape_diff.pth", DenoiserConfig::tiny_shape()),
        sparse_dn: dn(
            "deform_diff_sparse.pth",
            DenoiserConfig::tiny_deform(Observation::Paired),
        ),
        partial_dn: dn(
            "deform_diff_partial.pth",
            DenoiserConfig::tiny_deform(Observation::Separate),
        ),
    }
}

impl Nets {
    fn models(&self, observation: Observation) -> Models<'_> {
        Models {
            shape_ae: &self.shape_ae,
            deform_ae: &self.deform_ae,
            shape_denoiser: &self.shape_dn,
            deform_denoiser: match observation {
                Observation::Paired => &self.sparse_dn,
                Observation::Separate => &self.partial_dn,
            },
            device: Device::Cpu,
        }
    }
}

/// T frames of N corresponding noisy surface points of a bending capsule (unit cube).
fn sparse_sequence(seed: u64) -> Vec<Vec<[f32; 3]>> {
    let spec = MotionSpec {
        frames: T,
        resolution: 24,
        ..MotionSpec::new(MotionKind::BendingCapsule)
    };
    let seq = generate(&spec).unwrap().sequence;
    sample_sparse(&seq, N, 0.001, seed)
}

fn no_progress() -> impl FnMut(Stage, usize, usize) -> Result<(), Cancelled> {
    |_, _, _| Ok(())
}

/// Small sampler and MISE (8 cells, 2 steps → 32³): random weights make a wiggly field whose
/// surface fills much of a finer grid (64³ gave 190 000 vertices), and speed matters here.
fn options(models: &Models, frame1: &[[f32; 3]]) -> PipelineOptions {
    let mut opts = PipelineOptions {
        seed: 7,
        deform_seed: 3,
        steps: 6,
        mise: MiseOptions {
            resolution_0: 8,
            ..MiseOptions::default()
        },
        ..PipelineOptions::default()
    };
    let z = sample_shape(models, frame1, &opts, &mut no_progress()).unwrap();
    let grid = models
        .shape_ae
        .occupancy_grid(
            &z,
            &GridOptions {
                points_per_axis: 9,
                ..GridOptions::default()
            },
        )
        .unwrap();
    let mut sorted = grid.clone();
    sorted.sort_by(f32::total_cmp);
    opts.mise.threshold = sorted[sorted.len() / 2];
    opts
}

fn run(models: &Models, obs: &[Vec<[f32; 3]>], opts: &PipelineOptions) -> Reconstruction {
    reconstruct(models, obs, opts, &mut no_progress()).unwrap()
}

#[test]
fn reconstructs_a_short_sparse_sequence_with_frame_one_topology() {
    let nets = nets();
    let models = nets.models(Observation::Paired);
    let obs = sparse_sequence(1);
    let opts = options(&models, &obs[0]);
    let mut stages = Vec::new();
    let r = reconstruct(&models, &obs, &opts, &mut |s, _, _| {
        if stages.last() != Some(&s) {
            stages.push(s);
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(stages, Stage::RECONSTRUCTION);

    // Latent shapes: (1, M, C) shape set, (1, T − 1, M, C) deformation sets.
    assert_eq!(r.shape_latents.dims(), [1, 16, 4]);
    assert_eq!(r.deformation_latents.as_ref().unwrap().dims(), [1, T - 1, 16, 8]);

    // T frames, one vertex count, frame 1's faces, a valid mesh sequence.
    let seq = &r.sequence;
    let v = r.frame1.positions.len();
    assert!(v > 100 && !seq.triangles.is_empty(), "{v} vertices");
    assert_eq!(seq.frames.len(), T);
    assert!(seq.frames.iter().all(|f| f.len() == v));
    assert_eq!(seq.triangles, r.frame1.triangles);
    seq.validate().unwrap();

    // Frame 1 is the MISE mesh of the sampled shape.
    let again = mesh_shape(&models, &r.shape_latents, &opts.mise, &mut no_progress()).unwrap();
    assert_eq!(seq.frames[0], again.mesh.positions);
    assert_eq!(seq.triangles, again.mesh.triangles);
    let counts = |m: &MeshStats| (m.resolution, m.points_evaluated, m.decoder_calls, m.rounds);
    assert_eq!(counts(&r.stats.mesh), counts(&again.stats));

    // Frames 2..T are the deformation decoder at the frame-1 vertices, one trunk per frame.
    let d = r.deformation_latents.as_ref().unwrap();
    let verts = Tensor::from_vec(
        seq.frames[0].iter().flatten().copied().collect::<Vec<f32>>(),
        (1, v, 3),
        &Device::Cpu,
    )
    .unwrap();
    for f in 1..T {
        let want = nets
            .deform_ae
            .decode(&d.i((.., f - 1)).unwrap().contiguous().unwrap(), &verts)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let got: Vec<Vec<f32>> = seq.frames[f].iter().map(|p| p.to_vec()).collect();
        assert_eq!(got, want, "frame {}", f + 1);
        assert_ne!(seq.frames[f], seq.frames[0]);
    }
    assert_eq!(r.stats.deform_decoder_calls, (T - 1) * v.div_ceil(opts.decode_batch));
    assert_eq!(r.stats.deform_points, (T - 1) * v);

    let s = r.stats;
    assert!(s.mesh.points_evaluated < s.mesh.dense_points);
    eprintln!(
        "tiny pipeline T={T} N={N}: {v} vertices, {} faces; MISE {} of {} points in {} calls; \
         shape sampling {:.3} s, meshing {:.3} s, deformation sampling {:.3} s, decoding {:.3} s, total {:.3} s",
        seq.triangles.len(),
        s.mesh.points_evaluated,
        s.mesh.dense_points,
        s.mesh.decoder_calls,
        s.shape_sampling.as_secs_f64(),
        s.meshing.as_secs_f64(),
        s.deformation_sampling.as_secs_f64(),
        s.decoding.as_secs_f64(),
        s.total().as_secs_f64()
    );

    // Smaller decoder batches: more calls, the same frames.
    let batch = v / 3 + 1;
    let frames_batched = decode_frames(&models, d, &seq.frames[0], batch, &mut no_progress()).unwrap();
    assert_eq!(frames_batched.decoder_calls, (T - 1) * 3);
    for f in 1..T {
        for (a, b) in frames_batched.frames[f - 1].iter().zip(&seq.frames[f]) {
            for k in 0..3 {
                assert!((a[k] - b[k]).abs() <= 1e-5 * b[k].abs().max(1.0), "{a:?} vs {b:?}");
            }
        }
    }
}

#[test]
fn same_seed_same_sequence_and_normalisation_round_trips() {
    let nets = nets();
    let models = nets.models(Observation::Paired);
    let obs = sparse_sequence(2);
    let opts = options(&models, &obs[0]);
    let a = run(&models, &obs, &opts);
    let b = run(&models, &obs, &opts);
    assert_eq!(a.sequence, b.sequence);

    // Another shape seed, another shape.
    let other = PipelineOptions { seed: 8, ..opts };
    let z = sample_shape(&models, &obs[0], &other, &mut no_progress()).unwrap();
    let diff = (&z - &a.shape_latents).unwrap().abs().unwrap().max_all().unwrap();
    assert!(diff.to_scalar::<f32>().unwrap() > 1e-3);

    // The same points moved and scaled: FirstFrameBox undoes it on the way in and redoes it on
    // the way out, so the result is the normalised points' result in the input's coordinates.
    let world = UnitCube {
        centre: [1.0, -2.0, 0.5],
        scale: 3.0,
    };
    let moved: Vec<Vec<[f32; 3]>> = obs
        .iter()
        .map(|f| f.iter().map(|&p| world.to_world(p)).collect())
        .collect();
    let cube = UnitCube::of_points(&moved[0]).unwrap();
    let normalised: Vec<Vec<[f32; 3]>> = moved
        .iter()
        .map(|f| f.iter().map(|&p| cube.to_model(p)).collect())
        .collect();
    let opts_n = options(&models, &normalised[0]);
    let in_cube = run(&models, &normalised, &opts_n);
    let back = run(
        &models,
        &moved,
        &PipelineOptions {
            normalisation: Normalisation::FirstFrameBox,
            ..opts_n
        },
    );
    assert_eq!(back.cube, cube);
    assert_eq!(back.sequence.triangles, in_cube.sequence.triangles);
    for (fa, fb) in back.sequence.frames.iter().zip(&in_cube.sequence.frames) {
        for (p, q) in fa.iter().zip(fb) {
            let q = cube.to_world(*q);
            for k in 0..3 {
                assert!((p[k] - q[k]).abs() < 1e-4, "{p:?} vs {q:?}");
            }
        }
    }
}

#[test]
fn cancellation_stops_before_the_next_network_call() {
    let nets = nets();
    let models = nets.models(Observation::Paired);
    let obs = sparse_sequence(1);
    let opts = options(&models, &obs[0]);
    for stop_at in Stage::RECONSTRUCTION.iter().copied() {
        let mut seen = Vec::new();
        let r = reconstruct(&models, &obs, &opts, &mut |s, done, _| {
            seen.push(s);
            if s == stop_at && done > 0 {
                Err(Cancelled)
            } else {
                Ok(())
            }
        });
        assert!(matches!(r, Err(M2vsError::Cancelled)), "{stop_at:?}: {r:?}");
        let last = *seen.last().unwrap();
        assert_eq!(last, stop_at, "nothing runs after the cancelled stage");
    }
}

#[test]
fn partial_scans_without_correspondences_reconstruct_too() {
    let nets = nets();
    let models = nets.models(Observation::Separate);
    // Independent samples per frame: no point is the same material point in two frames.
    let seqs: Vec<Vec<Vec<[f32; 3]>>> = (0..T as u64).map(|s| sparse_sequence(10 + s)).collect();
    let obs: Vec<Vec<[f32; 3]>> = (0..T).map(|t| seqs[t][t].clone()).collect();
    let opts = options(&models, &obs[0]);
    let r = run(&models, &obs, &opts);
    assert_eq!(r.sequence.frames.len(), T);
    assert!(r.sequence.frames.iter().all(|f| f.len() == r.frame1.positions.len()));
    r.sequence.validate().unwrap();
}

#[test]
fn bad_inputs_are_typed_errors() {
    let nets = nets();
    let models = nets.models(Observation::Paired);
    let obs = sparse_sequence(1);
    let opts = options(&models, &obs[0]);
    let mut fewer = obs.clone();
    fewer[2].truncate(N - 1);
    let e = reconstruct(&models, &fewer, &opts, &mut no_progress()).unwrap_err();
    assert!(matches!(e, M2vsError::Input(ref m) if m.contains("frame 3")), "{e}");
    let mut nan = obs.clone();
    nan[1][5][0] = f32::NAN;
    assert!(matches!(
        reconstruct(&models, &nan, &opts, &mut no_progress()),
        Err(M2vsError::Input(_))
    ));
    assert!(matches!(
        reconstruct(&models, &[], &opts, &mut no_progress()),
        Err(M2vsError::Input(_))
    ));
    let swapped = Models {
        shape_ae: &nets.deform_ae,
        deform_ae: &nets.shape_ae,
        ..nets.models(Observation::Paired)
    };
    assert!(matches!(
        reconstruct(&swapped, &obs, &opts, &mut no_progress()),
        Err(M2vsError::Input(_))
    ));
    // A threshold above every logit: no surface, said so instead of an empty sequence.
    let none = PipelineOptions {
        mise: MiseOptions {
            threshold: 1e5,
            ..opts.mise
        },
        ..opts
    };
    assert!(matches!(
        reconstruct(&models, &obs, &none, &mut no_progress()),
        Err(M2vsError::Mesher(_))
    ));
}

#[test]
fn tracking_scores_the_reconstruction_and_both_baselines_against_the_truth() {
    use latent_workbench::methods::metrics::shape::EvalOptions;
    use latent_workbench::methods::motion2vecsets::tracking::{observations, reconstruct_and_score, score};
    let nets = nets();
    let models = nets.models(Observation::Paired);
    let truth = generate(&MotionSpec {
        frames: T,
        resolution: 24,
        ..MotionSpec::new(MotionKind::BendingCapsule)
    })
    .unwrap()
    .sequence;
    let obs = observations(&truth, N, 0.001, Observation::Paired, 5).unwrap();
    let opts = options(&models, &obs[0]);
    let eval = EvalOptions {
        volume_samples: 4000,
        surface_samples: 4000,
        ..EvalOptions::default()
    };
    let tracked = reconstruct_and_score(&models, &truth, 0.001, &opts, &eval, &mut no_progress()).unwrap();
    let s = &tracked.scores;
    assert_eq!(s.model.frames.len(), T);
    // The static truth is exact on frame 1 and the held frame 1 is the model's on frame 1.
    assert!(s.static_truth.frames[0].iou > 0.999, "{:?}", s.static_truth.frames[0]);
    assert!(s.static_truth.frames[0].chamfer_l1 < 0.01);
    assert_eq!(s.model.frames[0], s.nearest_frame.frames[0]);
    // The static truth is wrong where the capsule has bent.
    assert!(s.static_truth.frames[T - 1].iou < 0.999);
    // Scoring is a pure function of the two sequences, and reports each of the three it scores.
    let mut seen = Vec::new();
    let again = score(
        &tracked.reconstruction.sequence,
        &truth,
        &eval,
        &mut |stage, done, total| {
            seen.push((stage, done, total));
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(again.model, s.model);
    assert_eq!(seen, (0..=3).map(|k| (Stage::Scoring, k, 3)).collect::<Vec<_>>());
    // Cancelled during scoring, it stops with the reason.
    let cancelled = score(&tracked.reconstruction.sequence, &truth, &eval, &mut |_, done, _| {
        if done > 0 { Err(Cancelled) } else { Ok(()) }
    });
    assert!(matches!(cancelled, Err(M2vsError::Cancelled)), "{:?}", cancelled.err());

    // A point sequence without correspondence is refused for the sparse (paired) model.
    let ragged = latent_workbench::core::motion::MotionSequence {
        frames: vec![vec![[0.0; 3]; N + 5], vec![[0.1; 3]; N + 9]],
        triangles: Vec::new(),
        fps: 10.0,
    };
    let e = reconstruct_and_score(&models, &ragged, 0.0, &opts, &eval, &mut no_progress());
    assert!(matches!(e, Err(M2vsError::Input(_))), "{:?}", e.err());
}
