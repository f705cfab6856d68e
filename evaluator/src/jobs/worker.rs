//! Workers: claim a chunk, run it in the sandbox, commit its rows.
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

use reward_host::{Host, Kind, Limits, PairOutcome, RewardModule, Sample, Verdict};
use sqlx::PgPool;
use tokio::sync::{Notify, watch};

use super::queue::{self, Claim, Completion};
use crate::db::db;
use crate::error::{Error, Result};

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
    host: Arc<Host>,
    config: WorkerConfig,
    /// Modules by id. Stored modules are immutable, so an entry never goes stale.
    modules: Mutex<HashMap<i64, (String, Arc<RewardModule>)>>,
}

/// Runs workers until `shutdown` turns true; each loop finishes the chunk it is
/// on first.
pub async fn run(
    pool: PgPool,
    host: Arc<Host>,
    config: WorkerConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let wake = Arc::new(Notify::new());
    let listener = tokio::spawn(listen(pool.clone(), wake.clone(), shutdown.clone()));
    let context = Arc::new(Context {
        pool,
        host,
        config,
        modules: Mutex::new(HashMap::new()),
    });
    let loops: Vec<_> = (0..context.config.concurrency.max(1))
        .map(|_| tokio::spawn(work(context.clone(), wake.clone(), shutdown.clone())))
        .collect();
    for handle in loops {
        handle.await.map_err(|e| Error::Database {
            message: format!("worker loop panicked: {e}"),
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

/// What a chunk produced, written at completion.
#[derive(Default)]
struct Output {
    /// (generation, module, metric, value).
    scores: Vec<(i64, i64, i32, Option<f64>)>,
    /// (item, a_first, b_first, outcome) for `pair`.
    outcomes: Vec<(i64, i16, Option<i16>, i16)>,
    pair: Option<(i64, i64)>,
}

async fn process(context: &Arc<Context>, claim: Claim) {
    let pool = &context.pool;
    match queue::abandon_if_exhausted(pool, &claim).await {
        Ok(true) => return,
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(chunk = claim.id, error = %e, "cannot check attempts");
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
                        tracing::info!(chunk = claim.id, "lost the claim (cancelled or reclaimed)");
                        return;
                    }
                    Err(e) => tracing::warn!(chunk = claim.id, error = %e, "heartbeat failed"),
                }
            }
        })
    };
    let result = execute(context, &claim).await;
    heartbeat.abort();
    let outcome = match result {
        Ok(output) => complete(pool, &claim, output).await,
        Err(ChunkError::Module { code, message }) => {
            tracing::warn!(job = claim.job_id, chunk = claim.id, %code, %message, "module fault; job failed");
            queue::fail_job(pool, &claim, code, &message).await
        }
        Err(ChunkError::Transient(message)) => {
            tracing::warn!(job = claim.job_id, chunk = claim.id, %message, "chunk failed; will retry");
            queue::retry(pool, &claim, &message).await
        }
    };
    if let Err(e) = outcome {
        // The lease will expire and the chunk will be claimed again.
        tracing::warn!(chunk = claim.id, error = %e, "cannot record the chunk's end");
    }
}

async fn complete(pool: &PgPool, claim: &Claim, output: Output) -> Result<()> {
    let Some(mut completion) = Completion::begin(pool, claim).await? else {
        tracing::info!(chunk = claim.id, "fenced out: results discarded");
        return Ok(());
    };
    let written = write_output(completion.tx(), claim.job_id, &output).await;
    match written {
        Ok(()) => completion.commit().await,
        Err(e) => {
            // Dropping the completion rolls it back; the chunk is retried.
            drop(completion);
            queue::retry(pool, claim, &e.to_string()).await
        }
    }
}

