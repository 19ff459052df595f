//! The command line as a user runs it: JSON contracts, conversions, and one-line errors that
//! name the file and the problem, with a non-zero exit.

use latent_workbench::core::Volume;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "common/model_folder.rs"]
mod model_folder;
#[path = "common/resnet_folder.rs"]
mod resnet_folder;
#[path = "common/wala.rs"]
mod wala;
#[path = "common/wildfusion.rs"]
mod wildfusion;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_latent-workbench"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run latent-workbench")
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.trim().lines().count(),
        1,
        "exactly one JSON object on stdout: {text}"
    );
    serde_json::from_str(&text).unwrap()
}

fn demo_t1() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/mni152_t1_1.5mm.nii.gz")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn info_volume_json_contract() {
    let v = json(&["info", s(&demo_t1()), "--json"]);
    assert_eq!(v["kind"], "volume");
    assert_eq!(v["shape"], serde_json::json!([131, 155, 126]));
    assert_eq!(v["dtype"], "uint8");
    assert_eq!(v["spacing_mm"], serde_json::json!([1.5, 1.5, 1.5]));
    assert_eq!(v["world_from_voxel"][0], serde_json::json!([1.5, 0.0, 0.0, -98.0]));
    assert_eq!(v["world_from_voxel"][3], serde_json::json!([0.0, 0.0, 0.0, 1.0]));
    assert_eq!(v["min"], 0.0);
    assert!(v["max"].as_f64().unwrap() > 50.0);
    assert!(v["mean"].as_f64().unwrap() > 1.0);
}

