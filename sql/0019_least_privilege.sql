-- auditdb step 19: least privilege that works.
--
-- The worker's documented role (audit_maintainer, a member of audit_reader)
-- must be able to run every job.

-- The alert evaluator counts the rows of the default partition (rows whose
-- month has no partition yet) by reading it directly: through the parent it
-- would scan every partition. Readers already read every row through
-- audit.audit_log, so this grants no data they could not see.
GRANT SELECT ON audit.audit_log_default TO audit_reader;

-- Sealed verification runs. audit_maintainer records runs, so it may
-- UPDATE audit.verification_runs, and could flip a tampered run to intact.
-- The verifier seals each finished run with the active seal key (which
-- never enters the database): key_id and mac, a HMAC over the run's result
-- (README, "Sealed records besides checkpoints"). Readers with the keys
-- check it; runs recorded before this step (id below run_seals_from) were
-- never sealed.
ALTER TABLE audit.verification_runs ADD COLUMN IF NOT EXISTS key_id text;
ALTER TABLE audit.verification_runs ADD COLUMN IF NOT EXISTS mac text;
INSERT INTO audit.settings (key, value)
SELECT 'run_seals_from', (coalesce(max(id), 0) + 1)::text FROM audit.verification_runs
ON CONFLICT (key) DO NOTHING;

-- archived_at is mutable (not hashed) and maintenance's: a writer may not
-- set it. INSERT becomes a column grant of every column but archived_at,
-- on the table (INSERT, COPY) and on the public view.
REVOKE INSERT ON audit.audit_log, public.audit_log FROM audit_writer;
GRANT INSERT (id, chain_id, chain_seq, "timestamp", recorded_at, action, status, principal_type,
    organization_id, target_resource_type, event_version, correlation_id, data_classification,
    retention_policy, processing_latency, ttl, principal_id, target_resource_id, source_ip,
    outcome_description, details, pii_salt, pii_commitment, hash, hash_algorithm, hash_version)
    ON audit.audit_log, public.audit_log TO audit_writer;
