//! External judges and their judgments (see `migrations/*_external_judgments.sql`).

use std::collections::{HashMap, HashSet};

use sqlx::PgPool;

use super::{db, searchable};
use crate::domain::{DatasetId, ItemId, JudgeId, SystemId};
use crate::error::{Error, Result};
use crate::import::judgments::{JudgmentFile, JudgmentRow};
use crate::import::prompt_key;

/// Why a judgment file was refused; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum JudgmentsRefused {
    /// The judge's name breaks the naming rule.
    #[error(
        "judge name {0:?} is invalid: letters, digits and _.:+=- only, starting with a letter or digit, at most 128"
    )]
    InvalidName(String),
    /// A row names a system, or an item, the dataset does not have, or a
    /// system without a generation for the item.
    #[error("{origin}: {message}; nothing was stored")]
    Unknown {
        /// The row, as `line N` or `entry K (line N)`.
        origin: String,
        /// What is missing, in the file's terms.
        message: String,
    },
    /// The judge already has a different verdict for a pair on an item.
    #[error(
        "{origin}: judge `{judge}` already has a different preference for {a} vs {b} on this item; judgments are immutable (push under a new judge name)"
    )]
    Conflict {
        /// The row.
        origin: String,
        /// The judge.
        judge: String,
        /// The first system.
        a: String,
        /// The second system.
        b: String,
    },
    /// The database failed.
    #[error(transparent)]
    Database(#[from] Error),
}

/// What a judgment push did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct JudgmentSummary {
    /// The dataset.
    pub dataset: String,
    /// The judge.
    pub judge: String,
    /// Judgments in the file (self-judgments not counted).
    pub rows: u64,
    /// Judgments stored now.
    pub created: u64,
    /// Judgments already stored with the same preference.
    pub unchanged: u64,
    /// Rows skipped because they judge a system against itself.
    pub self_judgments: u64,
    /// The systems the file judges, by name.
    pub systems: Vec<String>,
}

/// A judge with its size, as listed.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Judge {
    /// Its id.
    pub id: JudgeId,
    /// Its name on the dataset.
    pub name: String,
    /// Judgments stored.
    pub judgments: i64,
    /// Where the judgments came from.
    #[schema(value_type = Object)]
    pub provenance: serde_json::Value,
}

fn check_name(name: &str) -> Result<(), JudgmentsRefused> {
    let mut chars = name.chars();
    let valid = name.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.:+=-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(JudgmentsRefused::InvalidName(name.to_string()))
    }
}

