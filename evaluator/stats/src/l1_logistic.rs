//! L1-penalised logistic regression with row weights and soft labels, no
//! intercept: the model behind AlpacaEval's length-controlled win rate
//! ([`crate::glm_winrate`]), usable on its own.
//!
//! [`l1_logistic`] minimises liblinear's L1-LR objective
//! ‖β‖₁ + C·Σ weightᵢ·[yᵢ·softplus(−ηᵢ) + (1 − yᵢ)·softplus(ηᵢ)] (soft labels
//! directly, which is what two weighted copies of every row amount to) by a
//! proximal Newton method with coordinate-descent inner solves and an Armijo
//! line search, as liblinear does, on a column-stored sparse [`Design`];
//! [`l1_logistic_cv`] picks C from a grid by grouped k-fold cross-validation
//! the way scikit-learn's `GroupKFold` deals rows (see `glm_winrate`'s docs).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::glm_winrate::{GlmOptions, check_options, check_probability};

/// A design matrix stored by column (sparse), for coordinate descent.
#[derive(Debug, Clone, PartialEq)]
pub struct Design {
    n_rows: usize,
    n_features: usize,
    col_start: Vec<usize>,
    row_index: Vec<usize>,
    value: Vec<f64>,
}

impl Design {
    /// From dense rows, all of the same length.
    ///
    /// # Errors
    /// [`Error::Empty`] for no rows; [`Error::LengthMismatch`] for ragged rows;
    /// [`Error::NonFinite`] for a NaN or infinite entry.
    pub fn from_dense_rows(rows: &[Vec<f64>]) -> Result<Self> {
        let first = rows.first().ok_or(Error::Empty {
            what: "design rows",
        })?;
        let n_features = first.len();
        let mut sparse = Vec::with_capacity(rows.len());
        for r in rows {
            if r.len() != n_features {
                return Err(Error::LengthMismatch {
                    what: "design row vs first row",
                    left: r.len(),
                    right: n_features,
                });
            }
            sparse.push(
                r.iter()
                    .enumerate()
                    .filter(|(_, v)| **v != 0.0)
                    .map(|(j, v)| (j, *v))
                    .collect(),
            );
        }
        Self::from_sparse_rows(n_features, &sparse)
    }

    /// From sparse rows of `(feature, value)` entries (a feature repeated in a row adds up).
    ///
    /// # Errors
    /// [`Error::Empty`] for no rows; [`Error::InvalidParameter`] for a feature index
    /// `>= n_features`; [`Error::NonFinite`] for a NaN or infinite entry.
    pub fn from_sparse_rows(n_features: usize, rows: &[Vec<(usize, f64)>]) -> Result<Self> {
        if rows.is_empty() {
            return Err(Error::Empty {
                what: "design rows",
            });
        }
        let mut count = vec![0usize; n_features + 1];
        for r in rows {
            for &(j, v) in r {
                if j >= n_features {
                    return Err(Error::InvalidParameter {
                        name: "feature index",
                        expected: "below n_features",
                        value: j as f64,
                    });
                }
                if !v.is_finite() {
                    return Err(Error::NonFinite {
                        what: "design entry",
                        index: j,
                        value: v,
                    });
                }
                count[j + 1] += 1;
            }
        }
        for j in 0..n_features {
            count[j + 1] += count[j];
        }
        let nnz = count[n_features];
        let mut next = count.clone();
        let mut row_index = vec![0; nnz];
        let mut value = vec![0.0; nnz];
        for (i, r) in rows.iter().enumerate() {
            for &(j, v) in r {
                row_index[next[j]] = i;
                value[next[j]] = v;
                next[j] += 1;
            }
        }
        Ok(Self {
            n_rows: rows.len(),
            n_features,
            col_start: count,
            row_index,
            value,
        })
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of features.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    fn column(&self, j: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        let range = self.col_start[j]..self.col_start[j + 1];
        self.row_index[range.clone()]
            .iter()
            .copied()
            .zip(self.value[range].iter().copied())
    }

    pub(crate) fn linear(&self, coef: &[f64]) -> Vec<f64> {
        let mut eta = vec![0.0; self.n_rows];
        for (j, &c) in coef.iter().enumerate() {
            if c != 0.0 {
                for (i, v) in self.column(j) {
                    eta[i] += c * v;
                }
            }
        }
        eta
    }
}

/// One L1 logistic fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct L1Fit {
    /// The coefficients, one per feature.
    pub coef: Vec<f64>,
    /// ‖coef‖₁ + C·Σ weightᵢ·logloss_i at the solution.
    pub objective: f64,
    /// Newton iterations used.
    pub iterations: usize,
}

