package cache_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
)

// TestRedisCluster runs the invalidation test against a three-master Redis
// Cluster through go-redis's cluster client, and checks that the keys
// spread over the nodes.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rc, err := harness.StartRedisCluster(ctx)
	require.NoError(t, err)
	t.Cleanup(rc.Stop)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:       rc.Addrs,
		DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
	})
	t.Cleanup(func() { _ = rdb.Close() })
	p := prefix(t)
	testInvalidation(t, rdb, p)

	var masters atomic.Int64
	require.NoError(t, rdb.ForEachMaster(ctx, func(context.Context, *redis.Client) error {
		masters.Add(1)
		return nil
	}))
	require.EqualValues(t, 3, masters.Load())
	require.Len(t, scanKeys(t, rdb, p), 4, "two generations and two values")
	testPurge(t, rdb, p+"purge:")
}
