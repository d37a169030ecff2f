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
		// every run verify recorded was sealed, so the keyed attestation
		// trusts them (an unsealed one would make it TAMPERED, exit 2)
		{"report", "attestation", "--seal-keys", key},
	} {
		code, out, errOut := run(t, append(base, args...)...)
		require.Equal(t, 0, code, "%v: %s%s", args, out, errOut)
	}
}

// The keyed attestation exits 2 once the worker's role flips a run.
func TestAttestationExitsTamperedOnEditedRun(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status) SELECT now(), 'a', 'success' FROM generate_series(1, 20) g`)
	require.NoError(t, err)
	key, err := integrity.GenerateSealKey("k1")
	require.NoError(t, err)
	base := []string{"--database-url", maintainerURL(t, db)}
	code, _, errOut := run(t, append(base, "verify", "--seal-keys", key)...)
	require.Equal(t, 0, code, errOut)
	code, out, errOut := run(t, append(base, "report", "attestation", "--seal-keys", key)...)
	require.Equal(t, 0, code, out+errOut)
	_, err = db.Pool.Exec(ctx, `UPDATE audit.verification_runs SET rows_checked = rows_checked + 1`)
	require.NoError(t, err)
	code, out, _ = run(t, append(base, "report", "attestation", "--seal-keys", key)...)
	require.Equal(t, 2, code, out)
	require.Contains(t, out, "forged")
	code, _, _ = run(t, append(base, "report", "attestation")...)
	require.Equal(t, 0, code, "without keys a changed count goes unseen")
}
