-- Hourly summaries of the run rollups, written once an hour is over (and stays so): per
-- workflow and for every workflow at once (workflow ''; an hour without runs has only that
-- row), the finished runs (``runs``, of which ``completed``; by status in ``statuses``, JSON),
-- their p95 duration, and their duration histogram merged over versions, statuses and shards
-- (``histogram``: pairs of bucket and count, 8-byte integers). Trends and anomalies over days
-- of hourly buckets read one small row per hour and workflow instead of adding up the 128
-- histogram columns of every rollup row again.
CREATE TABLE hour_summaries (
    start     INTEGER NOT NULL,
    workflow  TEXT NOT NULL,
    runs      INTEGER NOT NULL,
    completed INTEGER NOT NULL,
    p95       REAL,
    statuses  TEXT NOT NULL,
    histogram BLOB NOT NULL,
    CONSTRAINT hour_summaries_pkey PRIMARY KEY (start, workflow)
) WITHOUT ROWID;
