-- Browser sessions of the web pages. Signing in with a team token creates a
-- row; the cookie carries a random session id of which only the SHA-256 is
-- stored (as with tokens, a leaked table opens no session). A session belongs
-- to the token it was opened with, so revoking or deleting the token ends it;
-- signing out deletes the row.
CREATE TABLE sessions (
    id_sha256   BYTEA PRIMARY KEY CHECK (length(id_sha256) = 32),
    team_id     BIGINT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    token_id    BIGINT NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX sessions_expires ON sessions (expires_at);
