//! Jobs: scoring runs, comparisons, status, cancellation and pairwise results.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sqlx::PgPool;

use super::{ApiError, json_body, path};
use crate::db::results::{self, PairResult};
use crate::db::teams::Team;
use crate::jobs::{self, CompareRequest, JobRecord, JobRefused, ScoreRequest};

pub(super) fn refused(error: JobRefused) -> ApiError {
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

/// `POST /api/v1/jobs/score`: 202 with the queued job.
pub(super) async fn create_score(
    State(db): State<PgPool>,
    team: Team,
    body: Result<Json<ScoreRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<JobRecord>), ApiError> {
    let request = json_body(body)?;
    let job = jobs::create_score_job(&db, team.id, &request)
        .await
        .map_err(refused)?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// `POST /api/v1/jobs/compare`: 202 with the queued job.
pub(super) async fn create_compare(
    State(db): State<PgPool>,
    team: Team,
    body: Result<Json<CompareRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<JobRecord>), ApiError> {
    let request = json_body(body)?;
    let job = jobs::create_compare_job(&db, team.id, &request)
        .await
        .map_err(refused)?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// `GET /api/v1/jobs`: the team's 100 most recent jobs.
pub(super) async fn list(
    State(db): State<PgPool>,
    team: Team,
) -> Result<Json<serde_json::Value>, ApiError> {
    let list = jobs::list(&db, team.id, 100).await?;
    Ok(Json(serde_json::json!({ "jobs": list })))
}

async fn find(db: &PgPool, team_id: i64, id: i64) -> Result<JobRecord, ApiError> {
    jobs::get(db, team_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such job".into()))
}

/// `GET /api/v1/jobs/{id}`: state and progress.
pub(super) async fn get(
    State(db): State<PgPool>,
    team: Team,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<JobRecord>, ApiError> {
    let id = path(id, "job")?;
    Ok(Json(find(&db, team.id, id).await?))
}

/// `POST /api/v1/jobs/{id}/cancel`: the job afterwards (unchanged if it had
/// already finished).
pub(super) async fn cancel(
    State(db): State<PgPool>,
    team: Team,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<JobRecord>, ApiError> {
    let id = path(id, "job")?;
    jobs::cancel(&db, team.id, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("no such job".into()))
}

/// `GET /api/v1/jobs/{id}/pairs`: a comparison's pairs (so far, while it runs).
pub(super) async fn pairs(
    State(db): State<PgPool>,
    team: Team,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = path(id, "job")?;
    let job = find(&db, team.id, id).await?;
    if job.kind != "compare" {
        return Err(ApiError::invalid(format!(
            "job {id} is a {} job; pairs belong to compare jobs",
            job.kind
        )));
    }
    let pairs: Vec<PairResult> = results::pair_results(&db, id).await?;
    Ok(Json(serde_json::json!({ "job": job, "pairs": pairs })))
}

/// `GET /api/v1/jobs/{id}/leaderboard`: the Bradley–Terry leaderboard of a
/// comparison, with its connected groups and a warning when there are several.
pub(super) async fn job_leaderboard(
    State(db): State<PgPool>,
    team: Team,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = path(id, "job")?;
    let job = find(&db, team.id, id).await?;
    if job.kind != "compare" {
        return Err(ApiError::invalid(format!(
            "job {id} is a {} job; leaderboards belong to compare jobs",
            job.kind
        )));
    }
    let board = results::leaderboard(&db, id).await?;
    Ok(Json(serde_json::json!({
        "job": job,
        "systems": board.systems,
        "connected": board.connected,
        "groups": board.groups,
        "warning": board.warning,
    })))
}

/// `?judge=MODULE[&metric=METRIC]`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JudgeQuery {
    judge: String,
    #[serde(default)]
    metric: Option<String>,
}

/// `GET /api/v1/datasets/{dataset}/leaderboard?judge=M[&metric=X]`: the
/// leaderboard of the newest finished comparison with that judge.
pub(super) async fn dataset_leaderboard(
    State(db): State<PgPool>,
    team: Team,
    dataset: Result<Path<String>, PathRejection>,
    query: Result<axum::extract::Query<JudgeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let name = path(dataset, "dataset")?;
    let axum::extract::Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let dataset_id = jobs::dataset_id(&db, team.id, &name)
        .await
        .map_err(refused)?;
    let judge = jobs::resolve_judge(&db, team.id, &query.judge, query.metric.as_deref())
        .await
        .map_err(refused)?;
    let job = results::latest_compare_job_with(&db, team.id, dataset_id, Some(judge))
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no finished comparison on `{name}` with judge `{}`; run `evaluator compare` first",
                query.judge
            ))
        })?;
    let board = results::leaderboard(&db, job).await?;
    Ok(Json(serde_json::json!({
        "dataset": name,
        "job": job,
        "systems": board.systems,
        "connected": board.connected,
        "groups": board.groups,
        "warning": board.warning,
    })))
}
