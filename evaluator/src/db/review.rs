//! What the web pages read beyond the aggregates: a dataset's comparison jobs,
//! and the per-item rows of the side-by-side view (both responses, the judge's
//! verdicts in both presentation orders, every score of both generations).

use evaluator_stats::Outcome;
use sqlx::PgPool;
use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::QueryAs;

use super::db;
use crate::domain::{
    DatasetId, GenerationId, ItemId, JobId, JobState, ModuleId, SystemId, TeamId, outcome_from_db,
};
use crate::error::Result;

/// A comparison job on a dataset, for the pages' job selects.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CompareJob {
    /// Its id.
    pub id: JobId,
    /// Its state.
    #[sqlx(try_from = "String")]
    pub state: JobState,
    /// The judge module's name.
    pub judge: String,
    /// For a scorer judge, the metric that decides.
    pub metric: Option<String>,
    /// Systems compared.
    pub systems: i64,
    /// Creation time, `YYYY-MM-DD HH:MM` UTC.
    pub created: String,
    /// For the compare view: whether the job compared the pair as (a, b)
    /// rather than (b, a). Always true in [`compare_jobs`].
    pub forward: bool,
}

const COMPARE_JOB_COLUMNS: &str = "j.id, j.state, m.name AS judge, mm.name AS metric, \
     (SELECT count(*) FROM job_systems js WHERE js.job_id = j.id) AS systems, \
     to_char(j.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS created";

/// The team's comparison jobs on a dataset, newest first.
pub async fn compare_jobs(
    pool: &PgPool,
    team_id: TeamId,
    dataset_id: DatasetId,
) -> Result<Vec<CompareJob>> {
    sqlx::query_as(&format!(
        "SELECT {COMPARE_JOB_COLUMNS}, true AS forward FROM jobs j \
         JOIN modules m ON m.id = j.judge_module_id \
         LEFT JOIN module_metrics mm ON mm.module_id = j.judge_module_id AND mm.position = j.judge_metric \
         WHERE j.team_id = $1 AND j.dataset_id = $2 AND j.kind = 'compare' ORDER BY j.id DESC"
    ))
    .bind(team_id)
    .bind(dataset_id)
    .fetch_all(pool)
    .await
    .map_err(db("list comparisons"))
}

/// The team's comparison jobs on a dataset that include both systems, newest
/// first, each saying in which order it compared them.
pub async fn pair_jobs(
    pool: &PgPool,
    team_id: TeamId,
    dataset_id: DatasetId,
    system_a: SystemId,
    system_b: SystemId,
) -> Result<Vec<CompareJob>> {
    sqlx::query_as(&format!(
        "SELECT {COMPARE_JOB_COLUMNS}, \
           NOT EXISTS (SELECT 1 FROM job_chunks c WHERE c.job_id = j.id AND c.system_a = $4 AND c.system_b = $3) AS forward \
         FROM jobs j \
         JOIN modules m ON m.id = j.judge_module_id \
         LEFT JOIN module_metrics mm ON mm.module_id = j.judge_module_id AND mm.position = j.judge_metric \
         WHERE j.team_id = $1 AND j.dataset_id = $2 AND j.kind = 'compare' \
           AND EXISTS (SELECT 1 FROM job_systems js WHERE js.job_id = j.id AND js.system_id = $3) \
           AND EXISTS (SELECT 1 FROM job_systems js WHERE js.job_id = j.id AND js.system_id = $4) \
         ORDER BY j.id DESC"
    ))
    .bind(team_id)
    .bind(dataset_id)
    .bind(system_a)
    .bind(system_b)
    .fetch_all(pool)
    .await
    .map_err(db("list comparisons of a pair"))
}

/// The systems with generations on a dataset, by name: `(id, name)`. (A
/// semi-join on the generations index, without counting: what the pages' system
/// selects need on every request.)
pub async fn dataset_systems(
    pool: &PgPool,
    dataset_id: DatasetId,
) -> Result<Vec<(SystemId, String)>> {
    sqlx::query_as(
        "SELECT s.id, s.name FROM systems s \
         WHERE EXISTS (SELECT 1 FROM generations g WHERE g.dataset_id = $1 AND g.system_id = s.id) \
         ORDER BY s.name",
    )
    .bind(dataset_id)
    .fetch_all(pool)
    .await
    .map_err(db("list systems of a dataset"))
}

/// The number of items of a dataset.
pub async fn item_count(pool: &PgPool, dataset_id: DatasetId) -> Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM items WHERE dataset_id = $1")
        .bind(dataset_id)
        .fetch_one(pool)
        .await
        .map_err(db("count items"))
}

/// Which items of the side-by-side view to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    /// Every item both systems answered.
    #[default]
    All,
    /// Items the judge gave to A.
    AWins,
    /// Items it gave to B.
    BWins,
    /// Ties (including disagreeing orders).
    Ties,
    /// Items whose verdict changed with the presentation order.
    Inconsistent,
}

