//! Workers: claim a chunk, run it in the sandbox, commit its rows.
//!
//! - this file: the loops — claim under a lease, heartbeat while running,
//!   then complete, retry or fail the chunk;
//! - [`execute`]: what a chunk does in the sandbox (score generations, judge
//!   pairs, or decide pairs by a scorer's metric);
//! - [`write`]: the rows a finished chunk commits with its completion.
//!
//! Each worker process runs `concurrency` loops over one shared sandbox and one
//! module cache. Idle loops sleep until a new job is announced on
//! [`super::CHANNEL`] (LISTEN/NOTIFY) or a poll interval passes, whichever comes
//! first; the poll also catches chunks whose lease expired or whose backoff ended.
//! Any number of processes may share one database: that is how the service
//! scales out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod execute;
mod write;

use evaluator_stats::Outcome;
use reward_host::{Limits, RewardModule};
use sqlx::PgPool;
use tokio::sync::{Notify, watch};

use super::queue::{self, Claim, Completion};
use crate::domain::{GenerationId, ItemId, ModuleId, SystemId};
use crate::error::{Error, Result};
use crate::modules::Sandbox;

/// How a worker process runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Chunks run at once by this process.
    pub concurrency: usize,
    /// How long a claim lasts without a heartbeat; a dead worker's chunk is
    /// reclaimed after this. Heartbeats come every third of it.
    pub lease: Duration,
    /// Longest sleep of an idle loop between looks at the queue.
    pub idle_poll: Duration,
    /// Samples (or pairs) per call into a module.
    pub batch_size: usize,
    /// Limits on each call into a module.
    pub limits: Limits,
    /// This process's name in `job_chunks.worker`.
    pub name: String,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: std::thread::available_parallelism().map_or(1, |n| n.get()),
            lease: Duration::from_secs(30),
            idle_poll: Duration::from_secs(1),
            batch_size: 256,
            limits: Limits::default(),
            name: format!(
                "{}:{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into()),
                std::process::id()
            ),
        }
    }
}

/// What a worker shares between its loops.
struct Context {
    pool: PgPool,
    sandbox: Arc<Sandbox>,
    config: WorkerConfig,
    /// Modules by id. Stored modules are immutable, so an entry never goes stale.
    modules: Mutex<HashMap<ModuleId, (String, Arc<RewardModule>)>>,
}

/// Runs workers until `shutdown` turns true; each loop finishes the chunk it is
/// on first.
pub async fn run(
    pool: PgPool,
    sandbox: Arc<Sandbox>,
    config: WorkerConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let wake = Arc::new(Notify::new());
    let listener = tokio::spawn(listen(pool.clone(), wake.clone(), shutdown.clone()));
    let context = Arc::new(Context {
        pool,
        sandbox,
        config,
        modules: Mutex::new(HashMap::new()),
    });
    let loops: Vec<_> = (0..context.config.concurrency.max(1))
        .map(|_| tokio::spawn(work(context.clone(), wake.clone(), shutdown.clone())))
        .collect();
    for handle in loops {
        handle.await.map_err(|source| Error::TaskPanicked {
            task: "a worker loop",
            source,
        })?;
    }
    listener.abort();
    Ok(())
}

async fn listen(pool: PgPool, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!(error = %e, "cannot LISTEN for new jobs; polling only");
            return;
        }
    };
    if let Err(e) = listener.listen(super::CHANNEL).await {
        tracing::warn!(error = %e, "cannot LISTEN for new jobs; polling only");
        return;
    }
    loop {
        tokio::select! {
            notification = listener.recv() => match notification {
                Ok(_) => wake.notify_waiters(),
                Err(e) => {
                    tracing::warn!(error = %e, "job notifications interrupted; polling");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

async fn work(context: Arc<Context>, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        // Registered before looking at the queue, so a notification that arrives
        // in between is not lost.
        let woken = wake.notified();
        match queue::claim(&context.pool, &context.config.name, context.config.lease).await {
            Ok(Some(claim)) => process(&context, claim).await,
            Ok(None) => {
                tokio::select! {
                    () = woken => {}
                    () = tokio::time::sleep(context.config.idle_poll) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim work; retrying");
                tokio::time::sleep(context.config.idle_poll).await;
            }
        }
    }
}

/// Why a chunk did not produce its rows.
enum ChunkError {
    /// The module is at fault (deterministic): the job fails with this cause.
    Module { code: &'static str, message: String },
    /// Anything else (database, runtime): the chunk is retried.
    Transient(String),
}

impl From<Error> for ChunkError {
    fn from(error: Error) -> Self {
        ChunkError::Transient(error.to_string())
    }
}

/// One value a scorer gave a generation.
#[derive(Debug, Clone, Copy)]
struct ScoreRow {
    generation: GenerationId,
    module: ModuleId,
    /// The metric's position in the module's declaration.
    metric: i32,
    /// None: the metric did not apply.
    value: Option<f64>,
}

/// One item of a compared pair, from the pair's first system's point of view.
#[derive(Debug, Clone, Copy)]
struct OutcomeRow {
    item: ItemId,
    /// The verdict with the first system shown first.
    a_first: Outcome,
    /// The verdict with the second shown first (judge modules only).
    b_first: Option<Outcome>,
    /// What counts: the two orders' agreement, else a tie.
    combined: Outcome,
}

/// What a chunk produced, written at completion.
#[derive(Default)]
struct Output {
    scores: Vec<ScoreRow>,
    /// The outcomes of `pair`.
    outcomes: Vec<OutcomeRow>,
    pair: Option<(SystemId, SystemId)>,
}

async fn process(context: &Arc<Context>, claim: Claim) {
    let pool = &context.pool;
    match queue::abandon_if_exhausted(pool, &claim).await {
        Ok(true) => return,
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(chunk = %claim.id, error = %e, "cannot check attempts");
            return;
        }
    }
    let heartbeat = {
        let pool = pool.clone();
        let claim = claim.clone();
        let lease = context.config.lease;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                match queue::heartbeat(&pool, &claim, lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::info!(chunk = %claim.id, "lost the claim (cancelled or reclaimed)");
                        return;
                    }
                    Err(e) => tracing::warn!(chunk = %claim.id, error = %e, "heartbeat failed"),
                }
            }
        })
    };
    let result = execute::run(context, &claim).await;
    heartbeat.abort();
    let outcome = match result {
        Ok(output) => complete(pool, &claim, output).await,
        Err(ChunkError::Module { code, message }) => {
            tracing::warn!(job = %claim.job_id, chunk = %claim.id, %code, %message, "module fault; job failed");
            queue::fail_job(pool, &claim, code, &message).await
        }
        Err(ChunkError::Transient(message)) => {
            tracing::warn!(job = %claim.job_id, chunk = %claim.id, %message, "chunk failed; will retry");
            queue::retry(pool, &claim, &message).await
        }
    };
    if let Err(e) = outcome {
        // The lease will expire and the chunk will be claimed again.
        tracing::warn!(chunk = %claim.id, error = %e, "cannot record the chunk's end");
    }
}

async fn complete(pool: &PgPool, claim: &Claim, output: Output) -> Result<()> {
    let Some(mut completion) = Completion::begin(pool, claim).await? else {
        tracing::info!(chunk = %claim.id, "fenced out: results discarded");
        return Ok(());
    };
    let written = write::write_output(completion.tx(), claim.job_id, &output).await;
    match written {
        Ok(()) => completion.commit().await,
        Err(e) => {
            // Dropping the completion rolls it back; the chunk is retried.
            drop(completion);
            queue::retry(pool, claim, &e.to_string()).await
        }
    }
}
