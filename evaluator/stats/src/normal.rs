//! The standard normal quantile function, for turning a confidence level into a
//! z value.
//!
//! Written here rather than pulled from `statrs`: the crate needs one function,
//! and `statrs` would bring `nalgebra` and its dependency tree into the
//! evaluator's build for it.
//!
//! The method is Peter Acklam's rational approximation (relative error below
//! 1.15e-9 over the whole open interval), followed by one Halley step against
//! the normal CDF wherever that CDF can be evaluated to near machine precision
//! (|z| < 7). The refined result agrees with `scipy.stats.norm.ppf` to about
//! 1e-13 for the confidence levels used in practice (see `tests/reference.rs`).

use crate::error::{Error, Result, check_confidence};

/// sqrt(2π).
const SQRT_2PI: f64 = 2.506_628_274_631_000_7;

// Acklam's coefficients: central region numerator (A) and denominator (B),
// tail region numerator (C) and denominator (D).
const A: [f64; 6] = [
    -3.969_683_028_665_376e1,
    2.209_460_984_245_205e2,
    -2.759_285_104_469_687e2,
    1.383_577_518_672_69e2,
    -3.066_479_806_614_716e1,
    2.506_628_277_459_239,
];
const B: [f64; 5] = [
    -5.447_609_879_822_406e1,
    1.615_858_368_580_409e2,
    -1.556_989_798_598_866e2,
    6.680_131_188_771_972e1,
    -1.328_068_155_288_572e1,
];
const C: [f64; 6] = [
    -7.784_894_002_430_293e-3,
    -3.223_964_580_411_365e-1,
    -2.400_758_277_161_838,
    -2.549_732_539_343_734,
    4.374_664_141_464_968,
    2.938_163_982_698_783,
];
const D: [f64; 4] = [
    7.784_695_709_041_462e-3,
    3.224_671_290_700_398e-1,
    2.445_134_137_142_996,
    3.754_408_661_907_416,
];
/// Boundary between Acklam's tail and central regions.
const P_LOW: f64 = 0.024_25;

/// The quantile of the standard normal distribution: the `z` with Φ(z) = `p`.
///
/// # Errors
/// [`Error::InvalidParameter`] unless `0 < p < 1` (the quantiles of 0 and 1 are
/// infinite).
pub fn normal_quantile(p: f64) -> Result<f64> {
    if !(p > 0.0 && p < 1.0) {
        return Err(Error::InvalidParameter {
            name: "p",
            expected: "strictly between 0 and 1",
            value: p,
        });
    }
    let z = acklam(p);
    Ok(if z.abs() < 7.0 {
        halley_refine(z, p)
    } else {
        z
    })
}

/// The two-sided critical value for a confidence level: Φ⁻¹(1 − (1 − c)/2),
/// e.g. 1.959964 for `confidence = 0.95`.
///
/// # Errors
/// [`Error::InvalidParameter`] unless `0 < confidence < 1`.
pub fn z_for_confidence(confidence: f64) -> Result<f64> {
    check_confidence(confidence)?;
    // 1 - (1-c)/2 = (1+c)/2; the upper quantile is minus the lower one, and the
    // lower tail probability (1-c)/2 is represented without cancellation.
    Ok(-normal_quantile((1.0 - confidence) / 2.0)?)
}

/// Acklam's approximation; `p` must be in (0, 1).
fn acklam(p: f64) -> f64 {
    if p < P_LOW {
        let q = (-2.0 * p.ln()).sqrt();
        tail(q)
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -tail(q)
    }
}

/// Acklam's lower-tail rational function of q = sqrt(−2 ln p).
fn tail(q: f64) -> f64 {
    (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
        / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
}

/// One Halley step on Φ(z) − p = 0 (cubic convergence: from Acklam's 1e-9 to
/// the accuracy of [`normal_cdf`]).
fn halley_refine(z: f64, p: f64) -> f64 {
    let e = normal_cdf(z) - p;
    let u = e * SQRT_2PI * (z * z / 2.0).exp();
    z - u / (1.0 + z * u / 2.0)
}

/// Φ(x) for |x| < 7, to near machine precision relative to min(Φ, 1 − Φ).
///
/// - For |x| ≤ 3, Φ(x) = ½ ± φ(x)·Σₙ |x|^(2n+1)/(1·3·…·(2n+1)): every term of
///   the series is positive, so it sums without cancellation, and the tail
///   probability there is at least 1.3e-3, so forming ½ − φ·S loses at most
///   three digits.
/// - For |x| > 3, the tail 1 − Φ(|x|) = φ(x)·R(|x|) with Mills' ratio R from
///   Laplace's continued fraction R(x) = 1/(x + 1/(x + 2/(x + 3/(x + …)))),
///   evaluated bottom-up from 300 levels (far more than x > 3 needs).
fn normal_cdf(x: f64) -> f64 {
    let ax = x.abs();
    let density = (-ax * ax / 2.0).exp() / SQRT_2PI;
    if ax > 3.0 {
        let mut tail = 0.0;
        for k in (1..=300).rev() {
            tail = f64::from(k) / (ax + tail);
        }
        let upper_tail = density / (ax + tail);
        return if x > 0.0 {
            1.0 - upper_tail
        } else {
            upper_tail
        };
    }
    let x2 = ax * ax;
    let mut term = ax;
    let mut sum = ax;
    let mut k = 1.0;
    for _ in 0..200 {
        k += 2.0;
        term *= x2 / k;
        sum += term;
        if term <= sum * 1e-17 {
            break;
        }
    }
    let half_mass = density * sum;
    if x >= 0.0 {
        0.5 + half_mass
    } else {
        0.5 - half_mass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_zero_and_the_quantile_is_odd() {
        assert_eq!(normal_quantile(0.5).unwrap(), 0.0);
        for p in [1e-6, 0.01, 0.024_25, 0.2, 0.4] {
            let lo = normal_quantile(p).unwrap();
            let hi = normal_quantile(1.0 - p).unwrap();
            assert!((lo + hi).abs() < 1e-9, "p={p}: {lo} vs {hi}");
        }
    }

    #[test]
    fn probabilities_outside_the_open_unit_interval_are_rejected() {
        for p in [0.0, 1.0, -0.1, 1.5, f64::NAN, f64::INFINITY] {
            assert!(normal_quantile(p).is_err(), "p={p}");
        }
        for c in [0.0, 1.0, f64::NAN] {
            assert!(z_for_confidence(c).is_err(), "c={c}");
        }
    }

    #[test]
    fn the_cdf_inverts_the_quantile() {
        for p in [1e-6, 0.001, 0.025, 0.3, 0.5, 0.8, 0.975, 0.999] {
            let z = normal_quantile(p).unwrap();
            assert!((normal_cdf(z) - p).abs() < 1e-15 + 1e-12 * p, "p={p}");
        }
    }
}
