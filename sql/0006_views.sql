-- auditdb step 6: status views, and audit_log under its usual name.

-- Per chain: where its head is, its newest checkpoint, the newest finished
-- verification run that covered it, and a state:
--   tampered    the newest run that covered the chain reported findings on it
--   unverified  no finished run has covered the chain yet
--   behind      verified intact, but rows were written after the run
--   intact      verified intact up to the current head
CREATE OR REPLACE VIEW audit.integrity_status AS
SELECT h.chain_id,
       h.head_seq,
       encode(h.head_hash, 'hex')                       AS head_hash,
       h.updated_at                                     AS head_updated_at,
       cp.chain_seq                                     AS last_checkpoint_seq,
       cp.sealed_at                                     AS last_checkpoint_at,
       h.head_seq - coalesce(cp.chain_seq, 0)           AS unsealed_rows,
       vr.id                                            AS last_run_id,
       vr.finished_at                                   AS last_verified_at,
       (vr.chain_results -> h.chain_id::text ->> 'verified_seq')::bigint AS verified_seq,
       coalesce((vr.chain_results -> h.chain_id::text ->> 'findings')::integer, 0) AS findings,
       CASE
           WHEN vr.id IS NULL THEN 'unverified'
           WHEN coalesce((vr.chain_results -> h.chain_id::text ->> 'findings')::integer, 0) > 0 THEN 'tampered'
           WHEN coalesce((vr.chain_results -> h.chain_id::text ->> 'verified_seq')::bigint, 0) < h.head_seq THEN 'behind'
           ELSE 'intact'
       END                                              AS state,
       -- when the oldest row no checkpoint covers was written (the row
       -- after the checkpoint; the head's update time when retention
       -- removed it); NULL when every row is sealed. Seal lag is now()
       -- minus this, measured from the row so that a chain idle for a day
       -- does not report a day of lag the moment it is written again.
       CASE WHEN h.head_seq > coalesce(cp.chain_seq, 0) THEN coalesce(
           (SELECT min(l.recorded_at) FROM audit.audit_log l
            WHERE l.chain_id = h.chain_id AND l.chain_seq = coalesce(cp.chain_seq, 0) + 1),
           h.updated_at)
       END                                              AS oldest_unsealed_at
FROM audit.chain_heads h
LEFT JOIN LATERAL (
    SELECT c.chain_seq, c.sealed_at
    FROM audit.integrity_checkpoints c
    WHERE c.chain_id = h.chain_id
    ORDER BY c.chain_seq DESC
    LIMIT 1
) cp ON true
LEFT JOIN LATERAL (
    SELECT r.id, r.finished_at, r.chain_results
    FROM audit.verification_runs r
    WHERE r.status IN ('intact', 'tampered') AND h.chain_id = ANY (r.chains)
    ORDER BY r.id DESC
    LIMIT 1
) vr ON true;

COMMENT ON VIEW audit.integrity_status IS 'Per chain: head, newest checkpoint, newest verification and state';

CREATE OR REPLACE VIEW audit.partition_status AS
SELECT p.partition_name,
       p.is_default,
       p.range_start,
       p.range_end,
       p.total_bytes,
       pg_size_pretty(p.total_bytes) AS total_size,
       p.row_estimate,
       p.triggers_ok,
       CASE
           WHEN NOT p.triggers_ok THEN 'missing statement triggers: run auditworker partitions ensure'
           WHEN p.is_default AND EXISTS (SELECT 1 FROM audit.audit_log_default)
               THEN 'holds rows without a partition: run auditworker partitions rescue'
           WHEN p.range_end <= now() THEN 'past'
           WHEN p.range_start <= now() THEN 'current'
           WHEN p.range_start IS NOT NULL THEN 'ahead'
           ELSE 'ok'
       END AS note
FROM audit.partitions() p;

COMMENT ON VIEW audit.partition_status IS 'Partitions of audit_log with bounds, size, row estimate and what needs doing';

-- audit_log under its usual name, for clients that insert without a schema
-- (Drizzle, node-postgres, JDBC, psql). It is a simple view, so INSERT ...
-- RETURNING goes straight to audit.audit_log and its triggers. COPY cannot
-- target a view: COPY into audit.audit_log.
CREATE OR REPLACE VIEW public.audit_log AS SELECT * FROM audit.audit_log;
COMMENT ON VIEW public.audit_log IS 'auditdb: audit.audit_log under its usual name (insert and read; COPY into audit.audit_log)';
