//! The leaderboard against a fixed baseline from a judge's soft preferences,
//! AlpacaEval's way: per system the win rate and its standard error, wins and
//! draws, the discrete win rate, the average length, AlpacaEval 2.0's
//! length-controlled win rate, and a Bradley–Terry rating from the same
//! preferences.
//!
//! The rows come from [`crate::db::judgments`]; the numbers from
//! `evaluator-stats` ([`evaluator_stats::alpaca`] for the plain columns,
//! [`evaluator_stats::glm_winrate`] for the length-controlled one). The
//! length-controlled fit takes seconds for thirty systems, so a computed
//! leaderboard is stored per judge version and baseline, and served from
//! there until the judge's judgments change.
//!
//! The baseline's own row is the baseline judged against itself, as
//! AlpacaEval lists it: every item it answered a draw (win rate 50, LC 50).

use std::collections::HashMap;

use evaluator_stats::bradley_terry::{self, BtOptions};
use evaluator_stats::glm_winrate::{self, GlmOptions, JudgedItem, SystemJudgments};
use evaluator_stats::{Battle, baseline_win_rate};
use sqlx::PgPool;

use crate::db::judgments as rows;
use crate::domain::{BaselineLeaderboard, BaselineRow, DatasetId, ItemId};
use crate::error::{Error, Result};

