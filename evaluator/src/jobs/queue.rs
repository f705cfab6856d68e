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
use crate::error::Result;

/// A claimed chunk.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claim {
    /// The chunk.
    pub id: i64,
    /// Its job.
    pub job_id: i64,
    /// This claim's attempt number (the fencing token).
    pub attempts: i32,
    /// Attempts allowed before the job fails.
    pub max_attempts: i32,
    /// Score chunks: the module.
    pub module_id: Option<i64>,
    /// Score chunks: the generations.
    pub generation_ids: Option<Vec<i64>>,
    /// Compare chunks: the first system.
    pub system_a: Option<i64>,
    /// Compare chunks: the second system.
    pub system_b: Option<i64>,
    /// Compare chunks: the items.
    pub item_ids: Option<Vec<i64>>,
    /// Samples or item pairs in the chunk (progress units).
    pub units: i32,
}

/// Claims the oldest ready chunk of a live job: queued and due, or running
/// under an expired lease. `None` when there is nothing to do.
pub async fn claim(pool: &PgPool, worker: &str, lease: Duration) -> Result<Option<Claim>> {
    let mut tx = pool.begin().await.map_err(db("begin claim"))?;
    let claim: Option<Claim> = sqlx::query_as(
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
        let live: Option<i64> = sqlx::query_scalar(
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
    let failed = sqlx::query(
        "UPDATE jobs SET state = 'failed', error_code = $2, error = $3, finished_at = now() \
         WHERE id = $1 AND state IN ('queued', 'running')",
    )
    .bind(claim.job_id)
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
        .bind(claim.job_id)
        .bind(claim.id)
        .bind(message)
        .execute(&mut *tx)
        .await
        .map_err(db("stop chunks"))?;
    }
    tx.commit().await.map_err(db("commit failure"))
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
