-- auditdb step 7: roles and grants.
--
--   audit_writer      inserts events; reads back only what INSERT ... RETURNING
--                     needs (id, timestamp, recorded_at, chain_id, chain_seq, hash)
--   audit_reader      reads the log, the status views and the integrity tables
--   audit_maintainer  the worker: partitions, checkpoints, verification runs,
--                     retention; a member of audit_reader
--
-- The roles are NOLOGIN groups: grant them to login roles. Roles belong to
-- the cluster, so a second database with auditdb shares them.

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['audit_writer', 'audit_reader', 'audit_maintainer'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$$;

GRANT audit_reader TO audit_maintainer;

REVOKE ALL ON ALL TABLES IN SCHEMA audit FROM PUBLIC;
GRANT USAGE ON SCHEMA audit TO audit_writer, audit_reader, audit_maintainer;

-- writer
GRANT INSERT ON audit.audit_log, public.audit_log TO audit_writer;
GRANT SELECT (id, "timestamp", recorded_at, chain_id, chain_seq, hash)
    ON audit.audit_log, public.audit_log TO audit_writer;

-- reader
GRANT SELECT ON audit.audit_log, public.audit_log, audit.settings, audit.chain_heads,
    audit.integrity_checkpoints, audit.archive_manifests, audit.redactions,
    audit.verification_runs, audit.verification_findings, audit.retention_policies,
    audit.integrity_status, audit.partition_status
    TO audit_reader;

-- maintainer (the worker)
GRANT INSERT ON audit.integrity_checkpoints, audit.archive_manifests, audit.redactions,
    audit.verification_findings TO audit_maintainer;
GRANT INSERT, UPDATE ON audit.verification_runs TO audit_maintainer;
GRANT INSERT, UPDATE, DELETE ON audit.retention_policies TO audit_maintainer;

-- Partition maintenance runs as the owner of audit_log, for the worker only.
REVOKE EXECUTE ON FUNCTION audit.create_partition(date), audit.ensure_partitions(integer),
    audit.rescue_default_partition(), audit.install_partition_triggers(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.create_partition(date), audit.ensure_partitions(integer),
    audit.rescue_default_partition() TO audit_maintainer;

-- The chain machinery (step 3) runs as the owner and is executable by no one
-- else: the trigger functions fire without an EXECUTE grant, and a writer
-- must be able neither to call them nor to attach them to a table of its own.
-- audit.chain_holders and the id sequence have no grants at all.
REVOKE EXECUTE ON FUNCTION audit.chain_acquire(), audit.chain_true_head(smallint),
    audit.chain_state_verified(), audit.audit_log_before_insert(),
    audit.audit_log_flush_chain_head() FROM PUBLIC;
REVOKE ALL ON SEQUENCE audit.audit_log_id_seq FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION audit.chain_holders_scrub() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.chain_holders_scrub() TO audit_maintainer;
