//! The Shapes tab driven headlessly (egui_kittest, no GPU: the viewport says it needs the wgpu
//! renderer, everything else runs): demo shapes become iso-surfaces through jobs, the level
//! slider re-meshes, the wavelet round trip reports its numbers, the shipped WaLa demo model
//! encodes both shapes and decodes their latent interpolation, a tree-space blend appears, and an
//! export writes the mesh with its provenance.

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use latent_workbench::app::{Command, Launch, WorkbenchApp};
use latent_workbench::render::Geometry;

#[path = "common/app.rs"]
mod app;
#[path = "common/model_folder.rs"]
mod model_folder;
#[path = "common/wala.rs"]
mod wala;
use app::harness;

fn settle(h: &mut Harness<'static, WorkbenchApp>) {
    app::settle_until(h, |app| !app.busy() && !app.session.shapes.busy());
}

/// Registers `entry` as the only WaLa-family model: without the shipped demo diffusion model, no
/// model opens by itself.
fn only_this_wala_model(h: &mut Harness<'static, WorkbenchApp>, entry: latent_workbench::core::manifest::Entry) {
    let models = &mut h.state_mut().session.models;
    models.retain(|m| m.manifest.family != "wala" && m.manifest.family != "wala-diffusion");
    models.push(entry);
}

fn triangles(h: &Harness<'static, WorkbenchApp>) -> Vec<(String, usize)> {
    h.state()
        .session
        .shapes
        .scene()
        .objects
        .iter()
        .map(|o| match &o.geometry {
            Geometry::Mesh(m) => (o.name.clone(), m.triangles.len()),
            Geometry::Points(p) => (o.name.clone(), p.points.len()),
            Geometry::Volume(v) => (o.name.clone(), v.voxels_per_frame()),
        })
        .collect()
}

#[test]
fn demo_shapes_round_trip_through_the_wavelet_tree_and_blend() {
    let mut h = harness(Launch {
        tab: Some("shapes".into()),
        files: vec![],
        ..Launch::default()
    });
    // Without WaLa models (an autoencoder and a diffusion model ship) the demo shows the wavelet
    // stage's results. The demo is started as `gui --run-demo` starts it, after the models are
    // removed: with `run_demo` it would start in the first frame, before the test could remove them.
    h.state_mut()
        .session
        .models
        .retain(|m| m.manifest.family != "wala" && m.manifest.family != "wala-diffusion");
    h.state_mut().push(Command::AddDemoShapes);
    h.state_mut().session.shapes.demo_pending = true;
    settle(&mut h);
    let objects = triangles(&h);
    let names: Vec<&str> = objects.iter().map(|(n, _)| n.as_str()).collect();
    // Two demo shapes, the round trip of A and the blend; the MNI demo volume is hidden.
    assert_eq!(objects.len(), 4, "{names:?}");
    assert!(
        names.iter().filter(|n| n.starts_with("demo shape")).count() >= 3,
        "{names:?}"
    );
    assert!(names.iter().any(|n| n.starts_with("blend t = 0.50")), "{names:?}");
    assert!(objects.iter().all(|(_, t)| *t > 100), "{objects:?}");
    let outcome = h
        .state()
        .session
        .shapes
        .wavelet
        .outcome
        .as_ref()
        .expect("round trip done");
    let r = &outcome.a.report;
    assert_eq!(r.grid, [latent_workbench::app::panels::shapes::DEMO_GRID; 3]);
    assert_eq!(r.tree_shape[0], 64);
    assert!(r.iou > 0.9 && r.rms_error < 0.01, "{r:?}");
    // The panel shows the numbers, says how to get a latent model and what is not built.
    assert_eq!(
        h.get_all_by_label("IoU of solids").count(),
        2,
        "a report for A and for B"
    );
    h.get_by_label_contains("train wala-shapes-demo");
    h.get_by_label_contains("Not built yet (issue #7)");
    // No wgpu renderer under kittest: the viewport says so instead of drawing.
    h.get_by_label_contains("needs the wgpu renderer");
}

