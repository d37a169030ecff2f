package tests

import (
	"context"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
)

// The harness's services are real and isolated: a Redis that stores and
// returns values, and databases that do not see each other's rows.
func TestHarnessServices(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opt, err := goredis.ParseURL(harness.SharedRedis().URL)
	require.NoError(t, err)
	rdb := goredis.NewClient(opt)
	defer rdb.Close()
	require.NoError(t, rdb.Set(ctx, "harness:probe", "ok", 0).Err())
	v, err := rdb.Get(ctx, "harness:probe").Result()
	require.NoError(t, err)
	require.Equal(t, "ok", v)

	a, b := harness.NewDB(t), harness.NewDB(t)
	insertN(t, a.Pool, 3)
	var n int
	require.NoError(t, b.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log`).Scan(&n))
	require.Zero(t, n, "each test has a database of its own")
	require.NoError(t, a.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log`).Scan(&n))
	require.Equal(t, 3, n)
}
