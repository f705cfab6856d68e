//! Datasets, items, systems and generations (see `migrations/*_datasets_and_generations.sql`).

use std::collections::HashMap;

use sqlx::PgPool;

use super::{db, searchable};
use crate::domain::{Dataset, DatasetId, ImportSummary, ItemId, System, SystemId, TeamId};
use crate::error::{Error, Result};
use crate::import::{Row, prompt_key};

/// Why an import was refused; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ImportRefused {
    /// A dataset or system name breaks the naming rule.
    #[error("{what} name {name:?} is invalid: {rule}")]
    InvalidName {
        /// `dataset` or `system`.
        what: &'static str,
        /// The name given.
        name: String,
        /// The rule.
        rule: &'static str,
    },
    /// The system already has a different response for an item of this file.
    #[error(
        "{origin}: system `{system}` already has a different response for this item; generations are immutable (push under a new system name)"
    )]
    Conflict {
        /// The row, as `line N` or `entry K`.
        origin: String,
        /// The system.
        system: String,
    },
    /// A row names a stored item (by its `id`) with a different prompt. Items
    /// are shared by every system on the dataset, so taking the new prompt would
    /// silently change what the others answered, and keeping the old one would
    /// score this row against a question it was not asked.
    #[error(
        "{origin}: item {key} already exists on dataset `{dataset}` with the prompt {stored}, and this \
         file gives it the prompt {given}; an item's prompt cannot change (give the row another `id`, \
         or push to a new dataset)"
    )]
    PromptConflict {
        /// The row, as `line N` or `entry K`.
        origin: String,
        /// The dataset.
        dataset: String,
        /// The item's key, quoted and shortened.
        key: String,
        /// The stored prompt, quoted and shortened.
        stored: String,
        /// The row's prompt, quoted and shortened.
        given: String,
    },
    /// The database failed.
    #[error(transparent)]
    Database(#[from] Error),
}

/// A text quoted for a message, cut to its first 60 characters.
fn shorten(text: &str) -> String {
    const SHOWN: usize = 60;
    let mut short: String = text.chars().take(SHOWN).collect();
    if text.chars().nth(SHOWN).is_some() {
        short.push('…');
    }
    format!("{short:?}")
}

const DATASET_RULE: &str =
    "1-64 characters: letters, digits, '_', '.', '-', starting with a letter or digit";
const SYSTEM_RULE: &str = "1-128 characters: letters, digits, '_', '.', ':', '+', '=', '-', starting with a letter or digit";

/// Checks a dataset name against the rule the database enforces.
pub fn check_dataset_name(name: &str) -> Result<(), ImportRefused> {
    check_name(name, 64, "_.-", "dataset", DATASET_RULE)
}

/// Checks a system name against the rule the database enforces.
pub fn check_system_name(name: &str) -> Result<(), ImportRefused> {
    check_name(name, 128, "_.:+=-", "system", SYSTEM_RULE)
}

fn check_name(
    name: &str,
    max: usize,
    punctuation: &str,
    what: &'static str,
    rule: &'static str,
) -> Result<(), ImportRefused> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= max
        && chars.all(|c| c.is_ascii_alphanumeric() || punctuation.contains(c));
    if ok {
        Ok(())
    } else {
        Err(ImportRefused::InvalidName {
            what,
            name: name.to_string(),
            rule,
        })
    }
}

/// Imports at least this large refresh the planner's statistics.
const ANALYZE_AFTER: u64 = 1_000;