#[test]
fn a_wala_model_encodes_two_shapes_and_decodes_their_interpolation() {
    let dir = tempfile::tempdir().unwrap();
    let entry = wala::random_wala_model(dir.path(), "wala-random", 7);
    let mut h = harness(Launch {
        tab: Some("shapes".into()),
        ..Launch::default()
    });
    h.state_mut().session.models.retain(|m| m.manifest.family != "wala");
    h.state_mut().session.models.push(entry);
    h.state_mut().push(Command::AddDemoShapes);
    settle(&mut h);
    let demo: Vec<u64> = h
        .state()
        .session
        .assets
        .iter()
        .filter(|a| a.name.starts_with("demo shape"))
        .map(|a| a.id)
        .collect();
    assert_eq!(demo.len(), 2);
    h.state_mut().session.shapes.wavelet.a = Some(demo[0]);
    h.state_mut().session.shapes.wavelet.b = Some(demo[1]);
    h.run();
    h.get_by_label("Encode A and B").click();
    settle(&mut h);
    let rt = &h.state().session.shapes.latent;
    assert_eq!(rt.error, None);
    let e = rt.encoded.as_ref().expect("both shapes encoded");
    // 128³ demo shapes resampled to the model's 64³ grid, 64 × 22³ trees, 4 × 6³ latents.
    assert_eq!(e.a.values.0, [4, 6, 6, 6]);
    assert_eq!(e.a.codes.len(), 216);
    assert!(e.b.is_some());
    let interpolated = rt.interpolated.as_ref().expect("t = 0.5 decoded");
    assert_eq!(interpolated.t, 0.5);
    let lerp: Vec<f32> =
        e.a.values
            .1
            .iter()
            .zip(&e.b.as_ref().unwrap().values.1)
            .map(|(a, b)| 0.5 * (a + b))
            .collect();
    assert!(
        interpolated
            .values
            .1
            .iter()
            .zip(&lerp)
            .all(|(x, y)| (x - y).abs() < 1e-5)
    );
    // The inspector and the slider are there; a random model decodes no particular shape, so
    // the scene may or may not hold its meshes, but never more than the inputs and two results.
    h.get_by_label_contains("distinct codes of 256");
    assert!(h.get_all_by_label("latent A to B").count() >= 1);
    assert!(triangles(&h).len() <= 5);
}

#[test]
fn moving_the_iso_level_remeshes_the_volume() {
    let mut h = harness(Launch {
        tab: Some("shapes".into()),
        ..Launch::default()
    });
    h.state_mut().push(Command::AddDemoShapes);
    settle(&mut h);
    let before = triangles(&h);
    let demo = before
        .iter()
        .find(|(n, _)| n.starts_with("demo shape"))
        .cloned()
        .unwrap();
    assert!(
        h.get_all_by_label("iso-level").count() >= 3,
        "a level slider per volume"
    );
    // Grow the solid: the surface at level 0.1 of an SDF encloses more, so it has more triangles.
    let id = h.state().session.assets.iter().find(|a| a.name == demo.0).unwrap().id;
    assert!(h.state_mut().session.shapes.set_level(id, 0.1));
    settle(&mut h);
    let after = triangles(&h);
    let grown = after.iter().find(|(n, _)| n == &demo.0).unwrap();
    assert!(grown.1 > demo.1, "{before:?} → {after:?}");
}

