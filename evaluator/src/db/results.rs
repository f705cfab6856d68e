//! Aggregates: per system and metric (mean, standard error, n) over the stored
//! scores, and per pair of systems (wins, losses, ties, win rate, 95% interval)
//! over a comparison's per-item outcomes.

use std::collections::{BTreeMap, HashMap};

use evaluator_stats::PairCounts;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::db;
use crate::error::Result;

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
}

/// The per-pair results of a comparison job, in the order the pairs were planned.
pub async fn pair_results(pool: &PgPool, job_id: i64) -> Result<Vec<PairResult>> {
    // Counted as the outcomes were committed (pair_summaries), not re-counted here.
    let rows: Vec<(String, String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT sa.name, sb.name, p.wins, p.losses, p.ties, p.inconsistent \
         FROM pair_summaries p JOIN systems sa ON sa.id = p.system_a JOIN systems sb ON sb.id = p.system_b \
         WHERE p.job_id = $1 ORDER BY sa.name, sb.name",
    )
    .bind(job_id)
    .fetch_all(pool)
    .await
    .map_err(db("aggregate outcomes"))?;
    Ok(rows
        .into_iter()
        .map(|(a, b, wins, losses, ties, inconsistent)| {
            let counts = PairCounts {
                wins: wins as u64,
                losses: losses as u64,
                ties: ties as u64,
            };
            PairResult {
                a,
                b,
                wins: counts.wins,
                losses: counts.losses,
                ties: counts.ties,
                win_rate: counts.win_rate(),
                ci: counts.wilson_ci(0.95).map(|(lo, hi)| [lo, hi]),
                inconsistent: inconsistent as u64,
            }
        })
        .collect())
}
