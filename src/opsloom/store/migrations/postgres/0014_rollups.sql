-- Rollups: what finished runs and their steps add up to, per hour (``hour`` is completed_at
-- divided by 3600, rounded down). The finishing of a run adds its share in the same transaction,
-- so analytics read a few rows per workflow and hour instead of the history. Durations are
-- counted in log-spaced buckets (each 10 % wider than the one before, from 1 ms): a percentile
-- read from them is within 5 % of the exact one. ``shard`` spreads the rows that processes
-- finishing runs at the same time update, so that they do not queue for the same row.
CREATE TABLE duration_buckets (
    bucket integer PRIMARY KEY,
    upper  double precision NOT NULL
);
WITH RECURSIVE b(bucket, upper) AS (
    SELECT 0, CAST(0.001 AS double precision) UNION ALL
    SELECT bucket + 1, upper * CAST(1.1 AS double precision) FROM b WHERE bucket < 239
)
INSERT INTO duration_buckets (bucket, upper) SELECT bucket, upper FROM b;

-- ``measure``: ``duration`` (first execution to end) or ``wait`` (creation to first execution).
CREATE TABLE run_rollups (
    hour     bigint NOT NULL,
    workflow text NOT NULL,
    version  text NOT NULL,
    status   text NOT NULL,
    measure  text NOT NULL,
    bucket   integer NOT NULL,
    shard    integer NOT NULL,
    runs     integer NOT NULL,
    seconds  double precision NOT NULL,
    CONSTRAINT run_rollups_pkey
        PRIMARY KEY (hour, workflow, version, status, measure, bucket, shard)
);

-- Final step entries (completed, failed) of finished runs; ``bucket`` -1: no duration known.
CREATE TABLE step_rollups (
    hour     bigint NOT NULL,
    workflow text NOT NULL,
    step     text NOT NULL,
    status   text NOT NULL,
    bucket   integer NOT NULL,
    shard    integer NOT NULL,
    steps    integer NOT NULL,
    retried  integer NOT NULL,
    attempts integer NOT NULL,
    seconds  double precision NOT NULL,
    CONSTRAINT step_rollups_pkey PRIMARY KEY (hour, workflow, step, status, bucket, shard)
);

-- Failures of runs (``step`` '') and of steps, by error type and normalised message.
CREATE TABLE failure_rollups (
    hour     bigint NOT NULL,
    workflow text NOT NULL,
    version  text NOT NULL,
    step     text NOT NULL,
    type     text NOT NULL,
    message  text NOT NULL,
    shard    integer NOT NULL,
    failures integer NOT NULL,
    CONSTRAINT failure_rollups_pkey
        PRIMARY KEY (hour, workflow, version, step, type, message, shard)
);

-- The history already there is rolled up once (messages are normalised when read).
WITH finished AS (
    SELECT CAST(floor(completed_at / 3600) AS bigint) AS hour, workflow, version, status,
           'duration' AS measure,
           CASE WHEN completed_at > coalesce(started_at, created_at)
                THEN completed_at - coalesce(started_at, created_at) ELSE 0.0 END AS seconds
    FROM runs WHERE completed_at IS NOT NULL
    UNION ALL
    SELECT CAST(floor(completed_at / 3600) AS bigint), workflow, version, status, 'wait',
           CASE WHEN started_at > created_at THEN started_at - created_at ELSE 0.0 END
    FROM runs WHERE completed_at IS NOT NULL AND started_at IS NOT NULL
), bucketed AS (
    SELECT hour, workflow, version, status, measure, seconds,
           (SELECT count(*) FROM duration_buckets WHERE upper < seconds) AS bucket
    FROM finished
)
INSERT INTO run_rollups (hour, workflow, version, status, measure, bucket, shard, runs, seconds)
SELECT hour, workflow, version, status, measure, bucket, 0, count(*), sum(seconds)
FROM bucketed GROUP BY hour, workflow, version, status, measure, bucket;

WITH finished AS (
    SELECT CAST(floor(r.completed_at / 3600) AS bigint) AS hour, r.workflow, s.name, s.status,
           s.attempts,
           CASE WHEN s.started_at IS NULL OR s.completed_at IS NULL THEN NULL
                WHEN s.completed_at > s.started_at THEN s.completed_at - s.started_at
                ELSE 0.0 END AS seconds
    FROM runs r JOIN steps s ON s.run_id = r.id
    WHERE r.completed_at IS NOT NULL AND s.kind = 'step' AND s.status IN ('completed', 'failed')
), bucketed AS (
    SELECT hour, workflow, name, status, attempts, seconds,
           CASE WHEN seconds IS NULL THEN -1
                ELSE (SELECT count(*) FROM duration_buckets WHERE upper < seconds) END AS bucket
    FROM finished
)
INSERT INTO step_rollups
    (hour, workflow, step, status, bucket, shard, steps, retried, attempts, seconds)
SELECT hour, workflow, name, status, bucket, 0, count(*),
       sum(CASE WHEN attempts > 1 THEN 1 ELSE 0 END), sum(attempts), coalesce(sum(seconds), 0.0)
FROM bucketed GROUP BY hour, workflow, name, status, bucket;

WITH failed AS (
    SELECT CAST(floor(completed_at / 3600) AS bigint) AS hour, workflow, version, '' AS step,
           CAST(convert_from(error, 'UTF8') AS json) AS error
    FROM runs WHERE completed_at IS NOT NULL AND status <> 'completed'
    UNION ALL
    SELECT CAST(floor(r.completed_at / 3600) AS bigint), r.workflow, r.version, s.name,
           CAST(convert_from(s.error, 'UTF8') AS json)
    FROM runs r JOIN steps s ON s.run_id = r.id
    WHERE r.completed_at IS NOT NULL AND s.kind = 'step' AND s.status = 'failed'
), reasons AS (
    SELECT hour, workflow, version, step,
           CASE WHEN json_typeof(error) = 'object'
                THEN coalesce(error ->> 'type', 'Error') ELSE 'Error' END AS type,
           CASE WHEN json_typeof(error) = 'object'
                THEN substr(coalesce(error ->> 'message', ''), 1, 200) ELSE '' END AS message
    FROM failed
)
INSERT INTO failure_rollups (hour, workflow, version, step, type, message, shard, failures)
SELECT hour, workflow, version, step, type, message, 0, count(*)
FROM reasons GROUP BY hour, workflow, version, step, type, message;

-- A run that crashed its workers again and again is set aside until someone requeues it.
ALTER TABLE runs ADD COLUMN quarantined_at double precision;

-- Events that a trigger matched but could not turn into a run (an expression failed on them,
-- the input it built cannot be stored), with the reason; ``replayed_at`` once started again.
CREATE TABLE dead_letters (
    id           bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    trigger_id   text NOT NULL,
    workflow     text NOT NULL,
    event_source text NOT NULL,
    event_id     text NOT NULL,
    reason       text NOT NULL,
    detail       text NOT NULL,
    created_at   double precision NOT NULL,
    replayed_at  double precision,
    run_id       text
);
CREATE INDEX dead_letters_created_idx ON dead_letters (created_at);
