-- Process-wide singletons (lease reaper, scheduler): the row names the process holding each
-- one until expires_at; a holder that dies or stalls stops renewing and another takes over.
CREATE TABLE singletons (
    name       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at REAL NOT NULL
);
