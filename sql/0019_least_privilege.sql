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
