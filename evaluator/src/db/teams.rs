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

/// A token as `evaluator admin list-tokens` shows it: never the token itself
/// (only its hash is stored), but the id and printed prefix that
/// [`revoke_token`] accepts.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct TokenRecord {
    /// The token's id.
    pub id: i64,
    /// The team's name.
    pub team: String,
    /// Its first characters (`mrt_` and 8 hex digits).
    pub prefix: String,
    /// When it was created (UTC, RFC 3339).
    pub created: String,
    /// When it was revoked, if it was.
    pub revoked: Option<String>,
}

const TOKEN_COLUMNS: &str = "k.id, t.name AS team, k.prefix, \
     to_char(k.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS created, \
     to_char(k.revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS revoked \
     FROM api_tokens k JOIN teams t ON t.id = k.team_id";

/// A team's tokens, oldest first, revoked ones included.
pub async fn list_tokens(pool: &PgPool, team: &str) -> Result<Vec<TokenRecord>> {
    let exists: Option<TeamId> = sqlx::query_scalar("SELECT id FROM teams WHERE name = $1")
        .bind(team)
        .fetch_optional(pool)
        .await
        .map_err(db("find team"))?;
    if exists.is_none() {
        return Err(Error::Usage(format!("no team named `{team}`")));
    }
    sqlx::query_as(&format!(
        "SELECT {TOKEN_COLUMNS} WHERE t.name = $1 ORDER BY k.id"
    ))
    .bind(team)
    .fetch_all(pool)
    .await
    .map_err(db("list tokens"))
}

/// How `revoke-token` was told which token: the whole token, its id, or the
/// prefix `list-tokens` prints (or the start of it).
#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenSpec<'a> {
    Whole(&'a str),
    Id(i64),
    Prefix(&'a str),
}

/// The length of a stored prefix: `mrt_` and 8 hex digits.
const PREFIX_LEN: usize = TOKEN_PREFIX.len() + 8;

/// The part of a token that is stored and shown (`list-tokens`' prefix):
/// what records who pushed something without keeping the secret.
pub fn token_prefix(token: &str) -> String {
    token.chars().take(PREFIX_LEN).collect()
}

fn parse_token_spec(spec: &str) -> Result<TokenSpec<'_>> {
    let whole_len = TOKEN_PREFIX.len() + 64;
    if !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_digit()) {
        return spec
            .parse()
            .map(TokenSpec::Id)
            .map_err(|_| Error::Usage(format!("token id {spec} is out of range")));
    }
    match spec.strip_prefix(TOKEN_PREFIX) {
        Some(_) if spec.len() == whole_len => Ok(TokenSpec::Whole(spec)),
        Some(rest)
            if !rest.is_empty()
                && spec.len() <= PREFIX_LEN
                && rest.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(TokenSpec::Prefix(spec))
        }
        _ => Err(Error::Usage(format!(
            "{spec:?} is not a token: give the whole token ({whole_len} characters), its id, or the \
             prefix `evaluator admin list-tokens TEAM` prints (`{TOKEN_PREFIX}` and up to 8 hex digits)"
        ))),
    }
}

/// Revokes a token given whole, by id, or by its printed prefix; requests
/// carrying it are refused from then on (and its page sessions end). A prefix
/// matching several active tokens is refused rather than guessed. Returns the
/// token revoked.
pub async fn revoke_token(pool: &PgPool, spec: &str) -> Result<TokenRecord> {
    let parsed = parse_token_spec(spec)?;
    let hash = match parsed {
        TokenSpec::Whole(token) => token_hash(token).to_vec(),
        _ => Vec::new(),
    };
    let (id, prefix) = match parsed {
        TokenSpec::Id(id) => (Some(id), None),
        TokenSpec::Prefix(prefix) => (None, Some(prefix)),
        TokenSpec::Whole(_) => (None, None),
    };
    let matches: Vec<TokenRecord> = sqlx::query_as(&format!(
        "SELECT {TOKEN_COLUMNS} WHERE CASE WHEN $2::bigint IS NOT NULL THEN k.id = $2 \
           WHEN $3::text IS NOT NULL THEN left(k.prefix, length($3)) = $3 \
           ELSE k.token_sha256 = $1 END \
         ORDER BY k.id"
    ))
    .bind(hash.as_slice())
    .bind(id)
    .bind(prefix)
    .fetch_all(pool)
    .await
    .map_err(db("find token"))?;
    let active: Vec<&TokenRecord> = matches.iter().filter(|t| t.revoked.is_none()).collect();
    let token = match active.as_slice() {
        [one] => (*one).clone(),
        [] if matches.is_empty() => {
            return Err(Error::Usage(format!(
                "no token matches {spec:?} (`evaluator admin list-tokens TEAM` lists a team's)"
            )));
        }
        [] => {
            return Err(Error::Usage(format!(
                "the token matching {spec:?} is already revoked"
            )));
        }
        several => {
            return Err(Error::Usage(format!(
                "prefix {spec:?} matches {} active tokens ({}); give more of it, the token's id or \
                 the whole token",
                several.len(),
                several
                    .iter()
                    .map(|t| format!("#{} {} of team `{}`", t.id, t.prefix, t.team))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    };
    // `revoked_at IS NULL` again: a concurrent revocation is not revoked twice.
    let revoked: Option<String> = sqlx::query_scalar(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL \
         RETURNING to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
    )
    .bind(token.id)
    .fetch_optional(pool)
    .await
    .map_err(db("revoke token"))?;
    match revoked {
        Some(revoked) => Ok(TokenRecord {
            revoked: Some(revoked),
            ..token
        }),
        None => Err(Error::Usage(format!(
            "the token matching {spec:?} is already revoked"
        ))),
    }
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
    fn a_token_is_named_whole_by_id_or_by_its_printed_prefix() {
        let token = new_token().unwrap();
        assert_eq!(parse_token_spec(&token).unwrap(), TokenSpec::Whole(&token));
        assert_eq!(parse_token_spec("42").unwrap(), TokenSpec::Id(42));
        assert_eq!(
            parse_token_spec(&token[..PREFIX_LEN]).unwrap(),
            TokenSpec::Prefix(&token[..PREFIX_LEN])
        );
        assert_eq!(
            parse_token_spec("mrt_ab").unwrap(),
            TokenSpec::Prefix("mrt_ab")
        );
        for bad in ["", "mrt_", "ab12", &token[..PREFIX_LEN + 1], "mrt_zz"] {
            let message = parse_token_spec(bad).unwrap_err().to_string();
            assert!(message.contains("is not a token"), "{bad:?}: {message}");
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
