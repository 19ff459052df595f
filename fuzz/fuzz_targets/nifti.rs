//! Any bytes given to the NIfTI decoder must give a volume or a typed error, never a panic,
//! hang or runaway allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok((volume, _info)) = latent_workbench::io::nifti::decode(data, Path::new("fuzz.nii")) {
        let [x, y, z] = volume.dims();
        assert_eq!(volume.data().len(), x * y * z * volume.frames());
    }
});
