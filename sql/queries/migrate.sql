-- Queries of internal/migrate's production safety checks.

-- name: ServerVersionRead
-- The server's version as a number (150004) and as people write it.
SELECT current_setting('server_version_num')::int, current_setting('server_version');

-- name: MigrationStepLockTimeoutSet
-- lock_timeout for the step's transaction only ($1 in milliseconds, as text).
SELECT set_config('lock_timeout', $1, true);
