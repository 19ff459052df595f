//! Any bytes given to the pickle reader (the in-memory `data.pkl` parser, then the walk that
//! finds the state dict in what it built) must give a value or a typed error, never a panic,
//! hang or runaway allocation, and never be "called".
#![no_main]

use latent_workbench::core::weights::{self, LoadOptions, pickle};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = pickle::parse(data) else { return };
    assert!(parsed.objects.len() <= data.len() + 1);
    let plain = LoadOptions::default();
    let ema = LoadOptions {
        prefer_ema: true,
        select_prefix: Some("model.".into()),
        ..LoadOptions::default()
    };
    for opts in [plain, ema] {
        if let Ok(selection) = weights::select_tensors(&parsed, &opts, Path::new("fuzz.pt")) {
            for (_, t) in &selection.tensors {
                assert_eq!(t.size.len(), t.stride.len());
            }
        }
    }
});
