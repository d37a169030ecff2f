package main

import (
	"context"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/internal/integrity"
	"github.com/auditdb/auditdb/tests/harness"
)

// maintainerURL creates a login role granted only audit_maintainer (the
// worker's documented role) and returns a URL of db as it.
func maintainerURL(t *testing.T, db *harness.DB) string {
	t.Helper()
	ctx := context.Background()
	role := pgx.Identifier{"lp_maint_" + db.Name}.Sanitize()
	_, err := db.Pool.Exec(ctx, "CREATE ROLE "+role+" LOGIN IN ROLE audit_maintainer")
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = db.Pool.Exec(context.Background(), "DROP OWNED BY "+role+"; DROP ROLE "+role)
	})
	u, err := url.Parse(db.URL)
	require.NoError(t, err)
	u.User = url.User("lp_maint_" + db.Name)
	return u.String()
}

// Every command the worker's role is meant to run succeeds for a login
// role granted only audit_maintainer, with a row in the default partition.
func TestCommandsRunAsMaintainer(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, principal_id)
		SELECT now(), 'a', 'success', 'u' || g FROM generate_series(1, 50) g;
		INSERT INTO audit_log ("timestamp", action, status, retention_policy, data_classification)
		VALUES (now() - interval '200 days', 'old', 'success', 'minimal', 'PUBLIC')`)
	require.NoError(t, err)
	key, err := integrity.GenerateSealKey("k1")
	require.NoError(t, err)
	base := []string{"--database-url", maintainerURL(t, db)}
	for _, args := range [][]string{
		{"status"},
		{"alerts", "evaluate"},
		{"alerts", "list", "--status", "all"},
		{"partitions", "list"},
		{"optimize", "report"},
		{"optimize", "apply"},
		{"retention", "plan"},
		{"seal", "--seal-keys", key},
		{"verify", "--seal-keys", key},
		{"verify", "--incremental", "--seal-keys", key},
		{"report", "attestation"},
		{"partitions", "ensure"},
		{"partitions", "rescue"},
		{"retention", "run", "--archive-dir", t.TempDir(), "--seal-keys", key},
		{"verify", "--seal-keys", key},
	} {
		code, out, errOut := run(t, append(base, args...)...)
		require.Equal(t, 0, code, "%v: %s%s", args, out, errOut)
	}
}
