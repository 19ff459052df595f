//! The 3D viewport rendered offscreen (wgpu on a GPU, or Mesa's lavapipe on CPU-only machines):
//! what the pixels of a shaded mesh, a colormap, a wireframe, a clip plane, point sprites and
//! side-by-side objects look like, and every shader in `shaders/` passing wgpu's validation.
//!
//! Without any adapter these tests print why and pass, unless `LW_REQUIRE_RENDER=1` (set by
//! scripts/test.sh, so CI always renders).

use latent_workbench::core::colormap::Colormap;
use latent_workbench::core::transfer::OpacityCurve;
use latent_workbench::core::{Mesh, PointCloud};
use latent_workbench::render::{
    Arrangement, ClipPlane, Coloring, Geometry, Gpu, OrbitCamera, RenderSettings, Scene, SceneObject, SceneRenderer,
    Shading, ViewPreset, render_rgba,
};
use std::sync::{Arc, Mutex, OnceLock};

const W: u32 = 160;
const H: u32 = 120;

/// One device for the whole file (opening lavapipe costs ~0.1 s).
fn gpu() -> Option<&'static Mutex<(Gpu, SceneRenderer)>> {
    static GPU: OnceLock<Option<Mutex<(Gpu, SceneRenderer)>>> = OnceLock::new();
    GPU.get_or_init(|| match Gpu::headless() {
        Ok(gpu) => {
            let renderer = SceneRenderer::new(&gpu.device).expect("the viewport pipelines build");
            Some(Mutex::new((gpu, renderer)))
        }
        Err(e) => {
            assert!(
                std::env::var("LW_REQUIRE_RENDER").as_deref() != Ok("1"),
                "LW_REQUIRE_RENDER=1 but no adapter: {e}"
            );
            eprintln!("skipping render tests: {e}");
            None
        }
    })
    .as_ref()
}

struct Picture(Vec<u8>);

impl Picture {
    fn px(&self, x: u32, y: u32) -> [u8; 4] {
        let i = ((y * W + x) * 4) as usize;
        self.0[i..i + 4].try_into().unwrap()
    }
    /// How many pixels differ from `bg` by more than a few levels.
    fn covered(&self, bg: [u8; 4]) -> usize {
        self.0.chunks(4).filter(|p| differs(p, &bg)).count()
    }
}

fn differs(p: &[u8], q: &[u8]) -> bool {
    p.iter().zip(q).take(3).any(|(a, b)| a.abs_diff(*b) > 6)
}

fn render(scene: &Scene, settings: &RenderSettings, preset: ViewPreset) -> Option<Picture> {
    let lock = gpu()?;
    let mut guard = lock.lock().unwrap();
    let (gpu, renderer) = &mut *guard;
    let (lo, hi) = scene.bounds(settings.arrangement).unwrap();
    let camera = OrbitCamera::framing(lo, hi, preset);
    Some(Picture(
        render_rgba(gpu, renderer, scene, &camera, settings, [W, H]).expect("render"),
    ))
}

/// A UV sphere of radius `r` at `c`, with a scalar equal to x.
fn sphere(c: [f32; 3], r: f32) -> Mesh {
    uv_sphere(c, r, 24, 48)
}

fn uv_sphere(c: [f32; 3], r: f32, rings: u32, segs: u32) -> Mesh {
    let mut m = Mesh::default();
    for i in 0..=rings {
        let theta = std::f32::consts::PI * i as f32 / rings as f32;
        for j in 0..segs {
            let phi = 2.0 * std::f32::consts::PI * j as f32 / segs as f32;
            let n = [theta.sin() * phi.cos(), theta.sin() * phi.sin(), theta.cos()];
            m.positions.push([c[0] + r * n[0], c[1] + r * n[1], c[2] + r * n[2]]);
            m.normals.push(n);
            m.scalars.push(n[0]);
        }
    }
    for i in 0..rings {
        for j in 0..segs {
            let (a, b) = (i * segs + j, i * segs + (j + 1) % segs);
            let (c2, d) = (a + segs, b + segs);
            m.triangles.push([a, c2, b]);
            m.triangles.push([b, c2, d]);
        }
    }
    m
}

fn one(mesh: Mesh) -> Scene {
    Scene {
        objects: vec![SceneObject::new(0, "sphere", Geometry::Mesh(Arc::new(mesh)))],
    }
}

fn plain() -> RenderSettings {
    RenderSettings {
        gizmo: false,
        ..Default::default()
    }
}

