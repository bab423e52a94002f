-- Who started each run (the authenticated principal, or the trigger or schedule), and on an
-- approval request the starter of its run with the request's separation-of-duties options:
-- the starter never decides unless the request allows it, and distinct approvers per stage.
ALTER TABLE runs ADD COLUMN started_by TEXT;
ALTER TABLE approval_requests ADD COLUMN started_by TEXT;
ALTER TABLE approval_requests ADD COLUMN starter_may_decide INTEGER NOT NULL DEFAULT 0;
ALTER TABLE approval_requests ADD COLUMN distinct_approvers INTEGER NOT NULL DEFAULT 0;
