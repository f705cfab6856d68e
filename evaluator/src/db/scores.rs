//! Scores pushed from outside the sandbox (a learned reward model's) with
//! their provenance (see `migrations/*_external_scores.sql`).
//!
//! The re-push rule: a metric name on a dataset is one reward model, named by
//! its sha256. Scores from another model under that name are refused (409),
//! whichever system they are for: means from two models are on two scales,
//! and a column mixing them would rank systems by which model scored them.
//! Scores from the same model for a system that already has them replace its
//! set (values and provenance, one transaction): the same weights on the same
//! generations, re-run (another device, the whole file after a part).

use std::collections::HashMap;

use sqlx::PgPool;

use super::db;
use crate::domain::{DatasetId, GenerationId, LearnedReward};
use crate::error::{Error, Result};
use crate::import::scores::{MetricName, ScoreFile};

/// Why a scores push was refused; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ScoresRefused {
    /// The system has no generations on the dataset.
    #[error(
        "system `{system}` has no generations on dataset `{dataset}` (push them first with push-generations); nothing was stored"
    )]
    UnknownSystem {
        /// The system.
        system: String,
        /// The dataset.
        dataset: String,
    },
    /// A line names an item the dataset lacks, or one the system did not answer.
    #[error("{file}: line {line}: {message}; nothing was stored")]
    Unknown {
        /// The scores file.
        file: String,
        /// The line.
        line: usize,
        /// What is missing, naming the field.
        message: String,
    },
    /// The metric holds another model's scores.
    #[error(
        "metric `{metric}` on dataset `{dataset}` holds the scores of reward model sha256 {stored}… ({stored_model}, pushed for `{stored_system}`), and {file}'s come from sha256 {pushed}…; one metric name is one model, so that its means are on one scale: push these under another --metric (e.g. {metric}-{pushed})"
    )]
    OtherModel {
        /// The metric.
        metric: String,
        /// The dataset.
        dataset: String,
        /// The first 12 digits of the stored model's hash.
        stored: String,
        /// Its directory, as its newest push named it.
        stored_model: String,
        /// A system it scored.
        stored_system: String,
        /// The scores file.
        file: String,
        /// The first 12 digits of the pushed model's hash.
        pushed: String,
    },
    /// The database failed.
    #[error(transparent)]
    Database(#[from] Error),
}

/// What a scores push did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ScoreSummary {
    /// The dataset.
    pub dataset: String,
    /// The system.
    pub system: String,
    /// The metric.
    pub metric: String,
    /// What scored: `reward_model`.
    pub source: String,
    /// The model's SHA-256.
    pub sha256: String,
    /// Scores stored.
    pub scores: u64,
    /// The system's generations on the dataset (more than `scores` when the
    /// file scored part of them).
    pub generations: u64,
    /// Whether a set from the same model was replaced.
    pub replaced: bool,
    /// Of the replaced set: values that differ now, and items scored in only
    /// one of the two pushes.
    pub changed: u64,
    /// The mean of the scores.
    pub mean: f64,
    /// Its standard error.
    pub stderr: f64,
}

