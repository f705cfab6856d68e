//! Pairwise win/loss/tie counts, the win rates the anchors report, and their
//! confidence intervals (Wilson score and percentile bootstrap).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, check_confidence, check_finite};
use crate::normal::z_for_confidence;
use crate::quantile::percentile_interval;

/// One item's outcome between two systems, from the first system's (A's)
/// point of view. The worker stores it, the aggregates count it and the pages
/// show it; one type for all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// The judge preferred A.
    AWins,
    /// The judge preferred B.
    BWins,
    /// Neither (including verdicts the two presentation orders disagreed on).
    Tie,
}

impl Outcome {
    /// A's score for the item: 1 for a win, 0.5 for a tie, 0 for a loss (the
    /// per-item values [`PairCounts::from_outcomes`] and the fits take).
    #[must_use]
    pub fn score(self) -> f64 {
        match self {
            Outcome::AWins => 1.0,
            Outcome::Tie => 0.5,
            Outcome::BWins => 0.0,
        }
    }

    /// The same item seen from B's side.
    #[must_use]
    pub fn flipped(self) -> Outcome {
        match self {
            Outcome::AWins => Outcome::BWins,
            Outcome::BWins => Outcome::AWins,
            Outcome::Tie => Outcome::Tie,
        }
    }
}

/// Wins, losses and ties of one system against another (or against a
/// baseline), counted per item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PairCounts {
    /// Items the system won.
    pub wins: u64,
    /// Items the system lost.
    pub losses: u64,
    /// Items judged a tie.
    pub ties: u64,
}

impl PairCounts {
    /// Counts from per-item outcomes: 1 is a win, 0.5 a tie, 0 a loss.
    ///
    /// # Errors
    /// [`Error::NotAnOutcome`] for any other value (NaN included).
    pub fn from_outcomes(per_item: &[f64]) -> Result<PairCounts> {
        let mut counts = PairCounts::default();
        for (index, &value) in per_item.iter().enumerate() {
            if value == 1.0 {
                counts.wins += 1;
            } else if value == 0.5 {
                counts.ties += 1;
            } else if value == 0.0 {
                counts.losses += 1;
            } else {
                return Err(Error::NotAnOutcome { index, value });
            }
        }
        Ok(counts)
    }

    /// Total number of items: wins + losses + ties (saturating).
    #[must_use]
    pub fn n(&self) -> u64 {
        self.wins
            .saturating_add(self.losses)
            .saturating_add(self.ties)
    }

    /// The win rate with ties counted as half a win, (w + t/2)/(w + l + t), as
    /// AlpacaEval and Chatbot Arena count them. `None` when there are no items.
    #[must_use]
    pub fn win_rate(&self) -> Option<f64> {
        let n = self.n();
        (n > 0).then(|| self.half_tie_successes() / n as f64)
    }

    /// The win rate with ties dropped, w/(w + l): ALaRM's `eval_compare.py` rule.
    ///
    /// `None` when there are no decisive items (w + l = 0). ALaRM prints 50 in
    /// that case; callers reproducing its tables should map `None` to 0.5.
    #[must_use]
    pub fn win_rate_excluding_ties(&self) -> Option<f64> {
        let decisive = self.wins.saturating_add(self.losses);
        (decisive > 0).then(|| self.wins as f64 / decisive as f64)
    }

    /// The Wilson score interval for the ties-as-half win rate
    /// ([`win_rate`](Self::win_rate)) at `confidence` (e.g. 0.95), treating
    /// w + t/2 as the successes out of n trials.
    ///
    /// With p̂ the win rate and z = Φ⁻¹((1 + c)/2), the interval is
    /// `(p̂ + z²/2n ± z·√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)`, clamped to
    /// [0, 1]. Unlike the normal (Wald) interval it stays inside [0, 1] and has
    /// non-zero width when every item is a win.
    ///
    /// `None` when there are no items, or when `confidence` is not strictly
    /// between 0 and 1 (NaN included).
    #[must_use]
    pub fn wilson_ci(&self, confidence: f64) -> Option<(f64, f64)> {
        let n = self.n();
        if n == 0 {
            return None;
        }
        let z = z_for_confidence(confidence).ok()?;
        let n = n as f64;
        let p = self.half_tie_successes() / n;
        let z2n = z * z / n;
        let denom = 1.0 + z2n;
        let centre = (p + z2n / 2.0) / denom;
        let half = z * (p * (1.0 - p) / n + z2n / (4.0 * n)).sqrt() / denom;
        Some((
            (centre - half).clamp(0.0, 1.0),
            (centre + half).clamp(0.0, 1.0),
        ))
    }

    /// Percentile bootstrap interval of the mean per-item outcome; the same as
    /// the free function [`bootstrap_ci`], kept here so that all the interval
    /// methods of a pairwise comparison are found in one place.
    ///
    /// # Errors
    /// As [`bootstrap_ci`].
    pub fn bootstrap_ci(
        per_item: &[f64],
        rounds: usize,
        confidence: f64,
        seed: u64,
    ) -> Result<(f64, f64)> {
        bootstrap_ci(per_item, rounds, confidence, seed)
    }

