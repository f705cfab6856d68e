//! Bradley–Terry ratings and leaderboards from pairwise battles, Chatbot
//! Arena's default method.
//!
//! # Model
//! Each system i has a strength rᵢ and P(a beats b) = σ(ln 10 · (r_a − r_b)),
//! so that the displayed rating 400·r + 1000 is on the familiar Elo scale (a
//! 400-point gap is 10:1 odds). A battle's outcome y is 1 (a wins), 0.5 (tie)
//! or 0 (b wins); any y in [0, 1] is accepted as a soft label. Ties are half a
//! win for each side, as in FastChat. The fit maximises the log-likelihood
//! Σ y·ln P + (1 − y)·ln(1 − P), computed over battle counts aggregated per
//! pair (the same objective as FastChat's weighted log-loss over unique
//! (a, b, outcome) rows), minus a Gaussian prior (λ/2)·Σ rᵢ².
//!
//! # The prior, and the anchor
//! Without a prior the likelihood is unchanged by adding a constant to every r,
//! and a system that never loses (or never wins) has its MLE at ±∞. The prior
//! fixes both. With λ = [`DEFAULT_PRIOR`] = 1e-4 (one unit of r is 400 Elo
//! points):
//! - the fitted strengths sum to zero (the prior's gradient λ·r must balance a
//!   likelihood gradient that sums to zero), so **the mean displayed rating is
//!   exactly 1000**; the result is re-centred after the fit to make this exact
//!   to rounding. FastChat instead pins one named model (mixtral-8x7b-instruct
//!   at 1114); callers who want that shift every rating by the same constant.
//! - an undefeated system gets a large but finite rating (six wins and no
//!   losses against two others put it about 1850 points above them in
//!   `tests/reference.rs`), with a correspondingly wide bootstrap interval. It
//!   never becomes NaN or infinite.
//! - disconnected groups of systems (no battles between them) are each centred
//!   on 1000, and a system with no battles at all is rated 1000; ratings are
//!   not comparable across groups, which the bootstrap intervals do not show.
//!   [`components`] finds the groups, and [`leaderboard_by_group`] fits and
//!   ranks each on its own, so a caller can say the scales differ rather than
//!   present them as one.
//!
//! On data where the plain MLE exists, the prior's effect is negligible: under
//! 1e-4 Elo points on the 200-battle set pinned in `tests/reference.rs`.
//!
//! # Optimiser
//! Newton's method on the (strictly convex, thanks to the prior) objective,
//! with an Armijo backtracking line search, stopped when the Newton step is
//! below 1e-10 relative to the largest |r|. Each iteration solves an n × n
//! system by Cholesky, so a fit costs O(n³) per iteration: fine for the tens to
//! low hundreds of systems a leaderboard holds.
//!
//! # Intervals and rank
//! [`leaderboard`] refits on `rounds` bootstrap resamples of the battles (drawn
//! with replacement, equivalently a multinomial over the unique battle rows,
//! from a ChaCha8 generator seeded with `seed`), reports the (1 − c)/2 and
//! (1 + c)/2 quantiles of each system's rating, and ranks with FastChat's rule
//! `rank = 1 + #{systems whose lower bound > own upper bound}`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, check_confidence};
use crate::pairwise::check_rounds;
use crate::quantile::percentile_interval;

/// A battle: `(a, b, outcome)` with system indices `a`, `b` below `n_systems`
/// and `outcome` 1 when a wins, 0.5 for a tie, 0 when b wins.
pub type Battle = (usize, usize, f64);

/// Default precision λ of the Gaussian prior on strengths (see the module docs).
pub const DEFAULT_PRIOR: f64 = 1e-4;

/// The most systems a fit accepts: each Newton step factors an n × n matrix
/// (128 MiB of Hessian at this size).
pub const MAX_SYSTEMS: usize = 4096;

/// Elo-scale points per unit of strength.
pub const ELO_SCALE: f64 = 400.0;

/// The mean displayed rating.
pub const ELO_ANCHOR: f64 = 1000.0;

/// ln 10: strengths are in base-10 log-odds.
const LN_10: f64 = std::f64::consts::LN_10;

/// Relative tolerance on the Newton step.
const TOLERANCE: f64 = 1e-10;

/// Newton iterations before giving up.
const MAX_ITERATIONS: usize = 200;

/// Relative size of an objective decrease too small to check in floating
/// point (a few hundred ulps).
pub(crate) const RESOLVABLE: f64 = 1e-13;

