//! The HTTP API under `/api/v1`: state, the router, the error format and
//! authentication. Every error body is `{"error": {"code", "message"}}`.
//!
//! - this file: [`app`] (every route), modules, [`ApiError`], the [`Team`] extractor;
//! - [`data`]: datasets, generation imports, systems, results;
//! - [`jobs`]: scoring runs, comparisons, status, cancellation, pairwise results;
//! - `openapi.json` beside this file: the document served at `/api/v1/openapi.json`.

mod data;
mod jobs;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, FromRef, FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use reward_host::Host;
use sqlx::PgPool;

use crate::db::modules::{self, ModuleRecord};
use crate::db::teams::{self, Team};

/// The largest module upload accepted; larger bodies get 413 before any parsing.
pub const MAX_MODULE_BYTES: usize = 32 << 20;

/// The largest generations file accepted in one request.
pub const MAX_IMPORT_BYTES: usize = 256 << 20;

/// The OpenAPI 3.1 document of this API, kept beside the router and checked
/// against it by a test.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The database; every request's data lives there.
    pub db: PgPool,
    /// The sandbox: uploads are loaded in it before they are stored.
    pub host: Arc<Host>,
}

impl FromRef<AppState> for Arc<Host> {
    fn from_ref(state: &AppState) -> Self {
        state.host.clone()
    }
}

impl FromRef<AppState> for PgPool {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

/// The application, without a listener: tests drive it with `oneshot`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/whoami", get(whoami))
        .route(
            "/api/v1/modules",
            get(list_modules)
                .post(upload_module)
                .layer(DefaultBodyLimit::max(MAX_MODULE_BYTES)),
        )
        .route("/api/v1/modules/{id}", get(get_module))
        .route("/api/v1/datasets", get(data::list_datasets))
        .route("/api/v1/datasets/{dataset}", get(data::get_dataset))
        .route(
            "/api/v1/datasets/{dataset}/generations",
            post(data::import_generations).layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
        .route("/api/v1/datasets/{dataset}/results", get(data::results))
        .route("/api/v1/systems", get(data::list_systems))
        .route("/api/v1/systems/{system}/metadata", put(data::set_metadata))
        .route("/api/v1/jobs", get(jobs::list))
        .route("/api/v1/jobs/score", post(jobs::create_score))
        .route("/api/v1/jobs/compare", post(jobs::create_compare))
        .route("/api/v1/jobs/{id}", get(jobs::get))
        .route("/api/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/api/v1/jobs/{id}/pairs", get(jobs::pairs))
        .route("/api/v1/jobs/{id}/leaderboard", get(jobs::job_leaderboard))
        .route(
            "/api/v1/datasets/{dataset}/leaderboard",
            get(jobs::dataset_leaderboard),
        )
        .route("/api/v1/openapi.json", get(openapi))
        .merge(crate::pages::router())
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        // A bug must not take the server down: a panicking handler answers 500
        // in the usual error format and the connection's task goes on.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                ApiError::Internal("a request handler panicked".into()).into_response()
            },
        ))
        .with_state(state)
}

async fn health(State(db): State<PgPool>) -> Result<Json<serde_json::Value>, ApiError> {
    sqlx::query("SELECT 1")
        .execute(&db)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(serde_json::json!({ "status": "ok" })))
}

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

async fn whoami(team: Team) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "team": team.name }))
}

/// `POST /api/v1/modules`: the raw wasm as the body. Loaded in the sandbox first
/// (compiled, imports audited, `info()` checked); only a module that loads is
/// stored. 201 with the record when new, 200 with the existing record when the
/// team had uploaded the same bytes.
async fn upload_module(
    State(state): State<AppState>,
    team: Team,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ModuleRecord>), ApiError> {
    let bytes = body.map_err(|rejection| match rejection {
        BytesRejection::FailedToBufferBody(_) => ApiError::PayloadTooLarge(format!(
            "modules are limited to {} MiB",
            MAX_MODULE_BYTES >> 20
        )),
        other => ApiError::BadRequest(other.body_text()),
    })?;
    if bytes.is_empty() {
        return Err(ApiError::Unprocessable {
            code: "invalid_module",
            message: "the body is empty; send the .wasm file as the request body".into(),
        });
    }
    let host = state.host.clone();
    let to_load = bytes.clone();
    // Compiling is CPU-bound and can take a while: off the async workers.
    let module = tokio::task::spawn_blocking(move || host.load(&to_load))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::Unprocessable {
            code: e.code(),
            message: e.to_string(),
        })?;
    let (record, created) = modules::store(&state.db, team.id, &bytes, &module)
        .await
        .map_err(ApiError::internal)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(record)))
}

async fn list_modules(
    State(db): State<PgPool>,
    team: Team,
) -> Result<Json<serde_json::Value>, ApiError> {
    let list = modules::list(&db, team.id)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(serde_json::json!({ "modules": list })))
}

async fn get_module(
    State(db): State<PgPool>,
    team: Team,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<ModuleRecord>, ApiError> {
    let id = path(id, "module")?;
    modules::get(&db, team.id, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("no such module".into()))
}

/// An error as the client sees it.
#[derive(Debug)]
pub enum ApiError {
    /// `401 Unauthorized`: no token, a malformed header, or an unknown or revoked token.
    Unauthorized(String),
    /// `400 Bad Request`: a request that cannot be read at all.
    BadRequest(String),
    /// `404 Not Found`: no such endpoint or id (another team's ids included).
    NotFound(String),
    /// `409 Conflict`: the request contradicts what is stored (immutable data).
    Conflict(String),
    /// `413 Payload Too Large`: the body is over the endpoint's limit.
    PayloadTooLarge(String),
    /// `422 Unprocessable Entity`: well-formed but invalid content (a module the
    /// sandbox refuses; `code` is the sandbox's error code).
    Unprocessable {
        /// Machine-readable cause.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// `500 Internal Server Error`: logged in full, reported without detail.
    Internal(String),
}

impl ApiError {
    fn internal(error: impl std::fmt::Display) -> Self {
        ApiError::Internal(error.to_string())
    }

    fn invalid(message: impl Into<String>) -> Self {
        ApiError::Unprocessable {
            code: "invalid_request",
            message: message.into(),
        }
    }
}

impl From<crate::Error> for ApiError {
    fn from(error: crate::Error) -> Self {
        ApiError::internal(error)
    }
}

/// A path parameter that does not parse names nothing: 404 like an unknown id.
fn path<T>(value: Result<Path<T>, PathRejection>, what: &str) -> Result<T, ApiError> {
    value
        .map(|Path(v)| v)
        .map_err(|_| ApiError::NotFound(format!("no such {what}")))
}

/// A JSON body that does not parse: 422 naming the problem.
fn json_body<T>(
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiError> {
    body.map(|Json(v)| v).map_err(|rejection| {
        let status = rejection.status();
        let message = rejection.body_text();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(message)
        } else if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            ApiError::BadRequest(message)
        } else {
            ApiError::invalid(message)
        }
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m),
            ApiError::PayloadTooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", m),
            ApiError::Unprocessable { code, message } => {
                (StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error".to_string(),
                )
            }
        };
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        (status, Json(body)).into_response()
    }
}

impl<S> FromRequestParts<S> for Team
where
    PgPool: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::Unauthorized("missing `Authorization: Bearer <token>`".into())
            })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
            })?;
        let db = PgPool::from_ref(state);
        teams::authenticate(&db, token.trim())
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::Unauthorized("unknown or revoked token".into()))
    }
}
