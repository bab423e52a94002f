-- A trigger's runs can narrow their workflow's concurrency limit per key: a jq expression over
-- the run input (a workflow's concurrency_key=".service"), evaluated when the event is taken in.
ALTER TABLE triggers ADD COLUMN concurrency_by TEXT;
