package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
)

// migrate --verify verifies before and after; a log that is not intact is
// refused before any step runs unless --allow-tampered, and then the run
// ends with exit 2 because the log is still not intact afterwards.
func TestMigrateVerify(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, principal_id)
		SELECT now(), 'a', 'success', 'u' || g FROM generate_series(1, 50) g`)
	require.NoError(t, err)

	code, out, errOut := run(t, "--database-url", db.URL, "migrate", "--verify")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "up to date")
	require.Contains(t, errOut, "migrate: verify before: intact, 50 rows, 0 findings")
	require.Contains(t, errOut, "migrate: verify after: intact, 50 rows, 0 findings (run ")

	_, err = db.Pool.Exec(ctx, `BEGIN; SET LOCAL session_replication_role = replica;
		UPDATE audit.audit_log SET action = 'b' WHERE id = 7; COMMIT`)
	require.NoError(t, err)
	var runs int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.verification_runs`).Scan(&runs))

	code, _, errOut = run(t, "--database-url", db.URL, "migrate", "--verify")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "verify: the audit log is not intact (tampered, 50 rows, 1 findings: row_modified 1): refusing to migrate; investigate with `auditworker verify`, or pass --allow-tampered")
	var after int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.verification_runs`).Scan(&after))
	require.Equal(t, runs, after, "the check before records nothing")

	code, _, errOut = run(t, "--database-url", db.URL, "migrate", "--verify", "--allow-tampered")
	require.Equal(t, 2, code, errOut)
	require.Contains(t, errOut, "migrating anyway (--allow-tampered)")

	code, _, errOut = run(t, "--database-url", db.URL, "migrate", "--allow-tampered")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "allow-tampered: only with --verify")
	code, _, errOut = run(t, "--database-url", db.URL, "migrate", "--lock-timeout", "0s")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "lock-timeout: must be positive")
}
