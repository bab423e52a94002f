-- Rate limits per key and declared with workflows and triggers; trigger debounce.
-- A workflow's limit may be per key (rate_key: jq over the run input) and may drop starts past
-- it instead of queueing them (overflow). rate_declared: the limit came from the workflow's
-- declaration (saved by each worker that starts), not from an operator.
ALTER TABLE workflow_controls ADD COLUMN rate_key text;
ALTER TABLE workflow_controls ADD COLUMN overflow text NOT NULL DEFAULT 'queue'
    CONSTRAINT workflow_controls_overflow_check CHECK (overflow IN ('queue', 'drop'));
ALTER TABLE workflow_controls ADD COLUMN rate_declared integer NOT NULL DEFAULT 0;
-- The start schedule of each limit and key (scope 'workflow:<name>' or 'trigger:<id>'; key ''
-- when the limit is not per key): next_start is the limit's theoretical arrival time, shared
-- by every process. A row whose next_start is past means the same as no row.
CREATE TABLE rate_slots (
    scope      text NOT NULL,
    key        text NOT NULL,
    next_start double precision NOT NULL,
    CONSTRAINT rate_slots_pkey PRIMARY KEY (scope, key)
);
CREATE INDEX rate_slots_next_idx ON rate_slots (next_start);
INSERT INTO rate_slots (scope, key, next_start)
    SELECT 'workflow:' || workflow, '', next_start FROM workflow_controls
    WHERE next_start IS NOT NULL;
ALTER TABLE workflow_controls DROP COLUMN next_start;
-- A trigger's own limit on the runs it starts (JSON, keyed over the event), and its debounce:
-- events of one key within `debounce` seconds of each other start one run, with the last one,
-- at most `debounce_max` seconds after the first.
ALTER TABLE triggers ADD COLUMN rate_limit bytea;
ALTER TABLE triggers ADD COLUMN debounce double precision NOT NULL DEFAULT 0;
ALTER TABLE triggers ADD COLUMN debounce_max double precision;
-- The event a debounced key will start its run with, and when.
CREATE TABLE trigger_debounces (
    trigger_id   text NOT NULL,
    key          text NOT NULL,
    position     integer NOT NULL,
    event        bytea NOT NULL,
    event_source text NOT NULL,
    event_id     text NOT NULL,
    events       integer NOT NULL,
    first_at     double precision NOT NULL,
    due_at       double precision NOT NULL,
    CONSTRAINT trigger_debounces_pkey PRIMARY KEY (trigger_id, key)
);
CREATE INDEX trigger_debounces_due_idx ON trigger_debounces (due_at);
