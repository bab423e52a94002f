-- Signals sent to runs; kept until a wait_for consumes them (consumed_seq names that wait).
CREATE TABLE signals (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       TEXT NOT NULL,
    name         TEXT NOT NULL,
    payload      BLOB,
    created_at   REAL NOT NULL,
    consumed_seq INTEGER
);
CREATE INDEX signals_pending_idx ON signals (run_id, id) WHERE consumed_seq IS NULL;
