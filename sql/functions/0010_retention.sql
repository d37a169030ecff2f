-- auditdb step 10: retention's removal of archived rows.
--
-- The worker archives rows to a file, verifies the file, and records one
-- sealed manifest per chain range in audit.archive_manifests (INTEGRITY.md,
-- "Retention and redaction"); only then does it call
-- audit.retention_remove with the ids of those manifests. The function
-- removes exactly the rows those manifests cover and nothing else, so the
-- database itself refuses to delete a row no manifest names. Checking the
-- manifests' seals needs the key, which never enters the database: that is
-- the worker's job before the call.

-- A retried run must not record a chain range twice: a second manifest
-- starting at the same seq is refused, whatever the crash that led to it.
CREATE UNIQUE INDEX IF NOT EXISTS archive_manifests_chain_first_key
    ON audit.archive_manifests (chain_id, first_seq);

-- Removes the rows covered by the given manifests, partition by partition,
-- in the caller's transaction. A monthly partition all of whose rows those
-- manifests cover is detached and dropped (cheap, and gives the space back);
-- in a partition that still holds rows nobody archived (other chains, or
-- rows whose retention has not run out), only the covered rows are deleted.
-- The default partition is never dropped. Returns one row per partition
-- touched.
CREATE OR REPLACE FUNCTION audit.retention_remove(manifest_ids bigint[])
RETURNS TABLE (partition_name text, dropped boolean, rows_removed bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    prev      constant text := current_setting('auditdb.maintenance', true);
    part      record;
    n         bigint;
    uncovered boolean;
BEGIN
    IF manifest_ids IS NULL OR cardinality(manifest_ids) = 0 THEN
        RETURN;
    END IF;
    -- the partition DDL lock of audit.create_partition: no partition is
    -- created or moved into while one is being dropped
    PERFORM 1 FROM audit.maintenance_locks l WHERE l.name = 'partition_ddl' FOR UPDATE;
    -- set here and put back at the end rather than with a function-level
    -- SET, which PostgreSQL 15 allows only superusers for a placeholder
    -- setting (see step 0005)
    PERFORM set_config('auditdb.maintenance', 'retention', true);
    FOR part IN
        SELECT c.oid::regclass AS rel, c.relname::text AS name, c.relpartbound IS NOT NULL
               AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' AS is_default
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'audit.audit_log'::regclass
        ORDER BY c.relname
    LOOP
        EXECUTE format('SELECT count(*) FROM %s l JOIN audit.archive_manifests m
                        ON m.chain_id = l.chain_id AND l.chain_seq BETWEEN m.first_seq AND m.last_seq
                        WHERE m.id = ANY($1)', part.rel)
            INTO n USING manifest_ids;
        CONTINUE WHEN n = 0;
        IF NOT part.is_default THEN
            -- no insert may land in the partition between the check that
            -- every row is covered and the drop: writers wait (SHARE ROW
            -- EXCLUSIVE conflicts with their ROW EXCLUSIVE) until this
            -- transaction ends, and the check sees every committed row
            EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', part.rel);
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s l WHERE NOT EXISTS (
                                SELECT 1 FROM audit.archive_manifests m
                                WHERE m.id = ANY($1) AND m.chain_id = l.chain_id
                                  AND l.chain_seq BETWEEN m.first_seq AND m.last_seq))', part.rel)
                INTO uncovered USING manifest_ids;
            IF NOT uncovered THEN
                EXECUTE format('ALTER TABLE audit.audit_log DETACH PARTITION %s', part.rel);
                EXECUTE format('DROP TABLE %s', part.rel);
                partition_name := part.name;
                dropped := true;
                rows_removed := n;
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;
        EXECUTE format('DELETE FROM %s l USING audit.archive_manifests m
                        WHERE m.id = ANY($1) AND m.chain_id = l.chain_id
                          AND l.chain_seq BETWEEN m.first_seq AND m.last_seq', part.rel)
            USING manifest_ids;
        GET DIAGNOSTICS n = ROW_COUNT;
        partition_name := part.name;
        dropped := false;
        rows_removed := n;
        RETURN NEXT;
    END LOOP;
    PERFORM set_config('auditdb.maintenance', coalesce(prev, ''), true);
END
$$;

REVOKE EXECUTE ON FUNCTION audit.retention_remove(bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.retention_remove(bigint[]) TO audit_maintainer;
