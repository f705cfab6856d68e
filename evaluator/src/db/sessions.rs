//! Browser sessions: opened with a team token, named by a random id that only
//! the browser's cookie holds (the table keeps its SHA-256), ended by signing
//! out, by expiry, or by revoking the token they were opened with.

use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::db;
use crate::domain::{Team, TeamId};
use crate::error::{Error, Result};

/// How long a session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// Opens a session for the team owning an active `token`; returns the session
/// id (for the cookie) and the team, or `None` for an unknown or revoked token.
pub async fn open(pool: &PgPool, token: &str) -> Result<Option<(String, Team)>> {
    let id = new_session_id()?;
    // Expired sessions are swept here, the only place sessions are created.
    sqlx::query("DELETE FROM sessions WHERE expires_at < now()")
        .execute(pool)
        .await
        .map_err(db("sweep sessions"))?;
    let team: Option<(TeamId, String)> = sqlx::query_as(
        "WITH opened AS ( \
           INSERT INTO sessions (id_sha256, team_id, token_id, expires_at) \
           SELECT $1, k.team_id, k.id, now() + make_interval(secs => $3) FROM api_tokens k \
           WHERE k.token_sha256 = $2 AND k.revoked_at IS NULL \
           RETURNING team_id) \
         SELECT t.id, t.name FROM opened o JOIN teams t ON t.id = o.team_id",
    )
    .bind(hash(&id).as_slice())
    .bind(hash(token.trim()).as_slice())
    .bind(SESSION_TTL.as_secs_f64())
    .fetch_optional(pool)
    .await
    .map_err(db("open session"))?;
    Ok(team.map(|(id_, name)| (id, Team { id: id_, name })))
}

/// The team of a live session, if `session_id` names one.
pub async fn team(pool: &PgPool, session_id: &str) -> Result<Option<Team>> {
    let row: Option<(TeamId, String)> = sqlx::query_as(
        "SELECT t.id, t.name FROM sessions s \
         JOIN teams t ON t.id = s.team_id \
         JOIN api_tokens k ON k.id = s.token_id \
         WHERE s.id_sha256 = $1 AND s.expires_at > now() AND k.revoked_at IS NULL",
    )
    .bind(hash(session_id).as_slice())
    .fetch_optional(pool)
    .await
    .map_err(db("find session"))?;
    Ok(row.map(|(id, name)| Team { id, name }))
}

/// Ends a session (nothing happens for an unknown id).
pub async fn close(pool: &PgPool, session_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE id_sha256 = $1")
        .bind(hash(session_id).as_slice())
        .execute(pool)
        .await
        .map_err(db("close session"))?;
    Ok(())
}

fn new_session_id() -> Result<String> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|source| Error::Randomness {
        what: "a session id",
        source,
    })?;
    Ok(hex::encode(secret))
}

fn hash(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}
