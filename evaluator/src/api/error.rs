//! [`ApiError`]: every way a request can fail, as the client sees it, and the
//! conversions from the extractors' rejections so that they keep the error
//! format.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::types::{ErrorBody, ErrorDetail};
use crate::telemetry::ErrorReport;

/// An error as the client sees it: a status and `{"error": {"code", "message"}}`.
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
    /// `503 Service Unavailable` with `Retry-After`: the compile queue has no
    /// place for this upload now.
    Busy(crate::modules::Busy),
    /// `500 Internal Server Error`: reported without detail; the error itself
    /// is logged, with its causes, by [`crate::telemetry::log_errors`].
    Internal(Arc<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// A 422 `invalid_request`.
    pub(super) fn invalid(message: impl Into<String>) -> Self {
        ApiError::Unprocessable {
            code: "invalid_request",
            message: message.into(),
        }
    }

    /// A 500 for an error of the service itself.
    pub(super) fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal(Arc::new(error))
    }

    /// A 413 when the body was over the limit, else a 400 with axum's words.
    pub(super) fn body(rejection: BytesRejection, limit: &str) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(limit.to_string())
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    }
}

impl From<crate::Error> for ApiError {
    fn from(error: crate::Error) -> Self {
        ApiError::internal(error)
    }
}

/// A JSON body that does not parse: 422 naming the problem (413 and 400 for a
/// body over the limit or of another content type).
impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let message = rejection.body_text();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(message)
        } else if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            ApiError::BadRequest(message)
        } else {
            ApiError::invalid(message)
        }
    }
}

/// A path parameter that does not parse names nothing: 404 like an unknown id.
impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        ApiError::NotFound("no such resource (ids are numbers)".into())
    }
}

/// A query string that does not parse: 422 with axum's words.
impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::invalid(rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut report = None;
        let mut retry_after = None;
        let (status, code, message) = match self {
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m),
            ApiError::PayloadTooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", m),
            ApiError::Unprocessable { code, message } => {
                (StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
            ApiError::Busy(busy) => {
                retry_after = Some(busy.retry_after.as_secs().max(1));
                (StatusCode::SERVICE_UNAVAILABLE, "busy", busy.to_string())
            }
            ApiError::Internal(error) => {
                report = Some(ErrorReport(error));
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error".to_string(),
                )
            }
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(report) = report {
            response.extensions_mut().insert(report);
        }
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
