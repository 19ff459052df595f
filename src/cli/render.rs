//! `render FILE... -o view.png`: the 3D viewport with no window. Meshes and point clouds draw as
//! they are; a volume (NIfTI) draws as its iso-surface at `--level` (marching cubes).

use super::print_json;
use crate::core::Asset;
use crate::core::colormap::Colormap;
use crate::core::transfer::OpacityCurve;
use crate::methods::isosurface::{Inside, IsoOptions, marching_cubes};
use crate::render::{Arrangement, Geometry, OrbitCamera, RenderSettings, Scene, SceneObject, Shading, ViewPreset};
use anyhow::{Context, bail};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct RenderArgs {
    /// Meshes (.obj .ply .stl), point clouds (.ply without faces) or volumes (.nii, .nii.gz).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[arg(short, long)]
    pub output: PathBuf,
    /// Image size, WIDTHxHEIGHT in pixels.
    #[arg(long, default_value = "1024x768")]
    pub size: String,
    /// Where the eye is: front, back, left, right, top, bottom or iso.
    #[arg(long, default_value = "iso")]
    pub view: String,
    #[arg(long)]
    pub flat: bool,
    #[arg(long)]
    pub wireframe: bool,
    #[arg(long)]
    pub no_gizmo: bool,
    /// Lay several files out left to right instead of overlaying them.
    #[arg(long)]
    pub side_by_side: bool,
    /// Colour by the per-vertex scalar through this colormap (gray, viridis, magma, diverging).
    #[arg(long)]
    pub colormap: Option<String>,
    /// Iso-level for volumes (default: halfway between the volume's min and max).
    #[arg(long, allow_negative_numbers = true)]
    pub level: Option<f32>,
    /// For volumes: the solid is below the level (signed distance fields).
    #[arg(long)]
    pub below: bool,
    /// Ray-march volumes (volume rendering) instead of drawing their iso-surface; `--colormap`
    /// colours them, `--window LO,HI` sets the transfer function's ramp (default: full range).
    #[arg(long)]
    pub volume: bool,
    #[arg(long, allow_negative_numbers = true)]
    pub window: Option<String>,
    /// Opacity of one voxel at the top of the window.
    #[arg(long, default_value_t = 0.08)]
    pub opacity: f32,
    /// The opacity curve across the window as `t:a,...` points (t from 0 to 1 increasing, a in
    /// [0, 1]); default the ramp `0:0,1:1`.
    #[arg(long)]
    pub opacity_curve: Option<String>,
    #[arg(long)]
    pub json: bool,
}

pub(super) fn parse_size(s: &str) -> anyhow::Result<[u32; 2]> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .with_context(|| format!("--size must look like 1024x768, got {s:?}"))?;
    let size = [w.trim().parse()?, h.trim().parse()?];
    if size.contains(&0) {
        bail!("--size must be at least 1x1, got {s:?}");
    }
    Ok(size)
}

fn geometry_of(path: &std::path::Path, args: &RenderArgs) -> anyhow::Result<Geometry> {
    Ok(match crate::io::load(path)? {
        Asset::Mesh(m) => Geometry::Mesh(Arc::new(m)),
        Asset::PointCloud(p) => Geometry::Points(Arc::new(p)),
        Asset::Volume(v) if args.volume => Geometry::Volume(Arc::new(v)),
        Asset::Volume(v) => {
            let (lo, hi) = crate::core::stats::finite_range(v.data())
                .with_context(|| format!("{}: the volume has no finite value", path.display()))?;
            let level = args.level.unwrap_or(0.5 * (lo + hi));
            let opts = IsoOptions {
                level,
                inside: if args.below { Inside::Below } else { Inside::Above },
                frame: 0,
            };
            let mesh = marching_cubes(&v, &opts);
            if mesh.triangles.is_empty() {
                bail!(
                    "{}: no surface at level {level} (values span {lo}…{hi})",
                    path.display()
                );
            }
            Geometry::Mesh(Arc::new(mesh))
        }
        other => bail!("{}: a {} cannot be drawn in 3D", path.display(), other.kind()),
    })
}

/// `--view NAME` as a preset.
pub(super) fn parse_view(name: &str) -> anyhow::Result<ViewPreset> {
    ViewPreset::from_name(name)
        .with_context(|| format!("--view must be one of front, back, left, right, top, bottom, iso; got {name:?}"))
}

/// An optional colormap flag's value (`flag` names it in the error).
pub(super) fn parse_colormap(flag: &str, name: Option<&str>) -> anyhow::Result<Option<Colormap>> {
    name.map(|name| {
        Colormap::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .with_context(|| format!("{flag} must be gray, viridis, magma or diverging; got {name:?}"))
    })
    .transpose()
}

pub fn run(args: &RenderArgs) -> anyhow::Result<()> {
    let size = parse_size(&args.size)?;
    let preset = parse_view(&args.view)?;
    let colormap = parse_colormap("--colormap", args.colormap.as_deref())?;
    if crate::io::FileKind::from_path(&args.output)? != crate::io::FileKind::Image {
        bail!("output must be an image (.png): {}", args.output.display());
    }
    let mut scene = Scene::default();
    for (i, path) in args.files.iter().enumerate() {
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let mut object = SceneObject::new(i as u64, name, geometry_of(path, args)?);
        if let Some(c) = colormap {
            object = object.with_scalar_coloring(c);
        }
        if let (Some(w), Geometry::Volume(_)) = (&args.window, &object.geometry) {
            let (lo, hi) = w
                .split_once(',')
                .and_then(|(a, b)| Some((a.trim().parse::<f32>().ok()?, b.trim().parse::<f32>().ok()?)))
                .with_context(|| format!("--window must look like 20,200; got {w:?}"))?;
            let colormap = colormap.unwrap_or(Colormap::Gray);
            object.coloring = crate::render::Coloring::Scalar { colormap, lo, hi };
        }
        scene.objects.push(object);
    }
    let settings = RenderSettings {
        shading: if args.flat { Shading::Flat } else { Shading::Smooth },
        wireframe: args.wireframe,
        gizmo: !args.no_gizmo,
        volume_opacity: args.opacity,
        volume_curve: match &args.opacity_curve {
            Some(text) => OpacityCurve::parse(text).map_err(|e| anyhow::anyhow!("--opacity-curve: {e}"))?,
            None => OpacityCurve::default(),
        },
        arrangement: if args.side_by_side {
            Arrangement::SideBySide
        } else {
            Arrangement::Overlay
        },
        ..Default::default()
    };
    let (lo, hi) = scene
        .bounds(settings.arrangement)
        .context("nothing to draw: the inputs have no vertices")?;
    let camera = OrbitCamera::framing(lo, hi, preset);
    let image = crate::render::render_image(&scene, &camera, &settings, size)?;
    crate::io::image::write_png(&args.output, &image)?;
    let triangles: usize = scene
        .objects
        .iter()
        .map(|o| match &o.geometry {
            Geometry::Mesh(m) => m.triangles.len(),
            Geometry::Points(_) | Geometry::Volume(_) => 0,
        })
        .sum();
    if args.json {
        print_json(
            &json!({"output": args.output, "width": size[0], "height": size[1], "objects": scene.objects.len(), "triangles": triangles, "view": preset.name()}),
        )
    } else {
        println!(
            "{} object(s), {triangles} triangles, {} view → {} ({}×{})",
            scene.objects.len(),
            preset.name(),
            args.output.display(),
            size[0],
            size[1]
        );
        Ok(())
    }
}