/// The output of [`l1_logistic_cv`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct L1CvFit {
    /// The chosen C.
    pub c: f64,
    /// Sum over folds of the fold scores (minus the weighted mean log-loss), one per C.
    pub scores: Vec<f64>,
    /// The refit on all rows at the chosen C.
    pub fit: L1Fit,
}

pub(crate) fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

pub(crate) fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// The soft-label log-loss of one row, y·softplus(−η) + (1 − y)·softplus(η).
fn row_loss(y: f64, eta: f64) -> f64 {
    y * softplus(-eta) + (1.0 - y) * softplus(eta)
}

/// Minimises ‖β‖₁ + C·Σᵢ weightᵢ·[yᵢ·softplus(−ηᵢ) + (1 − yᵢ)·softplus(ηᵢ)], η = Xβ, no
/// intercept: liblinear's L1-regularised logistic regression (`penalty="l1"`,
/// `solver="liblinear"`, `fit_intercept=False`) with sample weights, where a soft label y
/// equals liblinear's two copies of the row with labels 1, 0 and weights weight·y,
/// weight·(1 − y). Labels may be any value in [0, 1].
///
/// The solver is a proximal Newton method (as liblinear's newGLMNET): a quadratic model of the
/// loss minimised by cyclic coordinate descent with the exact soft-threshold step, solved to a
/// tenth of the current optimality gap, then an Armijo line search on the true objective. It
/// stops when the largest minimum-norm subgradient is at most `tolerance` times the largest
/// gradient at β = 0 (at least 1). `start` warm-starts (the optimum does not depend on it).
///
/// # Errors
/// [`Error::LengthMismatch`] when labels, weights (or `start`) do not fit the design;
/// [`Error::NonFinite`]/[`Error::OutOfRange`] for labels outside [0, 1] or negative weights;
/// [`Error::InvalidParameter`] for a C or tolerance that is not positive and finite;
/// [`Error::NotConverged`] after `max_iterations` Newton steps.
pub fn l1_logistic(
    design: &Design,
    labels: &[f64],
    weights: &[f64],
    c: f64,
    tolerance: f64,
    max_iterations: usize,
    start: Option<&[f64]>,
) -> Result<L1Fit> {
    check_fit_inputs(design, labels, weights)?;
    for (name, v) in [("c", c), ("tolerance", tolerance)] {
        if !(v.is_finite() && v > 0.0) {
            return Err(Error::InvalidParameter {
                name,
                expected: "positive and finite",
                value: v,
            });
        }
    }
    if let Some(s) = start {
        if s.len() != design.n_features {
            return Err(Error::LengthMismatch {
                what: "start vs features",
                left: s.len(),
                right: design.n_features,
            });
        }
        crate::error::check_finite("start", s)?;
    }
    solve(design, labels, weights, c, tolerance, max_iterations, start)
}

fn check_fit_inputs(design: &Design, labels: &[f64], weights: &[f64]) -> Result<()> {
    for (what, v) in [("labels vs rows", labels), ("weights vs rows", weights)] {
        if v.len() != design.n_rows {
            return Err(Error::LengthMismatch {
                what,
                left: v.len(),
                right: design.n_rows,
            });
        }
    }
    for (index, &y) in labels.iter().enumerate() {
        check_probability("label", index, y)?;
    }
    crate::error::check_finite("weights", weights)?;
    if let Some(index) = weights.iter().position(|w| *w < 0.0) {
        return Err(Error::OutOfRange {
            what: "weights",
            index,
            value: weights[index],
            min: 0.0,
            max: f64::INFINITY,
        });
    }
    Ok(())
}