/// What a caller asks for when the judge or the baseline is not there.
#[derive(Debug, thiserror::Error)]
pub enum Missing {
    /// No judge of that name on the dataset.
    #[error("dataset `{dataset}` has no judge `{judge}` (`evaluator push-judgments` adds one)")]
    Judge {
        /// The dataset.
        dataset: String,
        /// The judge asked for.
        judge: String,
    },
    /// No system of that name with generations on the dataset.
    #[error("dataset `{dataset}` has no system `{baseline}` with generations to be the baseline")]
    Baseline {
        /// The dataset.
        dataset: String,
        /// The baseline asked for.
        baseline: String,
    },
    /// The judge never compared anything with the baseline.
    #[error("judge `{judge}` has no judgments against `{baseline}` on dataset `{dataset}`")]
    NoJudgments {
        /// The dataset.
        dataset: String,
        /// The judge.
        judge: String,
        /// The baseline.
        baseline: String,
    },
    /// Anything else.
    #[error(transparent)]
    Failed(#[from] Error),
}

/// Describes the length-controlled column on every leaderboard.
pub const LENGTH_CONTROL: &str = "AlpacaEval 2.0's length-controlled win rate (a logistic model per \
    system with the length difference through tanh, an instruction difficulty and the system's \
    quality, read at equal length and averaged over items), with the instruction difficulties \
    estimated from this judge's judgments of every system on the dataset";

/// [`LENGTH_CONTROL`], and how the fit was regularised towards the baseline.
fn describe_length_control(report: Option<&glm_winrate::LcReport>) -> String {
    let pairs = report
        .map(|r| r.regularization_pairs.as_slice())
        .unwrap_or(&[]);
    if pairs.is_empty() {
        return format!(
            "{LENGTH_CONTROL}; without gamed-baseline rows (AlpacaEval's `length_controlled_noreg`: \
             no prompted verbose/concise pair of one model is on the dataset)"
        );
    }
    let listed: Vec<String> = pairs.iter().map(|(u, v)| format!("{u} → {v}")).collect();
    format!(
        "{LENGTH_CONTROL}; regularised towards the baseline as upstream (λ = 0.2), with the gamed \
         baselines' rows stood in for by one model prompted verbose and concise ({})",
        listed.join(", ")
    )
}

/// The leaderboard of `judge`'s judgments against `baseline` on the dataset,
/// from the cache when the judgments have not changed since it was computed.
pub async fn leaderboard(
    pool: &PgPool,
    dataset: (DatasetId, &str),
    judge: &str,
    baseline: &str,
) -> Result<BaselineLeaderboard, Missing> {
    let (dataset_id, dataset_name) = dataset;
    let (judge_id, version) =
        rows::find(pool, dataset_id, judge)
            .await?
            .ok_or_else(|| Missing::Judge {
                dataset: dataset_name.to_string(),
                judge: judge.to_string(),
            })?;
    let baseline_id = rows::system_on(pool, dataset_id, baseline)
        .await?
        .ok_or_else(|| Missing::Baseline {
            dataset: dataset_name.to_string(),
            baseline: baseline.to_string(),
        })?;
    if let Some(body) = rows::cached_leaderboard(pool, judge_id, baseline_id, version).await?
        && let Ok(board) = serde_json::from_value::<BaselineLeaderboard>(body)
        && board.dataset == dataset_name
    {
        return Ok(board);
    }
    let judged = rows::against_baseline(pool, judge_id, baseline_id).await?;
    if judged.is_empty() {
        return Err(Missing::NoJudgments {
            dataset: dataset_name.to_string(),
            judge: judge.to_string(),
            baseline: baseline.to_string(),
        });
    }
    let order = rows::item_order(pool, dataset_id).await?;
    let lengths = rows::average_lengths(pool, dataset_id).await?;
    let baseline_items = rows::items_of(pool, baseline_id, dataset_id).await?;
    let (dataset_name, judge, baseline) = (
        dataset_name.to_string(),
        judge.to_string(),
        baseline.to_string(),
    );
    let board = tokio::task::spawn_blocking(move || {
        compute(
            &dataset_name,
            &judge,
            &baseline,
            &judged,
            &order,
            &baseline_items,
            &lengths,
        )
    })
    .await
    .map_err(|source| Error::TaskPanicked {
        task: "the baseline leaderboard",
        source,
    })??;
    let body = serde_json::to_value(&board)
        .map_err(|e| Error::Inconsistent(format!("leaderboard as JSON: {e}")))?;
    rows::cache_leaderboard(pool, judge_id, baseline_id, version, &body).await?;
    Ok(board)
}

/// The numbers, from the rows: the plain columns per system, the
/// length-controlled fit over all systems at once (it estimates the
/// instruction difficulties from them), and Bradley–Terry over the star of
/// battles with the baseline.
fn compute(
    dataset: &str,
    judge: &str,
    baseline: &str,
    judged: &[rows::AgainstBaseline],
    order: &[ItemId],
    baseline_items: &[ItemId],
    lengths: &HashMap<String, i64>,
) -> Result<BaselineLeaderboard> {
    let position: HashMap<ItemId, usize> =
        order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    // Systems in name order (the rows come sorted), the baseline first.
    let mut names: Vec<&str> = vec![baseline];
    let mut items: Vec<Vec<JudgedItem>> = vec![
        baseline_items
            .iter()
            .map(|id| JudgedItem {
                item: position[id],
                preference: Some(0.5),
                length_delta: 0.0,
            })
            .collect(),
    ];
    for row in judged {
        if names.last() != Some(&row.system.as_str()) {
            names.push(&row.system);
            items.push(Vec::new());
        }
        let Some(&item) = position.get(&row.item_id) else {
            return Err(Error::Inconsistent(format!(
                "judged item {} is not on the dataset",
                row.item_id
            )));
        };
        if let Some(list) = items.last_mut() {
            list.push(JudgedItem {
                item,
                preference: row.preference,
                length_delta: f64::from(row.baseline_length - row.system_length),
            });
        }
    }

    let systems: Vec<SystemJudgments<'_>> = names
        .iter()
        .zip(&items)
        .map(|(name, items)| SystemJudgments { name, items })
        .collect();
    // A fit that fails leaves the column empty and says why, rather than
    // failing the win rates, which need no fit.
    let (lc, lc_error) =
        match glm_winrate::length_controlled_all(&systems, order.len(), &GlmOptions::default()) {
            Ok(report) => (Some(report), None),
            Err(e) => (None, Some(format!("the length-controlled fit failed: {e}"))),
        };

    // Every judged item is a soft battle between the baseline (index 0) and
    // the system.
    let battles: Vec<Battle> = items
        .iter()
        .enumerate()
        .skip(1)
        .flat_map(|(s, list)| {
            list.iter()
                .filter_map(move |j| j.preference.map(|p| (s, 0, p)))
        })
        .collect();
    let ratings = bradley_terry::leaderboard(names.len(), &battles, &BtOptions::default())?;

    let mut rows_out = Vec::with_capacity(names.len());
    for (index, (name, list)) in names.iter().zip(&items).enumerate() {
        let preferences: Vec<Option<f64>> = list.iter().map(|j| j.preference).collect();
        let Some(plain) = baseline_win_rate(&preferences)? else {
            continue;
        };
        let fitted = lc.as_ref().map(|report| &report.systems[index]);
        let rated = &ratings[index];
        rows_out.push(BaselineRow {
            system: name.to_string(),
            win_rate: 100.0 * plain.win_rate,
            standard_error: 100.0 * plain.standard_error,
            n_wins: plain.n_wins,
            n_wins_base: plain.n_wins_base,
            n_draws: plain.n_draws,
            n_total: plain.n_total,
            discrete_win_rate: 100.0 * plain.discrete_win_rate,
            avg_length: lengths.get(*name).copied().unwrap_or(0),
            length_controlled_winrate: fitted.map(|f| 100.0 * f.win_rate),
            lc_standard_error: fitted.map(|f| 100.0 * f.standard_error),
            rating: rated.rating,
            rating_ci: [rated.lower, rated.upper],
        });
    }
    rows_out.sort_by(|x, y| {
        let key = |r: &BaselineRow| r.length_controlled_winrate.unwrap_or(r.win_rate);
        key(y).total_cmp(&key(x)).then(x.system.cmp(&y.system))
    });
    Ok(BaselineLeaderboard {
        dataset: dataset.to_string(),
        judge: judge.to_string(),
        baseline: baseline.to_string(),
        length_control: describe_length_control(lc.as_ref()),
        length_control_error: lc_error,
        systems: rows_out,
    })
}