/// Settings for [`leaderboard`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BtOptions {
    /// Precision λ of the Gaussian prior on strengths; must be positive.
    pub prior: f64,
    /// Bootstrap rounds (FastChat's default, 100).
    pub rounds: usize,
    /// Two-sided confidence level of the rating intervals (0.95).
    pub confidence: f64,
    /// Seed of the bootstrap generator.
    pub seed: u64,
}

impl Default for BtOptions {
    fn default() -> Self {
        BtOptions {
            prior: DEFAULT_PRIOR,
            rounds: 100,
            confidence: 0.95,
            seed: 0,
        }
    }
}

/// A point fit of the Bradley–Terry model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BtFit {
    /// Displayed ratings, 400·r + 1000, indexed by system; their mean is 1000.
    pub ratings: Vec<f64>,
    /// Strengths r (base-10 log-odds units), indexed by system; they sum to 0.
    pub strengths: Vec<f64>,
    /// Newton iterations the fit took.
    pub iterations: usize,
}

/// One leaderboard row.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RatedSystem {
    /// The system's index.
    pub system: usize,
    /// Rating fitted on all battles.
    pub rating: f64,
    /// Lower bootstrap quantile of the rating ((1 − c)/2, q025 by default).
    pub lower: f64,
    /// Upper bootstrap quantile of the rating ((1 + c)/2, q975 by default).
    pub upper: f64,
    /// 1 + the number of systems whose `lower` exceeds this one's `upper`; tied
    /// systems share a rank.
    pub rank: usize,
    /// Battles the system took part in.
    pub battles: u64,
}

/// Fits Bradley–Terry ratings to `battles` among `n_systems` systems with prior
/// precision `prior` ([`DEFAULT_PRIOR`] unless there is a reason).
///
/// # Errors
/// [`Error::Empty`] for no systems or no battles; [`Error::SystemOutOfRange`],
/// [`Error::SelfBattle`], [`Error::NonFinite`] or [`Error::OutOfRange`] (outcome
/// outside [0, 1]) for a bad battle; [`Error::InvalidParameter`] unless
/// `prior` is positive and finite, or for more than [`MAX_SYSTEMS`] systems.
pub fn fit(n_systems: usize, battles: &[Battle], prior: f64) -> Result<BtFit> {
    let data = Pairs::new(n_systems, battles, prior)?;
    let weights: Vec<(f64, f64)> = data.full_weights();
    let (strengths, iterations) = newton(&data, &weights, vec![0.0; n_systems])?;
    Ok(BtFit {
        ratings: to_ratings(&strengths),
        strengths,
        iterations,
    })
}

/// A Bradley–Terry leaderboard with bootstrap intervals and ranks, one row per
/// system in index order (sort by `rank` or `rating` for display).
///
/// # Errors
/// As [`fit`], plus [`Error::InvalidParameter`] for `rounds == 0` or a
/// `confidence` not strictly between 0 and 1.
pub fn leaderboard(
    n_systems: usize,
    battles: &[Battle],
    options: &BtOptions,
) -> Result<Vec<RatedSystem>> {
    check_rounds(options.rounds)?;
    check_confidence(options.confidence)?;
    let data = Pairs::new(n_systems, battles, options.prior)?;
    let (point, _) = newton(&data, &data.full_weights(), vec![0.0; n_systems])?;

    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut samples = vec![Vec::with_capacity(options.rounds); n_systems];
    let mut weights = vec![(0.0, 0.0); data.pairs.len()];
    for _ in 0..options.rounds {
        weights.fill((0.0, 0.0));
        for _ in 0..data.battle_pair.len() {
            let (pair, y) = data.battle_pair[rng.random_range(0..data.battle_pair.len())];
            weights[pair].0 += 1.0;
            weights[pair].1 += y;
        }
        // Warm start from the full-data fit: resamples are close to it.
        let (strengths, _) = newton(&data, &weights, point.clone())?;
        for (sample, r) in samples.iter_mut().zip(to_ratings(&strengths)) {
            sample.push(r);
        }
    }

    let ratings = to_ratings(&point);
    let intervals: Vec<(f64, f64)> = samples
        .iter_mut()
        .map(|s| percentile_interval(s, options.confidence))
        .collect();
    let rows = (0..n_systems)
        .map(|i| RatedSystem {
            system: i,
            rating: ratings[i],
            lower: intervals[i].0,
            upper: intervals[i].1,
            rank: 1 + intervals.iter().filter(|o| o.0 > intervals[i].1).count(),
            battles: data.battles_per_system[i],
        })
        .collect();
    Ok(rows)
}

