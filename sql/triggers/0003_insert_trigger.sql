-- auditdb step 3: the insert trigger (INTEGRITY.md v1, "Chains").
--
-- How a transaction writes into a chain:
--
--   1. Its first audit row calls audit.chain_acquire(), which takes a
--      transaction-scoped advisory lock on a chain nobody else holds (starting
--      from a slot derived from the backend pid, so sessions spread out) and
--      reads that chain's head from audit.chain_heads. The lock is held until
--      commit or rollback, so the order of chain_seq is the order of commit
--      and two transactions can never extend the same head (no fork). A
--      transaction holds one chain at most, so chain locks cannot deadlock.
--   2. Every row of the transaction continues from the head kept in the
--      transaction-local setting auditdb.chain_state ("chain/seq/hash/seed").
--      Settings are rolled back with the transaction and with a rolled-back
--      savepoint, exactly like the rows, so rolled-back work leaves no trace.
--   3. An AFTER ... FOR EACH STATEMENT trigger writes the head back once per
--      statement: linear cost for INSERT ... SELECT and COPY of any size
--      (updating the head row per row piles up row versions and is quadratic).
--
-- Isolation levels: under READ COMMITTED each query in the function takes a
-- fresh snapshot, so the head read after the lock is the committed head.
-- Under REPEATABLE READ and SERIALIZABLE the snapshot may predate the last
-- commit on a chain; the head is then read FOR UPDATE, which fails with a
-- serialization error instead of returning a stale head, and the next free
-- chain is tried. When no chain can be used the insert fails with SQLSTATE
-- 40001 and a message saying to retry: never a fork.

-- The namespace (first key) of the chain advisory locks: 'audt' as an int4.
CREATE OR REPLACE FUNCTION audit.chain_lock_namespace()
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN 1635083380;

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

    -- (a flag, not c: when every try-lock fails the loop ends with c set to
    -- its last candidate)
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

-- Raises the error for the first rule an event breaks. Kept out of the hot
-- path: the trigger calls it only when its one-line check fails. Messages
-- name the field and the rule, never the value (it may be PHI).
CREATE OR REPLACE FUNCTION audit.reject_invalid_event(e audit.audit_log)
RETURNS void LANGUAGE plpgsql
AS $$
DECLARE
    f text;
    r record;