/// A new mesh under the same object id is drawn, even when it is allocated where the dropped
/// previous one was. The renderer's GPU cache once compared bare addresses, so the next frame of
/// an animation, given the freed frame's address by the allocator, was drawn with its buffers.
#[test]
fn a_new_mesh_under_the_same_id_is_redrawn_at_a_reused_address() {
    let Some(lock) = gpu() else {
        return;
    };
    let settings = plain();
    let camera = OrbitCamera::framing([-6.0, -2.0, -2.0], [6.0, 2.0, 2.0], ViewPreset::Front);
    let draw = |mesh: Arc<Mesh>| {
        // The scene, and with it this mesh, is dropped when this returns.
        let scene = Scene {
            objects: vec![SceneObject::new(0, "sphere", Geometry::Mesh(mesh))],
        };
        let mut guard = lock.lock().unwrap();
        let (gpu, renderer) = &mut *guard;
        Picture(render_rgba(gpu, renderer, &scene, &camera, &settings, [W, H]).expect("render"))
    };
    let left = Arc::new(sphere([-3.0, 0.0, 0.0], 1.5));
    let freed = Arc::as_ptr(&left) as usize;
    let first = draw(left);
    // Allocate the second mesh at the first one's address when the allocator hands it out again
    // (it does at once while nothing holds the first; a renderer that keeps it never gives it up).
    let right = sphere([3.0, 0.0, 0.0], 1.5);
    let mut elsewhere = Vec::new();
    let second = loop {
        let mesh = Arc::new(right.clone());
        if Arc::as_ptr(&mesh) as usize == freed || elsewhere.len() == 1000 {
            break mesh;
        }
        elsewhere.push(mesh);
    };
    let second = draw(second);
    let bg = settings.background;
    // Which half of the middle row the sphere covers.
    let halves = |p: &Picture| {
        let covered = |xs: std::ops::Range<u32>| xs.filter(|&x| differs(&p.px(x, H / 2), &bg)).count();
        (covered(0..W / 2), covered(W / 2..W))
    };
    let (a, b) = (halves(&first), halves(&second));
    let side = |(l, r): (usize, usize)| (l > 0) != (r > 0) && l > 0;
    assert!(
        a.0.min(a.1) == 0 && b.0.min(b.1) == 0 && a.0.max(a.1) > 0 && side(a) != side(b),
        "each image covers one half, and not the same one: {a:?} then {b:?}"
    );
}

#[test]
fn a_sphere_is_lit_in_the_middle_and_background_at_the_corners() {
    let settings = plain();
    let Some(pic) = render(&one(sphere([10.0, 20.0, 30.0], 5.0)), &settings, ViewPreset::Front) else {
        return;
    };
    let bg = settings.background;
    assert!(!differs(&pic.px(0, 0), &bg) && !differs(&pic.px(W - 1, H - 1), &bg));
    let centre = pic.px(W / 2, H / 2);
    // The default object colour is a light grey, lit head-on: much brighter than the background.
    assert!(centre[0] > 150 && centre[1] > 150, "{centre:?}");
    // The disc's silhouette: framing fits the bounding sphere of the box, so the disc covers a
    // good part of the picture but not all of it.
    let frac = pic.covered(bg) as f64 / (W * H) as f64;
    assert!((0.1..0.6).contains(&frac), "covered {frac}");
    // Lighting falls off toward the rim.
    let row: Vec<u8> = (0..W).map(|x| pic.px(x, H / 2)[0]).collect();
    let first_lit = row.iter().position(|&v| v.abs_diff(bg[0]) > 6).unwrap() as u32;
    assert!(pic.px(first_lit + 2, H / 2)[0] < centre[0]);
}

#[test]
fn flat_shading_wireframe_and_gizmo_change_the_picture() {
    // A coarse sphere, so that its facets are wide.
    let scene = one(uv_sphere([0.0; 3], 1.0, 8, 12));
    let Some(smooth) = render(&scene, &plain(), ViewPreset::Iso) else {
        return;
    };
    let flat = render(
        &scene,
        &RenderSettings {
            shading: Shading::Flat,
            ..plain()
        },
        ViewPreset::Iso,
    )
    .unwrap();
    let changed = |a: &Picture, b: &Picture| a.0.chunks(4).zip(b.0.chunks(4)).filter(|(p, q)| differs(p, q)).count();
    assert!(changed(&smooth, &flat) > 200, "flat shading shows facets");
    let wire = render(
        &scene,
        &RenderSettings {
            wireframe: true,
            ..plain()
        },
        ViewPreset::Iso,
    )
    .unwrap();
    // The wire colour is near black: many pixels on the sphere get darker.
    let darker = smooth
        .0
        .chunks(4)
        .zip(wire.0.chunks(4))
        .filter(|(p, q)| q[0] as i32 + 40 < p[0] as i32)
        .count();
    assert!(darker > 300, "{darker} pixels darkened by the wireframe");
    let gizmo = render(&scene, &RenderSettings::default(), ViewPreset::Iso).unwrap();
    // The gizmo sits in the bottom-left corner: a red (X) line appears there.
    let reddish = (0..W / 3)
        .flat_map(|x| (2 * H / 3..H).map(move |y| (x, y)))
        .filter(|&(x, y)| {
            let p = gizmo.px(x, y);
            p[0] > 150 && p[1] < 120 && p[2] < 120
        })
        .count();
    assert!(reddish > 3, "no red X axis in the gizmo corner");
}

