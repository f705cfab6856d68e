//! Extractors whose rejections answer in the API's error format, and the
//! bearer-token authentication ([`Team`] as an extractor).

use axum::extract::{FromRef, FromRequest, FromRequestParts};
use axum::http::request::Parts;
use sqlx::PgPool;

use super::error::ApiError;
use crate::db::teams;
use crate::domain::Team;

/// `axum::Json`, rejecting with [`ApiError`].
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct AppJson<T>(pub T);

/// `axum::extract::Path`, rejecting with [`ApiError`] (404).
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct AppPath<T>(pub T);

/// `axum::extract::Query`, rejecting with [`ApiError`] (422).
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct AppQuery<T>(pub T);

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
            .await?
            .ok_or_else(|| ApiError::Unauthorized("unknown or revoked token".into()))
    }
}