/// With a GPU (the app passes its viewport's device; here a headless one), the live level is
/// meshed by the wgpu kernel, says so, and gives the CPU's triangles; the toggle goes back to
/// the CPU. Without any adapter the test passes unless `LW_REQUIRE_RENDER=1`.
#[test]
fn the_live_level_is_meshed_on_the_gpu_when_there_is_one() {
    use latent_workbench::core::Asset;
    use latent_workbench::methods::isosurface::{Inside, IsoOptions, marching_cubes};
    let gpu = match latent_workbench::render::Gpu::headless() {
        Ok(gpu) => gpu,
        Err(e) => {
            assert!(
                std::env::var("LW_REQUIRE_RENDER").as_deref() != Ok("1"),
                "no adapter: {e}"
            );
            return;
        }
    };
    let mut h = harness(Launch {
        tab: Some("shapes".into()),
        ..Launch::default()
    });
    let mc = latent_workbench::render::LiveMarchingCubes::new(gpu.device.clone(), gpu.queue.clone());
    h.state_mut().session.shapes.use_gpu(mc);
    h.state_mut().push(Command::AddDemoShapes);
    settle(&mut h);
    let (id, volume) = h
        .state()
        .session
        .assets
        .iter()
        .find_map(|a| match &a.asset {
            Asset::Volume(v) if a.name.starts_with("demo shape") => Some((a.id, v.clone())),
            _ => None,
        })
        .expect("a demo shape");
    let name = h.state().session.get(id).unwrap().name.clone();
    let cpu = |level: f32| {
        let opts = IsoOptions {
            level,
            inside: Inside::Below,
            frame: 0,
        };
        marching_cubes(&volume, &opts).triangles.len()
    };
    let shown = |h: &Harness<'static, WorkbenchApp>| {
        let built = h.state().session.shapes.iso_build(id).unwrap_or_default().to_owned();
        let n = triangles(h).into_iter().find(|(n, _)| *n == name).map(|(_, n)| n);
        (built, n)
    };
    for level in [0.0, 0.1] {
        assert!(h.state_mut().session.shapes.set_level(id, level));
        settle(&mut h);
        let (built, n) = shown(&h);
        assert!(built.ends_with("on the GPU"), "level {level}: {built}");
        assert_eq!(n, Some(cpu(level)), "level {level}: {built}");
        assert!(built.starts_with(&format!("{} triangles", cpu(level))), "{built}");
    }
    h.state_mut().state.shapes.cpu_marching_cubes = true;
    assert!(h.state_mut().session.shapes.set_level(id, 0.05));
    settle(&mut h);
    let (built, n) = shown(&h);
    assert!(built.ends_with("on the CPU"), "{built}");
    assert_eq!(n, Some(cpu(0.05)));
}

#[test]
fn a_mesh_export_writes_the_file_and_its_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let mesh = latent_workbench::methods::isosurface::marching_cubes(
        &latent_workbench::app::panels::shapes::demo_shapes()[0].1,
        &latent_workbench::methods::isosurface::IsoOptions {
            level: 0.0,
            inside: latent_workbench::methods::isosurface::Inside::Below,
            frame: 0,
        },
    );
    let path = dir.path().join("shape.ply");
    let provenance = serde_json::json!({"made_by": {"operation": "marching cubes"}});
    latent_workbench::app::panels::shapes::write_mesh_export(&path, &mesh, &provenance).unwrap();
    let back = latent_workbench::io::mesh::read(&path).unwrap();
    assert_eq!(back.triangles.len(), mesh.triangles.len());
    let side: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("shape.provenance.json")).unwrap()).unwrap();
    assert_eq!(side["made_by"]["operation"], "marching cubes");
}

