//! Stage 1 of ArmoRM: one ridge regression per attribute, without intercept.
//!
//! For each attribute the rows whose label is missing (NaN) are dropped, the rest are split
//! 80/20 with a seed ([`split`]), a ridge regression `min ‖Xw − y‖² + α‖w‖²` is fitted on
//! the 80% for every α of [`ALPHAS`], the α with the lowest mean squared error on the 20% is
//! kept, and the probe is refitted with it on all of the attribute's labelled rows (the
//! held-out figures, MSE and R², are those of the 80% fit, so they stay held-out).
//!
//! The solve is scikit-learn's `Ridge(fit_intercept=False)` with its `cholesky` solver (what
//! `solver="auto"` picks for dense input): the normal equations `(XᵀX + αI) w = Xᵀy` when
//! there are at least as many rows as features, the kernel form `w = Xᵀ(XXᵀ + αI)⁻¹ y`
//! otherwise, both by a Cholesky factorisation in f64. `trainer/tests/armo_reference.rs`
//! pins the coefficients, the validation errors and R² to scikit-learn.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::error::{Error, Result};

/// ArmoRM's α grid: 10⁻⁴ … 10⁴, one per decade.
pub const ALPHAS: [f64; 9] = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3, 1e4];

/// Share of the labelled rows held out to choose α.
pub const VAL_FRACTION: f64 = 0.2;

/// A dense row-major f64 matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// `rows · cols` values, row by row.
    pub data: Vec<f64>,
}

