//! Length-controlled win rate: AlpacaEval 2.0's idea, simplified.
//!
//! # What is fitted
//! Per item i the judge's preference for the model over the baseline is
//! pᵢ ∈ {0, 0.5, 1} (any value in [0, 1] is accepted as a soft label). With
//!
//! - Δᵢ = `model_lengths[i] − baseline_lengths[i]` (characters; **positive when
//!   the model's answer is longer**),
//! - s = the sample standard deviation of Δ (divisor n − 1),
//! - xᵢ = tanh(Δᵢ / s),
//!
//! the logistic model P(model preferred) = σ(θ + ψ·xᵢ) is fitted by maximising
//! Σ pᵢ ln σ(ηᵢ) + (1 − pᵢ) ln σ(−ηᵢ) − (λ/2)·ψ² (soft labels enter the
//! likelihood directly, which is what AlpacaEval's row duplication with weights
//! p and 1 − p amounts to). The intercept is not penalised. The fit is Newton's
//! method with a backtracking line search, to 1e-10 relative.
//!
//! The length-controlled win rate is the prediction at zero length difference,
//! σ(θ). ψ > 0 means the judge favours the longer answer.
//!
//! # Simplifications relative to AlpacaEval's `length_controlled_v1`
//! No per-instruction difficulty term, no "gamed" baselines, an L2 penalty of
//! fixed size on ψ instead of a cross-validated L1 one, and an intercept. With
//! no difficulty term AlpacaEval's `mean_x σ(θ + ψ·0)` is σ(θ). AlpacaEval's Δ
//! has the opposite sign (baseline minus model), which only flips ψ.
//!
//! # Degenerate inputs
//! - If Δ has no spread (fewer than two items, or every Δ equal), s is reported
//!   as 0 and every xᵢ is 0: length and quality cannot be told apart, ψ is 0
//!   and the LC rate is the plain mean of p.
//! - If the model wins every item (or loses every item) the maximum-likelihood
//!   θ is +∞ (−∞): the LC rate is reported as 1 (0), `intercept` as ±∞ and ψ as 0.

use serde::{Deserialize, Serialize};

use crate::bradley_terry::{RESOLVABLE, sigmoid, softplus};
use crate::error::{Error, Result, check_finite};

/// Default L2 penalty λ on the length coefficient ψ.
pub const DEFAULT_LENGTH_PENALTY: f64 = 0.01;

/// Relative tolerance on the Newton step.
const TOLERANCE: f64 = 1e-10;

/// Newton iterations before giving up.
const MAX_ITERATIONS: usize = 200;

/// The result of [`length_controlled_win_rate`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LengthControlled {
    /// The length-controlled win rate σ(θ), in [0, 1].
    pub win_rate: f64,
    /// The uncontrolled win rate, the mean of the per-item outcomes.
    pub raw_win_rate: f64,
    /// Fitted intercept θ (log-odds of winning at equal length); ±∞ when the
    /// model wins or loses every item.
    pub intercept: f64,
    /// Fitted length coefficient ψ on tanh(Δ/s).
    pub length_coef: f64,
    /// The scale s that Δ was divided by (0 when Δ has no spread).
    pub length_scale: f64,
    /// Number of items.
    pub n: u64,
}

