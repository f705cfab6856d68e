//! Scoring runs and pairwise comparisons as durable jobs.
//!
//! - this file: creating jobs (resolving names, planning chunks), reading and
//!   cancelling them;
//! - [`queue`]: the PostgreSQL queue of chunks — claim under a lease, heartbeat,
//!   fenced completion, retry with backoff, failure;
//! - [`worker`]: the loop that claims chunks and runs them in the sandbox
//!   (inside `evaluator serve`, and as `evaluator worker` processes).
//!
//! Why a queue of our own rather than a crate (underway, graphile_worker,
//! apalis): the unit of work here is a chunk of one job, and a chunk's result
//! rows, its completion, the job's progress counters and the job's terminal state
//! must all change in one transaction guarded by the chunk's attempt number.
//! Those crates keep their own task tables and state machines beside ours, so job
//! state would live in two places and cancellation or failure of a job's other
//! chunks would need a second, non-atomic step. The queue needs four SQL
//! statements on our own tables ([`queue`]), each tested, including a SIGKILL test.

pub mod queue;
pub mod worker;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use self::queue::ChunkWork;
use crate::db::{db, searchable};
use crate::domain::{
    DatasetId, GenerationId, ItemId, Job, JobId, JobKind, JobState, ModuleId, ModuleKind, SystemId,
    TeamId, parse_module_kind,
};
use crate::error::{Error, Result};

/// Generations per score chunk.
pub const SCORE_CHUNK: usize = 1024;
/// Items per compare chunk (each item is two judge calls).
pub const COMPARE_CHUNK: usize = 256;
/// The channel workers listen on; a new job notifies it.
pub const CHANNEL: &str = "evaluator_jobs";

/// What a team asked for that cannot be done, or names nothing it owns.
#[derive(Debug, thiserror::Error)]
pub enum JobRefused {
    /// An id or name of something the team does not have (404).
    #[error("{0}")]
    NotFound(String),
    /// A request that names existing things but cannot run (422).
    #[error("{0}")]
    Invalid(String),
    /// A comparison of systems that answered no item in common (422,
    /// `no_common_items`): there would be nothing to compare, and a leaderboard
    /// would rank them on numbers never compared.
    #[error(
        "{}: no item in common on dataset `{dataset}`, so nothing to compare; items are matched by \
         `id`, else by the prompt (Unicode NFC, whitespace collapsed, case kept): check that the files \
         ask the same questions, or leave one system of each pair out (`systems`)",
        describe_pairs(pairs)
    )]
    NoCommonItems {
        /// The dataset's name.
        dataset: String,
        /// The pairs of systems without a common item, by name.
        pairs: Vec<(String, String)>,
    },
    /// The database failed.
    #[error(transparent)]
    Database(#[from] Error),
}

/// `systems `a` and `b`` or, for several pairs, the first few of them.
fn describe_pairs(pairs: &[(String, String)]) -> String {
    const SHOWN: usize = 5;
    let mut text = pairs
        .iter()
        .take(SHOWN)
        .map(|(a, b)| format!("`{a}` and `{b}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if pairs.len() > SHOWN {
        text.push_str(&format!(" and {} more pairs", pairs.len() - SHOWN));
    }
    format!("systems {text}")
}

/// A scoring run: modules × systems on a dataset.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreRequest {
    /// The dataset: its name, or its id where no dataset has that name.
    pub dataset: String,
    /// Scorer modules: ids, or the names they declare (the newest upload wins).
    pub modules: Vec<String>,
    /// Systems by name; all systems with generations on the dataset when absent.
    #[serde(default)]
    pub systems: Option<Vec<String>>,
}

/// A pairwise comparison: pairs of systems × a judge.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompareRequest {
    /// The dataset: its name, or its id where no dataset has that name.
    pub dataset: String,
    /// A judge module, or a scorer whose metric decides (id or declared name).
    pub judge: String,
    /// For a scorer judge: the metric (optional when it declares only one).
    #[serde(default)]
    pub metric: Option<String>,
    /// Systems by name (at least two); all with generations when absent. Every
    /// pair is compared, unless `baseline` is given.
    #[serde(default)]
    pub systems: Option<Vec<String>>,
    /// Compare every other system with this one only (a fixed baseline, as
    /// AlpacaEval does) instead of every pair; added to `systems` when they
    /// leave it out.
    #[serde(default)]
    pub baseline: Option<String>,
}

