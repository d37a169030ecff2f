package monitor

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/internal/embeddedpg"
	"github.com/auditdb/auditdb/internal/migrate"
	"github.com/auditdb/auditdb/tests/harness"
)

// Installed but not preloaded, pg_stat_statements cannot be read: the
// analysis says so instead of failing.
func TestSlowStatementsNotLoaded(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `CREATE EXTENSION pg_stat_statements`)
	require.NoError(t, err)
	stmts, status, err := SlowStatements(ctx, db.Pool, time.Millisecond, 1, 10)
	require.NoError(t, err)
	require.Equal(t, StatementsNotLoaded, status)
	require.Empty(t, stmts)
	rep, err := AnalyzeIndexes(ctx, db.Pool, OptimizeConfig{})
	require.NoError(t, err)
	require.Equal(t, StatementsNotLoaded, rep.Statements)
	conds, err := EvaluateAlerts(ctx, db.Pool, AlertConfig{SlowQuery: time.Millisecond})
	require.NoError(t, err)
	require.Empty(t, conds)
}

// With pg_stat_statements preloaded (a server of the test's own), slow
// statements reach the report and raise slow_queries.
func TestSlowStatementsPreloaded(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL server of its own")
	}
	t.Parallel()
	ctx := context.Background()
	srv, err := embeddedpg.Start(ctx, embeddedpg.Config{Settings: map[string]string{"shared_preload_libraries": "pg_stat_statements"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	pool, err := pgxpool.New(ctx, srv.URL("postgres"))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = migrate.Migrate(ctx, pool, migrate.Options{})
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `CREATE EXTENSION pg_stat_statements; SELECT count(*) FROM audit.ensure_partitions(3)`)
	require.NoError(t, err)
	for i := 0; i < 6; i++ {
		_, err := pool.Exec(ctx, `SELECT pg_sleep($1)`, 0.03)
		require.NoError(t, err)
	}

	stmts, status, err := SlowStatements(ctx, pool, 20*time.Millisecond, 5, 10)
	require.NoError(t, err)
	require.Equal(t, StatementsAvailable, status)
	require.Len(t, stmts, 1)
	require.EqualValues(t, 6, stmts[0].Calls)
	require.GreaterOrEqual(t, stmts[0].MeanMillis, 30.0)

	rep, err := AnalyzeIndexes(ctx, pool, OptimizeConfig{SlowQuery: 20 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, StatementsAvailable, rep.Statements)
	slow := findingsOf(rep, FindingSlowQuery)
	require.Len(t, slow, 1)
	for _, f := range slow {
		require.Contains(t, f.Detail, "6 calls")
		require.NotContains(t, f.Detail, "pg_sleep", "statement texts stay in the database")
	}

	conds, err := EvaluateAlerts(ctx, pool, AlertConfig{SlowQuery: 20 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, []string{AlertSlowQueries + "/"}, kindsOf(conds))
}
