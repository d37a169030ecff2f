-- auditdb step 8: switching the insert trigger to the C accelerator.
--
-- audit.audit_log_before_insert() (PL/pgSQL) is the reference and works on
-- any PostgreSQL, managed services included. Where the server has
-- auditdb_accel.so (`make install-extension` builds it) and the caller may
-- create C functions (a superuser), audit.use_accelerator(true) points the
-- trigger at the C version, which computes the same bytes several times
-- faster, and writes the head back in C. audit.use_accelerator(false)
-- switches back. Both take chains through audit.chain_acquire(), which finds
-- the chain a transaction holds and its newest row, so switching is safe at
-- any time, even inside a transaction that has written rows.
CREATE OR REPLACE FUNCTION audit.use_accelerator(enable boolean DEFAULT true)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    use_c boolean := enable;
    rel   regclass;
BEGIN
    IF use_c THEN
        BEGIN
            -- the row trigger, and the head flush it pairs with (SECURITY
            -- DEFINER like its PL/pgSQL twin); executable by no one else
            CREATE OR REPLACE FUNCTION audit.audit_log_before_insert_c() RETURNS trigger
                LANGUAGE c AS '$libdir/auditdb_accel', 'audit_log_before_insert_c';
            CREATE OR REPLACE FUNCTION audit.audit_log_flush_chain_head_c() RETURNS trigger
                LANGUAGE c SECURITY DEFINER AS '$libdir/auditdb_accel', 'audit_log_flush_chain_head_c';
            REVOKE EXECUTE ON FUNCTION audit.audit_log_before_insert_c(),
                audit.audit_log_flush_chain_head_c() FROM PUBLIC;
        EXCEPTION WHEN undefined_file OR insufficient_privilege OR undefined_function THEN
            RAISE NOTICE 'auditdb: the C accelerator is not available here (%); the PL/pgSQL trigger stays', SQLERRM;
            use_c := false;
        END;
    END IF;
    EXECUTE format('CREATE OR REPLACE TRIGGER zz_audit_log_integrity BEFORE INSERT ON audit.audit_log '
                   'FOR EACH ROW EXECUTE FUNCTION %s',
                   CASE WHEN use_c THEN 'audit.audit_log_before_insert_c()' ELSE 'audit.audit_log_before_insert()' END);
    -- statement triggers are per relation: the parent and every partition
    FOR rel IN SELECT 'audit.audit_log'::regclass
               UNION ALL SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'audit.audit_log'::regclass
    LOOP
        EXECUTE format('CREATE OR REPLACE TRIGGER zz_audit_log_chain_flush AFTER INSERT ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION %s', rel,
                       CASE WHEN use_c THEN 'audit.audit_log_flush_chain_head_c()' ELSE 'audit.audit_log_flush_chain_head()' END);
    END LOOP;
    RETURN CASE WHEN use_c THEN 'c' ELSE 'plpgsql' END;
END
$$;

REVOKE EXECUTE ON FUNCTION audit.use_accelerator(boolean) FROM PUBLIC;

-- Which function the insert trigger runs: 'c' or 'plpgsql'.
CREATE OR REPLACE FUNCTION audit.trigger_implementation()
RETURNS text LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE p.proname WHEN 'audit_log_before_insert_c' THEN 'c' ELSE 'plpgsql' END
    FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
    WHERE t.tgrelid = 'audit.audit_log'::regclass AND t.tgname = 'zz_audit_log_integrity'
$$;
