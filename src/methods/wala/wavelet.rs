//! Multilevel separable 3D discrete wavelet transform, equal to PyWavelets' `wavedecn` /
//! `waverecn` (and `dwtn` / `idwtn`) in mode `'zero'`.
//!
//! Arrays are [`Array3`]: C order (axis 0 slowest), indexed like the numpy array pywt sees, so a
//! subband key such as `'daa'` (detail along axis 0) means the same thing here. The 1-D steps
//! are pywt's, checked numerically against it:
//!
//! - analysis (`dwt`, mode zero), filter length `F` (even), input length `n`:
//!   `lo[o] = Σ_j dec_lo[j]·x[2o+1−j]` with `x` zero outside `0..n`, for `o < ⌊(n+F−1)/2⌋`;
//! - synthesis (`idwt`): `y[m] = Σ_k lo[k]·rec_lo[m+F−2−2k] + hi[k]·rec_hi[m+F−2−2k]` for
//!   `m < 2n−F+2` (the inverse does not depend on the padding mode).
//!
//! `waverecn` trims an approximation that is one sample longer than the details of the next
//! level (odd sizes), as pywt does; the final output is not trimmed (an odd input length comes
//! back one sample longer, like pywt).
//!
//! Storage is `f32`; every output sample is accumulated in `f64` and rounded once, so each
//! 1-D pass adds at most half an `f32` ulp (the 3-level round trip of a 256³ SDF stays within
//! ~1e-7 of its maximum). Work is split over rayon tasks by output rows or lines.

use super::filters;
use rayon::prelude::*;

/// A wavelet filter bank from pywt's tables (see `filters.rs`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Wavelet {
    name: &'static str,
    dec_lo: &'static [f64],
    dec_hi: &'static [f64],
    rec_lo: &'static [f64],
    rec_hi: &'static [f64],
}

/// Boundary handling of the analysis step. Only pywt's `'zero'` is implemented: it is what WaLa
/// and its lineage use (`padding_mode='zero'`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Zero,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WaveletError {
    #[error("unknown wavelet {0:?} (available: haar, db2, bior6.8)")]
    UnknownWavelet(String),
    #[error("unsupported wavelet mode {0:?} (only 'zero' is implemented)")]
    UnsupportedMode(String),
    #[error("array shape {shape:?} needs {expected} values but {found} were given")]
    Length {
        shape: [usize; 3],
        expected: usize,
        found: usize,
    },
    #[error("array shape {0:?} has a zero-sized axis")]
    Empty([usize; 3]),
    #[error("level {level}: {what}")]
    Shape { level: usize, what: String },
}

impl Wavelet {
    /// pywt's wavelet of that name (`haar`, `db2`, `bior6.8`).
    pub fn by_name(name: &str) -> Result<Self, WaveletError> {
        match name {
            "haar" | "db1" => Ok(Self::from_bank("haar", &filters::HAAR)),
            "db2" => Ok(Self::from_bank("db2", &filters::DB2)),
            "bior6.8" => Ok(Self::bior6_8()),
            other => Err(WaveletError::UnknownWavelet(other.to_string())),
        }
    }

    /// The wavelet WaLa (and its NWD lineage) uses: `bior6.8`, 18 taps.
    pub fn bior6_8() -> Self {
        Self::from_bank("bior6.8", &filters::BIOR6_8)
    }

