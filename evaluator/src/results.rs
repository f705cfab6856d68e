//! The statistics the service reports, computed from [`crate::db::results`]'
//! rows with `evaluator-stats`: per system and metric the mean and standard
//! error, per pair of systems the win rates with their interval and the
//! length-controlled rate, and a comparison's Bradley–Terry leaderboard. The
//! database layer only reads and stores; everything numeric happens here (a
//! learned reward's summary, computed once when its scores are pushed, in
//! `db::scores` with the same crate).

use std::collections::{BTreeMap, HashMap};

use evaluator_stats::PairCounts;
use sqlx::PgPool;

use crate::db::results as rows;
use crate::domain::{
    DatasetId, DatasetResults, Direction, JobId, JobState, Leaderboard, LeaderboardEntry,
    MetricSummary, ModuleId, PairResult, SystemId, SystemResults, parse_direction,
};
use crate::error::{Error, Result};

/// The normal quantile of a two-sided 95% interval: what the CLI and the
/// pages print is mean ± `Z95`·stderr, so both show the same half-width.
pub const Z95: f64 = 1.96;

/// Every metric key of the results, with the direction its first system reports.
pub fn metric_keys(results: &DatasetResults) -> BTreeMap<String, Direction> {
    let mut keys = BTreeMap::new();
    for system in &results.systems {
        for (key, summary) in &system.metrics {
            keys.entry(key.clone()).or_insert(summary.direction);
        }
    }
    keys
}

/// The results of every scorer that has scored generations of the dataset.
/// Modules are named by the name they declare; when two stored modules declare
/// the same name, each is named `name#id`.
pub async fn dataset_results(
    pool: &PgPool,
    dataset_id: DatasetId,
    dataset: &str,
) -> Result<DatasetResults> {
    let summaries = rows::summaries(pool, dataset_id).await?;
    let mut ids_by_name: HashMap<&str, Vec<ModuleId>> = HashMap::new();
    for row in &summaries {
        let ids = ids_by_name.entry(&row.module).or_default();
        if !ids.contains(&row.module_id) {
            ids.push(row.module_id);
        }
    }
    let ambiguous: Vec<ModuleId> = ids_by_name
        .values()
        .filter(|ids| ids.len() > 1)
        .flatten()
        .copied()
        .collect();
    let mut systems: Vec<SystemResults> = Vec::new();
    for row in &summaries {
        if systems.last().is_none_or(|s| s.system != row.system) {
            systems.push(SystemResults {
                system: row.system.clone(),
                metadata: row.metadata.clone(),
                metrics: BTreeMap::new(),
            });
        }
        let module = if ambiguous.contains(&row.module_id) {
            format!("{}#{}", row.module, row.module_id)
        } else {
            row.module.clone()
        };
        // Every value null: no mean to report.
        if row.n == 0 {
            continue;
        }
        let stderr = if row.n > 1 {
            (row.m2.max(0.0) / (row.n - 1) as f64).sqrt() / (row.n as f64).sqrt()
        } else {
            0.0
        };
        let direction = parse_direction(&row.direction)?;
        if let Some(system) = systems.last_mut() {
            system.metrics.insert(
                format!("{module}/{}", row.metric),
                MetricSummary {
                    mean: row.mean,
                    stderr,
                    n: row.n,
                    nulls: row.nulls,
                    direction,
                    learned: None,
                },
            );
        }
    }
    add_learned(
        &mut systems,
        crate::db::scores::summaries(pool, dataset_id).await?,
    );
    Ok(DatasetResults {
        dataset: dataset.to_string(),
        systems,
    })
}

