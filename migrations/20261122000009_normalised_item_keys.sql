-- Items without a canonical `id` were keyed by their prompt exactly as a file
-- wrote it, so files spelling the same prompt with other whitespace or another
-- Unicode form did not align. New imports key them by the prompt normalised
-- (`evaluator::import::prompt_key`): Unicode NFC, every run of whitespace
-- (Unicode White_Space, the class below) replaced by one space, the ends
-- trimmed, case kept. This migration re-keys the stored items the same way.
--
-- The rule in SQL; a test checks it against the Rust one, and another reads the
-- class of whitespace below and compares it with `char::is_whitespace`.
CREATE FUNCTION item_prompt_key(prompt TEXT) RETURNS TEXT
LANGUAGE SQL IMMUTABLE STRICT PARALLEL SAFE
AS $$
SELECT btrim(
    regexp_replace(
        normalize(prompt, NFC),
        '[\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]+',
        ' ',
        'g'
    ),
    ' '
)
$$;

-- Prompt-keyed items (key = prompt; items keyed by an `id` keep their key) with
-- their new key and the item they merge into: the item already holding that key
-- (keys are unique, so it cannot be renamed), else the oldest of those sharing
-- it. The item merged into keeps its prompt, reference and fields.
CREATE TEMPORARY TABLE rekeyed ON COMMIT DROP AS
WITH candidates AS (
    SELECT id, dataset_id, item_prompt_key(prompt) AS new_key
    FROM items WHERE key = prompt
)
SELECT c.id, c.dataset_id, c.new_key,
       coalesce(
           (SELECT h.id FROM items h WHERE h.dataset_id = c.dataset_id AND h.key = c.new_key),
           min(c.id) OVER (PARTITION BY c.dataset_id, c.new_key)
       ) AS target
FROM candidates c;

-- Generations move to the item they now belong to, unless their system already
-- has a generation there (one system answered two spellings of one prompt): such
-- an item keeps its old, exact key, which stays valid, and both generations stay.
UPDATE generations g SET item_id = r.target
FROM rekeyed r
WHERE g.item_id = r.id AND r.target <> r.id
  AND NOT EXISTS (
      SELECT 1 FROM generations t WHERE t.item_id = r.target AND t.system_id = g.system_id
  );

-- Stored per-item outcomes follow their two generations (a comparison's counts
-- do not change). Chunks not yet run that name a merged item skip it.
UPDATE pair_outcomes o SET item_id = r.target
FROM rekeyed r
WHERE o.item_id = r.id AND r.target <> r.id
  AND NOT EXISTS (
      SELECT 1 FROM generations g
      WHERE g.item_id = r.id AND g.system_id IN (o.system_a, o.system_b)
  )
  AND NOT EXISTS (
      SELECT 1 FROM pair_outcomes t
      WHERE t.job_id = o.job_id AND t.system_a = o.system_a AND t.system_b = o.system_b
        AND t.item_id = r.target
  );

-- Items left with nothing are merged away.
DELETE FROM items i
USING rekeyed r
WHERE i.id = r.id AND r.target <> r.id
  AND NOT EXISTS (SELECT 1 FROM generations g WHERE g.item_id = i.id)
  AND NOT EXISTS (SELECT 1 FROM pair_outcomes o WHERE o.item_id = i.id);

-- The items that stand for their key take it.
UPDATE items i SET key = r.new_key
FROM rekeyed r
WHERE i.id = r.id AND r.target = r.id AND i.key <> r.new_key;

-- Leaderboards are now fitted per connected group of systems and record the
-- group; the stored ones (a cache, recomputed identically when asked for) go.
TRUNCATE job_leaderboards;
ALTER TABLE job_leaderboards ADD COLUMN grp INT NOT NULL DEFAULT 1;
