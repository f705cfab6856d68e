//! Aggregates: per system and metric (mean, standard error, n) over the stored
//! scores, and per pair of systems (wins, losses, ties, win rate, 95% interval)
//! over a comparison's per-item outcomes.

use std::collections::{BTreeMap, HashMap};

use evaluator_stats::PairCounts;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::db;
use crate::error::{Error, Result};

/// One metric's summary for one system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    /// Mean over the generations with a value.
    pub mean: f64,
    /// Standard error of the mean (sample standard deviation / √n; 0 when n = 1).
    pub stderr: f64,
    /// Generations with a value (nulls are not counted).
    pub n: i64,
    /// Generations the metric did not apply to (null).
    pub nulls: i64,
    /// `higher-is-better` or `lower-is-better`.
    pub direction: String,
}

/// One system's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemResults {
    /// The system's name.
    pub system: String,
    /// The system's metadata.
    pub metadata: serde_json::Value,
    /// By `"<module>/<metric>"`.
    pub metrics: BTreeMap<String, MetricSummary>,
}

/// A dataset's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetResults {
    /// The dataset's name.
    pub dataset: String,
    /// Systems by name.
    pub systems: Vec<SystemResults>,
}

#[derive(sqlx::FromRow)]
struct Aggregate {
    system: String,
    metadata: serde_json::Value,
    module_id: i64,
    module: String,
    metric: String,
    direction: String,
    mean: f64,
    m2: f64,
    n: i64,
    nulls: i64,
}

/// The results of every scorer that has scored generations of the dataset.
/// Modules are named by the name they declare; when two stored modules declare
/// the same name, each is named `name#id`.
pub async fn dataset_results(
    pool: &PgPool,
    dataset_id: i64,
    dataset: &str,
) -> Result<DatasetResults> {
    // The running summaries (see migrations/*_result_summaries.sql): one row per
    // system and metric, whatever the dataset's size.
    let rows: Vec<Aggregate> = sqlx::query_as(
        "SELECT s.name AS system, s.metadata, m.id AS module_id, m.name AS module, mm.name AS metric, \
           mm.direction, ss.mean, ss.m2, ss.n, ss.nulls \
         FROM score_summaries ss \
         JOIN systems s ON s.id = ss.system_id \
         JOIN modules m ON m.id = ss.module_id \
         JOIN module_metrics mm ON mm.module_id = ss.module_id AND mm.position = ss.metric \
         WHERE ss.dataset_id = $1 \
         ORDER BY s.name, m.id, ss.metric",
    )
    .bind(dataset_id)
    .fetch_all(pool)
    .await
    .map_err(db("read score summaries"))?;
    let mut ids_by_name: HashMap<&str, Vec<i64>> = HashMap::new();
    for row in &rows {
        let ids = ids_by_name.entry(&row.module).or_default();
        if !ids.contains(&row.module_id) {
            ids.push(row.module_id);
        }
    }
    let ambiguous: Vec<i64> = ids_by_name
        .values()
        .filter(|ids| ids.len() > 1)
        .flatten()
        .copied()
        .collect();
    let mut systems: Vec<SystemResults> = Vec::new();
    for row in &rows {
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
        let mean = row.mean;
        let stderr = if row.n > 1 {
            (row.m2.max(0.0) / (row.n - 1) as f64).sqrt() / (row.n as f64).sqrt()
        } else {
            0.0
        };
        if let Some(system) = systems.last_mut() {
            system.metrics.insert(
                format!("{module}/{}", row.metric),
                MetricSummary {
                    mean,
                    stderr,
                    n: row.n,
                    nulls: row.nulls,
                    direction: row.direction.clone(),
                },
            );
        }
    }
    Ok(DatasetResults {
        dataset: dataset.to_string(),
        systems,
    })
}