/// The opacity curve editor alone: a drag moves an inner point, a double-click adds one, a
/// right-click removes one, and the end points only move up and down.
#[test]
fn the_opacity_curve_editor_edits_its_curve() {
    use latent_workbench::app::panels::shapes::transfer::{EDITOR_HEIGHT, curve_editor};
    use latent_workbench::core::colormap::Colormap;
    use latent_workbench::core::transfer::OpacityCurve;
    const WIDTH: f32 = 212.0;
    let mut h = Harness::builder()
        .with_size(egui::vec2(240.0, 120.0))
        .with_step_dt(0.02)
        .build_ui_state(
            |ui, curve: &mut OpacityCurve| {
                curve_editor(ui, curve, Colormap::Magma, WIDTH);
            },
            OpacityCurve::parse("0:0,0.5:0.5,1:1").unwrap(),
        );
    h.run_steps(2);
    let rect = h.get_by_label_contains("opacity curve:").rect();
    // The plot inside the widget's 6-point margin.
    let plot = egui::Rect::from_min_max(
        egui::pos2(rect.min.x as f32 + 6.0, rect.min.y as f32 + 6.0),
        egui::pos2(rect.max.x as f32 - 6.0, rect.max.y as f32 - 6.0),
    );
    assert!((plot.height() - (EDITOR_HEIGHT - 12.0)).abs() < 1.0);
    let at = |t: f32, a: f32| egui::pos2(plot.left() + t * plot.width(), plot.bottom() - a * plot.height());
    let drag = |h: &mut Harness<'static, OpacityCurve>, from: egui::Pos2, to: egui::Pos2| {
        h.hover_at(from);
        h.step();
        h.drag_at(from);
        h.step();
        h.hover_at(egui::pos2((from.x + to.x) / 2.0, (from.y + to.y) / 2.0));
        h.step();
        h.hover_at(to);
        h.step();
        h.drop_at(to);
        h.run_steps(2);
    };
    // Drag the middle point to (0.7, 0.1).
    drag(&mut h, at(0.5, 0.5), at(0.7, 0.1));
    let p = h.state().points()[1];
    assert!((p[0] - 0.7).abs() < 0.02 && (p[1] - 0.1).abs() < 0.02, "{p:?}");
    // Drag the left end point sideways and up: it stays at t = 0.
    drag(&mut h, at(0.0, 0.0), at(0.3, 0.4));
    let p = h.state().points()[0];
    assert!(p[0] == 0.0 && (p[1] - 0.4).abs() < 0.02, "{p:?}");
    // Double-click on empty space adds a point there.
    // `clicks` clicks, a frame (20 ms) per press or release: a double-click's clicks are closer
    // than egui's 0.3 s.
    let click =
        |h: &mut Harness<'static, OpacityCurve>, pos: egui::Pos2, button: egui::PointerButton, clicks: usize| {
            h.hover_at(pos);
            h.step();
            for _ in 0..clicks {
                for pressed in [true, false] {
                    h.event(egui::Event::PointerButton {
                        pos,
                        button,
                        pressed,
                        modifiers: egui::Modifiers::NONE,
                    });
                    h.step();
                }
            }
            h.run_steps(2);
        };
    click(&mut h, at(0.3, 0.9), egui::PointerButton::Primary, 2);
    assert_eq!(h.state().points().len(), 4, "{:?}", h.state().points());
    let added = h.state().points()[1];
    assert!(
        (added[0] - 0.3).abs() < 0.02 && (added[1] - 0.9).abs() < 0.02,
        "{added:?}"
    );
    // A right-click on it removes it again; on an end point it does nothing.
    click(&mut h, at(0.3, 0.9), egui::PointerButton::Secondary, 1);
    click(&mut h, at(1.0, 1.0), egui::PointerButton::Secondary, 1);
    h.run_steps(2);
    assert_eq!(h.state().points().len(), 3, "{:?}", h.state().points());
}

