-- Deployed workflow documents (Serverless Workflow DSL): one row per version, never changed.
-- Workers register every version they find here, so runs started by any process find theirs.
CREATE TABLE documents (
    namespace   text NOT NULL,
    name        text NOT NULL,
    version     text NOT NULL,
    text        text NOT NULL,
    digest      text NOT NULL,
    deployed_at double precision NOT NULL,
    CONSTRAINT documents_pkey PRIMARY KEY (namespace, name, version)
);
CREATE INDEX documents_deployed_at ON documents (deployed_at);
