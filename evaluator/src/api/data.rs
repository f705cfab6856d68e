//! Datasets, generation imports, systems and results.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use sqlx::PgPool;

use super::error::ApiError;
use super::extract::{AppJson, AppPath, AppQuery};
use super::types::{
    DatasetDetail, DatasetList, DatasetResults, ErrorBody, ImportQuery, ImportSummary, Pareto,
    ParetoQuery, System, SystemList,
};
use crate::db::datasets::{self, ImportRefused};
use crate::domain::Team;
use crate::import;
use crate::pareto::ParetoError;

/// Imports a generations file as a system's answers on a dataset (both
/// created when new). The file is parsed completely first (422 naming line and
/// field, nothing written), then stored in one transaction.
#[utoipa::path(
    post, path = "/api/v1/datasets/{dataset}/generations", tag = "datasets",
    params(("dataset" = String, Path, description = "The dataset's name"), ImportQuery),
    request_body(content = String, content_type = "application/x-ndjson",
                 description = "The file, in the format named by `format`"),
    responses(
        (status = 201, description = "Something was created", body = ImportSummary),
        (status = 200, description = "A repeated push: nothing new", body = ImportSummary),
        (status = 409, description = "The system already has a different response for an item, or an item `id` is stored with a different prompt", body = ErrorBody),
        (status = 413, description = "Over the 256 MiB limit", body = ErrorBody),
        (status = 422, description = "A row or a name is invalid", body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub(super) async fn import_generations(
    State(db): State<PgPool>,
    team: Team,
    AppPath(dataset): AppPath<String>,
    AppQuery(query): AppQuery<ImportQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ImportSummary>), ApiError> {
    let bytes = body.map_err(|rejection| ApiError::body(rejection, &super::generations_limit()))?;
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
        ImportRefused::Conflict { .. } | ImportRefused::PromptConflict { .. } => {
            ApiError::Conflict(error.to_string())
        }
        ImportRefused::Database(e) => ApiError::from(e),
    }
}

/// How the read routes take a dataset (imports take a name: they create it).
pub(super) const DATASET_REFERENCE: &str = "The dataset's name, or its id (as `GET /api/v1/datasets` lists them); a name wins, so a dataset named `7` is found by name";

/// The team's datasets with their sizes, by name.
#[utoipa::path(
    get, path = "/api/v1/datasets", tag = "datasets",
    responses((status = 200, body = DatasetList), (status = 401, body = ErrorBody))
)]
pub(super) async fn list_datasets(
    State(db): State<PgPool>,
    team: Team,
) -> Result<Json<DatasetList>, ApiError> {
    let datasets = datasets::list(&db, team.id).await?;
    Ok(Json(DatasetList { datasets }))
}

/// A dataset's sizes and the systems with generations on it.
#[utoipa::path(
    get, path = "/api/v1/datasets/{dataset}", tag = "datasets",
    params(("dataset" = String, Path, description = DATASET_REFERENCE)),
    responses(
        (status = 200, body = DatasetDetail),
        (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub(super) async fn get_dataset(
    State(db): State<PgPool>,
    team: Team,
    AppPath(name): AppPath<String>,
) -> Result<Json<DatasetDetail>, ApiError> {
    let dataset = datasets::find(&db, team.id, &name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no dataset `{name}`")))?;
    let systems = datasets::systems_of(&db, dataset.id).await?;
    Ok(Json(DatasetDetail { dataset, systems }))
}

/// Per system and metric: mean, standard error and n.
#[utoipa::path(
    get, path = "/api/v1/datasets/{dataset}/results", tag = "datasets",
    params(("dataset" = String, Path, description = DATASET_REFERENCE)),
    responses(
        (status = 200, body = DatasetResults),
        (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub(super) async fn results(
    State(db): State<PgPool>,
    team: Team,
    AppPath(name): AppPath<String>,
) -> Result<Json<DatasetResults>, ApiError> {
    // Only the id: the dataset's sizes would cost a count over its generations.
    let (id, name) = datasets::resolve(&db, team.id, &name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no dataset `{name}`")))?;
    Ok(Json(crate::results::dataset_results(&db, id, &name).await?))
}

/// The Pareto view of two metrics: every system with both, the overall front
/// and its hypervolume, and each sweep (systems sharing a metadata `sweep`, or
/// with a `lambda` and none) in λ order with its own front and hypervolume,
/// all from one reference point: each axis's worst value over the systems.
/// The page `/datasets/{dataset}/pareto` shows the same numbers.
#[utoipa::path(
    get, path = "/api/v1/datasets/{dataset}/pareto", tag = "datasets",
    params(("dataset" = String, Path, description = DATASET_REFERENCE), ParetoQuery),
    responses(
        (status = 200, description = "The view; when no system has values on both metrics, \
            `points` and `sweeps` are empty, `reference` is null and `message` says why", body = Pareto),
        (status = 404, description = "No such dataset, a metric it does not have (the message \
            lists those it has), or no scores at all", body = ErrorBody),
        (status = 422, description = "An unknown query parameter", body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub(super) async fn pareto(
    State(db): State<PgPool>,
    team: Team,
    AppPath(name): AppPath<String>,
    AppQuery(query): AppQuery<ParetoQuery>,
) -> Result<Json<Pareto>, ApiError> {
    let (id, name) = datasets::resolve(&db, team.id, &name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no dataset `{name}`")))?;
    let results = crate::results::dataset_results(&db, id, &name).await?;
    crate::pareto::pareto(&results, query.x.as_deref(), query.y.as_deref())
        .map(Json)
        .map_err(|error| match error {
            ParetoError::NoMetrics { .. } | ParetoError::UnknownMetric { .. } => {
                ApiError::NotFound(error.to_string())
            }
            ParetoError::Stats(_) => ApiError::internal(error),
        })
}

/// The team's systems, by name.
#[utoipa::path(
    get, path = "/api/v1/systems", tag = "systems",
    responses((status = 200, body = SystemList), (status = 401, body = ErrorBody))
)]
pub(super) async fn list_systems(
    State(db): State<PgPool>,
    team: Team,
) -> Result<Json<SystemList>, ApiError> {
    let systems = datasets::systems(&db, team.id).await?;
    Ok(Json(SystemList { systems }))
}

/// Replaces a system's metadata with a JSON object.
#[utoipa::path(
    put, path = "/api/v1/systems/{system}/metadata", tag = "systems",
    params(("system" = String, Path, description = "The system's name")),
    request_body(content = Object, description = "The new metadata (checkpoint step, λ, ...)"),
    responses(
        (status = 200, body = System),
        (status = 404, body = ErrorBody),
        (status = 422, description = "Not a JSON object", body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub(super) async fn set_metadata(
    State(db): State<PgPool>,
    team: Team,
    AppPath(name): AppPath<String>,
    AppJson(metadata): AppJson<serde_json::Value>,
) -> Result<Json<System>, ApiError> {
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
