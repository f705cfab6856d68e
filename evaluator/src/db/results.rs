//! What the aggregates are computed from: the running per-system score
//! summaries, a comparison's per-pair counts and per-item outcomes, and the
//! length-control and leaderboard values stored once a comparison finished.
//! Rows only: the statistics over them are [`crate::results`]'.

use sqlx::PgPool;

use super::db;
use crate::domain::{
    DatasetId, JobId, JobState, LeaderboardEntry, ModuleId, SystemId, TeamId, outcome_from_db,
};
use crate::error::Result;

/// One system × metric running summary (see `migrations/*_result_summaries.sql`).
#[derive(Debug, sqlx::FromRow)]
pub struct SummaryRow {
    /// The system's name.
    pub system: String,
    /// The system's metadata.
    pub metadata: serde_json::Value,
    /// The module.
    pub module_id: ModuleId,
    /// The name it declares.
    pub module: String,
    /// The metric's name.
    pub metric: String,
    /// The metric's direction, as stored.
    pub direction: String,
    /// Mean of the non-null values.
    pub mean: f64,
    /// Sum of squared deviations from the mean (Welford's M2).
    pub m2: f64,
    /// Non-null values.
    pub n: i64,
    /// Null values.
    pub nulls: i64,
}

/// The running summaries of every scorer on the dataset, by system name,
/// module id and metric position.
pub async fn summaries(pool: &PgPool, dataset_id: DatasetId) -> Result<Vec<SummaryRow>> {
    // One row per system and metric, whatever the dataset's size.
    sqlx::query_as(
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
    .map_err(db("read score summaries"))
}

/// A pair's counts in a comparison (`pair_summaries`), with the systems' names.
#[derive(Debug, sqlx::FromRow)]
pub struct PairSummaryRow {
    /// The first system.
    pub system_a: SystemId,
    /// The second system.
    pub system_b: SystemId,
    /// The first system's name.
    pub a: String,
    /// The second system's name.
    pub b: String,
    /// Items `a` won.
    pub wins: i64,
    /// Items `a` lost.
    pub losses: i64,
    /// Ties.
    pub ties: i64,
    /// Items whose verdict changed with the presentation order.
    pub inconsistent: i64,
    /// The stored length-controlled win rate.
    pub lc_win_rate: Option<f64>,
    /// Whether `lc_win_rate` was stored (a finished job's; null may be its value).
    pub lc_computed: bool,
}

/// A comparison's pairs, by the pair's names.
pub async fn pair_summaries(pool: &PgPool, job_id: JobId) -> Result<Vec<PairSummaryRow>> {
    // Counted as the outcomes were committed, not re-counted here.
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

/// A comparison's systems with the items each had answered when it was created
/// (see `migrations/*_job_system_items.sql`).
pub async fn job_system_items(pool: &PgPool, job_id: JobId) -> Result<Vec<(SystemId, i64)>> {
    sqlx::query_as("SELECT system_id, items FROM job_systems WHERE job_id = $1")
        .bind(job_id)
        .fetch_all(pool)
        .await
        .map_err(db("read job systems"))
}

/// A comparison's systems, by name.
pub async fn job_systems(pool: &PgPool, job_id: JobId) -> Result<Vec<(SystemId, String)>> {
    sqlx::query_as(
        "SELECT s.id, s.name FROM job_systems j JOIN systems s ON s.id = j.system_id \
         WHERE j.job_id = $1 ORDER BY s.name",
    )
    .bind(job_id)
    .fetch_all(pool)
    .await
    .map_err(db("read job systems"))
}

/// A job's state; `None` for an unknown id.
pub async fn job_state(pool: &PgPool, job_id: JobId) -> Result<Option<JobState>> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
        .bind(job_id)
        .fetch_optional(pool)
        .await
        .map_err(db("read job state"))?;
    Ok(state.map(JobState::try_from).transpose()?)
}

/// One compared item: the pair, A's outcome and both responses' lengths in characters.
#[derive(Debug)]
pub struct OutcomeLength {
    /// The first system.
    pub system_a: SystemId,
    /// The second system.
    pub system_b: SystemId,
    /// The outcome for `system_a`.
    pub outcome: evaluator_stats::Outcome,
    /// `system_a`'s response length.
    pub len_a: i32,
    /// `system_b`'s response length.
    pub len_b: i32,
}

/// Every compared item of a comparison with its responses' lengths.
pub async fn outcome_lengths(pool: &PgPool, job_id: JobId) -> Result<Vec<OutcomeLength>> {
    let rows: Vec<(SystemId, SystemId, i16, i32, i32)> = sqlx::query_as(
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
    Ok(rows
        .into_iter()
        .map(
            |(system_a, system_b, outcome, len_a, len_b)| OutcomeLength {
                system_a,
                system_b,
                outcome: outcome_from_db(outcome),
                len_a,
                len_b,
            },
        )
        .collect())
}

/// Stores a pair's length-controlled win rate (a finished comparison's).
pub async fn store_length_control(
    pool: &PgPool,
    job_id: JobId,
    (a, b): (SystemId, SystemId),
    lc_win_rate: Option<f64>,
) -> Result<()> {
    sqlx::query(
        "UPDATE pair_summaries SET lc_win_rate = $4, lc_computed = true \
         WHERE job_id = $1 AND system_a = $2 AND system_b = $3",
    )
    .bind(job_id)
    .bind(a)
    .bind(b)
    .bind(lc_win_rate)
    .execute(pool)
    .await
    .map_err(db("store length control"))?;
    Ok(())
}

/// The newest finished comparison on a dataset, optionally with a given judge
/// (module, and metric position for a scorer judge).
pub async fn latest_compare_job(
    pool: &PgPool,
    team_id: TeamId,
    dataset_id: DatasetId,
    judge: Option<(ModuleId, Option<i32>)>,
) -> Result<Option<JobId>> {
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

/// A finished comparison's stored leaderboard; empty when none was stored.
pub async fn stored_leaderboard(pool: &PgPool, job_id: JobId) -> Result<Vec<LeaderboardEntry>> {
    let rows: Vec<(String, f64, f64, f64, i32, i32)> = sqlx::query_as(
        "SELECT s.name, l.rating, l.ci_low, l.ci_high, l.rank, l.grp FROM job_leaderboards l \
         JOIN systems s ON s.id = l.system_id WHERE l.job_id = $1",
    )
    .bind(job_id)
    .fetch_all(pool)
    .await
    .map_err(db("read leaderboard"))?;
    Ok(rows
        .into_iter()
        .map(|(system, rating, lo, hi, rank, group)| LeaderboardEntry {
            system,
            rating,
            ci: [lo, hi],
            rank: rank.max(0) as usize,
            group: group.max(0) as usize,
        })
        .collect())
}

/// Stores a finished comparison's leaderboard (once: a second store is a no-op).
pub async fn store_leaderboard(
    pool: &PgPool,
    job_id: JobId,
    entries: &[(SystemId, LeaderboardEntry)],
) -> Result<()> {
    let systems: Vec<SystemId> = entries.iter().map(|(id, _)| *id).collect();
    let ratings: Vec<f64> = entries.iter().map(|(_, e)| e.rating).collect();
    let lows: Vec<f64> = entries.iter().map(|(_, e)| e.ci[0]).collect();
    let highs: Vec<f64> = entries.iter().map(|(_, e)| e.ci[1]).collect();
    let ranks: Vec<i32> = entries.iter().map(|(_, e)| e.rank as i32).collect();
    let groups: Vec<i32> = entries.iter().map(|(_, e)| e.group as i32).collect();
    sqlx::query(
        "INSERT INTO job_leaderboards (job_id, system_id, rating, ci_low, ci_high, rank, grp) \
         SELECT $1, s, r, lo, hi, k, g \
         FROM UNNEST($2::bigint[], $3::float8[], $4::float8[], $5::float8[], $6::int[], $7::int[]) \
           AS u(s, r, lo, hi, k, g) \
         ON CONFLICT DO NOTHING",
    )
    .bind(job_id)
    .bind(&systems)
    .bind(&ratings)
    .bind(&lows)
    .bind(&highs)
    .bind(&ranks)
    .bind(&groups)
    .execute(pool)
    .await
    .map_err(db("store leaderboard"))?;
    Ok(())
}