    /// w + t/2 as a float.
    fn half_tie_successes(&self) -> f64 {
        self.wins as f64 + 0.5 * self.ties as f64
    }
}

/// Percentile bootstrap interval for the mean of per-item outcomes (1 win, 0.5
/// tie, 0 loss; any finite values are accepted).
///
/// Each of `rounds` rounds draws `per_item.len()` items with replacement and
/// records their mean; the interval is the (1 − c)/2 and (1 + c)/2 quantiles of
/// those means (linear interpolation, numpy's default). Draws come from a
/// ChaCha8 generator seeded with `seed`, so the result is the same for a seed
/// on every platform and run (for a given `rand`/`rand_chacha` version).
///
/// # Errors
/// [`Error::Empty`] for no items, [`Error::NonFinite`] for a NaN or infinite
/// outcome, [`Error::InvalidParameter`] for `rounds == 0` or a `confidence`
/// not strictly between 0 and 1.
pub fn bootstrap_ci(
    per_item: &[f64],
    rounds: usize,
    confidence: f64,
    seed: u64,
) -> Result<(f64, f64)> {
    if per_item.is_empty() {
        return Err(Error::Empty { what: "per_item" });
    }
    check_finite("per_item", per_item)?;
    check_rounds(rounds)?;
    check_confidence(confidence)?;

    let n = per_item.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let mut sum = 0.0;
        for _ in 0..n {
            sum += per_item[rng.random_range(0..n)];
        }
        means.push(sum / n as f64);
    }
    Ok(percentile_interval(&mut means, confidence))
}

/// Checks that a bootstrap round count is positive.
pub(crate) fn check_rounds(rounds: usize) -> Result<()> {
    if rounds == 0 {
        Err(Error::InvalidParameter {
            name: "rounds",
            expected: "at least 1",
            value: 0.0,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_count_half_in_win_rate_and_nothing_in_alarm_rate() {
        let c = PairCounts {
            wins: 3,
            losses: 1,
            ties: 4,
        };
        assert_eq!(c.n(), 8);
        assert_eq!(c.win_rate(), Some(5.0 / 8.0));
        assert_eq!(c.win_rate_excluding_ties(), Some(0.75));
    }

    #[test]
    fn no_items_means_no_rates() {
        let c = PairCounts::default();
        assert_eq!(c.win_rate(), None);
        assert_eq!(c.win_rate_excluding_ties(), None);
        assert_eq!(c.wilson_ci(0.95), None);
    }

    #[test]
    fn all_ties_is_a_half_win_rate_with_no_decisive_rate() {
        let c = PairCounts {
            wins: 0,
            losses: 0,
            ties: 10,
        };
        assert_eq!(c.win_rate(), Some(0.5));
        assert_eq!(c.win_rate_excluding_ties(), None);
        let (lo, hi) = c.wilson_ci(0.95).unwrap();
        assert!(lo < 0.5 && hi > 0.5 && ((lo + hi) / 2.0 - 0.5).abs() < 1e-12);
    }

    #[test]
    fn wilson_interval_stays_in_the_unit_interval_for_a_clean_sweep() {
        let c = PairCounts {
            wins: 5,
            losses: 0,
            ties: 0,
        };
        let (lo, hi) = c.wilson_ci(0.95).unwrap();
        assert!(lo > 0.0 && lo < 1.0);
        assert!((hi - 1.0).abs() < 1e-12);
    }

    #[test]
    fn wilson_rejects_a_bad_confidence() {
        let c = PairCounts {
            wins: 1,
            losses: 1,
            ties: 0,
        };
        assert_eq!(c.wilson_ci(1.0), None);
        assert_eq!(c.wilson_ci(f64::NAN), None);
    }

    #[test]
    fn outcomes_other_than_win_tie_loss_are_rejected() {
        assert_eq!(
            PairCounts::from_outcomes(&[1.0, 0.5, 0.0, 0.0]),
            Ok(PairCounts {
                wins: 1,
                losses: 2,
                ties: 1
            })
        );
        assert!(matches!(
            PairCounts::from_outcomes(&[1.0, 0.3]),
            Err(Error::NotAnOutcome { index: 1, .. })
        ));
        assert!(PairCounts::from_outcomes(&[f64::NAN]).is_err());
    }

    #[test]
    fn bootstrap_rejects_bad_input() {
        assert!(matches!(
            bootstrap_ci(&[], 10, 0.95, 0),
            Err(Error::Empty { .. })
        ));
        assert!(matches!(
            bootstrap_ci(&[1.0, f64::NAN], 10, 0.95, 0),
            Err(Error::NonFinite { index: 1, .. })
        ));
        assert!(bootstrap_ci(&[1.0], 0, 0.95, 0).is_err());
        assert!(bootstrap_ci(&[1.0], 10, 1.5, 0).is_err());
    }

    #[test]
    fn bootstrap_of_identical_outcomes_is_a_point() {
        assert_eq!(bootstrap_ci(&[0.5; 7], 50, 0.95, 3), Ok((0.5, 0.5)));
    }
}
