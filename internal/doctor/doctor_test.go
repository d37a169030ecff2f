package doctor_test

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/internal/doctor"
	auditsql "github.com/auditdb/auditdb/sql"
	"github.com/auditdb/auditdb/tests/harness"
)

var update = flag.Bool("update", false, "rewrite expected_schema.json from a freshly migrated database")

func TestMain(m *testing.M) { harness.Main(m, harness.Options{}) }

// The expected schema is the one a fresh migration makes; -update writes it.
func TestExpectedSchema(t *testing.T) {
	db := harness.NewDB(t)
	live, err := doctor.Live(context.Background(), db.Pool)
	require.NoError(t, err)
	if *update {
		b, err := json.MarshalIndent(live, "", "  ")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile("expected_schema.json", append(b, '\n'), 0o644))
		return
	}
	want, err := doctor.Expected()
	require.NoError(t, err)
	require.Equal(t, want, live, "expected_schema.json is stale: go test ./internal/doctor -run TestExpectedSchema -update")
	rep, err := doctor.Check(context.Background(), db.Pool)
	require.NoError(t, err)
	require.True(t, rep.OK(), "%v", rep.Differences)
	require.Greater(t, rep.Checked["grant"], 20)
	require.Greater(t, rep.Checked["function"], 20)
}

// Every kind of drift is named: a partition without its flush trigger, a
// disabled integrity trigger on another, a revoked grant, a function that
// lost its search_path, a dropped table, an extra function and a changed
// migration checksum.
func TestCheckNamesEveryDifference(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	var p1, p2 string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT min(inhrelid::regclass::text), max(inhrelid::regclass::text) FROM pg_inherits
		WHERE inhparent = 'audit.audit_log'::regclass AND inhrelid::regclass::text <> 'audit.audit_log_default'`).Scan(&p1, &p2))
	for _, sql := range []string{
		`DROP TRIGGER zz_audit_log_chain_flush ON ` + p1,
		`ALTER TABLE ` + p2 + ` DISABLE TRIGGER zz_audit_log_integrity`,
		`REVOKE INSERT ON audit.audit_log FROM audit_writer`,
		`ALTER FUNCTION audit.subject_principal_ids(text) RESET search_path`,
		`DROP TABLE audit.alerts`,
		`CREATE FUNCTION audit.backdoor() RETURNS int LANGUAGE sql RETURN 1`,
		`UPDATE audit.schema_migrations SET checksum = 'feedfacefeedface' WHERE version = 5`,
	} {
		_, err := db.Pool.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	rep, err := doctor.Check(ctx, db.Pool)
	require.NoError(t, err)
	require.False(t, rep.OK())
	got := map[doctor.Difference]bool{}
	for _, d := range rep.Differences {
		got[d] = true
	}
	for _, want := range []doctor.Difference{
		{Check: "partition", Object: p1, Problem: "lacks trigger zz_audit_log_chain_flush"},
		{Check: "partition", Object: p2, Problem: "trigger zz_audit_log_integrity is disabled"},
		{Check: "grant", Object: "audit_writer: INSERT ON audit.audit_log", Problem: "missing"},
		{Check: "function", Object: "audit.subject_principal_ids(text) SECURITY DEFINER SET search_path=pg_catalog, pg_temp", Problem: "missing"},
		{Check: "function", Object: "audit.subject_principal_ids(text) SECURITY DEFINER", Problem: "unexpected"},
		{Check: "table", Object: "audit.alerts (table)", Problem: "missing"},
		{Check: "function", Object: "audit.backdoor()", Problem: "unexpected"},
		{Check: "migration", Object: "step 0005 (functions/0005_partitions.sql)",
			Problem: "applied with checksum feedfacefeed, the step's text has " + mustChecksum(t, 5)[:12] + ": a released step changed"},
	} {
		require.True(t, got[want], "missing %+v in %+v", want, rep.Differences)
	}
}

func mustChecksum(t *testing.T, version int) string {
	t.Helper()
	steps, err := auditsql.Steps()
	require.NoError(t, err)
	for _, s := range steps {
		if s.Version == version {
			return s.Checksum()
		}
	}
	t.Fatalf("no step %d", version)
	return ""
}
