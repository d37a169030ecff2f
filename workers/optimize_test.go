package workers

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/monitor"
	"github.com/auditdb/auditdb/tests/harness"
)

func TestOptimizeDryRunThenApply(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	BloatedScratchIndex(t, db)
	deps := &Deps{Pool: db.Pool, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cfg := monitor.OptimizeConfig{BloatMinBytes: 64 << 10}

	size := func() (n int64) {
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT pg_relation_size('audit.scratch_v_idx')`).Scan(&n))
		return n
	}
	before := size()
	dry, err := deps.Optimize(ctx, cfg, true)
	require.NoError(t, err)
	require.True(t, dry.DryRun)
	// never analysed: no statistics to estimate bloat from yet
	require.Equal(t, []AppliedAction{{Action: monitor.Action{Kind: monitor.ActionAnalyze,
		Target: "audit.scratch", SQL: "ANALYZE audit.scratch"}}}, dry.Applied)
	require.Equal(t, before, size(), "a dry run changes nothing")

	res, err := deps.Optimize(ctx, cfg, false)
	require.NoError(t, err)
	var targets []string
	for _, a := range res.Applied {
		targets = append(targets, string(a.Kind)+" "+a.Target)
		require.Empty(t, a.Error, a.SQL)
		require.Positive(t, a.Duration)
	}
	require.Equal(t, "analyze audit.scratch", targets[0])
	require.Contains(t, targets, "reindex audit.scratch_v_idx", "ANALYZE gave the statistics that showed the bloat")
	require.Less(t, size()*3, before)
}

func TestEvaluateAlertsJob(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	deps := &Deps{Pool: db.Pool, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	store := monitor.NewAlertStore(db.Pool, monitor.AlertStoreOptions{Logger: deps.Logger})
	res, err := deps.EvaluateAlerts(ctx, store, monitor.AlertConfig{PartitionsAhead: 12})
	require.NoError(t, err)
	require.Len(t, res.Opened, 1)
	require.Equal(t, monitor.AlertPartitionsAhead, res.Opened[0].Kind)
	res, err = deps.EvaluateAlerts(ctx, store, monitor.AlertConfig{})
	require.NoError(t, err)
	require.Len(t, res.Resolved, 1)
}

// BloatedScratchIndex (exported for the package's external tests) makes audit.scratch with an index that is 90 % empty
// pages, which the optimizer wants rebuilt, owned (like every table of
// schema audit) by the database's owner.
func BloatedScratchIndex(t *testing.T, db *harness.DB) {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	for _, sql := range []string{
		`CREATE TABLE audit.scratch (id bigint PRIMARY KEY, v int) WITH (autovacuum_enabled = false)`,
		`CREATE INDEX scratch_v_idx ON audit.scratch (v)`,
		`INSERT INTO audit.scratch SELECT g, (g * 7919) % 50000 FROM generate_series(1, 50000) g`,
		`DELETE FROM audit.scratch WHERE id % 10 <> 0`,
		`VACUUM audit.scratch`,
		// the counters reach the shared statistics when this backend goes
		// idle next, before it answers
		`SELECT pg_stat_force_next_flush()`,
	} {
		_, err := conn.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
}
