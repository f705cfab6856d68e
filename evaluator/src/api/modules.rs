//! Reward modules: upload (loaded in the sandbox before it is stored), list, get.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;

use super::error::ApiError;
use super::extract::AppPath;
use super::types::{ErrorBody, Module, ModuleList};
use crate::db::modules;
use crate::domain::{ModuleId, Team};
use crate::state::AppState;

/// Uploads a module: the raw `.wasm` as the body. Its shape is checked against
/// the compile limits, then it is compiled (in the service's compile queue), its
/// imports audited and its `info()` checked; only a module that loads is stored.
#[utoipa::path(
    post, path = "/api/v1/modules", tag = "modules",
    request_body(content = Vec<u8>, content_type = "application/wasm",
                 description = "A component, or a core module built with the reward SDK"),
    responses(
        (status = 201, description = "Stored", body = Module),
        (status = 200, description = "The team had uploaded the same bytes: that record", body = Module),
        (status = 413, description = "Over the 32 MiB limit", body = ErrorBody),
        (status = 422, description = "Refused by the sandbox; `code` is its error code \
                                       (`module_too_large`, `compile_timeout` and `compile_memory` \
                                       for the compile limits)", body = ErrorBody),
        (status = 503, description = "The compile queue is full, or the team already has its \
                                       share of it; `Retry-After` says when to try again",
                       body = ErrorBody,
                       headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 401, body = ErrorBody),
    )
)]
pub(super) async fn upload(
    State(state): State<AppState>,
    team: Team,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Module>), ApiError> {
    let bytes = body.map_err(|rejection| ApiError::body(rejection, &super::modules_limit()))?;
    if bytes.is_empty() {
        return Err(ApiError::Unprocessable {
            code: "invalid_module",
            message: "the body is empty; send the .wasm file as the request body".into(),
        });
    }
    let module = state
        .sandbox
        .upload(team.id, bytes.clone())
        .await
        .map_err(ApiError::Busy)??
        .map_err(|e| {
            // The compiler failing to start, or the runtime failing, is the
            // service's problem, not the module's: a 500, logged.
            if e.is_module_fault() {
                ApiError::Unprocessable {
                    code: e.code(),
                    message: e.to_string(),
                }
            } else {
                ApiError::internal(e)
            }
        })?;
    let (record, created) = modules::store(&state.db, team.id, &bytes, &module).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(record)))
}

/// The team's modules, newest first.
#[utoipa::path(
    get, path = "/api/v1/modules", tag = "modules",
    responses((status = 200, body = ModuleList), (status = 401, body = ErrorBody))
)]
pub(super) async fn list(
    State(state): State<AppState>,
    team: Team,
) -> Result<Json<ModuleList>, ApiError> {
    let modules = modules::list(&state.db, team.id).await?;
    Ok(Json(ModuleList { modules }))
}

/// One of the team's modules.
#[utoipa::path(
    get, path = "/api/v1/modules/{id}", tag = "modules",
    params(("id" = i64, Path, description = "The module's id")),
    responses(
        (status = 200, body = Module),
        (status = 404, description = "No such module (another team's included)", body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub(super) async fn get(
    State(state): State<AppState>,
    team: Team,
    AppPath(id): AppPath<ModuleId>,
) -> Result<Json<Module>, ApiError> {
    modules::get(&state.db, team.id, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("no such module".into()))
}
