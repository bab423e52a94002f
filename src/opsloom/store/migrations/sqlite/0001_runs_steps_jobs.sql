-- Runs, their history (steps) and the queue of ready work (jobs).
CREATE TABLE runs (
    id                TEXT PRIMARY KEY,
    workflow          TEXT NOT NULL,
    version           TEXT NOT NULL,
    status            TEXT NOT NULL,
    input             BLOB,
    output            BLOB,
    error             BLOB,
    parent_id         TEXT,
    parent_seq        INTEGER,
    priority          INTEGER NOT NULL DEFAULT 0,
    concurrency_key   TEXT,
    concurrency_limit INTEGER,
    deadline          REAL,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    recovered         INTEGER NOT NULL DEFAULT 0,
    created_at        REAL NOT NULL,
    started_at        REAL,
    updated_at        REAL NOT NULL,
    completed_at      REAL,
    CONSTRAINT runs_status_check CHECK (status IN
        ('pending', 'running', 'waiting', 'completed', 'failed', 'cancelled', 'timed_out'))
);
CREATE INDEX runs_created_idx ON runs (created_at);
CREATE INDEX runs_status_idx ON runs (status, created_at);
CREATE INDEX runs_parent_idx ON runs (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX runs_open_key_idx ON runs (concurrency_key)
    WHERE concurrency_key IS NOT NULL AND completed_at IS NULL;

CREATE TABLE steps (
    run_id       TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    status       TEXT NOT NULL,
    output       BLOB,
    error        BLOB,
    attempts     INTEGER NOT NULL DEFAULT 1,
    wake_at      REAL,
    started_at   REAL,
    completed_at REAL,
    CONSTRAINT steps_pkey PRIMARY KEY (run_id, seq),
    CONSTRAINT steps_status_check CHECK (status IN ('completed', 'failed', 'waiting', 'retrying'))
) WITHOUT ROWID;

-- One row per open run. owner/token/lease_expires_at form the lease; available_at NULL means
-- parked until something nudges the run (a signal, a child finishing, a cancel).
CREATE TABLE jobs (
    run_id            TEXT PRIMARY KEY,
    kind              TEXT NOT NULL,
    priority          INTEGER NOT NULL DEFAULT 0,
    available_at      REAL,
    owner             TEXT,
    token             INTEGER NOT NULL DEFAULT 0,
    lease_expires_at  REAL,
    nudged            INTEGER NOT NULL DEFAULT 0,
    blocked           INTEGER NOT NULL DEFAULT 0,
    concurrency_key   TEXT,
    concurrency_limit INTEGER
) WITHOUT ROWID;
CREATE INDEX jobs_ready_idx ON jobs (priority DESC, available_at)
    WHERE owner IS NULL AND blocked = 0 AND available_at IS NOT NULL;
CREATE INDEX jobs_due_idx ON jobs (available_at)
    WHERE owner IS NULL AND blocked = 0 AND available_at IS NOT NULL;
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE owner IS NOT NULL;
CREATE INDEX jobs_owner_idx ON jobs (owner) WHERE owner IS NOT NULL;
CREATE INDEX jobs_blocked_idx ON jobs (concurrency_key) WHERE blocked = 1;
