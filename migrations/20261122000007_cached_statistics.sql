-- Statistics that are expensive to fit but fixed once a comparison has
-- finished: stored the first time they are asked for, read afterwards.

-- The length-controlled win rate of each pair (NULL until computed, or when it
-- cannot be fitted).
ALTER TABLE pair_summaries
    ADD COLUMN lc_win_rate DOUBLE PRECISION,
    ADD COLUMN lc_computed BOOLEAN NOT NULL DEFAULT false;

-- The Bradley–Terry leaderboard of a finished comparison (seeded bootstrap, so
-- recomputing would give the same rows).
CREATE TABLE job_leaderboards (
    job_id     BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    system_id  BIGINT NOT NULL REFERENCES systems (id) ON DELETE CASCADE,
    rating     DOUBLE PRECISION NOT NULL,
    ci_low     DOUBLE PRECISION NOT NULL,
    ci_high    DOUBLE PRECISION NOT NULL,
    rank       INT NOT NULL,
    PRIMARY KEY (job_id, system_id)
);
