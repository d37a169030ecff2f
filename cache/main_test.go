package cache_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/cache"
	"github.com/auditdb/auditdb/tests/harness"
)

func TestMain(m *testing.M) {
	harness.Main(m, harness.Options{Redis: true})
}

// sharedRedis is a client of the harness's Redis, closed when the test
// ends. Its timeouts are short for Redis but long enough for a loaded CI
// machine; the outage tests use shorter ones.
func sharedRedis(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(harness.SharedRedis().URL)
	require.NoError(t, err)
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = 2*time.Second, 2*time.Second, 2*time.Second
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// prefix isolates a test's keys and channel in the shared Redis.
func prefix(t testing.TB) string {
	return "test:" + strings.ReplaceAll(t.Name(), "/", ":") + fmt.Sprintf(":%d:", time.Now().UnixNano())
}

// newCache makes a cache closed when the test ends and, with Redis, waits
// until it listens for invalidations (its first subscription flushes L1).
func newCache(t testing.TB, cfg cache.Config, rdb redis.UniversalClient) *cache.Cache {
	t.Helper()
	if cfg.L2Timeout == 0 {
		// Tests count hits exactly: on a loaded machine (CI under -race)
		// the default 250ms can pass for an outage.
		cfg.L2Timeout = 2 * time.Second
	}
	c, err := cache.New(cfg, rdb)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	if rdb != nil {
		require.Eventually(t, func() bool { return c.Health().Status == cache.HealthOK },
			5*time.Second, 5*time.Millisecond, "cache never became healthy: %+v", c.Health())
	}
	return c
}

// source stands for the database: its value changes when "events arrive",
// and it counts loads.
type source struct {
	version atomic.Int64
	loads   atomic.Int64
}

func (s *source) load(name string) func(context.Context) ([]byte, error) {
	return func(context.Context) ([]byte, error) {
		s.loads.Add(1)
		return fmt.Appendf(nil, "%s@v%d", name, s.version.Load()), nil
	}
}

func get(t testing.TB, c *cache.Cache, k cache.Key, load func(context.Context) ([]byte, error)) string {
	t.Helper()
	v, err := c.Get(context.Background(), k, load)
	require.NoError(t, err)
	return string(v)
}

func key(t testing.TB, org string, parts ...any) cache.Key {
	t.Helper()
	k, err := cache.QueryKey(org, parts...)
	require.NoError(t, err)
	return k
}

// scanKeys lists the Redis keys under p. Only tests look keys up; the cache
// itself never lists keys.
func scanKeys(t testing.TB, rdb redis.UniversalClient, p string) []string {
	t.Helper()
	var (
		mu   sync.Mutex // ForEachMaster scans the nodes concurrently
		keys []string
	)
	ctx := context.Background()
	scan := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, p+"*", 100).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			keys = append(keys, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	switch r := rdb.(type) {
	case *redis.Client:
		require.NoError(t, scan(ctx, r))
	case *redis.ClusterClient:
		require.NoError(t, r.ForEachMaster(ctx, scan))
	}
	return keys
}
