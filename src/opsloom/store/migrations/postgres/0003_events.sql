-- Events: every CloudEvent that reached opsloom, in intake order (seq). A producer's
-- (source, id) is unique: the same event sent twice is stored once.
CREATE TABLE events (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              text NOT NULL,
    source          text NOT NULL,
    type            text NOT NULL,
    subject         text,
    time            text,
    datacontenttype text,
    dataschema      text,
    specversion     text NOT NULL,
    extensions      bytea,
    data            bytea,
    data_base64     text,
    received_at     double precision NOT NULL,
    CONSTRAINT events_source_id_key UNIQUE (source, id)
);
CREATE INDEX events_type_idx ON events (type, seq);

-- Subscriptions of waiting runs to events. Each filter is also a row of subscription_filters
-- keyed by event type, so an incoming event reads only the filters written for its type.
CREATE TABLE subscriptions (
    id         text PRIMARY KEY,
    run_id     text NOT NULL,
    filters    bytea NOT NULL,
    created_at double precision NOT NULL
);
CREATE INDEX subscriptions_run_idx ON subscriptions (run_id);

CREATE TABLE subscription_filters (
    subscription_id text NOT NULL,
    position        integer NOT NULL,
    type            text NOT NULL,
    run_id          text NOT NULL,
    filter          bytea NOT NULL,
    CONSTRAINT subscription_filters_pkey PRIMARY KEY (subscription_id, position)
);
CREATE INDEX subscription_filters_type_idx ON subscription_filters (type);
