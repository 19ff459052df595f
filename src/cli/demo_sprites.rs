//! `latent-workbench demo-data sprites -o DIR [--count N] [--seed S]`: the procedural sprites
//! (`methods::demo_data::sprites`) as one PNG per image plus `labels.csv`.
//!
//! PNG + CSV rather than one tensor file: the relative-representation tab shows the input images
//! of selected points and loads a folder or CSV of inputs, and PNGs open in any viewer. The CSV
//! columns are `id,file,shape,scale,rotation,x,y,colour`: `file` relative to the CSV, `rotation` in
//! radians, `x`/`y` the centre as fractions of the allowed range (left/top = 0), `colour` the hue
//! in [0, 1) (0 red, 1/3 green, 2/3 blue; full saturation on black). Sprite `id` of a seed is
//! always the same image, so `--count` only decides how many are written.

use crate::cli::print_json;
use crate::core::{Channels, Image, ImageData};
use crate::methods::demo_data::sprites::{self, Factors};
use anyhow::Context;
use rayon::prelude::*;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output folder (created if missing).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Number of sprites.
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    /// Dataset seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.count == 0 {
        anyhow::bail!("--count must be at least 1");
    }
    std::fs::create_dir_all(&args.output).with_context(|| format!("cannot create {}", args.output.display()))?;
    let digits = (args.count - 1).to_string().len().max(5);
    let file_name = |i: usize| format!("sprite_{i:0digits$}.png");
    let factors: Vec<Factors> = (0..args.count).map(|i| Factors::sample(args.seed, i as u64)).collect();
    factors
        .par_iter()
        .enumerate()
        .try_for_each(|(i, f)| -> anyhow::Result<()> {
            let img = Image::new(
                sprites::SIZE,
                sprites::SIZE,
                Channels::Rgb,
                ImageData::U8(sprites::render_rgb8(f)),
            )?;
            crate::io::image::write_png(&args.output.join(file_name(i)), &img)?;
            Ok(())
        })?;
    let mut csv = String::from("id,file,shape,scale,rotation,x,y,colour\n");
    for (i, f) in factors.iter().enumerate() {
        writeln!(
            csv,
            "{i},{},{},{:.6},{:.6},{:.6},{:.6},{:.6}",
            file_name(i),
            f.shape.name(),
            f.scale,
            f.rotation,
            f.x,
            f.y,
            f.hue
        )?;
    }
    let labels = args.output.join("labels.csv");
    crate::io::atomic::write_bytes(&labels, csv.as_bytes())?;
    if args.json {
        print_json(&serde_json::json!({
            "count": args.count, "seed": args.seed, "dir": args.output, "labels": labels,
            "size": [sprites::SIZE, sprites::SIZE], "channels": 3,
        }))
    } else {
        println!(
            "wrote {} sprites (seed {}) and {} to {}",
            args.count,
            args.seed,
            labels.display(),
            args.output.display()
        );
        Ok(())
    }
}
