-- Runs once, when the data volume is new (docker-entrypoint-initdb.d).
-- `auditworker migrate` then adds River's tables beside the extension.
CREATE EXTENSION IF NOT EXISTS auditdb;
SELECT audit.use_accelerator(true);
SELECT count(*) FROM audit.ensure_partitions(3);
