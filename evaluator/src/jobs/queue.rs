//! The chunk queue on PostgreSQL.
//!
//! A chunk is claimed with `FOR UPDATE SKIP LOCKED` (concurrent workers never
//! wait on each other or take the same chunk) and leased: `lease_expires_at` is
//! pushed forward by [`heartbeat`] while the worker runs it. A chunk whose lease
//! expired — its worker died — is claimable again, under `attempts + 1`.
//! [`Completion`] commits the chunk's rows together with its completion and the
//! job's progress, after checking under a row lock that the chunk is still
//! `running` under the same attempt: a worker that lost its lease is fenced out
//! and its transaction rolls back.

use std::time::Duration;

use sqlx::{PgPool, Postgres, Transaction};

use crate::db::db;
use crate::domain::{ChunkId, GenerationId, ItemId, JobId, ModuleId, SystemId};
use crate::error::{Error, Result};

/// What a chunk asks a worker to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkWork {
    /// Score these generations with this scorer.
    Score {
        /// The scorer.
        module: ModuleId,
        /// The generations.
        generations: Vec<GenerationId>,
    },
    /// Compare these systems on these items with the job's judge.
    Compare {
        /// The first system.
        a: SystemId,
        /// The second system.
        b: SystemId,
        /// Items both answered.
        items: Vec<ItemId>,
    },
}

impl ChunkWork {
    /// Samples (score) or item pairs (compare): the chunk's progress units.
    pub fn units(&self) -> usize {
        match self {
            ChunkWork::Score { generations, .. } => generations.len(),
            ChunkWork::Compare { items, .. } => items.len(),
        }
    }
}

/// A claimed chunk.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The chunk.
    pub id: ChunkId,
    /// Its job.
    pub job_id: JobId,
    /// This claim's attempt number (the fencing token).
    pub attempts: i32,
    /// Attempts allowed before the job fails.
    pub max_attempts: i32,
    /// What to do.
    pub work: ChunkWork,
    /// Samples or item pairs in the chunk (progress units).
    pub units: i32,
}

/// `job_chunks` as claimed: a score chunk has a module and generations, a
/// compare chunk two systems and items (the table's CHECK constraint).
#[derive(sqlx::FromRow)]
struct ClaimRow {
    id: ChunkId,
    job_id: JobId,
    attempts: i32,
    max_attempts: i32,
    module_id: Option<ModuleId>,
    generation_ids: Option<Vec<GenerationId>>,
    system_a: Option<SystemId>,
    system_b: Option<SystemId>,
    item_ids: Option<Vec<ItemId>>,
    units: i32,
}

impl TryFrom<ClaimRow> for Claim {
    type Error = Error;

    fn try_from(row: ClaimRow) -> Result<Claim> {
        let work = match row {
            ClaimRow {
                module_id: Some(module),
                generation_ids: Some(generations),
                system_a: None,
                system_b: None,
                item_ids: None,
                ..
            } => ChunkWork::Score {
                module,
                generations,
            },
            ClaimRow {
                module_id: None,
                generation_ids: None,
                system_a: Some(a),
                system_b: Some(b),
                item_ids: Some(items),
                ..
            } => ChunkWork::Compare { a, b, items },
            _ => {
                return Err(Error::Inconsistent(format!(
                    "chunk {} is neither a score chunk (module and generations) nor a \
                     compare chunk (two systems and items)",
                    row.id
                )));
            }
        };
        Ok(Claim {
            id: row.id,
            job_id: row.job_id,
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            work,
            units: row.units,
        })
    }
}

/// Queues a new job's chunks (inside the transaction that creates the job):
/// each kind in one statement, whatever the number of chunks.
pub async fn insert_chunks(
    tx: &mut sqlx::PgConnection,
    job_id: JobId,
    chunks: &[ChunkWork],
) -> Result<()> {
    // PostgreSQL has no arrays of arrays of varying length, so each chunk's id
    // list travels as JSON and is unpacked in SQL.
    let mut modules = Vec::new();
    let mut system_a = Vec::new();
    let mut system_b = Vec::new();
    let mut ids = Vec::new();
    let mut units = Vec::new();
    for chunk in chunks {
        match chunk {
            ChunkWork::Score {
                module,
                generations,
            } => {
                modules.push(Some(*module));
                system_a.push(None);
                system_b.push(None);
                ids.push(serde_json::to_value(generations).unwrap_or_default());
            }
            ChunkWork::Compare { a, b, items } => {
                modules.push(None);
                system_a.push(Some(*a));
                system_b.push(Some(*b));
                ids.push(serde_json::to_value(items).unwrap_or_default());
            }
        }
        units.push(chunk.units() as i32);
    }
    sqlx::query(
        "INSERT INTO job_chunks (job_id, module_id, generation_ids, system_a, system_b, item_ids, units) \
         SELECT $1, m, \
           CASE WHEN m IS NOT NULL THEN ARRAY(SELECT jsonb_array_elements_text(x)::bigint) END, \
           a, b, \
           CASE WHEN m IS NULL THEN ARRAY(SELECT jsonb_array_elements_text(x)::bigint) END, \
           u \
         FROM UNNEST($2::bigint[], $3::bigint[], $4::bigint[], $5::jsonb[], $6::int[]) \
           WITH ORDINALITY AS c(m, a, b, x, u, n) \
         ORDER BY n",
    )
    .bind(job_id)
    .bind(&modules)
    .bind(&system_a)
    .bind(&system_b)
    .bind(&ids)
    .bind(&units)
    .execute(&mut *tx)
    .await
    .map_err(db("queue chunks"))?;
    Ok(())
}

