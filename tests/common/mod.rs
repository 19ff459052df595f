//! Helpers shared by the parity tests (each test file is its own crate: `mod common;`).

use candle_core::Tensor;

/// max|ours − reference| / max(max|reference|, 1e-6): the relative error every parity fixture is
/// held to.
pub fn rel_err(ours: &Tensor, reference: &Tensor) -> f32 {
    assert_eq!(ours.dims(), reference.dims(), "shape");
    let diff = (ours - reference)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let scale = reference.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    diff / scale.max(1e-6)
}
