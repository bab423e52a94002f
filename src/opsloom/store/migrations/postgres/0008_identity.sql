-- Identities: users (never deleted, only disabled), their roles, group memberships and API
-- tokens. A token is kept only as the SHA-256 of its text: the text is shown once, at creation.
CREATE TABLE users (
    id         text NOT NULL,
    name       text,
    email      text,
    slack_id   text,
    disabled   integer NOT NULL DEFAULT 0,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_slack_id_key UNIQUE (slack_id)
);

CREATE TABLE user_roles (
    user_id    text NOT NULL,
    role       text NOT NULL,
    granted_at double precision NOT NULL,
    granted_by text NOT NULL,
    CONSTRAINT user_roles_pkey PRIMARY KEY (user_id, role),
    CONSTRAINT user_roles_user_fkey FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT user_roles_role_check CHECK (role IN ('viewer', 'operator', 'approver', 'admin'))
);

CREATE TABLE group_members (
    group_name text NOT NULL,
    user_id    text NOT NULL,
    added_at   double precision NOT NULL,
    added_by   text NOT NULL,
    CONSTRAINT group_members_pkey PRIMARY KEY (group_name, user_id),
    CONSTRAINT group_members_user_fkey FOREIGN KEY (user_id) REFERENCES users (id)
);
CREATE INDEX group_members_user_idx ON group_members (user_id);

CREATE TABLE api_tokens (
    id           text NOT NULL,
    user_id      text NOT NULL,
    name         text NOT NULL,
    hash         text NOT NULL,
    created_at   double precision NOT NULL,
    expires_at   double precision,
    revoked_at   double precision,
    last_used_at double precision,
    CONSTRAINT api_tokens_pkey PRIMARY KEY (id),
    CONSTRAINT api_tokens_hash_key UNIQUE (hash),
    CONSTRAINT api_tokens_user_fkey FOREIGN KEY (user_id) REFERENCES users (id)
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

-- The audit log: append-only, each entry sealed with the SHA-256 of its content and of the
-- previous entry's hash. audit_head holds the last seq and hash: appenders read and move it in
-- the transaction that inserts the entry, and it shows when entries were cut off the end.
CREATE TABLE audit_log (
    seq       bigint NOT NULL,
    at        double precision NOT NULL,
    actor     text NOT NULL,
    action    text NOT NULL,
    subject   text NOT NULL,
    data      text NOT NULL,
    prev_hash text NOT NULL,
    hash      text NOT NULL,
    CONSTRAINT audit_log_pkey PRIMARY KEY (seq),
    CONSTRAINT audit_log_seq_check CHECK (seq > 0)
);
CREATE INDEX audit_log_at_idx ON audit_log (at);

CREATE TABLE audit_head (
    id   integer NOT NULL,
    seq  bigint NOT NULL,
    hash text NOT NULL,
    CONSTRAINT audit_head_pkey PRIMARY KEY (id),
    CONSTRAINT audit_head_single_check CHECK (id = 1)
);
INSERT INTO audit_head (id, seq, hash)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