/// The proximal Newton solver behind [`l1_logistic`]; inputs already checked.
fn solve(
    design: &Design,
    labels: &[f64],
    weights: &[f64],
    c: f64,
    tolerance: f64,
    max_iterations: usize,
    start: Option<&[f64]>,
) -> Result<L1Fit> {
    let (n, p) = (design.n_rows, design.n_features);
    let objective = |coef: &[f64], eta: &[f64]| -> f64 {
        let loss: f64 = (0..n)
            .map(|i| weights[i] * row_loss(labels[i], eta[i]))
            .sum();
        coef.iter().map(|b| b.abs()).sum::<f64>() + c * loss
    };
    // The scale the stopping rule is relative to: the largest gradient at β = 0 (as
    // liblinear), at least 1 so that a problem whose optimum is 0 stops at once.
    let reference = (0..p)
        .map(|j| {
            design
                .column(j)
                .map(|(i, v)| c * weights[i] * (0.5 - labels[i]) * v)
                .sum::<f64>()
                .abs()
        })
        .fold(1.0, f64::max);
    let mut coef = start.map_or_else(|| vec![0.0; p], <[f64]>::to_vec);
    let mut eta = design.linear(&coef);
    let mut f = objective(&coef, &eta);
    let (mut g_row, mut h_row) = (vec![0.0; n], vec![0.0; n]);
    let (mut grad, mut hdiag) = (vec![0.0; p], vec![0.0; p]);
    let (mut step, mut xstep) = (vec![0.0; p], vec![0.0; n]);
    for iteration in 0..max_iterations {
        for i in 0..n {
            let q = sigmoid(eta[i]);
            g_row[i] = c * weights[i] * (q - labels[i]);
            h_row[i] = c * weights[i] * q * (1.0 - q);
        }
        let mut gap = 0.0f64;
        for j in 0..p {
            let (mut g, mut h) = (0.0, 0.0);
            for (i, v) in design.column(j) {
                g += g_row[i] * v;
                h += h_row[i] * v * v;
            }
            grad[j] = g;
            // liblinear's tiny ridge keeps the coordinate step defined for empty columns.
            hdiag[j] = h + 1e-12;
            gap = gap.max(min_norm_subgradient(coef[j], g));
        }
        if gap <= tolerance * reference {
            return Ok(L1Fit {
                coef,
                objective: f,
                iterations: iteration,
            });
        }
        // Quadratic model: coordinate descent on step, xstep = X·step.
        step.iter_mut().for_each(|s| *s = 0.0);
        xstep.iter_mut().for_each(|s| *s = 0.0);
        for _sweep in 0..1000 {
            let mut inner_gap = 0.0f64;
            for j in 0..p {
                let mut g = grad[j];
                for (i, v) in design.column(j) {
                    g += h_row[i] * v * xstep[i];
                }
                let h = hdiag[j];
                let wj = coef[j] + step[j];
                inner_gap = inner_gap.max(min_norm_subgradient(wj, g));
                let z = if g + 1.0 <= h * wj {
                    -(g + 1.0) / h
                } else if g - 1.0 >= h * wj {
                    -(g - 1.0) / h
                } else {
                    -wj
                };
                if z != 0.0 {
                    step[j] += z;
                    for (i, v) in design.column(j) {
                        xstep[i] += z * v;
                    }
                }
            }
            if inner_gap <= 0.1 * gap {
                break;
            }
        }
        // Armijo line search on the true objective (liblinear's σ = 0.01).
        let l1_now: f64 = coef.iter().map(|b| b.abs()).sum();
        let descent = grad.iter().zip(&step).map(|(g, s)| g * s).sum::<f64>()
            + coef
                .iter()
                .zip(&step)
                .map(|(b, s)| (b + s).abs())
                .sum::<f64>()
            - l1_now;
        let mut alpha = 1.0;
        let mut accepted = false;
        let mut trial_coef = vec![0.0; p];
        let mut trial_eta = vec![0.0; n];
        for _ in 0..40 {
            for j in 0..p {
                trial_coef[j] = coef[j] + alpha * step[j];
            }
            for i in 0..n {
                trial_eta[i] = eta[i] + alpha * xstep[i];
            }
            let f_trial = objective(&trial_coef, &trial_eta);
            // Near the optimum the decrease falls below the rounding of f; a change within
            // rounding is accepted so the gradient-based stopping rule can decide.
            let rounding = 64.0 * f64::EPSILON * f.abs();
            if f_trial - f <= 0.01 * alpha * descent || (f_trial - f).abs() <= rounding {
                coef.copy_from_slice(&trial_coef);
                eta.copy_from_slice(&trial_eta);
                f = f_trial;
                accepted = true;
                break;
            }
            alpha *= 0.5;
        }
        if !accepted {
            // No decrease is representable: the iterate is optimal to rounding. Accept it if
            // the optimality gap is within the square root of the tolerance, else give up.
            if gap <= tolerance.sqrt() * reference {
                return Ok(L1Fit {
                    coef,
                    objective: f,
                    iterations: iteration,
                });
            }
            break;
        }
    }
    Err(Error::NotConverged {
        what: "L1 logistic regression",
        iterations: max_iterations,
    })
}