/// Adds the learned rewards (`push-scores`) to the modules' results: keyed by
/// their name, which has no `/` and so never meets a `<module>/<metric>` key;
/// higher is better (a reward); their mean and standard error were computed
/// with evaluator-stats' [`Summary`](evaluator_stats::Summary) when pushed.
fn add_learned(systems: &mut Vec<SystemResults>, learned: Vec<crate::db::scores::LearnedRow>) {
    let mut added = false;
    for row in learned {
        let index = match systems.iter().position(|s| s.system == row.system) {
            Some(index) => index,
            None => {
                added = true;
                systems.push(SystemResults {
                    system: row.system.clone(),
                    metadata: row.metadata.clone(),
                    metrics: BTreeMap::new(),
                });
                systems.len() - 1
            }
        };
        systems[index].metrics.insert(
            row.metric,
            MetricSummary {
                mean: row.mean,
                stderr: row.stderr,
                n: row.n,
                nulls: 0,
                direction: Direction::HigherIsBetter,
                learned: Some(row.learned),
            },
        );
    }
    if added {
        systems.sort_by(|a, b| a.system.cmp(&b.system));
    }
}

/// The per-pair results of a comparison job, by the pair's names.
pub async fn pair_results(pool: &PgPool, job_id: JobId) -> Result<Vec<PairResult>> {
    let mut pairs = rows::pair_summaries(pool, job_id).await?;
    if pairs.iter().any(|r| !r.lc_computed) {
        fill_length_control(pool, job_id, &mut pairs).await?;
    }
    let answered: HashMap<SystemId, i64> = rows::job_system_items(pool, job_id)
        .await?
        .into_iter()
        .collect();
    let items = |system: SystemId| answered.get(&system).copied().unwrap_or(0).max(0) as u64;
    Ok(pairs
        .into_iter()
        .map(|row| {
            let counts = PairCounts {
                wins: row.wins.max(0) as u64,
                losses: row.losses.max(0) as u64,
                ties: row.ties.max(0) as u64,
            };
            PairResult {
                n: counts.n(),
                a_items: items(row.system_a),
                b_items: items(row.system_b),
                a: row.a,
                b: row.b,
                wins: counts.wins,
                losses: counts.losses,
                ties: counts.ties,
                win_rate: counts.win_rate(),
                ci: counts.wilson_ci(0.95).map(|(lo, hi)| [lo, hi]),
                inconsistent: row.inconsistent.max(0) as u64,
                win_rate_excluding_ties: counts.win_rate_excluding_ties(),
                lc_win_rate: row.lc_win_rate,
            }
        })
        .collect())
}

/// Fits the length-controlled win rate of every pair from the per-item
/// outcomes and the responses' lengths in characters; stored once the job has
/// finished, so a finished comparison is fitted once.
async fn fill_length_control(
    pool: &PgPool,
    job_id: JobId,
    pairs: &mut [rows::PairSummaryRow],
) -> Result<()> {
    /// One pair's items: a's outcome (1, 0.5, 0) and both responses' lengths.
    #[derive(Default)]
    struct PairItems {
        outcomes: Vec<f64>,
        a: Vec<f64>,
        b: Vec<f64>,
    }
    let mut by_pair: HashMap<(SystemId, SystemId), PairItems> = HashMap::new();
    for item in rows::outcome_lengths(pool, job_id).await? {
        let entry = by_pair.entry((item.system_a, item.system_b)).or_default();
        entry.outcomes.push(item.outcome.score());
        entry.a.push(f64::from(item.len_a));
        entry.b.push(f64::from(item.len_b));
    }
    let fitted = tokio::task::spawn_blocking(move || {
        by_pair
            .into_iter()
            .map(|(pair, items)| {
                let lc = evaluator_stats::length_controlled_win_rate(
                    &items.outcomes,
                    &items.a,
                    &items.b,
                    evaluator_stats::length_control::DEFAULT_LENGTH_PENALTY,
                )
                .ok()
                .map(|fit| fit.win_rate)
                .filter(|rate| rate.is_finite());
                (pair, lc)
            })
            .collect::<HashMap<_, _>>()
    })
    .await
    .map_err(|source| Error::TaskPanicked {
        task: "the length-control fit",
        source,
    })?;
    let finished = rows::job_state(pool, job_id).await? == Some(JobState::Succeeded);
    for row in pairs.iter_mut() {
        let pair = (row.system_a, row.system_b);
        row.lc_win_rate = fitted.get(&pair).copied().flatten();
        if finished {
            rows::store_length_control(pool, job_id, pair, row.lc_win_rate).await?;
        }
    }
    Ok(())
}

