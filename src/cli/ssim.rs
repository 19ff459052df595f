//! `ssim A B`: structural similarity, MSE and PSNR between two volumes or two images.

use super::{num, print_json};
use crate::core::Asset;
use crate::methods::metrics::{self, SsimOptions};
use anyhow::bail;
use serde_json::json;
use std::path::Path;

pub fn run(a_path: &Path, b_path: &Path, data_range: Option<f64>, as_json: bool) -> anyhow::Result<()> {
    let a = crate::io::load(a_path)?;
    let b = crate::io::load(b_path)?;
    let opts = SsimOptions {
        data_range,
        ..Default::default()
    };
    let sim = match (&a, &b) {
        (Asset::Volume(va), Asset::Volume(vb)) => metrics::compare_volumes(va, vb, &opts)?,
        (Asset::Image(ia), Asset::Image(ib)) => {
            let dims = [ia.height(), ia.width()];
            if [ib.height(), ib.width()] != dims {
                bail!(
                    "images differ in size: {}×{} ({}) vs {}×{} ({})",
                    ia.width(),
                    ia.height(),
                    a_path.display(),
                    ib.width(),
                    ib.height(),
                    b_path.display()
                );
            }
            metrics::compare(&ia.gray_f32(), &ib.gray_f32(), &dims, &opts)?
        }
        _ => bail!(
            "ssim compares two volumes or two images, got a {} ({}) and a {} ({})",
            a.kind(),
            a_path.display(),
            b.kind(),
            b_path.display()
        ),
    };
    if as_json {
        print_json(
            &json!({"ssim": num(sim.ssim), "mse": num(sim.mse), "psnr": num(sim.psnr), "data_range": num(sim.data_range)}),
        )
    } else {
        println!(
            "SSIM {:.6}   MSE {:.6e}   PSNR {:.3} dB   (data range {})",
            sim.ssim, sim.mse, sim.psnr, sim.data_range
        );
        Ok(())
    }
}
