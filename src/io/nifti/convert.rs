//! Voxel bytes ⇄ `f32`, in parallel chunks with no per-voxel bounds checks.

use crate::core::ScalarKind;
use rayon::prelude::*;
use std::borrow::Cow;

/// Voxels per parallel work item (256 KiB of `f32`).
const CHUNK: usize = 1 << 16;

/// nibabel's read scaling, `raw · slope + inter` in `f64` (each step only when it changes
/// something, as `apply_read_scaling` does), then rounded to `f32`.
#[derive(Clone, Copy)]
struct Scale {
    slope: f64,
    inter: f64,
    mul: bool,
    add: bool,
}

impl Scale {
    fn new((slope, inter): (f64, f64)) -> Self {
        Self {
            slope,
            inter,
            mul: slope != 1.0,
            add: inter != 0.0,
        }
    }
    #[inline(always)]
    fn apply(self, v: f64) -> f32 {
        let v = if self.mul { v * self.slope } else { v };
        let v = if self.add { v + self.inter } else { v };
        v as f32
    }
}

/// Maps every `N`-byte element of `raw` through `f` into `out`, in parallel. `out` has one slot
/// per whole element (a trailing partial element, never passed by callers, would be ignored).
fn par_map<const N: usize, F>(raw: &[u8], out: &mut [f32], f: F)
where
    F: Fn([u8; N]) -> f32 + Sync + Send,
{
    let (elems, _) = raw.as_chunks::<N>();
    out.par_chunks_mut(CHUNK)
        .zip(elems.par_chunks(CHUNK))
        .for_each(|(dst, src)| {
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = f(s);
            }
        });
}

/// Four loops per element type (byte order × scaled or not) so each one is a tight loop the
/// compiler can vectorise. `$plain` converts an unscaled element to `f32` the way nibabel's
/// float64 result rounded to `f32` would come out.
macro_rules! decode_as {
    ($raw:expr, $out:expr, $be:expr, $scale:expr, $t:ty, $n:literal, $plain:expr) => {{
        let plain = $plain;
        match ($be, $scale) {
            (false, None) => par_map::<$n, _>($raw, $out, |b| plain(<$t>::from_le_bytes(b))),
            (true, None) => par_map::<$n, _>($raw, $out, |b| plain(<$t>::from_be_bytes(b))),
            (false, Some(s)) => par_map::<$n, _>($raw, $out, move |b| s.apply(<$t>::from_le_bytes(b) as f64)),
            (true, Some(s)) => par_map::<$n, _>($raw, $out, move |b| s.apply(<$t>::from_be_bytes(b) as f64)),
        }
    }};
}

/// Converts raw voxels of `kind` (in the file's byte order) to `f32` into `out`, applying the
/// scaling. `raw` holds `out.len()` whole elements. `false` for kinds NIfTI does not store.
pub(super) fn decode_into(
    raw: &[u8],
    kind: ScalarKind,
    big_endian: bool,
    scaling: Option<(f64, f64)>,
    out: &mut [f32],
) -> bool {
    debug_assert_eq!(raw.len(), out.len() * kind.size());
    let s = scaling.map(Scale::new);
    let be = big_endian;
    match kind {
        ScalarKind::U8 => decode_as!(raw, out, be, s, u8, 1, |v: u8| f32::from(v)),
        ScalarKind::I8 => decode_as!(raw, out, be, s, i8, 1, |v: i8| f32::from(v)),
        ScalarKind::U16 => decode_as!(raw, out, be, s, u16, 2, |v: u16| f32::from(v)),
        ScalarKind::I16 => decode_as!(raw, out, be, s, i16, 2, |v: i16| f32::from(v)),
        // One rounding either way: i32/u32 → f64 is exact.
        ScalarKind::U32 => decode_as!(raw, out, be, s, u32, 4, |v: u32| v as f32),
        ScalarKind::I32 => decode_as!(raw, out, be, s, i32, 4, |v: i32| v as f32),
        // Through f64 like nibabel's get_fdata, so the double rounding matches it exactly.
        ScalarKind::U64 => decode_as!(raw, out, be, s, u64, 8, |v: u64| v as f64 as f32),
        ScalarKind::I64 => decode_as!(raw, out, be, s, i64, 8, |v: i64| v as f64 as f32),
        ScalarKind::F32 => decode_as!(raw, out, be, s, f32, 4, |v: f32| v),
        ScalarKind::F64 => decode_as!(raw, out, be, s, f64, 8, |v: f64| v as f32),
        ScalarKind::Bool | ScalarKind::F16 | ScalarKind::Bf16 => return false,
    }
    true
}

/// [`decode_into`] a new vector. `None` for kinds NIfTI does not store.
pub(super) fn decode(raw: &[u8], kind: ScalarKind, big_endian: bool, scaling: Option<(f64, f64)>) -> Option<Vec<f32>> {
    // A zeroed allocation this large comes straight from the OS as zero pages: no memset.
    let mut out = vec![0.0f32; raw.len() / kind.size()];
    decode_into(raw, kind, big_endian, scaling, &mut out).then_some(out)
}

