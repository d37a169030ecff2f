-- auditdb step 4: the append-only guard, and the triggers put in place.
--
-- UPDATE, DELETE and TRUNCATE of audit rows fail, whoever runs them (the
-- writer role has no such privilege in the first place; this stops the owner
-- and careless superusers too). The one way through is maintenance: the
-- functions that move rows between partitions, and later retention and
-- erasure, run with the setting auditdb.maintenance set for their own
-- duration (a function-level SET, undone when they return). Anything that
-- gets past the guard anyway, e.g. by disabling the trigger as superuser, is
-- what verification is for.

CREATE OR REPLACE FUNCTION audit.audit_log_append_only()
RETURNS trigger LANGUAGE plpgsql
AS $$
BEGIN
    IF current_setting('auditdb.maintenance', true) IN ('partition_move', 'retention', 'erasure') THEN
        IF TG_LEVEL = 'STATEMENT' THEN
            RETURN NULL;
        END IF;
        RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = 'Audit rows are never changed or removed in place.',
              HINT = 'Retention and GDPR erasure go through auditworker, which archives and seals first.';
END
$$;

DO $$
BEGIN
    -- Named zz_ so that it fires after any other BEFORE INSERT trigger a
    -- deployment adds (triggers fire in name order): it must hash the row as
    -- it will be stored.
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'audit.audit_log'::regclass
                   AND tgname = 'zz_audit_log_integrity') THEN
        CREATE TRIGGER zz_audit_log_integrity BEFORE INSERT ON audit.audit_log
            FOR EACH ROW EXECUTE FUNCTION audit.audit_log_before_insert();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'audit.audit_log'::regclass
                   AND tgname = 'audit_log_append_only') THEN
        CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit.audit_log
            FOR EACH ROW EXECUTE FUNCTION audit.audit_log_append_only();
    END IF;
END
$$;

SELECT audit.install_partition_triggers('audit.audit_log');
SELECT audit.install_partition_triggers('audit.audit_log_default');
