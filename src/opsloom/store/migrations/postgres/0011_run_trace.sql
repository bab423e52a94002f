-- The W3C trace context a run belongs to (``traceparent``): from the webhook or CloudEvent that
-- started it, from its parent run, or from the API call. Traces of the run's steps and calls
-- continue it, in whichever process executes them.
ALTER TABLE runs ADD COLUMN traceparent TEXT;