#[test]
fn bad_input_gives_one_line_naming_file_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(PathBuf, Vec<u8>)> = vec![
        (dir.path().join("empty.nii"), vec![]),
        (
            dir.path().join("random.nii.gz"),
            (0..500u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        (
            dir.path().join("truncated.nii.gz"),
            std::fs::read(demo_t1()).unwrap()[..4000].to_vec(),
        ),
        (
            dir.path().join("mesh.ply"),
            b"ply\nformat ascii 1.0\nelement vertex 99\nend_header\n1 2\n".to_vec(),
        ),
        (dir.path().join("weird.xyz"), b"hello".to_vec()),
    ];
    for (path, bytes) in &cases {
        std::fs::write(path, bytes).unwrap();
    }
    let missing = dir.path().join("missing.nii");
    for path in cases.iter().map(|c| c.0.clone()).chain([missing]) {
        let out = run(&["info", s(&path), "--json"]);
        assert!(!out.status.success(), "{} should fail", path.display());
        assert!(out.stdout.is_empty(), "nothing on stdout for {}", path.display());
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(err.contains(name), "names the file: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn convert_nifti_round_trip_keeps_values_and_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t1.nii");
    assert!(run(&["convert", s(&demo_t1()), s(&out)]).status.success());
    let a = json(&["info", s(&demo_t1()), "--json"]);
    let b = json(&["info", s(&out), "--json"]);
    assert_eq!(a, b);
    let png = dir.path().join("mid.png");
    assert!(run(&["convert", s(&demo_t1()), s(&png)]).status.success());
    let p = json(&["info", s(&png), "--json"]);
    assert_eq!(p["kind"], "image");
    assert_eq!(p["height"], 155, "the tallest of the three middle slices");
    assert_eq!(p["width"], 131 + 131 + 155);
}

#[test]
fn ssim_of_a_volume_with_itself_is_one() {
    let v = json(&["ssim", s(&demo_t1()), s(&demo_t1()), "--json"]);
    assert!((v["ssim"].as_f64().unwrap() - 1.0).abs() < 1e-9, "{v}");
    assert_eq!(v["mse"], 0.0);
}

#[test]
fn mesh_of_a_sphere() {
    let dir = tempfile::tempdir().unwrap();
    let n = 48;
    let r = 15.0f32;
    let data: Vec<f32> = (0..n * n * n)
        .map(|i| {
            let (x, y, z) = (i % n, (i / n) % n, i / (n * n));
            let d = |c: usize| c as f32 - (n as f32 - 1.0) / 2.0;
            (d(x).powi(2) + d(y).powi(2) + d(z).powi(2)).sqrt() - r
        })
        .collect();
    let vol = Volume::from_spacing([n, n, n], [1.0, 1.0, 1.0], data).unwrap();
    let path = dir.path().join("sdf.nii");
    latent_workbench::io::nifti::write(&path, &vol, &Default::default()).unwrap();
    for ext in ["obj", "ply", "stl", "glb"] {
        let out = dir.path().join(format!("sphere.{ext}"));
        let v = json(&[
            "mesh",
            s(&path),
            "--level",
            "0",
            "--inside",
            "below",
            "-o",
            s(&out),
            "--json",
        ]);
        let area = v["area"].as_f64().unwrap();
        let volume = v["volume"].as_f64().unwrap();
        let exact_area = 4.0 * std::f64::consts::PI * 15.0f64.powi(2);
        let exact_volume = 4.0 / 3.0 * std::f64::consts::PI * 15.0f64.powi(3);
        assert!((area / exact_area - 1.0).abs() < 0.02, "area {area} vs {exact_area}");
        assert!(
            (volume / exact_volume - 1.0).abs() < 0.02,
            "volume {volume} vs {exact_volume}"
        );
        assert!(out.exists());
    }
}

#[test]
fn render_draws_a_volume_iso_surface_to_a_png_of_the_requested_size() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("view.png");
    let r = json(&[
        "render",
        s(&demo_t1()),
        "-o",
        s(&out),
        "--size",
        "200x150",
        "--view",
        "front",
        "--json",
    ]);
    assert!(r["triangles"].as_u64().unwrap() > 10_000, "{r}");
    let info = json(&["info", s(&out), "--json"]);
    assert_eq!(
        (info["width"].as_u64(), info["height"].as_u64()),
        (Some(200), Some(150)),
        "{info}"
    );
    // Bad input names the problem.
    let bad = run(&["render", s(&demo_t1()), "-o", s(&out), "--view", "sideways"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--view"));
    let curve = run(&[
        "render",
        s(&demo_t1()),
        "--volume",
        "-o",
        s(&out),
        "--opacity-curve",
        "0:0,0.5:2,1:1",
    ]);
    assert!(!curve.status.success());
    let err = String::from_utf8_lossy(&curve.stderr);
    assert!(err.contains("--opacity-curve") && err.contains("[0, 1]"), "{err}");
}

#[test]
fn wala_latent_interpolates_two_shapes_and_writes_the_mesh_with_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("wala-random");
    std::fs::create_dir(&model).unwrap();
    wala::random_wala_model(&model, "wala-random", 3);
    let out = dir.path().join("mid.ply");
    let v = json(&[
        "wala-latent",
        "--model",
        s(&model),
        "--t",
        "0.25",
        "-o",
        s(&out),
        "--json",
    ]);
    assert_eq!(v["model"], "wala-random");
    assert_eq!(v["latent_shape"], serde_json::json!([4, 6, 6, 6]));
    assert_eq!(v["t"], 0.25);
    for side in ["a", "b"] {
        let iou = v[side]["iou"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&iou), "{v}");
    }
    // A random model need not decode any solid; when it does, the mesh and its provenance exist.
    assert!(out.is_file());
    let provenance: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("mid.provenance.json")).unwrap()).unwrap();
    assert_eq!(provenance["made_by"]["model"]["name"], "wala-random");
    // Unknown models and bad weights are one-line errors.
    let bad = run(&["wala-latent", "--model", "no-such-model", "--json"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("no-such-model") && err.contains("wala"), "{err}");
    let bad = run(&["wala-latent", "--model", s(&model), "--t", "1.5"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--t"));
}

#[test]
fn sage_searches_the_demo_generator_and_writes_a_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let args = [
        "sage",
        "--class",
        "heart",
        "--mode",
        "backprop",
        "--restarts",
        "3",
        "--budget",
        "8",
        "--steps",
        "4",
        "--screen",
        "0",
        "-o",
        s(&out),
        "--json",
    ];
    let v = json(&args);
    let summary = &v["summary"];
    assert_eq!(summary["restarts"], 3, "{v}");
    assert_eq!(
        summary["generator_calls"], 24,
        "4 gradient iterations × 2 calls × 3 restarts: {v}"
    );
    // The sprite generator knows what it drew, so the report separates its own failures from
    // classifier errors.
    for key in [
        "ssr_auto",
        "held_out_confirmed_rate",
        "generator_failure_rate",
        "confirmed_generator_failure_rate",
    ] {
        let x = summary[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&x), "{key}: {v}");
    }
    assert!(summary["ssr_human"].is_null(), "nobody judged yet");
    // The demo generator draws what it is asked for (the base rate of every classifier).
    for (name, rate) in v["base_rates"].as_object().unwrap() {
        assert!(rate.as_f64().unwrap() > 0.9, "{name}: {v}");
    }
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["models"]["generator"]["name"], "sage-sprites-generator");
    assert_eq!(report["models"]["held_out"]["name"], "relreps-sprites-wide");
    assert_eq!(report["candidates"].as_array().unwrap().len(), 3);
    assert_eq!(report["history"].as_array().unwrap().len(), 4);
    for c in report["candidates"].as_array().unwrap() {
        assert!(out.join(c["image"].as_str().unwrap()).is_file(), "{c}");
        assert_eq!(
            c["member_probs"][0].as_array().unwrap().len(),
            2,
            "two ensemble members"
        );
    }
    assert!(out.join("latents.safetensors").is_file());
    // Nothing to resume in a finished run; bad classes and targets are one-line errors.
    let mut resume = args.to_vec();
    resume.push("--resume");
    let bad = run(&resume);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("state.json"));
    let bad = run(&["sage", "--class", "triangle", "-o", s(&out)]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("triangle"));
    let bad = run(&["sage", "--objective", "switch", "-o", s(&out)]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--target"));
    // A person's verdicts land in the report: SSR(H) over the judged candidates.
    let v = json(&["sage", "--accept", "0", "--reject", "1,2", "-o", s(&out), "--json"]);
    assert_eq!(v["summary"]["human_judged"], 3, "{v}");
    assert!(
        (v["summary"]["ssr_human"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9,
        "{v}"
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["candidates"][0]["human"], true);
    assert_eq!(report["candidates"][2]["human"], false);
    let bad = run(&["sage", "--accept", "7", "-o", s(&out)]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("restart 7"));
}

#[test]
fn wildfusion_render_with_a_model_encodes_blends_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("wf");
    std::fs::create_dir(&model).unwrap();
    wildfusion::random_wildfusion_model(&model, "wf-random", 2);
    let (analytic, encoded) = (dir.path().join("analytic.png"), dir.path().join("encoded.png"));
    let common = [
        "--object",
        "box",
        "--object-b",
        "torus",
        "--t",
        "0.5",
        "--size",
        "32",
        "--samples-per-ray",
        "8",
    ];
    let a = json(&[&["wildfusion-render", "--json", "-o", s(&analytic)], &common[..]].concat());
    let e = json(
        &[
            &["wildfusion-render", "--json", "--model", s(&model), "-o", s(&encoded)],
            &common[..],
        ]
        .concat(),
    );
    assert_eq!((a["views"].as_u64(), e["views"].as_u64()), (Some(1), Some(1)));
    let provenance = |png: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(png.with_extension("provenance.json")).unwrap()).unwrap()
    };
    assert!(provenance(&analytic)["model"].is_null());
    let p = provenance(&encoded);
    assert_eq!(p["model"]["name"], "wf-random");
    assert!(p["latent"].as_str().unwrap().contains("encoded by wf-random"), "{p}");
    let (pa, pe) = (
        image::open(&analytic).unwrap().to_rgb8(),
        image::open(&encoded).unwrap().to_rgb8(),
    );
    assert_eq!(pe.dimensions(), (32, 32));
    assert_ne!(
        pa.as_raw(),
        pe.as_raw(),
        "a random autoencoder does not give the analytic blend"
    );

    // A model of another family is refused by name.
    let wala_dir = dir.path().join("wala");
    std::fs::create_dir(&wala_dir).unwrap();
    wala::random_wala_model(&wala_dir, "wala-random", 1);
    let out = run(&["wildfusion-render", "--model", s(&wala_dir), "-o", s(&encoded)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a wala model, not wildfusion"), "{err}");
}

#[test]
fn wala_generate_uses_the_shipped_demo_model_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let mesh_path = dir.path().join("octahedron.obj");
    latent_workbench::io::mesh::write(&mesh_path, &wala::octahedron([2.0, 0.0, 0.0], 0.5)).unwrap();
    let out = dir.path().join("shape.obj");
    let v = json(&[
        "wala-generate",
        "--condition",
        s(&mesh_path),
        "--steps",
        "10",
        "--point-count",
        "2000",
        "-o",
        s(&out),
        "--json",
    ]);
    assert_eq!(v["model"], "wala-shapes-diffusion");
    assert_eq!(v["latent_shape"], serde_json::json!([4, 6, 6, 6]));
    assert!(v["triangles"].as_u64().unwrap() > 0, "{v}");
    // A name that is neither a folder nor a registered model is refused by name.
    let bad = run(&["wala-generate", "--model", "no-such-model", "-o", s(&out)]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("no-such-model") && err.contains("wala-shapes-diffusion"),
        "{err}"
    );
}

