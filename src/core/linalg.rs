//! Dense linear algebra candle lacks: thin SVD, orthogonal Procrustes, least squares and a
//! blocked, threaded matrix product, on row-major `f32`/`f64` matrices.
//!
//! The decompositions and products are faer's (maintained, pure Rust, and it shares candle's
//! `gemm` crate); this module only adapts layouts and names the results. Inputs are checked:
//! a shape mismatch or a non-finite value is an error, never a panic.

use faer::linalg::matmul::matmul as faer_matmul;
use faer::{Accum, MatMut, MatRef, Par};
use thiserror::Error;

/// What went wrong in a decomposition or product.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum LinalgError {
    #[error("{op}: shapes {a:?} and {b:?} do not agree")]
    ShapeMismatch {
        op: &'static str,
        a: (usize, usize),
        b: (usize, usize),
    },
    #[error("matrix buffer holds {len} values but the shape {rows}×{cols} needs {needed}")]
    BadBuffer {
        rows: usize,
        cols: usize,
        len: usize,
        needed: usize,
    },
    #[error("{op}: the input holds a non-finite value (NaN or infinity)")]
    NonFinite { op: &'static str },
    #[error("{op}: the input is empty ({rows}×{cols})")]
    Empty { op: &'static str, rows: usize, cols: usize },
    #[error("SVD did not converge")]
    NoConvergence,
}

/// The element types this module works in.
pub trait Real: faer::traits::RealField + Copy + Send + Sync + std::fmt::Debug + 'static {
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    /// Machine epsilon, for rank cut-offs.
    const EPSILON: Self;
}

impl Real for f32 {
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    const EPSILON: Self = f32::EPSILON;
}

impl Real for f64 {
    fn from_f64(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
    const EPSILON: Self = f64::EPSILON;
}

/// A dense row-major matrix: element `(i, j)` is `data[i * cols + j]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix<T> {
    rows: usize,
    cols: usize,
    data: Vec<T>,
}

impl<T: Real> Matrix<T> {
    /// Wraps a row-major buffer, checking its length.
    pub fn new(rows: usize, cols: usize, data: Vec<T>) -> Result<Self, LinalgError> {
        let needed = rows * cols;
        if data.len() != needed {
            return Err(LinalgError::BadBuffer {
                rows,
                cols,
                len: data.len(),
                needed,
            });
        }
        Ok(Self { rows, cols, data })
    }

    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![T::from_f64(0.0); rows * cols],
        }
    }

    pub fn identity(n: usize) -> Self {
        let mut m = Self::zeros(n, n);
        for i in 0..n {
            m.data[i * n + i] = T::from_f64(1.0);
        }
        m
    }

    pub fn from_fn(rows: usize, cols: usize, f: impl Fn(usize, usize) -> T) -> Self {
        let data = (0..rows * cols).map(|k| f(k / cols, k % cols)).collect();
        Self { rows, cols, data }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
    pub fn data(&self) -> &[T] {
        &self.data
    }
    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }
    pub fn into_data(self) -> Vec<T> {
        self.data
    }
    pub fn get(&self, i: usize, j: usize) -> T {
        self.data[i * self.cols + j]
    }
    pub fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    pub fn transpose(&self) -> Self {
        Self::from_fn(self.cols, self.rows, |i, j| self.get(j, i))
    }

    /// Frobenius norm, accumulated in `f64`.
    pub fn frobenius_norm(&self) -> f64 {
        self.data.iter().map(|&x| x.to_f64() * x.to_f64()).sum::<f64>().sqrt()
    }

    fn as_faer(&self) -> MatRef<'_, T> {
        MatRef::from_row_major_slice(&self.data, self.rows, self.cols)
    }

    fn from_faer(m: MatRef<'_, T>) -> Self {
        Self::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)])
    }

    fn check_finite(&self, op: &'static str) -> Result<(), LinalgError> {
        if self.data.iter().all(|x| x.to_f64().is_finite()) {
            Ok(())
        } else {
            Err(LinalgError::NonFinite { op })
        }
    }

    fn check_nonempty(&self, op: &'static str) -> Result<(), LinalgError> {
        if self.rows == 0 || self.cols == 0 {
            Err(LinalgError::Empty {
                op,
                rows: self.rows,
                cols: self.cols,
            })
        } else {
            Ok(())
        }
    }
}