/// Stores `file`'s scores for `system` under `metric` on the dataset, after
/// checking that every line names an item the system answered; one
/// transaction. `imported_by` is the pushing token's prefix.
pub async fn import(
    pool: &PgPool,
    dataset: (DatasetId, &str),
    system: &str,
    metric: &MetricName,
    imported_by: &str,
    file: &ScoreFile,
) -> Result<ScoreSummary, ScoresRefused> {
    let (dataset_id, dataset_name) = dataset;
    let system_id = super::judgments::system_on(pool, dataset_id, system)
        .await?
        .ok_or_else(|| ScoresRefused::UnknownSystem {
            system: system.to_string(),
            dataset: dataset_name.to_string(),
        })?;

    // Each line's item, and the system's generation for it.
    let keys: Vec<&str> = file.rows.iter().map(|r| r.item.key()).collect();
    let found: Vec<(String, Option<GenerationId>)> = sqlx::query_as(
        "SELECT i.key, g.id FROM items i \
         LEFT JOIN generations g ON g.item_id = i.id AND g.system_id = $2 \
         WHERE i.dataset_id = $1 AND i.key = ANY($3)",
    )
    .bind(dataset_id)
    .bind(system_id)
    .bind(&keys)
    .fetch_all(pool)
    .await
    .map_err(db("read the scored items"))?;
    let found: HashMap<&str, Option<GenerationId>> =
        found.iter().map(|(k, g)| (k.as_str(), *g)).collect();
    let mut generations = Vec::with_capacity(file.rows.len());
    let mut lines: HashMap<GenerationId, usize> = HashMap::with_capacity(file.rows.len());
    for row in &file.rows {
        let unknown = |message: String| ScoresRefused::Unknown {
            file: file.name.clone(),
            line: row.line,
            message,
        };
        let generation = match found.get(row.item.key()) {
            None => {
                return Err(unknown(format!(
                    "field `{}`: dataset `{dataset_name}` has no item with {} (items are keyed by the canonical `id` when the generations had one, else by the prompt)",
                    row.item.field(),
                    row.item.describe()
                )));
            }
            Some(None) => {
                return Err(unknown(format!(
                    "field `{}`: system `{system}` has no generation for the item with {}",
                    row.item.field(),
                    row.item.describe()
                )));
            }
            Some(Some(generation)) => *generation,
        };
        // An `id` line and a prompt line can name one item (its key is both).
        if let Some(first) = lines.insert(generation, row.line) {
            return Err(unknown(format!(
                "field `{}`: the item with {} is already scored at line {first}",
                row.item.field(),
                row.item.describe()
            )));
        }
        generations.push(generation.0);
    }
    let values: Vec<f64> = file.rows.iter().map(|r| r.score).collect();
    let summary = evaluator_stats::Summary::of(&values)
        .ok_or_else(|| Error::Inconsistent("a parsed scores file has no rows".into()))?;
    let provenance = &file.provenance;

    let mut tx = pool.begin().await.map_err(db("begin"))?;
    sqlx::query(
        "INSERT INTO external_metrics (dataset_id, name, source, sha256) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (dataset_id, name) DO NOTHING",
    )
    .bind(dataset_id)
    .bind(metric.as_str())
    .bind(provenance.source.as_str())
    .bind(provenance.sha256.as_str())
    .execute(&mut *tx)
    .await
    .map_err(db("create metric"))?;
    // Locked: two pushes of different models under a new name cannot both
    // see it free.
    let (metric_id, stored_sha): (i64, String) = sqlx::query_as(
        "SELECT id, sha256 FROM external_metrics WHERE dataset_id = $1 AND name = $2 FOR UPDATE",
    )
    .bind(dataset_id)
    .bind(metric.as_str())
    .fetch_one(&mut *tx)
    .await
    .map_err(db("lock metric"))?;
    if stored_sha != provenance.sha256.as_str() {
        let holder: Option<(String, String)> = sqlx::query_as(
            "SELECT e.model, s.name FROM external_score_sets e JOIN systems s ON s.id = e.system_id \
             WHERE e.metric_id = $1 ORDER BY e.imported_at DESC, e.id DESC LIMIT 1",
        )
        .bind(metric_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("read the metric's model"))?;
        match holder {
            Some((stored_model, stored_system)) => {
                return Err(ScoresRefused::OtherModel {
                    metric: metric.as_str().to_string(),
                    dataset: dataset_name.to_string(),
                    stored: stored_sha.chars().take(12).collect(),
                    stored_model,
                    stored_system,
                    file: file.name.clone(),
                    pushed: provenance.sha256.as_str().chars().take(12).collect(),
                });
            }
            // Every set it held went with its systems: the name is free again.
            None => {
                sqlx::query("UPDATE external_metrics SET sha256 = $2, source = $3 WHERE id = $1")
                    .bind(metric_id)
                    .bind(provenance.sha256.as_str())
                    .bind(provenance.source.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db("rebind metric"))?;
            }
        }
    }

    let previous: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM external_score_sets WHERE metric_id = $1 AND system_id = $2 FOR UPDATE",
    )
    .bind(metric_id)
    .bind(system_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db("find score set"))?;
    let mut changed = 0;
    let set_id = match previous {
        Some(set_id) => {
            let old: Vec<(i64, f64)> = sqlx::query_as(
                "DELETE FROM external_scores WHERE set_id = $1 RETURNING generation_id, value",
            )
            .bind(set_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db("replace scores"))?;
            let old: HashMap<i64, f64> = old.into_iter().collect();
            changed = generations
                .iter()
                .zip(&values)
                .filter(|(g, v)| old.get(g) != Some(v))
                .count() as u64;
            changed += old.keys().filter(|g| !generations.contains(g)).count() as u64;
            sqlx::query(
                "UPDATE external_score_sets SET model = $2, command = $3, input = $4, lines = $5, \
                   file = $6, n = $7, mean = $8, stderr = $9, imported_by = $10, imported_at = now() \
                 WHERE id = $1",
            )
            .bind(set_id)
            .bind(&provenance.reward_model)
            .bind(&provenance.command)
            .bind(&provenance.input)
            .bind(provenance.lines as i64)
            .bind(&file.name)
            .bind(summary.n as i64)
            .bind(summary.mean)
            .bind(summary.stderr)
            .bind(imported_by)
            .execute(&mut *tx)
            .await
            .map_err(db("update score set"))?;
            set_id
        }
        None => sqlx::query_scalar(
            "INSERT INTO external_score_sets \
               (metric_id, system_id, model, command, input, lines, file, n, mean, stderr, imported_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(metric_id)
        .bind(system_id)
        .bind(&provenance.reward_model)
        .bind(&provenance.command)
        .bind(&provenance.input)
        .bind(provenance.lines as i64)
        .bind(&file.name)
        .bind(summary.n as i64)
        .bind(summary.mean)
        .bind(summary.stderr)
        .bind(imported_by)
        .fetch_one(&mut *tx)
        .await
        .map_err(db("create score set"))?,
    };
    sqlx::query(
        "INSERT INTO external_scores (set_id, generation_id, value) \
         SELECT $1, g, v FROM UNNEST($2::bigint[], $3::float8[]) AS u(g, v)",
    )
    .bind(set_id)
    .bind(&generations)
    .bind(&values)
    .execute(&mut *tx)
    .await
    .map_err(db("insert scores"))?;
    let answered: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM generations WHERE dataset_id = $1 AND system_id = $2",
    )
    .bind(dataset_id)
    .bind(system_id)
    .fetch_one(&mut *tx)
    .await
    .map_err(db("count generations"))?;
    tx.commit().await.map_err(db("commit scores"))?;
    Ok(ScoreSummary {
        dataset: dataset_name.to_string(),
        system: system.to_string(),
        metric: metric.as_str().to_string(),
        source: provenance.source.as_str().to_string(),
        sha256: provenance.sha256.as_str().to_string(),
        scores: values.len() as u64,
        generations: answered.max(0) as u64,
        replaced: previous.is_some(),
        changed,
        mean: summary.mean,
        stderr: summary.stderr,
    })
}

