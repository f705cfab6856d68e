//! Jobs: scoring runs, comparisons, status, cancellation, pairwise results and
//! leaderboards.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use sqlx::PgPool;

use super::error::ApiError;
use super::extract::{AppJson, AppPath, AppQuery};
use super::types::{
    CompareRequest, DatasetLeaderboard, ErrorBody, Job, JobLeaderboard, JobList, JobPairs,
    JudgeQuery, ScoreRequest,
};
use crate::domain::{JobId, JobKind, Team, TeamId};
use crate::jobs::{self, JobRefused};

fn refused(error: JobRefused) -> ApiError {
    match error {
        JobRefused::NotFound(m) => ApiError::NotFound(m),
        JobRefused::Invalid(m) => ApiError::invalid(m),
        JobRefused::NoCommonItems { .. } => ApiError::Unprocessable {
            code: "no_common_items",
            message: error.to_string(),
        },
        JobRefused::Database(e) => ApiError::from(e),
    }
}

/// Starts a scoring run: every named scorer on every system's generations
/// (those already scored by a module are not scored again).
#[utoipa::path(
    post, path = "/api/v1/jobs/score", tag = "jobs",
    request_body = ScoreRequest,
    responses(
        (status = 202, description = "Queued (or already done: nothing left to score)", body = Job),
        (status = 404, description = "An unknown dataset or module", body = ErrorBody),
        (status = 422, description = "A request that cannot run", body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub(super) async fn create_score(
    State(db): State<PgPool>,
    team: Team,
    AppJson(request): AppJson<ScoreRequest>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    let job = jobs::create_score_job(&db, team.id, &request)
        .await
        .map_err(refused)?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// Starts a comparison of every pair of the systems with a judge, on the items
/// both systems of a pair answered.
#[utoipa::path(
    post, path = "/api/v1/jobs/compare", tag = "jobs",
    request_body = CompareRequest,
    responses(
        (status = 202, description = "Queued", body = Job),
        (status = 404, description = "An unknown dataset or judge", body = ErrorBody),
        (status = 422, description = "A request that cannot run; `no_common_items` when a pair shares no item", body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub(super) async fn create_compare(
    State(db): State<PgPool>,
    team: Team,
    AppJson(request): AppJson<CompareRequest>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    let job = jobs::create_compare_job(&db, team.id, &request)
        .await
        .map_err(refused)?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// The team's 100 most recent jobs.
#[utoipa::path(
    get, path = "/api/v1/jobs", tag = "jobs",
    responses((status = 200, body = JobList), (status = 401, body = ErrorBody))
)]
pub(super) async fn list(State(db): State<PgPool>, team: Team) -> Result<Json<JobList>, ApiError> {
    let jobs = jobs::list(&db, team.id, 100).await?;
    Ok(Json(JobList { jobs }))
}

async fn find(db: &PgPool, team_id: TeamId, id: JobId) -> Result<Job, ApiError> {
    jobs::get(db, team_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such job".into()))
}

/// A comparison, or a refusal naming what the job is instead.
async fn find_comparison(
    db: &PgPool,
    team_id: TeamId,
    id: JobId,
    what: &str,
) -> Result<Job, ApiError> {
    let job = find(db, team_id, id).await?;
    if job.kind != JobKind::Compare {
        return Err(ApiError::invalid(format!(
            "job {id} is a {} job; {what} belong to compare jobs",
            job.kind
        )));
    }
    Ok(job)
}

/// A job's state and progress.
#[utoipa::path(
    get, path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = i64, Path, description = "The job's id")),
    responses(
        (status = 200, body = Job),
        (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub(super) async fn get(
    State(db): State<PgPool>,
    team: Team,
    AppPath(id): AppPath<JobId>,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(find(&db, team.id, id).await?))
}

/// Cancels a job that has not finished (results already committed stay).
#[utoipa::path(
    post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = i64, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job afterwards (unchanged if it had finished)", body = Job),
        (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub(super) async fn cancel(
    State(db): State<PgPool>,
    team: Team,
    AppPath(id): AppPath<JobId>,
) -> Result<Json<Job>, ApiError> {
    jobs::cancel(&db, team.id, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("no such job".into()))
}

/// A comparison's pairs (so far, while it runs).
#[utoipa::path(
    get, path = "/api/v1/jobs/{id}/pairs", tag = "jobs",
    params(("id" = i64, Path, description = "A compare job's id")),
    responses(
        (status = 200, body = JobPairs),
        (status = 404, body = ErrorBody),
        (status = 422, description = "Not a compare job", body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub(super) async fn pairs(
    State(db): State<PgPool>,
    team: Team,
    AppPath(id): AppPath<JobId>,
) -> Result<Json<JobPairs>, ApiError> {
    let job = find_comparison(&db, team.id, id, "pairs").await?;
    let pairs = crate::results::pair_results(&db, id).await?;
    Ok(Json(JobPairs { job, pairs }))
}

/// A comparison's Bradley–Terry leaderboard, with its connected groups and a
/// warning when there are several.
#[utoipa::path(
    get, path = "/api/v1/jobs/{id}/leaderboard", tag = "jobs",
    params(("id" = i64, Path, description = "A compare job's id")),
    responses(
        (status = 200, body = JobLeaderboard),
        (status = 404, body = ErrorBody),
        (status = 422, description = "Not a compare job", body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub(super) async fn job_leaderboard(
    State(db): State<PgPool>,
    team: Team,
    AppPath(id): AppPath<JobId>,
) -> Result<Json<JobLeaderboard>, ApiError> {
    let job = find_comparison(&db, team.id, id, "leaderboards").await?;
    let leaderboard = crate::results::leaderboard(&db, id).await?;
    Ok(Json(JobLeaderboard { job, leaderboard }))
}

/// The leaderboard of the newest finished comparison on a dataset with a judge.
#[utoipa::path(
    get, path = "/api/v1/datasets/{dataset}/leaderboard", tag = "datasets",
    params(("dataset" = String, Path, description = super::data::DATASET_REFERENCE), JudgeQuery),
    responses(
        (status = 200, body = DatasetLeaderboard),
        (status = 404, description = "No such dataset or judge, or no finished comparison with it", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub(super) async fn dataset_leaderboard(
    State(db): State<PgPool>,
    team: Team,
    AppPath(name): AppPath<String>,
    AppQuery(query): AppQuery<JudgeQuery>,
) -> Result<Json<DatasetLeaderboard>, ApiError> {
    let (dataset_id, name) = jobs::dataset_id(&db, team.id, &name)
        .await
        .map_err(refused)?;
    let (judge, metric, judge_name) =
        jobs::resolve_named_judge(&db, team.id, &query.judge, query.metric.as_deref())
            .await
            .map_err(refused)?;
    let job =
        crate::db::results::latest_compare_job(&db, team.id, dataset_id, Some((judge, metric)))
            .await?
            .ok_or_else(|| {
                // Named by the module's declared name: clients (the CLI) often
                // pass the id of the upload they just made.
                let metric = query
                    .metric
                    .as_deref()
                    .map(|m| format!(" on its metric `{m}`"))
                    .unwrap_or_default();
                ApiError::NotFound(format!(
                    "no finished comparison on `{name}` with judge `{judge_name}` (module #{judge}){metric}; \
                     run `evaluator compare --dataset {name} --judge {judge_name}` first"
                ))
            })?;
    let leaderboard = crate::results::leaderboard(&db, job).await?;
    Ok(Json(DatasetLeaderboard {
        dataset: name,
        job,
        leaderboard,
    }))
}