#[test]
fn scalars_go_through_the_colormap_from_low_to_high() {
    let mut scene = one(sphere([0.0; 3], 1.0));
    scene.objects[0].coloring = Coloring::Scalar {
        colormap: Colormap::Viridis,
        lo: -1.0,
        hi: 1.0,
    };
    let Some(pic) = render(&scene, &plain(), ViewPreset::Front) else {
        return;
    };
    // The scalar is x, which the front view shows on the left (the subject's right, as in
    // radiological convention): viridis yellow (high) on the left, purple (low) on the right.
    let high = pic.px(W / 2 - 18, H / 2);
    let low = pic.px(W / 2 + 18, H / 2);
    assert!(low[2] > low[1] && high[1] > high[2], "low {low:?} high {high:?}");
    assert!(high[0] > low[0]);
}

#[test]
fn the_clip_plane_cuts_away_the_far_side_of_its_normal() {
    let scene = one(sphere([0.0; 3], 1.0));
    let Some(whole) = render(&scene, &plain(), ViewPreset::Front) else {
        return;
    };
    // Keep x ≥ 0.3: seen from the front +X is on the left, so the right part of the disc goes.
    let clipped = render(
        &scene,
        &RenderSettings {
            clip: Some(ClipPlane {
                normal: [1.0, 0.0, 0.0],
                point: [0.3, 0.0, 0.0],
            }),
            ..plain()
        },
        ViewPreset::Front,
    )
    .unwrap();
    let bg = plain().background;
    assert!(differs(&whole.px(W / 2 + 10, H / 2), &bg));
    assert!(!differs(&clipped.px(W / 2 + 10, H / 2), &bg));
    assert!(differs(&clipped.px(W / 2 - 20, H / 2), &bg));
    assert!(clipped.covered(bg) < whole.covered(bg) / 2);
}

#[test]
fn point_sprites_and_side_by_side_objects_are_drawn() {
    let points: Vec<[f32; 3]> = (0..200)
        .map(|i| {
            let t = i as f32 / 200.0 * std::f32::consts::TAU;
            [t.cos(), 0.0, t.sin()]
        })
        .collect();
    let scene = Scene {
        objects: vec![SceneObject::new(
            0,
            "ring",
            Geometry::Points(Arc::new(PointCloud::new(points))),
        )],
    };
    let Some(pic) = render(&scene, &plain(), ViewPreset::Front) else {
        return;
    };
    let bg = plain().background;
    // A ring of points: the centre stays empty, the ring is covered.
    assert!(!differs(&pic.px(W / 2, H / 2), &bg));
    assert!(pic.covered(bg) > 300);

    let two = Scene {
        objects: vec![
            SceneObject::new(0, "a", Geometry::Mesh(Arc::new(sphere([0.0; 3], 1.0)))),
            SceneObject::new(1, "b", Geometry::Mesh(Arc::new(sphere([0.0; 3], 1.0)))),
        ],
    };
    let overlay = render(&two, &plain(), ViewPreset::Front).unwrap();
    let side = render(
        &two,
        &RenderSettings {
            arrangement: Arrangement::SideBySide,
            ..plain()
        },
        ViewPreset::Front,
    )
    .unwrap();
    // Overlaid, the centre is the (first) sphere; side by side, the gap between them.
    assert!(differs(&overlay.px(W / 2, H / 2), &bg));
    assert!(!differs(&side.px(W / 2, H / 2), &bg));
    assert!(differs(&side.px(W / 4, H / 2), &bg) && differs(&side.px(3 * W / 4, H / 2), &bg));
}

