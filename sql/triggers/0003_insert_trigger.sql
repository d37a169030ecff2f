-- auditdb step 3: the insert trigger (INTEGRITY.md v1, "Chains").
--
-- The application's writer role is the most exposed credential, so nothing
-- here trusts it: whatever it puts in any setting, whatever it runs between
-- rows, whatever lock it holds, the worst it can do is make its own statement
-- fail. How a transaction writes into a chain:
--
--   1. Its first audit row calls audit.chain_acquire() (SECURITY DEFINER),
--      which locks and updates a free chain's row in audit.chain_holders
--      (FOR UPDATE SKIP LOCKED, starting from a slot derived from the backend
--      pid so sessions spread out), records the transaction there with a
--      fresh 32-byte secret, and reads the chain's head from
--      audit.chain_heads. Only the owner may lock those rows, so no other
--      role can hold a chain or make writers wait. The row lock is held until
--      commit, so chain_seq follows commit order and two transactions never
--      extend the same head (no fork); a transaction holds one chain, so chain
--      locks cannot deadlock. Rolled back (with its savepoint), the lock and
--      the record go too.
--   2. Each row continues from the head kept in the transaction-local setting
--      auditdb.chain_state = "chain/seq/hash/last_id/tag", where tag is the
--      second half of SHA-256(secret || "chain/seq/hash/last_id") in hex
--      (the first half is the next row's salt, which the tag must not show) and
--      last_id is the id the trigger gave the previous row. A writer can read
--      and overwrite the setting but not forge a tag (the secret is readable
--      by the owner only), and cannot replay an older state of its own
--      transaction: last_id must equal currval of the id sequence, which only
--      the trigger advances. A forged state fails the statement; a state that
--      is genuine but no longer current (a rolled-back savepoint or a replayed
--      value) is replaced by the chain's true head (audit.chain_acquire finds
--      the chain the transaction holds and the newest row it wrote in it).
--      Settings roll back with transactions and savepoints exactly like the
--      rows, so rolled-back work leaves no trace.
--   3. An AFTER ... FOR EACH STATEMENT trigger writes the head back once per
--      statement (linear cost for INSERT ... SELECT and COPY of any size:
--      updating a head row per row piles up row versions and is quadratic).
--      It does not trust the setting either: it asks chain_holders whether
--      the transaction holds a chain at all, and takes the head from a
--      verified state or from the rows.
--
-- The trigger, the acquisition and the flush are SECURITY DEFINER with a
-- fixed search_path, executable by no one but the owner (triggers need no
-- EXECUTE grant to fire): a writer cannot call them or attach them to tables
-- of its own.
--
-- Isolation levels: under READ COMMITTED each query takes a fresh snapshot,
-- so the head read after the lock is the committed head. Under REPEATABLE
-- READ and SERIALIZABLE a chain whose row changed after the snapshot cannot
-- be locked (serialization failure); the next one is tried, and when none can
-- be used the insert fails with SQLSTATE 40001 and a message saying to retry:
-- never a fork.

-- The namespace (first key) of auditdb's advisory locks: 'audt' as an int4.
-- Chains and partition DDL no longer use advisory locks (any role may take
-- those); a retention run still keeps others off with the session key -2.
CREATE OR REPLACE FUNCTION audit.chain_lock_namespace()
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN 1635083380;

-- The newest row of chain c that this transaction can see past the head
-- audit.chain_heads records: the rows of the current statement, which the
-- flush has not written back yet. One index probe per partition; only the
-- slow path (a lost or replayed chain state) and the flush of such a
-- statement use it.
CREATE OR REPLACE FUNCTION audit.chain_true_head(c smallint, OUT seq bigint, OUT head bytea)
LANGUAGE plpgsql
AS $$
BEGIN
    SELECT h.head_seq, h.head_hash INTO seq, head FROM audit.chain_heads h WHERE h.chain_id = c;
    IF seq IS NULL THEN
        RAISE EXCEPTION 'auditdb: chain % has no row in audit.chain_heads', c
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'audit.chain_holders and audit.chain_heads must have the same chains.';
    END IF;
    SELECT l.chain_seq, decode(l.hash, 'hex') INTO seq, head
      FROM audit.audit_log l
     WHERE l.chain_id = c AND l.chain_seq > seq
     ORDER BY l.chain_seq DESC LIMIT 1;
    IF NOT FOUND THEN
        SELECT h.head_seq, h.head_hash INTO seq, head FROM audit.chain_heads h WHERE h.chain_id = c;
    END IF;
