package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/monitor"
	"github.com/auditdb/auditdb/tests/harness"
	"github.com/auditdb/auditdb/workers"
)

func TestOptimizeReportAndApply(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `CREATE TABLE audit.scratch (id bigint PRIMARY KEY, v int) WITH (autovacuum_enabled = false);
		CREATE INDEX scratch_v_idx ON audit.scratch (v);
		CREATE INDEX scratch_v_copy_idx ON audit.scratch (v);
		INSERT INTO audit.scratch SELECT g, g % 100 FROM generate_series(1, 2000) g;
		ANALYZE audit.scratch`)
	require.NoError(t, err)

	code, out, errOut := run(t, "--database-url", db.URL, "optimize", "report")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "KIND")
	require.Contains(t, out, "duplicate_index")
	require.Contains(t, out, "recommend: DROP INDEX audit.scratch_v_idx")
	require.Contains(t, out, "bloat by estimate")

	code, out, _ = run(t, "--database-url", db.URL, "optimize", "report", "--json", "--unused-min-age=-1s")
	require.Equal(t, 0, code)
	var rep monitor.IndexReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.True(t, rep.UnusedChecked)
	require.NotEmpty(t, rep.Findings)
	require.NotContains(t, out, "archive_manifests_chain", "auditdb's own indexes are no duplicates (step 0013)")
	var dups int
	for _, f := range rep.Findings {
		if f.Kind == "duplicate_index" {
			dups++
		}
	}
	require.Equal(t, 1, dups, "only the scratch table's")

	// The parent audit_log was never analysed: apply's one safe action.
	conn, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status) SELECT now(), 'a', 'success' FROM generate_series(1, 10)`)
	require.NoError(t, err)
	// the row counts reach the shared statistics before this answers
	_, err = conn.Exec(ctx, `SELECT pg_stat_force_next_flush()`)
	require.NoError(t, err)
	conn.Release()
	code, out, errOut = run(t, "--database-url", db.URL, "optimize", "apply", "--dry-run")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "ANALYZE audit.audit_log")
	require.Contains(t, out, "would run")
	require.Contains(t, out, "dry run: nothing was changed")

	code, out, errOut = run(t, "--database-url", db.URL, "optimize", "apply", "--json")
	require.Equal(t, 0, code, errOut)
	var res workers.OptimizeResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.False(t, res.DryRun)
	require.Contains(t, res.Applied, workers.AppliedAction{Action: monitor.Action{Kind: monitor.ActionAnalyze,
		Target: "audit.audit_log", SQL: "ANALYZE audit.audit_log"}, Duration: findDuration(res, "audit.audit_log")})

	code, _, errOut = run(t, "--database-url", db.URL, "optimize", "report", "--bloat-ratio", "2")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "BloatRatio: must be between 0 and 1")
	require.Equal(t, 1, strings.Count(strings.TrimSpace(errOut), "\n")+1)
}

func findDuration(res workers.OptimizeResult, target string) time.Duration {
	for _, a := range res.Applied {
		if a.Target == target {
			return a.Duration
		}
	}
	return 0
}
