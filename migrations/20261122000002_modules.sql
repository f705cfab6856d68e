-- Reward modules: immutable, content-addressed by the SHA-256 of the uploaded
-- bytes, owned by a team. A module is stored only after the sandbox loaded it and
-- checked its info(), so every row here is a module that runs.

CREATE TABLE modules (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    team_id      BIGINT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    sha256       BYTEA NOT NULL CHECK (length(sha256) = 32),
    name         TEXT NOT NULL,
    version      TEXT NOT NULL,
    description  TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('scorer', 'judge')),
    wasm         BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (team_id, sha256)
);

CREATE TABLE module_metrics (
    module_id    BIGINT NOT NULL REFERENCES modules (id) ON DELETE CASCADE,
    position     INT NOT NULL CHECK (position >= 0),
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    direction    TEXT NOT NULL CHECK (direction IN ('higher-is-better', 'lower-is-better')),
    PRIMARY KEY (module_id, position),
    UNIQUE (module_id, name)
);