END
$$;

-- The keyed hash of a chain state body "chain/seq/hash/last_id" under the
-- holding transaction's secret: SHA-256(secret || body). Its last 16 bytes,
-- in hex, are the state's tag; its first 16 bytes the next row's salt. (A length
-- extension of the body would have to carry SHA-256 padding, NUL and 0x80
-- bytes, which no setting's text can hold.) Stable (textsend is), with
-- qualified names, so that the planner inlines it into the trigger's
-- expressions whatever the caller's search_path.
CREATE OR REPLACE FUNCTION audit.chain_state_mac(secret bytea, body text)
RETURNS bytea LANGUAGE sql STABLE STRICT PARALLEL SAFE
RETURN pg_catalog.sha256(secret OPERATOR(pg_catalog.||) pg_catalog.textsend(body));

-- The verified head of this transaction's chain: (chain, seq, head, secret,
-- current). Raises when auditdb.chain_state was forged; returns chain NULL
-- when the transaction holds no chain. current is false when the state was
-- genuine but not the newest (or missing) and the head comes from the rows.
CREATE OR REPLACE FUNCTION audit.chain_state_verified(
    OUT chain smallint, OUT seq bigint, OUT head bytea, OUT secret bytea, OUT current boolean)
LANGUAGE plpgsql
AS $$
DECLARE
    st text := current_setting('auditdb.chain_state', true);
    f  text[];
BEGIN
    SELECT h.chain_id, h.secret INTO chain, secret FROM audit.chain_holders h
     WHERE h.xact = pg_current_xact_id_if_assigned();
    IF st IS NOT NULL AND st <> '' THEN
        f := string_to_array(st, '/');
        IF secret IS NULL OR array_length(f, 1) IS DISTINCT FROM 5
           OR f[5] <> encode(substr(audit.chain_state_mac(secret, f[1] || '/' || f[2] || '/' || f[3] || '/' || f[4]), 17), 'hex') THEN
            PERFORM audit.reject_chain_state();
        END IF;
        IF f[4]::bigint = currval('audit.audit_log_id_seq') THEN
            seq := f[2]::bigint;
            head := decode(f[3], 'hex');
            current := true;
            RETURN;
        END IF;
    END IF;
    current := false;
    IF chain IS NOT NULL THEN
        SELECT t.seq, t.head INTO seq, head FROM audit.chain_true_head(chain) t;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION audit.reject_chain_state()
RETURNS void LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'auditdb: auditdb.chain_state was changed outside the insert trigger; nothing was written'
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = 'The setting carries the transaction''s chain position, tagged with a secret only the trigger knows.',
              HINT = 'Do not set auditdb.chain_state; roll back and retry the transaction.';
END
$$;

-- Returns "chain/seq/head/secret" (head and secret in hex) for the chain
-- this transaction writes into: the one it already holds (its state was lost
-- to a rolled-back savepoint, or replaced), else a newly acquired one.
CREATE OR REPLACE FUNCTION audit.chain_acquire()
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me     constant xid8 := pg_current_xact_id();
    k      integer;
    start  integer;
    c      smallint;
    seq    bigint;
    head   bytea;
    sec    bytea;
    fresh  constant boolean := current_setting('transaction_isolation') = 'read committed';