/// The connected components of the comparison graph (systems as nodes, a
/// battle as an edge), each in increasing index order, ordered by their
/// smallest index. A system without battles is a component of its own. Ratings
/// from different components are on different scales: nothing links them.
///
/// # Errors
/// [`Error::SystemOutOfRange`] for a battle naming a system `>= n_systems`.
pub fn components(n_systems: usize, battles: &[Battle]) -> Result<Vec<Vec<usize>>> {
    // Union-find with path halving; tiny inputs (systems, not battles) dominate.
    let mut parent: Vec<usize> = (0..n_systems).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (index, &(a, b, _)) in battles.iter().enumerate() {
        for system in [a, b] {
            if system >= n_systems {
                return Err(Error::SystemOutOfRange {
                    index,
                    system,
                    n_systems,
                });
            }
        }
        let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
        if ra != rb {
            parent[ra.max(rb)] = ra.min(rb);
        }
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_of_root: Vec<Option<usize>> = vec![None; n_systems];
    for i in 0..n_systems {
        let r = root(&mut parent, i);
        match group_of_root[r] {
            Some(g) => groups[g].push(i),
            None => {
                group_of_root[r] = Some(groups.len());
                groups.push(vec![i]);
            }
        }
    }
    Ok(groups)
}

/// One connected group's leaderboard (see [`leaderboard_by_group`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupBoard {
    /// The group's systems, in increasing index order.
    pub systems: Vec<usize>,
    /// Its leaderboard, in the group's index order, with the original system
    /// indices; empty for a system without battles (nothing to rate it on).
    /// Ratings average 1000 within the group, and ranks count only its members.
    pub rows: Vec<RatedSystem>,
}

/// [`leaderboard`] fitted separately on each connected component of the
/// comparison graph ([`components`]), so that ranks and intervals never compare
/// systems that never met. On a connected graph this is one group whose rows are
/// exactly [`leaderboard`]'s.
///
/// # Errors
/// As [`leaderboard`], except that a system without battles is not an error
/// (its group has no rows); [`Error::Empty`] when there are no battles at all.
pub fn leaderboard_by_group(
    n_systems: usize,
    battles: &[Battle],
    options: &BtOptions,
) -> Result<Vec<GroupBoard>> {
    if battles.is_empty() {
        return Err(Error::Empty { what: "battles" });
    }
    let groups = components(n_systems, battles)?;
    let mut group_of = vec![0; n_systems];
    let mut position = vec![0; n_systems];
    for (g, systems) in groups.iter().enumerate() {
        for (p, &i) in systems.iter().enumerate() {
            group_of[i] = g;
            position[i] = p;
        }
    }
    let mut local: Vec<Vec<Battle>> = vec![Vec::new(); groups.len()];
    for &(a, b, y) in battles {
        local[group_of[a]].push((position[a], position[b], y));
    }
    groups
        .into_iter()
        .zip(local)
        .map(|(systems, battles)| {
            let rows = if battles.is_empty() {
                Vec::new()
            } else {
                leaderboard(systems.len(), &battles, options)?
                    .into_iter()
                    .map(|row| RatedSystem {
                        system: systems[row.system],
                        ..row
                    })
                    .collect()
            };
            Ok(GroupBoard { systems, rows })
        })
        .collect()
}

/// Validated battles, aggregated per unordered pair.
struct Pairs {
    /// Number of systems.
    n: usize,
    /// Prior precision.
    prior: f64,
    /// Unordered pairs (i < j) that met at least once.
    pairs: Vec<(usize, usize)>,
    /// For each battle: its pair's index in `pairs`, and the outcome from the
    /// point of view of the pair's first system.
    battle_pair: Vec<(usize, f64)>,
    /// Battles per system, for the leaderboard.
    battles_per_system: Vec<u64>,
}

