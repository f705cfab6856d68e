-- Teams and their API tokens. Applied migrations are never edited (sqlx records
-- their checksums): later changes go in new files.

CREATE TABLE teams (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Only a token's SHA-256 is stored; the token itself is shown once, at creation.
CREATE TABLE api_tokens (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    team_id       BIGINT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    token_sha256  BYTEA NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    -- The first characters of the token, so people can tell tokens apart.
    prefix        TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at    TIMESTAMPTZ
);

CREATE INDEX api_tokens_team ON api_tokens (team_id);