/// Maps every value through `f` into `N` little-endian bytes, in parallel.
fn par_encode<const N: usize, F>(data: &[f32], f: F) -> Vec<u8>
where
    F: Fn(f32) -> [u8; N] + Sync + Send,
{
    let mut out = vec![0u8; data.len() * N];
    let (elems, _) = out.as_chunks_mut::<N>();
    elems
        .par_chunks_mut(CHUNK)
        .zip(data.par_chunks(CHUNK))
        .for_each(|(dst, src)| {
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = f(s);
            }
        });
    out
}

/// `f32` voxels as little-endian bytes of `kind`. Integer kinds round half to even and saturate
/// at the type's range (NaN becomes 0). `None` for kinds NIfTI does not store.
pub(super) fn encode(data: &[f32], kind: ScalarKind) -> Option<Cow<'_, [u8]>> {
    let bytes = match kind {
        #[cfg(target_endian = "little")]
        ScalarKind::F32 => return Some(Cow::Borrowed(bytemuck::cast_slice(data))),
        #[cfg(not(target_endian = "little"))]
        ScalarKind::F32 => par_encode(data, |v| v.to_le_bytes()),
        ScalarKind::F64 => par_encode(data, |v| f64::from(v).to_le_bytes()),
        ScalarKind::U8 => par_encode(data, |v| (v.round_ties_even() as u8).to_le_bytes()),
        ScalarKind::I8 => par_encode(data, |v| (v.round_ties_even() as i8).to_le_bytes()),
        ScalarKind::U16 => par_encode(data, |v| (v.round_ties_even() as u16).to_le_bytes()),
        ScalarKind::I16 => par_encode(data, |v| (v.round_ties_even() as i16).to_le_bytes()),
        ScalarKind::U32 => par_encode(data, |v| (v.round_ties_even() as u32).to_le_bytes()),
        ScalarKind::I32 => par_encode(data, |v| (v.round_ties_even() as i32).to_le_bytes()),
        ScalarKind::U64 => par_encode(data, |v| (v.round_ties_even() as u64).to_le_bytes()),
        ScalarKind::I64 => par_encode(data, |v| (v.round_ties_even() as i64).to_le_bytes()),
        ScalarKind::Bool | ScalarKind::F16 | ScalarKind::Bf16 => return None,
    };
    Some(Cow::Owned(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_kind_in_both_orders() {
        let vals: [i16; 4] = [-32768, -1, 0, 32767];
        let le: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let be: Vec<u8> = vals.iter().flat_map(|v| v.to_be_bytes()).collect();
        let want = [-32768.0, -1.0, 0.0, 32767.0];
        assert_eq!(decode(&le, ScalarKind::I16, false, None).unwrap(), want);
        assert_eq!(decode(&be, ScalarKind::I16, true, None).unwrap(), want);
        let f: Vec<u8> = [1.5f64, -1e300].iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(
            decode(&f, ScalarKind::F64, true, None).unwrap(),
            [1.5, f32::NEG_INFINITY]
        );
        let u: Vec<u8> = [u64::MAX, (1u64 << 53) + 1]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            decode(&u, ScalarKind::U64, false, None).unwrap(),
            [u64::MAX as f32, (1u64 << 53) as f32]
        );
        assert!(decode(&[0, 0], ScalarKind::F16, false, None).is_none());
    }

    #[test]
    fn scaling_is_computed_in_f64() {
        let raw: Vec<u8> = [3i16, -2].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            decode(&raw, ScalarKind::I16, false, Some((2.5, -3.0))).unwrap(),
            [4.5, -8.0]
        );
        // 16777217 is not an f32: in f32 it would round to 16777216 first and give 16777215.
        let raw = 16_777_217i32.to_le_bytes();
        let got = decode(&raw, ScalarKind::I32, false, Some((1.0, -1.0))).unwrap();
        assert_eq!(got, [16_777_216.0]);
    }

    #[test]
    fn large_inputs_split_into_chunks_in_order() {
        let n = CHUNK * 3 + 17;
        let raw: Vec<u8> = (0..n).flat_map(|i| (i as u32).to_le_bytes()).collect();
        let out = decode(&raw, ScalarKind::U32, false, None).unwrap();
        assert_eq!(out.len(), n);
        assert!(out.iter().enumerate().all(|(i, &v)| v == i as f32));
        let back = encode(&out, ScalarKind::U32).unwrap();
        assert_eq!(&*back, &raw[..]);
    }

    #[test]
    fn encode_rounds_and_saturates() {
        let data = [0.5f32, 1.5, -0.6, 300.0, -5.0, f32::NAN];
        assert_eq!(&*encode(&data, ScalarKind::U8).unwrap(), &[0, 2, 0, 255, 0, 0]);
        let i16s = encode(&data, ScalarKind::I16).unwrap();
        let back: Vec<i16> = i16s.chunks(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
        assert_eq!(back, [0, 2, -1, 300, -5, 0]);
        assert_eq!(encode(&[1.0], ScalarKind::F32).unwrap().len(), 4);
        assert!(encode(&[1.0], ScalarKind::Bool).is_none());
    }
}
