//! The CPU side of [`super::conv3d`] for f32: a candle custom op whose forward is either a direct
//! convolution with an AVX-512 / AVX2+FMA register-blocked micro-kernel or, where those
//! instruction sets are missing, a tiled im2col followed by candle's (gemm) matmul.
//!
//! Both read the input from zero-padded, channels-last copies (`[y][x][c]` planes), so that
//! every kernel tap of a run of output voxels along x reads `c` contiguous floats at a fixed
//! stride and no bounds are checked in the inner loops. The direct kernel packs the planes it
//! needs into a small per-task window; im2col (and the weight gradient) pack the whole input.
//!
//! The op is differentiable: its backward gives the input gradient as a transposed convolution
//! (itself a [`super::conv3d`] on the zero-inserted gradient, so it runs on the same kernels), the
//! weight gradient as im2col tiles times the output gradient (matmul), and the bias gradient as
//! a sum. Other devices and dtypes never reach this file (see `conv3d_with`).

use super::conv3d::{Conv3dImpl, ConvTranspose3dConfig, conv_transpose3d_with};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Device, Layout, Result, Shape, Storage, Tensor, bail};
use rayon::prelude::*;
use std::sync::OnceLock;

/// SIMD instruction set of the direct kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    Avx512,
    Avx2Fma,
}

impl Isa {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512f",
            Isa::Avx2Fma => "avx2+fma",
        }
    }
}

/// The best direct-kernel instruction set of this CPU (cached), or `None` (then im2col + gemm).
/// `LW_CONV3D_NO_AVX512=1` caps it at AVX2 (for comparisons).
pub(crate) fn detect_isa() -> Option<Isa> {
    static ISA: OnceLock<Option<Isa>> = OnceLock::new();
    *ISA.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                if std::is_x86_feature_detected!("avx512f") && std::env::var_os("LW_CONV3D_NO_AVX512").is_none() {
                    return Some(Isa::Avx512);
                }
                return Some(Isa::Avx2Fma);
            }
            None
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    })
}

/// Which CPU algorithm the op runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CpuKernel {
    Direct(Isa),
    Im2col,
}

/// Shapes of one 3D convolution (input already validated by `conv3d_with`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geom {
    pub b: usize,
    pub cin: usize,
    pub cout: usize,
    pub groups: usize,
    pub inp: [usize; 3],
    pub k: [usize; 3],
    pub stride: [usize; 3],
    pub pad: [usize; 3],
    pub dil: [usize; 3],
    pub out: [usize; 3],
}

impl Geom {
    fn cg(&self) -> usize {
        self.cin / self.groups
    }
    fn cog(&self) -> usize {
        self.cout / self.groups
    }
    fn taps(&self) -> usize {
        self.k[0] * self.k[1] * self.k[2]
    }
    /// Columns of an im2col row: taps × input channels of one group, ordered (kd, kh, kw, c).
    fn kk(&self) -> usize {
        self.taps() * self.cg()
    }
    fn hw_out(&self) -> usize {
        self.out[1] * self.out[2]
    }
    fn out_shape(&self) -> Shape {
        Shape::from(vec![self.b, self.cout, self.out[0], self.out[1], self.out[2]])
    }
}

/// Zero-padded channels-last copy of the whole input, `[b][group][z][y][x][c]` (im2col and the
/// weight gradient).
struct Packed {
    data: Vec<f32>,
    dp: usize,
    hp: usize,
    wp: usize,
    cg: usize,
    groups: usize,
}

impl Packed {
    fn index(&self, b: usize, grp: usize, z: usize, y: usize, x: usize) -> usize {
        ((((b * self.groups + grp) * self.dp + z) * self.hp + y) * self.wp + x) * self.cg
    }
}

fn cpu_slice<'a>(s: &'a CpuStorage, what: &str) -> Result<&'a [f32]> {
    match s {
        CpuStorage::F32(v) => Ok(v),
        _ => bail!("conv3d (cpu): {what} must be f32"),
    }
}