impl Filter {
    /// Reads `a`, `b`, `ties`, `inconsistent`; anything else is [`Filter::All`].
    pub fn parse(text: &str) -> Filter {
        match text {
            "a" => Filter::AWins,
            "b" => Filter::BWins,
            "ties" => Filter::Ties,
            "inconsistent" => Filter::Inconsistent,
            _ => Filter::All,
        }
    }

    /// The query-string value.
    pub fn as_str(self) -> &'static str {
        match self {
            Filter::All => "",
            Filter::AWins => "a",
            Filter::BWins => "b",
            Filter::Ties => "ties",
            Filter::Inconsistent => "inconsistent",
        }
    }
}

/// What the side-by-side view asks for.
#[derive(Debug, Clone)]
pub struct ReviewQuery<'a> {
    /// The dataset.
    pub dataset_id: DatasetId,
    /// System A.
    pub system_a: SystemId,
    /// System B.
    pub system_b: SystemId,
    /// The comparison whose verdicts to show, and whether it compared (a, b)
    /// (`true`) or (b, a).
    pub job: Option<(JobId, bool)>,
    /// Which items.
    pub filter: Filter,
    /// Text to find in the prompt or either response (case-insensitive).
    pub search: Option<&'a str>,
    /// Page size.
    pub limit: i64,
    /// Items skipped.
    pub offset: i64,
}

/// One item both systems answered, verdicts from A's point of view.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewItem {
    /// The item's id.
    pub item_id: ItemId,
    /// Its key.
    pub key: String,
    /// The prompt.
    pub prompt: String,
    /// The reference answer.
    pub reference: Option<String>,
    /// A's generation.
    pub generation_a: GenerationId,
    /// A's response.
    pub response_a: String,
    /// B's generation.
    pub generation_b: GenerationId,
    /// B's response.
    pub response_b: String,
    /// The verdict with A shown first (none: not compared).
    pub a_first: Option<Outcome>,
    /// The verdict with B shown first (none for a metric judge).
    pub b_first: Option<Outcome>,
    /// What counted.
    pub outcome: Option<Outcome>,
}

/// [`ReviewItem`] as selected, outcomes in their stored encoding.
#[derive(sqlx::FromRow)]
struct ReviewRow {
    item_id: ItemId,
    key: String,
    prompt: String,
    reference: Option<String>,
    generation_a: GenerationId,
    response_a: String,
    generation_b: GenerationId,
    response_b: String,
    a_first: Option<i16>,
    b_first: Option<i16>,
    outcome: Option<i16>,
}

impl From<ReviewRow> for ReviewItem {
    fn from(row: ReviewRow) -> Self {
        ReviewItem {
            item_id: row.item_id,
            key: row.key,
            prompt: row.prompt,
            reference: row.reference,
            generation_a: row.generation_a,
            response_a: row.response_a,
            generation_b: row.generation_b,
            response_b: row.response_b,
            a_first: row.a_first.map(outcome_from_db),
            b_first: row.b_first.map(outcome_from_db),
            outcome: row.outcome.map(outcome_from_db),
        }
    }
}

