-- Triggers: rules that turn stored events into runs. Each filter (those that start runs, then
-- the 'follow' ones that only reach open runs) is also a row of trigger_filters keyed by event
-- type, so an incoming event reads only the filters of its type.
CREATE TABLE triggers (
    id                text PRIMARY KEY,
    workflow          text NOT NULL,
    version           text NOT NULL,
    mode              text NOT NULL CHECK (mode IN ('one', 'any', 'all')),
    filters           bytea NOT NULL,
    correlate         bytea,
    follow            bytea,
    dedup_key         text,
    window_seconds    double precision NOT NULL DEFAULT 0,
    input             text,
    priority          integer NOT NULL DEFAULT 0,
    concurrency_key   text,
    concurrency_limit integer,
    timeout           double precision,
    created_at        double precision NOT NULL,
    updated_at        double precision NOT NULL
);

CREATE TABLE trigger_filters (
    trigger_id text NOT NULL,
    position   integer NOT NULL,
    type       text NOT NULL,
    filter     bytea NOT NULL,
    CONSTRAINT trigger_filters_pkey PRIMARY KEY (trigger_id, position)
);
CREATE INDEX trigger_filters_type_idx ON trigger_filters (type);

-- The runs a trigger started, by dedup key. At most one run is open per (trigger, key): two
-- processes taking in events of one key concurrently cannot open two.
CREATE TABLE trigger_runs (
    trigger_id   text NOT NULL,
    key          text NOT NULL,
    run_id       text NOT NULL,
    event_source text NOT NULL,
    event_id     text NOT NULL,
    opened_at    double precision NOT NULL,
    closed_at    double precision,
    CONSTRAINT trigger_runs_pkey PRIMARY KEY (run_id)
);
CREATE UNIQUE INDEX trigger_runs_open_key ON trigger_runs (trigger_id, key) WHERE closed_at IS NULL;
CREATE INDEX trigger_runs_key_idx ON trigger_runs (trigger_id, key, closed_at);

-- Events an 'all' trigger has collected so far, per correlation key and filter position.
CREATE TABLE trigger_states (
    trigger_id  text NOT NULL,
    correlation text NOT NULL,
    position    integer NOT NULL,
    event       bytea NOT NULL,
    created_at  double precision NOT NULL,
    CONSTRAINT trigger_states_pkey PRIMARY KEY (trigger_id, correlation, position)
);

-- The event that started a run, when an event did.
ALTER TABLE runs ADD COLUMN event_source text;
ALTER TABLE runs ADD COLUMN event_id text;