fn strides5(l: &Layout) -> Result<[usize; 5]> {
    match l.stride() {
        &[a, b, c, d, e] => Ok([a, b, c, d, e]),
        s => bail!("conv3d (cpu): expected a rank-5 layout, got strides {s:?}"),
    }
}

fn pack_input(x: &[f32], l: &Layout, g: &Geom) -> Result<Packed> {
    let s = strides5(l)?;
    let off = l.start_offset();
    let cg = g.cg();
    let [d_in, h_in, w_in] = g.inp;
    let dp = d_in + 2 * g.pad[0];
    let hp = h_in + 2 * g.pad[1];
    let wp = w_in + 2 * g.pad[2];
    let mut data = vec![0f32; g.b * g.groups * dp * hp * wp * cg];
    data.par_chunks_mut(hp * wp * cg).enumerate().for_each(|(idx, plane)| {
        let z = idx % dp;
        let bg = idx / dp;
        let (b, grp) = (bg / g.groups, bg % g.groups);
        if z < g.pad[0] || z >= g.pad[0] + d_in {
            return;
        }
        let d = z - g.pad[0];
        for h in 0..h_in {
            let row = &mut plane[((h + g.pad[1]) * wp + g.pad[2]) * cg..][..w_in * cg];
            for c in 0..cg {
                let base = off + b * s[0] + (grp * cg + c) * s[1] + d * s[2] + h * s[3];
                if s[4] == 1 {
                    for (dst, v) in row.iter_mut().skip(c).step_by(cg).zip(&x[base..base + w_in]) {
                        *dst = *v;
                    }
                } else {
                    for (w, dst) in row.iter_mut().skip(c).step_by(cg).enumerate() {
                        *dst = x[base + w * s[4]];
                    }
                }
            }
        }
    });
    Ok(Packed {
        data,
        dp,
        hp,
        wp,
        cg,
        groups: g.groups,
    })
}

/// Reads `w[co][c][kd][kh][kw]` (any strides) through `f(co, tap, c)`.
fn weight_reader<'a>(w: &'a [f32], l: &Layout, g: &Geom) -> Result<impl Fn(usize, usize, usize) -> f32 + 'a> {
    let s = strides5(l)?;
    let off = l.start_offset();
    let [_, kh, kw] = g.k;
    Ok(move |co: usize, tap: usize, c: usize| {
        let (t_d, t_h, t_w) = (tap / (kh * kw), (tap / kw) % kh, tap % kw);
        w[off + co * s[0] + c * s[1] + t_d * s[2] + t_h * s[3] + t_w * s[4]]
    })
}

/// Moves `[b][od][co][hw]` to `[b][co][od][hw]`, adding the bias.
fn unpermute(tmp: &[f32], g: &Geom, bias: Option<&[f32]>) -> Vec<f32> {
    let (dout, hw, cout) = (g.out[0], g.hw_out(), g.cout);
    let mut out = vec![0f32; tmp.len()];
    out.par_chunks_mut(dout * hw).enumerate().for_each(|(idx, ch)| {
        let (b, co) = (idx / cout, idx % cout);
        let add = bias.map_or(0.0, |bv| bv[co]);
        for (od, dst) in ch.chunks_exact_mut(hw).enumerate() {
            let src = &tmp[((b * dout + od) * cout + co) * hw..][..hw];
            if add == 0.0 {
                dst.copy_from_slice(src);
            } else {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = *s + add;
                }
            }
        }
    });
    out
}

// ------------------------------------------------------------------ direct kernel

/// A micro-kernel: `P` consecutive output voxels along x times one block of output channels,
/// summed over every tap and input channel. `rows[i]` points at the first input voxel of the
/// block for the i-th (kd, kh) tap row; `w` at the packed weights `[tap][c][block]`; `out`
/// receives `P × block` floats, voxel-major.
type Micro =
    unsafe fn(rows: &[*const f32], w: *const f32, cg: usize, kw: usize, kw_step: usize, p_step: usize, out: *mut f32);

