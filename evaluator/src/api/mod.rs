//! The HTTP API under `/api/v1`: state, the router, the error format and
//! authentication. Every error body is `{"error": {"code", "message"}}`.

use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sqlx::PgPool;

use crate::db::teams::{self, Team};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The database; every request's data lives there.
    pub db: PgPool,
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
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .with_state(state)
}

async fn health(State(db): State<PgPool>) -> Result<Json<serde_json::Value>, ApiError> {
    sqlx::query("SELECT 1")
        .execute(&db)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(serde_json::json!({ "status": "ok" })))
}

async fn whoami(team: Team) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "team": team.name }))
}

/// An error as the client sees it.
#[derive(Debug)]
pub enum ApiError {
    /// `401 Unauthorized`: no token, a malformed header, or an unknown or revoked token.
    Unauthorized(String),
    /// `404 Not Found`: no such endpoint or id (another team's ids included).
    NotFound(String),
    /// `500 Internal Server Error`: logged in full, reported without detail.
    Internal(String),
}

impl ApiError {
    fn internal(error: impl std::fmt::Display) -> Self {
        ApiError::Internal(error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m),
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
