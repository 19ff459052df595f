//! `wildfusion-render`: an analytic triplane (or the blend of two) drawn by the WildFusion-family
//! renderer (a reimplementation from the paper; no official code or weights exist) from a
//! view-space camera: RGB to `-o`, colormapped depth to `--depth`, `provenance.json` beside them;
//! or `--turntable N -o DIR` for N views across the allowed yaw. With `--model`, the objects are
//! drawn from the input view and go through a WildFusion-family autoencoder instead (image → Z,
//! Z blended, decoded to a triplane).

use super::print_json;
use super::render::parse_colormap;
use crate::core::colormap::Colormap;
use crate::core::jobs::JobError;
use crate::methods::wildfusion::{
    self, AnalyticObject, P0, RenderOptions, RenderedView, VIEW_RANGE, ViewCamera, analytic, encode,
};
use anyhow::{Context, bail};
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The object (latent A): sphere, box, cylinder or torus.
    #[arg(long, default_value = "sphere")]
    pub object: String,
    /// A second object (latent B): the render shows the blend at `--t`.
    #[arg(long)]
    pub object_b: Option<String>,
    /// Interpolation weight between A (0) and B (1).
    #[arg(long, default_value_t = 0.5)]
    pub t: f32,
    /// Yaw in degrees (within ±35, view space).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub yaw: f32,
    /// Pitch in degrees (within ±20).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub pitch: f32,
    /// Distance from the eye to the pivot (2.2–4.5).
    #[arg(long, default_value_t = P0.radius)]
    pub radius: f32,
    /// Image side in pixels (square).
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    #[arg(long, default_value_t = 48)]
    pub samples_per_ray: usize,
    #[arg(long, default_value_t = 24)]
    pub importance_samples: usize,
    /// A WildFusion-family autoencoder (model name or folder, e.g. `wildfusion-demo`): each object
    /// is drawn from the input view P0, encoded to its 2D latent Z (posterior mean), the two Z
    /// are blended at `--t` and decoded to the triplane that is rendered.
    #[arg(long)]
    pub model: Option<String>,
    /// Triplane resolution of the analytic latents.
    #[arg(long, default_value_t = analytic::RESOLUTION)]
    pub plane_resolution: usize,
    /// RGB output (.png), or the output folder with --turntable.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Colormapped depth output (.png); with --turntable depth images are written beside the RGB.
    #[arg(long)]
    pub depth: Option<PathBuf>,
    /// The depth colormap (gray, viridis, magma, diverging).
    #[arg(long, default_value = "viridis")]
    pub colormap: String,
    /// N views evenly across the allowed yaw range, into the folder `-o`.
    #[arg(long)]
    pub turntable: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

fn object(name: &str) -> anyhow::Result<AnalyticObject> {
    AnalyticObject::parse(name).with_context(|| {
        let names: Vec<&str> = AnalyticObject::ALL.iter().map(|o| o.name()).collect();
        format!("unknown object {name:?}; choose one of {}", names.join(", "))
    })
}

