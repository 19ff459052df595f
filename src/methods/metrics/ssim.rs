//! The SSIM engine: Gaussian-weighted local statistics by separable 1D passes, in `f64`.
//!
//! scikit-image averages the SSIM map after cropping `(win_size - 1) / 2 = radius` voxels from
//! every border. Every voxel that survives the crop has its whole filter window inside the
//! image, so the boundary mode (`reflect`) never influences the result and the filtering here
//! is a "valid" convolution: each pass only produces what the crop keeps.
//!
//! The passes are fused so that nothing larger than a few rows is ever stored. For C-order
//! data of shape `[nz, ny, nx]` (a 2D image is `nz = 1` with a one-tap filter along z), the
//! work for one output plane `z` is, row by row of the input:
//!
//! 1. **z pass**: the five fields `a, b, a², b², ab` (centred on the middle of the data range,
//!    for precision) are formed from the `2r + 1` input rows at planes `z .. z + 2r` and
//!    combined with the z weights — one row of each field, in registers;
//! 2. **x pass**: each of those five rows is filtered along x into a ring of `2r + 1` rows;
//! 3. **y pass**: once the ring is full, it is combined along y into one output row per field,
//!    which is turned into SSIM values and summed.
//!
//! Output planes (or, when there are few of them, blocks of output rows) run in parallel with
//! rayon; each task only needs its scratch rows (tens of kilobytes, in L1/L2) and reads the
//! inputs, whose `2r + 1` planes in use stay in cache as the task advances. The inner loops
//! work on fixed-width lane arrays so they vectorise; on x86-64 an AVX2+FMA or an AVX-512 build
//! of them is chosen at run time (set `LW_SSIM_NO_AVX512` to stay on AVX2).
//!
//! Every output row's SSIM sum is computed the same way whatever the split, and the row sums
//! are added in order at the end, so the result does not depend on the number of threads.

use rayon::prelude::*;

/// Fields filtered per voxel: a, b, a², b², ab.
const FIELDS: usize = 5;
/// Lane width of the SSIM sums, and of the x and y filter loops (×2 with AVX-512).
const LANES: usize = 16;
/// Lane width of the z pass (5 fields × ZLANES accumulators must fit in registers; ×2 with
/// AVX-512).
const ZLANES: usize = 4;

/// The normalised 1D Gaussian of `scipy.ndimage.gaussian_filter1d`: radius
/// `int(truncate * sigma + 0.5)`, weights `exp(-x² / 2σ²)` divided by their sum.
pub(crate) fn gaussian_kernel(sigma: f64, truncate: f64) -> Vec<f64> {
    let r = (truncate * sigma + 0.5) as usize;
    let s2 = sigma * sigma;
    let mut w: Vec<f64> = (0..=2 * r)
        .map(|i| {
            let x = i as f64 - r as f64;
            (-0.5 / s2 * x * x).exp()
        })
        .collect();
    let sum: f64 = w.iter().sum();
    for v in &mut w {
        *v /= sum;
    }
    w
}

/// What the engine needs besides the data.
pub(crate) struct Params<'a> {
    /// `[nz, ny, nx]`, C order; `nz = 1` for 2D.
    pub shape: [usize; 3],
    /// Kernel along y and x (and z when `three_d`).
    pub w: &'a [f64],
    pub three_d: bool,
    /// Subtracted from every sample before the statistics are formed (added back to means).
    pub center: f64,
    pub c1: f64,
    pub c2: f64,
}

/// Mean SSIM over the cropped map. The caller has checked sizes (every axis ≥ kernel length
/// along the filtered axes) and that `a` and `b` hold `nz·ny·nx` values.
pub(crate) fn mean_ssim(a: &[f32], b: &[f32], p: &Params) -> f64 {
    mean_ssim_impl(a, b, p, Isa::detect())
}

/// The instruction sets the inner loops are built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    /// Plain `a * b + c` (SSE2 on x86-64).
    Generic,
    /// Fused multiply-add, 4 × f64 vectors (x86-64 AVX2+FMA; aarch64 NEON).
    Fma,
    /// x86-64 AVX-512F: 8 × f64 vectors and 32 registers, so wider lane arrays.
    Avx512,
}