/// Which operand of a product is used transposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transpose {
    No,
    Yes,
}

/// `out = op(a) · op(b)` on row-major slices, with faer's blocked, SIMD gemm; `threads` 0 means
/// rayon's pool, 1 means this thread only (use 1 inside an outer parallel loop).
///
/// `a` is `a_rows × a_cols` as stored (before `ta`), likewise `b`; `out` is row-major and is
/// overwritten.
#[expect(
    clippy::too_many_arguments,
    reason = "a gemm signature: two operands with shapes and flags, output"
)]
pub fn gemm<T: Real>(
    a: &[T],
    a_shape: (usize, usize),
    ta: Transpose,
    b: &[T],
    b_shape: (usize, usize),
    tb: Transpose,
    out: &mut [T],
    threads: usize,
) -> Result<(), LinalgError> {
    for (buf, (r, c)) in [(a, a_shape), (b, b_shape)] {
        if buf.len() != r * c {
            return Err(LinalgError::BadBuffer {
                rows: r,
                cols: c,
                len: buf.len(),
                needed: r * c,
            });
        }
    }
    let a = MatRef::from_row_major_slice(a, a_shape.0, a_shape.1);
    let b = MatRef::from_row_major_slice(b, b_shape.0, b_shape.1);
    let a = if ta == Transpose::Yes { a.transpose() } else { a };
    let b = if tb == Transpose::Yes { b.transpose() } else { b };
    if a.ncols() != b.nrows() {
        return Err(LinalgError::ShapeMismatch {
            op: "matmul",
            a: (a.nrows(), a.ncols()),
            b: (b.nrows(), b.ncols()),
        });
    }
    let needed = a.nrows() * b.ncols();
    if out.len() != needed {
        return Err(LinalgError::BadBuffer {
            rows: a.nrows(),
            cols: b.ncols(),
            len: out.len(),
            needed,
        });
    }
    let (m, n) = (a.nrows(), b.ncols());
    let dst = MatMut::from_row_major_slice_mut(out, m, n);
    let par = if threads == 1 { Par::Seq } else { Par::rayon(threads) };
    faer_matmul(dst, Accum::Replace, a, b, T::from_f64(1.0), par);
    Ok(())
}

/// `a · b` (threaded).
pub fn matmul<T: Real>(a: &Matrix<T>, b: &Matrix<T>) -> Result<Matrix<T>, LinalgError> {
    let mut out = Matrix::zeros(a.rows, b.cols);
    if a.cols != b.rows {
        return Err(LinalgError::ShapeMismatch {
            op: "matmul",
            a: a.shape(),
            b: b.shape(),
        });
    }
    gemm(
        &a.data,
        a.shape(),
        Transpose::No,
        &b.data,
        b.shape(),
        Transpose::No,
        &mut out.data,
        0,
    )?;
    Ok(out)
}

/// `aᵀ · b` (threaded), e.g. a cross-covariance.
pub fn matmul_tn<T: Real>(a: &Matrix<T>, b: &Matrix<T>) -> Result<Matrix<T>, LinalgError> {
    if a.rows != b.rows {
        return Err(LinalgError::ShapeMismatch {
            op: "matmul aᵀ·b",
            a: a.shape(),
            b: b.shape(),
        });
    }
    let mut out = Matrix::zeros(a.cols, b.cols);
    gemm(
        &a.data,
        a.shape(),
        Transpose::Yes,
        &b.data,
        b.shape(),
        Transpose::No,
        &mut out.data,
        0,
    )?;
    Ok(out)
}

/// The thin SVD `a = u · diag(s) · vᵀ`: with `r = min(m, n)`, `u` is `m × r`, `v` is `n × r`,
/// both with orthonormal columns; `s` is non-negative and non-increasing.
#[derive(Debug, Clone)]
pub struct ThinSvd<T> {
    pub u: Matrix<T>,
    pub s: Vec<T>,
    pub v: Matrix<T>,
}

