-- Identities: users (never deleted, only disabled), their roles, group memberships and API
-- tokens. A token is kept only as the SHA-256 of its text: the text is shown once, at creation.
CREATE TABLE users (
    id         TEXT NOT NULL,
    name       TEXT,
    email      TEXT,
    slack_id   TEXT,
    disabled   INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_slack_id_key UNIQUE (slack_id)
);

CREATE TABLE user_roles (
    user_id    TEXT NOT NULL,
    role       TEXT NOT NULL,
    granted_at REAL NOT NULL,
    granted_by TEXT NOT NULL,
    CONSTRAINT user_roles_pkey PRIMARY KEY (user_id, role),
    CONSTRAINT user_roles_user_fkey FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT user_roles_role_check CHECK (role IN ('viewer', 'operator', 'approver', 'admin'))
) WITHOUT ROWID;

CREATE TABLE group_members (
    group_name TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    added_at   REAL NOT NULL,
    added_by   TEXT NOT NULL,
    CONSTRAINT group_members_pkey PRIMARY KEY (group_name, user_id),
    CONSTRAINT group_members_user_fkey FOREIGN KEY (user_id) REFERENCES users (id)
) WITHOUT ROWID;
CREATE INDEX group_members_user_idx ON group_members (user_id);

CREATE TABLE api_tokens (
    id           TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    name         TEXT NOT NULL,
    hash         TEXT NOT NULL,
    created_at   REAL NOT NULL,
    expires_at   REAL,
    revoked_at   REAL,
    last_used_at REAL,
    CONSTRAINT api_tokens_pkey PRIMARY KEY (id),
    CONSTRAINT api_tokens_hash_key UNIQUE (hash),
    CONSTRAINT api_tokens_user_fkey FOREIGN KEY (user_id) REFERENCES users (id)
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

-- The audit log: append-only, each entry sealed with the SHA-256 of its content and of the
-- previous entry's hash. audit_head holds the last seq and hash: appenders read and move it in
-- the transaction that inserts the entry, and it shows when entries were cut off the end.
CREATE TABLE audit_log (
    seq       INTEGER NOT NULL,
    at        REAL NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    data      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    CONSTRAINT audit_log_pkey PRIMARY KEY (seq),
    CONSTRAINT audit_log_seq_check CHECK (seq > 0)
);
CREATE INDEX audit_log_at_idx ON audit_log (at);

CREATE TABLE audit_head (
    id   INTEGER NOT NULL,
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL,
    CONSTRAINT audit_head_pkey PRIMARY KEY (id),
    CONSTRAINT audit_head_single_check CHECK (id = 1)
);
INSERT INTO audit_head (id, seq, hash)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
