//! AlpacaEval's win-rate columns against a fixed baseline, from soft
//! preferences.
//!
//! Each item carries x = P(the system's output beats the baseline's) in
//! [0, 1], AlpacaEval's `preference − 1`; `None` is an item without a
//! verdict. The columns follow upstream `metrics/winrate.py` and
//! `metrics/helpers.py`:
//!
//! - `None` items are dropped: they count neither as a draw nor in `n_total`;
//! - `win_rate` = mean x and `standard_error` = the sample standard deviation
//!   (n − 1) over √n (both as fractions here; AlpacaEval prints them × 100);
//! - `n_wins` = #(x > ½), `n_wins_base` = #(x < ½), `n_draws` = #(x = ½
//!   exactly): a soft preference is a draw only when it is exactly one half;
//! - `discrete_win_rate` = (n_wins + n_draws / 2) / n_total, the win rate of
//!   the preferences rounded to a verdict (upstream rounds half to even, and a
//!   rounded 1.5 can only come from exactly 1.5, which is the draw).
//!
//! AlpacaEval's old encoding of a draw as a preference of 0 is the importer's
//! business: by the time values reach here a draw is ½.
//! `tests/reference.rs` pins these against the published leaderboard rows.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::summary::Summary;

/// A system's row against the baseline, AlpacaEval's columns as fractions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BaselineWinRate {
    /// Mean probability of beating the baseline, in [0, 1].
    pub win_rate: f64,
    /// Its standard error (sample SD over √n); 0 for one item.
    pub standard_error: f64,
    /// Items with x > ½.
    pub n_wins: u64,
    /// Items with x < ½.
    pub n_wins_base: u64,
    /// Items with x = ½ exactly.
    pub n_draws: u64,
    /// Items with a verdict.
    pub n_total: u64,
    /// (n_wins + n_draws / 2) / n_total.
    pub discrete_win_rate: f64,
}

/// The columns of one system from its per-item preferences; `Ok(None)` when no
/// item has a verdict.
///
/// # Errors
/// [`Error::OutOfRange`] for a preference outside [0, 1] (NaN included), with
/// its index.
pub fn baseline_win_rate(preferences: &[Option<f64>]) -> Result<Option<BaselineWinRate>> {
    let mut kept = Vec::with_capacity(preferences.len());
    for (index, preference) in preferences.iter().enumerate() {
        let Some(x) = *preference else { continue };
        if !(0.0..=1.0).contains(&x) {
            return Err(Error::OutOfRange {
                what: "preferences",
                index,
                value: x,
                min: 0.0,
                max: 1.0,
            });
        }
        kept.push(x);
    }
    let Some(summary) = Summary::of(&kept) else {
        return Ok(None);
    };
    let n_wins = kept.iter().filter(|&&x| x > 0.5).count() as u64;
    let n_wins_base = kept.iter().filter(|&&x| x < 0.5).count() as u64;
    let n_draws = summary.n - n_wins - n_wins_base;
    Ok(Some(BaselineWinRate {
        win_rate: summary.mean,
        standard_error: summary.stderr,
        n_wins,
        n_wins_base,
        n_draws,
        n_total: summary.n,
        discrete_win_rate: (n_wins as f64 + n_draws as f64 / 2.0) / summary.n as f64,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_verdicts_are_dropped_and_only_exact_halves_are_draws() {
        let row = baseline_win_rate(&[Some(1.0), None, Some(0.5), Some(0.25), Some(0.500_001)])
            .unwrap()
            .unwrap();
        assert_eq!(
            (row.n_wins, row.n_wins_base, row.n_draws, row.n_total),
            (2, 1, 1, 4)
        );
        assert!((row.win_rate - (1.0 + 0.5 + 0.25 + 0.500_001) / 4.0).abs() < 1e-15);
        assert_eq!(row.discrete_win_rate, 2.5 / 4.0);
    }

    #[test]
    fn no_verdict_is_no_row_and_bad_values_name_their_index() {
        assert_eq!(baseline_win_rate(&[None, None]).unwrap(), None);
        assert_eq!(baseline_win_rate(&[]).unwrap(), None);
        let err = baseline_win_rate(&[Some(0.2), Some(f64::NAN)]).unwrap_err();
        assert!(matches!(err, Error::OutOfRange { index: 1, .. }), "{err}");
        assert!(baseline_win_rate(&[Some(1.5)]).is_err());
    }

    #[test]
    fn the_baseline_against_itself_is_all_draws() {
        let row = baseline_win_rate(&[Some(0.5); 805]).unwrap().unwrap();
        assert_eq!((row.win_rate, row.standard_error), (0.5, 0.0));
        assert_eq!((row.n_draws, row.discrete_win_rate), (805, 0.5));
    }
}