/// Stores a parsed file as `system`'s generations on `dataset`, creating the
/// dataset, the system and missing items as needed, all in one transaction.
pub async fn import(
    pool: &PgPool,
    team_id: TeamId,
    dataset: &str,
    system: &str,
    rows: &[Row],
) -> Result<ImportSummary, ImportRefused> {
    check_dataset_name(dataset)?;
    check_system_name(system)?;
    let mut tx = pool.begin().await.map_err(db("begin"))?;
    let dataset_id: DatasetId = sqlx::query_scalar(
        "INSERT INTO datasets (team_id, name) VALUES ($1, $2) \
         ON CONFLICT (team_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
    )
    .bind(team_id)
    .bind(dataset)
    .fetch_one(&mut *tx)
    .await
    .map_err(db("create dataset"))?;
    let system_id: SystemId = sqlx::query_scalar(
        "INSERT INTO systems (team_id, name) VALUES ($1, $2) \
         ON CONFLICT (team_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
    )
    .bind(team_id)
    .bind(system)
    .fetch_one(&mut *tx)
    .await
    .map_err(db("create system"))?;

    let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    let prompts: Vec<&str> = rows.iter().map(|r| r.prompt.as_str()).collect();
    let references: Vec<Option<&str>> = rows.iter().map(|r| r.reference.as_deref()).collect();
    let fields: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| serde_json::Value::Object(r.fields.clone()))
        .collect();
    let items_created = sqlx::query(
        "INSERT INTO items (dataset_id, key, prompt, reference, fields) \
         SELECT $1, k, p, r, f FROM UNNEST($2::text[], $3::text[], $4::text[], $5::jsonb[]) AS u(k, p, r, f) \
         ON CONFLICT (dataset_id, key) DO NOTHING",
    )
    .bind(dataset_id)
    .bind(&keys)
    .bind(&prompts)
    .bind(&references)
    .bind(&fields)
    .execute(&mut *tx)
    .await
    .map_err(db("insert items"))?
    .rows_affected();

    let stored: Vec<(ItemId, String, String, Option<String>)> = sqlx::query_as(
        "SELECT id, key, prompt, reference FROM items WHERE dataset_id = $1 AND key = ANY($2)",
    )
    .bind(dataset_id)
    .bind(&keys)
    .fetch_all(&mut *tx)
    .await
    .map_err(db("read items"))?;
    let by_key: HashMap<&str, (ItemId, &str, Option<&str>)> = stored
        .iter()
        .map(|(id, key, prompt, reference)| {
            (key.as_str(), (*id, prompt.as_str(), reference.as_deref()))
        })
        .collect();
    let mut item_ids = Vec::with_capacity(rows.len());
    let mut reference_mismatches = 0;
    for row in rows {
        let (id, prompt, reference) = by_key.get(row.key.as_str()).copied().ok_or_else(|| {
            Error::Inconsistent(format!("item {:?} vanished during the import", row.key))
        })?;
        // Spellings that normalise alike are the same question (the key rule),
        // so only a prompt that differs after normalisation is a conflict; rows
        // keyed by their prompt can never differ here.
        if prompt != row.prompt && prompt_key(prompt) != prompt_key(&row.prompt) {
            return Err(ImportRefused::PromptConflict {
                origin: row.origin.clone(),
                dataset: dataset.to_string(),
                key: shorten(&row.key),
                stored: shorten(prompt),
                given: shorten(&row.prompt),
            });
        }
        if row.reference.is_some() && row.reference.as_deref() != reference {
            reference_mismatches += 1;
        }
        item_ids.push(id);
    }

    let responses: Vec<&str> = rows.iter().map(|r| r.response.as_str()).collect();
    let extras: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| serde_json::Value::Object(r.extra.clone()))
        .collect();
    let generations_created = sqlx::query(
        "INSERT INTO generations (dataset_id, system_id, item_id, response, extra) \
         SELECT $1, $2, i, r, e FROM UNNEST($3::bigint[], $4::text[], $5::jsonb[]) AS u(i, r, e) \
         ON CONFLICT (system_id, item_id) DO NOTHING",
    )
    .bind(dataset_id)
    .bind(system_id)
    .bind(&item_ids)
    .bind(&responses)
    .bind(&extras)
    .execute(&mut *tx)
    .await
    .map_err(db("insert generations"))?
    .rows_affected();

    if generations_created < rows.len() as u64 {
        // Some items already had a response from this system: fine if it is the
        // same text (a repeated push), refused otherwise.
        let existing: Vec<(ItemId, String)> = sqlx::query_as(
            "SELECT item_id, response FROM generations WHERE system_id = $1 AND item_id = ANY($2)",
        )
        .bind(system_id)
        .bind(&item_ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(db("read generations"))?;
        let existing: HashMap<ItemId, String> = existing.into_iter().collect();
        for (row, item_id) in rows.iter().zip(&item_ids) {
            if existing.get(item_id).is_some_and(|r| *r != row.response) {
                return Err(ImportRefused::Conflict {
                    origin: row.origin.clone(),
                    system: system.to_string(),
                });
            }
        }
    }
    let items_missing: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT g.item_id) FROM generations g \
         WHERE g.dataset_id = $1 AND g.system_id <> $2 \
           AND NOT EXISTS (SELECT 1 FROM generations m WHERE m.system_id = $2 AND m.item_id = g.item_id)",
    )
    .bind(dataset_id)
    .bind(system_id)
    .fetch_one(&mut *tx)
    .await
    .map_err(db("count missing items"))?;
    let systems_without_common_items: Vec<String> = sqlx::query_scalar(
        "SELECT s.name FROM systems s \
         WHERE s.id <> $2 \
           AND EXISTS (SELECT 1 FROM generations g WHERE g.dataset_id = $1 AND g.system_id = s.id) \
           AND NOT EXISTS (SELECT 1 FROM generations g JOIN generations m \
                             ON m.item_id = g.item_id AND m.system_id = $2 \
                           WHERE g.dataset_id = $1 AND g.system_id = s.id) \
         ORDER BY s.name",
    )
    .bind(dataset_id)
    .bind(system_id)
    .fetch_all(&mut *tx)
    .await
    .map_err(db("find systems without common items"))?;
    tx.commit().await.map_err(db("commit import"))?;
    if generations_created >= ANALYZE_AFTER {
        // Fresh statistics for the planner: right after a bulk import, before
        // autovacuum gets to it, per-item queries were seen to take seconds.
        sqlx::query("ANALYZE items, generations")
            .execute(pool)
            .await
            .map_err(db("analyze"))?;
    }
    Ok(ImportSummary {
        dataset: dataset.to_string(),
        system: system.to_string(),
        rows: rows.len() as u64,
        items_created,
        items_matched: rows.len() as u64 - items_created,
        items_missing: items_missing as u64,
        systems_without_common_items,
        generations_created,
        generations_unchanged: rows.len() as u64 - generations_created,
        reference_mismatches,
    })
}

