-- Workers waiting for work, one row each (PostgreSQL only): the channel their process listens
-- on and when they last said they were idle (server clock, epoch seconds). A write that makes
-- work ready wakes as many of them as it made jobs ready, each on its own channel, instead of
-- every worker at once; a row older than a few seconds belongs to a worker that stopped
-- polling (it died or got busy) and wakes no one.
CREATE TABLE idle_workers (
    channel text PRIMARY KEY,
    since   double precision NOT NULL
);
