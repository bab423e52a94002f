-- Connections: named credentials and settings of one connector. Secrets are sealed by the
-- connector runtime before they get here (the store never sees them in clear text).
CREATE TABLE connections (
    name       text PRIMARY KEY,
    connector  text NOT NULL,
    settings   text NOT NULL,
    secrets    text NOT NULL,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL
);

-- The circuit breaker of each connection, as last changed by any worker.
CREATE TABLE breakers (
    connection text PRIMARY KEY,
    state      text NOT NULL CHECK (state IN ('closed', 'open', 'half_open')),
    opened_at  double precision,
    reopen_at  double precision,
    failures   integer NOT NULL,
    changed_at double precision NOT NULL
);
