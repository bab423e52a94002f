-- Connections: named credentials and settings of one connector. Secrets are sealed by the
-- connector runtime before they get here (the store never sees them in clear text).
CREATE TABLE connections (
    name       TEXT PRIMARY KEY,
    connector  TEXT NOT NULL,
    settings   TEXT NOT NULL,
    secrets    TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);

-- The circuit breaker of each connection, as last changed by any worker.
CREATE TABLE breakers (
    connection TEXT PRIMARY KEY,
    state      TEXT NOT NULL CHECK (state IN ('closed', 'open', 'half_open')),
    opened_at  REAL,
    reopen_at  REAL,
    failures   INTEGER NOT NULL,
    changed_at REAL NOT NULL
);