BEGIN
    -- A chain this transaction holds already (or a chain state without
    -- one): resume it, from a verified auditdb.chain_state or from its rows.
    -- A forged state raises here, so the C trigger, which calls this
    -- whenever the setting is not empty, refuses exactly what the PL/pgSQL
    -- one refuses.
    IF EXISTS (SELECT 1 FROM audit.chain_holders h WHERE h.xact = me)
       OR current_setting('auditdb.chain_state', true) <> '' THEN
        SELECT v.chain, v.seq, v.head, v.secret INTO c, seq, head, sec FROM audit.chain_state_verified() v;
        IF c IS NULL THEN
            PERFORM audit.reject_chain_state();
        END IF;
        RETURN c || '/' || seq || '/' || encode(head, 'hex') || '/' || encode(sec, 'hex');
    END IF;

    -- The chain count, read once per session. The setting only spreads
    -- sessions over the chains: a wrong value changes where the search
    -- starts, nothing else.
    k := nullif(current_setting('auditdb.chain_count', true), '')::integer;
    IF k IS NULL OR k < 1 THEN
        SELECT count(*) INTO k FROM audit.chain_holders;
        IF k = 0 THEN
            RAISE EXCEPTION 'auditdb: audit.chain_holders has no chains'
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        PERFORM set_config('auditdb.chain_count', k::text, false);
    END IF;
    start := pg_backend_pid() % k;

    sec := uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid());
    IF fresh THEN
        -- lock and take the first free chain from the start slot, in one
        -- statement; the head is read by the next, whose fresh snapshot sees
        -- the commit of the chain's previous holder
        UPDATE audit.chain_holders h SET xact = me, secret = sec
         WHERE h.chain_id = (SELECT x.chain_id FROM audit.chain_holders x
                              ORDER BY (x.chain_id + k - start) % k
                              FOR UPDATE SKIP LOCKED LIMIT 1)
        RETURNING h.chain_id INTO c;
        IF c IS NULL THEN
            -- more writers than chains: queue behind one
            SELECT h.chain_id INTO c FROM audit.chain_holders h
             ORDER BY (h.chain_id + k - start) % k LIMIT 1;
            UPDATE audit.chain_holders h SET xact = me, secret = sec WHERE h.chain_id = c;
        END IF;
    ELSE
        FOR cand IN 0 .. k - 1 LOOP
            BEGIN
                SELECT h.chain_id INTO c FROM audit.chain_holders h
                 WHERE (h.chain_id + k - start) % k = cand
                 FOR UPDATE SKIP LOCKED;
                EXIT WHEN FOUND;
            EXCEPTION WHEN serialization_failure THEN
                -- this chain was written after our snapshot; the lock taken
                -- in this block is released with it
                c := NULL;
            END;
        END LOOP;
        IF c IS NULL THEN
            RAISE EXCEPTION 'auditdb: no audit chain can be extended from this transaction''s snapshot'
                USING ERRCODE = 'serialization_failure',
                      DETAIL = 'Every chain is held by another writer or advanced after this '
                               || current_setting('transaction_isolation') || ' transaction began.',
                      HINT = 'Retry the transaction.';
        END IF;
        UPDATE audit.chain_holders h SET xact = me, secret = sec WHERE h.chain_id = c;
    END IF;

    SELECT h.head_seq, h.head_hash INTO seq, head FROM audit.chain_heads h WHERE h.chain_id = c;
    IF seq IS NULL THEN
        RAISE EXCEPTION 'auditdb: chain % has no row in audit.chain_heads', c
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'audit.chain_holders and audit.chain_heads must have the same chains.';
    END IF;
    RETURN c || '/' || seq || '/' || encode(head, 'hex') || '/' || encode(sec, 'hex');
END
$$;