BEGIN
    FOREACH f IN ARRAY ARRAY['timestamp', 'action', 'status', 'data_classification', 'retention_policy'] LOOP
        IF (to_jsonb(e) -> f) = 'null'::jsonb THEN
            RAISE EXCEPTION 'audit_log.%: is required', f
                USING ERRCODE = 'not_null_violation', COLUMN = f;
        END IF;
    END LOOP;
    IF NOT isfinite(e."timestamp") THEN
        RAISE EXCEPTION 'audit_log.timestamp: must be a finite time, not infinity'
            USING ERRCODE = 'check_violation', COLUMN = 'timestamp';
    END IF;
    IF e.status NOT IN ('attempt', 'success', 'failure') THEN
        RAISE EXCEPTION 'audit_log.status: must be one of attempt, success, failure'
            USING ERRCODE = 'check_violation', COLUMN = 'status';
    END IF;
    IF e.data_classification NOT IN ('PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'PHI') THEN
        RAISE EXCEPTION 'audit_log.data_classification: must be one of PUBLIC, INTERNAL, CONFIDENTIAL, PHI'
            USING ERRCODE = 'check_violation', COLUMN = 'data_classification';
    END IF;
    IF length(e.action) = 0 OR length(e.retention_policy) = 0 THEN
        f := CASE WHEN length(e.action) = 0 THEN 'action' ELSE 'retention_policy' END;
        RAISE EXCEPTION 'audit_log.%: must not be empty', f
            USING ERRCODE = 'check_violation', COLUMN = f;
    END IF;
    FOR r IN
        SELECT l.col, l.cap FROM (VALUES
            ('action', length(e.action), 255), ('principal_id', length(e.principal_id), 255),
            ('principal_type', length(e.principal_type), 255),
            ('organization_id', length(e.organization_id), 255),
            ('target_resource_type', length(e.target_resource_type), 255),
            ('target_resource_id', length(e.target_resource_id), 255),
            ('correlation_id', length(e.correlation_id), 255), ('ttl', length(e.ttl), 255),
            ('event_version', length(e.event_version), 20),
            ('retention_policy', length(e.retention_policy), 50),
            ('outcome_description', length(e.outcome_description), 10000)
        ) AS l(col, len, cap)
        WHERE l.len > l.cap
    LOOP
        RAISE EXCEPTION 'audit_log.%: longer than % characters', r.col, r.cap
            USING ERRCODE = 'string_data_right_truncation', COLUMN = r.col;
    END LOOP;
    IF e.details IS NOT NULL AND jsonb_typeof(e.details) <> 'object' THEN
        RAISE EXCEPTION 'audit_log.details: must be a JSON object, not %', jsonb_typeof(e.details)
            USING ERRCODE = 'check_violation', COLUMN = 'details';
    END IF;
    IF octet_length(e.details::text) > 65536 THEN
        RAISE EXCEPTION 'audit_log.details: larger than 65536 bytes as JSON text'
            USING ERRCODE = 'program_limit_exceeded', COLUMN = 'details';
    END IF;
    IF e.processing_latency < 0 THEN
        RAISE EXCEPTION 'audit_log.processing_latency: must not be negative'
            USING ERRCODE = 'check_violation', COLUMN = 'processing_latency';
    END IF;
END
$$;

-- BEFORE INSERT, FOR EACH ROW: validate, then set every integrity column.
-- Whatever a client sent for chain_id, chain_seq, recorded_at, pii_salt,
-- pii_commitment or hash is replaced: those columns belong to this trigger.
CREATE OR REPLACE FUNCTION audit.audit_log_before_insert()
RETURNS trigger LANGUAGE plpgsql
AS $$
DECLARE
    st   text := current_setting('auditdb.chain_state', true);
    prev bytea;
BEGIN
    -- One expression for the common case; the details of what is wrong are
    -- worked out by reject_invalid_event only when something is. (The text
    -- form of details has no bound in its binary size: {"n": 1e131071} is a
    -- few bytes stored and 131 kB printed, so it is measured as text.)
    IF NEW."timestamp" IS NULL OR NOT isfinite(NEW."timestamp") OR NEW.action IS NULL OR NEW.retention_policy IS NULL
       OR NEW.status NOT IN ('attempt', 'success', 'failure') OR NEW.status IS NULL
       OR NEW.data_classification NOT IN ('PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'PHI')
       OR NEW.data_classification IS NULL
       OR length(NEW.action) NOT BETWEEN 1 AND 255
       OR length(NEW.retention_policy) NOT BETWEEN 1 AND 50
       OR greatest(length(NEW.principal_id), length(NEW.principal_type), length(NEW.organization_id),
                   length(NEW.target_resource_type), length(NEW.target_resource_id),
                   length(NEW.correlation_id), length(NEW.ttl)) > 255
       OR length(NEW.event_version) > 20
       OR length(NEW.outcome_description) > 10000
       OR NEW.processing_latency < 0
       OR jsonb_typeof(NEW.details) <> 'object'
       OR octet_length(NEW.details::text) > 65536
    THEN
        PERFORM audit.reject_invalid_event(NEW);
    END IF;

    IF st IS NULL OR st = '' THEN
        st := audit.chain_acquire();
    END IF;

    IF NEW.id IS NULL THEN
        -- a direct insert into a partition does not run the parent's identity
        NEW.id := nextval(pg_get_serial_sequence('audit.audit_log', 'id'));
    END IF;
    NEW.chain_id := split_part(st, '/', 1)::smallint;
    NEW.chain_seq := split_part(st, '/', 2)::bigint + 1;
    prev := decode(split_part(st, '/', 3), 'hex');
    NEW.recorded_at := clock_timestamp();
    -- The salt is SHA-256(seed || chain_seq) cut to 16 bytes, where seed is 32
    -- bytes from the server's strong random source drawn once per transaction
    -- (audit.chain_acquire) and never stored: a pseudo-random function under a
    -- secret key, so salts are as unpredictable as fresh random bytes, at a
    -- tenth of the cost of drawing them per row.
    NEW.pii_salt := substr(sha256(decode(split_part(st, '/', 4), 'hex') || int8send(NEW.chain_seq)), 1, 16);
    NEW.pii_commitment := audit.pii_commitment(NEW.pii_salt, NEW.principal_id,
        NEW.target_resource_id, NEW.source_ip, NEW.outcome_description, NEW.details);
    NEW.hash := encode(sha256(prev || audit.row_hash(NEW.id, NEW.chain_id, NEW.chain_seq,
        NEW."timestamp", NEW.recorded_at, NEW.action, NEW.status, NEW.principal_type,
        NEW.organization_id, NEW.target_resource_type, NEW.event_version, NEW.correlation_id,
        NEW.data_classification, NEW.retention_policy, NEW.processing_latency, NEW.ttl,
        NEW.pii_commitment)), 'hex');
    -- hash_algorithm and hash_version keep their defaults; CHECK constraints
    -- refuse anything else.
    -- An assignment, not PERFORM: PERFORM runs its expression as a query
    -- through SPI, an assignment as a simple expression (a 100,000-row
    -- INSERT ... SELECT took 12 % less time: BENCHMARKS.md).
    st := set_config('auditdb.chain_state',
        NEW.chain_id || '/' || NEW.chain_seq || '/' || NEW.hash || '/' || split_part(st, '/', 4), true);
    RETURN NEW;
END
$$;

-- AFTER INSERT, FOR EACH STATEMENT: write the transaction's chain head back.
CREATE OR REPLACE FUNCTION audit.audit_log_flush_chain_head()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st text := current_setting('auditdb.chain_state', true);
BEGIN
    IF st IS NOT NULL AND st <> '' THEN
        UPDATE audit.chain_heads h
           SET head_seq = split_part(st, '/', 2)::bigint,
               head_hash = decode(split_part(st, '/', 3), 'hex'),
               updated_at = statement_timestamp()
         WHERE h.chain_id = split_part(st, '/', 1)::smallint
           AND h.head_seq < split_part(st, '/', 2)::bigint;
    END IF;
    RETURN NULL;
END
$$;

-- Statement-level triggers are not cloned to partitions, and a direct insert
-- into a partition fires only the partition's own. Every partition therefore
-- gets the flush trigger and the TRUNCATE guard; audit.create_partition and
-- the partitions job call this, and audit.partition_status shows any partition
-- that lacks them.
CREATE OR REPLACE FUNCTION audit.install_partition_triggers(part regclass)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = part AND tgname = 'zz_audit_log_chain_flush') THEN
        -- the same implementation as the parent's (see audit.use_accelerator)
        EXECUTE format('CREATE TRIGGER zz_audit_log_chain_flush AFTER INSERT ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s',
            part, coalesce((SELECT t.tgfoid::regproc::text || '()' FROM pg_trigger t
                            WHERE t.tgrelid = 'audit.audit_log'::regclass AND t.tgname = 'zz_audit_log_chain_flush'),
                           'audit.audit_log_flush_chain_head()'));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = part AND tgname = 'audit_log_no_truncate') THEN
        EXECUTE format('CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION audit.audit_log_append_only()', part);
    END IF;
END
$$;

-- Seed the chain heads: K chains, each starting at its genesis hash.
INSERT INTO audit.chain_heads (chain_id, head_seq, head_hash)
SELECT c, 0, audit.genesis_hash(c)
FROM generate_series(0, (SELECT value::integer FROM audit.settings WHERE key = 'chain_count') - 1) AS c
ON CONFLICT (chain_id) DO NOTHING;
