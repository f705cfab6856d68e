-- The items each system of a job had answered on the job's dataset when the job
-- was created: a pair compared on fewer items than its systems answered (a
-- partial overlap) is shown as such, without counting generations on every read.
ALTER TABLE job_systems ADD COLUMN items BIGINT;

UPDATE job_systems js SET items = (
    SELECT count(*) FROM generations g JOIN jobs j ON j.dataset_id = g.dataset_id
    WHERE j.id = js.job_id AND g.system_id = js.system_id
);

ALTER TABLE job_systems ALTER COLUMN items SET NOT NULL;