/// `jobs` joined with its dataset's name, as selected.
#[derive(sqlx::FromRow)]
struct JobRow {
    id: JobId,
    #[sqlx(try_from = "String")]
    kind: JobKind,
    #[sqlx(try_from = "String")]
    state: JobState,
    dataset: String,
    done_chunks: i32,
    total_chunks: i32,
    done_units: i64,
    total_units: i64,
    error_code: Option<String>,
    error: Option<String>,
    judge_module_id: Option<ModuleId>,
    judge_metric: Option<String>,
    created_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
}

impl From<JobRow> for Job {
    fn from(row: JobRow) -> Self {
        Job {
            id: row.id,
            kind: row.kind,
            state: row.state,
            dataset: row.dataset,
            done_chunks: row.done_chunks,
            total_chunks: row.total_chunks,
            done_units: row.done_units,
            total_units: row.total_units,
            error_code: row.error_code,
            error: row.error,
            judge_module_id: row.judge_module_id,
            judge_metric: row.judge_metric,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
        }
    }
}

const JOB_COLUMNS: &str = "j.id, j.kind, j.state, d.name AS dataset, j.done_chunks, j.total_chunks, \
     j.done_units, j.total_units, j.error_code, j.error, j.judge_module_id, \
     (SELECT mm.name FROM module_metrics mm WHERE mm.module_id = j.judge_module_id AND mm.position = j.judge_metric) AS judge_metric, \
     to_char(j.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS created_at, \
     to_char(j.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS started_at, \
     to_char(j.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS finished_at";

/// One of the team's jobs; `None` for an unknown id or another team's.
pub async fn get(pool: &PgPool, team_id: TeamId, id: JobId) -> Result<Option<Job>> {
    let row: Option<JobRow> = sqlx::query_as(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs j JOIN datasets d ON d.id = j.dataset_id \
         WHERE j.team_id = $1 AND j.id = $2"
    ))
    .bind(team_id)
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(db("get job"))?;
    Ok(row.map(Job::from))
}

/// The team's most recent jobs, newest first.
pub async fn list(pool: &PgPool, team_id: TeamId, limit: i64) -> Result<Vec<Job>> {
    let rows: Vec<JobRow> = sqlx::query_as(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs j JOIN datasets d ON d.id = j.dataset_id \
         WHERE j.team_id = $1 ORDER BY j.id DESC LIMIT $2"
    ))
    .bind(team_id)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(db("list jobs"))?;
    Ok(rows.into_iter().map(Job::from).collect())
}

/// Cancels a job that has not finished: its queued chunks are dropped and
/// running ones are fenced out at completion. Results already committed stay.
/// `None` for an unknown id; the record otherwise (unchanged if it had finished).
pub async fn cancel(pool: &PgPool, team_id: TeamId, id: JobId) -> Result<Option<Job>> {
    let mut tx = pool.begin().await.map_err(db("begin"))?;
    let updated = sqlx::query(
        "UPDATE jobs SET state = 'cancelled', finished_at = now() \
         WHERE team_id = $1 AND id = $2 AND state IN ('queued', 'running')",
    )
    .bind(team_id)
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(db("cancel job"))?
    .rows_affected();
    if updated > 0 {
        sqlx::query(
            "UPDATE job_chunks SET state = 'cancelled', lease_expires_at = NULL \
             WHERE job_id = $1 AND state IN ('queued', 'running')",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db("cancel chunks"))?;
    }
    tx.commit().await.map_err(db("commit cancel"))?;
    get(pool, team_id, id).await
}

/// A module the team owns, resolved from an id or a declared name.
#[derive(Debug, Clone)]
struct ModuleRef {
    id: ModuleId,
    name: String,
    kind: ModuleKind,
}

async fn resolve_module(
    pool: &PgPool,
    team_id: TeamId,
    spec: &str,
) -> Result<ModuleRef, JobRefused> {
    if !searchable(spec) {
        return Err(JobRefused::NotFound(format!("no module {spec:?}")));
    }
    let found: Option<(ModuleId, String, String)> = match spec.parse::<ModuleId>() {
        Ok(id) => sqlx::query_as("SELECT id, name, kind FROM modules WHERE team_id = $1 AND id = $2")
            .bind(team_id)
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(db("find module"))?,
        Err(_) => sqlx::query_as(
            "SELECT id, name, kind FROM modules WHERE team_id = $1 AND name = $2 ORDER BY id DESC LIMIT 1",
        )
        .bind(team_id)
        .bind(spec)
        .fetch_optional(pool)
        .await
        .map_err(db("find module"))?,
    };
    let found = match found {
        Some((id, name, kind)) => Some(ModuleRef {
            id,
            name,
            kind: parse_module_kind(&kind).map_err(Error::from)?,
        }),
        None => None,
    };
    found.ok_or_else(|| {
        JobRefused::NotFound(format!(
            "no module `{spec}` (give a module id or the name it declares; upload it first)"
        ))
    })
}

