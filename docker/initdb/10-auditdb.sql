-- Runs once, when the data volume is new (docker-entrypoint-initdb.d).
-- `auditworker migrate` then adds River's tables beside the extension.
CREATE EXTENSION IF NOT EXISTS auditdb;
SELECT audit.use_accelerator(true);
SELECT count(*) FROM audit.ensure_partitions(3);
-- The worker logs in with no more rights than audit_maintainer gives (the
-- migrate service, which installs River's tables, stays the owner). Change
-- the password here and in compose.yaml's x-worker-url together.
CREATE ROLE auditworker LOGIN PASSWORD 'auditworker' IN ROLE audit_maintainer;