pub fn thin_svd<T: Real>(a: &Matrix<T>) -> Result<ThinSvd<T>, LinalgError> {
    a.check_nonempty("svd")?;
    a.check_finite("svd")?;
    let svd = a.as_faer().thin_svd().map_err(|_| LinalgError::NoConvergence)?;
    let s = svd.S().column_vector();
    Ok(ThinSvd {
        u: Matrix::from_faer(svd.U()),
        s: (0..s.nrows()).map(|i| s[i]).collect(),
        v: Matrix::from_faer(svd.V()),
    })
}

/// The orthogonal Procrustes solution `argmin_R ‖s·a·R − b‖_F` over orthogonal `R`
/// (reflections allowed), with `s = 1` or, when scaling, the optimal isotropic scale.
#[derive(Debug, Clone)]
pub struct Procrustes<T> {
    /// `d × d`, orthogonal.
    pub rotation: Matrix<T>,
    /// The isotropic scale applied to `a` (1 when scaling was not asked for).
    pub scale: f64,
    /// `‖s·a·R − b‖_F`.
    pub residual: f64,
    /// `residual / ‖b‖_F` (0 when `b` is zero and the fit is exact).
    pub relative_residual: f64,
}

/// Fits `R = U Vᵀ` from the SVD `aᵀ b = U Σ Vᵀ` (Schönemann 1966); with `scaling`, `s = tr Σ /
/// ‖a‖²_F`. Both inputs are `n × d` with rows in correspondence; centre them first if the spaces
/// may be translated (this function does not).
pub fn procrustes<T: Real>(a: &Matrix<T>, b: &Matrix<T>, scaling: bool) -> Result<Procrustes<T>, LinalgError> {
    if a.shape() != b.shape() {
        return Err(LinalgError::ShapeMismatch {
            op: "procrustes",
            a: a.shape(),
            b: b.shape(),
        });
    }
    let cross = matmul_tn(a, b)?;
    let svd = thin_svd(&cross)?;
    let rotation = matmul(&svd.u, &svd.v.transpose())?;
    let scale = if scaling {
        let a_norm2 = a.frobenius_norm().powi(2);
        if a_norm2 > 0.0 {
            svd.s.iter().map(|x| x.to_f64()).sum::<f64>() / a_norm2
        } else {
            1.0
        }
    } else {
        1.0
    };
    let mapped = matmul(a, &rotation)?;
    let residual = mapped
        .data
        .iter()
        .zip(&b.data)
        .map(|(&x, &y)| (scale * x.to_f64() - y.to_f64()).powi(2))
        .sum::<f64>()
        .sqrt();
    let b_norm = b.frobenius_norm();
    let relative_residual = if b_norm > 0.0 { residual / b_norm } else { residual };
    Ok(Procrustes {
        rotation,
        scale,
        residual,
        relative_residual,
    })
}