/// The team's dataset by name, or by id (see [`crate::db::datasets::resolve`]):
/// its id and name.
async fn resolve_dataset(
    pool: &PgPool,
    team_id: TeamId,
    name: &str,
) -> Result<(DatasetId, String), JobRefused> {
    if !searchable(name) {
        return Err(JobRefused::NotFound(format!("no dataset {name:?}")));
    }
    crate::db::datasets::resolve(pool, team_id, name)
        .await?
        .ok_or_else(|| JobRefused::NotFound(format!("no dataset `{name}`")))
}

/// The systems asked for (or all with generations on the dataset), by name.
async fn resolve_systems(
    pool: &PgPool,
    team_id: TeamId,
    dataset_id: DatasetId,
    dataset: &str,
    names: Option<&[String]>,
) -> Result<Vec<(SystemId, String)>, JobRefused> {
    let present: Vec<(SystemId, String)> = sqlx::query_as(
        "SELECT s.id, s.name FROM systems s WHERE s.team_id = $1 \
         AND EXISTS (SELECT 1 FROM generations g WHERE g.system_id = s.id AND g.dataset_id = $2) \
         ORDER BY s.name",
    )
    .bind(team_id)
    .bind(dataset_id)
    .fetch_all(pool)
    .await
    .map_err(db("list systems"))?;
    let Some(names) = names else {
        return Ok(present);
    };
    let mut chosen = Vec::with_capacity(names.len());
    for name in names {
        let system = present.iter().find(|(_, n)| n == name).ok_or_else(|| {
            JobRefused::Invalid(format!(
                "system `{name}` has no generations on dataset `{dataset}`"
            ))
        })?;
        if !chosen.contains(system) {
            chosen.push(system.clone());
        }
    }
    Ok(chosen)
}

/// Creates a scoring run and its chunks in one transaction, and wakes the
/// workers. Generations a module has already scored are not scored again.
pub async fn create_score_job(
    pool: &PgPool,
    team_id: TeamId,
    request: &ScoreRequest,
) -> Result<Job, JobRefused> {
    if request.modules.is_empty() {
        return Err(JobRefused::Invalid("name at least one module".into()));
    }
    let (dataset_id, dataset) = resolve_dataset(pool, team_id, &request.dataset).await?;
    let mut modules = Vec::new();
    for spec in &request.modules {
        let module = resolve_module(pool, team_id, spec).await?;
        if module.kind != ModuleKind::Scorer {
            return Err(JobRefused::Invalid(format!(
                "module `{}` (#{}) is a {}; a scoring run needs scorers (use it with `compare --judge`)",
                module.name,
                module.id,
                module.kind.as_str()
            )));
        }
        if !modules.iter().any(|m: &ModuleRef| m.id == module.id) {
            modules.push(module);
        }
    }
    let systems = resolve_systems(
        pool,
        team_id,
        dataset_id,
        &dataset,
        request.systems.as_deref(),
    )
    .await?;
    if systems.is_empty() {
        return Err(JobRefused::Invalid(format!(
            "dataset `{}` has no generations yet",
            dataset
        )));
    }
    let system_ids: Vec<SystemId> = systems.iter().map(|(id, _)| *id).collect();

    let mut tx = pool.begin().await.map_err(db("begin"))?;
    let mut chunks: Vec<ChunkWork> = Vec::new();
    for module in &modules {
        let pending: Vec<GenerationId> = sqlx::query_scalar(
            "SELECT g.id FROM generations g WHERE g.dataset_id = $1 AND g.system_id = ANY($2) \
             AND NOT EXISTS (SELECT 1 FROM scores s WHERE s.generation_id = g.id AND s.module_id = $3) \
             ORDER BY g.id",
        )
        .bind(dataset_id)
        .bind(&system_ids)
        .bind(module.id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db("plan score chunks"))?;
        chunks.extend(pending.chunks(SCORE_CHUNK).map(|c| ChunkWork::Score {
            module: module.id,
            generations: c.to_vec(),
        }));
    }
    let job_id = insert_job(&mut tx, team_id, dataset_id, JobKind::Score, None, &chunks).await?;
    for module in &modules {
        sqlx::query("INSERT INTO job_modules (job_id, module_id) VALUES ($1, $2)")
            .bind(job_id)
            .bind(module.id)
            .execute(&mut *tx)
            .await
            .map_err(db("record job modules"))?;
    }
    publish(
        pool,
        tx,
        team_id,
        (job_id, dataset_id),
        &system_ids,
        &chunks,
    )
    .await
}

