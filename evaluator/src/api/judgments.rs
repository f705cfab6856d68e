//! Judgments made outside the service, the dataset's judges, and the
//! leaderboard against a fixed baseline.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use sqlx::PgPool;

use super::data::DATASET_REFERENCE;
use super::error::ApiError;
use super::extract::{AppPath, AppQuery};
use super::types::{
    BaselineLeaderboard, BaselineQuery, ErrorBody, JudgeList, JudgmentSummary, JudgmentsQuery,
};
use crate::baseline::{self, Missing};
use crate::db::datasets;
use crate::db::judgments::{self, JudgmentsRefused};
use crate::domain::{DatasetId, Team};
use crate::import::judgments::{self as parse, Renames};

async fn dataset(db: &PgPool, team: &Team, name: &str) -> Result<(DatasetId, String), ApiError> {
    datasets::resolve(db, team.id, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no dataset `{name}`")))
}

/// Stores a judge's judgments of systems on a dataset. The file is parsed
/// completely, and every system and item it names is checked against the
/// dataset, before anything is written (422 naming the line); then one
/// transaction.
#[utoipa::path(
    post, path = "/api/v1/datasets/{dataset}/judgments", tag = "judgments",
    params(("dataset" = String, Path, description = DATASET_REFERENCE), JudgmentsQuery),
    request_body(content = String, content_type = "application/json",
                 description = "The file, in the format named by `format`"),
    responses(
        (status = 201, description = "Judgments were stored", body = JudgmentSummary),
        (status = 200, description = "A repeated push: nothing new", body = JudgmentSummary),
        (status = 404, description = "No such dataset", body = ErrorBody),
        (status = 409, description = "The judge already has a different preference for a pair on an item", body = ErrorBody),
        (status = 413, description = "Over the 256 MiB limit", body = ErrorBody),
        (status = 422, description = "A row is invalid, or names a system or item the dataset does not have", body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub(super) async fn push(
    State(db): State<PgPool>,
    team: Team,
    AppPath(name): AppPath<String>,
    AppQuery(query): AppQuery<JudgmentsQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<JudgmentSummary>), ApiError> {
    let bytes = body.map_err(|rejection| ApiError::body(rejection, &super::generations_limit()))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| ApiError::Unprocessable {
        code: "invalid_judgments",
        message: format!("the file is not UTF-8 (byte {})", e.valid_up_to()),
    })?;
    let (dataset_id, dataset_name) = dataset(&db, &team, &name).await?;
    let renames = Renames {
        system: query.system.clone(),
        baseline: query.baseline.clone(),
    };
    let file = parse::parse(query.format, text, &renames).map_err(|e| ApiError::Unprocessable {
        code: "invalid_judgments",
        message: format!("{} ({} format)", e, query.format.as_str()),
    })?;
    let mut provenance = serde_json::json!({ "format": query.format.as_str() });
    if let Some(annotator) = &file.annotator {
        provenance["annotator"] = serde_json::Value::String(annotator.clone());
    }
    // A file against one fixed system (AlpacaEval's) names the page's default
    // baseline.
    if let Some(first) = file.rows.first()
        && file.rows.iter().all(|r| r.a == first.a)
    {
        provenance["baseline"] = serde_json::Value::String(first.a.clone());
    }
    let summary = judgments::import(
        &db,
        (dataset_id, &dataset_name),
        &query.judge,
        provenance,
        &file,
    )
    .await
    .map_err(|error| match error {
        JudgmentsRefused::InvalidName(_) | JudgmentsRefused::Unknown { .. } => {
            ApiError::Unprocessable {
                code: "invalid_judgments",
                message: error.to_string(),
            }
        }
        JudgmentsRefused::Conflict { .. } => ApiError::Conflict(error.to_string()),
        JudgmentsRefused::Database(e) => ApiError::from(e),
    })?;
    let status = if summary.created > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(summary)))
}

/// The dataset's judges, with how many judgments each holds.
#[utoipa::path(
    get, path = "/api/v1/datasets/{dataset}/judges", tag = "judgments",
    params(("dataset" = String, Path, description = DATASET_REFERENCE)),
    responses(
        (status = 200, body = JudgeList),
        (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub(super) async fn list(
    State(db): State<PgPool>,
    team: Team,
    AppPath(name): AppPath<String>,
) -> Result<Json<JudgeList>, ApiError> {
    let (dataset_id, dataset_name) = dataset(&db, &team, &name).await?;
    let judges = judgments::list(&db, dataset_id).await?;
    Ok(Json(JudgeList {
        dataset: dataset_name,
        judges,
    }))
}

/// AlpacaEval's leaderboard of a judge's judgments against one baseline:
/// win rate, standard error, wins, draws, discrete win rate, average length,
/// the length-controlled win rate, and a Bradley–Terry rating.
#[utoipa::path(
    get, path = "/api/v1/datasets/{dataset}/baseline-leaderboard", tag = "judgments",
    params(("dataset" = String, Path, description = DATASET_REFERENCE), BaselineQuery),
    responses(
        (status = 200, body = BaselineLeaderboard),
        (status = 404, description = "No such dataset, judge or baseline, or no judgments against it", body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub(super) async fn leaderboard(
    State(db): State<PgPool>,
    team: Team,
    AppPath(name): AppPath<String>,
    AppQuery(query): AppQuery<BaselineQuery>,
) -> Result<Json<BaselineLeaderboard>, ApiError> {
    let (dataset_id, dataset_name) = dataset(&db, &team, &name).await?;
    baseline::leaderboard(
        &db,
        (dataset_id, &dataset_name),
        &query.judge,
        &query.baseline,
    )
    .await
    .map(Json)
    .map_err(|error| match error {
        Missing::Failed(e) => ApiError::from(e),
        other => ApiError::NotFound(other.to_string()),
    })
}
