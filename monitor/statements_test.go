package monitor

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/internal/embeddedpg"
	"github.com/auditdb/auditdb/tests/harness"
)

func TestTopStatementsNotCreated(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	_, err := TopStatements(context.Background(), db.Pool, 5)
	require.ErrorIs(t, err, ErrStatementsUnavailable)
	require.ErrorContains(t, err, "extension not created in this database")

	_, err = TopStatements(context.Background(), db.Pool, 0)
	require.ErrorContains(t, err, "n must be at least 1")
}

func TestTopStatementsNotLoaded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewEmptyDB(t)
	// the shared test server does not preload the library
	_, err := db.Pool.Exec(ctx, `CREATE EXTENSION pg_stat_statements`)
	require.NoError(t, err)
	_, err = TopStatements(ctx, db.Pool, 5)
	require.ErrorIs(t, err, ErrStatementsUnavailable)
	require.ErrorContains(t, err, "server does not load the library")
}

func TestTopStatementsPresent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, err := embeddedpg.Start(ctx, embeddedpg.Config{Settings: map[string]string{
		"shared_preload_libraries": "pg_stat_statements",
	}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, srv.Stop()) })
	pool, err := pgxpool.New(ctx, srv.URL("postgres"))
	require.NoError(t, err)
	defer pool.Close()

	_, err = pool.Exec(ctx, `CREATE EXTENSION pg_stat_statements`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `CREATE TABLE patients (mrn text)`)
	require.NoError(t, err)
	for range 20 {
		_, err = pool.Exec(ctx, `INSERT INTO patients SELECT 'mrn-' || g FROM generate_series(1, 200) g`)
		require.NoError(t, err)
	}
	// a utility statement keeps its literals in pg_stat_statements on 15
	_, err = pool.Exec(ctx, `COMMENT ON TABLE patients IS 'ward 7 secret'`)
	require.NoError(t, err)

	top, err := TopStatements(ctx, pool, 50)
	require.NoError(t, err)
	require.NotEmpty(t, top)
	var insert *Statement
	for i, s := range top {
		require.NotContains(t, s.Query, "ward 7 secret")
		require.NotContains(t, s.Query, "mrn-")
		if i > 0 {
			require.GreaterOrEqual(t, top[i-1].TotalTime, s.TotalTime, "most expensive first")
		}
		if s.Query == `INSERT INTO patients SELECT $1 || g FROM generate_series($2, $3) g` {
			insert = &top[i]
		}
	}
	require.NotNil(t, insert, "the INSERT is listed: %+v", top)
	require.Equal(t, int64(20), insert.Calls)
	require.Equal(t, int64(4000), insert.Rows)
	require.Greater(t, insert.TotalTime, insert.MeanTime)
	require.GreaterOrEqual(t, insert.HitRatio, 0.0)
	require.LessOrEqual(t, insert.HitRatio, 1.0)

	one, err := TopStatements(ctx, pool, 1)
	require.NoError(t, err)
	require.Len(t, one, 1)
}