/// Creates a pairwise comparison over every pair of the systems, on the items
/// both systems answered, and wakes the workers. Refused with
/// [`JobRefused::NoCommonItems`] when some pair answered no item in common.
pub async fn create_compare_job(
    pool: &PgPool,
    team_id: TeamId,
    request: &CompareRequest,
) -> Result<Job, JobRefused> {
    let (dataset_id, dataset) = resolve_dataset(pool, team_id, &request.dataset).await?;
    let (judge_id, metric) =
        resolve_judge(pool, team_id, &request.judge, request.metric.as_deref()).await?;
    let asked = match (&request.systems, &request.baseline) {
        (Some(names), Some(baseline)) if !names.contains(baseline) => {
            let mut names = names.clone();
            names.push(baseline.clone());
            Some(names)
        }
        (names, _) => names.clone(),
    };
    let systems = resolve_systems(pool, team_id, dataset_id, &dataset, asked.as_deref()).await?;
    let baseline = match &request.baseline {
        None => None,
        Some(name) => Some(systems.iter().position(|(_, n)| n == name).ok_or_else(|| {
            JobRefused::Invalid(format!(
                "baseline `{name}` has no generations on `{dataset}`"
            ))
        })?),
    };
    if systems.len() < 2 {
        return Err(JobRefused::Invalid(format!(
            "a comparison needs at least two systems with generations on `{}` (found {})",
            dataset,
            systems.len()
        )));
    }
    let mut tx = pool.begin().await.map_err(db("begin"))?;
    let mut chunks: Vec<ChunkWork> = Vec::new();
    let mut disjoint: Vec<(String, String)> = Vec::new();
    // Every pair, or the baseline (as `a`) against each other system.
    let pairs: Vec<(usize, usize)> = match baseline {
        Some(base) => (0..systems.len())
            .filter(|&j| j != base)
            .map(|j| (base, j))
            .collect(),
        None => (0..systems.len())
            .flat_map(|i| (i + 1..systems.len()).map(move |j| (i, j)))
            .collect(),
    };
    for (i, j) in pairs {
        let ((a, a_name), (b, b_name)) = (&systems[i], &systems[j]);
        {
            let shared: Vec<ItemId> = sqlx::query_scalar(
                "SELECT ga.item_id FROM generations ga \
                 JOIN generations gb ON gb.item_id = ga.item_id AND gb.system_id = $3 \
                 WHERE ga.dataset_id = $1 AND ga.system_id = $2 ORDER BY ga.item_id",
            )
            .bind(dataset_id)
            .bind(a)
            .bind(b)
            .fetch_all(&mut *tx)
            .await
            .map_err(db("plan compare chunks"))?;
            if shared.is_empty() {
                disjoint.push((a_name.clone(), b_name.clone()));
            }
            chunks.extend(shared.chunks(COMPARE_CHUNK).map(|c| ChunkWork::Compare {
                a: *a,
                b: *b,
                items: c.to_vec(),
            }));
        }
    }
    if !disjoint.is_empty() {
        return Err(JobRefused::NoCommonItems {
            dataset: dataset.clone(),
            pairs: disjoint,
        });
    }
    let judge = Some((judge_id, metric));
    let job_id = insert_job(
        &mut tx,
        team_id,
        dataset_id,
        JobKind::Compare,
        judge,
        &chunks,
    )
    .await?;
    let system_ids: Vec<SystemId> = systems.iter().map(|(id, _)| *id).collect();
    publish(
        pool,
        tx,
        team_id,
        (job_id, dataset_id),
        &system_ids,
        &chunks,
    )
    .await
}

/// A judge as a request names it: the module's id and, for a scorer judge,
/// the position of the metric that decides (the one named, or its only one).
pub async fn resolve_judge(
    pool: &PgPool,
    team_id: TeamId,
    judge: &str,
    metric: Option<&str>,
) -> Result<(ModuleId, Option<i32>), JobRefused> {
    let (id, metric, _) = resolve_named_judge(pool, team_id, judge, metric).await?;
    Ok((id, metric))
}

/// [`resolve_judge`], with the module's declared name, for messages that
/// should name the module rather than the id a client passed.
pub async fn resolve_named_judge(
    pool: &PgPool,
    team_id: TeamId,
    judge: &str,
    metric: Option<&str>,
) -> Result<(ModuleId, Option<i32>, String), JobRefused> {
    let module = resolve_module(pool, team_id, judge).await?;
    let metric = match (module.kind, metric) {
        (ModuleKind::Judge, None) => None,
        (ModuleKind::Judge, Some(metric)) => {
            return Err(JobRefused::Invalid(format!(
                "module `{}` is a judge; `metric` ({metric}) applies only to scorer judges",
                module.name
            )));
        }
        (_, metric) => Some(resolve_metric(pool, &module, metric).await?),
    };
    Ok((module.id, metric, module.name))
}

