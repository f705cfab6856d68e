//! Stored reward modules (see `migrations/*_modules.sql`).

use reward_host::RewardModule;
use sqlx::PgPool;

use super::db;
use crate::domain::{Metric, Module, ModuleId, TeamId, parse_direction, parse_module_kind};
use crate::error::{Error, Result};

/// `modules` without its bytes, as selected.
#[derive(sqlx::FromRow)]
struct ModuleRow {
    id: ModuleId,
    sha256: Vec<u8>,
    name: String,
    version: String,
    description: String,
    kind: String,
}

/// `module_metrics`, as selected.
#[derive(sqlx::FromRow)]
struct MetricRow {
    module_id: ModuleId,
    name: String,
    description: String,
    direction: String,
}

impl TryFrom<MetricRow> for Metric {
    type Error = Error;

    fn try_from(row: MetricRow) -> Result<Metric> {
        Ok(Metric {
            direction: parse_direction(&row.direction)?,
            name: row.name,
            description: row.description,
        })
    }
}

/// Stores a module the sandbox has already loaded, with its metrics, in one
/// transaction. Returns the record and whether it was new (`false`: the team had
/// uploaded the same bytes before, and that record is returned).
pub async fn store(
    pool: &PgPool,
    team_id: TeamId,
    bytes: &[u8],
    module: &RewardModule,
) -> Result<(Module, bool)> {
    let info = module.info();
    let mut tx = pool.begin().await.map_err(db("begin"))?;
    let id: Option<ModuleId> = sqlx::query_scalar(
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
        return existing.map(|m| (m, false)).ok_or_else(|| {
            Error::Inconsistent("a module vanished between its insert and its read".into())
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
        .ok_or_else(|| Error::Inconsistent(format!("module {id} not found after storing it")))?;
    Ok((record, true))
}

/// The team's modules, newest first.
pub async fn list(pool: &PgPool, team_id: TeamId) -> Result<Vec<Module>> {
    let rows: Vec<ModuleRow> = sqlx::query_as(
        "SELECT id, sha256, name, version, description, kind FROM modules \
         WHERE team_id = $1 ORDER BY id DESC",
    )
    .bind(team_id)
    .fetch_all(pool)
    .await
    .map_err(db("list modules"))?;
    // All of the team's metrics in one query, not one per module.
    let metrics: Vec<MetricRow> = sqlx::query_as(
        "SELECT m.module_id, m.name, m.description, m.direction FROM module_metrics m \
         JOIN modules d ON d.id = m.module_id WHERE d.team_id = $1 ORDER BY m.module_id, m.position",
    )
    .bind(team_id)
    .fetch_all(pool)
    .await
    .map_err(db("list module metrics"))?;
    let mut by_module: std::collections::HashMap<ModuleId, Vec<Metric>> =
        std::collections::HashMap::new();
    for row in metrics {
        by_module
            .entry(row.module_id)
            .or_default()
            .push(Metric::try_from(row)?);
    }
    rows.into_iter()
        .map(|row| {
            let metrics = by_module.remove(&row.id).unwrap_or_default();
            record(row, metrics)
        })
        .collect()
}

/// One of the team's modules; `None` for an unknown id or another team's.
pub async fn get(pool: &PgPool, team_id: TeamId, id: ModuleId) -> Result<Option<Module>> {
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

async fn find_by_sha(pool: &PgPool, team_id: TeamId, sha256: &[u8; 32]) -> Result<Option<Module>> {
    let id: Option<ModuleId> =
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

async fn with_metrics(pool: &PgPool, row: ModuleRow) -> Result<Module> {
    let metrics: Vec<MetricRow> = sqlx::query_as(
        "SELECT module_id, name, description, direction FROM module_metrics \
         WHERE module_id = $1 ORDER BY position",
    )
    .bind(row.id)
    .fetch_all(pool)
    .await
    .map_err(db("module metrics"))?;
    let metrics = metrics
        .into_iter()
        .map(Metric::try_from)
        .collect::<Result<_>>()?;
    record(row, metrics)
}

fn record(row: ModuleRow, metrics: Vec<Metric>) -> Result<Module> {
    Ok(Module {
        id: row.id,
        sha256: hex::encode(row.sha256),
        kind: parse_module_kind(&row.kind)?,
        name: row.name,
        version: row.version,
        description: row.description,
        metrics,
    })
}

/// A stored module's declared name and bytes (what a worker compiles).
pub async fn wasm(pool: &PgPool, id: ModuleId) -> Result<(String, Vec<u8>)> {
    sqlx::query_as("SELECT name, wasm FROM modules WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .map_err(db("load module"))
}