/// Fits the length-controlled win rate of a model against a baseline from
/// per-item outcomes (1 model preferred, 0.5 tie, 0 baseline preferred) and the
/// two answers' lengths in characters, with L2 penalty `length_penalty` on ψ
/// ([`DEFAULT_LENGTH_PENALTY`] unless there is a reason).
///
/// # Errors
/// [`Error::Empty`] for no items; [`Error::LengthMismatch`] when the three
/// slices differ in length; [`Error::NonFinite`] or [`Error::OutOfRange`] for an
/// outcome outside [0, 1] or a non-finite length; [`Error::InvalidParameter`]
/// unless `length_penalty` is positive and finite.
pub fn length_controlled_win_rate(
    outcomes: &[f64],
    model_lengths: &[f64],
    baseline_lengths: &[f64],
    length_penalty: f64,
) -> Result<LengthControlled> {
    let n = outcomes.len();
    if n == 0 {
        return Err(Error::Empty { what: "outcomes" });
    }
    for (what, other) in [
        ("outcomes vs model_lengths", model_lengths.len()),
        ("outcomes vs baseline_lengths", baseline_lengths.len()),
    ] {
        if other != n {
            return Err(Error::LengthMismatch {
                what,
                left: n,
                right: other,
            });
        }
    }
    check_finite("outcomes", outcomes)?;
    check_finite("model_lengths", model_lengths)?;
    check_finite("baseline_lengths", baseline_lengths)?;
    if let Some(index) = outcomes.iter().position(|p| !(0.0..=1.0).contains(p)) {
        return Err(Error::OutOfRange {
            what: "outcomes",
            index,
            value: outcomes[index],
            min: 0.0,
            max: 1.0,
        });
    }
    if !(length_penalty > 0.0 && length_penalty.is_finite()) {
        return Err(Error::InvalidParameter {
            name: "length_penalty",
            expected: "positive and finite",
            value: length_penalty,
        });
    }

    let delta: Vec<f64> = model_lengths
        .iter()
        .zip(baseline_lengths)
        .map(|(m, b)| m - b)
        .collect();
    let scale = sample_sd(&delta);
    let x: Vec<f64> = if scale > 0.0 && scale.is_finite() {
        delta.iter().map(|d| (d / scale).tanh()).collect()
    } else {
        vec![0.0; n]
    };
    let length_scale = if scale.is_finite() { scale } else { 0.0 };

    let total: f64 = outcomes.iter().sum();
    let raw_win_rate = total / n as f64;
    let base = LengthControlled {
        win_rate: raw_win_rate,
        raw_win_rate,
        intercept: 0.0,
        length_coef: 0.0,
        length_scale,
        n: n as u64,
    };
    if outcomes.iter().all(|&p| p == 1.0) {
        return Ok(LengthControlled {
            intercept: f64::INFINITY,
            ..base
        });
    }
    if outcomes.iter().all(|&p| p == 0.0) {
        return Ok(LengthControlled {
            intercept: f64::NEG_INFINITY,
            ..base
        });
    }

    let (theta, psi) = fit_logistic(outcomes, &x, length_penalty)?;
    Ok(LengthControlled {
        win_rate: sigmoid(theta),
        intercept: theta,
        length_coef: psi,
        ..base
    })
}

/// Sample standard deviation (divisor n − 1); 0 for fewer than two values.
fn sample_sd(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (v.iter().map(|d| (d - mean) * (d - mean)).sum::<f64>() / (n - 1.0)).sqrt()
}

/// Negative penalised log-likelihood of (θ, ψ).
fn objective(p: &[f64], x: &[f64], penalty: f64, theta: f64, psi: f64) -> f64 {
    let nll: f64 = p
        .iter()
        .zip(x)
        .map(|(&p, &x)| {
            let eta = theta + psi * x;
            p * softplus(-eta) + (1.0 - p) * softplus(eta)
        })
        .sum();
    nll + 0.5 * penalty * psi * psi
}

