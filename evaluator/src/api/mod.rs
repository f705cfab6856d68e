//! The HTTP API under `/api/v1`. Every error body is `{"error": {"code",
//! "message"}}`; every route is registered together with its OpenAPI
//! description (utoipa-axum's `routes!`), so the document served at
//! `/api/v1/openapi.json` is generated from the same handlers the router runs.
//!
//! - this file: [`router`], [`openapi`], health, whoami and the document;
//! - [`modules`]: uploads and the team's modules;
//! - [`data`]: datasets, generation imports, systems, results, the Pareto view;
//! - [`judgments`]: judgments made elsewhere, the dataset's judges, and the
//!   leaderboard against a fixed baseline;
//! - [`scores`]: scores made elsewhere (a learned reward model's) with their
//!   provenance;
//! - [`jobs`]: scoring runs, comparisons, status, cancellation, pairwise
//!   results and leaderboards;
//! - [`types`]: the wire types; [`error`]: [`ApiError`]; [`extract`]: the
//!   extractors that keep the error format, and bearer authentication.

mod data;
pub mod error;
pub mod extract;
mod jobs;
mod judgments;
mod modules;
mod scores;
pub mod types;

use std::sync::LazyLock;

use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use sqlx::PgPool;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

pub use error::ApiError;
use types::{ErrorBody, Health, WhoAmI};

use crate::domain::Team;
use crate::state::{AppState, MAX_IMPORT_BYTES, MAX_MODULE_BYTES};

/// The document's fixed parts; the paths and schemas come from the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "evaluator",
        description = "Scores model generations with sandboxed reward modules and compares \
                       systems pairwise. Every request but `health` and this document needs \
                       `Authorization: Bearer <token>` (`evaluator admin create-team`). Errors \
                       are `{\"error\": {\"code\", \"message\"}}`.",
    ),
    modifiers(&Bearer),
    components(schemas(ErrorBody)),
    security(("bearer" = []))
)]
struct Document;

struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every API route, with its documentation.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(Document::openapi())
        .routes(routes!(health))
        .routes(routes!(whoami))
        .routes(
            routes!(modules::list, modules::upload)
                .layer::<_, std::convert::Infallible>(axum::middleware::from_fn_with_state(
                    (MAX_MODULE_BYTES, modules_limit()),
                    refuse_declared_length,
                ))
                .layer(DefaultBodyLimit::max(MAX_MODULE_BYTES)),
        )
        .routes(routes!(modules::get))
        .routes(routes!(data::list_datasets))
        .routes(routes!(data::get_dataset))
        .routes(
            routes!(data::import_generations)
                .layer::<_, std::convert::Infallible>(axum::middleware::from_fn_with_state(
                    (MAX_IMPORT_BYTES, generations_limit()),
                    refuse_declared_length,
                ))
                .layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
        .routes(
            routes!(judgments::push)
                .layer::<_, std::convert::Infallible>(axum::middleware::from_fn_with_state(
                    (MAX_IMPORT_BYTES, generations_limit()),
                    refuse_declared_length,
                ))
                .layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
        .routes(
            routes!(scores::push)
                .layer::<_, std::convert::Infallible>(axum::middleware::from_fn_with_state(
                    (MAX_IMPORT_BYTES, generations_limit()),
                    refuse_declared_length,
                ))
                .layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
        .routes(routes!(judgments::list))
        .routes(routes!(judgments::leaderboard))
        .routes(routes!(data::results))
        .routes(routes!(data::pareto))
        .routes(routes!(data::list_systems))
        .routes(routes!(data::set_metadata))
        .routes(routes!(jobs::list))
        .routes(routes!(jobs::create_score))
        .routes(routes!(jobs::create_compare))
        .routes(routes!(jobs::get))
        .routes(routes!(jobs::cancel))
        .routes(routes!(jobs::pairs))
        .routes(routes!(jobs::job_leaderboard))
        .routes(routes!(jobs::dataset_leaderboard))
        .routes(routes!(document))
}

/// The 413 message of module uploads.
pub(crate) fn modules_limit() -> String {
    format!("modules are limited to {} MiB", MAX_MODULE_BYTES >> 20)
}

/// The 413 message of generation imports.
pub(crate) fn generations_limit() -> String {
    format!(
        "generation files are limited to {} MiB; split the file and push the parts to the same system",
        MAX_IMPORT_BYTES >> 20
    )
}

/// Answers 413 to a request whose `Content-Length` is over the limit before
/// its body is read. `DefaultBodyLimit` alone reads up to the limit
/// first and then closes the connection under a client still sending, which
/// sees a broken pipe instead of the answer; refused here, a client that sent
/// `Expect: 100-continue` (the CLI does for large bodies) gets the 413 before
/// sending anything.
async fn refuse_declared_length(
    State((limit, message)): State<(usize, String)>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return ApiError::PayloadTooLarge(message).into_response();
    }
    next.run(request).await
}

/// The OpenAPI 3.1 document of [`router`], built once.
pub fn openapi() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(|| router().into_openapi());
    &DOCUMENT
}

/// Whether the service and its database answer.
#[utoipa::path(
    get, path = "/api/v1/health", tag = "service", security(()),
    responses(
        (status = 200, description = "The database answers", body = Health),
        (status = 500, description = "It does not", body = ErrorBody),
    )
)]
async fn health(State(db): State<PgPool>) -> Result<Json<Health>, ApiError> {
    sqlx::query("SELECT 1")
        .execute(&db)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(Health {
        status: "ok".into(),
    }))
}

/// The team the token belongs to.
#[utoipa::path(
    get, path = "/api/v1/whoami", tag = "service",
    responses(
        (status = 200, body = WhoAmI),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
    )
)]
async fn whoami(team: Team) -> Json<WhoAmI> {
    Json(WhoAmI { team: team.name })
}

/// This document.
#[utoipa::path(
    get, path = "/api/v1/openapi.json", tag = "service", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
async fn document() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(openapi())
}