/// One system's learned-reward summary on a dataset, with its provenance.
#[derive(Debug, Clone)]
pub struct LearnedRow {
    /// The system's name.
    pub system: String,
    /// The system's metadata.
    pub metadata: serde_json::Value,
    /// The metric's name.
    pub metric: String,
    /// Values stored.
    pub n: i64,
    /// Their mean.
    pub mean: f64,
    /// Its standard error (computed at push by evaluator-stats).
    pub stderr: f64,
    /// Where they came from.
    pub learned: LearnedReward,
}

/// Every learned reward's summary on the dataset, by system and metric name.
pub async fn summaries(pool: &PgPool, dataset_id: DatasetId) -> Result<Vec<LearnedRow>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        system: String,
        metadata: serde_json::Value,
        metric: String,
        n: i64,
        mean: f64,
        stderr: f64,
        source: String,
        model: String,
        sha256: String,
        command: String,
        input: String,
        lines: i64,
        file: String,
        imported_by: String,
        imported_at: String,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT s.name AS system, s.metadata, m.name AS metric, e.n, e.mean, e.stderr, m.source, \
           e.model, m.sha256, e.command, e.input, e.lines, e.file, e.imported_by, \
           to_char(e.imported_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS imported_at \
         FROM external_score_sets e \
         JOIN external_metrics m ON m.id = e.metric_id \
         JOIN systems s ON s.id = e.system_id \
         WHERE m.dataset_id = $1 ORDER BY s.name, m.name",
    )
    .bind(dataset_id)
    .fetch_all(pool)
    .await
    .map_err(db("read learned rewards"))?;
    Ok(rows
        .into_iter()
        .map(|r| LearnedRow {
            system: r.system,
            metadata: r.metadata,
            metric: r.metric,
            n: r.n,
            mean: r.mean,
            stderr: r.stderr,
            learned: LearnedReward {
                source: r.source,
                model: r.model,
                sha256: r.sha256,
                command: r.command,
                input: r.input,
                lines: r.lines,
                file: r.file,
                imported_by: r.imported_by,
                imported_at: r.imported_at,
            },
        })
        .collect())
}

/// The learned-reward values of these generations: (generation, metric,
/// value), by metric name.
pub async fn values_of(
    pool: &PgPool,
    generations: &[GenerationId],
) -> Result<Vec<(GenerationId, String, f64)>> {
    sqlx::query_as(
        "SELECT x.generation_id, m.name, x.value FROM external_scores x \
         JOIN external_score_sets e ON e.id = x.set_id \
         JOIN external_metrics m ON m.id = e.metric_id \
         WHERE x.generation_id = ANY($1) ORDER BY m.name",
    )
    .bind(generations)
    .fetch_all(pool)
    .await
    .map_err(db("read learned-reward values"))
}
