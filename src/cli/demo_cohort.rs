//! `demo-data cohort`: the synthetic longitudinal MRI cohort (methods::demo_data::cohort) written
//! as one NIfTI per visit plus `cohort.csv` and `cohort.json` (what was generated, and how).

use crate::core::jobs::JobContext;
use crate::core::scalar::ScalarKind;
use crate::io::demo_assets;
use crate::io::nifti::{self, WriteOptions};
use crate::methods::demo_data::cohort::{self, GridSpec, ScanRecord};
use anyhow::{Context, bail};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output folder (created if missing).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Number of subjects; diagnoses cycle CN, MCI, AD.
    #[arg(long, default_value_t = 24)]
    pub subjects: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output grid: `template` (131×155×126, 1.5 mm), `ldae` (128×160×128, 1.5 mm, LDAE's input),
    /// `demo` (64×80×64, 3 mm) or `XxYxZ` with --spacing-mm, centred like `ldae`.
    #[arg(long, default_value = "ldae")]
    pub size: String,
    /// Voxel size for an `XxYxZ` size.
    #[arg(long, default_value_t = 1.5)]
    pub spacing_mm: f32,
    /// Visit months, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = cohort::MONTHS)]
    pub months: Vec<u32>,
    #[arg(long)]
    pub json: bool,
}

fn parse_grid(size: &str, spacing_mm: f32) -> anyhow::Result<GridSpec> {
    Ok(match size.to_ascii_lowercase().as_str() {
        "template" => GridSpec::Template,
        "ldae" => GridSpec::Ldae,
        "demo" => GridSpec::Demo,
        other => {
            let parts: Vec<usize> = other
                .split('x')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()
                .filter(|p: &Vec<usize>| p.len() == 3 && p.iter().all(|&n| (1..=1024).contains(&n)))
                .with_context(|| format!("--size {size}: expected template, ldae, demo or XxYxZ (1–1024 each)"))?;
            if !(spacing_mm > 0.0 && spacing_mm <= 20.0) {
                bail!("--spacing-mm {spacing_mm}: expected a voxel size in (0, 20] mm");
            }
            GridSpec::Custom {
                dims: [parts[0], parts[1], parts[2]],
                spacing_mm,
            }
        }
    })
}

fn csv_text(records: &[ScanRecord]) -> String {
    let mut s = String::from("subject,month,age,diagnosis,disease_factor,file\n");
    for r in records {
        s.push_str(&format!(
            "{},{},{:.2},{},{:.4},{}\n",
            r.subject,
            r.month,
            r.age,
            r.diagnosis.as_str(),
            r.disease_factor,
            cohort::scan_file_name(&r.subject, r.month)
        ));
    }
    s
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let start = Instant::now();
    let grid = parse_grid(&args.size, args.spacing_mm)?;
    if args.subjects == 0 {
        bail!("--subjects must be at least 1");
    }
    let mut months = args.months.clone();
    months.sort_unstable();
    months.dedup();
    if months.is_empty() || months.iter().any(|&m| m > 600) {
        bail!("--months: expected visit months between 0 and 600");
    }
    let maps = demo_assets::template_volumes()?;
    let prep = cohort::prepare_maps(&maps.t1, &maps.gm, &maps.wm, grid)?;
    let out = &args.output;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create the output folder {}", out.display()))?;
    let subjects = cohort::subjects(args.seed, args.subjects);
    let opts = WriteOptions::default();
    let ctx = JobContext::detached();
    let records = cohort::generate(&prep, &subjects, &months, &ctx, |rec, volume| {
        let path = out.join(cohort::scan_file_name(&rec.subject, rec.month));
        nifti::write(&path, &volume, &opts).map_err(|e| e.to_string())
    })?;
    let csv = out.join("cohort.csv");
    crate::io::atomic::write_bytes(&csv, csv_text(&records).as_bytes())?;
    let dims = prep.output_dims();
    let description = json!({
        "name": "latent-workbench synthetic longitudinal cohort",
        "synthetic": true,
        "note": "Every scan is the MNI152 2009 template (assets/demo, see NOTICE.txt) deformed and re-shaded \
                 procedurally; no real subject's data. See src/methods/demo_data/cohort.rs for the model.",
        "generator_version": crate::VERSION,
        "seed": args.seed,
        "subjects": args.subjects,
        "months": months,
        "dims": dims,
        "spacing_mm": prep.output_spacing_mm(),
        "dtype": ScalarKind::F32.to_string(),
        "intensity_range": [0.0, 1.0],
        "template_tissue_means": {"gm": prep.means.gm, "wm": prep.means.wm, "csf": prep.means.csf},
    });
    let json_path = out.join("cohort.json");
    crate::io::atomic::write_bytes(&json_path, serde_json::to_string_pretty(&description)?.as_bytes())?;
    let seconds = start.elapsed().as_secs_f64();
    if args.json {
        super::super::print_json(&json!({
            "folder": out.display().to_string(),
            "scans": records.len(),
            "subjects": args.subjects,
            "dims": dims,
            "spacing_mm": prep.output_spacing_mm(),
            "csv": csv.display().to_string(),
            "seconds": seconds,
        }))?;
    } else {
        println!(
            "wrote {} synthetic scans of {} subjects ({}×{}×{} at {} mm) and cohort.csv to {} in {seconds:.1} s",
            records.len(),
            args.subjects,
            dims[0],
            dims[1],
            dims[2],
            prep.output_spacing_mm(),
            out.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_names_and_boxes_parse() {
        assert_eq!(parse_grid("demo", 1.5).unwrap(), GridSpec::Demo);
        assert_eq!(
            parse_grid("32x40x32", 6.0).unwrap(),
            GridSpec::Custom {
                dims: [32, 40, 32],
                spacing_mm: 6.0
            }
        );
        assert!(parse_grid("32x40", 6.0).is_err());
        assert!(parse_grid("32x40x32", 0.0).is_err());
    }
}
