-- Deployed workflow documents (Serverless Workflow DSL): one row per version, never changed.
-- Workers register every version they find here, so runs started by any process find theirs.
CREATE TABLE documents (
    namespace   TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    text        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    deployed_at REAL NOT NULL,
    CONSTRAINT documents_pkey PRIMARY KEY (namespace, name, version)
);
CREATE INDEX documents_deployed_at ON documents (deployed_at);