/// The minimum-norm least-squares solution `x = argmin ‖a·x − b‖_F` (`a`: `m × n`, `b`: `m × k`,
/// `x`: `n × k`), by SVD with singular values below `rcond · s_max` treated as zero, like
/// numpy's `lstsq` (default `rcond`: machine epsilon × max(m, n)). Works for over- and
/// under-determined and rank-deficient systems.
pub fn lstsq<T: Real>(a: &Matrix<T>, b: &Matrix<T>, rcond: Option<f64>) -> Result<Matrix<T>, LinalgError> {
    if a.rows != b.rows {
        return Err(LinalgError::ShapeMismatch {
            op: "lstsq",
            a: a.shape(),
            b: b.shape(),
        });
    }
    b.check_finite("lstsq")?;
    let svd = thin_svd(a)?;
    let rcond = rcond.unwrap_or(T::EPSILON.to_f64() * a.rows.max(a.cols) as f64);
    let s_max = svd.s.first().map_or(0.0, |s| s.to_f64());
    let cutoff = rcond * s_max;
    // x = V · diag(1/s) · Uᵀ b, skipping the directions the cut-off drops.
    let mut utb = matmul_tn(&svd.u, b)?;
    for (i, s) in svd.s.iter().enumerate() {
        let s = s.to_f64();
        let inv = if s > cutoff && s > 0.0 { 1.0 / s } else { 0.0 };
        for v in &mut utb.data[i * b.cols..(i + 1) * b.cols] {
            *v = T::from_f64(v.to_f64() * inv);
        }
    }
    matmul(&svd.v, &utb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::diffusion::Rng;

    fn random(rows: usize, cols: usize, rng: &mut Rng) -> Matrix<f64> {
        Matrix::from_fn(rows, cols, |_, _| 0.0).map_in_place(|_| rng.normal())
    }

    impl Matrix<f64> {
        fn map_in_place(mut self, mut f: impl FnMut(f64) -> f64) -> Self {
            for v in &mut self.data {
                *v = f(*v);
            }
            self
        }
    }

    /// A random orthogonal matrix: Q of a Gaussian matrix's SVD (U·Vᵀ is orthogonal).
    fn random_orthogonal(n: usize, rng: &mut Rng) -> Matrix<f64> {
        let g = random(n, n, rng);
        let svd = thin_svd(&g).unwrap();
        matmul(&svd.u, &svd.v.transpose()).unwrap()
    }

    fn max_abs_diff(a: &Matrix<f64>, b: &Matrix<f64>) -> f64 {
        a.data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn svd_reconstructs_and_is_orthonormal() {
        let mut rng = Rng::new(1);
        for (m, n) in [(7, 4), (4, 7), (5, 5)] {
            let a = random(m, n, &mut rng);
            let svd = thin_svd(&a).unwrap();
            let r = m.min(n);
            assert_eq!(svd.u.shape(), (m, r));
            assert_eq!(svd.v.shape(), (n, r));
            assert!(svd.s.windows(2).all(|w| w[0] >= w[1]));
            let us = Matrix::from_fn(m, r, |i, j| svd.u.get(i, j) * svd.s[j]);
            let back = matmul(&us, &svd.v.transpose()).unwrap();
            assert!(max_abs_diff(&back, &a) < 1e-12);
            let utu = matmul_tn(&svd.u, &svd.u).unwrap();
            assert!(max_abs_diff(&utu, &Matrix::identity(r)) < 1e-12);
        }
    }

    #[test]
    fn svd_known_singular_values() {
        // diag(3, 2) embedded in a 3×2 matrix with a sign flip.
        let a = Matrix::<f64>::new(3, 2, vec![0.0, -2.0, 3.0, 0.0, 0.0, 0.0]).unwrap();
        let svd = thin_svd(&a).unwrap();
        assert!((svd.s[0] - 3.0).abs() < 1e-14 && (svd.s[1] - 2.0).abs() < 1e-14);
    }

    #[test]
    fn procrustes_recovers_a_random_orthogonal_map() {
        let mut rng = Rng::new(7);
        let a = random(200, 16, &mut rng);
        let q = random_orthogonal(16, &mut rng);
        let b = matmul(&a, &q).unwrap().map_in_place(|x| 2.5 * x);
        let fit = procrustes(&a, &b, true).unwrap();
        assert!(max_abs_diff(&fit.rotation, &q) < 1e-6, "rotation not recovered");
        assert!((fit.scale - 2.5).abs() < 1e-6);
        assert!(fit.relative_residual < 1e-6);
        let unscaled = procrustes(&a, &b, false).unwrap();
        assert!(max_abs_diff(&unscaled.rotation, &q) < 1e-6);
        assert_eq!(unscaled.scale, 1.0);
        assert!(unscaled.relative_residual > 0.5, "without scaling the 2.5× gap remains");
    }

    #[test]
    fn procrustes_in_f32() {
        let mut rng = Rng::new(3);
        let a = random(100, 8, &mut rng);
        let q = random_orthogonal(8, &mut rng);
        let b = matmul(&a, &q).unwrap();
        let a32 = Matrix::new(100, 8, a.data.iter().map(|&x| x as f32).collect()).unwrap();
        let b32 = Matrix::new(100, 8, b.data.iter().map(|&x| x as f32).collect()).unwrap();
        let fit = procrustes(&a32, &b32, false).unwrap();
        let err = fit
            .rotation
            .data
            .iter()
            .zip(&q.data)
            .map(|(&x, &y)| (f64::from(x) - y).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-5, "{err}");
    }

    #[test]
    fn lstsq_matches_known_answers() {
        let mut rng = Rng::new(11);
        // Overdetermined, consistent: recovers x exactly.
        let a = random(30, 5, &mut rng);
        let x = random(5, 2, &mut rng);
        let b = matmul(&a, &x).unwrap();
        assert!(max_abs_diff(&lstsq(&a, &b, None).unwrap(), &x) < 1e-10);
        // Line fit y = 2t + 1 through noisy-free points with a constant column.
        let a = Matrix::from_fn(4, 2, |i, j| if j == 0 { i as f64 } else { 1.0 });
        let b = Matrix::new(4, 1, vec![1.0, 3.0, 5.0, 7.0]).unwrap();
        let sol = lstsq(&a, &b, None).unwrap();
        assert!((sol.get(0, 0) - 2.0).abs() < 1e-12 && (sol.get(1, 0) - 1.0).abs() < 1e-12);
        // Rank-deficient (two equal columns): the minimum-norm answer splits the weight.
        let a = Matrix::from_fn(3, 2, |i, _| i as f64 + 1.0);
        let b = Matrix::new(3, 1, vec![2.0, 4.0, 6.0]).unwrap();
        let sol = lstsq(&a, &b, None).unwrap();
        assert!((sol.get(0, 0) - 1.0).abs() < 1e-10 && (sol.get(1, 0) - 1.0).abs() < 1e-10);
        // Underdetermined: the minimum-norm solution of x0 + x1 = 2 is (1, 1).
        let a = Matrix::<f64>::new(1, 2, vec![1.0, 1.0]).unwrap();
        let b = Matrix::new(1, 1, vec![2.0]).unwrap();
        let sol = lstsq(&a, &b, None).unwrap();
        assert!((sol.get(0, 0) - 1.0).abs() < 1e-12 && (sol.get(1, 0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn bad_input_is_an_error() {
        let a = Matrix::<f64>::zeros(3, 2);
        let b = Matrix::<f64>::zeros(2, 2);
        assert!(matches!(
            procrustes(&a, &b, false),
            Err(LinalgError::ShapeMismatch { .. })
        ));
        assert!(matches!(lstsq(&a, &b, None), Err(LinalgError::ShapeMismatch { .. })));
        assert!(matches!(
            Matrix::new(2, 2, vec![0.0f32; 3]),
            Err(LinalgError::BadBuffer { .. })
        ));
        let nan = Matrix::new(1, 1, vec![f64::NAN]).unwrap();
        assert!(matches!(thin_svd(&nan), Err(LinalgError::NonFinite { .. })));
        assert!(matches!(
            thin_svd(&Matrix::<f64>::zeros(0, 3)),
            Err(LinalgError::Empty { .. })
        ));
    }

    #[test]
    fn gemm_transposes() {
        let a = Matrix::new(2, 3, vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let mut out = vec![0.0f32; 4];
        gemm(
            &a.data,
            (2, 3),
            Transpose::No,
            &a.data,
            (2, 3),
            Transpose::Yes,
            &mut out,
            1,
        )
        .unwrap();
        assert_eq!(out, vec![14.0, 32.0, 32.0, 77.0]);
        let mut out = vec![0.0f32; 9];
        gemm(
            &a.data,
            (2, 3),
            Transpose::Yes,
            &a.data,
            (2, 3),
            Transpose::No,
            &mut out,
            0,
        )
        .unwrap();
        assert_eq!(out[0], 17.0);
        assert_eq!(out[4], 29.0);
    }
}
