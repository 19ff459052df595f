//! WildFusion-family renderer (a reimplementation from the paper; no official code or weights):
//! triplane sampling semantics, depth and opacity of an analytic sphere, 3D consistency under
//! yaw, and latent interpolation end points.

use latent_workbench::methods::wildfusion::{
    self, Aggregation, AnalyticObject, P0, RenderOptions, RenderedView, Triplane, ViewCamera, analytic,
};

/// A 2×2, one-channel triplane over `[−1, 1]³` whose plane `plane` holds rows `[1, 2]`, `[3, 4]`.
fn tiny(plane: usize) -> Triplane {
    let mut v = vec![0.0f32; 3 * 4];
    v[plane * 4..plane * 4 + 4].copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
    Triplane::from_vec(v, 1, 2, 2.0).unwrap()
}

fn sample1(t: &Triplane, p: [f32; 3], agg: Aggregation) -> f32 {
    t.sample(&[p], agg)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()[0]
}

#[test]
fn bilinear_sampling_follows_grid_sample_align_corners_false_zeros() {
    // PyTorch: F.grid_sample(plane[None], grid, mode="bilinear", padding_mode="zeros",
    // align_corners=False) reads normalised u at pixel ((u + 1)·2 − 1)/2 for a 2-wide plane.
    let xy = tiny(0);
    let cases = [
        // u = v = 0 → pixel (0.5, 0.5): the mean of all four texels.
        ([0.0, 0.0, 0.7], 2.5),
        // u = 0.5 → column 1 exactly; v = −0.5 → row 0 exactly.
        ([0.5, -0.5, 0.0], 2.0),
        // u = 0.9 → column 1.4: 0.6·texel(1) + 0.4·(zero padding).
        ([0.9, -0.5, 0.0], 0.6 * 2.0),
        // u = −0.9 → column −0.4: 0.4·(zero padding) + 0.6·texel(0).
        ([-0.9, -0.5, 0.0], 0.6 * 1.0),
        // u = 0.25 → column 0.75, v = 0.25 → row 0.75:
        // 0.25·0.25·1 + 0.75·0.25·2 + 0.25·0.75·3 + 0.75·0.75·4 = 3.25.
        ([0.25, 0.25, 0.0], 3.25),
        // Outside the plane: zero.
        ([1.5, 0.0, 0.0], 0.0),
    ];
    for (p, want) in cases {
        let got = sample1(&xy, p, Aggregation::Sum);
        assert!((got - want).abs() < 1e-6, "{p:?}: {got} vs {want}");
        let mean = sample1(&xy, p, Aggregation::Mean);
        assert!((mean - want / 3.0).abs() < 1e-6);
    }
    // Plane 1 is xz: x along the columns, z along the rows; y is ignored.
    let xz = tiny(1);
    assert!((sample1(&xz, [0.5, 0.9, 0.5], Aggregation::Sum) - 4.0).abs() < 1e-6);
    assert!((sample1(&xz, [-0.5, 0.3, 0.5], Aggregation::Sum) - 3.0).abs() < 1e-6);
    // Plane 2 is yz: y along the columns, z along the rows; x is ignored.
    let yz = tiny(2);
    assert!((sample1(&yz, [0.8, 0.5, -0.5], Aggregation::Sum) - 2.0).abs() < 1e-6);
    // The box size scales world coordinates: a box of 4 puts x = 1 at u = 0.5.
    let big = Triplane::new(xy.planes().clone(), 4.0).unwrap();
    assert!((sample1(&big, [1.0, -1.0, 0.0], Aggregation::Sum) - 2.0).abs() < 1e-6);
}

#[test]
fn analytic_triplane_reproduces_its_field() {
    let t = analytic::triplane(AnalyticObject::Torus, 128).unwrap();
    let dec = analytic::decoder().unwrap();
    let pts = [[0.45f32, 0.05, 0.0], [0.0, 0.0, -0.4], [-0.3, 0.1, 0.3]];
    let feats = t.sample(&pts, Aggregation::Mean).unwrap();
    let out = dec.forward(&feats).unwrap();
    let sigma = out.sigma.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for (p, s) in pts.iter().zip(sigma) {
        let want = AnalyticObject::Torus.field(*p)[0];
        // Bilinear interpolation of a quadratic over texels of 2/128: a few density units.
        assert!((s - want).abs() < 0.01 * want.abs() + 60.0, "{p:?}: {s} vs {want}");
    }
}

