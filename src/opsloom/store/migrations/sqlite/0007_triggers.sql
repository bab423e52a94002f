-- Triggers: rules that turn stored events into runs. Each filter (those that start runs, then
-- the 'follow' ones that only reach open runs) is also a row of trigger_filters keyed by event
-- type, so an incoming event reads only the filters of its type.
CREATE TABLE triggers (
    id                TEXT PRIMARY KEY,
    workflow          TEXT NOT NULL,
    version           TEXT NOT NULL,
    mode              TEXT NOT NULL CHECK (mode IN ('one', 'any', 'all')),
    filters           BLOB NOT NULL,
    correlate         BLOB,
    follow            BLOB,
    dedup_key         TEXT,
    window_seconds    REAL NOT NULL DEFAULT 0,
    input             TEXT,
    priority          INTEGER NOT NULL DEFAULT 0,
    concurrency_key   TEXT,
    concurrency_limit INTEGER,
    timeout           REAL,
    created_at        REAL NOT NULL,
    updated_at        REAL NOT NULL
);

CREATE TABLE trigger_filters (
    trigger_id TEXT NOT NULL,
    position   INTEGER NOT NULL,
    type       TEXT NOT NULL,
    filter     BLOB NOT NULL,
    CONSTRAINT trigger_filters_pkey PRIMARY KEY (trigger_id, position)
) WITHOUT ROWID;
CREATE INDEX trigger_filters_type_idx ON trigger_filters (type);

-- The runs a trigger started, by dedup key. At most one run is open per (trigger, key): two
-- processes taking in events of one key concurrently cannot open two.
CREATE TABLE trigger_runs (
    trigger_id   TEXT NOT NULL,
    key          TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    event_source TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    opened_at    REAL NOT NULL,
    closed_at    REAL,
    CONSTRAINT trigger_runs_pkey PRIMARY KEY (run_id)
);
CREATE UNIQUE INDEX trigger_runs_open_key ON trigger_runs (trigger_id, key) WHERE closed_at IS NULL;
CREATE INDEX trigger_runs_key_idx ON trigger_runs (trigger_id, key, closed_at);

-- Events an 'all' trigger has collected so far, per correlation key and filter position.
CREATE TABLE trigger_states (
    trigger_id  TEXT NOT NULL,
    correlation TEXT NOT NULL,
    position    INTEGER NOT NULL,
    event       BLOB NOT NULL,
    created_at  REAL NOT NULL,
    CONSTRAINT trigger_states_pkey PRIMARY KEY (trigger_id, correlation, position)
) WITHOUT ROWID;

-- The event that started a run, when an event did.
ALTER TABLE runs ADD COLUMN event_source TEXT;
ALTER TABLE runs ADD COLUMN event_id TEXT;
