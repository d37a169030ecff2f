-- auditdb schema, step 1: tables.
--
-- This file is both a migration (run by `auditworker migrate`) and part of the
-- `CREATE EXTENSION auditdb` script; see sql/README.md. Everything here is
-- written to be idempotent so that re-running a step is harmless.
--
-- The hashing contract for audit_log lives in ../shared/design/INTEGRITY.md
-- (version 1); the columns and their categories below follow it exactly.

CREATE SCHEMA IF NOT EXISTS audit;
COMMENT ON SCHEMA audit IS 'auditdb: tamper-evident audit log (integrity spec v1)';

-- Install-time settings. chain_count is fixed once rows exist: changing it
-- would not break verification, but the insert trigger only spreads writers
-- over the chains that have a head row.
CREATE TABLE IF NOT EXISTS audit.settings (
    key   text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO audit.settings (key, value) VALUES
    ('chain_count', '16'),
    ('integrity_spec_version', '1')
ON CONFLICT (key) DO NOTHING;

-- Row ids come from this sequence, through the insert trigger only: a client
-- cannot choose one (not with OVERRIDING SYSTEM VALUE, not with COPY), and
-- no role but the owner may call nextval/setval on it, so the ids the trigger
-- has handed out in a session (currval) are a fact a writer cannot forge.
CREATE SEQUENCE IF NOT EXISTS audit.audit_log_id_seq AS bigint;

CREATE TABLE IF NOT EXISTS audit.audit_log (
    -- core
    id                   bigint NOT NULL,  -- set by the insert trigger from audit.audit_log_id_seq
    chain_id             smallint NOT NULL,
    chain_seq            bigint NOT NULL,
    "timestamp"          timestamptz NOT NULL,
    recorded_at          timestamptz NOT NULL,
    action               text NOT NULL,
    status               text NOT NULL,
    principal_type       text,
    organization_id      text,
    target_resource_type text,
    event_version        text DEFAULT '1.0',
    correlation_id       text,
    data_classification  text NOT NULL DEFAULT 'INTERNAL',
    retention_policy     text NOT NULL DEFAULT 'standard',
    processing_latency   integer,
    ttl                  text,
    -- pii: hashed only through pii_commitment, so erasure can remove them
    principal_id         text,
    target_resource_id   text,
    source_ip            inet,
    outcome_description  text,
    details              jsonb,
    -- integrity: written by the insert trigger, never by clients
    pii_salt             bytea,
    pii_commitment       bytea NOT NULL,
    hash                 text NOT NULL,
    hash_algorithm       text NOT NULL DEFAULT 'SHA-256' CHECK (hash_algorithm = 'SHA-256'),
    hash_version         smallint NOT NULL DEFAULT 1 CHECK (hash_version = 1),
    -- mutable: not hashed, changed only by maintenance
    archived_at          timestamptz,
    PRIMARY KEY (id, "timestamp")
) PARTITION BY RANGE ("timestamp");

ALTER SEQUENCE audit.audit_log_id_seq OWNED BY audit.audit_log.id;

COMMENT ON TABLE audit.audit_log IS
    'Append-only audit events, partitioned by month on "timestamp". Integrity columns are set by trigger audit_log_integrity (INTEGRITY.md v1).';

-- Rows whose month has no partition yet land here; the partitions job moves
-- them into their month (audit.rescue_default_partition) without re-hashing.
CREATE TABLE IF NOT EXISTS audit.audit_log_default PARTITION OF audit.audit_log DEFAULT;

-- Indexes for the common reads. Created on the parent, so every partition,
-- present or future, gets them.
CREATE INDEX IF NOT EXISTS audit_log_timestamp_idx       ON audit.audit_log ("timestamp");
CREATE INDEX IF NOT EXISTS audit_log_principal_ts_idx    ON audit.audit_log (principal_id, "timestamp");
CREATE INDEX IF NOT EXISTS audit_log_organization_ts_idx ON audit.audit_log (organization_id, "timestamp");
CREATE INDEX IF NOT EXISTS audit_log_target_idx          ON audit.audit_log (target_resource_type, target_resource_id, "timestamp");
CREATE INDEX IF NOT EXISTS audit_log_chain_idx           ON audit.audit_log (chain_id, chain_seq, id);

-- One row per chain: the newest seq and its raw chain hash. The insert
-- trigger reads it once per transaction (under the chain's lock) and writes
-- it once per statement. fillfactor leaves room for HOT updates.
CREATE TABLE IF NOT EXISTS audit.chain_heads (
    chain_id   smallint PRIMARY KEY,
    head_seq   bigint NOT NULL DEFAULT 0 CHECK (head_seq >= 0),
    head_hash  bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 20);

-- One row per chain: which transaction writes into it now. A transaction
-- takes a chain by locking and updating its row here (audit.chain_acquire):
-- only the owner may lock or read these rows, so no other role can hold a
-- chain, block the writers or learn a transaction's secret. xact is the
-- holding top-level transaction; secret, 32 random bytes drawn for it,
-- keys the transaction's chain state (INSERT trigger) and derives its salts.
-- Both are rolled back with the transaction or savepoint that took the chain.
CREATE TABLE IF NOT EXISTS audit.chain_holders (
    chain_id smallint PRIMARY KEY,
    xact     xid8,
    secret   bytea CHECK (octet_length(secret) = 32)
) WITH (fillfactor = 20);

-- Locks of maintenance that must not run twice at once (partition DDL), as
-- rows only the owner may lock: an advisory lock, which any role can take,
-- would let a role without grants hold the partitions job off for good.
CREATE TABLE IF NOT EXISTS audit.maintenance_locks (
    name text PRIMARY KEY
);
INSERT INTO audit.maintenance_locks (name) VALUES ('partition_ddl') ON CONFLICT (name) DO NOTHING;

-- HMAC checkpoints written by the worker; the key never enters the database.
CREATE TABLE IF NOT EXISTS audit.integrity_checkpoints (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain_id  smallint NOT NULL,
    chain_seq bigint NOT NULL CHECK (chain_seq > 0),
    hash      text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    sealed_at timestamptz NOT NULL,
    key_id    text NOT NULL,
    mac       text NOT NULL CHECK (mac ~ '^[0-9a-f]{64}$'),
    UNIQUE (chain_id, chain_seq, key_id)
);
CREATE INDEX IF NOT EXISTS integrity_checkpoints_chain_idx
    ON audit.integrity_checkpoints (chain_id, chain_seq DESC);

-- Sealed archive manifests: per chain, a seq range that retention removed
-- from audit_log after archiving it, and the chain hash at its end.
CREATE TABLE IF NOT EXISTS audit.archive_manifests (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain_id       smallint NOT NULL,
    first_seq      bigint NOT NULL CHECK (first_seq > 0),
    last_seq       bigint NOT NULL,
    end_hash       text NOT NULL CHECK (end_hash ~ '^[0-9a-f]{64}$'),
    row_count      bigint NOT NULL,
    archive_uri    text NOT NULL,
    archive_sha256 text NOT NULL CHECK (archive_sha256 ~ '^[0-9a-f]{64}$'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    key_id         text NOT NULL,
    mac            text NOT NULL,
    CHECK (last_seq >= first_seq)
);
CREATE INDEX IF NOT EXISTS archive_manifests_chain_idx
    ON audit.archive_manifests (chain_id, first_seq);

-- Sealed redaction records: rows whose pii_salt was removed by GDPR erasure.
CREATE TABLE IF NOT EXISTS audit.redactions (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    row_id     bigint NOT NULL,
    chain_id   smallint NOT NULL,
    chain_seq  bigint NOT NULL,
    reason     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    key_id     text NOT NULL,
    mac        text NOT NULL
);
CREATE INDEX IF NOT EXISTS redactions_chain_idx ON audit.redactions (chain_id, chain_seq);

CREATE TABLE IF NOT EXISTS audit.verification_runs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mode           text NOT NULL CHECK (mode IN ('full', 'incremental')),
    status         text NOT NULL DEFAULT 'running'
                   CHECK (status IN ('running', 'intact', 'tampered', 'failed')),
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    chains         integer[] NOT NULL DEFAULT '{}',
    rows_checked   bigint NOT NULL DEFAULT 0,
    findings_count integer NOT NULL DEFAULT 0,
    -- per chain: the last seq and hash that verified, for incremental runs
    chain_results  jsonb NOT NULL DEFAULT '{}',
    error          text
);
CREATE INDEX IF NOT EXISTS verification_runs_started_idx ON audit.verification_runs (started_at DESC);

CREATE TABLE IF NOT EXISTS audit.verification_findings (
    run_id    bigint NOT NULL REFERENCES audit.verification_runs (id) ON DELETE CASCADE,
    chain_id  smallint NOT NULL,
    chain_seq bigint,
    row_id    bigint,
    kind      text NOT NULL CHECK (kind IN ('row_modified', 'chain_gap', 'chain_fork',
                  'checkpoint_mismatch', 'checkpoint_forged', 'tail_truncated',
                  'unauthorized_redaction')),
    detail    text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS verification_findings_run_idx ON audit.verification_findings (run_id);

CREATE TABLE IF NOT EXISTS audit.retention_policies (
    policy_name         text PRIMARY KEY CHECK (policy_name ~ '^[a-z][a-z0-9_]{0,49}$'),
    retention_days      integer NOT NULL CHECK (retention_days > 0),
    archive_after_days  integer CHECK (archive_after_days >= 0),
    delete_after_days   integer CHECK (delete_after_days > 0),
    data_classification text NOT NULL
                        CHECK (data_classification IN ('PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'PHI')),
    description         text,
    is_active           boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (archive_after_days IS NULL OR archive_after_days <= retention_days)
);
INSERT INTO audit.retention_policies
    (policy_name, retention_days, archive_after_days, data_classification, description)
VALUES
    ('standard',     2555, 365, 'INTERNAL',     'Default: seven years, archived after one'),
    ('phi_extended', 2555, 365, 'PHI',          'Protected health information: seven years (HIPAA asks six)'),
    ('minimal',        90,  30, 'PUBLIC',       'Public, low-value events'),
    ('confidential', 1825, 365, 'CONFIDENTIAL', 'Confidential business events: five years')
ON CONFLICT (policy_name) DO NOTHING;
