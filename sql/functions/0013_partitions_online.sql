-- auditdb step 13: partition maintenance that neither blocks writers for
-- long nor deadlocks with readers.
--
-- Step 5's audit.create_partition made a month with CREATE TABLE ...
-- PARTITION OF, which takes ACCESS EXCLUSIVE on audit.audit_log: every
-- writer and reader queued behind it, and behind any long reader it waited
-- for. Worse, it took that lock after locking audit_log_default (when it
-- moved rows first), the opposite order from every query on audit_log,
-- which locks the parent and then its partitions: a seal reading the log
-- while the partitions job ran deadlocked with it.
--
-- This version:
--   * locks audit.audit_log first, in SHARE UPDATE EXCLUSIVE mode, which
--     conflicts with neither readers (ACCESS SHARE) nor writers (ROW
--     EXCLUSIVE), only with other DDL and ANALYZE; then the default
--     partition. Parent before partition, like every query: no cycle.
--   * builds the month as a table of its own (indexes included), moves the
--     default partition's rows of that month into it, and ATTACHes it
--     (SHARE UPDATE EXCLUSIVE on the parent). It never takes ACCESS
--     EXCLUSIVE on audit.audit_log.
--   * waits at most lock_timeout (2s) for each lock, so that it never
--     holds a queue of sessions behind it while it waits for a long
--     transaction; the job fails and is retried instead.
--
-- Who waits for it: nobody while the bulk of a month's rows moves out of
-- the default partition. Then sessions writing rows whose month has no
-- partition (they go to audit_log_default) wait while the rows of the month
-- written meanwhile move and the partition is attached, and readers of
-- audit_log wait during the ATTACH (ACCESS EXCLUSIVE on the default
-- partition while PostgreSQL checks that it holds no row of the new month:
-- a scan of the default partition). Writers of months that have their
-- partition (after migrate, the current month and those ahead) do not
-- wait. BENCHMARKS.md ("Rescuing the default partition") measures both.