/// Stores `file`'s judgments under `judge` on the dataset, after checking that
/// every system and item it names exists there with a generation; one
/// transaction. `provenance` is merged into the judge's.
pub async fn import(
    pool: &PgPool,
    dataset: (DatasetId, &str),
    judge: &str,
    provenance: serde_json::Value,
    file: &JudgmentFile,
) -> Result<JudgmentSummary, JudgmentsRefused> {
    check_name(judge)?;
    let (dataset_id, dataset_name) = dataset;
    let rows = &file.rows;

    // Systems: those with generations on the dataset, by name.
    let systems: Vec<(SystemId, String)> = sqlx::query_as(
        "SELECT s.id, s.name FROM systems s \
         WHERE EXISTS (SELECT 1 FROM generations g WHERE g.dataset_id = $1 AND g.system_id = s.id)",
    )
    .bind(dataset_id)
    .fetch_all(pool)
    .await
    .map_err(db("read systems"))?;
    let system_ids: HashMap<&str, SystemId> = systems
        .iter()
        .map(|(id, name)| (name.as_str(), *id))
        .collect();
    let system_of = |row: &JudgmentRow, name: &str| {
        system_ids.get(name).copied().ok_or_else(|| JudgmentsRefused::Unknown {
            origin: row.origin.clone(),
            message: format!(
                "system `{name}` has no generations on dataset `{dataset_name}` (push them first, or rename it with --system/--baseline)"
            ),
        })
    };

    // Items: by stored key, else by the key of the text as a prompt.
    let mut wanted: Vec<String> = rows.iter().map(|r| r.item.clone()).collect();
    wanted.extend(rows.iter().map(|r| prompt_key(&r.item)));
    wanted.sort_unstable();
    wanted.dedup();
    let items: Vec<(ItemId, String)> =
        sqlx::query_as("SELECT id, key FROM items WHERE dataset_id = $1 AND key = ANY($2)")
            .bind(dataset_id)
            .bind(&wanted)
            .fetch_all(pool)
            .await
            .map_err(db("read items"))?;
    let item_ids: HashMap<&str, ItemId> =
        items.iter().map(|(id, key)| (key.as_str(), *id)).collect();

    let answered: HashSet<(SystemId, ItemId)> = sqlx::query_as(
        "SELECT system_id, item_id FROM generations WHERE dataset_id = $1 AND item_id = ANY($2)",
    )
    .bind(dataset_id)
    .bind(items.iter().map(|(id, _)| *id).collect::<Vec<_>>())
    .fetch_all(pool)
    .await
    .map_err(db("read generations"))?
    .into_iter()
    .collect();

    let mut resolved = Vec::with_capacity(rows.len());
    let mut seen = HashMap::with_capacity(rows.len());
    for row in rows {
        let a = system_of(row, &row.a)?;
        let b = system_of(row, &row.b)?;
        let item = item_ids
            .get(row.item.as_str())
            .or_else(|| item_ids.get(prompt_key(&row.item).as_str()))
            .copied()
            .ok_or_else(|| JudgmentsRefused::Unknown {
                origin: row.origin.clone(),
                message: format!(
                    "dataset `{dataset_name}` has no item {}",
                    describe(&row.item)
                ),
            })?;
        for (system, name) in [(a, &row.a), (b, &row.b)] {
            if !answered.contains(&(system, item)) {
                return Err(JudgmentsRefused::Unknown {
                    origin: row.origin.clone(),
                    message: format!(
                        "system `{name}` has no generation for item {}",
                        describe(&row.item)
                    ),
                });
            }
        }
        // Two spellings of one item in one file.
        if let Some(first) = seen.insert((a, b, item), &row.origin) {
            return Err(JudgmentsRefused::Unknown {
                origin: row.origin.clone(),
                message: format!(
                    "{} vs {} on this item is already judged at {first}",
                    row.a, row.b
                ),
            });
        }
        resolved.push((a, b, item));
    }

    let mut tx = pool.begin().await.map_err(db("begin"))?;
    let judge_id: JudgeId = sqlx::query_scalar(
        "INSERT INTO judges (dataset_id, name, provenance) VALUES ($1, $2, $3) \
         ON CONFLICT (dataset_id, name) DO UPDATE SET provenance = judges.provenance || EXCLUDED.provenance \
         RETURNING id",
    )
    .bind(dataset_id)
    .bind(judge)
    .bind(&provenance)
    .fetch_one(&mut *tx)
    .await
    .map_err(db("create judge"))?;
    let column =
        |f: fn(&(SystemId, SystemId, ItemId)) -> i64| resolved.iter().map(f).collect::<Vec<i64>>();
    let a_ids = column(|r| r.0.0);
    let b_ids = column(|r| r.1.0);
    let items_col = column(|r| r.2.0);
    let preferences: Vec<Option<f64>> = rows.iter().map(|r| r.preference).collect();
    let a_first: Vec<Option<bool>> = rows.iter().map(|r| r.a_first).collect();
    let extras: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| serde_json::Value::Object(r.extra.clone()))
        .collect();
    let created = sqlx::query(
        "INSERT INTO judgments (judge_id, system_a, system_b, item_id, preference, a_first, extra) \
         SELECT $1, a, b, i, p, f, e \
         FROM UNNEST($2::bigint[], $3::bigint[], $4::bigint[], $5::float8[], $6::bool[], $7::jsonb[]) AS u(a, b, i, p, f, e) \
         ON CONFLICT DO NOTHING",
    )
    .bind(judge_id)
    .bind(&a_ids)
    .bind(&b_ids)
    .bind(&items_col)
    .bind(&preferences)
    .bind(&a_first)
    .bind(&extras)
    .execute(&mut *tx)
    .await
    .map_err(db("insert judgments"))?
    .rows_affected();
    if created < rows.len() as u64 {
        let stored: Vec<(i64, i64, i64, Option<f64>)> = sqlx::query_as(
            "SELECT system_a, system_b, item_id, preference FROM judgments \
             WHERE judge_id = $1 AND item_id = ANY($2)",
        )
        .bind(judge_id)
        .bind(&items_col)
        .fetch_all(&mut *tx)
        .await
        .map_err(db("read judgments"))?;
        let stored: HashMap<(i64, i64, i64), Option<f64>> = stored
            .into_iter()
            .map(|(a, b, i, p)| ((a, b, i), p))
            .collect();
        for (row, (a, b, item)) in rows.iter().zip(&resolved) {
            if stored
                .get(&(a.0, b.0, item.0))
                .is_some_and(|p| *p != row.preference)
            {
                return Err(JudgmentsRefused::Conflict {
                    origin: row.origin.clone(),
                    judge: judge.to_string(),
                    a: row.a.clone(),
                    b: row.b.clone(),
                });
            }
        }
    }
    if created > 0 {
        sqlx::query(
            "UPDATE judges SET version = version + 1, judgments = judgments + $2 WHERE id = $1",
        )
        .bind(judge_id)
        .bind(created as i64)
        .execute(&mut *tx)
        .await
        .map_err(db("bump judge version"))?;
    }
    tx.commit().await.map_err(db("commit judgments"))?;
    if created >= 1_000 {
        sqlx::query("ANALYZE judgments")
            .execute(pool)
            .await
            .map_err(db("analyze"))?;
    }
    let mut names: Vec<String> = rows
        .iter()
        .flat_map(|r| [r.a.clone(), r.b.clone()])
        .collect();
    names.sort_unstable();
    names.dedup();
    Ok(JudgmentSummary {
        dataset: dataset_name.to_string(),
        judge: judge.to_string(),
        rows: rows.len() as u64,
        created,
        unchanged: rows.len() as u64 - created,
        self_judgments: file.self_judgments,
        systems: names,
    })
}