impl Pairs {
    /// Validates `battles` and groups them by pair.
    fn new(n: usize, battles: &[Battle], prior: f64) -> Result<Pairs> {
        if n == 0 {
            return Err(Error::Empty { what: "systems" });
        }
        if battles.is_empty() {
            return Err(Error::Empty { what: "battles" });
        }
        if n > MAX_SYSTEMS {
            return Err(Error::InvalidParameter {
                name: "n_systems",
                expected: "at most MAX_SYSTEMS (4096)",
                value: n as f64,
            });
        }
        if !(prior > 0.0 && prior.is_finite()) {
            return Err(Error::InvalidParameter {
                name: "prior",
                expected: "positive and finite",
                value: prior,
            });
        }
        let mut index = std::collections::HashMap::new();
        let mut pairs = Vec::new();
        let mut battle_pair = Vec::with_capacity(battles.len());
        let mut battles_per_system = vec![0u64; n];
        for (k, &(a, b, y)) in battles.iter().enumerate() {
            for system in [a, b] {
                if system >= n {
                    return Err(Error::SystemOutOfRange {
                        index: k,
                        system,
                        n_systems: n,
                    });
                }
            }
            if a == b {
                return Err(Error::SelfBattle {
                    index: k,
                    system: a,
                });
            }
            if !y.is_finite() {
                return Err(Error::NonFinite {
                    what: "battle outcome",
                    index: k,
                    value: y,
                });
            }
            if !(0.0..=1.0).contains(&y) {
                return Err(Error::OutOfRange {
                    what: "battle outcome",
                    index: k,
                    value: y,
                    min: 0.0,
                    max: 1.0,
                });
            }
            let (key, y) = if a < b {
                ((a, b), y)
            } else {
                ((b, a), 1.0 - y)
            };
            let pair = *index.entry(key).or_insert_with(|| {
                pairs.push(key);
                pairs.len() - 1
            });
            battle_pair.push((pair, y));
            battles_per_system[a] += 1;
            battles_per_system[b] += 1;
        }
        Ok(Pairs {
            n,
            prior,
            pairs,
            battle_pair,
            battles_per_system,
        })
    }

    /// (battle count, summed outcome) per pair over all battles.
    fn full_weights(&self) -> Vec<(f64, f64)> {
        let mut weights = vec![(0.0, 0.0); self.pairs.len()];
        for &(pair, y) in &self.battle_pair {
            weights[pair].0 += 1.0;
            weights[pair].1 += y;
        }
        weights
    }

    /// The negative log-posterior at strengths `r`, for per-pair weights
    /// `(count, summed outcome)`.
    fn objective(&self, weights: &[(f64, f64)], r: &[f64]) -> f64 {
        let mut f = 0.5 * self.prior * r.iter().map(|x| x * x).sum::<f64>();
        for (&(i, j), &(w, s)) in self.pairs.iter().zip(weights) {
            if w == 0.0 {
                continue;
            }
            let z = LN_10 * (r[i] - r[j]);
            f += s * softplus(-z) + (w - s) * softplus(z);
        }
        f
    }
}

/// Minimises [`Pairs::objective`] from `r`; returns the centred strengths and
/// the iteration count.
fn newton(data: &Pairs, weights: &[(f64, f64)], mut r: Vec<f64>) -> Result<(Vec<f64>, usize)> {
    let n = data.n;
    let mut grad = vec![0.0; n];
    let mut hess = vec![0.0; n * n];
    for iteration in 1..=MAX_ITERATIONS {
        grad.iter_mut()
            .zip(&r)
            .for_each(|(g, x)| *g = data.prior * x);
        hess.fill(0.0);
        for i in 0..n {
            hess[i * n + i] = data.prior;
        }
        for (&(i, j), &(w, s)) in data.pairs.iter().zip(weights) {
            if w == 0.0 {
                continue;
            }
            let p = sigmoid(LN_10 * (r[i] - r[j]));
            let g = LN_10 * (w * p - s);
            grad[i] += g;
            grad[j] -= g;
            let h = LN_10 * LN_10 * w * p * (1.0 - p);
            hess[i * n + i] += h;
            hess[j * n + j] += h;
            hess[i * n + j] -= h;
            hess[j * n + i] -= h;
        }
        let step = solve_spd(&mut hess, n, &grad).ok_or(Error::NotConverged {
            what: "Bradley-Terry fit",
            iterations: iteration,
        })?;
        // `step` solves H·step = grad; the Newton direction is −step.
        let scale = r.iter().fold(1.0_f64, |m, x| m.max(x.abs()));
        let size = step.iter().fold(0.0_f64, |m, x| m.max(x.abs()));
        if size <= TOLERANCE * scale {
            r.iter_mut().zip(&step).for_each(|(x, d)| *x -= d);
            centre(&mut r);
            return Ok((r, iteration));
        }
        let f0 = data.objective(weights, &r);
        let slope: f64 = -grad.iter().zip(&step).map(|(g, d)| g * d).sum::<f64>();
        let mut t = 1.0;
        let mut trial = vec![0.0; n];
        loop {
            trial
                .iter_mut()
                .zip(r.iter().zip(&step))
                .for_each(|(x, (r, d))| *x = r - t * d);
            // Close to the optimum the predicted decrease falls below what f can
            // resolve; Newton is then in its quadratic phase and takes full steps.
            if -slope <= RESOLVABLE * (1.0 + f0.abs())
                || data.objective(weights, &trial) <= f0 + 1e-4 * t * slope
            {
                break;
            }
            t /= 2.0;
            if t < 1e-12 {
                return Err(Error::NotConverged {
                    what: "Bradley-Terry fit",
                    iterations: iteration,
                });
            }
        }
        std::mem::swap(&mut r, &mut trial);
    }
    Err(Error::NotConverged {
        what: "Bradley-Terry fit",
        iterations: MAX_ITERATIONS,
    })
}

