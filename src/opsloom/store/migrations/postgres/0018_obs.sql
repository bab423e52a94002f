-- Hourly summaries of the run rollups, written once an hour is over (and stays so): per
-- workflow and for every workflow at once (workflow ''; an hour without runs has only that
-- row), the finished runs by status (``statuses``, JSON) and their duration histogram merged
-- over versions, statuses and shards (``histogram``: pairs of bucket and count, 8-byte
-- integers). Trends and anomalies over days of hourly buckets read one small row per hour
-- and workflow instead of adding up the 128 histogram columns of every rollup row again.
CREATE TABLE hour_summaries (
    start     bigint NOT NULL,
    workflow  text NOT NULL,
    statuses  text NOT NULL,
    histogram bytea NOT NULL,
    CONSTRAINT hour_summaries_pkey PRIMARY KEY (start, workflow)
);
