-- Schedules: workflows that start by themselves (cron, every, after). next_at is the next tick
-- to fire; a run per tick is created with the id <schedule id>@<tick>, so several schedulers
-- firing one tick create one run.
CREATE TABLE schedules (
    id          text PRIMARY KEY,
    workflow    text NOT NULL,
    version     text,
    kind        text NOT NULL CHECK (kind IN ('cron', 'every', 'after')),
    spec        text NOT NULL,
    timezone    text NOT NULL,
    misfire     text NOT NULL CHECK (misfire IN ('skip', 'run_once')),
    input       bytea,
    anchor      double precision NOT NULL,
    next_at     double precision,
    paused      integer NOT NULL DEFAULT 0,
    last_at     double precision,
    last_run_id text,
    created_at  double precision NOT NULL,
    updated_at  double precision NOT NULL
);
CREATE INDEX schedules_due_idx ON schedules (next_at) WHERE paused = 0;
