//! Mean and standard error of a list of scores.

use serde::{Deserialize, Serialize};

/// The mean of a sample with its standard error, as AlpacaEval reports
/// `win_rate` and `standard_error`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Arithmetic mean of the values.
    pub mean: f64,
    /// Standard error of the mean: the sample standard deviation (divisor
    /// n − 1) over √n, i.e. `scipy.stats.sem`. Zero when `n == 1`.
    pub stderr: f64,
    /// Number of values.
    pub n: u64,
}

impl Summary {
    /// Summarises `values`; `None` when `values` is empty.
    ///
    /// Values are not validated: a NaN or infinity among them makes `mean` and
    /// `stderr` NaN or infinite, as it would in numpy.
    #[must_use]
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let stderr = if values.len() == 1 {
            0.0
        } else {
            // Two-pass variance: no cancellation for data far from zero.
            let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
            (ss / (n - 1.0)).sqrt() / n.sqrt()
        };
        Some(Summary {
            mean,
            stderr,
            n: values.len() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_sample_has_no_summary() {
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn a_single_value_has_zero_stderr() {
        let s = Summary::of(&[0.25]).unwrap();
        assert_eq!((s.mean, s.stderr, s.n), (0.25, 0.0, 1));
    }

    #[test]
    fn stderr_uses_the_n_minus_one_standard_deviation() {
        // Values 1, 0: mean ½, sample SD √½, stderr √½/√2 = ½.
        let s = Summary::of(&[1.0, 0.0]).unwrap();
        assert_eq!(s.mean, 0.5);
        assert!((s.stderr - 0.5).abs() < 1e-15);
    }
}