/// The team's dataset by name or id: its id and name.
pub async fn dataset_id(
    pool: &PgPool,
    team_id: TeamId,
    name: &str,
) -> Result<(DatasetId, String), JobRefused> {
    resolve_dataset(pool, team_id, name).await
}

/// The position of a scorer's metric: the one named, or its only one.
async fn resolve_metric(
    pool: &PgPool,
    module: &ModuleRef,
    metric: Option<&str>,
) -> Result<i32, JobRefused> {
    let metrics: Vec<(i32, String)> = sqlx::query_as(
        "SELECT position, name FROM module_metrics WHERE module_id = $1 ORDER BY position",
    )
    .bind(module.id)
    .fetch_all(pool)
    .await
    .map_err(db("module metrics"))?;
    let names = || {
        metrics
            .iter()
            .map(|(_, n)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match metric {
        Some(metric) => metrics
            .iter()
            .find(|(_, n)| n == metric)
            .map(|(p, _)| *p)
            .ok_or_else(|| {
                JobRefused::Invalid(format!(
                    "module `{}` has no metric `{metric}` (it has: {})",
                    module.name,
                    names()
                ))
            }),
        None if metrics.len() == 1 => Ok(metrics[0].0),
        None => Err(JobRefused::Invalid(format!(
            "module `{}` is a scorer with several metrics; name one with `metric` ({})",
            module.name,
            names()
        ))),
    }
}

async fn insert_job(
    tx: &mut sqlx::PgConnection,
    team_id: TeamId,
    dataset_id: DatasetId,
    kind: JobKind,
    judge: Option<(ModuleId, Option<i32>)>,
    chunks: &[ChunkWork],
) -> Result<JobId, JobRefused> {
    // A job with nothing left to do (everything already scored) is done at once.
    let total_units: i64 = chunks.iter().map(|c| c.units() as i64).sum();
    let state = if chunks.is_empty() {
        JobState::Succeeded
    } else {
        JobState::Queued
    };
    let (judge_module_id, judge_metric) = judge.unzip();
    let id: JobId = sqlx::query_scalar(
        "INSERT INTO jobs (team_id, dataset_id, kind, state, judge_module_id, judge_metric, total_chunks, total_units, finished_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $4 = 'succeeded' THEN now() END) RETURNING id",
    )
    .bind(team_id)
    .bind(dataset_id)
    .bind(kind.as_str())
    .bind(state.as_str())
    .bind(judge_module_id)
    .bind(judge_metric.flatten())
    .bind(chunks.len() as i32)
    .bind(total_units)
    .fetch_one(&mut *tx)
    .await
    .map_err(db("create job"))?;
    Ok(id)
}

/// Records the job's systems with the items each has answered on the dataset
/// now (what a pair's partial overlap is measured against).
async fn insert_job_systems(
    tx: &mut sqlx::PgConnection,
    job_id: JobId,
    dataset_id: DatasetId,
    system_ids: &[SystemId],
) -> Result<(), JobRefused> {
    sqlx::query(
        "INSERT INTO job_systems (job_id, system_id, items) \
         SELECT $1, s, (SELECT count(*) FROM generations g WHERE g.dataset_id = $2 AND g.system_id = s) \
         FROM UNNEST($3::bigint[]) AS s",
    )
    .bind(job_id)
    .bind(dataset_id)
    .bind(system_ids)
    .execute(&mut *tx)
    .await
    .map_err(db("record job systems"))?;
    Ok(())
}

/// Records the job's systems, queues its chunks, wakes the workers and
/// commits it all; the job as created.
async fn publish(
    pool: &PgPool,
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    team_id: TeamId,
    (job_id, dataset_id): (JobId, DatasetId),
    system_ids: &[SystemId],
    chunks: &[ChunkWork],
) -> Result<Job, JobRefused> {
    insert_job_systems(&mut tx, job_id, dataset_id, system_ids).await?;
    queue::insert_chunks(&mut tx, job_id, chunks).await?;
    // Delivered at commit, so a worker never wakes before the chunks are visible.
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(&mut *tx)
        .await
        .map_err(db("notify workers"))?;
    tx.commit().await.map_err(db("commit job"))?;
    get(pool, team_id, job_id).await?.ok_or_else(|| {
        JobRefused::Database(Error::Inconsistent(format!(
            "job {job_id} vanished after its creation"
        )))
    })
}
