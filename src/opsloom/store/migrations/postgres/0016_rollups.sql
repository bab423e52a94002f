-- Rollups: what finished runs and their steps add up to, per hour and per day of their
-- completion (``width`` 3600 or 86400 seconds, the period beginning at ``start``). Finishing a
-- run adds its share in the same transaction, so analytics read a few rows per workflow and
-- period instead of the history, and the rows outlive the runs that retention prunes.
-- Durations are counted in histogram columns b0 … b127: b0 up to 1 ms, each next bucket
-- 2^(1/4) times wider, the last one beyond 49 days (opsloom.store.rollup.BOUNDS). ``shard``
-- spreads the rows that processes finishing runs at the same time update.

-- ``measure``: ``duration`` (first execution to end) or ``wait`` (creation to first execution).
CREATE TABLE run_rollups (
    width    integer NOT NULL,
    start    bigint NOT NULL,
    workflow text NOT NULL,
    version  text NOT NULL,
    status   text NOT NULL,
    measure  text NOT NULL,
    shard    integer NOT NULL,
    runs     bigint NOT NULL,
    seconds  double precision NOT NULL,
    b0 integer NOT NULL DEFAULT 0, b1 integer NOT NULL DEFAULT 0, b2 integer NOT NULL DEFAULT 0, b3 integer NOT NULL DEFAULT 0,
    b4 integer NOT NULL DEFAULT 0, b5 integer NOT NULL DEFAULT 0, b6 integer NOT NULL DEFAULT 0, b7 integer NOT NULL DEFAULT 0,
    b8 integer NOT NULL DEFAULT 0, b9 integer NOT NULL DEFAULT 0, b10 integer NOT NULL DEFAULT 0, b11 integer NOT NULL DEFAULT 0,
    b12 integer NOT NULL DEFAULT 0, b13 integer NOT NULL DEFAULT 0, b14 integer NOT NULL DEFAULT 0, b15 integer NOT NULL DEFAULT 0,
    b16 integer NOT NULL DEFAULT 0, b17 integer NOT NULL DEFAULT 0, b18 integer NOT NULL DEFAULT 0, b19 integer NOT NULL DEFAULT 0,
    b20 integer NOT NULL DEFAULT 0, b21 integer NOT NULL DEFAULT 0, b22 integer NOT NULL DEFAULT 0, b23 integer NOT NULL DEFAULT 0,
    b24 integer NOT NULL DEFAULT 0, b25 integer NOT NULL DEFAULT 0, b26 integer NOT NULL DEFAULT 0, b27 integer NOT NULL DEFAULT 0,
    b28 integer NOT NULL DEFAULT 0, b29 integer NOT NULL DEFAULT 0, b30 integer NOT NULL DEFAULT 0, b31 integer NOT NULL DEFAULT 0,
    b32 integer NOT NULL DEFAULT 0, b33 integer NOT NULL DEFAULT 0, b34 integer NOT NULL DEFAULT 0, b35 integer NOT NULL DEFAULT 0,
    b36 integer NOT NULL DEFAULT 0, b37 integer NOT NULL DEFAULT 0, b38 integer NOT NULL DEFAULT 0, b39 integer NOT NULL DEFAULT 0,
    b40 integer NOT NULL DEFAULT 0, b41 integer NOT NULL DEFAULT 0, b42 integer NOT NULL DEFAULT 0, b43 integer NOT NULL DEFAULT 0,
    b44 integer NOT NULL DEFAULT 0, b45 integer NOT NULL DEFAULT 0, b46 integer NOT NULL DEFAULT 0, b47 integer NOT NULL DEFAULT 0,
    b48 integer NOT NULL DEFAULT 0, b49 integer NOT NULL DEFAULT 0, b50 integer NOT NULL DEFAULT 0, b51 integer NOT NULL DEFAULT 0,
    b52 integer NOT NULL DEFAULT 0, b53 integer NOT NULL DEFAULT 0, b54 integer NOT NULL DEFAULT 0, b55 integer NOT NULL DEFAULT 0,
    b56 integer NOT NULL DEFAULT 0, b57 integer NOT NULL DEFAULT 0, b58 integer NOT NULL DEFAULT 0, b59 integer NOT NULL DEFAULT 0,
    b60 integer NOT NULL DEFAULT 0, b61 integer NOT NULL DEFAULT 0, b62 integer NOT NULL DEFAULT 0, b63 integer NOT NULL DEFAULT 0,
    b64 integer NOT NULL DEFAULT 0, b65 integer NOT NULL DEFAULT 0, b66 integer NOT NULL DEFAULT 0, b67 integer NOT NULL DEFAULT 0,
    b68 integer NOT NULL DEFAULT 0, b69 integer NOT NULL DEFAULT 0, b70 integer NOT NULL DEFAULT 0, b71 integer NOT NULL DEFAULT 0,
    b72 integer NOT NULL DEFAULT 0, b73 integer NOT NULL DEFAULT 0, b74 integer NOT NULL DEFAULT 0, b75 integer NOT NULL DEFAULT 0,
    b76 integer NOT NULL DEFAULT 0, b77 integer NOT NULL DEFAULT 0, b78 integer NOT NULL DEFAULT 0, b79 integer NOT NULL DEFAULT 0,
    b80 integer NOT NULL DEFAULT 0, b81 integer NOT NULL DEFAULT 0, b82 integer NOT NULL DEFAULT 0, b83 integer NOT NULL DEFAULT 0,
    b84 integer NOT NULL DEFAULT 0, b85 integer NOT NULL DEFAULT 0, b86 integer NOT NULL DEFAULT 0, b87 integer NOT NULL DEFAULT 0,
    b88 integer NOT NULL DEFAULT 0, b89 integer NOT NULL DEFAULT 0, b90 integer NOT NULL DEFAULT 0, b91 integer NOT NULL DEFAULT 0,
    b92 integer NOT NULL DEFAULT 0, b93 integer NOT NULL DEFAULT 0, b94 integer NOT NULL DEFAULT 0, b95 integer NOT NULL DEFAULT 0,
    b96 integer NOT NULL DEFAULT 0, b97 integer NOT NULL DEFAULT 0, b98 integer NOT NULL DEFAULT 0, b99 integer NOT NULL DEFAULT 0,
    b100 integer NOT NULL DEFAULT 0, b101 integer NOT NULL DEFAULT 0, b102 integer NOT NULL DEFAULT 0, b103 integer NOT NULL DEFAULT 0,
    b104 integer NOT NULL DEFAULT 0, b105 integer NOT NULL DEFAULT 0, b106 integer NOT NULL DEFAULT 0, b107 integer NOT NULL DEFAULT 0,
    b108 integer NOT NULL DEFAULT 0, b109 integer NOT NULL DEFAULT 0, b110 integer NOT NULL DEFAULT 0, b111 integer NOT NULL DEFAULT 0,
    b112 integer NOT NULL DEFAULT 0, b113 integer NOT NULL DEFAULT 0, b114 integer NOT NULL DEFAULT 0, b115 integer NOT NULL DEFAULT 0,
    b116 integer NOT NULL DEFAULT 0, b117 integer NOT NULL DEFAULT 0, b118 integer NOT NULL DEFAULT 0, b119 integer NOT NULL DEFAULT 0,
    b120 integer NOT NULL DEFAULT 0, b121 integer NOT NULL DEFAULT 0, b122 integer NOT NULL DEFAULT 0, b123 integer NOT NULL DEFAULT 0,
    b124 integer NOT NULL DEFAULT 0, b125 integer NOT NULL DEFAULT 0, b126 integer NOT NULL DEFAULT 0, b127 integer NOT NULL DEFAULT 0,
    CONSTRAINT run_rollups_pkey
        PRIMARY KEY (width, start, workflow, version, status, measure, shard)
);