#[test]
fn every_shader_passes_wgpu_validation() {
    let Some(lock) = gpu() else { return };
    let guard = lock.lock().unwrap();
    let device = &guard.0.device;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wgsl") {
            let source = std::fs::read_to_string(&path).unwrap();
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let _module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: None,
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            let error = pollster::block_on(scope.pop());
            assert!(error.is_none(), "{}: {}", path.display(), error.unwrap());
            checked += 1;
        }
    }
    assert!(checked >= 3, "found {checked} shaders");
}

/// An `n`³ volume of 1 mm voxels centred on the origin (x fastest).
fn centred_cube(n: usize, data: Vec<f32>) -> Arc<latent_workbench::core::Volume> {
    let c = -(n as f64) / 2.0;
    let affine = [
        [1.0, 0.0, 0.0, c],
        [0.0, 1.0, 0.0, c],
        [0.0, 0.0, 1.0, c],
        [0.0, 0.0, 0.0, 1.0],
    ];
    Arc::new(latent_workbench::core::Volume::new([n; 3], 1, [1.0; 3], affine, data).unwrap())
}

/// Magma over the window `[lo, hi]` (a window above every value makes a volume fully transparent).
/// An `n³` grid whose value is `f(distance from the grid's centre, in voxels)`.
fn radial(n: usize, f: impl Fn(f32) -> f32) -> Vec<f32> {
    let c = (n as f32 - 1.0) / 2.0;
    (0..n * n * n)
        .map(|i| {
            let d = [i % n, i / n % n, i / (n * n)].map(|v| v as f32 - c);
            f((d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt())
        })
        .collect()
}

fn magma(lo: f32, hi: f32) -> Coloring {
    Coloring::Scalar {
        colormap: Colormap::Magma,
        lo,
        hi,
    }
}

#[test]
fn a_volume_is_ray_marched_through_its_window() {
    let n = 32;
    // A bright ball of radius 8 voxels in an empty grid.
    let data = radial(n, |r| if r < 8.0 { 100.0 } else { 0.0 });
    let mut object = SceneObject::new(7, "ball", Geometry::Volume(centred_cube(n, data)));
    object.coloring = magma(10.0, 100.0);
    let scene = Scene { objects: vec![object] };
    let settings = RenderSettings {
        volume_opacity: 0.3,
        ..plain()
    };
    let Some(pic) = render(&scene, &settings, ViewPreset::Front) else {
        return;
    };
    let bg = settings.background;
    let centre = pic.px(W / 2, H / 2);
    // Magma's top end is a light yellow: the ball's centre is bright and warm.
    assert!(centre[0] > 180 && centre[0] > centre[2], "{centre:?}");
    assert!(!differs(&pic.px(2, 2), &bg));
    // The disc of the ball: about π·8² of the box's 32² cross-section, framed with margins.
    let covered = pic.covered(bg);
    assert!(covered > 300 && covered < (W * H / 2) as usize, "{covered}");
    // A window above every value makes the volume fully transparent.
    let mut dark = scene.clone();
    dark.objects[0].coloring = magma(200.0, 300.0);
    let empty = render(&dark, &settings, ViewPreset::Front).unwrap();
    assert_eq!(empty.covered(bg), 0);
}

#[test]
fn the_opacity_curve_hides_what_it_maps_to_zero() {
    let n = 32;
    // A ball of radius 8 voxels: a core of radius 4 at 100 in a shell at 40.
    let data = radial(n, |r| match r {
        r if r < 4.0 => 100.0,
        r if r < 8.0 => 40.0,
        _ => 0.0,
    });
    let mut object = SceneObject::new(3, "shells", Geometry::Volume(centred_cube(n, data)));
    object.coloring = magma(10.0, 100.0);
    let scene = Scene { objects: vec![object] };
    let ramp = RenderSettings {
        volume_opacity: 0.3,
        ..plain()
    };
    let Some(with_shell) = render(&scene, &ramp, ViewPreset::Front) else {
        return;
    };
    // The shell sits at t = 1/3 of the window: a curve that is zero below t = 0.5 hides it.
    let step = RenderSettings {
        volume_curve: OpacityCurve::parse("0:0,0.5:0,0.6:1,1:1").unwrap(),
        ..ramp
    };
    let core_only = render(&scene, &step, ViewPreset::Front).unwrap();
    let bg = ramp.background;
    let (all, core) = (with_shell.covered(bg), core_only.covered(bg));
    assert!(core > 0 && core * 2 < all, "core {core} of {all} pixels");
    assert!(differs(&core_only.px(W / 2, H / 2), &bg), "the core still shows");
}

#[test]
fn volume_rays_stop_at_an_opaque_mesh_inside_the_volume() {
    let n = 32;
    // Bright only behind the sphere as the front view sees it (the eye is on +Y): y < −4 mm.
    let data: Vec<f32> = (0..n * n * n)
        .map(|i| if ((i / n) % n) < 12 { 100.0 } else { 0.0 })
        .collect();
    let mut fog = SceneObject::new(1, "fog", Geometry::Volume(centred_cube(n, data)));
    fog.coloring = magma(10.0, 100.0);
    let mut ball = SceneObject::new(2, "ball", Geometry::Mesh(Arc::new(sphere([0.0; 3], 6.0))));
    ball.coloring = Coloring::Solid([40, 90, 220, 255]);
    let scene = Scene {
        objects: vec![ball, fog],
    };
    let settings = RenderSettings {
        volume_opacity: 0.5,
        ..plain()
    };
    let Some(with_fog) = render(&scene, &settings, ViewPreset::Front) else {
        return;
    };
    // The same framing with the volume fully transparent (its window above every value).
    let mut clear = scene.clone();
    clear.objects[1].coloring = magma(200.0, 300.0);
    let alone = render(&clear, &settings, ViewPreset::Front).unwrap();
    // In front of the sphere the volume is empty and behind it is hidden: the sphere's colour.
    let (a, b) = (with_fog.px(W / 2, H / 2), alone.px(W / 2, H / 2));
    assert!(!differs(&a, &b), "sphere centre {a:?} against {b:?} without the volume");
    assert!(b[2] > b[0], "the sphere is blue: {b:?}");
    // Beside the sphere the rays reach the bright slab: the volume is drawn.
    let (a, b) = (with_fog.px(W / 2 + 24, H / 2), alone.px(W / 2 + 24, H / 2));
    assert!(differs(&a, &b) && a[0] > b[0], "beside the sphere {a:?} against {b:?}");
}

/// `render-motion`: one PNG per frame of a sequence (the frames differ as the shape moves) or a
/// turntable around one frame, with provenance; a frame out of range is refused by name.
#[test]
fn render_motion_writes_a_frame_per_image_and_a_turntable() {
    use latent_workbench::methods::demo_data::motion::{MotionKind, MotionSpec, generate};
    if gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let seq = generate(&MotionSpec {
        frames: 4,
        resolution: 24,
        ..MotionSpec::new(MotionKind::BendingCapsule)
    })
    .unwrap()
    .sequence;
    let frames = dir.path().join("capsule");
    latent_workbench::io::motion::write_frames(&frames, &seq, "ply").unwrap();
    let run = |out: &std::path::Path, extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_latent-workbench"))
            .arg("render-motion")
            .arg(&frames)
            .arg("-o")
            .arg(out)
            .args(["--size", "96x72", "--displacement", "viridis"])
            .args(extra)
            .output()
            .unwrap()
    };
    let pngs = |d: &std::path::Path| -> Vec<Vec<u8>> {
        let mut files: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "png"))
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("frame_")))
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| match latent_workbench::io::image::read(f).unwrap().data() {
                latent_workbench::core::ImageData::U8(v) => v.clone(),
                _ => panic!("8-bit PNG"),
            })
            .collect()
    };
    let playback = dir.path().join("playback");
    let o = run(&playback, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let images = pngs(&playback);
    assert_eq!(images.len(), 4);
    assert_ne!(images[0], images[1], "the capsule bends between frames");
    assert!(playback.join("provenance.json").exists());
    let turntable = dir.path().join("turntable");
    let o = run(&turntable, &["--turntable", "4", "--at-frame", "2", "--strip"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let views = pngs(&turntable);
    assert_eq!(views.len(), 4);
    assert_ne!(views[0], views[1], "the camera turns");
    // The strip is the four views side by side: its row y is the views' rows y in order.
    let strip = latent_workbench::io::image::read(&turntable.join("strip.png")).unwrap();
    assert_eq!((strip.width(), strip.height()), (4 * 96, 72));
    let latent_workbench::core::ImageData::U8(px) = strip.data() else {
        panic!("8-bit PNG")
    };
    let r = 96 * strip.channels().count(); // bytes in one row of one view
    for (k, v) in views.iter().enumerate() {
        assert_eq!(&px[30 * 4 * r + k * r..][..r], &v[30 * r..][..r], "view {k} in row 30");
    }
    let o = run(&turntable, &["--turntable", "4", "--at-frame", "9"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--at-frame"), "{err}");
}