CREATE OR REPLACE FUNCTION audit.create_partition(month date)
RETURNS TABLE (partition_name text, created boolean, rows_moved bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    prev_maint   constant text := current_setting('auditdb.maintenance', true);
    prev_timeout constant text := current_setting('lock_timeout');
    lo    constant date := date_trunc('month', month)::date;
    hi    constant date := (date_trunc('month', month) + interval '1 month')::date;
    name  constant text := audit.partition_name(date_trunc('month', month)::date);
    lo_ts constant text := to_char(lo, 'YYYY-MM-DD') || ' 00:00:00+00';
    hi_ts constant text := to_char(hi, 'YYYY-MM-DD') || ' 00:00:00+00';
    moved bigint := 0;
    n     bigint;
BEGIN
    -- auditdb.maintenance through set_config, not a function-level SET
    -- (superusers only for a placeholder setting; see step 5)
    PERFORM set_config('auditdb.maintenance', 'partition_move', true);
    PERFORM set_config('lock_timeout', '2s', true);
    -- one partition DDL at a time (a row lock no other role can take)
    PERFORM 1 FROM audit.maintenance_locks l WHERE l.name = 'partition_ddl' FOR UPDATE;
    -- the parent first, as every query on audit_log does
    LOCK TABLE ONLY audit.audit_log IN SHARE UPDATE EXCLUSIVE MODE;
    IF EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'audit.audit_log'::regclass
                 AND c.relname = name AND c.relnamespace = 'audit'::regnamespace) THEN
        PERFORM set_config('lock_timeout', prev_timeout, true);
        PERFORM set_config('auditdb.maintenance', coalesce(prev_maint, ''), true);
        RETURN QUERY SELECT name, false, 0::bigint;
        RETURN;
    END IF;

    -- The month's table, beside audit_log until it is attached, with the
    -- parent's indexes, so that ATTACH only matches them up instead of
    -- building them while it holds its locks. The CHECK lets ATTACH skip
    -- scanning the new table.
    EXECUTE format('CREATE TABLE audit.%I (LIKE audit.audit_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)', name);
    EXECUTE format('ALTER TABLE audit.%I ADD CONSTRAINT %I CHECK ("timestamp" >= %L AND "timestamp" < %L)',
                   name, name || '_bounds', lo_ts, hi_ts);

    IF EXISTS (SELECT 1 FROM audit.audit_log_default d
               WHERE d."timestamp" >= lo_ts::timestamptz AND d."timestamp" < hi_ts::timestamptz) THEN
        -- The bulk of the month's rows first, locking nothing but those
        -- rows: writers, the default partition's included, go on, and
        -- readers see the rows in the default partition until this
        -- transaction commits.
        EXECUTE format('WITH moved AS (DELETE FROM audit.audit_log_default WHERE "timestamp" >= %L AND "timestamp" < %L RETURNING *) '
                       'INSERT INTO audit.%I SELECT * FROM moved', lo_ts, hi_ts, name);
        GET DIAGNOSTICS moved = ROW_COUNT;
    END IF;
    -- Then the rows of that month written meanwhile, under EXCLUSIVE on the
    -- default partition, which waits for their writers to commit and holds
    -- back new writers to the default partition (readers go on) until the
    -- ATTACH has checked that no row of the month is left there. Only this
    -- part and the ATTACH make writers of the default partition wait.
    LOCK TABLE audit.audit_log_default IN EXCLUSIVE MODE;
    EXECUTE format('WITH moved AS (DELETE FROM audit.audit_log_default WHERE "timestamp" >= %L AND "timestamp" < %L RETURNING *) '
                   'INSERT INTO audit.%I SELECT * FROM moved', lo_ts, hi_ts, name);
    GET DIAGNOSTICS n = ROW_COUNT;
    moved := moved + n;
    -- statement triggers before the table is reachable through audit_log
    PERFORM audit.install_partition_triggers(format('audit.%I', name)::regclass);
    EXECUTE format('ALTER TABLE audit.audit_log ATTACH PARTITION audit.%I FOR VALUES FROM (%L) TO (%L)',
                   name, lo_ts, hi_ts);
    EXECUTE format('ALTER TABLE audit.%I DROP CONSTRAINT %I', name, name || '_bounds');
    PERFORM set_config('lock_timeout', prev_timeout, true);
    PERFORM set_config('auditdb.maintenance', coalesce(prev_maint, ''), true);
    RETURN QUERY SELECT name, true, moved;
END
$$;

-- The months the partitions job works on, one transaction each (the job
-- calls audit.create_partition per month, so no lock outlives its month):
-- this month (UTC) through months_ahead months after it, and every month
-- that has rows in the default partition.
CREATE OR REPLACE FUNCTION audit.partition_months(months_ahead integer)
RETURNS SETOF date
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF months_ahead IS NULL OR months_ahead < 0 OR months_ahead > 120 THEN
        RAISE EXCEPTION 'months_ahead: must be between 0 and 120'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => i))::date
    FROM generate_series(0, months_ahead) AS i
    UNION
    SELECT date_trunc('month', d."timestamp" AT TIME ZONE 'UTC')::date
    FROM audit.audit_log_default d
    ORDER BY 1;
END
$$;

-- ensure_partitions (migrate, `partitions ensure`) creates the same months
-- as the partitions job, from audit.partition_months: one definition of
-- which months need a partition. All of them in one statement here; the job
-- takes one transaction per month.
CREATE OR REPLACE FUNCTION audit.ensure_partitions(months_ahead integer DEFAULT 3)
RETURNS TABLE (partition_name text, created boolean, rows_moved bigint)
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.* FROM audit.partition_months(months_ahead) AS m, LATERAL audit.create_partition(m) AS p
$$;

REVOKE EXECUTE ON FUNCTION audit.partition_months(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.partition_months(integer) TO audit_maintainer;