fn write_view(
    view: &RenderedView,
    rgb: &Path,
    depth: Option<&Path>,
    colormap: Colormap,
) -> anyhow::Result<Option<(f32, f32)>> {
    crate::io::image::write_png(
        rgb,
        &crate::io::image::rgba8_to_image(view.width, view.height, view.rgba8()),
    )?;
    let mut window = None;
    if let Some(path) = depth {
        let (pixels, w) = view.depth_rgba8(colormap);
        window = w;
        crate::io::image::write_png(path, &crate::io::image::rgba8_to_image(view.width, view.height, pixels))?;
    }
    Ok(window)
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let a = object(&args.object)?;
    let b = args.object_b.as_deref().map(object).transpose()?;
    let colormap = parse_colormap("--colormap", Some(&args.colormap))?.unwrap_or(Colormap::Viridis);
    if !(0.0..=1.0).contains(&args.t) {
        bail!("--t must be between 0 and 1, got {}", args.t);
    }
    if !(16..=1024).contains(&args.size) {
        bail!("--size must be between 16 and 1024, got {}", args.size);
    }
    if args.samples_per_ray < 2 {
        bail!("--samples-per-ray must be at least 2");
    }
    let camera = ViewCamera {
        yaw_deg: args.yaw,
        pitch_deg: args.pitch,
        radius: args.radius,
        ..P0
    };
    if !camera.within(&VIEW_RANGE) {
        bail!(
            "the camera must stay in view space: yaw within ±{}°, pitch within ±{}°, radius {}–{}",
            VIEW_RANGE.yaw_deg,
            VIEW_RANGE.pitch_deg,
            VIEW_RANGE.radius_min,
            VIEW_RANGE.radius_max
        );
    }
    let cameras = match args.turntable {
        Some(0) => bail!("--turntable needs at least one view"),
        Some(n) => camera.turntable(n, &VIEW_RANGE),
        None => vec![camera],
    };
    let opts = RenderOptions {
        width: args.size,
        height: args.size,
        samples_per_ray: args.samples_per_ray,
        importance_samples: args.importance_samples,
        deterministic: true,
        ..RenderOptions::default()
    };
    let entry = args
        .model
        .as_deref()
        .map(|spec| crate::core::manifest::find_entry(spec, encode::FAMILY).map_err(anyhow::Error::msg))
        .transpose()?;
    let (t, resolution) = (args.t, args.plane_resolution);
    let job_entry = entry.clone();
    let job_opts = opts.clone();
    let job_cameras = cameras.clone();
    let views = super::progress::run("wildfusion-render", move |ctx| {
        let fail = |e: wildfusion::WildFusionError| match e {
            wildfusion::WildFusionError::Cancelled => JobError::Cancelled,
            e => JobError::Failed(e.to_string()),
        };
        let (latent, decoder) = match &job_entry {
            Some(entry) => {
                ctx.set(0.0, format!("encoding with {}", entry.manifest.name));
                let model = encode::load_model(entry).map_err(fail)?;
                let size = model.config().image_size;
                let z = |o| -> Result<candle_core::Tensor, wildfusion::WildFusionError> {
                    encode::encode_image(&model, &encode::object_image(o, size)?)
                };
                let za = z(a).map_err(fail)?;
                let zb = b.map(z).transpose().map_err(fail)?;
                let latent = match &zb {
                    Some(zb) => encode::decode_blend(&model, &za, zb, t),
                    None => encode::decode_blend(&model, &za, &za, 0.0),
                };
                (latent.map_err(fail)?, model.osg().clone())
            }
            None => {
                let mut latent = analytic::triplane(a, resolution).map_err(fail)?;
                if let Some(b) = b {
                    let other = analytic::triplane(b, resolution).map_err(fail)?;
                    latent = wildfusion::interpolate(&latent, &other, t).map_err(fail)?;
                }
                (latent, analytic::decoder().map_err(fail)?)
            }
        };
        let n = job_cameras.len();
        let mut views = Vec::with_capacity(n);
        for (k, cam) in job_cameras.iter().enumerate() {
            let view = wildfusion::render_view(&latent, &decoder, cam, &job_opts, &mut |f| {
                ctx.set((k as f32 + f) / n as f32, format!("view {}/{n}", k + 1));
                ctx.check().is_ok()
            })
            .map_err(fail)?;
            views.push(view);
        }
        Ok(views)
    })?;
    let mut written = Vec::new();
    let mut windows = Vec::new();
    let provenance_path = if args.turntable.is_some() {
        std::fs::create_dir_all(&args.output).with_context(|| format!("cannot create {}", args.output.display()))?;
        for (k, view) in views.iter().enumerate() {
            let rgb = args.output.join(format!("view_{k:04}.png"));
            let depth = args.output.join(format!("depth_{k:04}.png"));
            windows.push(write_view(view, &rgb, Some(&depth), colormap)?);
            written.push(rgb);
            written.push(depth);
        }
        args.output.join("provenance.json")
    } else {
        windows.push(write_view(&views[0], &args.output, args.depth.as_deref(), colormap)?);
        written.push(args.output.clone());
        written.extend(args.depth.clone());
        args.output.with_extension("provenance.json")
    };
    let provenance = json!({
        "program": "latent-workbench",
        "version": crate::VERSION,
        "method": "WildFusion-family renderer, reimplemented from the paper (arXiv 2311.13570); no official code or weights exist",
        "latent": match &entry {
            Some(e) => format!(
                "the objects drawn from the input view P0, encoded by {} to Z (posterior mean), Z blended, decoded to a triplane",
                e.manifest.name
            ),
            None => "analytic triplanes, blended".to_string(),
        },
        "model": entry.as_ref().map(|e| json!({"name": e.manifest.name, "folder": e.dir, "sha256": e.manifest.sha256})),
        "made_by": {
            "operation": if args.turntable.is_some() { "turntable" } else { "render" },
            "object_a": a.name(),
            "object_b": b.map(AnalyticObject::name),
            "t": b.map(|_| t),
            "plane_resolution": resolution,
            "cameras": cameras,
            "render": opts,
            "depth": "expected distance along the ray, colormapped over each image's opaque pixels",
            "depth_colormap": colormap.name(),
            "depth_windows": windows,
        },
        "outputs": written,
    });
    crate::io::atomic::write_bytes(&provenance_path, &serde_json::to_vec_pretty(&provenance)?)?;
    let opacity = views
        .iter()
        .map(|v| v.opacity.iter().sum::<f32>() / v.opacity.len() as f32)
        .sum::<f32>()
        / views.len() as f32;
    if args.json {
        print_json(
            &json!({"outputs": written, "provenance": provenance_path, "views": views.len(), "size": args.size, "mean_opacity": opacity}),
        )
    } else {
        println!(
            "{} view(s) of {}{} ({}×{}, mean opacity {:.3}) → {}",
            views.len(),
            a.name(),
            b.map(|b| format!(" → {} at t = {t}", b.name())).unwrap_or_default(),
            args.size,
            args.size,
            opacity,
            args.output.display()
        );
        Ok(())
    }
}
