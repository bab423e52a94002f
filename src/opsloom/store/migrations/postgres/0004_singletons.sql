-- Process-wide singletons (lease reaper, scheduler): the row names the process holding each
-- one until expires_at; a holder that dies or stalls stops renewing and another takes over.
CREATE TABLE singletons (
    name       text PRIMARY KEY,
    owner      text NOT NULL,
    expires_at double precision NOT NULL
);
