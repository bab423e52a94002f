-- Events: every CloudEvent that reached opsloom, in intake order (seq). A producer's
-- (source, id) is unique: the same event sent twice is stored once.
CREATE TABLE events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL,
    source          TEXT NOT NULL,
    type            TEXT NOT NULL,
    subject         TEXT,
    time            TEXT,
    datacontenttype TEXT,
    dataschema      TEXT,
    specversion     TEXT NOT NULL,
    extensions      BLOB,
    data            BLOB,
    data_base64     TEXT,
    received_at     REAL NOT NULL,
    CONSTRAINT events_source_id_key UNIQUE (source, id)
);
CREATE INDEX events_type_idx ON events (type, seq);

-- Subscriptions of waiting runs to events. Each filter is also a row of subscription_filters
-- keyed by event type, so an incoming event reads only the filters written for its type.
CREATE TABLE subscriptions (
    id         TEXT PRIMARY KEY,
    run_id     TEXT NOT NULL,
    filters    BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX subscriptions_run_idx ON subscriptions (run_id);

CREATE TABLE subscription_filters (
    subscription_id TEXT NOT NULL,
    position        INTEGER NOT NULL,
    type            TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    filter          BLOB NOT NULL,
    CONSTRAINT subscription_filters_pkey PRIMARY KEY (subscription_id, position)
) WITHOUT ROWID;
CREATE INDEX subscription_filters_type_idx ON subscription_filters (type);
