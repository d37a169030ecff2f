-- auditdb step 19: least privilege that works.
--
-- The worker's documented role (audit_maintainer, a member of audit_reader)
-- must be able to run every job.

-- The alert evaluator counts the rows of the default partition (rows whose
-- month has no partition yet) by reading it directly: through the parent it
-- would scan every partition. Readers already read every row through
-- audit.audit_log, so this grants no data they could not see.
GRANT SELECT ON audit.audit_log_default TO audit_reader;