/// The smallest |subgradient| of |b| + g·b at b (0 when b = 0 and |g| ≤ 1).
pub(crate) fn min_norm_subgradient(b: f64, g: f64) -> f64 {
    if b > 0.0 {
        (g + 1.0).abs()
    } else if b < 0.0 {
        (g - 1.0).abs()
    } else {
        (g.abs() - 1.0).max(0.0)
    }
}

/// [`l1_logistic`] with C chosen by k-fold cross-validation as upstream's
/// `fit_LogisticRegressionCV` does with scikit-learn's `GroupKFold` (module docs): row r is in
/// fold (n − 1 − r) mod k; each fold's score is minus the mean over its rows of
/// weightᵢ·logloss with the prediction clipped to [1e-15, 1 − 1e-15]; the C with the largest
/// sum of scores (first on ties) is refitted on all rows.
///
/// # Errors
/// As [`l1_logistic`]; [`Error::InvalidParameter`] when there are fewer rows than folds or the
/// options are invalid.
pub fn l1_logistic_cv(
    design: &Design,
    labels: &[f64],
    weights: &[f64],
    options: &GlmOptions,
) -> Result<L1CvFit> {
    check_options(options)?;
    check_fit_inputs(design, labels, weights)?;
    let (n, k) = (design.n_rows, options.n_folds);
    if n < k {
        return Err(Error::InvalidParameter {
            name: "n_folds",
            expected: "at most the number of training rows",
            value: k as f64,
        });
    }
    let fold_of = |r: usize| (n - 1 - r) % k;
    // Fit the grid in increasing C with warm starts (the optimum does not depend on the start;
    // the warm start only saves iterations).
    let mut order: Vec<usize> = (0..options.cs.len()).collect();
    order.sort_by(|&a, &b| options.cs[a].total_cmp(&options.cs[b]));
    let mut scores = vec![0.0; options.cs.len()];
    for fold in 0..k {
        let train_weights: Vec<f64> = (0..n)
            .map(|r| if fold_of(r) == fold { 0.0 } else { weights[r] })
            .collect();
        let mut start: Option<Vec<f64>> = None;
        for &ci in &order {
            let fit = solve(
                design,
                labels,
                &train_weights,
                options.cs[ci],
                options.cv_tolerance,
                options.max_iterations,
                start.as_deref(),
            )?;
            let eta = design.linear(&fit.coef);
            let (mut total, mut count) = (0.0, 0usize);
            for r in (0..n).filter(|&r| fold_of(r) == fold) {
                let q = sigmoid(eta[r]).clamp(1e-15, 1.0 - 1e-15);
                let y = labels[r];
                total += weights[r] * (y * q.ln() + (1.0 - y) * (1.0 - q).ln());
                count += 1;
            }
            scores[ci] += total / count as f64;
            start = Some(fit.coef);
        }
    }
    let mut best = 0;
    for (i, s) in scores.iter().enumerate() {
        if *s > scores[best] {
            best = i;
        }
    }
    let c = options.cs[best];
    let fit = solve(
        design,
        labels,
        weights,
        c,
        options.tolerance,
        options.max_iterations,
        None,
    )?;
    Ok(L1CvFit { c, scores, fit })
}
