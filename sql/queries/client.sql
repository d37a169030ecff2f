-- Queries of the Go client (package client).

-- name: CachedQueryReadOnlyCheck
-- First statement of a cached query's transaction: takes its snapshot, after
-- which nothing in the transaction can make it read-write again, and says
-- that it is read-only.
SELECT current_setting('transaction_read_only') = 'on';
