-- auditdb step 13: chain acquisition when every chain is busy.
--
-- Step 3's audit.chain_acquire() tried each chain's lock in turn; when
-- every try failed, its loop left the last candidate in c, so instead of
-- queueing behind a chain (READ COMMITTED) or failing with 40001 (REPEATABLE
-- READ, SERIALIZABLE) the insert failed with "chain N has no row in
-- audit.chain_heads". A flag now records that a chain was taken. Found by
-- the concurrency test under load; tests/trigger_test.go TestAllChainsBusy
-- reproduces it. (The C accelerator was not affected.)

CREATE OR REPLACE FUNCTION audit.chain_acquire()
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k      integer := nullif(current_setting('auditdb.chain_count', true), '')::integer;
    start  integer;
    c      integer;
    seq    bigint;
    head   bytea;
    got    boolean := false;  -- a chain is locked and its head read
    fresh  constant boolean := current_setting('transaction_isolation') = 'read committed';
BEGIN
    IF k IS NULL THEN
        SELECT s.value::integer INTO STRICT k FROM audit.settings s WHERE s.key = 'chain_count';
        -- session-wide cache; a forged value can only make acquisition fail below
        PERFORM set_config('auditdb.chain_count', k::text, false);
    END IF;
    start := pg_backend_pid() % k;

    FOR i IN 0 .. k - 1 LOOP
        c := (start + i) % k;
        IF fresh THEN
            CONTINUE WHEN NOT pg_try_advisory_xact_lock(audit.chain_lock_namespace(), c);
            SELECT h.head_seq, h.head_hash INTO seq, head
              FROM audit.chain_heads h WHERE h.chain_id = c;
            got := true;
            EXIT;
        END IF;
        BEGIN
            CONTINUE WHEN NOT pg_try_advisory_xact_lock(audit.chain_lock_namespace(), c);
            SELECT h.head_seq, h.head_hash INTO seq, head
              FROM audit.chain_heads h WHERE h.chain_id = c FOR UPDATE;
            got := true;
            EXIT;
        EXCEPTION WHEN serialization_failure THEN
            -- this chain advanced after our snapshot; the lock taken in this
            -- block is released with it
        END;
    END LOOP;

    IF NOT got THEN
        IF NOT fresh THEN
            RAISE EXCEPTION 'auditdb: no audit chain can be extended from this transaction''s snapshot'
                USING ERRCODE = 'serialization_failure',
                      DETAIL = 'Every chain is held by another writer or advanced after this '
                               || current_setting('transaction_isolation') || ' transaction began.',
                      HINT = 'Retry the transaction.';
        END IF;
        -- more writers than chains: queue behind one
        c := start;
        PERFORM pg_advisory_xact_lock(audit.chain_lock_namespace(), c);
        SELECT h.head_seq, h.head_hash INTO seq, head
          FROM audit.chain_heads h WHERE h.chain_id = c;
    END IF;

    IF seq IS NULL THEN
        RAISE EXCEPTION 'auditdb: chain % has no row in audit.chain_heads', c
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'audit.settings.chain_count must match the rows of audit.chain_heads.';
    END IF;
    -- chain/seq/head/salt seed (see audit_log_before_insert)
    RETURN c || '/' || seq || '/' || encode(head, 'hex') || '/'
        || encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), 'hex');
END
$$;
