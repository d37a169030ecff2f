package monitor

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
)

func TestPoolStatsOf(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	pcfg, err := pgxpool.ParseConfig(db.URL)
	require.NoError(t, err)
	pcfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	require.NoError(t, err)
	defer pool.Close()

	a, err := pool.Acquire(ctx)
	require.NoError(t, err)
	b, err := pool.Acquire(ctx)
	require.NoError(t, err)
	s := PoolStatsOf(pool)
	require.Equal(t, int32(4), s.MaxConns)
	require.Equal(t, int32(2), s.AcquiredConns)
	require.Equal(t, int32(2), s.TotalConns)
	require.InDelta(t, 0.5, s.Usage, 1e-9)
	require.Equal(t, int64(2), s.AcquireCount)
	require.Equal(t, int64(2), s.EmptyAcquireCount, "both acquisitions had to open a connection")
	require.Positive(t, s.AverageAcquire)

	a.Release()
	b.Release()
	s = PoolStatsOf(pool)
	require.Equal(t, int32(0), s.AcquiredConns)
	require.Equal(t, int32(2), s.IdleConns)
	require.Zero(t, s.Usage)
}
