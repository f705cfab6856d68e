-- Pairwise judgments made outside the service (an LLM judge run elsewhere,
-- AlpacaEval's annotations): per item, the probability that system_b's output
-- beats system_a's, stored as given. A judge is named per dataset; pushing
-- the same judgments again changes nothing, and every push that adds rows
-- bumps `version`, which keys the cached leaderboards below.
CREATE TABLE judges (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id  BIGINT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.:+=-]{0,127}$'),
    -- Where the judgments came from: the format, the annotator the file
    -- names, the files pushed; free-form beyond that.
    provenance  JSONB NOT NULL DEFAULT '{}'::jsonb,
    version     BIGINT NOT NULL DEFAULT 0,
    -- Judgments stored, kept by the imports (listing judges counts nothing).
    judgments   BIGINT NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (dataset_id, name)
);

CREATE TABLE judgments (
    judge_id    BIGINT NOT NULL REFERENCES judges (id) ON DELETE CASCADE,
    system_a    BIGINT NOT NULL REFERENCES systems (id) ON DELETE CASCADE,
    system_b    BIGINT NOT NULL REFERENCES systems (id) ON DELETE CASCADE,
    item_id     BIGINT NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    -- P(b's output is preferred) in [0, 1]; 0.5 a draw. NULL: the item was
    -- listed without a verdict (AlpacaEval's NaN), counted nowhere.
    preference  DOUBLE PRECISION CHECK (preference >= 0 AND preference <= 1),
    -- Whether the judge saw a's output first, when the file says.
    a_first     BOOLEAN,
    -- Small numbers the file gives beside the verdict (price, time).
    extra       JSONB NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (judge_id, system_a, system_b, item_id),
    CHECK (system_a <> system_b)
);

CREATE INDEX judgments_item ON judgments (item_id);

-- The leaderboard against one baseline, as computed from a judge's
-- judgments at `version` (the length-controlled fit takes seconds, so it is
-- computed once per version, on first read).
CREATE TABLE judge_leaderboards (
    judge_id     BIGINT NOT NULL REFERENCES judges (id) ON DELETE CASCADE,
    baseline_id  BIGINT NOT NULL REFERENCES systems (id) ON DELETE CASCADE,
    version      BIGINT NOT NULL,
    body         JSONB NOT NULL,
    computed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (judge_id, baseline_id)
);