/// Claims the oldest ready chunk of a live job: queued and due, or running
/// under an expired lease. `None` when there is nothing to do.
pub async fn claim(pool: &PgPool, worker: &str, lease: Duration) -> Result<Option<Claim>> {
    let mut tx = pool.begin().await.map_err(db("begin claim"))?;
    let claim: Option<ClaimRow> = sqlx::query_as(
        "UPDATE job_chunks c SET state = 'running', attempts = c.attempts + 1, worker = $1, \
           lease_expires_at = now() + make_interval(secs => $2) \
         FROM (SELECT c2.id FROM job_chunks c2 JOIN jobs j ON j.id = c2.job_id \
               WHERE ((c2.state = 'queued' AND c2.run_at <= now()) \
                   OR (c2.state = 'running' AND c2.lease_expires_at < now())) \
                 AND j.state IN ('queued', 'running') \
               ORDER BY c2.id LIMIT 1 FOR UPDATE OF c2 SKIP LOCKED) pick \
         WHERE c.id = pick.id \
         RETURNING c.id, c.job_id, c.attempts, c.max_attempts, c.module_id, c.generation_ids, \
           c.system_a, c.system_b, c.item_ids, c.units",
    )
    .bind(worker)
    .bind(lease.as_secs_f64())
    .fetch_optional(&mut *tx)
    .await
    .map_err(db("claim chunk"))?;
    let Some(row) = claim else {
        tx.commit().await.map_err(db("commit claim"))?;
        return Ok(None);
    };
    let (chunk, job) = (row.id, row.job_id);
    let claim = match Claim::try_from(row) {
        Ok(claim) => Some(claim),
        Err(malformed) => {
            // A row no planner writes (edited by hand): retrying cannot help,
            // so its job fails now rather than the chunk coming back forever.
            fail_in(
                &mut tx,
                job,
                chunk,
                "malformed_chunk",
                &malformed.to_string(),
            )
            .await?;
            None
        }
    };
    if let Some(claim) = &claim {
        sqlx::query(
            "UPDATE jobs SET state = 'running', started_at = coalesce(started_at, now()) \
             WHERE id = $1 AND state = 'queued'",
        )
        .bind(claim.job_id)
        .execute(&mut *tx)
        .await
        .map_err(db("start job"))?;
    }
    tx.commit().await.map_err(db("commit claim"))?;
    Ok(claim)
}

/// Extends the lease. `false` when the claim is no longer ours (the lease ran
/// out and another worker took the chunk, or the job was cancelled or failed):
/// the caller should stop working on it.
pub async fn heartbeat(pool: &PgPool, claim: &Claim, lease: Duration) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE job_chunks SET lease_expires_at = now() + make_interval(secs => $3) \
         WHERE id = $1 AND attempts = $2 AND state = 'running'",
    )
    .bind(claim.id)
    .bind(claim.attempts)
    .bind(lease.as_secs_f64())
    .execute(pool)
    .await
    .map_err(db("heartbeat"))?
    .rows_affected();
    Ok(updated == 1)
}

/// The transaction that finishes a chunk: write its rows through
/// [`Completion::tx`], then [`Completion::commit`].
pub struct Completion {
    tx: Transaction<'static, Postgres>,
    claim: Claim,
}

