//! The web pages: routes and handlers that query [`crate::db`] and render the
//! `web` crate's templates. Presentation (templates, charts, CSS, htmx) lives
//! in `web`; this module only decides what each page shows and for whom.
//!
//! - this file: [`router`] (every page's address), [`SignedIn`] (the session
//!   extractor: no session, a redirect to `/login`), [`PageError`] (404 and
//!   500 pages), the static files;
//! - [`auth`]: `/login`, `/logout` and the session cookie;
//! - [`overview`]: `/` and the jobs fragment htmx polls;
//! - [`modules`]: `/modules`, the list and the upload form;
//! - [`results`]: `/datasets/{dataset}`, its CSV and JSON exports, the job forms;
//! - [`winrates`]: `/datasets/{dataset}/winrates`, the heatmap and leaderboard;
//! - [`pareto`]: `/datasets/{dataset}/pareto`, the scatter with the sweeps overlaid, the
//!   fronts and hypervolumes;
//! - [`leaderboard`]: `/datasets/{dataset}/leaderboard`, an external judge's
//!   judgments against a baseline (AlpacaEval's columns, LC against length);
//! - [`compare`]: `/datasets/{dataset}/compare`, two systems side by side.
//!
//! Every handler takes [`SignedIn`] and reads only that team's rows; a
//! dataset, system or job of another team answers the same 404 as an unknown one.

mod auth;
mod compare;
mod leaderboard;
mod modules;
mod overview;
mod pareto;
mod results;
mod winrates;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use sqlx::PgPool;
use web::Template;
use web::paths;
use web::views::{JobRow, MessagePage};

use crate::db::datasets;
use crate::db::sessions;
use crate::domain::{DatasetId, Job, JobKind, Team};
use crate::state::{AppState, MAX_MODULE_BYTES};
use crate::telemetry::ErrorReport;

pub use auth::SESSION_COOKIE;

/// Every page, merged with the API by [`crate::startup::app`].
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/", get(overview::overview))
        .route("/fragments/jobs", get(overview::jobs_fragment))
        .route(
            "/modules",
            get(modules::list)
                .post(modules::upload)
                .layer(DefaultBodyLimit::max(MAX_MODULE_BYTES + (1 << 20))),
        )
        .route("/datasets/{dataset}", get(results::page))
        .route("/datasets/{dataset}/results.csv", get(results::csv))
        .route("/datasets/{dataset}/results.json", get(results::json))
        .route("/datasets/{dataset}/jobs", post(results::create_job))
        .route("/datasets/{dataset}/winrates", get(winrates::page))
        .route("/datasets/{dataset}/pareto", get(pareto::page))
        .route("/datasets/{dataset}/leaderboard", get(leaderboard::page))
        .route("/datasets/{dataset}/compare", get(compare::page))
        .route("/static/{name}", get(static_file))
}

/// The team of the request's session cookie. Without a live session the
/// request is redirected to `/login` (htmx requests get `HX-Redirect`, so a
/// poll whose session expired takes the whole page there).
#[derive(Debug, Clone)]
pub struct SignedIn(pub Team);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(id) = auth::session_cookie(&parts.headers) else {
            return Err(PageError::SignIn);
        };
        sessions::team(&state.db, &id)
            .await?
            .map(SignedIn)
            .ok_or(PageError::SignIn)
    }
}

/// What a page handler can fail with.
#[derive(Debug)]
pub enum PageError {
    /// `303 See Other` to `/login`: no live session.
    SignIn,
    /// `404 Not Found`: an unknown dataset, system or job (another team's
    /// included), shown as a page.
    NotFound {
        /// The signed-in team (for the page's header).
        team: String,
        /// What was not found.
        message: String,
    },
    /// `500 Internal Server Error`: shown without detail; the error is logged
    /// with its causes by [`crate::telemetry::log_errors`].
    Internal(std::sync::Arc<dyn std::error::Error + Send + Sync>),
}

