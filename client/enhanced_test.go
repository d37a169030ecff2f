package client

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/cache"
	"github.com/auditdb/auditdb/monitor"
	"github.com/auditdb/auditdb/tests/harness"
)

// enhanced makes an enhanced client on db with the harness's Redis under a
// key prefix of its own, closed when the test ends.
func enhanced(t *testing.T, db *harness.DB, prefix string, change func(*EnhancedConfig)) *Enhanced {
	t.Helper()
	cfg := EnhancedConfig{Config: Config{URL: db.URL}, RedisURL: harness.SharedRedis().URL,
		Cache: cache.Config{KeyPrefix: prefix}, Monitor: monitor.Config{Enabled: true}}
	if change != nil {
		change(&cfg)
	}
	e, err := NewEnhanced(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(e.Close)
	if cfg.RedisURL == harness.SharedRedis().URL && !cfg.CacheDisabled {
		// listening for invalidations before the test reads
		require.Eventually(t, func() bool { return e.cache.Health().Status == cache.HealthOK },
			5*time.Second, 5*time.Millisecond)
	}
	return e
}

func testPrefix(t *testing.T) string {
	return fmt.Sprintf("test:%s:%d:", t.Name(), time.Now().UnixNano())
}

func TestEnhancedCachesReadsAndInvalidatesOnWrite(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	p := testPrefix(t)
	a := enhanced(t, db, p, nil)
	b := enhanced(t, db, p, nil) // a second instance sharing the Redis
	ctx := context.Background()
	for i := range 30 {
		_, err := a.Insert(ctx, validEvent(i))
		require.NoError(t, err)
	}
	q := Query{OrganizationID: "org-1", Limit: 50}

	first, err := b.Search(ctx, q)
	require.NoError(t, err)
	require.Len(t, first.Events, 10)
	loads := b.CacheStats().Loads.Loads
	again, err := b.Search(ctx, q)
	require.NoError(t, err)
	require.Equal(t, first, again, "a cached page is the page, details' numbers included")
	require.Equal(t, loads, b.CacheStats().Loads.Loads, "served from the cache")
	direct, err := b.Client.Search(ctx, q)
	require.NoError(t, err)
	require.Equal(t, direct, again)

	n, err := b.Count(ctx, Query{OrganizationID: "org-1"})
	require.NoError(t, err)
	require.EqualValues(t, 10, n)
	other, err := b.Count(ctx, Query{OrganizationID: "org-2"})
	require.NoError(t, err)
	ev, err := b.Get(ctx, first.Events[0].ID)
	require.NoError(t, err)
	require.Equal(t, first.Events[0], ev)

	// a write through the other instance reaches b's cache
	e := validEvent(1000)
	e.OrganizationID = "org-1"
	_, err = a.Insert(ctx, e)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		n, err := b.Count(ctx, Query{OrganizationID: "org-1"})
		return err == nil && n == 11
	}, 5*time.Second, 10*time.Millisecond)
	hits := b.CacheStats().L1.Hits
	n, err = b.Count(ctx, Query{OrganizationID: "org-2"})
	require.NoError(t, err)
	require.Equal(t, other, n)
	require.Equal(t, hits+1, b.CacheStats().L1.Hits, "org-2's reads stay cached")

	// a transaction invalidates after it commits
	require.NoError(t, a.WithTx(ctx, func(tx *Tx) error {
		_, err := tx.InsertBatch(ctx, []Event{e, e})
		return err
	}))
	n, err = a.Count(ctx, Query{OrganizationID: "org-1"})
	require.NoError(t, err)
	require.EqualValues(t, 13, n)

	h := b.Health(ctx)
	c, ok := h.Component(monitor.ComponentCache)
	require.True(t, ok)
	require.Equal(t, monitor.StatusHealthy, c.Status)
	m := b.Metrics()
	require.NotNil(t, m.Cache)
	require.Greater(t, m.Cache.HitRate, 0.0)
	require.Positive(t, m.Queries.Count, "monitoring times the queries")
}

func TestEnhancedWithoutRedis(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	// a Redis that does not answer: reads work, health says degraded
	down := enhanced(t, db, testPrefix(t), func(c *EnhancedConfig) {
		c.RedisURL = "redis://127.0.0.1:1/0?dial_timeout=100ms"
	})
	_, err := down.Insert(ctx, validEvent(1))
	require.NoError(t, err)
	for range 3 {
		n, err := down.Count(ctx, Query{})
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
	}
	comp, _ := down.Health(ctx).Component(monitor.ComponentCache)
	require.Equal(t, monitor.StatusDegraded, comp.Status)
	require.NotContains(t, comp.Detail, "127.0.0.1:1", "no addresses in health details")

	l1 := enhanced(t, db, testPrefix(t), func(c *EnhancedConfig) { c.RedisURL = "" })
	comp, _ = l1.Health(ctx).Component(monitor.ComponentCache)
	require.Equal(t, monitor.StatusHealthy, comp.Status)
	require.Contains(t, comp.Detail, "in-process only")

	none := enhanced(t, db, testPrefix(t), func(c *EnhancedConfig) { c.CacheDisabled = true; c.Monitor.Enabled = false })
	_, hasCache := none.Health(ctx).Component(monitor.ComponentCache)
	require.False(t, hasCache)
	n, err := none.Count(ctx, Query{})
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	require.Nil(t, none.SlowQueries())
	// the harness's server does not preload pg_stat_statements
	_, err = none.TopStatements(ctx, 5)
	require.ErrorIs(t, err, monitor.ErrStatementsUnavailable)
}

