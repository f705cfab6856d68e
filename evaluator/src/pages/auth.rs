//! Signing in and out. `POST /login` with a team token opens a session
//! ([`crate::db::sessions`]) and sets its id in a cookie the page scripts cannot
//! read (`HttpOnly`) and other sites' forms do not send (`SameSite=Lax`, which
//! is also what keeps the pages' POST forms from being forged cross-site).

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sqlx::PgPool;
use web::views::LoginPage;

use super::{PageError, html};
use crate::db::sessions::{self, SESSION_TTL};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "evaluator_session";

/// The session id in the request's cookies, if any.
pub(super) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|value| !value.is_empty() && value.len() <= 128)
}

fn set_cookie(value: &str, max_age: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}"
    ))
    .expect("a hex id and ASCII attributes make a valid header")
}

/// `GET /login`.
pub(super) async fn login_form() -> Result<Response, PageError> {
    html(&LoginPage {
        team: String::new(),
        error: None,
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    token: String,
}

/// `POST /login` (`token`): a session and `303` to `/`, or the form again
/// with `401`.
pub(super) async fn login(
    State(db): State<PgPool>,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    match sessions::open(&db, &form.token).await? {
        Some((id, _team)) => {
            let mut response = Redirect::to("/").into_response();
            response
                .headers_mut()
                .insert(header::SET_COOKIE, set_cookie(&id, SESSION_TTL.as_secs()));
            Ok(response)
        }
        None => {
            let page = html(&LoginPage {
                team: String::new(),
                error: Some("Unknown or revoked token.".into()),
            })?;
            Ok((StatusCode::UNAUTHORIZED, page).into_response())
        }
    }
}

/// `POST /logout`: deletes the session and the cookie, `303` to `/login`.
pub(super) async fn logout(
    State(db): State<PgPool>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    if let Some(id) = session_cookie(&headers) {
        sessions::close(&db, &id).await?;
    }
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie("", 0));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_is_found_among_other_cookies() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; evaluator_session=abc ; b=2"),
        );
        assert_eq!(session_cookie(&headers).as_deref(), Some("abc"));
        let mut none = HeaderMap::new();
        none.append(
            header::COOKIE,
            HeaderValue::from_static("evaluator_session_x=1"),
        );
        assert_eq!(session_cookie(&none), None);
    }

    #[test]
    fn the_cookie_is_http_only_same_site_and_expires() {
        let value = set_cookie("ff", 60);
        assert_eq!(
            value.to_str().unwrap(),
            "evaluator_session=ff; HttpOnly; SameSite=Lax; Path=/; Max-Age=60"
        );
    }
}