/// `datasets` with its sizes counted, as selected.
#[derive(sqlx::FromRow)]
struct DatasetRow {
    id: DatasetId,
    name: String,
    items: i64,
    systems: i64,
    generations: i64,
}

impl From<DatasetRow> for Dataset {
    fn from(row: DatasetRow) -> Self {
        Dataset {
            id: row.id,
            name: row.name,
            items: row.items,
            systems: row.systems,
            generations: row.generations,
        }
    }
}

/// `systems` with a generation count, as selected.
#[derive(sqlx::FromRow)]
struct SystemRow {
    id: SystemId,
    name: String,
    metadata: serde_json::Value,
    generations: i64,
}

impl From<SystemRow> for System {
    fn from(row: SystemRow) -> Self {
        System {
            id: row.id,
            name: row.name,
            metadata: row.metadata,
            generations: row.generations,
        }
    }
}

/// The team's datasets with their sizes, by name.
pub async fn list(pool: &PgPool, team_id: TeamId) -> Result<Vec<Dataset>> {
    let rows: Vec<DatasetRow> = sqlx::query_as(
        "SELECT d.id, d.name, \
           (SELECT count(*) FROM items i WHERE i.dataset_id = d.id) AS items, \
           (SELECT count(DISTINCT g.system_id) FROM generations g WHERE g.dataset_id = d.id) AS systems, \
           (SELECT count(*) FROM generations g WHERE g.dataset_id = d.id) AS generations \
         FROM datasets d WHERE d.team_id = $1 ORDER BY d.name",
    )
    .bind(team_id)
    .fetch_all(pool)
    .await
    .map_err(db("list datasets"))?;
    Ok(rows.into_iter().map(Dataset::from).collect())
}

/// The id a dataset reference names when it is not a name: all digits (so
/// `+7` or ` 7` name nothing rather than dataset 7).
fn as_id(name_or_id: &str) -> Option<i64> {
    if name_or_id.is_empty() || !name_or_id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name_or_id.parse().ok()
}

/// The API's rule for a dataset reference, shared by `find` and `resolve`: the
/// team's dataset of that name, else (for a number) the team's dataset with
/// that id. A name wins, so a dataset named `2024` is still found by name.
const BY_NAME_OR_ID: &str =
    "d.team_id = $1 AND (d.name = $2 OR d.id = $3) ORDER BY (d.name = $2) DESC LIMIT 1";