async fn write_output(tx: &mut sqlx::PgConnection, job_id: i64, output: &Output) -> Result<()> {
    if !output.scores.is_empty() {
        let generations: Vec<i64> = output.scores.iter().map(|s| s.0).collect();
        let modules: Vec<i64> = output.scores.iter().map(|s| s.1).collect();
        let metrics: Vec<i32> = output.scores.iter().map(|s| s.2).collect();
        let values: Vec<Option<f64>> = output.scores.iter().map(|s| s.3).collect();
        // A score is a function of (module bytes, generation): another job may
        // have written the same row first, and that row is the same. Only rows
        // actually inserted enter the summaries, merged in (dataset, system,
        // module, metric) order so concurrent chunks lock summary rows in the same
        // order and cannot deadlock.
        sqlx::query(
            "WITH inserted AS ( \
               INSERT INTO scores (generation_id, module_id, metric, value, job_id) \
               SELECT g, m, k, v, $5 FROM UNNEST($1::bigint[], $2::bigint[], $3::int[], $4::float8[]) AS u(g, m, k, v) \
               ON CONFLICT (generation_id, module_id, metric) DO NOTHING \
               RETURNING generation_id, module_id, metric, value), \
             part AS ( \
               SELECT g.dataset_id, g.system_id, i.module_id, i.metric, count(i.value) AS n, \
                 count(*) - count(i.value) AS nulls, coalesce(avg(i.value), 0) AS mean, \
                 coalesce(var_pop(i.value) * count(i.value), 0) AS m2 \
               FROM inserted i JOIN generations g ON g.id = i.generation_id \
               GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4) \
             INSERT INTO score_summaries AS s (dataset_id, system_id, module_id, metric, n, nulls, mean, m2) \
             SELECT * FROM part \
             ON CONFLICT (dataset_id, system_id, module_id, metric) DO UPDATE SET \
               n = s.n + EXCLUDED.n, \
               nulls = s.nulls + EXCLUDED.nulls, \
               mean = CASE WHEN s.n + EXCLUDED.n = 0 THEN 0 \
                 ELSE s.mean + (EXCLUDED.mean - s.mean) * EXCLUDED.n / (s.n + EXCLUDED.n) END, \
               m2 = CASE WHEN s.n + EXCLUDED.n = 0 THEN 0 \
                 ELSE s.m2 + EXCLUDED.m2 + (EXCLUDED.mean - s.mean) ^ 2 * s.n * EXCLUDED.n / (s.n + EXCLUDED.n) END",
        )
        .bind(&generations)
        .bind(&modules)
        .bind(&metrics)
        .bind(&values)
        .bind(job_id)
        .execute(&mut *tx)
        .await
        .map_err(db("write scores"))?;
    }
    if let Some((a, b)) = output.pair {
        let items: Vec<i64> = output.outcomes.iter().map(|o| o.0).collect();
        let a_first: Vec<i16> = output.outcomes.iter().map(|o| o.1).collect();
        let b_first: Vec<Option<i16>> = output.outcomes.iter().map(|o| o.2).collect();
        let combined: Vec<i16> = output.outcomes.iter().map(|o| o.3).collect();
        sqlx::query(
            "INSERT INTO pair_outcomes (job_id, system_a, system_b, item_id, a_first, b_first, outcome) \
             SELECT $1, $2, $3, i, x, y, o FROM UNNEST($4::bigint[], $5::int2[], $6::int2[], $7::int2[]) AS u(i, x, y, o)",
        )
        .bind(job_id)
        .bind(a)
        .bind(b)
        .bind(&items)
        .bind(&a_first)
        .bind(&b_first)
        .bind(&combined)
        .execute(&mut *tx)
        .await
        .map_err(db("write outcomes"))?;
        let count = |wanted: i16| combined.iter().filter(|&&o| o == wanted).count() as i64;
        let inconsistent = output
            .outcomes
            .iter()
            .filter(|o| o.2.is_some_and(|b_first| b_first != o.1))
            .count() as i64;
        sqlx::query(
            "INSERT INTO pair_summaries AS p (job_id, system_a, system_b, wins, losses, ties, inconsistent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (job_id, system_a, system_b) DO UPDATE SET \
               wins = p.wins + EXCLUDED.wins, losses = p.losses + EXCLUDED.losses, \
               ties = p.ties + EXCLUDED.ties, inconsistent = p.inconsistent + EXCLUDED.inconsistent",
        )
        .bind(job_id)
        .bind(a)
        .bind(b)
        .bind(count(1))
        .bind(count(-1))
        .bind(count(0))
        .bind(inconsistent)
        .execute(&mut *tx)
        .await
        .map_err(db("summarize outcomes"))?;
    }
    Ok(())
}

