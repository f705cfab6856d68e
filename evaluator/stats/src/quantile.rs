//! Empirical quantiles shared by the bootstrap routines.

/// The `q`-quantile of `sorted` (ascending, non-empty) by linear interpolation
/// between order statistics: numpy's default (`method="linear"`, Hyndman–Fan
/// type 7).
pub(crate) fn sorted_quantile(sorted: &[f64], q: f64) -> f64 {
    debug_assert!(!sorted.is_empty());
    let last = sorted.len() - 1;
    let h = q.clamp(0.0, 1.0) * last as f64;
    let lo = (h.floor() as usize).min(last);
    let hi = (lo + 1).min(last);
    let frac = h - lo as f64;
    sorted[lo] + frac * (sorted[hi] - sorted[lo])
}

/// The two-sided percentile interval of `samples` at `confidence`: the
/// (1 − c)/2 and (1 + c)/2 quantiles. Sorts `samples` in place.
pub(crate) fn percentile_interval(samples: &mut [f64], confidence: f64) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let alpha = (1.0 - confidence) / 2.0;
    (
        sorted_quantile(samples, alpha),
        sorted_quantile(samples, 1.0 - alpha),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(sorted_quantile(&v, 0.0), 1.0);
        assert_eq!(sorted_quantile(&v, 1.0), 4.0);
        // numpy.quantile([1,2,3,4], 0.25) == 1.75
        assert!((sorted_quantile(&v, 0.25) - 1.75).abs() < 1e-15);
        assert_eq!(sorted_quantile(&[7.0], 0.3), 7.0);
    }
}
