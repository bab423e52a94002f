-- What holds back the runs of a workflow, in one row read once per new run: a pause
-- (paused_at set; it was workflow_pauses) and a rate limit (at most `rate` runs start per
-- second, `burst` at once; next_start is the limit's theoretical arrival time, shared by
-- every process through this row).
CREATE TABLE workflow_controls (
    workflow   TEXT PRIMARY KEY,
    paused_at  REAL,
    paused_by  TEXT,
    rate       REAL,
    burst      INTEGER NOT NULL DEFAULT 1,
    next_start REAL
);
INSERT INTO workflow_controls (workflow, paused_at, paused_by)
    SELECT workflow, paused_at, paused_by FROM workflow_pauses;
DROP TABLE workflow_pauses;
