-- External anchoring (INTEGRITY.md, "External anchoring (v1, exact)").
--
-- log_id names this log in every anchor bundle, so that bundles cannot be
-- replayed across logs: a random UUID made once, at install, lowercase with
-- hyphens (gen_random_uuid() prints that form).
INSERT INTO audit.settings (key, value) VALUES ('log_id', gen_random_uuid()::text)
ON CONFLICT (key) DO NOTHING;

-- The bundles the worker has written, so that it knows where it is: the next
-- number, the previous message's hash. Verification never trusts this table
-- (only the sink and the public keys); it only uses the newest number to say
-- when a sink lost its newest bundles.
--
-- A bundle is reserved here (written_at NULL) before it is put in the sink,
-- with everything its file is built from, so that a worker killed between
-- the two rebuilds the same statement and never signs a different bundle
-- under the same number.
CREATE TABLE IF NOT EXISTS audit.anchor_bundles (
    bundle          bigint PRIMARY KEY CHECK (bundle > 0),
    log_id          text NOT NULL CHECK (log_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'),
    prev            text NOT NULL CHECK (prev ~ '^[0-9a-f]{64}$'),
    message_sha256  text NOT NULL CHECK (message_sha256 ~ '^[0-9a-f]{64}$'),
    root            text NOT NULL CHECK (root ~ '^[0-9a-f]{64}$'),
    anchored_at_us  bigint NOT NULL,
    -- [{"chain": c, "seq": n, "hash": "..."}, ...] in chain order
    heads           jsonb NOT NULL CHECK (jsonb_typeof(heads) = 'array'),
    key_id          text NOT NULL,
    sink            text NOT NULL,
    reserved_at     timestamptz NOT NULL DEFAULT now(),
    written_at      timestamptz,
    file_sha256     text CHECK (file_sha256 ~ '^[0-9a-f]{64}$')
);

GRANT SELECT ON audit.anchor_bundles TO audit_reader;
GRANT INSERT, UPDATE ON audit.anchor_bundles TO audit_maintainer;

-- Verification findings gain the anchor kinds.
ALTER TABLE audit.verification_findings DROP CONSTRAINT IF EXISTS verification_findings_kind_check;
ALTER TABLE audit.verification_findings ADD CONSTRAINT verification_findings_kind_check
    CHECK (kind IN ('row_modified', 'chain_gap', 'chain_fork', 'checkpoint_mismatch', 'checkpoint_forged',
                    'tail_truncated', 'unauthorized_redaction',
                    'anchor_mismatch', 'anchor_forged', 'anchor_gap', 'anchor_rollback'));