#[cfg(target_arch = "x86_64")]
macro_rules! micro_kernel {
    ($name:ident, $feat:literal, $lanes:literal, $vec:ty, $zero:ident, $load:ident, $set1:ident, $fma:ident, $store:ident) => {
        /// # Safety
        /// The CPU must support the enabled features; every pointer read (`rows[i]` plus
        /// `(P-1)·p_step + (kw-1)·kw_step + cg` floats, `w` plus `rows.len()·kw·cg·V·lanes`
        /// floats) and `out` (`P·V·lanes` floats) must be in bounds.
        #[target_feature(enable = $feat)]
        #[allow(clippy::needless_range_loop)] // fixed-size register blocks read best as indices
        unsafe fn $name<const P: usize, const V: usize>(
            rows: &[*const f32],
            w: *const f32,
            cg: usize,
            kw: usize,
            kw_step: usize,
            p_step: usize,
            out: *mut f32,
        ) {
            use std::arch::x86_64::*;
            // SAFETY: bounds are the caller's contract (checked once per block in `direct_forward`).
            unsafe {
                let mut acc: [[$vec; V]; P] = [[$zero(); V]; P];
                let mut wp = w;
                for &row in rows {
                    for k in 0..kw {
                        let xb = row.add(k * kw_step);
                        for ci in 0..cg {
                            let mut wv: [$vec; V] = [$zero(); V];
                            for v in 0..V {
                                wv[v] = $load(wp.add(v * $lanes));
                            }
                            for p in 0..P {
                                let xv = $set1(*xb.add(p * p_step + ci));
                                for v in 0..V {
                                    acc[p][v] = $fma(xv, wv[v], acc[p][v]);
                                }
                            }
                            wp = wp.add(V * $lanes);
                        }
                    }
                }
                for p in 0..P {
                    for v in 0..V {
                        $store(out.add((p * V + v) * $lanes), acc[p][v]);
                    }
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
micro_kernel!(
    micro_avx512,
    "avx512f",
    16,
    __m512,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_storeu_ps
);
#[cfg(target_arch = "x86_64")]
micro_kernel!(
    micro_avx2,
    "avx2,fma",
    8,
    __m256,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_storeu_ps
);

/// Register blocking of the direct kernel: blocks of `bw` output channels; along x, kernels for
/// `p` voxels, largest first (see [`segments`]).
struct Blocking {
    bw: usize,
    kernels: [(usize, Micro); 3],
}

fn blocking(isa: Isa, cog: usize) -> Blocking {
    #[cfg(target_arch = "x86_64")]
    {
        // 12 voxels × 32 channels (24 zmm accumulators) runs at the FMA peak of the machine this
        // was tuned on (≈240 GFLOP/s on 2 cores, like oneDNN); the 8- and 4-voxel kernels cover
        // row ends without computing (much) past them. Narrow outputs use 16-channel blocks.
        match isa {
            Isa::Avx512 if cog > 16 => Blocking {
                bw: 32,
                kernels: [
                    (12, micro_avx512::<12, 2>),
                    (8, micro_avx512::<8, 2>),
                    (4, micro_avx512::<4, 2>),
                ],
            },
            Isa::Avx512 => Blocking {
                bw: 16,
                kernels: [
                    (16, micro_avx512::<16, 1>),
                    (8, micro_avx512::<8, 1>),
                    (4, micro_avx512::<4, 1>),
                ],
            },
            Isa::Avx2Fma if cog > 8 => Blocking {
                bw: 16,
                kernels: [
                    (6, micro_avx2::<6, 2>),
                    (4, micro_avx2::<4, 2>),
                    (2, micro_avx2::<2, 2>),
                ],
            },
            Isa::Avx2Fma => Blocking {
                bw: 8,
                kernels: [
                    (12, micro_avx2::<12, 1>),
                    (8, micro_avx2::<8, 1>),
                    (4, micro_avx2::<4, 1>),
                ],
            },
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, cog);
        unreachable!("detect_isa() is None off x86_64")
    }
}

/// Covers a row of `wout` voxels with kernel blocks: as many of the largest as fit, then the
/// smallest kernel that covers the rest (it may overhang the row by less than its size).
/// Returns `(first voxel, kernel index)` pairs.
fn segments(wout: usize, kernels: &[(usize, Micro); 3]) -> Vec<(usize, usize)> {
    let big = kernels[0].0;
    let mut segs: Vec<(usize, usize)> = (0..wout / big).map(|i| (i * big, 0)).collect();
    let rest = wout % big;
    if rest > 0 {
        let k = (0..kernels.len())
            .rev()
            .find(|&k| kernels[k].0 >= rest)
            .expect("largest kernel covers the rest");
        segs.push((wout - rest, k));
    }
    segs
}

/// A strided rank-5 input.
struct Src<'a> {
    x: &'a [f32],
    strides: [usize; 5],
    offset: usize,
}

/// Packs input plane `z` (padded coordinates) of batch `b`, group `grp` into `buf`
/// (`[y][x][c]`, `hp × wp × cg`, zero padded).
fn pack_plane(src: &Src, g: &Geom, (b, grp, z): (usize, usize, usize), wp: usize, buf: &mut [f32]) {
    let (x, s, off) = (src.x, &src.strides, src.offset);
    let cg = g.cg();
    let [d_in, h_in, w_in] = g.inp;
    let row_len = wp * cg;
    if z < g.pad[0] || z >= g.pad[0] + d_in {
        buf.fill(0.0);
        return;
    }
    let d = z - g.pad[0];
    for (y, row) in buf.chunks_exact_mut(row_len).enumerate() {
        if y < g.pad[1] || y >= g.pad[1] + h_in {
            row.fill(0.0);
            continue;
        }
        let h = y - g.pad[1];
        let (left, rest) = row.split_at_mut(g.pad[2] * cg);
        let (mid, right) = rest.split_at_mut(w_in * cg);
        left.fill(0.0);
        right.fill(0.0);
        let base = off + b * s[0] + grp * cg * s[1] + d * s[2] + h * s[3];
        if cg == 1 {
            for (w, v) in mid.iter_mut().enumerate() {
                *v = x[base + w * s[4]];
            }
            continue;
        }
        // Transpose (c, w) → (w, c) in 8×8 tiles: reads and writes both stay within a few lines.
        const T: usize = 8;
        for c0 in (0..cg).step_by(T) {
            let c1 = (c0 + T).min(cg);
            for w0 in (0..w_in).step_by(T) {
                let w1 = (w0 + T).min(w_in);
                for c in c0..c1 {
                    let src = base + c * s[1];
                    for w in w0..w1 {
                        mid[w * cg + c] = x[src + w * s[4]];
                    }
                }
            }
        }
    }
}

/// A raw pointer to the output, shared by the tasks of [`direct_forward`].
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: the tasks write disjoint voxels (each owns a range of output depths), see below.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The element pointer (a method, so closures capture the whole `Sync` wrapper).
    fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

/// The direct convolution, written straight into the `(B, Cout, D', H', W')` output (+ bias).
///
/// Each task owns a range of output depths of one batch item; it packs the input planes it needs
/// into a small rolling window of channels-last planes (so the packed copy stays in cache and no
/// volume-sized buffer is allocated) and runs the micro-kernels on blocks of voxels along x.
fn direct_forward(
    x: &[f32],
    xl: &Layout,
    w: &[f32],
    wl: &Layout,
    g: &Geom,
    isa: Isa,
    bias: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let (cg, cog, taps) = (g.cg(), g.cog(), g.taps());
    let blk = blocking(isa, cog);
    let [dout, hout, wout] = g.out;
    let hw = g.hw_out();
    let src = Src {
        x,
        strides: strides5(xl)?,
        offset: xl.start_offset(),
    };
    // The last block of `p` voxels may run past `wout`: widen the packed rows so that its reads
    // stay inside the plane (the extra columns are zeros and their outputs are dropped).
    let segs = segments(wout, &blk.kernels);
    let covered = segs.last().map_or(0, |&(ow0, k)| ow0 + blk.kernels[k].0);
    let hp = g.inp[1] + 2 * g.pad[1];
    let wp = (g.inp[2] + 2 * g.pad[2]).max((covered - 1) * g.stride[2] + (g.k[2] - 1) * g.dil[2] + 1);
    let plane_len = hp * wp * cg;
    // Weights as [group][channel block][tap][c][bw], zero beyond `cog`.
    let nb = cog.div_ceil(blk.bw);
    let wr = weight_reader(w, wl, g)?;
    let mut wpk = vec![0f32; g.groups * nb * taps * cg * blk.bw];
    for grp in 0..g.groups {
        for cb in 0..nb {
            for tap in 0..taps {
                for c in 0..cg {
                    let base = (((grp * nb + cb) * taps + tap) * cg + c) * blk.bw;
                    for j in 0..blk.bw.min(cog - cb * blk.bw) {
                        wpk[base + j] = wr(grp * cog + cb * blk.bw + j, tap, c);
                    }
                }
            }
        }
    }
    let wblock = taps * cg * blk.bw;
    let (kd_n, kh_n, kw_n) = (g.k[0], g.k[1], g.k[2]);
    let p_step = g.stride[2] * cg;
    let kw_step = g.dil[2] * cg;
    let reach = |p: usize| (p - 1) * p_step + (kw_n - 1) * kw_step + cg;
    let max_p = blk.kernels[0].0;

    let mut out = vec![0f32; g.b * g.cout * dout * hw];
    let out_ptr = OutPtr(out.as_mut_ptr());
    let out_len = out.len();
    // Tasks: ranges of output depths, ~8 per thread so that a thread slowed down by other load
    // leaves little imbalance (each task re-packs k_d - 1 planes of its neighbour: small).
    let per_task = (dout / (8 * rayon::current_num_threads().max(1))).clamp(1, 8);
    let chunks = dout.div_ceil(per_task);
    (0..g.b * chunks).into_par_iter().for_each(|task| {
        let (b, chunk) = (task / chunks, task % chunks);
        let (od0, od1) = (chunk * per_task, ((chunk + 1) * per_task).min(dout));
        // Rolling window of packed planes: (z, buffer).
        let mut window: Vec<(usize, Vec<f32>)> = Vec::with_capacity(kd_n + 1);
        let mut spare: Vec<Vec<f32>> = Vec::new();
        let mut rows = vec![std::ptr::null::<f32>(); kd_n * kh_n];
        let mut rows_off = vec![(0usize, 0usize); kd_n * kh_n];
        let mut tile = vec![0f32; max_p * blk.bw];
        for grp in 0..g.groups {
            spare.extend(window.drain(..).map(|(_, v)| v));
            for od in od0..od1 {
                // Planes this depth needs; drop the ones no later depth of the task reads.
                let lo = od * g.stride[0];
                let mut keep = Vec::with_capacity(window.len());
                for (z, buf) in window.drain(..) {
                    if z >= lo { keep.push((z, buf)) } else { spare.push(buf) }
                }
                window = keep;
                for kd in 0..kd_n {
                    let z = lo + kd * g.dil[0];
                    if !window.iter().any(|(wz, _)| *wz == z) {
                        let mut buf = spare.pop().unwrap_or_else(|| vec![0f32; plane_len]);
                        pack_plane(&src, g, (b, grp, z), wp, &mut buf);
                        window.push((z, buf));
                    }
                }
                for kd in 0..kd_n {
                    let z = lo + kd * g.dil[0];
                    let slot = window.iter().position(|(wz, _)| *wz == z).expect("plane packed above");
                    for kh in 0..kh_n {
                        rows_off[kd * kh_n + kh] = (slot, 0);
                    }
                }
                for oh in 0..hout {
                    for kd in 0..kd_n {
                        for kh in 0..kh_n {
                            let y = oh * g.stride[1] + kh * g.dil[1];
                            rows_off[kd * kh_n + kh].1 = y * wp * cg;
                        }
                    }
                    for &(ow0, k) in &segs {
                        let (p, micro) = blk.kernels[k];
                        let shift = ow0 * p_step;
                        for (r, &(slot, o)) in rows.iter_mut().zip(&rows_off) {
                            // Reads of the block lie in [o + shift, o + shift + reach), inside the
                            // plane because rows are `wp` wide (checked here, once per block).
                            let plane = &window[slot].1;
                            assert!(o + shift + reach(p) <= plane.len());
                            *r = plane[o + shift..].as_ptr();
                        }
                        let valid_p = p.min(wout - ow0);
                        for cb in 0..nb {
                            let wptr = wpk[(grp * nb + cb) * wblock..][..wblock].as_ptr();
                            // SAFETY: `blocking` only returns kernels of the detected ISA; the row
                            // reads are checked above, the weight block holds taps·cg·bw floats
                            // and `tile` max_p·bw ≥ p·bw.
                            unsafe { micro(&rows, wptr, cg, kw_n, kw_step, p_step, tile.as_mut_ptr()) };
                            for c in 0..blk.bw.min(cog - cb * blk.bw) {
                                let co = grp * cog + cb * blk.bw + c;
                                let add = bias.map_or(0.0, |bv| bv[co]);
                                let at = ((b * g.cout + co) * dout + od) * hw + oh * wout + ow0;
                                assert!(at + valid_p <= out_len);
                                for p in 0..valid_p {
                                    // SAFETY: in bounds (checked); output depth `od` belongs to this
                                    // task only, so no other thread writes these voxels.
                                    unsafe { *out_ptr.at(at + p) = tile[p * blk.bw + c] + add };
                                }
                            }
                        }
                    }
                }
            }
        }
    });
    Ok(out)
}

// ------------------------------------------------------------------ im2col + gemm

/// Output rows per im2col tile: about this many voxels.
const IM2COL_TILE: usize = 1024;

/// Fills `col` (N × kk, row-major) with the patches of output rows `oh0..oh0+nrows` at depth `od`.
fn im2col(
    xp: &Packed,
    g: &Geom,
    (b, grp, od): (usize, usize, usize),
    (oh0, nrows): (usize, usize),
    col: &mut Vec<f32>,
) {
    let cg = g.cg();
    col.clear();
    for oh in oh0..oh0 + nrows {
        for ow in 0..g.out[2] {
            for kd in 0..g.k[0] {
                let z = od * g.stride[0] + kd * g.dil[0];
                for kh in 0..g.k[1] {
                    let y = oh * g.stride[1] + kh * g.dil[1];
                    let x0 = ow * g.stride[2];
                    if g.dil[2] == 1 {
                        let i = xp.index(b, grp, z, y, x0);
                        col.extend_from_slice(&xp.data[i..i + g.k[2] * cg]);
                    } else {
                        for kw in 0..g.k[2] {
                            let i = xp.index(b, grp, z, y, x0 + kw * g.dil[2]);
                            col.extend_from_slice(&xp.data[i..i + cg]);
                        }
                    }
                }
            }
        }
    }
}

fn cpu_tensor_slice(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<()>) -> Result<()> {
    let (st, l) = t.storage_and_layout();
    match &*st {
        Storage::Cpu(cs) => match l.contiguous_offsets() {
            Some((a, z)) => f(&cpu_slice(cs, "matmul result")?[a..z]),
            None => bail!("conv3d (cpu): non-contiguous matmul result"),
        },
        _ => bail!("conv3d (cpu): expected a cpu tensor"),
    }
}

fn im2col_forward(x: &[f32], xl: &Layout, w: &[f32], wl: &Layout, g: &Geom) -> Result<Vec<f32>> {
    let (cg, cog, kk, taps) = (g.cg(), g.cog(), g.kk(), g.taps());
    let xp = pack_input(x, xl, g)?;
    let wr = weight_reader(w, wl, g)?;
    // Per group the (kk × cog) matrix: row (tap, c), column co.
    let wts = (0..g.groups)
        .map(|grp| {
            let mut m = vec![0f32; kk * cog];
            for tap in 0..taps {
                for c in 0..cg {
                    for co in 0..cog {
                        m[(tap * cg + c) * cog + co] = wr(grp * cog + co, tap, c);
                    }
                }
            }
            Tensor::from_vec(m, (kk, cog), &Device::Cpu)
        })
        .collect::<Result<Vec<_>>>()?;
    let [dout, hout, wout] = g.out;
    let hw = g.hw_out();
    let nrows = (IM2COL_TILE / wout).clamp(1, hout);
    let mut tmp = vec![0f32; g.b * dout * g.cout * hw];
    tmp.par_chunks_mut(g.cout * hw)
        .enumerate()
        .try_for_each(|(idx, chunk)| -> Result<()> {
            let (b, od) = (idx / dout, idx % dout);
            let mut col = Vec::new();
            for (grp, wt) in wts.iter().enumerate() {
                let mut oh0 = 0;
                while oh0 < hout {
                    let nr = nrows.min(hout - oh0);
                    let n = nr * wout;
                    im2col(&xp, g, (b, grp, od), (oh0, nr), &mut col);
                    let res = Tensor::from_slice(&col, (n, kk), &Device::Cpu)?.matmul(wt)?;
                    cpu_tensor_slice(&res, |r| {
                        for co in 0..cog {
                            let dst = &mut chunk[(grp * cog + co) * hw + oh0 * wout..][..n];
                            for (p, d) in dst.iter_mut().enumerate() {
                                *d = r[p * cog + co];
                            }
                        }
                        Ok(())
                    })?;
                    oh0 += nr;
                }
            }
            Ok(())
        })?;
    Ok(tmp)
}

// ------------------------------------------------------------------ weight gradient

/// dL/dw for output gradient `gy` (layout `gl`), returned in torch order `[co][c][kd][kh][kw]`.
fn weight_grad(x: &[f32], xl: &Layout, gy: &[f32], gl: &Layout, g: &Geom) -> Result<Vec<f32>> {
    let (cg, cog, kk, taps) = (g.cg(), g.cog(), g.kk(), g.taps());
    let xp = pack_input(x, xl, g)?;
    let s = strides5(gl)?;
    let goff = gl.start_offset();
    let [dout, hout, wout] = g.out;
    let nrows = (IM2COL_TILE / wout).clamp(1, hout);
    let acc = (0..g.b * dout)
        .into_par_iter()
        .map(|idx| -> Result<Vec<f32>> {
            let (b, od) = (idx / dout, idx % dout);
            let mut part = vec![0f32; g.cout * kk];
            let mut col = Vec::new();
            for grp in 0..g.groups {
                let mut oh0 = 0;
                while oh0 < hout {
                    let nr = nrows.min(hout - oh0);
                    let n = nr * wout;
                    im2col(&xp, g, (b, grp, od), (oh0, nr), &mut col);
                    let mut gt = Vec::with_capacity(cog * n);
                    for co in 0..cog {
                        let base = goff + b * s[0] + (grp * cog + co) * s[1] + od * s[2];
                        for oh in oh0..oh0 + nr {
                            gt.extend((0..wout).map(|ow| gy[base + oh * s[3] + ow * s[4]]));
                        }
                    }
                    let colt = Tensor::from_slice(&col, (n, kk), &Device::Cpu)?;
                    let res = Tensor::from_vec(gt, (cog, n), &Device::Cpu)?.matmul(&colt)?;
                    cpu_tensor_slice(&res, |r| {
                        for (d, v) in part[grp * cog * kk..][..cog * kk].iter_mut().zip(r) {
                            *d += *v;
                        }
                        Ok(())
                    })?;
                    oh0 += nr;
                }
            }
            Ok(part)
        })
        .try_reduce(
            || vec![0f32; g.cout * kk],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(&b) {
                    *x += *y;
                }
                Ok(a)
            },
        )?;
    // (co, tap, c) → (co, c, tap)
    let mut out = vec![0f32; g.cout * kk];
    for co in 0..g.cout {
        for tap in 0..taps {
            for c in 0..cg {
                out[(co * cg + c) * taps + tap] = acc[(co * taps + tap) * cg + c];
            }
        }
    }
    Ok(out)
}

// ------------------------------------------------------------------ the custom op

/// The f32 CPU conv3d as a candle op with a backward pass.
#[derive(Clone, Debug)]
pub(crate) struct Conv3dCpuOp {
    pub geom: Geom,
    pub kernel: CpuKernel,
}

impl Conv3dCpuOp {
    fn forward(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        w: &CpuStorage,
        wl: &Layout,
        bias: Option<&[f32]>,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (cpu_slice(x, "input")?, cpu_slice(w, "weight")?);
        let g = &self.geom;
        let out = match self.kernel {
            CpuKernel::Direct(isa) => direct_forward(x, xl, w, wl, g, isa, bias)?,
            CpuKernel::Im2col => unpermute(&im2col_forward(x, xl, w, wl, g)?, g, bias),
        };
        Ok((CpuStorage::F32(out), g.out_shape()))
    }

    fn backward(&self, x: &Tensor, w: &Tensor, grad: &Tensor) -> Result<(Tensor, Tensor)> {
        let g = &self.geom;
        // Input gradient: the transposed convolution of `grad`, padded at the far end to the
        // input size (the voxels the strided kernel never reached get zero).
        let output_padding: [usize; 3] = std::array::from_fn(|i| {
            let reached = (g.out[i] - 1) * g.stride[i] + g.dil[i] * (g.k[i] - 1) + 1;
            g.inp[i] + 2 * g.pad[i] - reached
        });
        let cfg = ConvTranspose3dConfig {
            stride: g.stride,
            padding: g.pad,
            output_padding,
            dilation: g.dil,
            groups: g.groups,
        };
        let imp = match self.kernel {
            CpuKernel::Direct(_) => Conv3dImpl::CpuDirect,
            CpuKernel::Im2col => Conv3dImpl::CpuIm2col,
        };
        let gx = conv_transpose3d_with(&grad.detach(), &w.detach(), None, &cfg, imp)?;
        // Weight gradient from the same im2col tiles.
        let gw = {
            let (xs, xl) = x.storage_and_layout();
            let (gs, gl) = grad.storage_and_layout();
            let (Storage::Cpu(xs), Storage::Cpu(gs)) = (&*xs, &*gs) else {
                bail!("conv3d (cpu) backward: tensors left the cpu")
            };
            let v = weight_grad(cpu_slice(xs, "input")?, xl, cpu_slice(gs, "gradient")?, gl, g)?;
            Tensor::from_vec(v, w.shape(), &Device::Cpu)?
        };
        Ok((gx, gw))
    }
}

impl CustomOp2 for Conv3dCpuOp {
    fn name(&self) -> &'static str {
        "lw-conv3d"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        self.forward(s1, l1, s2, l2, None)
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (gx, gw) = self.backward(x, w, grad)?;
        Ok((Some(gx), Some(gw)))
    }
}

impl CustomOp3 for Conv3dCpuOp {
    fn name(&self) -> &'static str {
        "lw-conv3d-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let b = cpu_slice(s3, "bias")?;
        let bias: Vec<f32> = (0..self.geom.cout)
            .map(|c| b[l3.start_offset() + c * l3.stride()[0]])
            .collect();
        self.forward(s1, l1, s2, l2, Some(&bias))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (gx, gw) = self.backward(x, w, grad)?;
        let gb = grad.sum((0, 2, 3, 4))?;
        Ok((Some(gx), Some(gw), Some(gb)))
    }
}
