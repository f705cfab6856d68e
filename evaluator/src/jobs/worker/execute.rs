//! What a chunk does in the sandbox: score generations with a scorer, judge
//! pairs in both presentation orders with a judge, or decide pairs by a
//! scorer's metric in its direction (reusing scores already stored).

use std::collections::HashMap;
use std::sync::Arc;

use evaluator_stats::Outcome;
use reward_host::{PairOutcome, RewardModule, Sample, Verdict};
use sqlx::PgPool;

use super::{ChunkError, Context, OutcomeRow, Output, ScoreRow};
use crate::db::{self, db};
use crate::domain::{
    Direction, GenerationId, ItemId, JobId, ModuleId, ModuleKind, SystemId, parse_direction,
};
use crate::error::{Error, Result};
use crate::jobs::queue::{ChunkWork, Claim};

/// Runs a claimed chunk in the sandbox; its rows, or why there are none.
pub(super) async fn run(context: &Arc<Context>, claim: &Claim) -> Result<Output, ChunkError> {
    match &claim.work {
        ChunkWork::Score {
            module,
            generations,
        } => score_chunk(context, *module, generations).await,
        ChunkWork::Compare { a, b, items } => {
            compare_chunk(context, claim.job_id, (*a, *b), items).await
        }
    }
}

impl Context {
    /// The module, from the cache or loaded (and compiled) from the database.
    async fn module(&self, id: ModuleId) -> Result<(String, Arc<RewardModule>), ChunkError> {
        if let Some(found) = self.modules.lock().expect("module cache").get(&id) {
            return Ok(found.clone());
        }
        let (name, wasm) = db::modules::wasm(&self.pool, id).await?;
        let module = self
            .sandbox
            .load(wasm.into())
            .await?
            .map_err(|e| module_fault(&name, id, "failed to load", e))?;
        let entry = (name, module);
        self.modules
            .lock()
            .expect("module cache")
            .insert(id, entry.clone());
        Ok(entry)
    }
}

fn module_fault(name: &str, id: ModuleId, context: &str, error: reward_host::Error) -> ChunkError {
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

/// A generation as a sample, with its id, item and system (and their key and
/// name, for messages).
struct Generation {
    id: GenerationId,
    item_id: ItemId,
    item_key: String,
    system_id: SystemId,
    system: String,
    sample: Sample,
}

#[derive(sqlx::FromRow)]
struct GenerationRow {
    id: GenerationId,
    item_id: ItemId,
    item_key: String,
    system_id: SystemId,
    system: String,
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
        item_key: row.item_key,
        system_id: row.system_id,
        system: row.system,
        sample: Sample {
            prompt: row.prompt,
            response: row.response,
            reference: row.reference,
            fields,
        },
    }
}

const GENERATION_COLUMNS: &str = "g.id, g.item_id, i.key AS item_key, g.system_id, s.name AS system, \
     i.prompt, g.response, i.reference, i.fields \
     FROM generations g JOIN items i ON i.id = g.item_id JOIN systems s ON s.id = g.system_id";

/// Where a failed batch was, in the user's terms: the systems' names and the
/// items' keys (the sandbox's error does not say which sample of a batch).
fn describe_batch<'a>(systems: impl Iterator<Item = &'a str>, keys: &[&str]) -> String {
    const SHOWN: usize = 3;
    let mut names: Vec<&str> = Vec::new();
    for system in systems {
        if !names.contains(&system) {
            names.push(system);
        }
    }
    let systems = match names.as_slice() {
        [one] => format!("system `{one}`"),
        many => format!(
            "systems {}",
            many.iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let quote = |key: &str| {
        let mut short: String = key.chars().take(40).collect();
        if key.chars().nth(40).is_some() {
            short.push('…');
        }
        format!("{short:?}")
    };
    match keys {
        [one] => format!("{systems}, item {}", quote(one)),
        _ if keys.len() <= SHOWN => format!(
            "{systems}, items {} (one batch; the module's error does not say which)",
            keys.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ")
        ),
        _ => format!(
            "{systems}, a batch of {} items from {} to {} (the module's error does not say which)",
            keys.len(),
            quote(keys[0]),
            quote(keys[keys.len() - 1])
        ),
    }
}

async fn generations_by_id(pool: &PgPool, ids: &[GenerationId]) -> Result<Vec<Generation>> {
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
    module_id: ModuleId,
    generations: Vec<Generation>,
) -> Result<Vec<ScoreRow>, ChunkError> {
    let (name, module) = context.module(module_id).await?;
    if module.kind() != ModuleKind::Scorer {
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
                let keys: Vec<&str> = batch.iter().map(|g| g.item_key.as_str()).collect();
                let place = describe_batch(batch.iter().map(|g| g.system.as_str()), &keys);
                module_fault(&name, module_id, &format!("failed on {place}"), e)
            })?;
            for (generation, row) in batch.iter().zip(rows) {
                for (metric, value) in row.into_iter().enumerate() {
                    scores.push(ScoreRow {
                        generation: generation.id,
                        module: module_id,
                        metric: metric as i32,
                        value,
                    });
                }
            }
        }
        Ok(scores)
    })
    .await
    .map_err(|source| Error::TaskPanicked {
        task: "scoring",
        source,
    })?
}