-- Wipes the secrets of chains no transaction holds now. A finished
-- transaction's secret would let the owner recompute the salts of its rows,
-- and so undo the protection erasure gives a row by deleting its salt. The
-- seal job (every few seconds) and every erasure call this; chains held by a
-- running transaction are skipped, never waited for. Returns how many it
-- wiped.
CREATE OR REPLACE FUNCTION audit.chain_holders_scrub()
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    UPDATE audit.chain_holders h SET xact = NULL, secret = NULL
     WHERE h.chain_id IN (SELECT x.chain_id FROM audit.chain_holders x
                           WHERE x.secret IS NOT NULL FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- Raises the error for the first rule an event breaks. Kept out of the hot
-- path: the trigger calls it only when its one-line check fails. Messages
-- name the field and the rule, never the value (it may be PHI).
CREATE OR REPLACE FUNCTION audit.reject_invalid_event(e audit.audit_log)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f text;
    r record;
BEGIN
    -- (data_classification, retention_policy and event_version have taken
    -- their defaults by now: an explicit NULL is no error)
    FOREACH f IN ARRAY ARRAY['timestamp', 'action', 'status'] LOOP
        IF (to_jsonb(e) -> f) = 'null'::jsonb THEN
            RAISE EXCEPTION 'audit_log.%: is required', f
                USING ERRCODE = 'not_null_violation', COLUMN = f;
        END IF;
    END LOOP;
    IF NOT isfinite(e."timestamp") THEN
        RAISE EXCEPTION 'audit_log.timestamp: must be a finite time, not infinity'
            USING ERRCODE = 'check_violation', COLUMN = 'timestamp';
    END IF;
    -- Four-digit years, so that every accepted row has a monthly partition
    -- with an ordinary name and bounds (audit.create_partition).
    IF NOT (e."timestamp" >= '1900-01-01 00:00:00+00' AND e."timestamp" < '10000-01-01 00:00:00+00') THEN
        RAISE EXCEPTION 'audit_log.timestamp: must be from 1900-01-01 to 9999-12-31 (UTC)'
            USING ERRCODE = 'datetime_field_overflow', COLUMN = 'timestamp';
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
    IF e.archived_at IS NOT NULL THEN
        RAISE EXCEPTION 'audit_log.archived_at: is set by maintenance only, not on insert'
            USING ERRCODE = 'insufficient_privilege', COLUMN = 'archived_at';
    END IF;
END
$$;

-- BEFORE INSERT, FOR EACH ROW: validate, then set every integrity column.
-- Whatever a client sent for id, chain_id, chain_seq, recorded_at, pii_salt,
-- pii_commitment, hash, hash_algorithm or hash_version is replaced: those
-- columns belong to this trigger (an id chosen with OVERRIDING SYSTEM VALUE
-- or COPY included, so an insert can never conflict and be skipped after the
-- chain advanced). archived_at belongs to maintenance: a value is refused.
CREATE OR REPLACE FUNCTION audit.audit_log_before_insert()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st     text := current_setting('auditdb.chain_state', true);
    f      text[];
    c      integer;
    seq    bigint;
    prev   bytea;
    secret bytea;
    mac    bytea;
    body   text;
BEGIN
    -- An explicit NULL takes the column's default, as an omitted column
    -- does: ORMs send every column.
    NEW.event_version := coalesce(NEW.event_version, '1.0');
    NEW.data_classification := coalesce(NEW.data_classification, 'INTERNAL');
    NEW.retention_policy := coalesce(NEW.retention_policy, 'standard');
    -- One expression for the common case; the details of what is wrong are
    -- worked out by reject_invalid_event only when something is. (The text
    -- form of details has no bound in its binary size: {"n": 1e131071} is a
    -- few bytes stored and 131 kB printed, so it is measured as text.)
    IF NEW."timestamp" IS NULL OR NEW.action IS NULL
       OR NOT (NEW."timestamp" >= '1900-01-01 00:00:00+00' AND NEW."timestamp" < '10000-01-01 00:00:00+00')
       OR NEW.status NOT IN ('attempt', 'success', 'failure') OR NEW.status IS NULL
       OR NEW.data_classification NOT IN ('PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'PHI')
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
       OR NEW.archived_at IS NOT NULL
    THEN
        PERFORM audit.reject_invalid_event(NEW);
    END IF;

    -- The chain state, verified (see the top of this file); else the chain's
    -- true head from audit.chain_acquire.
    IF st IS NOT NULL AND st <> '' THEN
        -- the tag first: what it vouches for is safe to cast
        SELECT h.chain_id, h.secret INTO c, secret FROM audit.chain_holders h
         WHERE h.xact = pg_current_xact_id();
        f := string_to_array(st, '/');
        IF secret IS NOT NULL AND array_length(f, 1) = 5 THEN
            mac := audit.chain_state_mac(secret, f[1] || '/' || f[2] || '/' || f[3] || '/' || f[4]);
        END IF;
        IF mac IS NULL OR f[5] <> encode(substr(mac, 17), 'hex') THEN
            PERFORM audit.reject_chain_state();
        END IF;
        IF f[4]::bigint = currval('audit.audit_log_id_seq') THEN
            seq := f[2]::bigint;
            prev := decode(f[3], 'hex');
        END IF;
    END IF;
    IF prev IS NULL THEN
        f := string_to_array(audit.chain_acquire(), '/');
        c := f[1]::integer;
        seq := f[2]::bigint;
        prev := decode(f[3], 'hex');
        secret := decode(f[4], 'hex');
        mac := sha256(secret || int8send(seq + 1));
    END IF;

    NEW.id := nextval('audit.audit_log_id_seq');
    NEW.chain_id := c;
    NEW.chain_seq := seq + 1;
    NEW.recorded_at := clock_timestamp();
    NEW.hash_algorithm := 'SHA-256';
    NEW.hash_version := 1;
    -- The salt is the first 16 bytes of a keyed hash under the secret, 32
    -- bytes from the server's strong random source drawn once per
    -- transaction (audit.chain_acquire) and readable by the owner only: the
    -- hash that verified the previous state's tag, or SHA-256(secret ||
    -- chain_seq) for a transaction's first row. A pseudo-random function
    -- under a secret key, so salts are as unpredictable as fresh random
    -- bytes, and the check of the state pays for them.
    NEW.pii_salt := substr(mac, 1, 16);
    NEW.pii_commitment := audit.pii_commitment(NEW.pii_salt, NEW.principal_id,
        NEW.target_resource_id, NEW.source_ip, NEW.outcome_description, NEW.details);
    NEW.hash := encode(sha256(prev || audit.row_hash(NEW.id, NEW.chain_id, NEW.chain_seq,
        NEW."timestamp", NEW.recorded_at, NEW.action, NEW.status, NEW.principal_type,
        NEW.organization_id, NEW.target_resource_type, NEW.event_version, NEW.correlation_id,
        NEW.data_classification, NEW.retention_policy, NEW.processing_latency, NEW.ttl,
        NEW.pii_commitment)), 'hex');
    -- Assignments, not PERFORM: PERFORM runs its expression as a query
    -- through SPI, an assignment as a simple expression (a 100,000-row
    -- INSERT ... SELECT took 12 % less time: BENCHMARKS.md).
    body := NEW.chain_id || '/' || NEW.chain_seq || '/' || NEW.hash || '/' || NEW.id;
    st := set_config('auditdb.chain_state', body || '/' || encode(substr(audit.chain_state_mac(secret, body), 17), 'hex'), true);
    RETURN NEW;
END
$$;

-- AFTER INSERT, FOR EACH STATEMENT: write the transaction's chain head back,
-- from a verified state or from the rows (never from the setting as given:
-- a writer that cleared or replayed it must not leave a stale head behind).
CREATE OR REPLACE FUNCTION audit.audit_log_flush_chain_head()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v record;
BEGIN
    SELECT * INTO v FROM audit.chain_state_verified();
    IF v.chain IS NOT NULL THEN
        UPDATE audit.chain_heads h
           SET head_seq = v.seq, head_hash = v.head, updated_at = statement_timestamp()
         WHERE h.chain_id = v.chain AND h.head_seq < v.seq;
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

-- Seed the chains: K chains, each starting at its genesis hash, none held.
INSERT INTO audit.chain_heads (chain_id, head_seq, head_hash)
SELECT c, 0, audit.genesis_hash(c)
FROM generate_series(0, (SELECT value::integer FROM audit.settings WHERE key = 'chain_count') - 1) AS c
ON CONFLICT (chain_id) DO NOTHING;
INSERT INTO audit.chain_holders (chain_id)
SELECT chain_id FROM audit.chain_heads
ON CONFLICT (chain_id) DO NOTHING;