fn opts(size: usize, samples: usize, importance: usize) -> RenderOptions {
    RenderOptions {
        width: size,
        height: size,
        samples_per_ray: samples,
        importance_samples: importance,
        deterministic: true,
        ..RenderOptions::default()
    }
}

fn render(object: AnalyticObject, camera: &ViewCamera, o: &RenderOptions) -> RenderedView {
    let t = analytic::triplane(object, analytic::RESOLUTION).unwrap();
    wildfusion::render_view(&t, &analytic::decoder().unwrap(), camera, o, &mut |_| true).unwrap()
}

#[test]
fn sphere_depth_and_opacity() {
    let size = 9;
    for importance in [0, 16] {
        let o = opts(size, 64, importance);
        let view = render(AnalyticObject::Sphere, &P0, &o);
        let centre = (size / 2) * size + size / 2;
        // Camera 3 from the centre, sphere radius 0.6: the surface is 2.4 away.
        let spacing = 2.0 / 64.0;
        assert!(
            (view.depth[centre] - 2.4).abs() < spacing,
            "importance {importance}: depth {}",
            view.depth[centre]
        );
        assert!(view.opacity[centre] > 0.99);
        // The corner ray passes ~1.07 from the centre: it misses the sphere.
        assert!(view.opacity[0] < 1e-3, "corner opacity {}", view.opacity[0]);
        // Background (white) shows where nothing is hit.
        assert!(view.rgb[..3].iter().all(|&c| c > 0.99));
    }
}

fn mean_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
}

#[test]
fn yaw_of_a_vertically_symmetric_object_changes_nothing() {
    let o = opts(32, 48, 16);
    let left = ViewCamera { yaw_deg: -25.0, ..P0 };
    let right = ViewCamera { yaw_deg: 25.0, ..P0 };
    for object in [AnalyticObject::Sphere, AnalyticObject::Cylinder] {
        let a = render(object, &left, &o);
        let b = render(object, &right, &o);
        assert!(
            mean_abs(&a.rgb, &b.rgb) < 0.01,
            "{object:?} rgb {}",
            mean_abs(&a.rgb, &b.rgb)
        );
        assert!(mean_abs(&a.opacity, &b.opacity) < 0.01);
        // Depth where both see the object (empty rays end at the cube's far side, which is
        // not symmetric).
        let both: Vec<(f32, f32)> = (0..a.depth.len())
            .filter(|&i| a.opacity[i] > 0.5 && b.opacity[i] > 0.5)
            .map(|i| (a.depth[i], b.depth[i]))
            .collect();
        assert!(both.len() > 100);
        let depth_diff = both.iter().map(|(x, y)| (x - y).abs()).sum::<f32>() / both.len() as f32;
        assert!(depth_diff < 0.01, "{object:?} depth {depth_diff}");
    }
    // The torus's hue turns with it: the same yaws differ (the test above is not vacuous).
    let a = render(AnalyticObject::Torus, &left, &o);
    let b = render(AnalyticObject::Torus, &right, &o);
    assert!(mean_abs(&a.rgb, &b.rgb) > 0.02, "{}", mean_abs(&a.rgb, &b.rgb));
}

#[test]
fn interpolation_end_points_are_the_latents() {
    let a = analytic::triplane(AnalyticObject::Box, 32).unwrap();
    let b = analytic::triplane(AnalyticObject::Torus, 32).unwrap();
    let flat = |t: &Triplane| t.planes().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(flat(&wildfusion::interpolate(&a, &b, 0.0).unwrap()), flat(&a));
    assert_eq!(flat(&wildfusion::interpolate(&a, &b, 1.0).unwrap()), flat(&b));
    let mid = flat(&wildfusion::interpolate(&a, &b, 0.5).unwrap());
    let (fa, fb) = (flat(&a), flat(&b));
    assert!((mid[100] - 0.5 * (fa[100] + fb[100])).abs() < 1e-3);
    let other = analytic::triplane(AnalyticObject::Box, 16).unwrap();
    assert!(wildfusion::interpolate(&a, &other, 0.5).is_err());
}

#[test]
fn cancel_stops_a_render() {
    let t = analytic::triplane(AnalyticObject::Sphere, 32).unwrap();
    let o = RenderOptions {
        rays_per_batch: 16,
        ..opts(16, 8, 0)
    };
    let r = wildfusion::render_view(&t, &analytic::decoder().unwrap(), &P0, &o, &mut |f| f < 0.3);
    assert!(matches!(r, Err(wildfusion::WildFusionError::Cancelled)));
}