/// Solves `a·x = b` for symmetric positive definite `a` (row-major n × n,
/// overwritten by its Cholesky factor). `None` if `a` is not numerically
/// positive definite.
fn solve_spd(a: &mut [f64], n: usize, b: &[f64]) -> Option<Vec<f64>> {
    // In-place Cholesky: lower triangle of `a` becomes L with a = L·Lᵀ.
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d.is_nan() || d <= 0.0 {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut v = a[i * n + j];
            for k in 0..j {
                v -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = v / d;
        }
    }
    // Forward substitution L·y = b, then back substitution Lᵀ·x = y.
    let mut x = b.to_vec();
    for i in 0..n {
        for k in 0..i {
            x[i] -= a[i * n + k] * x[k];
        }
        x[i] /= a[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            x[i] -= a[k * n + i] * x[k];
        }
        x[i] /= a[i * n + i];
    }
    Some(x)
}

/// Subtracts the mean so the strengths sum to zero.
fn centre(r: &mut [f64]) {
    let mean = r.iter().sum::<f64>() / r.len() as f64;
    r.iter_mut().for_each(|x| *x -= mean);
}

/// Strengths to displayed ratings.
fn to_ratings(r: &[f64]) -> Vec<f64> {
    r.iter().map(|x| ELO_SCALE * x + ELO_ANCHOR).collect()
}

