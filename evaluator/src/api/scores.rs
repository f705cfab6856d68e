//! Scores made outside the service (a learned reward model's, by `trainer
//! score`), pushed with their provenance as a metric of one system.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use sqlx::PgPool;

use super::data::DATASET_REFERENCE;
use super::error::ApiError;
use super::extract::{AppPath, AppQuery};
use super::types::{ErrorBody, ScoreSummary, ScoresPush, ScoresQuery};
use crate::db::scores::{self, ScoresRefused};
use crate::db::{datasets, teams};
use crate::domain::Team;
use crate::import::scores::{self as parse, MetricName, provenance_path};

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable {
        code: "invalid_scores",
        message: message.into(),
    }
}

/// Stores a system's scores from a learned reward model under a metric of
/// the dataset, with their provenance. Both files are parsed completely, and
/// every item is checked against the system's generations, before anything
/// is written (422 naming the file, line and field); then one transaction.
/// A metric name is one model (by sha256): another model's scores under it
/// are refused (409); the same model's replace the system's set.
#[utoipa::path(
    post, path = "/api/v1/datasets/{dataset}/scores", tag = "scores",
    params(("dataset" = String, Path, description = DATASET_REFERENCE), ScoresQuery),
    request_body(content = ScoresPush, content_type = "application/json"),
    responses(
        (status = 201, description = "The system's scores were stored", body = ScoreSummary),
        (status = 200, description = "The system's scores from the same model were replaced", body = ScoreSummary),
        (status = 404, description = "No such dataset", body = ErrorBody),
        (status = 409, description = "The metric holds another reward model's scores", body = ErrorBody),
        (status = 413, description = "Over the 256 MiB limit", body = ErrorBody),
        (status = 422, description = "A line or the provenance is invalid, or names an item the system did not answer", body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub(super) async fn push(
    State(db): State<PgPool>,
    team: Team,
    headers: HeaderMap,
    AppPath(name): AppPath<String>,
    AppQuery(query): AppQuery<ScoresQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ScoreSummary>), ApiError> {
    let bytes = body.map_err(|rejection| ApiError::body(rejection, &super::generations_limit()))?;
    let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
    let request: ScoresPush = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        invalid(format!(
            "the request body is not {{\"file\"?, \"provenance\", \"scores\"}}: {}{}",
            if path == "." {
                String::new()
            } else {
                format!("field `{path}`: ")
            },
            e.into_inner()
        ))
    })?;
    let metric = MetricName::parse(&query.metric).map_err(|e| invalid(e.to_string()))?;
    let (dataset_id, dataset_name) = datasets::resolve(&db, team.id, &name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no dataset `{name}`")))?;
    let file = request
        .file
        .filter(|f| !f.trim().is_empty() && !f.contains('\0'))
        .unwrap_or_else(|| "scores.jsonl".into());
    let provenance_file = provenance_path(std::path::Path::new(&file))
        .display()
        .to_string();
    let provenance = parse::provenance_from_value(&provenance_file, request.provenance);
    let file =
        parse::parse(&file, &request.scores, provenance).map_err(|e| invalid(e.to_string()))?;
    // The token was checked by `Team`; only its shown prefix is kept.
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim();
    let summary = scores::import(
        &db,
        (dataset_id, &dataset_name),
        &query.system,
        &metric,
        &teams::token_prefix(token),
        &file,
    )
    .await
    .map_err(|error| match error {
        ScoresRefused::UnknownSystem { .. } | ScoresRefused::Unknown { .. } => {
            invalid(error.to_string())
        }
        ScoresRefused::OtherModel { .. } => ApiError::Conflict(error.to_string()),
        ScoresRefused::Database(e) => ApiError::from(e),
    })?;
    let status = if summary.replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(summary)))
}
