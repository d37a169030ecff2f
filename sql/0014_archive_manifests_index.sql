-- auditdb step 14: drop a duplicate index.
--
-- Step 1 created archive_manifests_chain_idx on (chain_id, first_seq); step
-- 10 added the unique archive_manifests_chain_first_key on the same columns,
-- which serves every lookup the first did. Two identical indexes cost every
-- manifest insert twice and were the first finding of `optimize report`.
DROP INDEX IF EXISTS audit.archive_manifests_chain_idx;
