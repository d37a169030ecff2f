-- auditdb step 5: monthly partitions.
--
-- Partitions are named audit_log_YYYY_MM and cover one calendar month in UTC
-- (the bounds are written with an explicit +00, so the session's TimeZone
-- does not matter). Rows whose month has no partition go to
-- audit_log_default; creating the month's partition moves them over as they
-- are: same id, same hashes, nothing re-computed, nothing lost.
--
-- These functions run as their owner (SECURITY DEFINER: partition DDL needs
-- ownership of audit_log) and are granted to audit_maintainer only.
--
-- auditdb.maintenance is set with set_config(..., true) in the body and put
-- back before returning, not with a function-level SET clause: PostgreSQL 15
-- lets only superusers attach an unregistered (placeholder) setting to a
-- function, so the SET clause failed on managed services, where the owner
-- is not one. An error aborts the (sub)transaction, which undoes the
-- setting too.

CREATE OR REPLACE FUNCTION audit.partition_name(month date)
RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN 'audit_log_' || to_char(month, 'YYYY_MM');

CREATE OR REPLACE FUNCTION audit.create_partition(month date)
RETURNS TABLE (partition_name text, created boolean, rows_moved bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    prev  constant text := current_setting('auditdb.maintenance', true);
    lo    constant date := date_trunc('month', month)::date;
    hi    constant date := (date_trunc('month', month) + interval '1 month')::date;
    name  constant text := audit.partition_name(date_trunc('month', month)::date);
    lo_ts constant text := to_char(lo, 'YYYY-MM-DD') || ' 00:00:00+00';
    hi_ts constant text := to_char(hi, 'YYYY-MM-DD') || ' 00:00:00+00';
    moved bigint := 0;
BEGIN
    PERFORM set_config('auditdb.maintenance', 'partition_move', true);
    -- one partition DDL at a time (a row lock no other role can take)
    PERFORM 1 FROM audit.maintenance_locks l WHERE l.name = 'partition_ddl' FOR UPDATE;
    IF to_regclass(format('audit.%I', name)) IS NOT NULL THEN
        PERFORM set_config('auditdb.maintenance', coalesce(prev, ''), true);
        RETURN QUERY SELECT name, false, 0::bigint;
        RETURN;
    END IF;

    -- Writers routed to the default partition wait while rows move, so none
    -- can slip in between the move and the ATTACH. Other months are unaffected.
    LOCK TABLE audit.audit_log_default IN EXCLUSIVE MODE;

    IF EXISTS (SELECT 1 FROM audit.audit_log_default d
               WHERE d."timestamp" >= lo_ts::timestamptz AND d."timestamp" < hi_ts::timestamptz) THEN
        -- The classic failure (a non-empty default blocks CREATE ... PARTITION OF)
        -- is avoided by building the partition beside the table, moving the
        -- rows into it, and attaching it. The CHECK lets ATTACH skip its scan.
        EXECUTE format('CREATE TABLE audit.%I (LIKE audit.audit_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
        EXECUTE format('ALTER TABLE audit.%I ADD CONSTRAINT %I CHECK ("timestamp" >= %L AND "timestamp" < %L)',
                       name, name || '_bounds', lo_ts, hi_ts);
        EXECUTE format('WITH moved AS (DELETE FROM audit.audit_log_default WHERE "timestamp" >= %L AND "timestamp" < %L RETURNING *) '
                       'INSERT INTO audit.%I SELECT * FROM moved', lo_ts, hi_ts, name);
        GET DIAGNOSTICS moved = ROW_COUNT;
        EXECUTE format('ALTER TABLE audit.audit_log ATTACH PARTITION audit.%I FOR VALUES FROM (%L) TO (%L)',
                       name, lo_ts, hi_ts);
        EXECUTE format('ALTER TABLE audit.%I DROP CONSTRAINT %I', name, name || '_bounds');
    ELSE
        EXECUTE format('CREATE TABLE audit.%I PARTITION OF audit.audit_log FOR VALUES FROM (%L) TO (%L)',
                       name, lo_ts, hi_ts);
    END IF;
    PERFORM audit.install_partition_triggers(format('audit.%I', name)::regclass);
    PERFORM set_config('auditdb.maintenance', coalesce(prev, ''), true);
    RETURN QUERY SELECT name, true, moved;
END
$$;

-- Creates the partitions from the current month (UTC) through months_ahead
-- months after it. Idempotent: existing partitions are left alone, and the
-- rows of a month found in the default partition are moved into it.
CREATE OR REPLACE FUNCTION audit.ensure_partitions(months_ahead integer DEFAULT 3)
RETURNS TABLE (partition_name text, created boolean, rows_moved bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF months_ahead IS NULL OR months_ahead < 0 OR months_ahead > 120 THEN
        RAISE EXCEPTION 'months_ahead: must be between 0 and 120'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    SELECT p.*
    FROM generate_series(0, months_ahead) AS i,
         LATERAL audit.create_partition((date_trunc('month', now() AT TIME ZONE 'UTC')
                                         + make_interval(months => i))::date) AS p;
END
$$;

-- Moves every row of the default partition into its month's partition,
-- creating the partitions as needed. Returns one row per month moved.
CREATE OR REPLACE FUNCTION audit.rescue_default_partition()
RETURNS TABLE (partition_name text, created boolean, rows_moved bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m date;
BEGIN
    FOR m IN
        SELECT DISTINCT date_trunc('month', d."timestamp" AT TIME ZONE 'UTC')::date
        FROM audit.audit_log_default d ORDER BY 1
    LOOP
        RETURN QUERY SELECT * FROM audit.create_partition(m);
    END LOOP;
END
$$;

-- Every partition of audit_log with its bounds, size and row estimate.
CREATE OR REPLACE FUNCTION audit.partitions()
RETURNS TABLE (partition_name text, is_default boolean, range_start timestamptz,
               range_end timestamptz, total_bytes bigint, row_estimate bigint,
               triggers_ok boolean)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.relname::text,
           b.bound = 'DEFAULT',
           (regexp_match(b.bound, 'FROM \(''([^'']+)''\)'))[1]::timestamptz,
           (regexp_match(b.bound, 'TO \(''([^'']+)''\)'))[1]::timestamptz,
           pg_total_relation_size(c.oid),
           greatest(c.reltuples, 0)::bigint,
           (SELECT count(*) FROM pg_trigger t
             WHERE t.tgrelid = c.oid
               AND t.tgname IN ('zz_audit_log_chain_flush', 'audit_log_no_truncate')) = 2
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) b
    WHERE i.inhparent = 'audit.audit_log'::regclass
    ORDER BY b.bound = 'DEFAULT', 3
$$;