#[test]
fn a_wala_diffusion_model_generates_a_shape_from_a_loaded_mesh() {
    let dir = tempfile::tempdir().unwrap();
    let ae = dir.path().join("wala-ae");
    std::fs::create_dir(&ae).unwrap();
    let entry = wala::random_wala_model(&ae, "wala-ae", 3);
    let folder = wala::random_wala_diffusion(
        &dir.path().join("WaLa-PC-tiny"),
        5,
        serde_json::json!({}),
        Default::default(),
    );
    // The condition: an octahedron away from WaLa's frame, loaded as a user would.
    let mesh = wala::octahedron([6.0, 0.0, 0.0], 1.0);
    let mesh_path = dir.path().join("octahedron.obj");
    latent_workbench::io::mesh::write(&mesh_path, &mesh).unwrap();
    let mut h = harness(Launch {
        tab: Some("shapes".into()),
        files: vec![mesh_path],
        ..Launch::default()
    });
    only_this_wala_model(&mut h, entry);
    settle(&mut h);
    // No model open: the section says what a WaLa model folder is.
    h.get_by_label_contains("args.json and checkpoint.ckpt");
    {
        let g = &mut h.state_mut().state.shapes.generate;
        g.autoencoder = Some("wala-ae".into());
        g.steps = 3;
        g.seed = 2;
    }
    // Opening the folder (as a file argument or a drop does) opens it as the model.
    h.state_mut().push(Command::Open(folder.clone()));
    settle(&mut h);
    assert_eq!(h.state().state.shapes.generate.folder.as_ref(), Some(&folder));
    assert!(
        h.state().session.assets.iter().all(|a| a.name != "WaLa-PC-tiny"),
        "a model folder is not loaded as data"
    );
    let rt = &h.state().session.shapes.generate;
    assert_eq!(rt.error, None);
    let generator = rt.generator.as_ref().expect("the folder opened");
    assert_eq!(generator.name, "WaLa-PC-tiny");
    assert!(rt.condition.is_some(), "the loaded mesh is the condition");
    h.get_by_label("Generate").click();
    settle(&mut h);
    let rt = &h.state().session.shapes.generate;
    assert_eq!(rt.error, None);
    let result = rt.result.as_ref().expect("a shape was generated");
    let p = &result.provenance;
    assert_eq!((p["seed"].as_u64(), p["steps"].as_u64()), (Some(2), Some(3)));
    assert_eq!(p["autoencoder"]["name"], "wala-ae");
    assert_eq!(p["condition"]["name"], "octahedron.obj");
    // This seed decodes a surface, mapped back onto the octahedron's box (centre (6, 0, 0),
    // half-extent 1 ↔ 0.9) and shown in the view.
    let m = result.mesh.as_ref().expect("a surface");
    let reach = 1.0 / 0.9 + 1e-3;
    assert!(
        m.positions
            .iter()
            .all(|q| (q[0] - 6.0).abs() <= reach && q[1].abs() <= reach && q[2].abs() <= reach)
    );
    let names: Vec<String> = triangles(&h).into_iter().map(|(n, _)| n).collect();
    assert!(names.iter().any(|n| n == "generated (seed 2)"), "{names:?}");
    // The panel's line (the log says it too).
    let line = format!("{} triangles in {:.1} s", m.triangles.len(), result.seconds);
    assert!(h.get_all_by_label_contains(&line).count() >= 1, "{line}");
}

#[test]
fn the_shipped_demo_diffusion_model_opens_by_itself_and_generates() {
    let dir = tempfile::tempdir().unwrap();
    let mesh_path = dir.path().join("octahedron.obj");
    latent_workbench::io::mesh::write(&mesh_path, &wala::octahedron([0.0, 3.0, 0.0], 2.0)).unwrap();
    let mut h = harness(Launch {
        tab: Some("shapes".into()),
        files: vec![mesh_path],
        ..Launch::default()
    });
    h.state_mut().state.shapes.generate.steps = 5;
    settle(&mut h);
    let rt = &h.state().session.shapes.generate;
    assert_eq!(rt.error, None);
    let generator = rt.generator.as_ref().expect("the demo model opened without a folder");
    assert_eq!(generator.name, "wala-shapes-diffusion");
    assert_eq!(h.state().state.shapes.generate.folder, None, "nothing to persist");
    h.get_by_label_contains("The shipped demo model");
    h.get_by_label("Generate").click();
    settle(&mut h);
    let rt = &h.state().session.shapes.generate;
    assert_eq!(rt.error, None);
    let result = rt.result.as_ref().expect("a shape was generated");
    assert_eq!(result.provenance["model"]["name"], "wala-shapes-diffusion");
    assert!(result.mesh.is_some(), "the demo model decodes a surface for a solid");
}