impl Isa {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                if std::is_x86_feature_detected!("avx512f") && std::env::var_os("LW_SSIM_NO_AVX512").is_none() {
                    return Isa::Avx512;
                }
                return Isa::Fma;
            }
            Isa::Generic
        }
        #[cfg(target_arch = "aarch64")]
        {
            Isa::Fma
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            Isa::Generic
        }
    }
}

/// Geometry and constants shared by all tasks.
struct Job<'a> {
    a: &'a [f32],
    b: &'a [f32],
    ny: usize,
    nx: usize,
    /// Kernel along x and y.
    w: &'a [f64],
    /// Kernel along z (`[1.0]` in 2D).
    wz: &'a [f64],
    center: f64,
    c1: f64,
    c2: f64,
}

fn mean_ssim_impl(a: &[f32], b: &[f32], p: &Params, isa: Isa) -> f64 {
    let [nz, ny, nx] = p.shape;
    let k = p.w.len();
    let wz: &[f64] = if p.three_d { p.w } else { &[1.0] };
    let (mz, my, mx) = (nz + 1 - wz.len(), ny + 1 - k, nx + 1 - k);
    let job = Job {
        a,
        b,
        ny,
        nx,
        w: p.w,
        wz,
        center: p.center,
        c1: p.c1,
        c2: p.c2,
    };

    // One task per output plane when there are enough of them, else blocks of rows (each
    // block re-filters the 2r rows of its halo, so blocks are kept reasonably tall).
    let threads = rayon::current_num_threads().max(1);
    let rows_per_task = if mz >= 2 * threads {
        my
    } else {
        let blocks_per_plane = (4 * threads).div_ceil(mz);
        my.div_ceil(blocks_per_plane).max((4 * (k - 1)).min(my)).max(1)
    };

    let mut row_sums = vec![0.0f64; mz * my];
    row_sums.par_chunks_mut(my).enumerate().for_each(|(z, plane)| {
        plane.par_chunks_mut(rows_per_task).enumerate().for_each_init(
            || Scratch::new(nx, mx, k),
            |s, (bi, out)| run_task(isa, &job, z, bi * rows_per_task, out, s),
        );
    });
    let total: f64 = row_sums.iter().sum();
    total / (mz * my * mx) as f64
}

/// Per-task buffers: one z-filtered row per field, the ring of x-filtered rows, one
/// y-filtered row per field, and the ring slot of each y tap.
struct Scratch {
    zrow: Vec<f64>,
    ring: Vec<f64>,
    yrow: Vec<f64>,
    taps: Vec<usize>,
}

impl Scratch {
    fn new(nx: usize, mx: usize, k: usize) -> Self {
        Self {
            zrow: vec![0.0; FIELDS * nx],
            ring: vec![0.0; k * FIELDS * mx],
            yrow: vec![0.0; FIELDS * mx],
            taps: vec![0; k],
        }
    }
}

fn run_task(isa: Isa, job: &Job, z: usize, y0: usize, out: &mut [f64], s: &mut Scratch) {
    // The default window (σ = 1.5, truncate 3.5) has 11 taps; a build with that length known
    // at compile time lets the tap loops unroll.
    match (job.w.len(), job.wz.len()) {
        (11, 11) => dispatch::<11, 11>(isa, job, z, y0, out, s),
        (11, 1) => dispatch::<11, 1>(isa, job, z, y0, out, s),
        _ => dispatch::<0, 0>(isa, job, z, y0, out, s),
    }
}

