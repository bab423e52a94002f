-- Workers waiting for work (see the PostgreSQL migration of the same number): one process
-- owns a SQLite store, whose wake-ups never leave it, so the table stays empty here. It exists
-- so that both dialects keep the same schema versions.
CREATE TABLE idle_workers (
    channel TEXT PRIMARY KEY,
    since   REAL NOT NULL
);
