package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
)

// A backup restored into a new database verifies intact, has every row,
// and passes doctor (roles, views, grants, triggers on every partition);
// restore refuses a database that already has auditdb.
func TestBackupRestoresIntact(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, principal_id, target_resource_type, target_resource_id, details)
		SELECT now() - g * interval '1 minute', 'fhir.patient.read', 'success', 'dr-' || g % 7, 'Patient', 'p-' || g, '{"n": 1}'
		FROM generate_series(1, 300) g`)
	require.NoError(t, err)

	file := filepath.Join(t.TempDir(), "audit.dump")
	code, out, errOut := run(t, "--database-url", db.URL, "backup", "--out", file)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "(schemas audit, audit_river) written to "+file)
	st, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	restored := harness.NewEmptyDB(t)
	code, out, errOut = run(t, "--database-url", restored.URL, "restore", "--in", file)
	require.Equal(t, 0, code, out+errOut)
	require.Contains(t, out, "verify: intact, 300 rows, 0 findings")
	require.NotContains(t, out, "doctor:")
	var n int
	require.NoError(t, restored.Pool.QueryRow(ctx, `SELECT count(*) FROM public.audit_log`).Scan(&n))
	require.Equal(t, 300, n)

	// the restored log takes new events on the same chains, and stays intact
	_, err = restored.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status) VALUES (now(), 'after.restore', 'success')`)
	require.NoError(t, err)
	code, out, errOut = run(t, "--database-url", restored.URL, "verify", "--no-record")
	require.Equal(t, 0, code, out+errOut)

	code, _, errOut = run(t, "--database-url", restored.URL, "restore", "--in", file)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "already has auditdb installed: restore into a new, empty database")
	code, _, errOut = run(t, "--database-url", db.URL, "backup")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "out: required")
}

func TestDoctorCommand(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	code, out, errOut := run(t, "--database-url", db.URL, "doctor")
	require.Equal(t, 0, code, out+errOut)
	require.Contains(t, out, "schema as expected")
	_, err := db.Pool.Exec(context.Background(), `REVOKE SELECT ON audit.chain_heads FROM audit_reader`)
	require.NoError(t, err)
	code, out, _ = run(t, "--database-url", db.URL, "doctor")
	require.Equal(t, 2, code)
	require.Contains(t, out, "1 difference(s):")
	require.Regexp(t, `grant\s+audit_reader: SELECT ON audit.chain_heads\s+missing`, out)
	code, out, _ = run(t, "--database-url", db.URL, "doctor", "--json")
	require.Equal(t, 2, code)
	require.Contains(t, out, `"problem": "missing"`)
}
