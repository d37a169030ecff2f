-- ArchiveRowsRetentionEnd: when the longest retention among the rows of one
-- chain range ends: each row's "timestamp" plus the effective retention days
-- of its (policy, classification) as the retention plan computed them
-- ($4 policies, $5 classifications, $6 days). An archive is kept under Object
-- Lock at least until the latest of these over its ranges.
SELECT max(l."timestamp" + make_interval(days => e.days))
FROM audit.audit_log l
JOIN unnest($4::text[], $5::text[], $6::int[]) AS e(policy, cls, days)
  ON e.policy = l.retention_policy AND e.cls = l.data_classification
WHERE l.chain_id = $1 AND l.chain_seq BETWEEN $2 AND $3
