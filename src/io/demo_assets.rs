//! The MNI152 2009 maps shipped in `assets/demo` (see NOTICE.txt there), compiled into the binary
//! once: the app's built-in volume and the base of the synthetic cohort (`methods::demo_data::cohort`),
//! for the CLI and the app alike.

use super::IoError;
use crate::core::Volume;
use std::path::Path;

pub const T1_NAME: &str = "mni152_t1_1.5mm.nii.gz";
pub const GM_NAME: &str = "mni152_gm_1.5mm.nii.gz";
pub const WM_NAME: &str = "mni152_wm_1.5mm.nii.gz";

/// T1 intensities (the app's built-in demo volume).
pub const T1: &[u8] = include_bytes!("../../assets/demo/mni152_t1_1.5mm.nii.gz");
/// Grey-matter probability (uint8).
pub const GM: &[u8] = include_bytes!("../../assets/demo/mni152_gm_1.5mm.nii.gz");
/// White-matter probability (uint8).
pub const WM: &[u8] = include_bytes!("../../assets/demo/mni152_wm_1.5mm.nii.gz");

/// The three maps, decoded.
pub struct TemplateVolumes {
    pub t1: Volume,
    pub gm: Volume,
    pub wm: Volume,
}

fn decode(bytes: &[u8], name: &str) -> Result<Volume, IoError> {
    super::nifti::decode(bytes, Path::new(name)).map(|(v, _)| v)
}

/// The built-in T1 template.
pub fn t1() -> Result<Volume, IoError> {
    decode(T1, T1_NAME)
}

/// T1, grey- and white-matter maps.
pub fn template_volumes() -> Result<TemplateVolumes, IoError> {
    Ok(TemplateVolumes {
        t1: t1()?,
        gm: decode(GM, GM_NAME)?,
        wm: decode(WM, WM_NAME)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_maps_share_one_grid() {
        let maps = template_volumes().unwrap();
        assert_eq!(maps.gm.dims(), maps.t1.dims());
        assert_eq!(maps.wm.dims(), maps.t1.dims());
    }
}