/// One of the team's datasets by name or id (see [`resolve`]), with its
/// sizes; `None` if the reference names none of the team's.
pub async fn find(pool: &PgPool, team_id: TeamId, name_or_id: &str) -> Result<Option<Dataset>> {
    if !searchable(name_or_id) {
        return Ok(None);
    }
    let row: Option<DatasetRow> = sqlx::query_as(&format!(
        "SELECT d.id, d.name, \
           (SELECT count(*) FROM items i WHERE i.dataset_id = d.id) AS items, \
           (SELECT count(DISTINCT g.system_id) FROM generations g WHERE g.dataset_id = d.id) AS systems, \
           (SELECT count(*) FROM generations g WHERE g.dataset_id = d.id) AS generations \
         FROM datasets d WHERE {BY_NAME_OR_ID}"
    ))
    .bind(team_id)
    .bind(name_or_id)
    .bind(as_id(name_or_id))
    .fetch_optional(pool)
    .await
    .map_err(db("find dataset"))?;
    Ok(row.map(Dataset::from))
}

/// The team's dataset named `name_or_id`, or, when it has none by that name
/// and the reference is a number, its dataset with that id: the id and the
/// name, without counting anything. `datasets` lists both, and ids survive a
/// name that is awkward to type or quote.
pub async fn resolve(
    pool: &PgPool,
    team_id: TeamId,
    name_or_id: &str,
) -> Result<Option<(DatasetId, String)>> {
    if !searchable(name_or_id) {
        return Ok(None);
    }
    sqlx::query_as(&format!(
        "SELECT d.id, d.name FROM datasets d WHERE {BY_NAME_OR_ID}"
    ))
    .bind(team_id)
    .bind(name_or_id)
    .bind(as_id(name_or_id))
    .fetch_optional(pool)
    .await
    .map_err(db("find dataset"))
}

/// The id of the team's dataset with this name (names only, as the pages'
/// addresses use), without counting anything.
pub async fn find_id(pool: &PgPool, team_id: TeamId, name: &str) -> Result<Option<DatasetId>> {
    if !searchable(name) {
        return Ok(None);
    }
    sqlx::query_scalar("SELECT id FROM datasets WHERE team_id = $1 AND name = $2")
        .bind(team_id)
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(db("find dataset"))
}

/// The systems with generations on a dataset, by name.
pub async fn systems_of(pool: &PgPool, dataset_id: DatasetId) -> Result<Vec<System>> {
    let rows: Vec<SystemRow> = sqlx::query_as(
        "SELECT s.id, s.name, s.metadata, count(g.id) AS generations \
         FROM systems s JOIN generations g ON g.system_id = s.id \
         WHERE g.dataset_id = $1 GROUP BY s.id ORDER BY s.name",
    )
    .bind(dataset_id)
    .fetch_all(pool)
    .await
    .map_err(db("list systems"))?;
    Ok(rows.into_iter().map(System::from).collect())
}

/// All of the team's systems, by name.
pub async fn systems(pool: &PgPool, team_id: TeamId) -> Result<Vec<System>> {
    let rows: Vec<SystemRow> = sqlx::query_as(
        "SELECT s.id, s.name, s.metadata, \
           (SELECT count(*) FROM generations g WHERE g.system_id = s.id) AS generations \
         FROM systems s WHERE s.team_id = $1 ORDER BY s.name",
    )
    .bind(team_id)
    .fetch_all(pool)
    .await
    .map_err(db("list systems"))?;
    Ok(rows.into_iter().map(System::from).collect())
}

/// Replaces a system's metadata; `None` if the team has no such system.
pub async fn set_metadata(
    pool: &PgPool,
    team_id: TeamId,
    name: &str,
    metadata: &serde_json::Value,
) -> Result<Option<System>> {
    if !searchable(name) {
        return Ok(None);
    }
    let updated = sqlx::query("UPDATE systems SET metadata = $3 WHERE team_id = $1 AND name = $2")
        .bind(team_id)
        .bind(name)
        .bind(metadata)
        .execute(pool)
        .await
        .map_err(db("update system"))?
        .rows_affected();
    if updated == 0 {
        return Ok(None);
    }
    Ok(systems(pool, team_id)
        .await?
        .into_iter()
        .find(|s| s.name == name))
}