fn describe(key: &str) -> String {
    let mut short: String = key.chars().take(60).collect();
    if short.len() < key.len() {
        short.push('…');
    }
    format!("{short:?}")
}

/// The dataset's judges, by name.
pub async fn list(pool: &PgPool, dataset_id: DatasetId) -> Result<Vec<Judge>> {
    sqlx::query_as(
        "SELECT id, name, judgments, provenance FROM judges WHERE dataset_id = $1 ORDER BY name",
    )
    .bind(dataset_id)
    .fetch_all(pool)
    .await
    .map_err(db("list judges"))
}

/// The judge's id and version, by name on the dataset.
pub async fn find(
    pool: &PgPool,
    dataset_id: DatasetId,
    name: &str,
) -> Result<Option<(JudgeId, i64)>> {
    if !searchable(name) {
        return Ok(None);
    }
    sqlx::query_as("SELECT id, version FROM judges WHERE dataset_id = $1 AND name = $2")
        .bind(dataset_id)
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(db("find judge"))
}

/// One item of one system judged against the baseline, oriented so that
/// `preference` is P(the system beats the baseline), with both outputs'
/// lengths in characters (code points).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgainstBaseline {
    /// The system.
    pub system: String,
    /// The item.
    pub item_id: ItemId,
    /// P(system wins); `None` without a verdict.
    pub preference: Option<f64>,
    /// The system's output length.
    pub system_length: i32,
    /// The baseline's output length.
    pub baseline_length: i32,
}

/// Every judgment of the judge between `baseline` and another system, one row
/// per system and item (a pair judged in both orders is averaged), ordered by
/// system name and item.
pub async fn against_baseline(
    pool: &PgPool,
    judge: JudgeId,
    baseline: SystemId,
) -> Result<Vec<AgainstBaseline>> {
    sqlx::query_as(
        "SELECT s.name AS system, j.item_id, \
                avg(CASE WHEN j.system_a = $2 THEN j.preference ELSE 1 - j.preference END) AS preference, \
                char_length(gs.response) AS system_length, char_length(gb.response) AS baseline_length \
         FROM judgments j \
         JOIN systems s ON s.id = CASE WHEN j.system_a = $2 THEN j.system_b ELSE j.system_a END \
         JOIN generations gs ON gs.system_id = s.id AND gs.item_id = j.item_id \
         JOIN generations gb ON gb.system_id = $2 AND gb.item_id = j.item_id \
         WHERE j.judge_id = $1 AND (j.system_a = $2 OR j.system_b = $2) \
         GROUP BY s.name, j.item_id, gs.response, gb.response \
         ORDER BY s.name, j.item_id",
    )
    .bind(judge)
    .bind(baseline)
    .fetch_all(pool)
    .await
    .map_err(db("read judgments against the baseline"))
}