impl Completion {
    /// Opens the transaction and locks the chunk. `None` when the claim was
    /// fenced out (another attempt owns the chunk, or its job ended): nothing
    /// may be written.
    pub async fn begin(pool: &PgPool, claim: &Claim) -> Result<Option<Completion>> {
        let mut tx = pool.begin().await.map_err(db("begin completion"))?;
        let live: Option<ChunkId> = sqlx::query_scalar(
            "SELECT c.id FROM job_chunks c JOIN jobs j ON j.id = c.job_id \
             WHERE c.id = $1 AND c.attempts = $2 AND c.state = 'running' AND j.state = 'running' \
             FOR UPDATE OF c",
        )
        .bind(claim.id)
        .bind(claim.attempts)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("lock chunk"))?;
        Ok(live.map(|_| Completion {
            tx,
            claim: claim.clone(),
        }))
    }

    /// The open transaction, for the chunk's rows.
    pub fn tx(&mut self) -> &mut sqlx::PgConnection {
        &mut self.tx
    }

    /// Marks the chunk done, advances the job (to `succeeded` with its last
    /// chunk), and commits everything at once.
    pub async fn commit(mut self) -> Result<()> {
        sqlx::query(
            "UPDATE job_chunks SET state = 'done', lease_expires_at = NULL, last_error = NULL WHERE id = $1",
        )
        .bind(self.claim.id)
        .execute(&mut *self.tx)
        .await
        .map_err(db("complete chunk"))?;
        sqlx::query(
            "UPDATE jobs SET done_chunks = done_chunks + 1, done_units = done_units + $2, \
               state = CASE WHEN done_chunks + 1 = total_chunks THEN 'succeeded' ELSE state END, \
               finished_at = CASE WHEN done_chunks + 1 = total_chunks THEN now() END \
             WHERE id = $1",
        )
        .bind(self.claim.job_id)
        .bind(i64::from(self.claim.units))
        .execute(&mut *self.tx)
        .await
        .map_err(db("advance job"))?;
        self.tx.commit().await.map_err(db("commit chunk"))
    }
}

/// Puts a chunk back after a transient failure, due again after an exponential
/// backoff (1 s, 2 s, 4 s, ... capped at 60 s); fails the job when the chunk
/// has used its attempts.
pub async fn retry(pool: &PgPool, claim: &Claim, error: &str) -> Result<()> {
    if claim.attempts >= claim.max_attempts {
        return fail_job(
            pool,
            claim,
            "retries_exhausted",
            &format!("gave up after {} attempts: {error}", claim.attempts),
        )
        .await;
    }
    let backoff = 2f64.powi(claim.attempts.saturating_sub(1)).min(60.0);
    sqlx::query(
        "UPDATE job_chunks SET state = 'queued', lease_expires_at = NULL, last_error = $3, \
           run_at = now() + make_interval(secs => $4) \
         WHERE id = $1 AND attempts = $2 AND state = 'running'",
    )
    .bind(claim.id)
    .bind(claim.attempts)
    .bind(error)
    .bind(backoff)
    .execute(pool)
    .await
    .map_err(db("requeue chunk"))?;
    Ok(())
}

/// Fails the chunk's job with its cause (a module fault, or exhausted retries),
/// and cancels the job's other unfinished chunks, in one transaction. Other jobs
/// are unaffected.
pub async fn fail_job(pool: &PgPool, claim: &Claim, code: &str, message: &str) -> Result<()> {
    let mut tx = pool.begin().await.map_err(db("begin failure"))?;
    fail_in(&mut tx, claim.job_id, claim.id, code, message).await?;
    tx.commit().await.map_err(db("commit failure"))
}

/// [`fail_job`] inside an open transaction.
async fn fail_in(
    tx: &mut sqlx::PgConnection,
    job_id: JobId,
    chunk_id: ChunkId,
    code: &str,
    message: &str,
) -> Result<()> {
    let failed = sqlx::query(
        "UPDATE jobs SET state = 'failed', error_code = $2, error = $3, finished_at = now() \
         WHERE id = $1 AND state IN ('queued', 'running')",
    )
    .bind(job_id)
    .bind(code)
    .bind(message)
    .execute(&mut *tx)
    .await
    .map_err(db("fail job"))?
    .rows_affected();
    if failed > 0 {
        sqlx::query(
            "UPDATE job_chunks SET lease_expires_at = NULL, \
               state = CASE WHEN id = $2 THEN 'failed' ELSE 'cancelled' END, \
               last_error = CASE WHEN id = $2 THEN $3 ELSE last_error END \
             WHERE job_id = $1 AND (state = 'queued' OR state = 'running')",
        )
        .bind(job_id)
        .bind(chunk_id)
        .bind(message)
        .execute(&mut *tx)
        .await
        .map_err(db("stop chunks"))?;
    }
    Ok(())
}

/// Turns a claim that exceeded its attempts (its workers kept dying) into a job
/// failure. `true` when it did.
pub async fn abandon_if_exhausted(pool: &PgPool, claim: &Claim) -> Result<bool> {
    if claim.attempts <= claim.max_attempts {
        return Ok(false);
    }
    fail_job(
        pool,
        claim,
        "worker_lost",
        &format!(
            "chunk {} was claimed {} times and its worker was lost each time (lease expired)",
            claim.id,
            claim.attempts - 1
        ),
    )
    .await?;
    Ok(true)
}
