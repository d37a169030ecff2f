-- auditdb step 11: alerts, and ANALYZE for the worker.
--
-- An alert is one open problem, not one observation of it: the worker's
-- evaluator and the jobs raise alerts by fingerprint (kind and labels), and
-- while an alert with that fingerprint is not resolved a new observation
-- only bumps last_seen and occurrences. Once resolved, the same problem
-- opens a new alert.

CREATE TABLE IF NOT EXISTS audit.alerts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,62}$'),
    severity        text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    fingerprint     text NOT NULL,
    message         text NOT NULL,
    -- identifiers only (run ids, partition names, query ids), never values
    labels          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),
    status          text NOT NULL DEFAULT 'open'
                    CHECK (status IN ('open', 'acknowledged', 'resolved')),
    first_seen      timestamptz NOT NULL DEFAULT now(),
    last_seen       timestamptz NOT NULL DEFAULT now(),
    occurrences     bigint NOT NULL DEFAULT 1 CHECK (occurrences > 0),
    acknowledged_by text,
    acknowledged_at timestamptz,
    resolved_at     timestamptz,
    CHECK ((status = 'resolved') = (resolved_at IS NOT NULL)),
    CHECK ((acknowledged_at IS NULL) = (acknowledged_by IS NULL))
);

COMMENT ON TABLE audit.alerts IS
    'Alerts raised by auditworker: deduplicated by fingerprint while not resolved; acknowledged and resolved by operators or by the evaluator';

-- The deduplication: at most one unresolved alert per fingerprint, the
-- arbiter of INSERT ... ON CONFLICT (fingerprint) WHERE status <> 'resolved'.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_unresolved_fingerprint_idx
    ON audit.alerts (fingerprint) WHERE status <> 'resolved';
CREATE INDEX IF NOT EXISTS alerts_status_last_seen_idx
    ON audit.alerts (status, last_seen DESC);

-- ANALYZE needs the table's owner; the worker runs as audit_maintainer.
-- ANALYZE (unlike REINDEX CONCURRENTLY) may run inside a function, so the
-- owner lends it for the tables of schema audit only.
CREATE OR REPLACE FUNCTION audit.analyze_table(rel regclass)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_class c
                   WHERE c.oid = rel AND c.relnamespace = 'audit'::regnamespace
                     AND c.relkind IN ('r', 'p')) THEN
        RAISE EXCEPTION 'audit.analyze_table: % is not a table of schema audit', rel
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE format('ANALYZE %s', rel);
END
$$;

REVOKE ALL ON audit.alerts FROM PUBLIC;
GRANT SELECT ON audit.alerts TO audit_reader;
GRANT SELECT, INSERT, UPDATE ON audit.alerts TO audit_maintainer;
REVOKE EXECUTE ON FUNCTION audit.analyze_table(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.analyze_table(regclass) TO audit_maintainer;