/// One pair of systems in a comparison, wins counted for `a`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairResult {
    /// The first system.
    pub a: String,
    /// The second system.
    pub b: String,
    /// Items compared so far (wins + losses + ties): the items both systems
    /// answered, once the comparison has finished.
    pub n: u64,
    /// Items `a` had answered on the dataset when the comparison was created;
    /// more than `n` when `b` lacks some.
    pub a_items: u64,
    /// Items `b` had answered then.
    pub b_items: u64,
    /// Items where the judge preferred `a`.
    pub wins: u64,
    /// Items where it preferred `b`.
    pub losses: u64,
    /// Ties (including verdicts the two presentation orders disagreed on).
    pub ties: u64,
    /// (wins + ties/2) / (wins + losses + ties); null with no items.
    pub win_rate: Option<f64>,
    /// 95% Wilson interval of the win rate.
    pub ci: Option<[f64; 2]>,
    /// Items whose verdict changed with the presentation order (judge modules only).
    pub inconsistent: u64,
    /// ALaRM's win rate: wins / (wins + losses), ties left out; null without a
    /// decisive item.
    pub win_rate_excluding_ties: Option<f64>,
    /// The length-controlled win rate (AlpacaEval 2.0's idea: a logistic model
    /// of the outcome with a length-difference term, read at equal length; see
    /// `evaluator_stats::length_control`); null when it cannot be fitted.
    pub lc_win_rate: Option<f64>,
}

/// One row of a Bradley–Terry leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderboardEntry {
    /// The system's name.
    pub system: String,
    /// Rating on the Elo scale (400·log10-odds + 1000; the ratings of a group
    /// average 1000).
    pub rating: f64,
    /// 95% bootstrap interval (100 rounds, seeded).
    pub ci: [f64; 2],
    /// 1 + the number of systems of its group whose interval lies entirely
    /// above this one's.
    pub rank: usize,
    /// The connected group of the comparison graph it belongs to (1-based,
    /// the index into [`Leaderboard::groups`] + 1); always 1 when connected.
    pub group: usize,
}

/// A comparison's Bradley–Terry leaderboard, and whether it is one scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaderboard {
    /// The rated systems, group by group, best first within a group.
    pub systems: Vec<LeaderboardEntry>,
    /// Whether every system was compared, directly or through others, with
    /// every other: only then are all ratings on one scale.
    pub connected: bool,
    /// The connected groups of the comparison graph (systems as nodes, pairs
    /// with a compared item as edges), by name; a system with no compared item
    /// is a group of its own, and not rated.
    pub groups: Vec<Vec<String>>,
    /// For a disconnected graph: what that means, in one sentence.
    pub warning: Option<String>,
}

impl Leaderboard {
    fn new(mut systems: Vec<LeaderboardEntry>, groups: Vec<Vec<String>>) -> Self {
        systems.sort_by(|x, y| {
            x.group
                .cmp(&y.group)
                .then(x.rank.cmp(&y.rank))
                .then(y.rating.total_cmp(&x.rating))
                .then(x.system.cmp(&y.system))
        });
        let connected = groups.len() <= 1;
        let warning = (!connected).then(|| {
            let listed = groups
                .iter()
                .map(|g| format!("{{{}}}", g.join(", ")))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "the comparison graph is disconnected: {} groups of systems were never compared \
                 with each other ({listed}); ratings and ranks are comparable only within a group",
                groups.len()
            )
        });
        Leaderboard {
            systems,
            connected,
            groups,
            warning,
        }
    }
}

