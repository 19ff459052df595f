//! Colormaps for scalar data: gray, viridis, magma and a blue–white–red diverging map.
//!
//! Viridis and magma use the 6th-degree polynomial fits published by Matt Zucker (CC0), which
//! stay within 5/255 of matplotlib's tables at the ends (tested); the LUT is built once.

use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Colormap {
    #[default]
    Gray,
    Viridis,
    Magma,
    /// Blue below the window centre, white at it, red above: for difference maps.
    Diverging,
}

impl Colormap {
    pub const ALL: [Colormap; 4] = [Colormap::Gray, Colormap::Viridis, Colormap::Magma, Colormap::Diverging];

    pub fn name(self) -> &'static str {
        match self {
            Colormap::Gray => "gray",
            Colormap::Viridis => "viridis",
            Colormap::Magma => "magma",
            Colormap::Diverging => "diverging",
        }
    }

    /// Colour of `t` in `[0, 1]` (clamped; NaN maps to transparent black).
    pub fn rgba(self, t: f32) -> [u8; 4] {
        if t.is_nan() {
            return [0, 0, 0, 0];
        }
        let i = (t.clamp(0.0, 1.0) * 255.0).round() as usize;
        LUTS[self as usize][i]
    }

    /// Maps `values` through the window `[lo, hi]` into RGBA pixels.
    pub fn apply(self, values: &[f32], lo: f32, hi: f32) -> Vec<[u8; 4]> {
        let scale = if hi > lo { 1.0 / (hi - lo) } else { 0.0 };
        let lut = &LUTS[self as usize];
        values
            .iter()
            .map(|&v| {
                if v.is_nan() {
                    [0, 0, 0, 0]
                } else {
                    let t = ((v - lo) * scale).clamp(0.0, 1.0);
                    lut[(t * 255.0).round() as usize]
                }
            })
            .collect()
    }
}

type Lut = [[u8; 4]; 256];

static LUTS: LazyLock<[Lut; 4]> = LazyLock::new(|| {
    [
        build(|t| [t, t, t]),
        build(|t| poly(&VIRIDIS, t)),
        build(|t| poly(&MAGMA, t)),
        build(diverging),
    ]
});

fn build(f: impl Fn(f32) -> [f32; 3]) -> Lut {
    let mut lut = [[0u8; 4]; 256];
    for (i, px) in lut.iter_mut().enumerate() {
        let c = f(i as f32 / 255.0);
        *px = [to_u8(c[0]), to_u8(c[1]), to_u8(c[2]), 255];
    }
    lut
}

fn to_u8(x: f32) -> u8 {
    (x.clamp(0.0, 1.0) * 255.0).round() as u8
}

fn poly(c: &[[f32; 3]; 7], t: f32) -> [f32; 3] {
    let mut out = [0.0; 3];
    for (k, o) in out.iter_mut().enumerate() {
        // Horner's rule from the highest coefficient.
        *o = c.iter().rev().fold(0.0, |acc, ci| acc * t + ci[k]);
    }
    out
}

const VIRIDIS: [[f32; 3]; 7] = [
    [0.277_727_33, 0.005_407_344_5, 0.334_099_8],
    [0.105_093_04, 1.404_613_5, 1.384_590_2],
    [-0.330_861_83, 0.214_847_56, 0.095_095_16],
    [-4.634_230_5, -5.799_101, -19.332_441],
    [6.228_27, 14.179_933, 56.690_55],
    [4.776_385, -13.745_146, -65.353_035],
    [-5.435_456, 4.645_852_6, 26.312_435],
];

const MAGMA: [[f32; 3]; 7] = [
    [-0.002_136_485, -0.000_749_655, -0.005_386_128],
    [0.251_660_54, 0.677_523_24, 2.494_026_6],
    [8.353_717, -3.577_719_5, 0.314_467_9],
    [-27.668_733, 14.264_731, -13.649_213],
    [52.176_14, -27.943_606, 12.944_169],
    [-50.768_524, 29.046_583, 4.234_153],
    [18.655_705, -11.489_774, -5.601_961_5],
];

/// Moreland's cool–warm endpoints with a light neutral centre.
fn diverging(t: f32) -> [f32; 3] {
    const BLUE: [f32; 3] = [0.230, 0.299, 0.754];
    const MID: [f32; 3] = [0.950, 0.950, 0.950];
    const RED: [f32; 3] = [0.706, 0.016, 0.150];
    let (a, b, s) = if t < 0.5 {
        (BLUE, MID, t * 2.0)
    } else {
        (MID, RED, (t - 0.5) * 2.0)
    };
    [
        a[0] + (b[0] - a[0]) * s,
        a[1] + (b[1] - a[1]) * s,
        a[2] + (b[2] - a[2]) * s,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_match_matplotlib_within_five_levels() {
        // matplotlib: viridis(0)=(68,1,84), viridis(1)=(253,231,37); magma(0)=(0,0,4), magma(1)=(252,253,191).
        let close = |a: [u8; 4], b: [u8; 3]| (0..3).all(|k| (i16::from(a[k]) - i16::from(b[k])).abs() <= 5);
        assert!(
            close(Colormap::Viridis.rgba(0.0), [68, 1, 84]),
            "{:?}",
            Colormap::Viridis.rgba(0.0)
        );
        assert!(
            close(Colormap::Viridis.rgba(1.0), [253, 231, 37]),
            "{:?}",
            Colormap::Viridis.rgba(1.0)
        );
        assert!(
            close(Colormap::Magma.rgba(0.0), [0, 0, 4]),
            "{:?}",
            Colormap::Magma.rgba(0.0)
        );
        assert!(
            close(Colormap::Magma.rgba(1.0), [252, 253, 191]),
            "{:?}",
            Colormap::Magma.rgba(1.0)
        );
        assert_eq!(
            Colormap::Gray.apply(&[0.0, 5.0, 10.0, f32::NAN], 0.0, 10.0)[1],
            [128, 128, 128, 255]
        );
    }
}
