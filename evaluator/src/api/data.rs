//! Datasets, generation imports, systems and results.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use sqlx::PgPool;

use super::{ApiError, MAX_IMPORT_BYTES, json_body, path};
use crate::db::datasets::{self, ImportRefused, ImportSummary, SystemRecord};
use crate::db::results::{self, DatasetResults};
use crate::db::teams::Team;
use crate::import::{self, Format};

/// `?system=NAME&format=canonical|mario|alarm`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ImportQuery {
    system: String,
    #[serde(default)]
    format: Format,
}

/// `POST /api/v1/datasets/{dataset}/generations?system=S&format=F`: the file as
/// the body. Parsed completely first (422 naming line and field, nothing
/// written), then stored in one transaction. 201 when anything was created,
/// 200 for a repeated push.
pub(super) async fn import_generations(
    State(db): State<PgPool>,
    team: Team,
    dataset: Result<Path<String>, PathRejection>,
    query: Result<Query<ImportQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ImportSummary>), ApiError> {
    let dataset = path(dataset, "dataset")?;
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let bytes = body.map_err(|rejection| match rejection {
        BytesRejection::FailedToBufferBody(_) => ApiError::PayloadTooLarge(format!(
            "generation files are limited to {} MiB; split the file",
            MAX_IMPORT_BYTES >> 20
        )),
        other => ApiError::BadRequest(other.body_text()),
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| ApiError::Unprocessable {
        code: "invalid_generations",
        message: format!("the file is not UTF-8 (byte {})", e.valid_up_to()),
    })?;
    // Names are checked before the (possibly long) parse.
    datasets::check_dataset_name(&dataset).map_err(refused)?;
    datasets::check_system_name(&query.system).map_err(refused)?;
    let rows = import::parse(query.format, text).map_err(|e| ApiError::Unprocessable {
        code: "invalid_generations",
        message: format!("{} ({} format)", e, query.format.as_str()),
    })?;
    let summary = datasets::import(&db, team.id, &dataset, &query.system, &rows)
        .await
        .map_err(refused)?;
    let status = if summary.generations_created > 0 || summary.items_created > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(summary)))
}

fn refused(error: ImportRefused) -> ApiError {
    match error {
        ImportRefused::InvalidName { .. } => ApiError::invalid(error.to_string()),
        ImportRefused::Conflict { .. } => ApiError::Conflict(error.to_string()),
        ImportRefused::Database(e) => ApiError::from(e),
    }
}

/// `GET /api/v1/datasets`.
pub(super) async fn list_datasets(
    State(db): State<PgPool>,
    team: Team,
) -> Result<Json<serde_json::Value>, ApiError> {
    let list = datasets::list(&db, team.id).await?;
    Ok(Json(serde_json::json!({ "datasets": list })))
}

/// `GET /api/v1/datasets/{dataset}`: sizes and the systems with generations.
pub(super) async fn get_dataset(
    State(db): State<PgPool>,
    team: Team,
    dataset: Result<Path<String>, PathRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let name = path(dataset, "dataset")?;
    let dataset = find_dataset(&db, team.id, &name).await?;
    let systems = datasets::systems_of(&db, dataset.id).await?;
    Ok(Json(
        serde_json::json!({ "dataset": dataset, "systems": systems }),
    ))
}

async fn find_dataset(
    db: &PgPool,
    team_id: i64,
    name: &str,
) -> Result<datasets::DatasetRecord, ApiError> {
    datasets::find(db, team_id, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no dataset `{name}`")))
}

/// `GET /api/v1/datasets/{dataset}/results`: per system and metric, mean,
/// standard error and n.
pub(super) async fn results(
    State(db): State<PgPool>,
    team: Team,
    dataset: Result<Path<String>, PathRejection>,
) -> Result<Json<DatasetResults>, ApiError> {
    let name = path(dataset, "dataset")?;
    // Only the id: the dataset's sizes would cost a count over its generations.
    let id = datasets::find_id(&db, team.id, &name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no dataset `{name}`")))?;
    Ok(Json(results::dataset_results(&db, id, &name).await?))
}

/// `GET /api/v1/systems`.
pub(super) async fn list_systems(
    State(db): State<PgPool>,
    team: Team,
) -> Result<Json<serde_json::Value>, ApiError> {
    let list = datasets::systems(&db, team.id).await?;
    Ok(Json(serde_json::json!({ "systems": list })))
}

/// `PUT /api/v1/systems/{system}/metadata`: a JSON object replacing the metadata.
pub(super) async fn set_metadata(
    State(db): State<PgPool>,
    team: Team,
    system: Result<Path<String>, PathRejection>,
    body: Result<Json<serde_json::Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<SystemRecord>, ApiError> {
    let name = path(system, "system")?;
    let metadata = json_body(body)?;
    if !metadata.is_object() {
        return Err(ApiError::invalid("metadata must be a JSON object"));
    }
    if import::has_nul(&metadata) {
        return Err(ApiError::invalid(
            "metadata contains the character U+0000, which cannot be stored",
        ));
    }
    datasets::set_metadata(&db, team.id, &name, &metadata)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no system `{name}`")))
}
