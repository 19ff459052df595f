//! Any bytes given to the PLY decoder must give a mesh or a typed error, never a panic, hang or
//! runaway allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = latent_workbench::io::mesh::ply::decode(data, Path::new("fuzz.ply"));
});
