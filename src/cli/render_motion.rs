//! `render-motion SEQUENCE -o DIR`: a motion sequence (a folder of frames, a `.npz`) rendered
//! offscreen as one PNG per frame, or as a turntable around one frame (`--turntable N`), with
//! `provenance.json` beside the images. The scenes are the Motion tab's (`render::motion`).

use super::print_json;
use super::render::{parse_colormap, parse_size, parse_view};
use crate::core::Asset;
use crate::render::motion::{self, MotionStyle, ShownSequence};
use crate::render::{OrbitCamera, RenderSettings};
use anyhow::{Context, bail};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The sequence: a folder of frames (.ply .obj .stl) or a .npz.
    pub sequence: PathBuf,
    /// Output folder (created if missing): frame_0000.png ... and provenance.json.
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long, default_value = "1024x768")]
    pub size: String,
    /// Where the eye is: front, back, left, right, top, bottom or iso.
    #[arg(long, default_value = "iso")]
    pub view: String,
    /// Instead of one image per frame, this many views turning once around frame `--at-frame`.
    #[arg(long)]
    pub turntable: Option<usize>,
    /// The frame (1-based) a turntable shows.
    #[arg(long, default_value_t = 1)]
    pub at_frame: usize,
    /// Colour by displacement from frame 1 through this colormap (gray, viridis, magma, diverging).
    #[arg(long)]
    pub displacement: Option<String>,
    /// Draw motion trails of this many frames of history.
    #[arg(long)]
    pub trails: Option<usize>,
    /// Also write `strip.png`: every image side by side in one row (for a README or a figure).
    #[arg(long)]
    pub strip: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let size = parse_size(&args.size)?;
    let preset = parse_view(&args.view)?;
    let colormap = parse_colormap("--displacement", args.displacement.as_deref())?;
    let sequence = match crate::io::load(&args.sequence)? {
        Asset::Motion(m) => m,
        other => bail!(
            "{} is a {}, not a motion sequence",
            args.sequence.display(),
            other.kind()
        ),
    };
    if args.turntable == Some(0) {
        bail!("--turntable needs at least one view");
    }
    if args.at_frame == 0 || args.at_frame > sequence.len() {
        bail!(
            "--at-frame must be between 1 and {} (the sequence's frames)",
            sequence.len()
        );
    }
    let name = args
        .sequence
        .file_name()
        .map_or_else(|| "sequence".into(), |n| n.to_string_lossy().into_owned());
    let shown = vec![ShownSequence::new(0, name, Arc::new(sequence))];
    let style = MotionStyle {
        displacement: colormap.map(|c| (c, 1.0)),
        trails: args.trails.map(|n| (n, 150)),
        side_by_side: false,
    };
    let (_, bounds) = motion::layout(&shown, false);
    let (lo, hi) = bounds.context("the sequence has no points")?;
    // Framed on the whole motion, so the camera does not follow each frame.
    let camera = OrbitCamera::framing(lo, hi, preset);
    let views = match args.turntable {
        Some(n) => motion::turntable_views((args.at_frame - 1) as f32, camera, n),
        None => motion::playback_views(&shown, camera),
    };
    std::fs::create_dir_all(&args.output).with_context(|| format!("cannot create {}", args.output.display()))?;
    let digits = views.len().saturating_sub(1).to_string().len().max(4);
    let mut written = Vec::with_capacity(views.len());
    let mut kept = Vec::new();
    motion::render_views::<anyhow::Error>(&shown, &style, &RenderSettings::default(), size, &views, |k, image| {
        let path = args.output.join(format!("frame_{k:0digits$}.png"));
        crate::io::image::write_png(&path, &image)?;
        written.push(path);
        if args.strip {
            kept.push(image);
        }
        Ok(())
    })?;
    let strip = if args.strip {
        let path = args.output.join("strip.png");
        let image = crate::core::Image::strip(&kept).context("the rendered images differ in size")?;
        crate::io::image::write_png(&path, &image)?;
        Some(path)
    } else {
        None
    };
    let provenance = json!({
        "program": "latent-workbench",
        "version": crate::VERSION,
        "input": args.sequence,
        "made_by": {
            "operation": if args.turntable.is_some() { "turntable" } else { "playback frames" },
            "images": written.len(),
            "size": size,
            "view": preset.name(),
            "at_frame": args.turntable.map(|_| args.at_frame),
            "displacement_colormap": colormap.map(|c| c.name()),
            "trails": args.trails,
            "strip": strip,
            "fps": shown[0].sequence.fps,
        },
    });
    let text = serde_json::to_vec_pretty(&provenance)?;
    crate::io::atomic::write_bytes(&args.output.join("provenance.json"), &text)?;
    if args.json {
        print_json(
            &json!({"output": args.output, "images": written.len(), "width": size[0], "height": size[1], "strip": strip}),
        )
    } else {
        println!(
            "{} images ({}×{}) → {}",
            written.len(),
            size[0],
            size[1],
            args.output.display()
        );
        Ok(())
    }
}
