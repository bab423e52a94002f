-- Approvals: durable human tasks. A request has stages (its tasks); stages of one phase run in
-- parallel, phases one after another. Votes are unique per (stage, voter), so a vote is never
-- counted twice; the stage is evaluated in the transaction that records the vote. JSON columns
-- hold the approver ladder (one rung per escalation level) and delegations.
CREATE TABLE approval_requests (
    id          TEXT PRIMARY KEY,
    run_id      TEXT,
    title       TEXT NOT NULL,
    requester   TEXT NOT NULL,
    subject     TEXT NOT NULL,
    risk        TEXT,
    impact      TEXT,
    status      TEXT NOT NULL
                CONSTRAINT approval_requests_status_ck
                CHECK (status IN ('pending', 'approved', 'denied', 'cancelled')),
    decided_by  TEXT,
    reason      TEXT,
    created_at  REAL NOT NULL,
    decided_at  REAL,
    updated_at  REAL NOT NULL
);
CREATE INDEX approval_requests_status_idx ON approval_requests (status, created_at);

CREATE TABLE approval_stages (
    id          TEXT PRIMARY KEY,
    request_id  TEXT NOT NULL
                CONSTRAINT approval_stages_request_fk REFERENCES approval_requests (id),
    position    INTEGER NOT NULL,
    name        TEXT NOT NULL,
    phase       INTEGER NOT NULL,
    mode        TEXT NOT NULL CONSTRAINT approval_stages_mode_ck
                CHECK (mode IN ('any', 'all', 'quorum')),
    quorum      INTEGER NOT NULL,
    ladder      TEXT NOT NULL,
    level       INTEGER NOT NULL DEFAULT 0,
    sla         REAL,
    on_sla      TEXT CONSTRAINT approval_stages_on_sla_ck CHECK (on_sla IN ('deny', 'approve')),
    status      TEXT NOT NULL CONSTRAINT approval_stages_status_ck
                CHECK (status IN ('waiting', 'open', 'clarifying', 'approved', 'denied',
                                  'cancelled')),
    opened_at   REAL,
    deadline    REAL,
    paused_at   REAL,
    escalations INTEGER NOT NULL DEFAULT 0,
    delegations TEXT NOT NULL,
    decided_at  REAL,
    decided_by  TEXT,
    comment     TEXT,
    CONSTRAINT approval_stages_name_uq UNIQUE (request_id, name)
);
CREATE INDEX approval_stages_request_idx ON approval_stages (request_id, position);

CREATE TABLE approval_votes (
    stage_id     TEXT NOT NULL
                 CONSTRAINT approval_votes_stage_fk REFERENCES approval_stages (id),
    request_id   TEXT NOT NULL,
    voter        TEXT NOT NULL,
    approve      INTEGER NOT NULL,
    comment      TEXT,
    on_behalf_of TEXT,
    voted_at     REAL NOT NULL,
    CONSTRAINT approval_votes_voter_uq UNIQUE (stage_id, voter)
);
CREATE INDEX approval_votes_request_idx ON approval_votes (request_id);

CREATE TABLE approval_clarifications (
    id          TEXT PRIMARY KEY,
    request_id  TEXT NOT NULL,
    stage_id    TEXT NOT NULL
                CONSTRAINT approval_clarifications_stage_fk REFERENCES approval_stages (id),
    asked_by    TEXT NOT NULL,
    question    TEXT NOT NULL,
    asked_at    REAL NOT NULL,
    answer      TEXT,
    answered_by TEXT,
    answered_at REAL
);
CREATE INDEX approval_clarifications_request_idx ON approval_clarifications (request_id);

-- Signed one-time links for e-mail: only the SHA-256 of the token is kept.
CREATE TABLE approval_links (
    token_hash  TEXT PRIMARY KEY,
    request_id  TEXT NOT NULL,
    stage_id    TEXT NOT NULL
                CONSTRAINT approval_links_stage_fk REFERENCES approval_stages (id),
    user_id     TEXT NOT NULL,
    approve     INTEGER NOT NULL,
    created_at  REAL NOT NULL,
    expires_at  REAL NOT NULL,
    used_at     REAL
);
