//! PostgreSQL: the connection pool, the embedded migrations, and the embedded
//! default server; a file per area (`scores`: learned rewards pushed with
//! their provenance).

pub mod datasets;
pub mod embedded;
pub mod judgments;
pub mod modules;
pub mod results;
pub mod review;
pub mod scores;
pub mod sessions;
pub mod teams;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::error::{Error, Result};

/// Every migration in the repository's `migrations/`, embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Connects to `url` and applies pending migrations.
pub async fn connect(url: &str) -> Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|source| Error::Connect {
            url: redact(url),
            source,
        })?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// Maps a sqlx error to [`Error::Database`], saying what was being done (the
/// error itself is kept as the source).
pub(crate) fn db(context: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |source| Error::Database { context, source }
}

/// Whether a name can be looked up at all: PostgreSQL text cannot hold U+0000,
/// so a name containing it names nothing (and must not reach a query, which
/// would fail instead of finding nothing).
pub(crate) fn searchable(name: &str) -> bool {
    !name.contains('\0')
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