    fn from_bank<const F: usize>(name: &'static str, b: &'static [[f64; F]; 4]) -> Self {
        Self {
            name,
            dec_lo: &b[0],
            dec_hi: &b[1],
            rec_lo: &b[2],
            rec_hi: &b[3],
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Filter length `F` (pywt's `dec_len`, always even).
    pub fn filter_len(&self) -> usize {
        self.dec_lo.len()
    }

    /// Length of one analysis step's output in mode zero: `⌊(n+F−1)/2⌋` (256 → 136 for `F = 18`).
    pub fn coeff_len(&self, n: usize) -> usize {
        (n + self.filter_len() - 1) / 2
    }

    /// Length of one synthesis step's output: `2n − F + 2` (46 → 76 for `F = 18`), at least 0.
    pub fn rec_len(&self, n: usize) -> usize {
        (2 * n + 2).saturating_sub(self.filter_len())
    }
}

impl Mode {
    /// Parses pywt's mode name (as WaLa's `args.json` stores it).
    pub fn from_name(name: &str) -> Result<Self, WaveletError> {
        match name {
            "zero" | "zeros" => Ok(Mode::Zero),
            other => Err(WaveletError::UnsupportedMode(other.to_string())),
        }
    }
}

/// A dense 3D `f32` array in C order: `data[(i0·n1 + i1)·n2 + i2]`, like a numpy array.
#[derive(Clone, Debug, PartialEq)]
pub struct Array3 {
    shape: [usize; 3],
    data: Vec<f32>,
}

impl Array3 {
    pub fn new(shape: [usize; 3], data: Vec<f32>) -> Result<Self, WaveletError> {
        if shape.contains(&0) {
            return Err(WaveletError::Empty(shape));
        }
        let expected = shape.iter().product::<usize>();
        if data.len() != expected {
            return Err(WaveletError::Length {
                shape,
                expected,
                found: data.len(),
            });
        }
        Ok(Self { shape, data })
    }

    /// An all-zero array (a zero-sized axis gives an empty array).
    pub fn zeros(shape: [usize; 3]) -> Self {
        Self {
            shape,
            data: vec![0.0; shape.iter().product()],
        }
    }

    /// Fills `shape` from `f(i0, i1, i2)` in parallel.
    pub fn from_fn(shape: [usize; 3], f: impl Fn(usize, usize, usize) -> f32 + Sync) -> Self {
        let [_, n1, n2] = shape;
        let mut data = vec![0.0; shape.iter().product()];
        if n1 * n2 > 0 {
            data.par_chunks_mut(n1 * n2).enumerate().for_each(|(i0, plane)| {
                for (r, v) in plane.iter_mut().enumerate() {
                    *v = f(i0, r / n2, r % n2);
                }
            });
        }
        Self { shape, data }
    }

    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Value at `[i0, i1, i2]` (panics out of range, like slice indexing).
    pub fn get(&self, i0: usize, i1: usize, i2: usize) -> f32 {
        self.data[(i0 * self.shape[1] + i1) * self.shape[2] + i2]
    }

    /// The leading `shape` corner of this array (`a[:s0, :s1, :s2]`).
    pub fn cropped(&self, shape: [usize; 3]) -> Self {
        if shape == self.shape {
            return self.clone();
        }
        let s = [0, 1, 2].map(|a| shape[a].min(self.shape[a]));
        Self::from_fn(s, |a, b, c| self.get(a, b, c))
    }

    /// Largest absolute value (0 for an empty array; NaN is ignored).
    pub fn max_abs(&self) -> f32 {
        self.data.iter().fold(0.0f32, |m, v| m.max(v.abs()))
    }
}

/// The seven detail subbands of one level, in pywt key order `b = 1..=7` where
/// `b = hp(axis 0) + 2·hp(axis 1) + 4·hp(axis 2)` (see [`band_key`]); `None` means all zero.
#[derive(Clone, Debug, PartialEq)]
pub struct DetailLevel {
    /// Shape of every band of this level (needed to trim and to make zeros).
    pub shape: [usize; 3],
    /// `bands[b − 1]`, or `None` for a level that was dropped (zeros at reconstruction).
    pub bands: Option<Vec<Array3>>,
}

/// `wavedecn`'s output: the coarsest approximation and the detail levels, coarsest first
/// (pywt's list `[cA_n, {details n}, ..., {details 1}]`).
#[derive(Clone, Debug, PartialEq)]
pub struct WaveletCoeffs {
    pub approx: Array3,
    pub details: Vec<DetailLevel>,
}

/// pywt's dictionary key of detail band `b` (1..=7) in 3D: character `i` is `'d'` when axis `i`
/// is high-passed (`b = 1 → "daa"`, `2 → "ada"`, `4 → "aad"`, `7 → "ddd"`).
pub fn band_key(b: usize) -> String {
    (0..3).map(|axis| if b >> axis & 1 == 1 { 'd' } else { 'a' }).collect()
}

/// One analysis level (`pywt.dwtn(x, w, mode='zero')`): `out[b]` for `b = 0..8`, `out[0]` the
/// approximation and `out[b]` the detail with key [`band_key`]`(b)`.
pub fn dwtn(x: &Array3, w: &Wavelet) -> Vec<Array3> {
    let mut bands = vec![x.clone()];
    for axis in 0..3 {
        let mut next = vec![Array3::zeros([0, 0, 0]); bands.len() * 2];
        let bit = 1 << axis;
        for (b, band) in bands.iter().enumerate() {
            let (lo, hi) = analyze_axis(band, axis, w);
            next[b] = lo;
            next[b | bit] = hi;
        }
        bands = next;
    }
    bands
}

/// One synthesis level (`pywt.idwtn`): `bands[b]` as [`dwtn`] returns them, `None` for zeros.
/// Axes are combined last to first, as pywt does. All-`None` input gives zeros.
pub fn idwtn(bands: Vec<Option<Array3>>, shape: [usize; 3], w: &Wavelet) -> Array3 {
    let mut bands = bands;
    let mut shape = shape;
    for axis in (0..3).rev() {
        // bands[b] and bands[b + half] differ only in the high-pass bit of this axis
        let half = bands.len() / 2;
        let mut next = Vec::with_capacity(half);
        let mut it = bands.into_iter();
        let mut lows: Vec<Option<Array3>> = it.by_ref().take(half).collect();
        let highs: Vec<Option<Array3>> = it.collect();
        for (lo, hi) in lows.iter_mut().zip(highs) {
            next.push(synthesize_axis(lo.take(), hi, shape, axis, w));
        }
        shape[axis] = w.rec_len(shape[axis]);
        bands = next;
    }
    bands.pop().flatten().unwrap_or_else(|| Array3::zeros(shape))
}

/// `pywt.wavedecn(x, w, mode='zero', level=levels)`. Levels above pywt's `dwt_max_level` are
/// computed anyway (pywt only warns).
pub fn wavedecn(x: &Array3, w: &Wavelet, levels: usize) -> WaveletCoeffs {
    let mut approx = x.clone();
    let mut details = Vec::with_capacity(levels);
    for _ in 0..levels {
        let mut bands = dwtn(&approx, w);
        let rest = bands.split_off(1);
        approx = bands.pop().unwrap_or_else(|| Array3::zeros([0, 0, 0]));
        details.push(DetailLevel {
            shape: approx.shape(),
            bands: Some(rest),
        });
    }
    details.reverse();
    WaveletCoeffs { approx, details }
}

/// `pywt.waverecn(coeffs, w, mode='zero')`; dropped levels (`bands: None`) count as zeros.
pub fn waverecn(c: &WaveletCoeffs, w: &Wavelet) -> Result<Array3, WaveletError> {
    let mut approx = c.approx.clone();
    for (level, d) in c.details.iter().enumerate() {
        let a = approx.shape();
        for axis in 0..3 {
            if a[axis] != d.shape[axis] && a[axis] != d.shape[axis] + 1 {
                return Err(WaveletError::Shape {
                    level,
                    what: format!("approximation {a:?} does not fit details {:?}", d.shape),
                });
            }
        }
        if let Some(bands) = &d.bands
            && (bands.len() != 7 || bands.iter().any(|b| b.shape() != d.shape))
        {
            return Err(WaveletError::Shape {
                level,
                what: format!("expected 7 detail bands of shape {:?}", d.shape),
            });
        }
        let approx_fit = approx.cropped(d.shape);
        let mut bands = Vec::with_capacity(8);
        bands.push(Some(approx_fit));
        match &d.bands {
            Some(b) => bands.extend(b.iter().cloned().map(Some)),
            None => bands.extend((0..7).map(|_| None)),
        }
        approx = idwtn(bands, d.shape, w);
    }
    Ok(approx)
}

/// `(outer, n, inner)` of `shape` seen along `axis`: the axis has stride `inner`.
fn split(shape: [usize; 3], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

/// Rows of this many `f64` accumulators at a time keep the working set in the L1/L2 cache.
const ROW_BLOCK: usize = 2048;

/// Mode-zero analysis along `axis`: (approximation, detail).
fn analyze_axis(x: &Array3, axis: usize, w: &Wavelet) -> (Array3, Array3) {
    let (_, n, inner) = split(x.shape, axis);
    let m = w.coeff_len(n);
    let mut shape = x.shape;
    shape[axis] = m;
    let mut lo = Array3::zeros(shape);
    let mut hi = Array3::zeros(shape);
    if inner == 1 {
        analyze_lines(&x.data, n, &mut lo.data, &mut hi.data, m, w);
    } else {
        analyze_rows(&x.data, n, inner, &mut lo.data, &mut hi.data, m, w);
    }
    (lo, hi)
}

/// Strided axis: output row `o` of slab `s` is a filtered sum of whole input rows.
fn analyze_rows(x: &[f32], n: usize, inner: usize, lo: &mut [f32], hi: &mut [f32], m: usize, w: &Wavelet) {
    let f = w.filter_len();
    lo.par_chunks_mut(inner)
        .zip(hi.par_chunks_mut(inner))
        .enumerate()
        .for_each(|(row, (lo_row, hi_row))| {
            let (s, o) = (row / m, row % m);
            let slab = &x[s * n * inner..(s + 1) * n * inner];
            let mut acc_lo = vec![0.0f64; ROW_BLOCK.min(inner)];
            let mut acc_hi = vec![0.0f64; ROW_BLOCK.min(inner)];
            for start in (0..inner).step_by(ROW_BLOCK) {
                let len = ROW_BLOCK.min(inner - start);
                let (al, ah) = (&mut acc_lo[..len], &mut acc_hi[..len]);
                al.fill(0.0);
                ah.fill(0.0);
                for j in 0..f {
                    // input index 2o+1−j, zero outside 0..n
                    let Some(i) = (2 * o + 1).checked_sub(j).filter(|&i| i < n) else {
                        continue;
                    };
                    let (cl, ch) = (w.dec_lo[j], w.dec_hi[j]);
                    let src = &slab[i * inner + start..i * inner + start + len];
                    for ((a, b), &v) in al.iter_mut().zip(ah.iter_mut()).zip(src) {
                        let v = f64::from(v);
                        *a += cl * v;
                        *b += ch * v;
                    }
                }
                for (d, &a) in lo_row[start..start + len].iter_mut().zip(al.iter()) {
                    *d = a as f32;
                }
                for (d, &a) in hi_row[start..start + len].iter_mut().zip(ah.iter()) {
                    *d = a as f32;
                }
            }
        });
}

/// Contiguous axis, one line per task. With the input split into even and odd samples
/// (`e[k] = x[2k]`, `d[k] = x[2k+1]`), `out[o] = Σ_q c[2q+1]·e[o−q] + c[2q]·d[o−q]`: shifted
/// contiguous sums that vectorise over `o`.
fn analyze_lines(x: &[f32], n: usize, lo: &mut [f32], hi: &mut [f32], m: usize, w: &Wavelet) {
    let f = w.filter_len();
    let half = f / 2;
    lo.par_chunks_mut(m)
        .zip(hi.par_chunks_mut(m))
        .zip(x.par_chunks(n))
        .for_each_init(
            || {
                (
                    vec![0.0f64; m + half],
                    vec![0.0f64; m + half],
                    vec![0.0f64; m],
                    vec![0.0f64; m],
                )
            },
            |(even, odd, al, ah), ((lo_line, hi_line), line)| {
                // even[k + half − 1] = x[2k] (zero-padded left by half − 1 and right as needed)
                even.fill(0.0);
                odd.fill(0.0);
                for (i, &v) in line.iter().enumerate() {
                    let slot = i / 2 + half - 1;
                    if i % 2 == 0 {
                        even[slot] = f64::from(v);
                    } else {
                        odd[slot] = f64::from(v);
                    }
                }
                al.fill(0.0);
                ah.fill(0.0);
                for q in 0..half {
                    // x[2o+1−(2q+1)] = e[o−q] at even[o − q + half − 1]; x[2o+1−2q] = d[o−q]
                    let off = half - 1 - q;
                    let (e, d) = (&even[off..off + m], &odd[off..off + m]);
                    let (le, lo_) = (w.dec_lo[2 * q + 1], w.dec_lo[2 * q]);
                    let (he, ho) = (w.dec_hi[2 * q + 1], w.dec_hi[2 * q]);
                    for o in 0..m {
                        al[o] += le * e[o] + lo_ * d[o];
                        ah[o] += he * e[o] + ho * d[o];
                    }
                }
                for (d, &a) in lo_line.iter_mut().zip(al.iter()) {
                    *d = a as f32;
                }
                for (d, &a) in hi_line.iter_mut().zip(ah.iter()) {
                    *d = a as f32;
                }
            },
        );
}

/// Synthesis along `axis` of arrays of shape `shape` (either may be `None`, meaning zeros).
fn synthesize_axis(
    lo: Option<Array3>,
    hi: Option<Array3>,
    shape: [usize; 3],
    axis: usize,
    w: &Wavelet,
) -> Option<Array3> {
    if lo.is_none() && hi.is_none() {
        return None;
    }
    let (_, n, inner) = split(shape, axis);
    let len = w.rec_len(n);
    let mut out_shape = shape;
    out_shape[axis] = len;
    let mut out = Array3::zeros(out_shape);
    if out.is_empty() {
        return Some(out);
    }
    let (l, h) = (lo.as_ref().map(|a| a.data()), hi.as_ref().map(|a| a.data()));
    if inner == 1 {
        synthesize_lines(l, h, n, &mut out.data, len, w);
    } else {
        synthesize_rows(l, h, n, inner, &mut out.data, len, w);
    }
    Some(out)
}

fn synthesize_rows(
    lo: Option<&[f32]>,
    hi: Option<&[f32]>,
    n: usize,
    inner: usize,
    out: &mut [f32],
    len: usize,
    w: &Wavelet,
) {
    let f = w.filter_len();
    out.par_chunks_mut(inner).enumerate().for_each(|(row, out_row)| {
        let (s, mi) = (row / len, row % len);
        // taps t = mi + F − 2 − 2k in 0..F, i.e. k in ⌈(mi−1)/2⌉ ..= ⌊(mi+F−2)/2⌋, within 0..n
        let k_hi = ((mi + f - 2) / 2).min(n - 1);
        let k_lo = mi.saturating_sub(1).div_ceil(2);
        let mut acc = vec![0.0f64; ROW_BLOCK.min(inner)];
        for start in (0..inner).step_by(ROW_BLOCK) {
            let bl = ROW_BLOCK.min(inner - start);
            let acc = &mut acc[..bl];
            acc.fill(0.0);
            for k in k_lo..=k_hi {
                let t = mi + f - 2 - 2 * k;
                let at = (s * n + k) * inner + start;
                match (lo, hi) {
                    (Some(l), Some(h)) => {
                        let (cl, ch) = (w.rec_lo[t], w.rec_hi[t]);
                        for ((a, &u), &v) in acc.iter_mut().zip(&l[at..at + bl]).zip(&h[at..at + bl]) {
                            *a += cl * f64::from(u) + ch * f64::from(v);
                        }
                    }
                    (Some(x), None) | (None, Some(x)) => {
                        let c = if lo.is_some() { w.rec_lo[t] } else { w.rec_hi[t] };
                        for (a, &u) in acc.iter_mut().zip(&x[at..at + bl]) {
                            *a += c * f64::from(u);
                        }
                    }
                    (None, None) => {}
                }
            }
            for (d, &a) in out_row[start..start + bl].iter_mut().zip(acc.iter()) {
                *d = a as f32;
            }
        }
    });
}

/// Contiguous axis: with `h = (F−2)/2`, `y[2p] = Σ_s rec[2s]·c[p+h−s]` and
/// `y[2p+1] = Σ_s rec[2s+1]·c[p+h−s]` (`s < F/2`, `c` zero outside `0..n`).
fn synthesize_lines(lo: Option<&[f32]>, hi: Option<&[f32]>, n: usize, out: &mut [f32], len: usize, w: &Wavelet) {
    let f = w.filter_len();
    let half = f / 2;
    let pairs = len.div_ceil(2);
    // padded copies: cp[i + half − 1] = c[i]
    let padded_len = pairs + f;
    out.par_chunks_mut(len).enumerate().for_each_init(
        || {
            (
                vec![0.0f64; padded_len],
                vec![0.0f64; padded_len],
                vec![0.0f64; pairs],
                vec![0.0f64; pairs],
            )
        },
        |(lp, hp, ev, od), (line, out_line)| {
            let fill = |dst: &mut Vec<f64>, src: Option<&[f32]>| {
                dst.fill(0.0);
                if let Some(src) = src {
                    for (d, &v) in dst[half - 1..].iter_mut().zip(&src[line * n..(line + 1) * n]) {
                        *d = f64::from(v);
                    }
                }
            };
            fill(lp, lo);
            fill(hp, hi);
            ev.fill(0.0);
            od.fill(0.0);
            for s in 0..half {
                // c[p + h − s] sits at index p + h − s + half − 1 = p + (f − 2 − s)
                let off = f - 2 - s;
                let (a, d) = (&lp[off..off + pairs], &hp[off..off + pairs]);
                let (le, lo_) = (w.rec_lo[2 * s], w.rec_lo[2 * s + 1]);
                let (he, ho) = (w.rec_hi[2 * s], w.rec_hi[2 * s + 1]);
                for p in 0..pairs {
                    ev[p] += le * a[p] + he * d[p];
                    od[p] += lo_ * a[p] + ho * d[p];
                }
            }
            for (i, y) in out_line.iter_mut().enumerate() {
                *y = if i % 2 == 0 { ev[i / 2] } else { od[i / 2] } as f32;
            }
        },
    );
}