/// The Bradley–Terry leaderboard of a comparison (all its pairs' outcomes, ties
/// as half wins; Chatbot Arena's method), fitted on each connected group of the
/// comparison graph separately and flagged when there is more than one group.
/// Computed once a job has finished and stored; while it runs, computed from the
/// outcomes so far.
pub async fn leaderboard(pool: &PgPool, job_id: JobId) -> Result<Leaderboard> {
    let systems = rows::job_systems(pool, job_id).await?;
    let stored = rows::stored_leaderboard(pool, job_id).await?;
    if !stored.is_empty() {
        let groups = stored_groups(&stored, &systems);
        return Ok(Leaderboard::new(stored, groups));
    }
    let pairs = rows::pair_summaries(pool, job_id).await?;
    let index: HashMap<SystemId, usize> = systems
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (*id, i))
        .collect();
    let mut battles: Vec<evaluator_stats::Battle> = Vec::new();
    for pair in &pairs {
        let (Some(&a), Some(&b)) = (index.get(&pair.system_a), index.get(&pair.system_b)) else {
            continue;
        };
        for (count, outcome) in [(pair.wins, 1.0), (pair.losses, 0.0), (pair.ties, 0.5)] {
            battles.extend(std::iter::repeat_n((a, b, outcome), count.max(0) as usize));
        }
    }
    if battles.is_empty() {
        return Ok(Leaderboard::new(Vec::new(), Vec::new()));
    }
    let n = systems.len();
    let boards = tokio::task::spawn_blocking(move || {
        evaluator_stats::bradley_terry::leaderboard_by_group(
            n,
            &battles,
            &evaluator_stats::BtOptions::default(),
        )
    })
    .await
    .map_err(|source| Error::TaskPanicked {
        task: "the leaderboard fit",
        source,
    })??;
    let groups: Vec<Vec<String>> = boards
        .iter()
        .map(|board| {
            board
                .systems
                .iter()
                .map(|&i| systems[i].1.clone())
                .collect()
        })
        .collect();
    let mut entries: Vec<(SystemId, LeaderboardEntry)> = Vec::new();
    for (g, board) in boards.iter().enumerate() {
        for r in &board.rows {
            let (id, name) = &systems[r.system];
            entries.push((
                *id,
                LeaderboardEntry {
                    system: name.clone(),
                    rating: r.rating,
                    ci: [r.lower, r.upper],
                    rank: r.rank,
                    group: g + 1,
                },
            ));
        }
    }
    if rows::job_state(pool, job_id).await? == Some(JobState::Succeeded) {
        rows::store_leaderboard(pool, job_id, &entries).await?;
    }
    Ok(Leaderboard::new(
        entries.into_iter().map(|(_, e)| e).collect(),
        groups,
    ))
}

/// The groups of a stored leaderboard, rebuilt in the order the fit numbered
/// them ([`evaluator_stats::bradley_terry::components`]: by smallest member,
/// systems in name order): rated systems by their group, each system without a
/// rating a group of its own.
fn stored_groups(entries: &[LeaderboardEntry], systems: &[(SystemId, String)]) -> Vec<Vec<String>> {
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut slots: HashMap<usize, usize> = HashMap::new();
    for (_, name) in systems {
        match entries.iter().find(|e| &e.system == name) {
            Some(entry) => {
                let slot = *slots.entry(entry.group).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[slot].push(name.clone());
            }
            None => groups.push(vec![name.clone()]),
        }
    }
    groups
}