/// A voxel-conditioned model takes upstream's voxel JSON: dropping one on the window reads it in a
/// job and makes it the condition; a grid of the wrong size or a file that is not a voxel JSON is
/// refused with its name.
#[test]
fn a_voxel_model_generates_from_a_dropped_voxel_json() {
    let dir = tempfile::tempdir().unwrap();
    let ae = dir.path().join("wala-ae");
    std::fs::create_dir(&ae).unwrap();
    let entry = wala::random_wala_model(&ae, "wala-ae", 3);
    let args = serde_json::json!({
        "use_pointcloud_conditions": false, "use_voxel_conditions": true, "voxel_dim": 8,
        "voxel_context_dim": 32,
    });
    let folder = wala::random_wala_diffusion(&dir.path().join("WaLa-VX-tiny"), 9, args, Default::default());
    let mut h = harness(Launch {
        tab: Some("shapes".into()),
        ..Launch::default()
    });
    only_this_wala_model(&mut h, entry);
    {
        let g = &mut h.state_mut().state.shapes.generate;
        g.autoencoder = Some("wala-ae".into());
        g.steps = 2;
        g.seed = 1;
    }
    h.state_mut().push(Command::Open(folder));
    settle(&mut h);
    h.get_by_label_contains("Load a closed mesh or an SDF volume to voxelise as the condition, or read a voxel JSON.");
    h.get_by_label("Voxel JSON…");

    // Not a voxel JSON, then a grid of the wrong size: each refused with the file's name.
    let bad = dir.path().join("report.json");
    std::fs::write(&bad, r#"{"operation": "export"}"#).unwrap();
    h.state_mut().push(Command::Open(bad));
    settle(&mut h);
    let err = h.state().session.shapes.generate.error.clone().unwrap_or_default();
    assert!(err.contains("report.json") && err.contains("resolution"), "{err}");
    let small = dir.path().join("small.json");
    std::fs::write(&small, r#"{"resolution": 8, "occupancy": [[1, 2, 3]]}"#).unwrap();
    h.state_mut().push(Command::Open(small));
    settle(&mut h);
    h.get_by_label("Generate").click();
    settle(&mut h);
    let err = h.state().session.shapes.generate.error.clone().unwrap_or_default();
    assert!(
        err.contains("small.json: a 8³ voxel grid, but WaLa-VX-tiny takes 16³"),
        "{err}"
    );

    // Upstream's example file: read, chosen as the condition and generated from.
    let json = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wala/voxels_example.json");
    h.state_mut().push(Command::Open(json.clone()));
    settle(&mut h);
    let rt = &h.state().session.shapes.generate;
    assert_eq!(rt.error, None);
    let file = rt.voxel_file.as_ref().expect("the voxel JSON was read");
    assert!(rt.use_voxel_file && file.resolution == 16 && file.cells > 0);
    assert!(
        h.state().session.assets.iter().all(|a| a.path.as_ref() != Some(&json)),
        "a voxel JSON is a condition, not data"
    );
    // Shown in the view as its occupied cells.
    let shown = triangles(&h);
    assert!(
        shown.contains(&("voxels_example.json".to_string(), file.cells)),
        "{shown:?}"
    );
    h.get_by_label("Generate").click();
    settle(&mut h);
    let rt = &h.state().session.shapes.generate;
    assert_eq!(rt.error, None);
    let p = &rt.result.as_ref().expect("a shape was generated").provenance;
    assert_eq!(p["condition"]["name"], "voxels_example.json");
    assert_eq!(p["condition"]["framing"], "as given");
    let cells = h.state().session.shapes.generate.voxel_file.as_ref().unwrap().cells;
    assert_eq!(p["condition"]["input"], format!("16³ voxels, {cells} occupied"));
}