async fn score_chunk(
    context: &Arc<Context>,
    module_id: ModuleId,
    generation_ids: &[GenerationId],
) -> Result<Output, ChunkError> {
    let generations = generations_by_id(&context.pool, generation_ids).await?;
    Ok(Output {
        scores: score_generations(context, module_id, generations).await?,
        ..Output::default()
    })
}

async fn compare_chunk(
    context: &Arc<Context>,
    job_id: JobId,
    (a, b): (SystemId, SystemId),
    item_ids: &[ItemId],
) -> Result<Output, ChunkError> {
    let (judge_id, metric): (Option<ModuleId>, Option<i32>) =
        sqlx::query_as("SELECT judge_module_id, judge_metric FROM jobs WHERE id = $1")
            .bind(job_id)
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
    let mut by_item: HashMap<ItemId, (Option<Generation>, Option<Generation>)> = HashMap::new();
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

/// A judge's verdict from a's point of view.
fn verdict_for_a(verdict: Verdict, a_shown_first: bool) -> Outcome {
    match (verdict, a_shown_first) {
        (Verdict::Tie, _) => Outcome::Tie,
        (Verdict::First, true) | (Verdict::Second, false) => Outcome::AWins,
        (Verdict::First, false) | (Verdict::Second, true) => Outcome::BWins,
    }
}

async fn judge_chunk(
    context: &Arc<Context>,
    judge_id: ModuleId,
    pairs: Vec<(Generation, Generation)>,
) -> Result<Vec<OutcomeRow>, ChunkError> {
    let (name, module) = context.module(judge_id).await?;
    if module.kind() != ModuleKind::Judge {
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
            let judged: Vec<PairOutcome> = module.judge_pairs(&samples, &limits).map_err(|e| {
                let keys: Vec<&str> = batch.iter().map(|(g, _)| g.item_key.as_str()).collect();
                let systems = batch
                    .iter()
                    .flat_map(|(ga, gb)| [ga.system.as_str(), gb.system.as_str()]);
                let place = describe_batch(systems, &keys);
                module_fault(&name, judge_id, &format!("failed to judge {place}"), e)
            })?;
            for ((ga, _), judged) in batch.iter().zip(judged) {
                outcomes.push(OutcomeRow {
                    item: ga.item_id,
                    a_first: verdict_for_a(judged.a_first, true),
                    b_first: Some(verdict_for_a(judged.b_first, false)),
                    combined: verdict_for_a(judged.combined(), true),
                });
            }
        }
        Ok(outcomes)
    })
    .await
    .map_err(|source| Error::TaskPanicked {
        task: "judging",
        source,
    })?
}

/// A scorer as judge: the metric's values decide, in the metric's direction;
/// equal values or a missing value (null) are a tie. Scores already stored are
/// reused; the missing ones are computed and stored with the outcomes.
async fn metric_chunk(
    context: &Arc<Context>,
    module_id: ModuleId,
    metric: i32,
    pairs: Vec<(Generation, Generation)>,
) -> Result<(Vec<OutcomeRow>, Vec<ScoreRow>), ChunkError> {
    let direction: String = sqlx::query_scalar(
        "SELECT direction FROM module_metrics WHERE module_id = $1 AND position = $2",
    )
    .bind(module_id)
    .bind(metric)
    .fetch_one(&context.pool)
    .await
    .map_err(db("read metric"))?;
    let higher_is_better =
        parse_direction(&direction).map_err(Error::from)? == Direction::HigherIsBetter;
    let ids: Vec<GenerationId> = pairs.iter().flat_map(|(ga, gb)| [ga.id, gb.id]).collect();
    let stored: Vec<(GenerationId, Option<f64>)> = sqlx::query_as(
        "SELECT generation_id, value FROM scores WHERE module_id = $1 AND metric = $2 AND generation_id = ANY($3)",
    )
    .bind(module_id)
    .bind(metric)
    .bind(&ids)
    .fetch_all(&context.pool)
    .await
    .map_err(db("read scores"))?;
    let mut values: HashMap<GenerationId, Option<f64>> = stored.into_iter().collect();
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
    for score in &new_scores {
        if score.metric == metric {
            values.insert(score.generation, score.value);
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
                        Outcome::AWins
                    } else {
                        Outcome::BWins
                    }
                }
                _ => Outcome::Tie,
            };
            OutcomeRow {
                item,
                a_first: outcome,
                b_first: None,
                combined: outcome,
            }
        })
        .collect();
    Ok((outcomes, new_scores))
}

#[cfg(test)]
mod tests {
    use super::describe_batch;

    #[test]
    fn a_failed_batch_is_named_by_systems_and_item_keys() {
        assert_eq!(
            describe_batch(["llama-7b"].into_iter(), &["q17"]),
            "system `llama-7b`, item \"q17\""
        );
        assert_eq!(
            describe_batch(["a", "b", "a"].into_iter(), &["1", "2"]),
            "systems `a`, `b`, items \"1\", \"2\" (one batch; the module's error does not say which)"
        );
        let keys: Vec<String> = (1..=256).map(|i| format!("k{i}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let text = describe_batch(std::iter::repeat_n("gpt3", 256), &keys);
        assert_eq!(
            text,
            "system `gpt3`, a batch of 256 items from \"k1\" to \"k256\" (the module's error does not say which)"
        );
        assert!(!text.contains("..="), "{text}");
    }
}