/// Every judge's preference for the pair on these items, oriented as
/// P(`b` wins): (item, judge, preference), a pair judged in both orders
/// averaged.
pub async fn preferences_for(
    pool: &PgPool,
    items: &[ItemId],
    a: SystemId,
    b: SystemId,
) -> Result<Vec<(ItemId, String, Option<f64>)>> {
    sqlx::query_as(
        "SELECT j.item_id, jg.name, \
                avg(CASE WHEN j.system_b = $3 THEN j.preference ELSE 1 - j.preference END) \
         FROM judgments j JOIN judges jg ON jg.id = j.judge_id \
         WHERE j.item_id = ANY($1) \
           AND ((j.system_a = $2 AND j.system_b = $3) OR (j.system_a = $3 AND j.system_b = $2)) \
         GROUP BY j.item_id, jg.name ORDER BY jg.name",
    )
    .bind(items)
    .bind(a)
    .bind(b)
    .fetch_all(pool)
    .await
    .map_err(db("read the judges' preferences"))
}

/// The cached leaderboard body for (judge, baseline) if computed at `version`.
pub async fn cached_leaderboard(
    pool: &PgPool,
    judge: JudgeId,
    baseline: SystemId,
    version: i64,
) -> Result<Option<serde_json::Value>> {
    sqlx::query_scalar(
        "SELECT body FROM judge_leaderboards WHERE judge_id = $1 AND baseline_id = $2 AND version = $3",
    )
    .bind(judge)
    .bind(baseline)
    .bind(version)
    .fetch_optional(pool)
    .await
    .map_err(db("read cached leaderboard"))
}

/// Stores a computed leaderboard for (judge, baseline) at `version`.
pub async fn cache_leaderboard(
    pool: &PgPool,
    judge: JudgeId,
    baseline: SystemId,
    version: i64,
    body: &serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO judge_leaderboards (judge_id, baseline_id, version, body) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (judge_id, baseline_id) DO UPDATE SET version = EXCLUDED.version, body = EXCLUDED.body, computed_at = now()",
    )
    .bind(judge)
    .bind(baseline)
    .bind(version)
    .bind(body)
    .execute(pool)
    .await
    .map_err(db("cache leaderboard"))?;
    Ok(())
}

/// Average output length per system on the dataset, in characters, truncated
/// (AlpacaEval's `avg_length`).
pub async fn average_lengths(pool: &PgPool, dataset_id: DatasetId) -> Result<HashMap<String, i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT s.name, floor(avg(char_length(g.response)))::bigint \
         FROM generations g JOIN systems s ON s.id = g.system_id \
         WHERE g.dataset_id = $1 GROUP BY s.name",
    )
    .bind(dataset_id)
    .fetch_all(pool)
    .await
    .map_err(db("average lengths"))?;
    Ok(rows.into_iter().collect())
}

/// The ids of the dataset's items, in their stored order (the order the
/// length-controlled fit indexes them by).
pub async fn item_order(pool: &PgPool, dataset_id: DatasetId) -> Result<Vec<ItemId>> {
    sqlx::query_scalar("SELECT id FROM items WHERE dataset_id = $1 ORDER BY id")
        .bind(dataset_id)
        .fetch_all(pool)
        .await
        .map_err(db("read item order"))
}

/// The names of the team's systems with generations on the dataset: one index
/// probe per system, where grouping the generations would read them all.
pub async fn system_names_on(
    pool: &PgPool,
    team_id: crate::domain::TeamId,
    dataset_id: DatasetId,
) -> Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT s.name FROM systems s WHERE s.team_id = $1 \
         AND EXISTS (SELECT 1 FROM generations g WHERE g.dataset_id = $2 AND g.system_id = s.id) \
         ORDER BY s.name",
    )
    .bind(team_id)
    .bind(dataset_id)
    .fetch_all(pool)
    .await
    .map_err(db("list systems"))
}

/// A system's id among those with generations on the dataset.
pub async fn system_on(
    pool: &PgPool,
    dataset_id: DatasetId,
    name: &str,
) -> Result<Option<SystemId>> {
    if !searchable(name) {
        return Ok(None);
    }
    sqlx::query_scalar(
        "SELECT s.id FROM systems s WHERE s.name = $2 \
         AND EXISTS (SELECT 1 FROM generations g WHERE g.dataset_id = $1 AND g.system_id = s.id)",
    )
    .bind(dataset_id)
    .bind(name)
    .fetch_optional(pool)
    .await
    .map_err(db("find system"))
}

/// The items a system answered on the dataset, by id.
pub async fn items_of(
    pool: &PgPool,
    system: SystemId,
    dataset_id: DatasetId,
) -> Result<Vec<ItemId>> {
    sqlx::query_scalar(
        "SELECT item_id FROM generations WHERE system_id = $1 AND dataset_id = $2 ORDER BY item_id",
    )
    .bind(system)
    .bind(dataset_id)
    .fetch_all(pool)
    .await
    .map_err(db("read the baseline's items"))
}