impl PageError {
    fn not_found(team: &Team, message: impl Into<String>) -> Self {
        PageError::NotFound {
            team: team.name.clone(),
            message: message.into(),
        }
    }
}

impl PageError {
    fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        PageError::Internal(std::sync::Arc::new(error))
    }
}

impl From<crate::Error> for PageError {
    fn from(error: crate::Error) -> Self {
        PageError::internal(error)
    }
}

impl From<web::TemplateError> for PageError {
    fn from(error: web::TemplateError) -> Self {
        PageError::internal(error)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn => {
                let mut response = Redirect::to("/login").into_response();
                response
                    .headers_mut()
                    .insert("hx-redirect", HeaderValue::from_static("/login"));
                response
            }
            PageError::NotFound { team, message } => {
                let page = MessagePage {
                    team,
                    title: "Not found".into(),
                    message,
                };
                (StatusCode::NOT_FOUND, render_page(&page)).into_response()
            }
            PageError::Internal(error) => {
                let page = MessagePage {
                    team: String::new(),
                    title: "Something went wrong".into(),
                    message: "The error was logged; try again, or tell the service's operators."
                        .into(),
                };
                let mut response =
                    (StatusCode::INTERNAL_SERVER_ERROR, render_page(&page)).into_response();
                response.extensions_mut().insert(ErrorReport(error));
                response
            }
        }
    }
}

/// A page's HTML, or a plain message when the template itself fails.
fn render_page<T: Template>(page: &T) -> Response {
    match page.render() {
        Ok(html) => (
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            Html(html),
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// Renders a page: `200` with `Cache-Control: no-store` (pages show one team's
/// data and must not outlive its session in a shared cache).
fn html<T: Template>(page: &T) -> Result<Response, PageError> {
    let body = page.render()?;
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Html(body),
    )
        .into_response())
}

/// A dataset the signed-in team owns.
#[derive(Debug, Clone)]
struct Dataset {
    id: DatasetId,
    name: String,
}

/// The team's dataset named in the path, or the 404 page. (By id alone: the
/// counts of [`datasets::find`] cost a scan of the generations.)
async fn dataset(
    db: &PgPool,
    team: &Team,
    name: Result<Path<String>, PathRejection>,
) -> Result<Dataset, PageError> {
    // A name PostgreSQL text cannot hold (U+0000) names nothing.
    let Some(name) = name.ok().map(|Path(n)| n).filter(|n| !n.contains('\0')) else {
        return Err(PageError::not_found(team, "No such dataset."));
    };
    match datasets::find_id(db, team.id, &name).await? {
        Some(id) => Ok(Dataset { id, name }),
        None => Err(PageError::not_found(
            team,
            format!("Your team has no dataset `{name}`."),
        )),
    }
}

/// A job as the pages list it, linked to where its results are.
fn job_row(job: &Job) -> JobRow {
    let percent = if job.total_units > 0 {
        (job.done_units * 100 / job.total_units).clamp(0, 100)
    } else if job.is_finished() {
        100
    } else {
        0
    };

    JobRow {
        id: job.id.0,
        kind: job.kind.as_str().into(),
        state: job.state.as_str().into(),
        dataset: job.dataset.clone(),
        done: job.done_units,
        total: job.total_units,
        percent,
        error: match (&job.error_code, &job.error) {
            (Some(code), Some(error)) => Some(format!("{code}: {error}")),
            (None, Some(error)) => Some(error.clone()),
            (Some(code), None) => Some(code.clone()),
            (None, None) => None,
        },
        created: job.created_at.replace('T', " ").chars().take(19).collect(),
        href: if job.kind == JobKind::Compare {
            format!("{}?job={}", paths::winrates(&job.dataset), job.id)
        } else {
            paths::dataset(&job.dataset)
        },
    }
}

/// `GET /static/{name}`: the `web` crate's assets, cached for a year (their
/// URLs carry a version).
async fn static_file(Path(name): Path<String>) -> Response {
    match web::assets::get(&name) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CACHE_CONTROL, asset.cache_control),
            ],
            asset.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
