//! What a finished chunk writes, inside the transaction that completes it
//! ([`super::super::queue::Completion`]): its scores, merged into the running
//! per-system summaries, and its pairwise outcomes, counted into the pair's
//! summary. Either everything of a chunk is committed with its completion, or
//! nothing.

use evaluator_stats::Outcome;

use super::Output;
use crate::db::db;
use crate::domain::{GenerationId, ItemId, JobId, ModuleId, outcome_to_db};
use crate::error::Result;

/// Writes a chunk's rows inside its completion transaction: scores (merged into
/// the running summaries) and pairwise outcomes (counted into the pair's summary).
pub(super) async fn write_output(
    tx: &mut sqlx::PgConnection,
    job_id: JobId,
    output: &Output,
) -> Result<()> {
    if !output.scores.is_empty() {
        let generations: Vec<GenerationId> = output.scores.iter().map(|s| s.generation).collect();
        let modules: Vec<ModuleId> = output.scores.iter().map(|s| s.module).collect();
        let metrics: Vec<i32> = output.scores.iter().map(|s| s.metric).collect();
        let values: Vec<Option<f64>> = output.scores.iter().map(|s| s.value).collect();
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
        let items: Vec<ItemId> = output.outcomes.iter().map(|o| o.item).collect();
        let a_first: Vec<i16> = output
            .outcomes
            .iter()
            .map(|o| outcome_to_db(o.a_first))
            .collect();
        let b_first: Vec<Option<i16>> = output
            .outcomes
            .iter()
            .map(|o| o.b_first.map(outcome_to_db))
            .collect();
        let combined: Vec<i16> = output
            .outcomes
            .iter()
            .map(|o| outcome_to_db(o.combined))
            .collect();
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
        let count = |wanted: Outcome| {
            output
                .outcomes
                .iter()
                .filter(|o| o.combined == wanted)
                .count() as i64
        };
        let inconsistent = output
            .outcomes
            .iter()
            .filter(|o| o.b_first.is_some_and(|b_first| b_first != o.a_first))
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
        .bind(count(Outcome::AWins))
        .bind(count(Outcome::BWins))
        .bind(count(Outcome::Tie))
        .bind(inconsistent)
        .execute(&mut *tx)
        .await
        .map_err(db("summarize outcomes"))?;
    }
    Ok(())
}
