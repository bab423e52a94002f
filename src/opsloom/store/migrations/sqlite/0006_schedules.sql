-- Schedules: workflows that start by themselves (cron, every, after). next_at is the next tick
-- to fire; a run per tick is created with the id <schedule id>@<tick>, so several schedulers
-- firing one tick create one run.
CREATE TABLE schedules (
    id          TEXT PRIMARY KEY,
    workflow    TEXT NOT NULL,
    version     TEXT,
    kind        TEXT NOT NULL CHECK (kind IN ('cron', 'every', 'after')),
    spec        TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    misfire     TEXT NOT NULL CHECK (misfire IN ('skip', 'run_once')),
    input       BLOB,
    anchor      REAL NOT NULL,
    next_at     REAL,
    paused      INTEGER NOT NULL DEFAULT 0,
    last_at     REAL,
    last_run_id TEXT,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE INDEX schedules_due_idx ON schedules (next_at) WHERE paused = 0;
