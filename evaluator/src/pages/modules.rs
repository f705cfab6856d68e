//! `/modules`: the team's modules with their metrics and directions, and the
//! upload form. An upload goes through exactly what `POST /api/v1/modules`
//! does (loaded in the sandbox, then stored); a refusal is shown beside the form.

use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use web::views::ModulesPage;

use super::overview::module_row;
use super::{PageError, SignedIn, html};
use crate::db::modules;
use crate::domain::Team;
use crate::state::{AppState, MAX_MODULE_BYTES};

async fn page(
    state: &AppState,
    team: &Team,
    error: Option<String>,
    notice: Option<String>,
) -> Result<Response, PageError> {
    let list = modules::list(&state.db, team.id).await?;
    html(&ModulesPage {
        team: team.name.clone(),
        modules: list.iter().map(module_row).collect(),
        error,
        notice,
    })
}

/// `GET /modules`.
pub(super) async fn list(
    State(state): State<AppState>,
    SignedIn(team): SignedIn,
) -> Result<Response, PageError> {
    page(&state, &team, None, None).await
}

/// `POST /modules` (multipart, field `module`): the page again, with what
/// happened (`201` stored, `200` already stored, `422` refused and why).
pub(super) async fn upload(
    State(state): State<AppState>,
    SignedIn(team): SignedIn,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, PageError> {
    let mut bytes = None;
    match multipart {
        Ok(mut multipart) => loop {
            match multipart.next_field().await {
                Ok(Some(field)) if field.name() == Some("module") => match field.bytes().await {
                    Ok(b) => {
                        bytes = Some(b);
                        break;
                    }
                    Err(e) => return refused(&state, &team, upload_error(&e)).await,
                },
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(e) => return refused(&state, &team, upload_error(&e)).await,
            }
        },
        Err(e) => {
            return refused(
                &state,
                &team,
                format!("The upload could not be read: {}", e.body_text()),
            )
            .await;
        }
    }
    let Some(bytes) = bytes.filter(|b| !b.is_empty()) else {
        return refused(&state, &team, "Choose a .wasm file to upload.".into()).await;
    };
    let module = match state.sandbox.upload(team.id, bytes.clone()).await {
        Ok(loaded) => match loaded? {
            Ok(module) => module,
            Err(e) => return refused(&state, &team, format!("Refused ({}): {e}", e.code())).await,
        },
        Err(busy) => {
            let page = page(&state, &team, Some(format!("Not now: {busy}.")), None).await?;
            return Ok((StatusCode::SERVICE_UNAVAILABLE, page).into_response());
        }
    };
    let (record, created) = modules::store(&state.db, team.id, &bytes, &module).await?;
    let notice = if created {
        format!(
            "Stored {} {} as module #{}.",
            record.name, record.version, record.id
        )
    } else {
        format!(
            "Module #{} ({} {}) was already stored.",
            record.id, record.name, record.version
        )
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let page = page(&state, &team, None, Some(notice)).await?;
    Ok((status, page).into_response())
}

async fn refused(state: &AppState, team: &Team, message: String) -> Result<Response, PageError> {
    let page = page(state, team, Some(message), None).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

fn upload_error(error: &axum::extract::multipart::MultipartError) -> String {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        format!("Modules are limited to {} MiB.", MAX_MODULE_BYTES >> 20)
    } else {
        format!("The upload could not be read: {}", error.body_text())
    }
}
