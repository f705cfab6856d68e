-- Jobs, the durable queue of their chunks, and what the chunks produce.
--
-- A job (a scoring run or a pairwise comparison) is split into chunks when it is
-- created. Workers claim chunks with FOR UPDATE SKIP LOCKED under a lease they
-- renew by heartbeat; a chunk whose lease ran out is claimed again under a new
-- attempt number. A chunk's results, its completion and the job's progress are
-- committed in one transaction that first checks the attempt number, so a worker
-- that lost its lease cannot write (fencing) and a retried chunk never
-- duplicates or loses a row.

CREATE TABLE jobs (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    team_id         BIGINT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    dataset_id      BIGINT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('score', 'compare')),
    state           TEXT NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    -- Compare jobs: the judge module, and for a scorer judge the metric (its
    -- position in the module's metrics) whose direction decides.
    judge_module_id BIGINT REFERENCES modules (id),
    judge_metric    INT,
    total_chunks    INT NOT NULL,
    done_chunks     INT NOT NULL DEFAULT 0,
    total_units     BIGINT NOT NULL,
    done_units      BIGINT NOT NULL DEFAULT 0,
    error_code      TEXT,
    error           TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ,
    CHECK ((kind = 'compare') = (judge_module_id IS NOT NULL))
);

CREATE INDEX jobs_team ON jobs (team_id, id DESC);

-- Scorer modules of a score job, and the systems of either kind.
CREATE TABLE job_modules (
    job_id     BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    module_id  BIGINT NOT NULL REFERENCES modules (id),
    PRIMARY KEY (job_id, module_id)
);

CREATE TABLE job_systems (
    job_id     BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    system_id  BIGINT NOT NULL REFERENCES systems (id),
    PRIMARY KEY (job_id, system_id)
);

-- The queue. A score chunk is (module, generations); a compare chunk is
-- (system a, system b, items).
CREATE TABLE job_chunks (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id            BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    state             TEXT NOT NULL DEFAULT 'queued'
                      CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    module_id         BIGINT REFERENCES modules (id),
    generation_ids    BIGINT[],
    system_a          BIGINT REFERENCES systems (id),
    system_b          BIGINT REFERENCES systems (id),
    item_ids          BIGINT[],
    units             INT NOT NULL,
    attempts          INT NOT NULL DEFAULT 0,
    max_attempts      INT NOT NULL DEFAULT 5,
    run_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_expires_at  TIMESTAMPTZ,
    worker            TEXT,
    last_error        TEXT,
    CHECK ((generation_ids IS NULL) <> (item_ids IS NULL))
);

CREATE INDEX job_chunks_ready ON job_chunks (run_at, id) WHERE state = 'queued';
CREATE INDEX job_chunks_leased ON job_chunks (lease_expires_at) WHERE state = 'running';
CREATE INDEX job_chunks_job ON job_chunks (job_id);

-- A score is a deterministic function of (module bytes, generation), so one row
-- per (generation, module, metric) serves every job that asks for it.
CREATE TABLE scores (
    generation_id  BIGINT NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
    module_id      BIGINT NOT NULL REFERENCES modules (id) ON DELETE CASCADE,
    metric         INT NOT NULL,
    value          DOUBLE PRECISION,
    job_id         BIGINT REFERENCES jobs (id) ON DELETE SET NULL,
    PRIMARY KEY (generation_id, module_id, metric)
);

CREATE INDEX scores_module ON scores (module_id, metric);

-- Per-item pairwise outcomes, from a's point of view: 1 a preferred, -1 b
-- preferred, 0 tie. A judge module is asked in both presentation orders
-- (`a_first`: a shown first; `b_first`: b shown first); a metric judge has one
-- verdict and `b_first` is NULL. `outcome` is what counts (ALaRM's rule: a win
-- only when both orders agree).
CREATE TABLE pair_outcomes (
    job_id    BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    system_a  BIGINT NOT NULL REFERENCES systems (id),
    system_b  BIGINT NOT NULL REFERENCES systems (id),
    item_id   BIGINT NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    a_first   SMALLINT NOT NULL CHECK (a_first IN (-1, 0, 1)),
    b_first   SMALLINT CHECK (b_first IN (-1, 0, 1)),
    outcome   SMALLINT NOT NULL CHECK (outcome IN (-1, 0, 1)),
    PRIMARY KEY (job_id, system_a, system_b, item_id)
);
