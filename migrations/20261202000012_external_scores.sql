-- Per-item scores computed outside the sandbox (a learned reward model run
-- by `trainer score`), stored with where they came from so that a page can
-- tell them apart from the sandboxed modules' `scores`.
--
-- A metric is named per dataset and bound to one model by its sha256: every
-- system's scores under that name come from the same weights, so their means
-- are on one scale and can be ranked. A push of another model under the name
-- is refused (`db::scores`); a push of the same model for a system replaces
-- that system's set (values and provenance) in one transaction.
CREATE TABLE external_metrics (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id  BIGINT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    -- No '/': module metrics are keyed `<module>/<metric>`, so a learned
    -- metric's name never reads as one of theirs.
    name        TEXT NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.:+=-]{0,63}$'),
    -- What produced the scores; only learned reward models so far.
    source      TEXT NOT NULL CHECK (source IN ('reward_model')),
    -- The model's hash as `trainer score` reports it (head + adapter).
    sha256      TEXT NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (dataset_id, name)
);

-- One system's scores under a metric: the provenance of the push (the
-- `.provenance.json` beside the scores file, kept field by field), who pushed
-- it, and the summary the results read (evaluator-stats' Summary of the
-- values, computed once at push: reading results stays O(systems × metrics)).
CREATE TABLE external_score_sets (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    metric_id    BIGINT NOT NULL REFERENCES external_metrics (id) ON DELETE CASCADE,
    system_id    BIGINT NOT NULL REFERENCES systems (id) ON DELETE CASCADE,
    -- The reward model's directory on the machine that scored.
    model        TEXT NOT NULL,
    -- The command line that wrote the scores.
    command      TEXT NOT NULL,
    -- The generations file it read.
    input        TEXT NOT NULL,
    -- Lines the provenance says were scored (checked against the file).
    lines        BIGINT NOT NULL CHECK (lines > 0),
    -- The file's name as the client gave it.
    file         TEXT NOT NULL,
    n            BIGINT NOT NULL CHECK (n > 0),
    mean         DOUBLE PRECISION NOT NULL,
    stderr       DOUBLE PRECISION NOT NULL,
    -- The prefix of the token that pushed (what `admin list-tokens` shows).
    imported_by  TEXT NOT NULL,
    imported_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (metric_id, system_id)
);

CREATE INDEX external_score_sets_system ON external_score_sets (system_id);

-- The values, per generation (so per item: the set fixes the system). A
-- learned reward has a value for every line it scored; NaN is refused at
-- the edge, so there is no NULL here.
CREATE TABLE external_scores (
    set_id         BIGINT NOT NULL REFERENCES external_score_sets (id) ON DELETE CASCADE,
    generation_id  BIGINT NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
    -- Finite: `< 'Infinity'` also excludes NaN, which PostgreSQL orders
    -- above every number.
    value          DOUBLE PRECISION NOT NULL CHECK (value > '-Infinity' AND value < 'Infinity'),
    PRIMARY KEY (set_id, generation_id)
);

CREATE INDEX external_scores_generation ON external_scores (generation_id);