-- Final step entries (completed, failed) of finished runs; a step without both times counts in
-- ``steps`` but in no bucket.
CREATE TABLE step_rollups (
    width    integer NOT NULL,
    start    bigint NOT NULL,
    workflow text NOT NULL,
    step     text NOT NULL,
    status   text NOT NULL,
    shard    integer NOT NULL,
    steps    bigint NOT NULL,
    retried  bigint NOT NULL,
    attempts bigint NOT NULL,
    seconds  double precision NOT NULL,
    b0 integer NOT NULL DEFAULT 0, b1 integer NOT NULL DEFAULT 0, b2 integer NOT NULL DEFAULT 0, b3 integer NOT NULL DEFAULT 0,
    b4 integer NOT NULL DEFAULT 0, b5 integer NOT NULL DEFAULT 0, b6 integer NOT NULL DEFAULT 0, b7 integer NOT NULL DEFAULT 0,
    b8 integer NOT NULL DEFAULT 0, b9 integer NOT NULL DEFAULT 0, b10 integer NOT NULL DEFAULT 0, b11 integer NOT NULL DEFAULT 0,
    b12 integer NOT NULL DEFAULT 0, b13 integer NOT NULL DEFAULT 0, b14 integer NOT NULL DEFAULT 0, b15 integer NOT NULL DEFAULT 0,
    b16 integer NOT NULL DEFAULT 0, b17 integer NOT NULL DEFAULT 0, b18 integer NOT NULL DEFAULT 0, b19 integer NOT NULL DEFAULT 0,
    b20 integer NOT NULL DEFAULT 0, b21 integer NOT NULL DEFAULT 0, b22 integer NOT NULL DEFAULT 0, b23 integer NOT NULL DEFAULT 0,
    b24 integer NOT NULL DEFAULT 0, b25 integer NOT NULL DEFAULT 0, b26 integer NOT NULL DEFAULT 0, b27 integer NOT NULL DEFAULT 0,
    b28 integer NOT NULL DEFAULT 0, b29 integer NOT NULL DEFAULT 0, b30 integer NOT NULL DEFAULT 0, b31 integer NOT NULL DEFAULT 0,
    b32 integer NOT NULL DEFAULT 0, b33 integer NOT NULL DEFAULT 0, b34 integer NOT NULL DEFAULT 0, b35 integer NOT NULL DEFAULT 0,
    b36 integer NOT NULL DEFAULT 0, b37 integer NOT NULL DEFAULT 0, b38 integer NOT NULL DEFAULT 0, b39 integer NOT NULL DEFAULT 0,
    b40 integer NOT NULL DEFAULT 0, b41 integer NOT NULL DEFAULT 0, b42 integer NOT NULL DEFAULT 0, b43 integer NOT NULL DEFAULT 0,
    b44 integer NOT NULL DEFAULT 0, b45 integer NOT NULL DEFAULT 0, b46 integer NOT NULL DEFAULT 0, b47 integer NOT NULL DEFAULT 0,
    b48 integer NOT NULL DEFAULT 0, b49 integer NOT NULL DEFAULT 0, b50 integer NOT NULL DEFAULT 0, b51 integer NOT NULL DEFAULT 0,
    b52 integer NOT NULL DEFAULT 0, b53 integer NOT NULL DEFAULT 0, b54 integer NOT NULL DEFAULT 0, b55 integer NOT NULL DEFAULT 0,
    b56 integer NOT NULL DEFAULT 0, b57 integer NOT NULL DEFAULT 0, b58 integer NOT NULL DEFAULT 0, b59 integer NOT NULL DEFAULT 0,
    b60 integer NOT NULL DEFAULT 0, b61 integer NOT NULL DEFAULT 0, b62 integer NOT NULL DEFAULT 0, b63 integer NOT NULL DEFAULT 0,
    b64 integer NOT NULL DEFAULT 0, b65 integer NOT NULL DEFAULT 0, b66 integer NOT NULL DEFAULT 0, b67 integer NOT NULL DEFAULT 0,
    b68 integer NOT NULL DEFAULT 0, b69 integer NOT NULL DEFAULT 0, b70 integer NOT NULL DEFAULT 0, b71 integer NOT NULL DEFAULT 0,
    b72 integer NOT NULL DEFAULT 0, b73 integer NOT NULL DEFAULT 0, b74 integer NOT NULL DEFAULT 0, b75 integer NOT NULL DEFAULT 0,
    b76 integer NOT NULL DEFAULT 0, b77 integer NOT NULL DEFAULT 0, b78 integer NOT NULL DEFAULT 0, b79 integer NOT NULL DEFAULT 0,
    b80 integer NOT NULL DEFAULT 0, b81 integer NOT NULL DEFAULT 0, b82 integer NOT NULL DEFAULT 0, b83 integer NOT NULL DEFAULT 0,
    b84 integer NOT NULL DEFAULT 0, b85 integer NOT NULL DEFAULT 0, b86 integer NOT NULL DEFAULT 0, b87 integer NOT NULL DEFAULT 0,
    b88 integer NOT NULL DEFAULT 0, b89 integer NOT NULL DEFAULT 0, b90 integer NOT NULL DEFAULT 0, b91 integer NOT NULL DEFAULT 0,
    b92 integer NOT NULL DEFAULT 0, b93 integer NOT NULL DEFAULT 0, b94 integer NOT NULL DEFAULT 0, b95 integer NOT NULL DEFAULT 0,
    b96 integer NOT NULL DEFAULT 0, b97 integer NOT NULL DEFAULT 0, b98 integer NOT NULL DEFAULT 0, b99 integer NOT NULL DEFAULT 0,
    b100 integer NOT NULL DEFAULT 0, b101 integer NOT NULL DEFAULT 0, b102 integer NOT NULL DEFAULT 0, b103 integer NOT NULL DEFAULT 0,
    b104 integer NOT NULL DEFAULT 0, b105 integer NOT NULL DEFAULT 0, b106 integer NOT NULL DEFAULT 0, b107 integer NOT NULL DEFAULT 0,
    b108 integer NOT NULL DEFAULT 0, b109 integer NOT NULL DEFAULT 0, b110 integer NOT NULL DEFAULT 0, b111 integer NOT NULL DEFAULT 0,
    b112 integer NOT NULL DEFAULT 0, b113 integer NOT NULL DEFAULT 0, b114 integer NOT NULL DEFAULT 0, b115 integer NOT NULL DEFAULT 0,
    b116 integer NOT NULL DEFAULT 0, b117 integer NOT NULL DEFAULT 0, b118 integer NOT NULL DEFAULT 0, b119 integer NOT NULL DEFAULT 0,
    b120 integer NOT NULL DEFAULT 0, b121 integer NOT NULL DEFAULT 0, b122 integer NOT NULL DEFAULT 0, b123 integer NOT NULL DEFAULT 0,
    b124 integer NOT NULL DEFAULT 0, b125 integer NOT NULL DEFAULT 0, b126 integer NOT NULL DEFAULT 0, b127 integer NOT NULL DEFAULT 0,
    CONSTRAINT step_rollups_pkey PRIMARY KEY (width, start, workflow, step, status, shard)
);

