package migrate_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/internal/migrate"
	"github.com/auditdb/auditdb/tests/harness"
)

func TestMain(m *testing.M) { harness.Main(m, harness.Options{}) }

func TestServerVersionCheck(t *testing.T) {
	t.Parallel()
	db := harness.NewEmptyDB(t)
	require.NoError(t, migrate.CheckServerVersion(context.Background(), db.Pool), "the harness runs 15")
	require.NoError(t, migrate.CheckServerVersionNum(140000, "14.0"))
	err := migrate.CheckServerVersionNum(130011, "13.11 (Debian 13.11-1.pgdg120+1)")
	require.ErrorIs(t, err, migrate.ErrServerTooOld)
	require.EqualError(t, err, "migrate: PostgreSQL too old: found PostgreSQL 13.11; auditdb's schema needs PostgreSQL 14 or newer")
}

// A step that cannot get its lock within LockTimeout is rolled back and
// retried with a backoff; once the lock is free it applies. A lock held
// throughout fails the migration after the retries, naming lock_timeout,
// and leaves the step unapplied.
func TestStepLockTimeoutRetries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewEmptyDB(t)
	_, err := migrate.Migrate(ctx, db.Pool, migrate.Options{TargetVersion: 13})
	require.NoError(t, err)

	// a reader holding audit.archive_manifests: step 14 drops one of its
	// indexes, which needs an ACCESS EXCLUSIVE lock
	hold := func() pgx.Tx {
		tx, err := db.Pool.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, `SELECT count(*) FROM audit.archive_manifests`)
		require.NoError(t, err)
		return tx
	}
	tx := hold()
	// rolled back however the test ends, or closing the pool waits for it
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	var retries atomic.Int32
	opts := migrate.Options{TargetVersion: 14, LockTimeout: 100 * time.Millisecond, LockRetries: 2, LockRetryBackoff: 20 * time.Millisecond,
		OnLockRetry: func(step, attempt int, wait time.Duration) { retries.Add(1) }}
	_, err = migrate.Migrate(ctx, db.Pool, opts)
	require.ErrorContains(t, err, "migrate: step 0014 (0014_archive_manifests_index.sql) failed and was rolled back, the database stays at step 0013: a lock was not granted within lock_timeout (100ms) in 3 attempts")
	require.EqualValues(t, 2, retries.Load())
	var applied bool
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM audit.schema_migrations WHERE version = 14)`).Scan(&applied))
	require.False(t, applied, "a step that failed leaves nothing")

	// released during the retries: the step applies
	opts.LockRetries = 20
	opts.OnLockRetry = func(step, attempt int, wait time.Duration) {
		if attempt == 1 {
			require.NoError(t, tx.Rollback(ctx))
		}
	}
	res, err := migrate.Migrate(ctx, db.Pool, opts)
	require.NoError(t, err)
	require.Equal(t, 14, res.Current)
	var idx int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE schemaname = 'audit' AND tablename = 'archive_manifests'
		AND indexname IN ('archive_manifests_chain_idx', 'archive_manifests_chain_first_key')`).Scan(&idx))
	require.Equal(t, 1, idx, "the duplicate index is gone, the unique one stays")

	_, err = migrate.Migrate(ctx, db.Pool, migrate.Options{LockTimeout: -1})
	require.ErrorContains(t, err, "Options.LockTimeout: must not be negative")
}
