-- Runs, their history (steps) and the queue of ready work (jobs). Mirrors the SQLite schema:
-- times are epoch seconds (double precision), JSON values are stored as the bytes the engine
-- encoded (bytea), flags are 0/1 integers.
CREATE TABLE runs (
    id                text PRIMARY KEY,
    workflow          text NOT NULL,
    version           text NOT NULL,
    status            text NOT NULL,
    input             bytea,
    output            bytea,
    error             bytea,
    parent_id         text,
    parent_seq        integer,
    priority          integer NOT NULL DEFAULT 0,
    concurrency_key   text,
    concurrency_limit integer,
    deadline          double precision,
    cancel_requested  integer NOT NULL DEFAULT 0,
    recovered         integer NOT NULL DEFAULT 0,
    created_at        double precision NOT NULL,
    started_at        double precision,
    updated_at        double precision NOT NULL,
    completed_at      double precision,
    CONSTRAINT runs_status_check CHECK (status IN
        ('pending', 'running', 'waiting', 'completed', 'failed', 'cancelled', 'timed_out'))
);
CREATE INDEX runs_created_idx ON runs (created_at);
CREATE INDEX runs_status_idx ON runs (status, created_at);
CREATE INDEX runs_parent_idx ON runs (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX runs_open_key_idx ON runs (concurrency_key)
    WHERE concurrency_key IS NOT NULL AND completed_at IS NULL;

CREATE TABLE steps (
    run_id       text NOT NULL,
    seq          integer NOT NULL,
    kind         text NOT NULL,
    name         text NOT NULL,
    status       text NOT NULL,
    output       bytea,
    error        bytea,
    attempts     integer NOT NULL DEFAULT 1,
    wake_at      double precision,
    started_at   double precision,
    completed_at double precision,
    CONSTRAINT steps_pkey PRIMARY KEY (run_id, seq),
    CONSTRAINT steps_status_check CHECK (status IN ('completed', 'failed', 'waiting', 'retrying'))
);

-- One row per open run. owner/token/lease_expires_at form the lease; available_at NULL means
-- parked until something nudges the run (a signal, a child finishing, a cancel).
CREATE TABLE jobs (
    run_id            text PRIMARY KEY,
    kind              text NOT NULL,
    priority          integer NOT NULL DEFAULT 0,
    available_at      double precision,
    owner             text,
    token             integer NOT NULL DEFAULT 0,
    lease_expires_at  double precision,
    nudged            integer NOT NULL DEFAULT 0,
    blocked           integer NOT NULL DEFAULT 0,
    concurrency_key   text,
    concurrency_limit integer
);
CREATE INDEX jobs_ready_idx ON jobs (priority DESC, available_at)
    WHERE owner IS NULL AND blocked = 0 AND available_at IS NOT NULL;
CREATE INDEX jobs_due_idx ON jobs (available_at)
    WHERE owner IS NULL AND blocked = 0 AND available_at IS NOT NULL;
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE owner IS NOT NULL;
CREATE INDEX jobs_owner_idx ON jobs (owner) WHERE owner IS NOT NULL;
CREATE INDEX jobs_blocked_idx ON jobs (concurrency_key) WHERE blocked = 1;