/// The per-pair results of a comparison job, by the pair's names.
pub async fn pair_results(pool: &PgPool, job_id: i64) -> Result<Vec<PairResult>> {
    // Counted as the outcomes were committed (pair_summaries), not re-counted here.
    let mut rows: Vec<PairRow> = read_pairs(pool, job_id).await?;
    if rows.iter().any(|r| !r.lc_computed) {
        fill_length_control(pool, job_id, &mut rows).await?;
    }
    // Counted when the job was created (see migrations/*_job_system_items.sql).
    let answered: HashMap<i64, i64> =
        sqlx::query_as("SELECT system_id, items FROM job_systems WHERE job_id = $1")
            .bind(job_id)
            .fetch_all(pool)
            .await
            .map_err(db("read job systems"))?
            .into_iter()
            .collect();
    let items = |system: i64| answered.get(&system).copied().unwrap_or(0) as u64;
    Ok(rows
        .into_iter()
        .map(|row| {
            let counts = PairCounts {
                wins: row.wins as u64,
                losses: row.losses as u64,
                ties: row.ties as u64,
            };
            PairResult {
                n: counts.wins + counts.losses + counts.ties,
                a_items: items(row.system_a),
                b_items: items(row.system_b),
                a: row.a,
                b: row.b,
                wins: counts.wins,
                losses: counts.losses,
                ties: counts.ties,
                win_rate: counts.win_rate(),
                ci: counts.wilson_ci(0.95).map(|(lo, hi)| [lo, hi]),
                inconsistent: row.inconsistent as u64,
                win_rate_excluding_ties: counts.win_rate_excluding_ties(),
                lc_win_rate: row.lc_win_rate,
            }
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct PairRow {
    system_a: i64,
    system_b: i64,
    a: String,
    b: String,
    wins: i64,
    losses: i64,
    ties: i64,
    inconsistent: i64,
    lc_win_rate: Option<f64>,
    lc_computed: bool,
}

async fn read_pairs(pool: &PgPool, job_id: i64) -> Result<Vec<PairRow>> {
    sqlx::query_as(
        "SELECT p.system_a, p.system_b, sa.name AS a, sb.name AS b, p.wins, p.losses, p.ties, \
           p.inconsistent, p.lc_win_rate, p.lc_computed \
         FROM pair_summaries p JOIN systems sa ON sa.id = p.system_a JOIN systems sb ON sb.id = p.system_b \
         WHERE p.job_id = $1 ORDER BY sa.name, sb.name",
    )
    .bind(job_id)
    .fetch_all(pool)
    .await
    .map_err(db("read pair summaries"))
}

async fn job_succeeded(pool: &PgPool, job_id: i64) -> Result<bool> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
        .bind(job_id)
        .fetch_optional(pool)
        .await
        .map_err(db("read job state"))?;
    Ok(state.as_deref() == Some("succeeded"))
}

/// Fits the length-controlled win rate of every pair from the per-item outcomes
/// and the responses' lengths in characters; stored once the job has finished.
async fn fill_length_control(pool: &PgPool, job_id: i64, rows: &mut [PairRow]) -> Result<()> {
    let items: Vec<(i64, i64, i16, i32, i32)> = sqlx::query_as(
        "SELECT o.system_a, o.system_b, o.outcome, char_length(ga.response), char_length(gb.response) \
         FROM pair_outcomes o \
         JOIN generations ga ON ga.item_id = o.item_id AND ga.system_id = o.system_a \
         JOIN generations gb ON gb.item_id = o.item_id AND gb.system_id = o.system_b \
         WHERE o.job_id = $1",
    )
    .bind(job_id)
    .fetch_all(pool)
    .await
    .map_err(db("read outcomes"))?;
    /// One pair's items: a's outcome (1, 0.5, 0) and both responses' lengths.
    #[derive(Default)]
    struct PairItems {
        outcomes: Vec<f64>,
        a: Vec<f64>,
        b: Vec<f64>,
    }
    let mut by_pair: HashMap<(i64, i64), PairItems> = HashMap::new();
    for (a, b, outcome, len_a, len_b) in items {
        let entry = by_pair.entry((a, b)).or_default();
        entry.outcomes.push((f64::from(outcome) + 1.0) / 2.0);
        entry.a.push(f64::from(len_a));
        entry.b.push(f64::from(len_b));
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
    .map_err(|e| Error::Database {
        message: format!("length control panicked: {e}"),
    })?;
    let finished = job_succeeded(pool, job_id).await?;
    for row in rows.iter_mut() {
        row.lc_win_rate = fitted.get(&(row.system_a, row.system_b)).copied().flatten();
        if finished {
            sqlx::query(
                "UPDATE pair_summaries SET lc_win_rate = $4, lc_computed = true \
                 WHERE job_id = $1 AND system_a = $2 AND system_b = $3",
            )
            .bind(job_id)
            .bind(row.system_a)
            .bind(row.system_b)
            .bind(row.lc_win_rate)
            .execute(pool)
            .await
            .map_err(db("store length control"))?;
        }
    }
    Ok(())
}

/// The newest finished comparison on a dataset, optionally with a given judge
/// (module, and metric position for a scorer judge).
pub async fn latest_compare_job(
    pool: &PgPool,
    team_id: i64,
    dataset_id: i64,
) -> Result<Option<i64>> {
    latest_compare_job_with(pool, team_id, dataset_id, None).await
}

/// [`latest_compare_job`] restricted to one judge: `(module id, metric position)`.
pub async fn latest_compare_job_with(
    pool: &PgPool,
    team_id: i64,
    dataset_id: i64,
    judge: Option<(i64, Option<i32>)>,
) -> Result<Option<i64>> {
    let (module, metric) = judge.unzip();
    sqlx::query_scalar(
        "SELECT id FROM jobs WHERE team_id = $1 AND dataset_id = $2 AND kind = 'compare' \
           AND state = 'succeeded' \
           AND ($3::bigint IS NULL OR judge_module_id = $3) \
           AND ($3::bigint IS NULL OR judge_metric IS NOT DISTINCT FROM $4) \
         ORDER BY id DESC LIMIT 1",
    )
    .bind(team_id)
    .bind(dataset_id)
    .bind(module)
    .bind(metric.flatten())
    .fetch_optional(pool)
    .await
    .map_err(db("find comparison"))
}

/// The Bradley–Terry leaderboard of a comparison (all its pairs' outcomes, ties
/// as half wins; Chatbot Arena's method), fitted on each connected group of the
/// comparison graph separately and flagged when there is more than one group.
/// Computed once a job has finished and stored; while it runs, computed from the
/// outcomes so far.
pub async fn leaderboard(pool: &PgPool, job_id: i64) -> Result<Leaderboard> {
    let systems: Vec<(i64, String)> = sqlx::query_as(
        "SELECT s.id, s.name FROM job_systems j JOIN systems s ON s.id = j.system_id \
         WHERE j.job_id = $1 ORDER BY s.name",
    )
    .bind(job_id)
    .fetch_all(pool)
    .await
    .map_err(db("read job systems"))?;
    let cached: Vec<(String, f64, f64, f64, i32, i32)> = sqlx::query_as(
        "SELECT s.name, l.rating, l.ci_low, l.ci_high, l.rank, l.grp FROM job_leaderboards l \
         JOIN systems s ON s.id = l.system_id WHERE l.job_id = $1",
    )
    .bind(job_id)
    .fetch_all(pool)
    .await
    .map_err(db("read leaderboard"))?;
    if !cached.is_empty() {
        let entries: Vec<LeaderboardEntry> = cached
            .into_iter()
            .map(|(system, rating, lo, hi, rank, group)| LeaderboardEntry {
                system,
                rating,
                ci: [lo, hi],
                rank: rank as usize,
                group: group as usize,
            })
            .collect();
        let groups = stored_groups(&entries, &systems);
        return Ok(Leaderboard::new(entries, groups));
    }
    let pairs = read_pairs(pool, job_id).await?;
    let index: HashMap<i64, usize> = systems
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
            battles.extend(std::iter::repeat_n((a, b, outcome), count as usize));
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
    .map_err(|e| Error::Database {
        message: format!("leaderboard fit panicked: {e}"),
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
    let mut entries: Vec<(i64, LeaderboardEntry)> = Vec::new();
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
    if job_succeeded(pool, job_id).await? {
        for (id, entry) in &entries {
            sqlx::query(
                "INSERT INTO job_leaderboards (job_id, system_id, rating, ci_low, ci_high, rank, grp) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .bind(job_id)
            .bind(id)
            .bind(entry.rating)
            .bind(entry.ci[0])
            .bind(entry.ci[1])
            .bind(entry.rank as i32)
            .bind(entry.group as i32)
            .execute(pool)
            .await
            .map_err(db("store leaderboard"))?;
        }
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
fn stored_groups(entries: &[LeaderboardEntry], systems: &[(i64, String)]) -> Vec<Vec<String>> {
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
