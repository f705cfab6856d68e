-- Running aggregates, maintained in the same transaction as the rows they
-- summarize, so reading results costs O(systems × metrics) however many items a
-- dataset has.
--
-- score_summaries: per (dataset, system, module, metric) the count of values,
-- the count of nulls, the mean and M2 (the sum of squared deviations from the
-- mean), merged chunk by chunk with Chan et al.'s pairwise update; the standard
-- error is sqrt(M2 / (n - 1)) / sqrt(n).
CREATE TABLE score_summaries (
    dataset_id  BIGINT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    system_id   BIGINT NOT NULL REFERENCES systems (id) ON DELETE CASCADE,
    module_id   BIGINT NOT NULL REFERENCES modules (id) ON DELETE CASCADE,
    metric      INT NOT NULL,
    n           BIGINT NOT NULL,
    nulls       BIGINT NOT NULL,
    mean        DOUBLE PRECISION NOT NULL,
    m2          DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (dataset_id, system_id, module_id, metric)
);

-- pair_summaries: per comparison and pair, the counts of pair_outcomes.
CREATE TABLE pair_summaries (
    job_id        BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    system_a      BIGINT NOT NULL REFERENCES systems (id),
    system_b      BIGINT NOT NULL REFERENCES systems (id),
    wins          BIGINT NOT NULL,
    losses        BIGINT NOT NULL,
    ties          BIGINT NOT NULL,
    inconsistent  BIGINT NOT NULL,
    PRIMARY KEY (job_id, system_a, system_b)
);
