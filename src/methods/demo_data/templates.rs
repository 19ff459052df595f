//! The MNI152 2009 maps shipped in `assets/demo` (see NOTICE.txt there), compiled into the binary
//! once: the app's built-in volume and the base of the synthetic cohort, for the CLI and the app alike.

use super::cohort::{self, CohortError, GridSpec, Prepared, TemplateMaps};
use crate::core::Volume;
use std::path::Path;

pub const T1_NAME: &str = "mni152_t1_1.5mm.nii.gz";
pub const GM_NAME: &str = "mni152_gm_1.5mm.nii.gz";
pub const WM_NAME: &str = "mni152_wm_1.5mm.nii.gz";

/// T1 intensities (the app's built-in demo volume).
pub const T1: &[u8] = include_bytes!("../../../assets/demo/mni152_t1_1.5mm.nii.gz");
/// Grey-matter probability (uint8).
pub const GM: &[u8] = include_bytes!("../../../assets/demo/mni152_gm_1.5mm.nii.gz");
/// White-matter probability (uint8).
pub const WM: &[u8] = include_bytes!("../../../assets/demo/mni152_wm_1.5mm.nii.gz");

/// Decodes one embedded map; an error names it.
fn decode(bytes: &[u8], name: &str) -> Result<Volume, CohortError> {
    crate::io::nifti::decode(bytes, Path::new(name))
        .map(|(v, _)| v)
        .map_err(|e| CohortError::Template(format!("built-in {name}: {e}")))
}

/// The built-in T1 template.
pub fn t1() -> Result<Volume, CohortError> {
    decode(T1, T1_NAME)
}

/// The three maps prepared for [`cohort::synthesize`] on `grid`.
pub fn prepared_cohort(grid: GridSpec) -> Result<Prepared, CohortError> {
    let (t1, gm, wm) = (t1()?, decode(GM, GM_NAME)?, decode(WM, WM_NAME)?);
    cohort::prepare(
        TemplateMaps {
            t1: &t1,
            gm: &gm,
            wm: &wm,
        },
        grid,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_maps_share_one_grid() {
        let t1 = t1().unwrap();
        for (bytes, name) in [(GM, GM_NAME), (WM, WM_NAME)] {
            assert_eq!(decode(bytes, name).unwrap().dims(), t1.dims(), "{name}");
        }
    }
}
