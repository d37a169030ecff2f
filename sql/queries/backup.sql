-- Queries of `auditworker backup` and `auditworker restore`.

-- name: BackupDatabaseRead
-- What a backup is of: the server's major version (for pg_dump) and the
-- database, and whether auditdb is installed there.
SELECT current_setting('server_version_num')::int / 10000, current_database(),
       to_regclass('audit.schema_migrations') IS NOT NULL;

-- name: RestoreRolesEnsure
-- pg_dump does not carry roles (they belong to the cluster): before a
-- restore, the four roles steps 0007 and 0012 create, and the membership
-- 0007 grants, so that the dump's GRANTs find them.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['audit_writer', 'audit_reader', 'audit_maintainer', 'audit_privacy_officer'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
    GRANT audit_reader TO audit_maintainer;
END
$$;

-- name: RestoreAuditLogViewGrants
-- After step 0006's view is made again: its grants, as step 0007 gives
-- them (the backup holds schemas audit and audit_river, not public).
GRANT INSERT ON public.audit_log TO audit_writer;
GRANT SELECT (id, "timestamp", recorded_at, chain_id, chain_seq, hash) ON public.audit_log TO audit_writer;
GRANT SELECT ON public.audit_log TO audit_reader;
