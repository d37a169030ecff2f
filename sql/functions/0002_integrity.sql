-- auditdb step 2: the hashing functions of INTEGRITY.md v1.
--
-- They are LANGUAGE sql and STABLE so that the planner inlines them into the
-- insert trigger's expressions: one definition, no call overhead. The Go
-- verifier implements the same encoding; internal/integrity/testdata/
-- vectors.json holds rows both must agree on.
--
-- INTEGRITY.md defines J(...) as jsonb_build_array(...)::text. For the
-- argument types used here (text, integers, inet, jsonb) json_build_array
-- produces the same bytes: the same ", " separators, the same string escaping
-- (escape_json), a jsonb argument rendered by its own text output. It skips
-- building and re-printing a jsonb value, about a microsecond a row; the
-- test vectors hold both forms to the same result.

-- pii_commitment = SHA-256(pii_salt || J('auditdb/pii/v1', principal_id,
--   target_resource_id, source_ip, outcome_description, details)).
-- json_build_array renders an inet through its output function, which is the
-- form INTEGRITY.md asks for (no /32 or /128 on a host address).
CREATE OR REPLACE FUNCTION audit.pii_commitment(
    pii_salt bytea, principal_id text, target_resource_id text, source_ip inet,
    outcome_description text, details jsonb)
RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE
RETURN sha256(pii_salt || convert_to(json_build_array('auditdb/pii/v1', principal_id,
    target_resource_id, source_ip, outcome_description, details)::text, 'UTF8'));

-- row_hash = SHA-256(J('auditdb/row/v1', core fields...) || pii_commitment).
CREATE OR REPLACE FUNCTION audit.row_hash(
    id bigint, chain_id smallint, chain_seq bigint, ts timestamptz, recorded_at timestamptz,
    action text, status text, principal_type text, organization_id text,
    target_resource_type text, event_version text, correlation_id text,
    data_classification text, retention_policy text, processing_latency integer,
    ttl text, pii_commitment bytea)
RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE
RETURN sha256(convert_to(json_build_array('auditdb/row/v1', id, chain_id, chain_seq,
    (extract(epoch FROM ts) * 1000000)::bigint,
    (extract(epoch FROM recorded_at) * 1000000)::bigint,
    action, status, principal_type, organization_id, target_resource_type, event_version,
    correlation_id, data_classification, retention_policy, processing_latency, ttl)::text,
    'UTF8') || pii_commitment);

-- genesis(c) = SHA-256('auditdb/genesis/v1/' || c).
CREATE OR REPLACE FUNCTION audit.genesis_hash(chain_id integer)
RETURNS bytea LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN sha256(convert_to('auditdb/genesis/v1/' || chain_id::text, 'UTF8'));

-- hash(c, n) = SHA-256(hash(c, n-1) || row_hash(c, n)), raw 32-byte values.
CREATE OR REPLACE FUNCTION audit.chain_hash(prev bytea, row_hash bytea)
RETURNS bytea LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN sha256(prev || row_hash);

-- Aggregate form of the chain, for re-verification with nothing but psql:
--   SELECT chain_id, encode(audit.chain_fold(chain_id, <row_hash> ORDER BY chain_seq), 'hex')
--   FROM audit.audit_log GROUP BY chain_id;
-- audit.recompute_chain_heads() below does exactly that.
CREATE OR REPLACE FUNCTION audit.chain_fold_step(state bytea, chain_id smallint, row_hash bytea)
RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN sha256(coalesce(state, audit.genesis_hash(chain_id)) || row_hash);

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                   WHERE n.nspname = 'audit' AND p.proname = 'chain_fold') THEN
        CREATE AGGREGATE audit.chain_fold(smallint, bytea) (
            SFUNC = audit.chain_fold_step,
            STYPE = bytea
        );
    END IF;
END
$$;

-- Recomputes every row's commitment, row hash and the chain in one SQL
-- statement and compares the result with the stored hash of each chain's
-- newest row. It sees only rows present in audit_log (no archive manifests)
-- and no checkpoints: the Go verifier does the full job; this is the
-- independent cross-check and the baseline the benchmark compares against.
CREATE OR REPLACE FUNCTION audit.recompute_chain_heads()
RETURNS TABLE (chain_id smallint, rows_checked bigint, head_seq bigint,
               stored_hash text, recomputed_hash text, rows_modified bigint)
LANGUAGE sql STABLE
AS $$
    WITH r AS (
        SELECT l.chain_id, l.chain_seq, l.hash,
               audit.row_hash(l.id, l.chain_id, l.chain_seq, l."timestamp", l.recorded_at,
                   l.action, l.status, l.principal_type, l.organization_id,
                   l.target_resource_type, l.event_version, l.correlation_id,
                   l.data_classification, l.retention_policy, l.processing_latency, l.ttl,
                   CASE WHEN l.pii_salt IS NULL THEN l.pii_commitment
                        ELSE audit.pii_commitment(l.pii_salt, l.principal_id,
                             l.target_resource_id, l.source_ip, l.outcome_description,
                             l.details) END) AS rh
        FROM audit.audit_log l
    ), folded AS (
        SELECT r.chain_id,
               count(*) AS n,
               max(r.chain_seq) AS head_seq,
               (array_agg(r.hash ORDER BY r.chain_seq DESC))[1] AS stored,
               encode(audit.chain_fold(r.chain_id, r.rh ORDER BY r.chain_seq), 'hex') AS recomputed
        FROM r
        GROUP BY r.chain_id
    )
    SELECT f.chain_id, f.n, f.head_seq, f.stored, f.recomputed,
           CASE WHEN f.stored = f.recomputed THEN 0 ELSE 1 END::bigint
    FROM folded f
    ORDER BY f.chain_id
$$;