#[test]
fn wala_generate_samples_a_shape_from_points_and_records_it() {
    use latent_workbench::core::latent::LatentTensor;
    let dir = tempfile::tempdir().unwrap();
    let ae = dir.path().join("wala-ae");
    std::fs::create_dir(&ae).unwrap();
    wala::random_wala_model(&ae, "wala-ae", 3);
    let model = wala::random_wala_diffusion(
        &dir.path().join("WaLa-PC-tiny"),
        5,
        serde_json::json!({}),
        Default::default(),
    );
    // A cloud far from WaLa's frame: fitted into it, and the mesh mapped back.
    let pts: Vec<f32> = (0..300)
        .flat_map(|i| {
            let a = i as f32 * 0.37;
            [10.0 + 3.0 * a.cos(), 20.0 + 3.0 * a.sin(), 30.0 + (i % 7) as f32 * 0.4]
        })
        .collect();
    let cloud = dir.path().join("cloud.npy");
    latent_workbench::io::array::write_npy(&cloud, &LatentTensor::new("points", vec![300, 3], pts).unwrap()).unwrap();
    let generate = |seed: &str, out: &Path, z: &Path| {
        json(&[
            "wala-generate",
            "--model",
            s(&model),
            "--autoencoder",
            s(&ae),
            "--condition",
            s(&cloud),
            "--steps",
            "3",
            "--seed",
            seed,
            "-o",
            s(out),
            "--latent",
            s(z),
            "--json",
        ])
    };
    let (out, z) = (dir.path().join("shape.ply"), dir.path().join("z.safetensors"));
    let v = generate("4", &out, &z);
    assert_eq!(v["model"], "WaLa-PC-tiny");
    assert_eq!(v["autoencoder"]["name"], "wala-ae");
    assert_eq!(v["latent_shape"], serde_json::json!([4, 6, 6, 6]));
    assert_eq!(v["condition"]["input"], "300 points");
    assert_eq!((v["steps"].as_u64(), v["seed"].as_u64()), (Some(3), Some(4)));
    assert_eq!(v["guidance_used"], true);
    // The model's [-1, 1]³ frame maps back onto the cloud's box (centre (10, 20, 31.2), largest
    // half-extent 3 ↔ 0.9).
    let Ok(latent_workbench::core::Asset::Mesh(mesh)) = latent_workbench::io::load(&out) else {
        panic!("{} is not a mesh", out.display());
    };
    assert_eq!(mesh.triangles.len() as u64, v["triangles"].as_u64().unwrap());
    assert!(!mesh.triangles.is_empty(), "these seeds decode a surface");
    let (centre, reach) = ([10.0f32, 20.0, 31.2], 3.0 / 0.9 + 1e-3);
    assert!(
        mesh.positions
            .iter()
            .all(|p| (0..3).all(|k| (p[k] - centre[k]).abs() <= reach)),
        "a vertex lies outside the cloud's frame"
    );
    let provenance: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("shape.provenance.json")).unwrap()).unwrap();
    assert_eq!(provenance["made_by"]["report"]["seed"], 4);
    let latent = latent_workbench::io::array::read_safetensors(&z).unwrap();
    assert_eq!(latent[0].shape(), &[4, 6, 6, 6]);
    // The same seed gives the same latent, another seed another.
    let z2 = dir.path().join("z2.safetensors");
    generate("4", &dir.path().join("again.ply"), &z2);
    assert_eq!(std::fs::read(&z).unwrap(), std::fs::read(&z2).unwrap());
    let z3 = dir.path().join("z3.safetensors");
    generate("5", &dir.path().join("other.ply"), &z3);
    assert_ne!(std::fs::read(&z).unwrap(), std::fs::read(&z3).unwrap());
    // Errors a user meets: no points for a point-cloud model; a folder that is not a WaLa model.
    let bad = run(&[
        "wala-generate",
        "--model",
        s(&model),
        "--autoencoder",
        s(&ae),
        "-o",
        s(&out),
    ]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("needs a point cloud"), "{err}");
    // Upstream's voxel JSON is read, and a point-cloud model says what it needs instead.
    let voxels = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wala/voxels_example.json");
    let bad = run(&[
        "wala-generate",
        "--model",
        s(&model),
        "--autoencoder",
        s(&ae),
        "--condition",
        s(&voxels),
        "-o",
        s(&out),
    ]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("needs a point cloud"), "{err}");
    // A registered autoencoder's folder is not a diffusion model; a bare folder without a
    // checkpoint is named with what it lacks.
    let bad = run(&["wala-generate", "--model", s(&ae), "-o", s(&out)]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("a wala model, not wala-diffusion"),
        "{err}"
    );
    let bare = dir.path().join("bare");
    std::fs::create_dir(&bare).unwrap();
    let bad = run(&["wala-generate", "--model", s(&bare), "-o", s(&out)]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("checkpoint.ckpt"), "{err}");
}

