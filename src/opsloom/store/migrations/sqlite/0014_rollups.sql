-- Rollups: what finished runs and their steps add up to, per hour (``hour`` is completed_at
-- divided by 3600, rounded down). The finishing of a run adds its share in the same transaction,
-- so analytics read a few rows per workflow and hour instead of the history. Durations are
-- counted in log-spaced buckets (each 10 % wider than the one before, from 1 ms): a percentile
-- read from them is within 5 % of the exact one. ``shard`` spreads the rows that processes
-- finishing runs at the same time update, so that they do not queue for the same row.
CREATE TABLE duration_buckets (
    bucket INTEGER PRIMARY KEY,
    upper  REAL NOT NULL
);
WITH RECURSIVE b(bucket, upper) AS (
    SELECT 0, 0.001 UNION ALL SELECT bucket + 1, upper * 1.1 FROM b WHERE bucket < 239
)
INSERT INTO duration_buckets (bucket, upper) SELECT bucket, upper FROM b;

-- ``measure``: ``duration`` (first execution to end) or ``wait`` (creation to first execution).
CREATE TABLE run_rollups (
    hour     INTEGER NOT NULL,
    workflow TEXT NOT NULL,
    version  TEXT NOT NULL,
    status   TEXT NOT NULL,
    measure  TEXT NOT NULL,
    bucket   INTEGER NOT NULL,
    shard    INTEGER NOT NULL,
    runs     INTEGER NOT NULL,
    seconds  REAL NOT NULL,
    CONSTRAINT run_rollups_pkey
        PRIMARY KEY (hour, workflow, version, status, measure, bucket, shard)
) WITHOUT ROWID;

-- Final step entries (completed, failed) of finished runs; ``bucket`` -1: no duration known.
CREATE TABLE step_rollups (
    hour     INTEGER NOT NULL,
    workflow TEXT NOT NULL,
    step     TEXT NOT NULL,
    status   TEXT NOT NULL,
    bucket   INTEGER NOT NULL,
    shard    INTEGER NOT NULL,
    steps    INTEGER NOT NULL,
    retried  INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    seconds  REAL NOT NULL,
    CONSTRAINT step_rollups_pkey PRIMARY KEY (hour, workflow, step, status, bucket, shard)
) WITHOUT ROWID;

-- Failures of runs (``step`` '') and of steps, by error type and normalised message.
CREATE TABLE failure_rollups (
    hour     INTEGER NOT NULL,
    workflow TEXT NOT NULL,
    version  TEXT NOT NULL,
    step     TEXT NOT NULL,
    type     TEXT NOT NULL,
    message  TEXT NOT NULL,
    shard    INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    CONSTRAINT failure_rollups_pkey
        PRIMARY KEY (hour, workflow, version, step, type, message, shard)
) WITHOUT ROWID;

-- The history already there is rolled up once (messages are normalised when read).
WITH finished AS (
    SELECT CAST(completed_at / 3600 AS INTEGER) AS hour, workflow, version, status,
           'duration' AS measure,
           CASE WHEN completed_at > coalesce(started_at, created_at)
                THEN completed_at - coalesce(started_at, created_at) ELSE 0.0 END AS seconds
    FROM runs WHERE completed_at IS NOT NULL
    UNION ALL
    SELECT CAST(completed_at / 3600 AS INTEGER), workflow, version, status, 'wait',
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
    SELECT CAST(r.completed_at / 3600 AS INTEGER) AS hour, r.workflow, s.name, s.status,
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
    SELECT CAST(completed_at / 3600 AS INTEGER) AS hour, workflow, version, '' AS step,
           CASE WHEN json_valid(CAST(error AS TEXT)) THEN CAST(error AS TEXT) END AS error
    FROM runs WHERE completed_at IS NOT NULL AND status <> 'completed'
    UNION ALL
    SELECT CAST(r.completed_at / 3600 AS INTEGER), r.workflow, r.version, s.name,
           CASE WHEN json_valid(CAST(s.error AS TEXT)) THEN CAST(s.error AS TEXT) END
    FROM runs r JOIN steps s ON s.run_id = r.id
    WHERE r.completed_at IS NOT NULL AND s.kind = 'step' AND s.status = 'failed'
), reasons AS (
    SELECT hour, workflow, version, step,
           CASE WHEN json_type(error) = 'object'
                THEN coalesce(CAST(json_extract(error, '$.type') AS TEXT), 'Error')
                ELSE 'Error' END AS type,
           CASE WHEN json_type(error) = 'object'
                THEN substr(coalesce(CAST(json_extract(error, '$.message') AS TEXT), ''), 1, 200)
                ELSE '' END AS message
    FROM failed
)
INSERT INTO failure_rollups (hour, workflow, version, step, type, message, shard, failures)
SELECT hour, workflow, version, step, type, message, 0, count(*)
FROM reasons GROUP BY hour, workflow, version, step, type, message;

-- A run that crashed its workers again and again is set aside until someone requeues it.
ALTER TABLE runs ADD COLUMN quarantined_at REAL;

-- Events that a trigger matched but could not turn into a run (an expression failed on them,
-- the input it built cannot be stored), with the reason; ``replayed_at`` once started again.
CREATE TABLE dead_letters (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    trigger_id   TEXT NOT NULL,
    workflow     TEXT NOT NULL,
    event_source TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    reason       TEXT NOT NULL,
    detail       TEXT NOT NULL,
    created_at   REAL NOT NULL,
    replayed_at  REAL,
    run_id       TEXT
);
CREATE INDEX dead_letters_created_idx ON dead_letters (created_at);
