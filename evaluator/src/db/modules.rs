//! Stored reward modules (see `migrations/*_modules.sql`).

use reward_host::RewardModule;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::db;
use crate::error::{Error, Result};

/// A stored module as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleRecord {
    /// Primary key.
    pub id: i64,
    /// Hex SHA-256 of the uploaded bytes.
    pub sha256: String,
    /// Declared name.
    pub name: String,
    /// Declared version.
    pub version: String,
    /// Declared description.
    pub description: String,
    /// `scorer` or `judge`.
    pub kind: String,
    /// Declared metrics, in column order.
    pub metrics: Vec<MetricRecord>,
}

/// One declared metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct MetricRecord {
    /// Metric name.
    pub name: String,
    /// Metric description.
    pub description: String,
    /// `higher-is-better` or `lower-is-better`.
    pub direction: String,
}

#[derive(sqlx::FromRow)]
struct ModuleRow {
    id: i64,
    sha256: Vec<u8>,
    name: String,
    version: String,
    description: String,
    kind: String,
}

/// Stores a module the sandbox has already loaded, with its metrics, in one
/// transaction. Returns the record and whether it was new (`false`: the team had
/// uploaded the same bytes before, and that record is returned).
pub async fn store(
    pool: &PgPool,
    team_id: i64,
    bytes: &[u8],
    module: &RewardModule,
) -> Result<(ModuleRecord, bool)> {
    let info = module.info();
    let mut tx = pool.begin().await.map_err(db("begin"))?;
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO modules (team_id, sha256, name, version, description, kind, wasm) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (team_id, sha256) DO NOTHING RETURNING id",
    )
    .bind(team_id)
    .bind(module.sha256().as_slice())
    .bind(&info.name)
    .bind(&info.version)
    .bind(&info.description)
    .bind(module.kind().as_str())
    .bind(bytes)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db("insert module"))?;
    let Some(id) = id else {
        tx.rollback().await.map_err(db("rollback"))?;
        let existing = find_by_sha(pool, team_id, &module.sha256()).await?;
        return existing.map(|m| (m, false)).ok_or_else(|| Error::Database {
            message: "module vanished between insert and read".into(),
        });
    };
    for (position, metric) in info.metrics.iter().enumerate() {
        sqlx::query(
            "INSERT INTO module_metrics (module_id, position, name, description, direction) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(i32::try_from(position).unwrap_or(i32::MAX))
        .bind(&metric.name)
        .bind(&metric.description)
        .bind(metric.direction.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db("insert metric"))?;
    }
    tx.commit().await.map_err(db("commit"))?;
    let record = get(pool, team_id, id)
        .await?
        .ok_or_else(|| Error::Database {
            message: "stored module not found".into(),
        })?;
    Ok((record, true))
}

/// The team's modules, newest first.
pub async fn list(pool: &PgPool, team_id: i64) -> Result<Vec<ModuleRecord>> {
    let rows: Vec<ModuleRow> = sqlx::query_as(
        "SELECT id, sha256, name, version, description, kind FROM modules \
         WHERE team_id = $1 ORDER BY id DESC",
    )
    .bind(team_id)
    .fetch_all(pool)
    .await
    .map_err(db("list modules"))?;
    // All of the team's metrics in one query, not one per module.
    let metrics: Vec<(i64, String, String, String)> = sqlx::query_as(
        "SELECT m.module_id, m.name, m.description, m.direction FROM module_metrics m \
         JOIN modules d ON d.id = m.module_id WHERE d.team_id = $1 ORDER BY m.module_id, m.position",
    )
    .bind(team_id)
    .fetch_all(pool)
    .await
    .map_err(db("list module metrics"))?;
    let mut by_module: std::collections::HashMap<i64, Vec<MetricRecord>> =
        std::collections::HashMap::new();
    for (module_id, name, description, direction) in metrics {
        by_module.entry(module_id).or_default().push(MetricRecord {
            name,
            description,
            direction,
        });
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let metrics = by_module.remove(&row.id).unwrap_or_default();
            record(row, metrics)
        })
        .collect())
}

/// One of the team's modules; `None` for an unknown id or another team's.
pub async fn get(pool: &PgPool, team_id: i64, id: i64) -> Result<Option<ModuleRecord>> {
    let row: Option<ModuleRow> = sqlx::query_as(
        "SELECT id, sha256, name, version, description, kind FROM modules WHERE team_id = $1 AND id = $2",
    )
    .bind(team_id)
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(db("get module"))?;
    match row {
        Some(row) => Ok(Some(with_metrics(pool, row).await?)),
        None => Ok(None),
    }
}

async fn find_by_sha(
    pool: &PgPool,
    team_id: i64,
    sha256: &[u8; 32],
) -> Result<Option<ModuleRecord>> {
    let id: Option<i64> =
        sqlx::query_scalar("SELECT id FROM modules WHERE team_id = $1 AND sha256 = $2")
            .bind(team_id)
            .bind(sha256.as_slice())
            .fetch_optional(pool)
            .await
            .map_err(db("find module"))?;
    match id {
        Some(id) => get(pool, team_id, id).await,
        None => Ok(None),
    }
}

async fn with_metrics(pool: &PgPool, row: ModuleRow) -> Result<ModuleRecord> {
    let metrics: Vec<MetricRecord> = sqlx::query_as(
        "SELECT name, description, direction FROM module_metrics WHERE module_id = $1 ORDER BY position",
    )
    .bind(row.id)
    .fetch_all(pool)
    .await
    .map_err(db("module metrics"))?;
    Ok(record(row, metrics))
}

fn record(row: ModuleRow, metrics: Vec<MetricRecord>) -> ModuleRecord {
    ModuleRecord {
        id: row.id,
        sha256: hex::encode(row.sha256),
        name: row.name,
        version: row.version,
        description: row.description,
        kind: row.kind,
        metrics,
    }
}