async fn execute(context: &Arc<Context>, claim: &Claim) -> Result<Output, ChunkError> {
    match (&claim.generation_ids, &claim.item_ids) {
        (Some(generations), None) => {
            let module_id = claim
                .module_id
                .ok_or_else(|| ChunkError::Transient("score chunk without a module".into()))?;
            score_chunk(context, module_id, generations).await
        }
        (None, Some(items)) => compare_chunk(context, claim, items).await,
        _ => Err(ChunkError::Transient("malformed chunk".into())),
    }
}

impl Context {
    /// The module, from the cache or loaded (and compiled) from the database.
    async fn module(&self, id: i64) -> Result<(String, Arc<RewardModule>), ChunkError> {
        if let Some(found) = self.modules.lock().expect("module cache").get(&id) {
            return Ok(found.clone());
        }
        let (name, wasm): (String, Vec<u8>) =
            sqlx::query_as("SELECT name, wasm FROM modules WHERE id = $1")
                .bind(id)
                .fetch_one(&self.pool)
                .await
                .map_err(db("load module"))?;
        let host = self.host.clone();
        let module = tokio::task::spawn_blocking(move || host.load(&wasm))
            .await
            .map_err(|e| ChunkError::Transient(format!("module compilation panicked: {e}")))?
            .map_err(|e| module_fault(&name, id, "failed to load", e))?;
        let entry = (name, module);
        self.modules
            .lock()
            .expect("module cache")
            .insert(id, entry.clone());
        Ok(entry)
    }
}

fn module_fault(name: &str, id: i64, context: &str, error: reward_host::Error) -> ChunkError {
    let message = format!("module `{name}` (#{id}) {context}: {error}");
    if error.is_module_fault() {
        ChunkError::Module {
            code: error.code(),
            message,
        }
    } else {
        ChunkError::Transient(message)
    }
}

/// A generation as a sample, with its id, item and system.
struct Generation {
    id: i64,
    item_id: i64,
    system_id: i64,
    sample: Sample,
}

#[derive(sqlx::FromRow)]
struct GenerationRow {
    id: i64,
    item_id: i64,
    system_id: i64,
    prompt: String,
    response: String,
    reference: Option<String>,
    fields: sqlx::types::Json<serde_json::Map<String, serde_json::Value>>,
}

fn to_generation(row: GenerationRow) -> Generation {
    let fields = row
        .fields
        .0
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s,
                // Numbers and booleans keep their JSON spelling, as in `evaluator score`.
                other => other.to_string(),
            };
            (k, v)
        })
        .collect();
    Generation {
        id: row.id,
        item_id: row.item_id,
        system_id: row.system_id,
        sample: Sample {
            prompt: row.prompt,
            response: row.response,
            reference: row.reference,
            fields,
        },
    }
}

const GENERATION_COLUMNS: &str = "g.id, g.item_id, g.system_id, i.prompt, g.response, i.reference, i.fields \
     FROM generations g JOIN items i ON i.id = g.item_id";

async fn generations_by_id(pool: &PgPool, ids: &[i64]) -> Result<Vec<Generation>> {
    let rows: Vec<GenerationRow> = sqlx::query_as(&format!(
        "SELECT {GENERATION_COLUMNS} WHERE g.id = ANY($1) ORDER BY g.id"
    ))
    .bind(ids)
    .fetch_all(pool)
    .await
    .map_err(db("read generations"))?;
    Ok(rows.into_iter().map(to_generation).collect())
}

