-- Pausing, resetting and labelling runs. A paused run keeps its place (status, history, timers,
-- signals) while its job is held back (jobs.blocked = 2) until it is resumed. runs.paused says
-- who paused it: 'run' (that run alone) or 'workflow' (every run of its workflow; new runs join
-- the pause while a row of workflow_pauses names the workflow).
ALTER TABLE runs ADD COLUMN paused TEXT
    CONSTRAINT runs_paused_check CHECK (paused IN ('run', 'workflow'));
ALTER TABLE runs ADD COLUMN paused_at REAL;
CREATE INDEX runs_open_workflow_idx ON runs (workflow) WHERE completed_at IS NULL;
CREATE TABLE workflow_pauses (
    workflow  TEXT PRIMARY KEY,
    paused_at REAL NOT NULL,
    paused_by TEXT
);
-- Resets: a run started from another run's history, re-executing from position reset_to.
ALTER TABLE runs ADD COLUMN reset_of TEXT;
ALTER TABLE runs ADD COLUMN reset_to INTEGER;
CREATE INDEX runs_reset_idx ON runs (reset_of) WHERE reset_of IS NOT NULL;
-- Labels (search attributes) of runs: given at start or set by the run, listed and filtered on.
CREATE TABLE run_labels (
    run_id TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    CONSTRAINT run_labels_pkey PRIMARY KEY (run_id, key)
);
CREATE INDEX run_labels_key_value_idx ON run_labels (key, value, run_id);