-- Failures of runs (``step`` '') and of steps, by error type and normalised message.
CREATE TABLE failure_rollups (
    width    integer NOT NULL,
    start    bigint NOT NULL,
    workflow text NOT NULL,
    version  text NOT NULL,
    step     text NOT NULL,
    type     text NOT NULL,
    message  text NOT NULL,
    shard    integer NOT NULL,
    failures bigint NOT NULL,
    CONSTRAINT failure_rollups_pkey
        PRIMARY KEY (width, start, workflow, version, step, type, message, shard)
);

-- The history already there is rolled up by opsloom right after this migration, in the same
-- transaction (opsloom.store.rollup.Backfill).

-- A run that crashed its workers again and again is set aside until someone requeues it.
ALTER TABLE runs ADD COLUMN quarantined_at double precision;

-- Events that a trigger matched but could not turn into a run (an expression failed on them,
-- the input it built cannot be stored), with the reason; ``replayed_at`` once started again.
CREATE TABLE dead_letters (
    id           bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    trigger_id   text NOT NULL,
    workflow     text NOT NULL,
    event_source text NOT NULL,
    event_id     text NOT NULL,
    reason       text NOT NULL,
    detail       text NOT NULL,
    created_at   double precision NOT NULL,
    replayed_at  double precision,
    run_id       text
);
CREATE INDEX dead_letters_created_idx ON dead_letters (created_at);
