//! Teams and their API tokens.
//!
//! A token is `mrt_` followed by 64 hex digits (32 random bytes). Only its SHA-256
//! is stored, so a leaked database does not leak usable tokens; the token is
//! printed once, when created.

use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::db;
use crate::domain::{Team, TeamId};
use crate::error::{Error, Result};

const TOKEN_PREFIX: &str = "mrt_";

/// A validated team name: 1 to 64 characters of `[A-Za-z0-9_.-]`, starting with
/// a letter or digit (the same rule as the database's CHECK).
pub fn parse_team_name(name: &str) -> Result<&str> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(name)
    } else {
        Err(Error::Usage(format!(
            "team name {name:?} must be 1-64 characters of letters, digits, '_', '.' or '-', starting with a letter or digit"
        )))
    }
}

/// Creates a team and its first token; returns the token (shown once).
pub async fn create_team(pool: &PgPool, name: &str) -> Result<String> {
    let name = parse_team_name(name)?;
    let mut tx = pool.begin().await.map_err(db("begin"))?;
    let id: Option<TeamId> = sqlx::query_scalar(
        "INSERT INTO teams (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id",
    )
    .bind(name)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db("insert team"))?;
    let id = id.ok_or_else(|| Error::Usage(format!("a team named `{name}` already exists")))?;
    let token = new_token()?;
    insert_token(&mut tx, id, &token).await?;
    tx.commit().await.map_err(db("commit"))?;
    Ok(token)
}

/// Adds another token to an existing team (for rotation); returns it.
pub async fn create_token(pool: &PgPool, team: &str) -> Result<String> {
    let mut tx = pool.begin().await.map_err(db("begin"))?;
    let id: TeamId = sqlx::query_scalar("SELECT id FROM teams WHERE name = $1")
        .bind(team)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("find team"))?
        .ok_or_else(|| Error::Usage(format!("no team named `{team}`")))?;
    let token = new_token()?;
    insert_token(&mut tx, id, &token).await?;
    tx.commit().await.map_err(db("commit"))?;
    Ok(token)
}

/// Revokes a token; requests carrying it are refused from then on.
pub async fn revoke_token(pool: &PgPool, token: &str) -> Result<()> {
    let revoked = sqlx::query(
        "UPDATE api_tokens SET revoked_at = now() WHERE token_sha256 = $1 AND revoked_at IS NULL",
    )
    .bind(token_hash(token).as_slice())
    .execute(pool)
    .await
    .map_err(db("revoke token"))?
    .rows_affected();
    if revoked == 0 {
        return Err(Error::Usage(
            "no active token matches (unknown or already revoked)".into(),
        ));
    }
    Ok(())
}

/// The team owning an active token, if any.
pub async fn authenticate(pool: &PgPool, token: &str) -> Result<Option<Team>> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let row: Option<(TeamId, String)> = sqlx::query_as(
        "SELECT t.id, t.name FROM api_tokens k JOIN teams t ON t.id = k.team_id \
         WHERE k.token_sha256 = $1 AND k.revoked_at IS NULL",
    )
    .bind(token_hash(token).as_slice())
    .fetch_optional(pool)
    .await
    .map_err(db("authenticate"))?;
    Ok(row.map(|(id, name)| Team { id, name }))
}

async fn insert_token(tx: &mut sqlx::PgConnection, team_id: TeamId, token: &str) -> Result<()> {
    sqlx::query("INSERT INTO api_tokens (team_id, token_sha256, prefix) VALUES ($1, $2, $3)")
        .bind(team_id)
        .bind(token_hash(token).as_slice())
        .bind(&token[..TOKEN_PREFIX.len() + 8])
        .execute(tx)
        .await
        .map_err(db("insert token"))?;
    Ok(())
}

fn new_token() -> Result<String> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|source| Error::Randomness {
        what: "a token",
        source,
    })?;
    Ok(format!("{TOKEN_PREFIX}{}", hex::encode(secret)))
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_names_follow_the_documented_rule() {
        assert!(parse_team_name("mario-lab_2.0").is_ok());
        for bad in ["", "-lead", "has space", "é", &"x".repeat(65)] {
            assert!(parse_team_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tokens_are_prefixed_random_hex() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with("mrt_") && a.len() == 4 + 64);
        assert!(a[4..].chars().all(|c| c.is_ascii_hexdigit()));
    }
}