func TestEnhancedComplianceSwitches(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	e := enhanced(t, db, testPrefix(t), func(c *EnhancedConfig) { c.HIPAA = true; c.GDPROff = true })
	bad := validEvent(1)
	bad.TargetResourceID = ""
	_, err := e.Insert(ctx, bad)
	require.EqualError(t, err, "audit_log.target_resource_id: required for PHI events in HIPAA mode")
	_, err = e.InsertBatch(ctx, []Event{validEvent(2), bad})
	require.EqualError(t, err, "events[1]: audit_log.target_resource_id: required for PHI events in HIPAA mode")
	err = e.WithTx(ctx, func(tx *Tx) error { _, err := tx.Insert(ctx, bad); return err })
	require.ErrorContains(t, err, "required for PHI events in HIPAA mode")
	n, err := e.Client.Count(ctx, Query{})
	require.NoError(t, err)
	require.Zero(t, n, "nothing was sent")
	ok := validEvent(3)
	ok.DataClassification = ClassificationInternal
	ok.TargetResourceID = ""
	_, err = e.Insert(ctx, ok)
	require.NoError(t, err, "only PHI events need a target")

	_, err = e.ExportSubject(ctx, Subject{PrincipalID: "dr-1"}, ExportJSON, &bytes.Buffer{})
	require.ErrorContains(t, err, "GDPR mode is off")
	_, err = e.RequestErasure(ctx, Subject{PrincipalID: "dr-1"}, "r")
	require.ErrorContains(t, err, "GDPR mode is off")
}

func TestEnhancedConfigFromEnv(t *testing.T) {
	t.Parallel()
	env := map[string]string{EnvURL: "postgres://h/db", EnvRedisURL: "redis://127.0.0.1:6379/0", EnvHIPAAEnabled: "true", EnvGDPREnabled: "false"}
	cfg, err := enhancedConfigFromEnv(func(k string) string { return env[k] })
	require.NoError(t, err)
	require.True(t, cfg.HIPAA)
	require.True(t, cfg.GDPROff)
	require.Equal(t, "redis://127.0.0.1:6379/0", cfg.RedisURL)
	env[EnvHIPAAEnabled] = "sometimes"
	_, err = enhancedConfigFromEnv(func(k string) string { return env[k] })
	require.EqualError(t, err, "client: AUDIT_HIPAA_ENABLED: must be true or false")

	_, err = NewEnhanced(context.Background(), EnhancedConfig{Config: Config{URL: "postgres://h/db"}, RedisURL: "http://x"})
	require.EqualError(t, err, "client: RedisURL: not a valid Redis URL")
}

// Erased values leave the cache too: reads cached before the erasure are
// purged from L1 and Redis.
func TestEnhancedPurgeAfterErasure(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	p := testPrefix(t)
	e := enhanced(t, db, p, func(c *EnhancedConfig) { c.Cache.CompressAbove = -1 }) // raw values, to look for the subject in Redis
	ev := validEvent(7)
	ev.TargetResourceID = "patient-erase-me"
	r, err := e.Insert(ctx, ev)
	require.NoError(t, err)
	_, err = e.Get(ctx, r.ID)
	require.NoError(t, err)
	_, err = e.Search(ctx, Query{OrganizationID: ev.OrganizationID, TargetResourceID: "patient-erase-me"})
	require.NoError(t, err)
	_, err = e.Search(ctx, Query{TargetResourceID: "patient-erase-me"})
	require.NoError(t, err)

	rdb := redis.NewClient(mustParseRedis(t, harness.SharedRedis().URL))
	defer rdb.Close()
	inRedis := func() (n int) {
		iter := rdb.Scan(ctx, 0, p+"*", 100).Iterator()
		for iter.Next(ctx) {
			v, _ := rdb.Get(ctx, iter.Val()).Result()
			if strings.Contains(v, "patient-erase-me") {
				n++
			}
		}
		require.NoError(t, iter.Err())
		return n
	}
	require.Equal(t, 3, inRedis())
	// the erasure itself (workers.Deps.Erase) is tested in tests/; here its
	// effect on the database is stood in for by the same UPDATE
	_, err = db.Pool.Exec(ctx, fmt.Sprintf(`BEGIN; SET LOCAL auditdb.maintenance = 'erasure';
		UPDATE audit.audit_log SET target_resource_id = 'erased_x', pii_salt = NULL WHERE id = %d; COMMIT`, r.ID))
	require.NoError(t, err)
	require.NoError(t, e.InvalidateAfterErasure(ctx, []string{ev.OrganizationID}))
	require.Zero(t, inRedis())
	got, err := e.Get(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, "erased_x", got.TargetResourceID)
}

func mustParseRedis(t *testing.T, url string) *redis.Options {
	o, err := redis.ParseURL(url)
	require.NoError(t, err)
	return o
}
