package cache_test

import (
	"context"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/cache"
	"github.com/auditdb/auditdb/internal/embeddedredis"
)

// privateRedis starts a Redis of the test's own (the harness's is shared,
// and these tests stop or lock theirs) and a client of it that fails fast.
func privateRedis(t *testing.T) (*embeddedredis.Server, *redis.Options) {
	t.Helper()
	srv, err := embeddedredis.Start(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { srv.Stop() })
	opt, err := redis.ParseURL(srv.URL)
	require.NoError(t, err)
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = 100*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
	opt.MaxRetries = -1
	return srv, opt
}

func redisClient(t *testing.T, opt *redis.Options) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func TestRedisDownAndBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, opt := privateRedis(t)
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	port, err := strconv.Atoi(u.Port())
	require.NoError(t, err)
	rdb := redisClient(t, opt)
	cfg := cache.Config{RetryMin: 100 * time.Millisecond, RetryMax: time.Second, L2Timeout: 250 * time.Millisecond}
	c := newCache(t, cfg, rdb)
	cfg.L1MaxBytes = -1
	strict := newCache(t, cfg, rdb)
	var src source
	k1 := key(t, "org-1", 1)
	require.Equal(t, "q@v0", get(t, c, k1, src.load("q")))

	srv.Stop()
	for i := range 30 {
		k := key(t, "org-1", "down", i)
		v, err := c.Get(ctx, k, src.load("q"))
		require.NoError(t, err, "a Redis outage never reaches the caller")
		require.Equal(t, "q@v0", string(v))
	}
	h := c.Health()
	require.Equal(t, cache.HealthDegraded, h.Status)
	require.Contains(t, h.Reason, "redis unavailable")
	require.False(t, h.Since.IsZero())
	s := c.Stats()
	require.EqualValues(t, 31, s.Loads.Loads)
	require.Positive(t, s.L2.Errors)
	require.Less(t, s.L2.Errors, uint64(10), "the breaker keeps most reads away from a dead Redis")
	loads := src.loads.Load()
	require.Equal(t, "q@v0", get(t, c, k1, src.load("q")), "L1 still serves")
	require.Equal(t, loads, src.loads.Load())

	// a cache made while Redis is down works, and joins when Redis is back
	late, err := cache.New(cfg, rdb)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, late.Close()) })
	require.Equal(t, "q@v0", get(t, late, k1, src.load("q")))
	require.Equal(t, cache.HealthDegraded, late.Health().Status)

	// back on the same port, empty
	srv2, err := embeddedredis.StartPort(ctx, port)
	require.NoError(t, err)
	t.Cleanup(srv2.Stop)
	require.Eventually(t, func() bool { return c.Health().Status == cache.HealthOK },
		10*time.Second, 10*time.Millisecond, "no read needed to resume: %+v", c.Health())
	for _, other := range []*cache.Cache{strict, late} {
		require.Eventually(t, func() bool { return other.Health().Status == cache.HealthOK },
			10*time.Second, 10*time.Millisecond)
	}
	k2 := key(t, "org-1", "after")
	get(t, c, k2, src.load("q"))
	l2 := strict.Stats().L2.Hits
	loads = src.loads.Load()
	require.Equal(t, "q@v0", get(t, strict, k2, src.load("q")))
	require.Equal(t, l2+1, strict.Stats().L2.Hits, "Redis serves again")
	require.Equal(t, loads, src.loads.Load())
}

// TestInvalidationKeptDuringOutage: an invalidation that cannot reach Redis
// is applied when Redis is back, before the cache reads Redis again, so
// values stored before the outage are not served after it. The outage is a
// password the cache does not know, which keeps the data in place.
func TestInvalidationKeptDuringOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, opt := privateRedis(t)
	adminOpt := *opt
	adminOpt.PoolSize = 1 // one connection, authenticated before the password is set
	admin := redisClient(t, &adminOpt)
	cfg := cache.Config{RetryMin: 50 * time.Millisecond, RetryMax: 100 * time.Millisecond, L2Timeout: 250 * time.Millisecond}
	c := newCache(t, cfg, redisClient(t, opt))
	var src source
	k := key(t, "org-1", "search")
	require.Equal(t, "q@v0", get(t, c, k, src.load("q")))

	require.NoError(t, admin.ConfigSet(ctx, "requirepass", "not-the-cache's").Err())
	require.NoError(t, admin.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err())
	require.NoError(t, admin.Do(ctx, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err())
	src.version.Store(1)
	require.NoError(t, c.InvalidateOrganization(ctx, "org-1"))
	require.Equal(t, "q@v1", get(t, c, k, src.load("q")), "L1 was invalidated")
	require.Equal(t, cache.HealthDegraded, c.Health().Status)

	require.NoError(t, admin.ConfigSet(ctx, "requirepass", "").Err())
	require.Eventually(t, func() bool { return c.Health().Status == cache.HealthOK },
		10*time.Second, 10*time.Millisecond, "%+v", c.Health())
	strict := newCache(t, cache.Config{L1MaxBytes: -1, L2Timeout: 250 * time.Millisecond}, redisClient(t, opt))
	v, err := strict.Get(ctx, k, func(context.Context) ([]byte, error) { return []byte("reloaded"), nil })
	require.NoError(t, err)
	require.Equal(t, "reloaded", string(v), "the value stored before the outage no longer matches")
	require.EqualValues(t, 0, strict.Stats().L2.Hits)
}
