-- The running summaries (20261122000005) start empty, so scores and outcomes
-- written before that migration were missing from them: rebuilt here from the
-- rows themselves. Later chunks keep them up to date in their own transactions;
-- TRUNCATE's lock makes a chunk committing meanwhile wait, then add its rows.

TRUNCATE score_summaries;
INSERT INTO score_summaries (dataset_id, system_id, module_id, metric, n, nulls, mean, m2)
SELECT g.dataset_id, g.system_id, s.module_id, s.metric,
       count(s.value), count(*) - count(s.value),
       coalesce(avg(s.value), 0), coalesce(var_pop(s.value) * count(s.value), 0)
FROM scores s JOIN generations g ON g.id = s.generation_id
GROUP BY g.dataset_id, g.system_id, s.module_id, s.metric;

TRUNCATE pair_summaries;
INSERT INTO pair_summaries (job_id, system_a, system_b, wins, losses, ties, inconsistent)
SELECT job_id, system_a, system_b,
       count(*) FILTER (WHERE outcome = 1), count(*) FILTER (WHERE outcome = -1),
       count(*) FILTER (WHERE outcome = 0),
       count(*) FILTER (WHERE b_first IS NOT NULL AND a_first <> b_first)
FROM pair_outcomes
GROUP BY job_id, system_a, system_b;