fn dispatch<const K: usize, const KZ: usize>(
    isa: Isa,
    job: &Job,
    z: usize,
    y0: usize,
    out: &mut [f64],
    s: &mut Scratch,
) {
    match isa {
        Isa::Generic => task::<false, K, KZ, LANES, ZLANES>(job, z, y0, out, s),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect` returns Fma on x86-64 only when avx2 and fma are available.
        Isa::Fma => unsafe { task_avx2::<K, KZ>(job, z, y0, out, s) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect` returns Avx512 only when avx512f, avx2 and fma are available.
        Isa::Avx512 => unsafe { task_avx512::<K, KZ>(job, z, y0, out, s) },
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Fma | Isa::Avx512 => task::<true, K, KZ, LANES, ZLANES>(job, z, y0, out, s),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn task_avx2<const K: usize, const KZ: usize>(job: &Job, z: usize, y0: usize, out: &mut [f64], s: &mut Scratch) {
    task::<true, K, KZ, LANES, ZLANES>(job, z, y0, out, s);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn task_avx512<const K: usize, const KZ: usize>(job: &Job, z: usize, y0: usize, out: &mut [f64], s: &mut Scratch) {
    task::<true, K, KZ, { 2 * LANES }, { 2 * ZLANES }>(job, z, y0, out, s);
}

/// SSIM sums of output rows `y0 .. y0 + out.len()` of output plane `z`, one per row. `K` and
/// `KZ` are the kernel lengths when known at compile time, 0 otherwise; `L` and `ZL` the lane
/// widths of the x/y and z loops.
#[inline(always)]
fn task<const FMA: bool, const K: usize, const KZ: usize, const L: usize, const ZL: usize>(
    job: &Job,
    z: usize,
    y0: usize,
    out: &mut [f64],
    s: &mut Scratch,
) {
    let w: &[f64] = if K == 0 { job.w } else { &job.w[..K] };
    let wz: &[f64] = if KZ == 0 { job.wz } else { &job.wz[..KZ] };
    let (ny, nx) = (job.ny, job.nx);
    let k = w.len();
    let mx = nx + 1 - k;
    let rows = out.len();
    debug_assert!(y0 + rows + k - 1 <= ny);
    let plane = ny * nx;
    // Input planes z .. z + kz feed this output plane.
    let a = &job.a[z * plane..(z + wz.len()) * plane];
    let b = &job.b[z * plane..(z + wz.len()) * plane];
    let taps = &mut s.taps[..k];
    for i in 0..rows + k - 1 {
        let iy = y0 + i;
        z_pass::<FMA, ZL>(a, b, plane, iy * nx, nx, wz, job.center, &mut s.zrow);
        let slot = i % k;
        for f in 0..FIELDS {
            let src = &s.zrow[f * nx..][..nx];
            let dst = &mut s.ring[(slot * FIELDS + f) * mx..][..mx];
            filter_row::<FMA, L>(src, w, dst);
        }
        if i + 1 >= k {
            // Output row j uses the x-filtered rows j .. j + k, found at ring slots (j + t) % k.
            let j = i + 1 - k;
            for (t, tap) in taps.iter_mut().enumerate() {
                *tap = ((j + t) % k) * FIELDS * mx;
            }
            for f in 0..FIELDS {
                let dst = &mut s.yrow[f * mx..][..mx];
                combine_rows::<FMA, L>(&s.ring, taps, f * mx, w, dst);
            }
            out[j] = ssim_row_sum(&s.yrow, mx, job);
        }
    }
}

#[inline(always)]
fn fmadd<const FMA: bool>(w: f64, x: f64, acc: f64) -> f64 {
    if FMA { w.mul_add(x, acc) } else { w * x + acc }
}

/// One row (offset `row` within a plane, `nx` long) of the five fields, filtered along z over
/// the `wz.len()` planes of `a`/`b` (each `plane` long), into `dst` (`[field][x]`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn z_pass<const FMA: bool, const ZLANES: usize>(
    a: &[f32],
    b: &[f32],
    plane: usize,
    row: usize,
    nx: usize,
    wz: &[f64],
    c: f64,
    dst: &mut [f64],
) {
    let (d0, rest) = dst.split_at_mut(nx);
    let (d1, rest) = rest.split_at_mut(nx);
    let (d2, rest) = rest.split_at_mut(nx);
    let (d3, d4) = rest.split_at_mut(nx);
    let d4 = &mut d4[..nx];
    let mut x = 0;
    while x + ZLANES <= nx {
        let mut acc = [[0.0f64; ZLANES]; FIELDS];
        for (t, &wt) in wz.iter().enumerate() {
            let o = t * plane + row + x;
            let ar: &[f32; ZLANES] = a[o..o + ZLANES].try_into().unwrap();
            let br: &[f32; ZLANES] = b[o..o + ZLANES].try_into().unwrap();
            for l in 0..ZLANES {
                let p = f64::from(ar[l]) - c;
                let q = f64::from(br[l]) - c;
                let (wp, wq) = (wt * p, wt * q);
                acc[0][l] += wp;
                acc[1][l] += wq;
                acc[2][l] = fmadd::<FMA>(wp, p, acc[2][l]);
                acc[3][l] = fmadd::<FMA>(wq, q, acc[3][l]);
                acc[4][l] = fmadd::<FMA>(wp, q, acc[4][l]);
            }
        }
        d0[x..x + ZLANES].copy_from_slice(&acc[0]);
        d1[x..x + ZLANES].copy_from_slice(&acc[1]);
        d2[x..x + ZLANES].copy_from_slice(&acc[2]);
        d3[x..x + ZLANES].copy_from_slice(&acc[3]);
        d4[x..x + ZLANES].copy_from_slice(&acc[4]);
        x += ZLANES;
    }
    for xi in x..nx {
        let mut acc = [0.0f64; FIELDS];
        for (t, &wt) in wz.iter().enumerate() {
            let o = t * plane + row + xi;
            let p = f64::from(a[o]) - c;
            let q = f64::from(b[o]) - c;
            let (wp, wq) = (wt * p, wt * q);
            acc[0] += wp;
            acc[1] += wq;
            acc[2] = fmadd::<FMA>(wp, p, acc[2]);
            acc[3] = fmadd::<FMA>(wq, q, acc[3]);
            acc[4] = fmadd::<FMA>(wp, q, acc[4]);
        }
        d0[xi] = acc[0];
        d1[xi] = acc[1];
        d2[xi] = acc[2];
        d3[xi] = acc[3];
        d4[xi] = acc[4];
    }
}

/// Valid 1D correlation along a row: `dst[x] = Σ_t w[t] src[x + t]`.
#[inline(always)]
fn filter_row<const FMA: bool, const LANES: usize>(src: &[f64], w: &[f64], dst: &mut [f64]) {
    let n = dst.len();
    let src = &src[..n + w.len() - 1];
    if n < LANES {
        for (xi, d) in dst.iter_mut().enumerate() {
            let mut acc = 0.0;
            for (t, &wt) in w.iter().enumerate() {
                acc = fmadd::<FMA>(wt, src[xi + t], acc);
            }
            *d = acc;
        }
        return;
    }
    // Whole chunks, the last one overlapping the one before (it recomputes the same values).
    let mut x = 0;
    loop {
        let mut acc = [0.0f64; LANES];
        for (t, &wt) in w.iter().enumerate() {
            let s: &[f64; LANES] = src[x + t..x + t + LANES].try_into().unwrap();
            for l in 0..LANES {
                acc[l] = fmadd::<FMA>(wt, s[l], acc[l]);
            }
        }
        dst[x..x + LANES].copy_from_slice(&acc);
        if x + LANES == n {
            break;
        }
        x = (x + LANES).min(n - LANES);
    }
}

/// Weighted sum of rows of `src`: `dst[x] = Σ_t w[t] src[taps[t] + offset + x]`.
#[inline(always)]
fn combine_rows<const FMA: bool, const LANES: usize>(
    src: &[f64],
    taps: &[usize],
    offset: usize,
    w: &[f64],
    dst: &mut [f64],
) {
    let n = dst.len();
    let taps = &taps[..w.len()];
    if n < LANES {
        for (xi, d) in dst.iter_mut().enumerate() {
            let mut acc = 0.0;
            for (&tap, &wt) in taps.iter().zip(w) {
                acc = fmadd::<FMA>(wt, src[tap + offset + xi], acc);
            }
            *d = acc;
        }
        return;
    }
    let mut x = 0;
    loop {
        let mut acc = [0.0f64; LANES];
        for (t, &wt) in w.iter().enumerate() {
            let o = taps[t] + offset + x;
            let s: &[f64; LANES] = src[o..o + LANES].try_into().unwrap();
            for l in 0..LANES {
                acc[l] = fmadd::<FMA>(wt, s[l], acc[l]);
            }
        }
        dst[x..x + LANES].copy_from_slice(&acc);
        if x + LANES == n {
            break;
        }
        x = (x + LANES).min(n - LANES);
    }
}

/// Sum of the SSIM values of one row of filtered fields (`f` is `[field][x]`, `mx` long).
#[inline(always)]
fn ssim_row_sum(f: &[f64], mx: usize, job: &Job) -> f64 {
    let (ma, rest) = f.split_at(mx);
    let (mb, rest) = rest.split_at(mx);
    let (maa, rest) = rest.split_at(mx);
    let (mbb, mab) = rest.split_at(mx);
    let mab = &mab[..mx];
    let k = (job.center, job.c1, job.c2);
    let mut acc = [0.0f64; LANES];
    let mut x = 0;
    while x + LANES <= mx {
        for (l, a) in acc.iter_mut().enumerate() {
            let i = x + l;
            *a += ssim_at(ma[i], mb[i], maa[i], mbb[i], mab[i], k);
        }
        x += LANES;
    }
    for (l, i) in (x..mx).enumerate() {
        acc[l] += ssim_at(ma[i], mb[i], maa[i], mbb[i], mab[i], k);
    }
    acc.iter().sum()
}

/// SSIM from the centred local means `pa`, `pb` and the local `E[a²]`, `E[b²]`, `E[ab]` of
/// the centred data; `k = (centre, C1, C2)`.
#[inline(always)]
fn ssim_at(pa: f64, pb: f64, paa: f64, pbb: f64, pab: f64, k: (f64, f64, f64)) -> f64 {
    let (c, c1, c2) = k;
    let (ux, uy) = (pa + c, pb + c);
    let vx = paa - pa * pa;
    let vy = pbb - pb * pb;
    let vxy = pab - pa * pb;
    let a1 = 2.0 * ux * uy + c1;
    let a2 = 2.0 * vxy + c2;
    let b1 = ux * ux + uy * uy + c1;
    let b2 = vx + vy + c2;
    (a1 * a2) / (b1 * b2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every instruction-set build this machine can run gives the same value as the generic one.
    #[test]
    fn builds_agree() {
        let mut isas = vec![Isa::Generic];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                isas.push(Isa::Fma);
                if std::is_x86_feature_detected!("avx512f") {
                    isas.push(Isa::Avx512);
                }
            }
        }
        #[cfg(target_arch = "aarch64")]
        isas.push(Isa::Fma);
        let mut seed = 5u64;
        let mut noise = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((seed >> 40) as f32) / (1u64 << 24) as f32
                })
                .collect()
        };
        // 2D and 3D, default window and a 7-tap one, rows shorter and longer than the lanes.
        for (shape, three_d, sigma) in [
            ([1, 40, 75], false, 1.5),
            ([13, 17, 48], true, 1.5),
            ([12, 14, 13], true, 1.5),
            ([9, 30, 70], true, 1.0),
        ] {
            let n = shape.iter().product();
            let a = noise(n);
            let b: Vec<f32> = a.iter().zip(noise(n)).map(|(x, y)| x + 0.4 * y).collect();
            let w = gaussian_kernel(sigma, 3.5);
            let p = Params {
                shape,
                w: &w,
                three_d,
                center: 0.6,
                c1: 1e-4,
                c2: 9e-4,
            };
            let base = mean_ssim_impl(&a, &b, &p, Isa::Generic);
            for &isa in &isas[1..] {
                let v = mean_ssim_impl(&a, &b, &p, isa);
                assert!((v - base).abs() < 1e-12, "{isa:?} {shape:?}: {v} vs {base}");
            }
        }
    }
}