/// Scores generations with a scorer, in batches, off the async threads.
async fn score_generations(
    context: &Arc<Context>,
    module_id: i64,
    generations: Vec<Generation>,
) -> Result<Vec<(i64, i64, i32, Option<f64>)>, ChunkError> {
    let (name, module) = context.module(module_id).await?;
    if module.kind() != Kind::Scorer {
        return Err(ChunkError::Module {
            code: "wrong_kind",
            message: format!("module `{name}` (#{module_id}) is not a scorer"),
        });
    }
    let batch_size = context.config.batch_size.max(1);
    let limits = context.config.limits;
    tokio::task::spawn_blocking(move || {
        let mut scores = Vec::with_capacity(generations.len() * module.info().metrics.len());
        for batch in generations.chunks(batch_size) {
            let samples: Vec<Sample> = batch.iter().map(|g| g.sample.clone()).collect();
            let rows = module.score_with(&samples, &limits).map_err(|e| {
                let first = batch.first().map_or(0, |g| g.id);
                let last = batch.last().map_or(0, |g| g.id);
                module_fault(
                    &name,
                    module_id,
                    &format!("failed on generations {first}..={last}"),
                    e,
                )
            })?;
            for (generation, row) in batch.iter().zip(rows) {
                for (metric, value) in row.into_iter().enumerate() {
                    scores.push((generation.id, module_id, metric as i32, value));
                }
            }
        }
        Ok(scores)
    })
    .await
    .map_err(|e| ChunkError::Transient(format!("scoring panicked: {e}")))?
}

async fn score_chunk(
    context: &Arc<Context>,
    module_id: i64,
    generation_ids: &[i64],
) -> Result<Output, ChunkError> {
    let generations = generations_by_id(&context.pool, generation_ids).await?;
    Ok(Output {
        scores: score_generations(context, module_id, generations).await?,
        ..Output::default()
    })
}

async fn compare_chunk(
    context: &Arc<Context>,
    claim: &Claim,
    item_ids: &[i64],
) -> Result<Output, ChunkError> {
    let (Some(a), Some(b)) = (claim.system_a, claim.system_b) else {
        return Err(ChunkError::Transient(
            "compare chunk without systems".into(),
        ));
    };
    let (judge_id, metric): (Option<i64>, Option<i32>) =
        sqlx::query_as("SELECT judge_module_id, judge_metric FROM jobs WHERE id = $1")
            .bind(claim.job_id)
            .fetch_one(&context.pool)
            .await
            .map_err(db("read job"))?;
    let judge_id =
        judge_id.ok_or_else(|| ChunkError::Transient("compare job without a judge".into()))?;
    let rows: Vec<GenerationRow> = sqlx::query_as(&format!(
        "SELECT {GENERATION_COLUMNS} WHERE g.item_id = ANY($1) AND g.system_id IN ($2, $3) ORDER BY g.item_id"
    ))
    .bind(item_ids)
    .bind(a)
    .bind(b)
    .fetch_all(&context.pool)
    .await
    .map_err(db("read generations"))?;
    let mut by_item: HashMap<i64, (Option<Generation>, Option<Generation>)> = HashMap::new();
    for generation in rows.into_iter().map(to_generation) {
        let slot = by_item.entry(generation.item_id).or_default();
        if generation.system_id == a {
            slot.0 = Some(generation);
        } else {
            slot.1 = Some(generation);
        }
    }
    let mut pairs: Vec<(Generation, Generation)> = Vec::with_capacity(item_ids.len());
    for item in item_ids {
        if let Some((Some(ga), Some(gb))) = by_item.remove(item) {
            pairs.push((ga, gb));
        }
    }
    let mut output = Output {
        pair: Some((a, b)),
        ..Output::default()
    };
    match metric {
        None => output.outcomes = judge_chunk(context, judge_id, pairs).await?,
        Some(metric) => {
            let (outcomes, scores) = metric_chunk(context, judge_id, metric, pairs).await?;
            output.outcomes = outcomes;
            output.scores = scores;
        }
    }
    Ok(output)
}

/// From a's point of view: 1 a preferred, -1 b preferred, 0 tie.
fn verdict_for_a(verdict: Verdict, a_shown_first: bool) -> i16 {
    match (verdict, a_shown_first) {
        (Verdict::Tie, _) => 0,
        (Verdict::First, true) | (Verdict::Second, false) => 1,
        (Verdict::First, false) | (Verdict::Second, true) => -1,
    }
}