/// Newton's method for (θ, ψ); the outcomes must not be all 0 or all 1.
fn fit_logistic(p: &[f64], x: &[f64], penalty: f64) -> Result<(f64, f64)> {
    let not_converged = |iterations| Error::NotConverged {
        what: "length-controlled logistic fit",
        iterations,
    };
    let mean = p.iter().sum::<f64>() / p.len() as f64;
    let mut theta = (mean / (1.0 - mean)).ln();
    let mut psi = 0.0;
    for iteration in 1..=MAX_ITERATIONS {
        let (mut g0, mut g1) = (0.0, penalty * psi);
        let (mut h00, mut h01, mut h11) = (0.0, 0.0, penalty);
        for (&p, &x) in p.iter().zip(x) {
            let q = sigmoid(theta + psi * x);
            let r = q - p;
            let w = q * (1.0 - q);
            g0 += r;
            g1 += r * x;
            h00 += w;
            h01 += w * x;
            h11 += w * x * x;
        }
        let det = h00 * h11 - h01 * h01;
        if det.is_nan() || det <= 0.0 {
            return Err(not_converged(iteration));
        }
        // Newton step (d0, d1) = H⁻¹·g; the update is minus it.
        let d0 = (h11 * g0 - h01 * g1) / det;
        let d1 = (h00 * g1 - h01 * g0) / det;
        let scale = 1.0_f64.max(theta.abs()).max(psi.abs());
        if d0.abs().max(d1.abs()) <= TOLERANCE * scale {
            return Ok((theta - d0, psi - d1));
        }
        let f0 = objective(p, x, penalty, theta, psi);
        let slope = -(g0 * d0 + g1 * d1);
        let mut t = 1.0;
        // As in the Bradley–Terry fit: once the predicted decrease is below what
        // f can resolve, take the full Newton step.
        let resolvable = -slope <= RESOLVABLE * (1.0 + f0.abs());
        while !resolvable
            && objective(p, x, penalty, theta - t * d0, psi - t * d1) > f0 + 1e-4 * t * slope
        {
            t /= 2.0;
            if t < 1e-12 {
                return Err(not_converged(iteration));
            }
        }
        theta -= t * d0;
        psi -= t * d1;
    }
    Err(not_converged(MAX_ITERATIONS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_length_differences_the_lc_rate_is_the_raw_rate() {
        let p = [1.0, 0.0, 0.5, 1.0];
        let len = [10.0; 4];
        let lc = length_controlled_win_rate(&p, &len, &len, DEFAULT_LENGTH_PENALTY).unwrap();
        assert_eq!(lc.length_scale, 0.0);
        assert_eq!(lc.length_coef, 0.0);
        assert!((lc.win_rate - 0.625).abs() < 1e-12);
    }

    #[test]
    fn a_clean_sweep_has_an_infinite_intercept() {
        let lc = length_controlled_win_rate(&[1.0; 3], &[5.0, 9.0, 2.0], &[1.0; 3], 0.01).unwrap();
        assert_eq!(lc.win_rate, 1.0);
        assert_eq!(lc.intercept, f64::INFINITY);
    }

    #[test]
    fn a_judge_that_only_likes_long_answers_is_corrected() {
        // The model wins exactly when it is longer: the raw rate is ¾ but at
        // equal length it is close to even.
        let p = [1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0];
        let model = [50.0, 80.0, 90.0, 10.0, 70.0, 60.0, 20.0, 75.0];
        let base = [40.0; 8];
        let lc = length_controlled_win_rate(&p, &model, &base, 0.01).unwrap();
        assert!(lc.length_coef > 1.0);
        assert!(lc.win_rate < lc.raw_win_rate);
    }

    #[test]
    fn bad_input_is_rejected() {
        let ok = [1.0, 0.0];
        assert!(matches!(
            length_controlled_win_rate(&[], &[], &[], 0.01),
            Err(Error::Empty { .. })
        ));
        assert!(matches!(
            length_controlled_win_rate(&ok, &[1.0], &ok, 0.01),
            Err(Error::LengthMismatch { .. })
        ));
        assert!(matches!(
            length_controlled_win_rate(&[1.0, 2.0], &ok, &ok, 0.01),
            Err(Error::OutOfRange { index: 1, .. })
        ));
        assert!(matches!(
            length_controlled_win_rate(&ok, &[1.0, f64::NAN], &ok, 0.01),
            Err(Error::NonFinite { .. })
        ));
        assert!(length_controlled_win_rate(&ok, &ok, &ok, 0.0).is_err());
    }
}