/// Escapes `%`, `_` and `\` for a LIKE pattern.
fn like_pattern(text: &str) -> String {
    let mut out = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// One page of the side-by-side view, in item order, with the number of items
/// matching the filter and search.
pub async fn items(pool: &PgPool, query: &ReviewQuery<'_>) -> Result<(i64, Vec<ReviewItem>)> {
    let (job, forward) = query.job.unzip();
    let forward = forward.unwrap_or(true);
    // The stored pair is (a, b) when `forward`, else (b, a); a flipped pair's
    // verdicts are negated and its two orders swapped (a metric judge has one).
    let (stored_a, stored_b) = if forward {
        (query.system_a, query.system_b)
    } else {
        (query.system_b, query.system_a)
    };
    // The matching items are counted on ids alone, then only the page's rows
    // are read with their texts (in item order, so the index stops the scan
    // after one page when nothing filters).
    const MATCHING: &str = "FROM items i \
           JOIN generations ga ON ga.item_id = i.id AND ga.system_id = $2 \
           JOIN generations gb ON gb.item_id = i.id AND gb.system_id = $3 \
           LEFT JOIN pair_outcomes o ON o.job_id = $4 AND o.system_a = $5 AND o.system_b = $6 AND o.item_id = i.id \
           WHERE i.dataset_id = $1 \
             AND ($9::text IS NULL OR i.prompt ILIKE $9 OR ga.response ILIKE $9 OR gb.response ILIKE $9) \
             AND CASE $8::text \
               WHEN 'a' THEN o.outcome = (CASE WHEN $7 THEN 1 ELSE -1 END) \
               WHEN 'b' THEN o.outcome = (CASE WHEN $7 THEN -1 ELSE 1 END) \
               WHEN 'ties' THEN o.outcome = 0 \
               WHEN 'inconsistent' THEN o.b_first IS NOT NULL AND o.a_first <> o.b_first \
               ELSE true END";
    let search = query.search.filter(|s| !s.is_empty()).map(like_pattern);
    // Both statements take the same nine parameters, bound in one place.
    let stored = (stored_a, stored_b);
    let count_sql = format!("SELECT count(*) {MATCHING}");
    let (total,): (i64,) = bind_matching(
        sqlx::query_as(&count_sql),
        query,
        job,
        stored,
        forward,
        &search,
    )
    .fetch_one(pool)
    .await
    .map_err(db("count items side by side"))?;
    let page_sql = format!(
        "SELECT i.id AS item_id, i.key, i.prompt, i.reference, \
           ga.id AS generation_a, ga.response AS response_a, gb.id AS generation_b, gb.response AS response_b, \
           CASE WHEN $7 THEN o.a_first WHEN o.b_first IS NULL THEN -o.a_first ELSE -o.b_first END AS a_first, \
           CASE WHEN $7 THEN o.b_first WHEN o.b_first IS NULL THEN NULL ELSE -o.a_first END AS b_first, \
           CASE WHEN $7 THEN o.outcome ELSE -o.outcome END AS outcome \
         {MATCHING} ORDER BY i.id LIMIT $10 OFFSET $11"
    );
    let rows: Vec<ReviewRow> = bind_matching(
        sqlx::query_as(&page_sql),
        query,
        job,
        stored,
        forward,
        &search,
    )
    .bind(query.limit)
    .bind(query.offset)
    .fetch_all(pool)
    .await
    .map_err(db("read items side by side"))?;
    let rows = rows.into_iter().map(ReviewItem::from).collect();
    Ok((total, rows))
}

/// Binds the side-by-side statements' nine shared parameters ($1–$9).
fn bind_matching<'q, O>(
    statement: QueryAs<'q, Postgres, O, PgArguments>,
    query: &ReviewQuery<'_>,
    job: Option<JobId>,
    (stored_a, stored_b): (SystemId, SystemId),
    forward: bool,
    search: &'q Option<String>,
) -> QueryAs<'q, Postgres, O, PgArguments> {
    statement
        .bind(query.dataset_id)
        .bind(query.system_a)
        .bind(query.system_b)
        .bind(job)
        .bind(stored_a)
        .bind(stored_b)
        .bind(forward)
        .bind(query.filter.as_str())
        .bind(search)
}

/// One stored score.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct GenerationScore {
    /// The generation scored.
    pub generation_id: GenerationId,
    /// The module's id.
    pub module_id: ModuleId,
    /// The name it declares.
    pub module: String,
    /// The metric's name.
    pub metric: String,
    /// The value (none: not applicable).
    pub value: Option<f64>,
}

/// Every score of the generations, by module name, module and metric position.
pub async fn scores(pool: &PgPool, generations: &[GenerationId]) -> Result<Vec<GenerationScore>> {
    sqlx::query_as(
        "SELECT s.generation_id, s.module_id, m.name AS module, mm.name AS metric, s.value \
         FROM scores s JOIN modules m ON m.id = s.module_id \
         JOIN module_metrics mm ON mm.module_id = s.module_id AND mm.position = s.metric \
         WHERE s.generation_id = ANY($1) ORDER BY m.name, s.module_id, s.metric",
    )
    .bind(generations)
    .fetch_all(pool)
    .await
    .map_err(db("read scores of generations"))
}

/// The datasets each of the team's systems has generations on: `(system, dataset name)`,
/// by system and dataset name.
pub async fn system_datasets(pool: &PgPool, team_id: TeamId) -> Result<Vec<(SystemId, String)>> {
    sqlx::query_as(
        "SELECT s.id, d.name FROM systems s JOIN datasets d ON d.team_id = s.team_id \
         WHERE s.team_id = $1 \
           AND EXISTS (SELECT 1 FROM generations g WHERE g.system_id = s.id AND g.dataset_id = d.id) \
         ORDER BY s.name, d.name",
    )
    .bind(team_id)
    .fetch_all(pool)
    .await
    .map_err(db("list the datasets of systems"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_is_literal_in_like_patterns() {
        assert_eq!(like_pattern(r"50%_a\b"), r"%50\%\_a\\b%");
    }

    #[test]
    fn filters_round_trip_and_unknown_means_all() {
        for f in [
            Filter::AWins,
            Filter::BWins,
            Filter::Ties,
            Filter::Inconsistent,
        ] {
            assert_eq!(Filter::parse(f.as_str()), f);
        }
        assert_eq!(Filter::parse("nonsense"), Filter::All);
    }
}