async fn judge_chunk(
    context: &Arc<Context>,
    judge_id: i64,
    pairs: Vec<(Generation, Generation)>,
) -> Result<Vec<(i64, i16, Option<i16>, i16)>, ChunkError> {
    let (name, module) = context.module(judge_id).await?;
    if module.kind() != Kind::Judge {
        return Err(ChunkError::Module {
            code: "wrong_kind",
            message: format!("module `{name}` (#{judge_id}) is not a judge"),
        });
    }
    // Each pair is two calls' worth of work (both orders).
    let batch_size = (context.config.batch_size / 2).max(1);
    let limits = context.config.limits;
    tokio::task::spawn_blocking(move || {
        let mut outcomes = Vec::with_capacity(pairs.len());
        for batch in pairs.chunks(batch_size) {
            let samples: Vec<(&Sample, &Sample)> = batch
                .iter()
                .map(|(ga, gb)| (&ga.sample, &gb.sample))
                .collect();
            let judged: Vec<PairOutcome> = module
                .judge_pairs(&samples, &limits)
                .map_err(|e| module_fault(&name, judge_id, "failed to judge", e))?;
            for ((ga, _), judged) in batch.iter().zip(judged) {
                outcomes.push((
                    ga.item_id,
                    verdict_for_a(judged.a_first, true),
                    Some(verdict_for_a(judged.b_first, false)),
                    verdict_for_a(judged.combined(), true),
                ));
            }
        }
        Ok(outcomes)
    })
    .await
    .map_err(|e| ChunkError::Transient(format!("judging panicked: {e}")))?
}

/// A scorer as judge: the metric's values decide, in the metric's direction;
/// equal values or a missing value (null) are a tie. Scores already stored are
/// reused; the missing ones are computed and stored with the outcomes.
#[allow(
    clippy::type_complexity,
    reason = "two row lists, named at the call site"
)]
async fn metric_chunk(
    context: &Arc<Context>,
    module_id: i64,
    metric: i32,
    pairs: Vec<(Generation, Generation)>,
) -> Result<
    (
        Vec<(i64, i16, Option<i16>, i16)>,
        Vec<(i64, i64, i32, Option<f64>)>,
    ),
    ChunkError,
> {
    let direction: String = sqlx::query_scalar(
        "SELECT direction FROM module_metrics WHERE module_id = $1 AND position = $2",
    )
    .bind(module_id)
    .bind(metric)
    .fetch_one(&context.pool)
    .await
    .map_err(db("read metric"))?;
    let higher_is_better = direction == "higher-is-better";
    let ids: Vec<i64> = pairs.iter().flat_map(|(ga, gb)| [ga.id, gb.id]).collect();
    let stored: Vec<(i64, Option<f64>)> = sqlx::query_as(
        "SELECT generation_id, value FROM scores WHERE module_id = $1 AND metric = $2 AND generation_id = ANY($3)",
    )
    .bind(module_id)
    .bind(metric)
    .bind(&ids)
    .fetch_all(&context.pool)
    .await
    .map_err(db("read scores"))?;
    let mut values: HashMap<i64, Option<f64>> = stored.into_iter().collect();
    let mut missing = Vec::new();
    let mut kept = Vec::with_capacity(pairs.len());
    for (ga, gb) in pairs {
        kept.push((ga.id, gb.id, ga.item_id));
        for generation in [ga, gb] {
            if !values.contains_key(&generation.id) {
                missing.push(generation);
            }
        }
    }
    let new_scores = if missing.is_empty() {
        Vec::new()
    } else {
        score_generations(context, module_id, missing).await?
    };
    for (generation, _, m, value) in &new_scores {
        if *m == metric {
            values.insert(*generation, *value);
        }
    }
    let outcomes = kept
        .into_iter()
        .map(|(ga, gb, item)| {
            let va = values.get(&ga).copied().flatten();
            let vb = values.get(&gb).copied().flatten();
            let outcome = match (va, vb) {
                (Some(x), Some(y)) if x != y => {
                    if (x > y) == higher_is_better {
                        1
                    } else {
                        -1
                    }
                }
                _ => 0,
            };
            (item, outcome, None, outcome)
        })
        .collect();
    Ok((outcomes, new_scores))
}