/// `sage` against a Stable Diffusion folder (the tiny random pipeline of the parity fixture) with
/// torchvision ResNet folders (formula weights, see `tests/sage.rs`) as ensemble and judge: the
/// generator is found by its layout, every classifier is aligned to the prompt classes by label,
/// and the run folder records the folder and sampling settings.
#[test]
fn sage_searches_a_stable_diffusion_folder_with_resnet_classifiers() {
    let tmp = tempfile::tempdir().unwrap();
    let sd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sage/tiny-sd");
    let mut folders = Vec::new();
    for (name, labels) in [
        ("resnet-a", "cat\ndog\ncar\ntree\nboat"),
        ("resnet-b", "boat\ntree\ndog\ncat\ncar"),
        ("judge", "car\ncat, tabby\nboat\ndog\ntree"),
    ] {
        let dir = tmp.path().join(name);
        resnet_folder::write(&dir, 18, labels);
        folders.push(dir);
    }
    let out = tmp.path().join("run");
    let v = json(&[
        "sage",
        "--generator",
        s(&sd),
        "--sd-classes",
        "cat,dog",
        "--prompt",
        "a photo of a {}",
        "--size",
        "16",
        "--guidance",
        "1",
        "--steps",
        "2",
        "--class",
        "dog",
        "--classifier",
        s(&folders[0]),
        "--classifier",
        s(&folders[1]),
        "--held-out",
        s(&folders[2]),
        "--mode",
        "skip",
        "--restarts",
        "2",
        "--budget",
        "4",
        "--screen",
        "1",
        "-o",
        s(&out),
        "--json",
    ]);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let g = &report["models"]["generator"];
    assert_eq!(g["kind"], "stable_diffusion", "{g}");
    assert_eq!(g["name"], "tiny-sd");
    assert_eq!(g["image_size"], serde_json::json!([16, 16]));
    assert_eq!(report["class_names"], serde_json::json!(["cat", "dog"]));
    let members: Vec<&str> = report["models"]["ensemble"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(members, ["resnet-a", "resnet-b"]);
    assert_eq!(report["models"]["held_out"]["name"], "judge");
    // Base rates of Stable Diffusion rest on a few draws per class, and the report says how many.
    assert_eq!(report["models"]["base_rate_draws_per_class"], 4);
    assert_eq!(report["base_rates"].as_object().unwrap().len(), 3);
    assert_eq!(report["models"]["held_out"]["sha256"].as_str().unwrap().len(), 64);
    // Every restart's image is written (the gallery only when the ensemble was fooled).
    assert_eq!(report["candidates"].as_array().unwrap().len(), 2);
    assert!(out.join("candidates/000.png").is_file() && out.join("candidates/001.png").is_file());
    assert!(v["summary"].is_object(), "{v}");
    // Without classes the folder cannot be searched, and says so.
    let bad = run(&[
        "sage",
        "--generator",
        s(&sd),
        "--classifier",
        s(&folders[0]),
        "--held-out",
        "none",
        "-o",
        s(&out),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--sd-classes"));
}