/// The logistic function, without overflow.
pub(crate) fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// ln(1 + eᶻ) = −ln σ(−z), without overflow or loss of precision.
pub(crate) fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mean_rating_is_the_anchor() {
        let battles = [(0, 1, 1.0), (1, 2, 0.5), (2, 0, 0.0), (0, 1, 0.0)];
        let fit = fit(3, &battles, DEFAULT_PRIOR).unwrap();
        let mean = fit.ratings.iter().sum::<f64>() / 3.0;
        assert!((mean - 1000.0).abs() < 1e-9);
    }

    #[test]
    fn an_undefeated_system_gets_a_large_finite_rating() {
        let battles = [(0, 1, 1.0), (0, 1, 1.0), (1, 2, 0.5), (2, 1, 1.0)];
        let fit = fit(3, &battles, DEFAULT_PRIOR).unwrap();
        assert!(fit.ratings.iter().all(|r| r.is_finite()));
        assert!(fit.ratings[0] > fit.ratings[2] && fit.ratings[2] > fit.ratings[1]);
        assert!(fit.ratings[0] > 2000.0, "{:?}", fit.ratings);
    }

    #[test]
    fn disconnected_groups_and_idle_systems_stay_finite() {
        // {0,1} and {2,3} never meet; 4 never plays.
        let battles = [(0, 1, 1.0), (1, 0, 0.5), (2, 3, 0.0), (3, 2, 1.0)];
        let board = leaderboard(5, &battles, &BtOptions::default()).unwrap();
        for row in &board {
            assert!(row.rating.is_finite() && row.lower.is_finite() && row.upper.is_finite());
        }
        assert!((board[4].rating - 1000.0).abs() < 1e-9);
        assert_eq!(board[4].battles, 0);
        // Each group is centred on its own.
        assert!((board[0].rating + board[1].rating - 2000.0).abs() < 1e-6);
    }

    #[test]
    fn components_split_systems_that_never_met() {
        let battles = [(0, 1, 1.0), (3, 2, 0.5), (1, 4, 0.0)];
        assert_eq!(
            components(6, &battles).unwrap(),
            vec![vec![0, 1, 4], vec![2, 3], vec![5]]
        );
        assert_eq!(components(3, &[(0, 1, 1.0), (1, 2, 1.0)]).unwrap().len(), 1);
        assert!(matches!(
            components(2, &[(0, 2, 1.0)]),
            Err(Error::SystemOutOfRange { system: 2, .. })
        ));
    }

    #[test]
    fn each_group_is_fitted_and_ranked_on_its_own() {
        // {0,1}: 0 always wins; {2,3}: 3 always wins; 4 never plays.
        let battles = [
            (0, 1, 1.0),
            (0, 1, 1.0),
            (1, 0, 0.0),
            (2, 3, 0.0),
            (3, 2, 1.0),
            (3, 2, 1.0),
        ];
        let options = BtOptions::default();
        let groups = leaderboard_by_group(5, &battles, &options).unwrap();
        assert_eq!(
            groups.iter().map(|g| g.systems.clone()).collect::<Vec<_>>(),
            vec![vec![0, 1], vec![2, 3], vec![4]]
        );
        assert!(groups[2].rows.is_empty(), "nothing to rate system 4 on");
        // Each group is the leaderboard of its own battles, renumbered.
        let alone = leaderboard(2, &[(0, 1, 1.0), (0, 1, 1.0), (1, 0, 0.0)], &options).unwrap();
        assert_eq!(groups[0].rows, alone);
        let second: Vec<usize> = groups[1].rows.iter().map(|r| r.system).collect();
        assert_eq!(second, vec![2, 3]);
        for group in &groups[..2] {
            let mean: f64 = group.rows.iter().map(|r| r.rating).sum::<f64>() / 2.0;
            assert!((mean - ELO_ANCHOR).abs() < 1e-6, "{group:?}");
            assert!(group.rows.iter().any(|r| r.rank == 1));
        }
        // Connected input: one group, exactly the plain leaderboard.
        let connected = [(0, 1, 1.0), (1, 2, 0.5), (2, 0, 0.0)];
        let one = leaderboard_by_group(3, &connected, &options).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].rows, leaderboard(3, &connected, &options).unwrap());
        assert!(matches!(
            leaderboard_by_group(3, &[], &options),
            Err(Error::Empty { .. })
        ));
    }

    #[test]
    fn all_ties_give_equal_ratings_and_a_shared_first_rank() {
        let battles = [(0, 1, 0.5), (1, 2, 0.5), (2, 0, 0.5)];
        let board = leaderboard(3, &battles, &BtOptions::default()).unwrap();
        for row in &board {
            assert!((row.rating - 1000.0).abs() < 1e-9);
            assert_eq!(row.rank, 1);
        }
    }

    #[test]
    fn bad_battles_are_rejected() {
        assert!(matches!(
            fit(2, &[(0, 2, 1.0)], DEFAULT_PRIOR),
            Err(Error::SystemOutOfRange { system: 2, .. })
        ));
        assert!(matches!(
            fit(2, &[(1, 1, 1.0)], DEFAULT_PRIOR),
            Err(Error::SelfBattle { .. })
        ));
        assert!(matches!(
            fit(2, &[(0, 1, f64::NAN)], DEFAULT_PRIOR),
            Err(Error::NonFinite { .. })
        ));
        assert!(matches!(
            fit(2, &[(0, 1, 2.0)], DEFAULT_PRIOR),
            Err(Error::OutOfRange { .. })
        ));
        assert!(matches!(
            fit(2, &[], DEFAULT_PRIOR),
            Err(Error::Empty { .. })
        ));
        assert!(matches!(
            fit(0, &[], DEFAULT_PRIOR),
            Err(Error::Empty { .. })
        ));
        assert!(fit(2, &[(0, 1, 1.0)], 0.0).is_err());
        assert!(matches!(
            fit(usize::MAX, &[(0, 1, 1.0)], DEFAULT_PRIOR),
            Err(Error::InvalidParameter { .. })
        ));
        let bad_rounds = BtOptions {
            rounds: 0,
            ..BtOptions::default()
        };
        assert!(leaderboard(2, &[(0, 1, 1.0)], &bad_rounds).is_err());
    }

    #[test]
    fn softplus_and_sigmoid_survive_extreme_arguments() {
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(softplus(1000.0), 1000.0);
        assert_eq!(softplus(-1000.0), 0.0);
        assert!((softplus(0.0) - std::f64::consts::LN_2).abs() < 1e-16);
    }
}
