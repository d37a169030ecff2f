package cache

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
)

// A load that read the generation before a purge and stores its value
// after it (another instance's slow query racing a GDPR erasure) must not
// leave that value in Redis: it could never be read, but the purge
// promised the organization's values are gone.
func TestL2StoreAfterPurge(t *testing.T) {
	t.Parallel()
	opt, err := redis.ParseURL(harness.SharedRedis().URL)
	require.NoError(t, err)
	single := redis.NewClient(opt)
	t.Cleanup(func() { _ = single.Close() })
	t.Run("single", func(t *testing.T) { testL2StoreAfterPurge(t, single) })

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rc, err := harness.StartRedisCluster(ctx)
	require.NoError(t, err)
	t.Cleanup(rc.Stop)
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: rc.Addrs})
	t.Cleanup(func() { _ = cluster.Close() })
	t.Run("cluster", func(t *testing.T) { testL2StoreAfterPurge(t, cluster) })
}

func testL2StoreAfterPurge(t *testing.T, rdb redis.UniversalClient) {
	ctx := context.Background()
	cfg := Config{KeyPrefix: fmt.Sprintf("test:%s:%d:", t.Name(), time.Now().UnixNano()), L2Timeout: 2 * time.Second}
	c, err := New(cfg, rdb)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	k, err := QueryKey("org-1", "search")
	require.NoError(t, err)

	_, stale, _, err := c.l2Lookup(ctx, k, nil) // the slow load starts: generation read
	require.NoError(t, err)
	_, err = c.PurgeOrganization(ctx, "org-1") // the erasure's purge
	require.NoError(t, err)
	require.NoError(t, c.l2Store(ctx, k, stale, []byte("pre-erasure page"))) // the load ends
	n, err := rdb.Exists(ctx, c.valueKey(k)).Result()
	require.NoError(t, err)
	require.Zero(t, n, "a value stored under a replaced generation stayed in Redis")

	// a value stored under the generation in force stays
	s, err := rdb.Get(ctx, c.genKey(k.org)).Result()
	require.NoError(t, err)
	current, err := strconv.ParseUint(s, 10, 64)
	require.NoError(t, err)
	require.NotEqual(t, stale, current)
	require.NoError(t, c.l2Store(ctx, k, current, []byte("fresh page")))
	v, _, hit, err := c.l2Lookup(ctx, k, nil)
	require.NoError(t, err)
	require.True(t, hit)
	require.Equal(t, "fresh page", string(v))
}
