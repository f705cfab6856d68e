-- Datasets, their items, systems and the generations of systems on items.
--
-- An item is identified within its dataset by a key: the `id` a canonical line
-- gives, or else the prompt text itself. Generations of different systems are
-- aligned through that key, never through their position in a file.

CREATE TABLE datasets (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    team_id     BIGINT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (team_id, name)
);

CREATE TABLE items (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id  BIGINT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    prompt      TEXT NOT NULL,
    reference   TEXT,
    fields      JSONB NOT NULL DEFAULT '{}'::jsonb,
    UNIQUE (dataset_id, key)
);

-- A system is a model, checkpoint or mixture whose generations are evaluated;
-- `metadata` carries what tells systems apart (checkpoint step, mixing weight λ, ...).
CREATE TABLE systems (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    team_id     BIGINT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.:+=-]{0,127}$'),
    metadata    JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (team_id, name)
);

-- Immutable once written: re-pushing the same response is a no-op, a different
-- one is refused.
CREATE TABLE generations (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id  BIGINT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    system_id   BIGINT NOT NULL REFERENCES systems (id) ON DELETE CASCADE,
    item_id     BIGINT NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    response    TEXT NOT NULL,
    -- Numbers an importer found beside the response (ALaRM's precomputed rewards).
    extra       JSONB NOT NULL DEFAULT '{}'::jsonb,
    UNIQUE (system_id, item_id)
);

CREATE INDEX generations_dataset_system ON generations (dataset_id, system_id);
CREATE INDEX generations_item ON generations (item_id);
