//! Statistics for the evaluation service: pairwise win rates with intervals,
//! Bradley–Terry leaderboards, length-controlled win rates and Pareto fronts.
//!
//! The formulas follow the anchors in `shared/docs/service.md` §1 (ALaRM,
//! AlpacaEval, Chatbot Arena); each module's docs say where this crate follows
//! them and where it deliberately differs.
//!
//! # Layout
//! - [`summary`]: [`Summary`], mean ± standard error (AlpacaEval's
//!   `win_rate`/`standard_error`).
//! - [`pairwise`]: [`Outcome`] (one item's result for a pair), [`PairCounts`] (wins/losses/ties, the ties-as-half and
//!   ALaRM's ties-excluded win rates, the Wilson interval) and
//!   [`bootstrap_ci`], a seeded percentile bootstrap of per-item outcomes.
//! - [`bradley_terry`]: Chatbot Arena's Bradley–Terry fit on the Elo scale
//!   ([`bradley_terry::fit`]) and the leaderboard with bootstrap intervals and
//!   ranks ([`bradley_terry::leaderboard`]); the comparison graph's connected
//!   groups ([`bradley_terry::components`]) and a leaderboard per group
//!   ([`bradley_terry::leaderboard_by_group`]).
//! - [`alpaca`]: AlpacaEval's columns against a fixed baseline from soft
//!   preferences ([`baseline_win_rate`]: win rate, standard error, wins, draws,
//!   discrete win rate).
//! - [`length_control`]: a simplified AlpacaEval 2.0 length-controlled win rate
//!   ([`length_controlled_win_rate`]).
//! - [`glm_winrate`]: AlpacaEval 2.0's length-controlled win rate
//!   (`length_controlled_v1`: per-system L1 GLM with instruction difficulties
//!   estimated by a joint fit, cross-validated C, gamed-baseline stand-in rows),
//!   [`length_controlled_all`].
//! - [`l1_logistic`]: L1-penalised logistic regression with row weights and
//!   soft labels, and its grouped cross-validation (the GLM's solver).
//! - [`pareto`]: [`pareto_front`] and exact [`hypervolume`] over several rewards.
//! - [`normal`]: the standard normal quantile behind every confidence level.
//! - [`error`]: the crate's [`Error`] and [`Result`].
//!
//! Every fit is deterministic: optimisers are exact Newton iterations, and the
//! bootstraps draw from a ChaCha8 generator seeded by the caller. The numbers
//! are pinned against an independent SciPy script in `tests/reference.rs`
//! (`reference/stats_reference.py`).
//!
//! ```
//! use evaluator_stats::PairCounts;
//!
//! let counts = PairCounts::from_outcomes(&[1.0, 1.0, 0.5, 0.0])?;
//! assert_eq!(counts.win_rate(), Some(0.625));
//! assert_eq!(counts.win_rate_excluding_ties(), Some(2.0 / 3.0));
//! let (lo, hi) = counts.wilson_ci(0.95).expect("four items");
//! assert!(lo < 0.625 && 0.625 < hi);
//! # Ok::<(), evaluator_stats::Error>(())
//! ```

pub mod alpaca;
pub mod bradley_terry;
pub mod error;
pub mod glm_winrate;
pub mod l1_logistic;
pub mod length_control;
pub mod normal;
pub mod pairwise;
pub mod pareto;
mod quantile;
pub mod summary;

pub use alpaca::{BaselineWinRate, baseline_win_rate};
pub use bradley_terry::{Battle, BtFit, BtOptions, RatedSystem};
pub use error::{Error, Result};
pub use glm_winrate::{
    BaselineRegularization, GlmOptions, GlmWinRate, JudgedItem, LcReport, SystemJudgments,
    length_controlled_all,
};
pub use length_control::{LengthControlled, length_controlled_win_rate};
pub use normal::{normal_quantile, z_for_confidence};
pub use pairwise::{Outcome, PairCounts, bootstrap_ci};
pub use pareto::{Direction, hypervolume, pareto_front};
pub use summary::Summary;