impl Matrix {
    /// A matrix over `data` (row-major); the length must be `rows · cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Result<Self> {
        if data.len() != rows * cols {
            return Err(Error::InvalidArgument(format!(
                "matrix of {rows}×{cols} given {} values",
                data.len()
            )));
        }
        Ok(Self { rows, cols, data })
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The rows `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Self {
        let mut data = Vec::with_capacity(idx.len() * self.cols);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Self {
            rows: idx.len(),
            cols: self.cols,
            data,
        }
    }

    /// The transpose.
    pub fn t(&self) -> Self {
        let mut data = vec![0.0; self.data.len()];
        for i in 0..self.rows {
            for j in 0..self.cols {
                data[j * self.rows + i] = self.data[i * self.cols + j];
            }
        }
        Self {
            rows: self.cols,
            cols: self.rows,
            data,
        }
    }

    /// `self · v`.
    pub fn matvec(&self, v: &[f64]) -> Vec<f64> {
        (0..self.rows)
            .into_par_iter()
            .map(|i| dot(self.row(i), v))
            .collect()
    }

    /// The Gram matrix of the rows, `self · selfᵀ` (rows × rows).
    fn gram_of_rows(&self) -> Self {
        let n = self.rows;
        let upper: Vec<Vec<f64>> = (0..n)
            .into_par_iter()
            .map(|i| (i..n).map(|j| dot(self.row(i), self.row(j))).collect())
            .collect();
        let mut data = vec![0.0; n * n];
        for (i, row) in upper.iter().enumerate() {
            for (k, &v) in row.iter().enumerate() {
                data[i * n + i + k] = v;
                data[(i + k) * n + i] = v;
            }
        }
        Self {
            rows: n,
            cols: n,
            data,
        }
    }
}

/// The dot product, with four partial sums (vectorisable, and less rounding than one).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut s = [0.0f64; 4];
    let chunks = a.len() / 4;
    for c in 0..chunks {
        for k in 0..4 {
            s[k] += a[4 * c + k] * b[4 * c + k];
        }
    }
    let mut tail = 0.0;
    for i in 4 * chunks..a.len() {
        tail += a[i] * b[i];
    }
    (s[0] + s[1]) + (s[2] + s[3]) + tail
}

/// Solves `(G + αI) z = b` for symmetric positive semi-definite `G` by Cholesky; `None`
/// when the shifted matrix is not numerically positive definite.
fn solve_shifted(g: &Matrix, alpha: f64, b: &[f64]) -> Option<Vec<f64>> {
    let n = g.rows;
    let mut l = g.data.clone();
    for i in 0..n {
        l[i * n + i] += alpha;
    }
    // In-place lower Cholesky factor, row by row.
    for i in 0..n {
        for j in 0..=i {
            let s = l[i * n + j] - dot(&l[i * n..i * n + j], &l[j * n..j * n + j]);
            if i == j {
                if !(s > 0.0 && s.is_finite()) {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    // L y = b, then Lᵀ z = y.
    let mut y = b.to_vec();
    for i in 0..n {
        y[i] = (y[i] - dot(&l[i * n..i * n + i], &y[..i])) / l[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = y[i];
        for k in i + 1..n {
            s -= l[k * n + i] * y[k];
        }
        y[i] = s / l[i * n + i];
    }
    Some(y)
}

/// A ridge solver for one design matrix: its Gram matrix is formed once and shared by every
/// α of a grid.
pub struct Ridge<'a> {
    x: &'a Matrix,
    /// `XᵀX` (primal, rows ≥ columns) or `XXᵀ` (kernel form).
    gram: Matrix,
    /// `Xᵀy` (primal) or `y` (kernel form).
    rhs: Vec<f64>,
    primal: bool,
}

impl<'a> Ridge<'a> {
    /// Prepares `min ‖Xw − y‖² + α‖w‖²` for `x` and targets `y`.
    pub fn new(x: &'a Matrix, y: &[f64]) -> Result<Self> {
        if y.len() != x.rows || x.rows == 0 {
            return Err(Error::InvalidArgument(format!(
                "ridge: {} rows and {} targets",
                x.rows,
                y.len()
            )));
        }
        let primal = x.cols <= x.rows;
        let (gram, rhs) = if primal {
            let xt = x.t();
            (xt.gram_of_rows(), xt.matvec(y))
        } else {
            (x.gram_of_rows(), y.to_vec())
        };
        Ok(Self {
            x,
            gram,
            rhs,
            primal,
        })
    }

    /// The coefficients for `alpha`; `None` when the system is numerically singular.
    pub fn solve(&self, alpha: f64) -> Option<Vec<f64>> {
        let z = solve_shifted(&self.gram, alpha, &self.rhs)?;
        Some(if self.primal {
            z
        } else {
            let mut w = vec![0.0; self.x.cols];
            for (i, zi) in z.iter().enumerate() {
                for (wj, xij) in w.iter_mut().zip(self.x.row(i)) {
                    *wj += xij * zi;
                }
            }
            w
        })
    }
}

/// Mean squared error of `x · w` against `y`.
pub fn mse(x: &Matrix, w: &[f64], y: &[f64]) -> f64 {
    let p = x.matvec(w);
    p.iter().zip(y).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / y.len().max(1) as f64
}

/// The coefficient of determination of `x · w` for `y` (scikit-learn's `r2_score`: 1 −
/// SS_res / SS_tot; 0 when `y` is constant and the fit is not exact, 1 when it is).
pub fn r2(x: &Matrix, w: &[f64], y: &[f64]) -> f64 {
    let p = x.matvec(w);
    let mean = y.iter().sum::<f64>() / y.len().max(1) as f64;
    let res: f64 = p.iter().zip(y).map(|(a, b)| (a - b).powi(2)).sum();
    let tot: f64 = y.iter().map(|b| (b - mean).powi(2)).sum();
    if tot == 0.0 {
        return if res == 0.0 { 1.0 } else { 0.0 };
    }
    1.0 - res / tot
}

/// A seeded split of `0..n` into (train, validation): a shuffled order, the first
/// ⌈`VAL_FRACTION`·n⌉ for validation (scikit-learn's `train_test_split` sizes), each part
/// sorted.
pub fn split(n: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let n_val = ((n as f64) * VAL_FRACTION).ceil() as usize;
    let mut val = order[..n_val.min(n)].to_vec();
    let mut train = order[n_val.min(n)..].to_vec();
    val.sort_unstable();
    train.sort_unstable();
    (train, val)
}

/// One attribute's probe.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeFit {
    /// The α chosen.
    pub alpha: f64,
    /// Validation MSE for each α of the grid (`inf` where the system was singular).
    pub val_mse: Vec<f64>,
    /// Validation R² of the training-split fit at the chosen α.
    pub val_r2: f64,
    /// Labelled training rows.
    pub n_train: usize,
    /// Labelled validation rows.
    pub n_val: usize,
    /// The coefficients refitted on all labelled rows with the chosen α (`d` values).
    pub weight: Vec<f64>,
}

/// Fits one probe on a given split: rows of `train` / `val` whose label `y` is NaN are
/// dropped, each α of `alphas` is fitted on the training rows and scored on the validation
/// rows, the best (the first of equals) is refitted on both. `what` names the attribute in
/// errors.
pub fn fit_on_split(
    x: &Matrix,
    y: &[f64],
    train: &[usize],
    val: &[usize],
    alphas: &[f64],
    what: &str,
) -> Result<ProbeFit> {
    let labelled = |idx: &[usize]| -> Vec<usize> {
        idx.iter().copied().filter(|&i| y[i].is_finite()).collect()
    };
    let (train, val) = (labelled(train), labelled(val));
    if train.is_empty() || val.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "attribute `{what}`: {} labelled training and {} validation rows; a probe needs \
             at least one of each",
            train.len(),
            val.len()
        )));
    }
    let ys = |idx: &[usize]| -> Vec<f64> { idx.iter().map(|&i| y[i]).collect() };
    let (xt, yt) = (x.select(&train), ys(&train));
    let (xv, yv) = (x.select(&val), ys(&val));
    let ridge = Ridge::new(&xt, &yt)?;
    let fits: Vec<Option<Vec<f64>>> = alphas.iter().map(|&a| ridge.solve(a)).collect();
    let val_mse: Vec<f64> = fits
        .iter()
        .map(|w| w.as_ref().map_or(f64::INFINITY, |w| mse(&xv, w, &yv)))
        .collect();
    let best = (0..alphas.len())
        .filter(|&i| val_mse[i].is_finite())
        .min_by(|&a, &b| val_mse[a].total_cmp(&val_mse[b]).then(a.cmp(&b)))
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "attribute `{what}`: every α gives a singular system"
            ))
        })?;
    let alpha = alphas[best];
    let val_r2 = r2(&xv, fits[best].as_deref().unwrap_or_default(), &yv);
    let all: Vec<usize> = {
        let mut a = [train.clone(), val.clone()].concat();
        a.sort_unstable();
        a
    };
    let xa = x.select(&all);
    let weight = Ridge::new(&xa, &ys(&all))?.solve(alpha).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "attribute `{what}`: the refit on all labelled rows is singular at α = {alpha}"
        ))
    })?;
    Ok(ProbeFit {
        alpha,
        val_mse,
        val_r2,
        n_train: train.len(),
        n_val: val.len(),
        weight,
    })
}

/// Fits one probe as ArmoRM does: the labelled rows of `y` split by [`split`] with `seed`,
/// then [`fit_on_split`] over [`ALPHAS`].
pub fn fit(x: &Matrix, y: &[f64], seed: u64, what: &str) -> Result<ProbeFit> {
    let labelled: Vec<usize> = (0..y.len()).filter(|&i| y[i].is_finite()).collect();
    let (tr, va) = split(labelled.len(), seed);
    let pick = |idx: Vec<usize>| -> Vec<usize> { idx.into_iter().map(|i| labelled[i]).collect() };
    fit_on_split(x, y, &pick(tr), &pick(va), &ALPHAS, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: u64, n: usize) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
            })
            .collect()
    }

    #[test]
    fn primal_and_kernel_forms_agree_and_solve_the_normal_equations() {
        // 6 rows, 4 features: primal. Its transpose problem (4 rows, 6 features): kernel.
        for (n, d) in [(6, 4), (4, 6)] {
            let x = Matrix::new(n, d, lcg(7, n * d)).expect("x");
            let y = lcg(9, n);
            let w = Ridge::new(&x, &y).expect("r").solve(0.3).expect("w");
            // Gradient of the objective: Xᵀ(Xw − y) + αw = 0.
            let resid: Vec<f64> = x.matvec(&w).iter().zip(&y).map(|(p, t)| p - t).collect();
            let g = x.t().matvec(&resid);
            for (gi, wi) in g.iter().zip(&w) {
                assert!((gi + 0.3 * wi).abs() < 1e-12, "{n}×{d}: {gi} + 0.3·{wi}");
            }
        }
    }

    #[test]
    fn the_split_is_seeded_disjoint_and_eighty_twenty() {
        let (tr, va) = split(11, 42);
        assert_eq!((tr.len(), va.len()), (8, 3), "⌈0.2·11⌉ = 3 held out");
        let mut all = [tr.clone(), va.clone()].concat();
        all.sort_unstable();
        assert_eq!(all, (0..11).collect::<Vec<_>>());
        assert_eq!(split(11, 42), (tr, va.clone()));
        assert_ne!(split(11, 43).1, va, "another seed, another split");
    }

    #[test]
    fn missing_labels_are_skipped_and_the_best_alpha_wins() {
        // y = 2·x0 − x1 exactly: the smallest α fits best; NaN rows would poison any fit.
        let n = 40;
        let x = Matrix::new(n, 2, lcg(3, 2 * n)).expect("x");
        let mut y: Vec<f64> = (0..n).map(|i| 2.0 * x.row(i)[0] - x.row(i)[1]).collect();
        y[5] = f64::NAN;
        y[17] = f64::NAN;
        let fit = fit(&x, &y, 42, "a").expect("fit");
        assert_eq!(fit.n_train + fit.n_val, 38);
        assert_eq!(fit.alpha, 1e-4);
        assert!((fit.weight[0] - 2.0).abs() < 1e-3 && (fit.weight[1] + 1.0).abs() < 1e-3);
        assert!(fit.val_r2 > 0.999_99, "{}", fit.val_r2);
        assert!(
            fit.val_mse.windows(2).all(|w| w[0] <= w[1]),
            "{:?}",
            fit.val_mse
        );
        let e = super::fit(&x, &vec![f64::NAN; n], 42, "helpfulness").expect_err("no labels");
        assert!(e.to_string().contains("`helpfulness`"), "{e}");
    }
}
