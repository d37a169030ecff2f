package monitor

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/internal/verifier"
	"github.com/auditdb/auditdb/tests/harness"
)

// testCache stands in for the cache package, which implements Cache.
type testCache struct {
	status, detail string
	hits, misses   atomic.Int64
}

func (c *testCache) Health(context.Context) (string, string) { return c.status, c.detail }
func (c *testCache) Counts() (int64, int64)                  { return c.hits.Load(), c.misses.Load() }

func newMonitor(t *testing.T, cfg Config) *Monitor {
	t.Helper()
	m, err := New(cfg)
	require.NoError(t, err)
	return m
}

func insertEvents(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `INSERT INTO audit_log ("timestamp", action, status, principal_id)
		SELECT now(), 'health.test', 'success', 'p-' || g FROM generate_series(1, $1) g`, n)
	require.NoError(t, err)
}

func component(t *testing.T, h HealthStatus, name string) ComponentHealth {
	t.Helper()
	c, ok := h.Component(name)
	require.True(t, ok, "component %s checked", name)
	return c
}

func TestHealthFreshDatabase(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	m := newMonitor(t, Config{})
	h := m.Health(context.Background(), db.Pool, nil)

	names := []string{}
	for _, c := range h.Components {
		names = append(names, c.Name)
		require.Positive(t, c.Latency)
	}
	require.Equal(t, []string{ComponentDatabase, ComponentPartitions, ComponentSealLag, ComponentVerification}, names,
		"no cache, no cache component")
	require.Equal(t, StatusHealthy, component(t, h, ComponentDatabase).Status)
	require.Equal(t, StatusHealthy, component(t, h, ComponentPartitions).Status)
	require.Equal(t, "3 months ahead", component(t, h, ComponentPartitions).Detail)
	require.Equal(t, StatusHealthy, component(t, h, ComponentSealLag).Status)
	require.Equal(t, "every row is sealed", component(t, h, ComponentSealLag).Detail)
	v := component(t, h, ComponentVerification)
	require.Equal(t, StatusDegraded, v.Status)
	require.Contains(t, v.Detail, "no verification run has finished yet")
	require.Equal(t, StatusDegraded, h.Overall)

	// a reader role can run every check
	reader := m.Health(context.Background(), db.LoginRole(t, "audit_reader"), nil)
	require.Equal(t, h.Overall, reader.Overall)
	for i, c := range reader.Components {
		require.Equal(t, h.Components[i].Status, c.Status, c.Name)
		require.Equal(t, h.Components[i].Detail, c.Detail, c.Name)
	}
}

func TestHealthVerification(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	insertEvents(t, db.Pool, 10)
	m := newMonitor(t, Config{})

	rep, err := verifier.Verify(ctx, db.Pool, verifier.Options{})
	require.NoError(t, err)
	v := component(t, m.Health(ctx, db.Pool, nil), ComponentVerification)
	require.Equal(t, StatusHealthy, v.Status, v.Detail)
	require.Contains(t, v.Detail, fmt.Sprintf("run %d found the log intact", rep.RunID))

	stale := newMonitor(t, Config{VerificationMaxAge: time.Nanosecond})
	v = component(t, stale.Health(ctx, db.Pool, nil), ComponentVerification)
	require.Equal(t, StatusDegraded, v.Status)
	require.Contains(t, v.Detail, "found the log intact, but")

	_, err = db.Pool.Exec(ctx, `INSERT INTO audit.verification_runs (mode, status, finished_at, findings_count)
		VALUES ('full', 'failed', now(), 0)`)
	require.NoError(t, err)
	v = component(t, m.Health(ctx, db.Pool, nil), ComponentVerification)
	require.Equal(t, StatusDegraded, v.Status)
	require.Contains(t, v.Detail, "failed before finishing")

	_, err = db.Pool.Exec(ctx, `INSERT INTO audit.verification_runs (mode, status, finished_at, findings_count)
		VALUES ('full', 'tampered', now(), 3)`)
	require.NoError(t, err)
	h := m.Health(ctx, db.Pool, nil)
	v = component(t, h, ComponentVerification)
	require.Equal(t, StatusUnhealthy, v.Status)
	require.Contains(t, v.Detail, "found 3 findings")
	require.Equal(t, StatusUnhealthy, h.Overall)
}

func TestHealthSealLag(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	m := newMonitor(t, Config{SealLagMax: 300 * time.Millisecond})
	insertEvents(t, db.Pool, 40)

	s := component(t, m.Health(ctx, db.Pool, nil), ComponentSealLag)
	require.Equal(t, StatusHealthy, s.Status, s.Detail)
	require.Contains(t, s.Detail, "40 unsealed rows")

	time.Sleep(400 * time.Millisecond)
	s = component(t, m.Health(ctx, db.Pool, nil), ComponentSealLag)
	require.Equal(t, StatusDegraded, s.Status, s.Detail)
	require.Contains(t, s.Detail, "is the seal job running")

	// a checkpoint at every chain's head seals everything (the MAC is not
	// checked here: that is the verifier's work)
	_, err := db.Pool.Exec(ctx, `INSERT INTO audit.integrity_checkpoints (chain_id, chain_seq, hash, sealed_at, key_id, mac)
		SELECT chain_id, head_seq, encode(head_hash, 'hex'), now(), 'k1', repeat('0', 64)
		FROM audit.chain_heads WHERE head_seq > 0`)
	require.NoError(t, err)
	s = component(t, m.Health(ctx, db.Pool, nil), ComponentSealLag)
	require.Equal(t, StatusHealthy, s.Status)
	require.Equal(t, "every row is sealed", s.Detail)

	// rows after the checkpoint are measured from their own writing
	insertEvents(t, db.Pool, 40)
	s = component(t, m.Health(ctx, db.Pool, nil), ComponentSealLag)
	require.Equal(t, StatusHealthy, s.Status, s.Detail)
	require.Contains(t, s.Detail, "40 unsealed rows")
}

func TestHealthPartitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	m := newMonitor(t, Config{PartitionsAheadMin: 3})
	require.Equal(t, StatusHealthy, component(t, m.Health(ctx, db.Pool, nil), ComponentPartitions).Status)

	var newest string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT partition_name FROM audit.partition_status
		WHERE note = 'ahead' ORDER BY range_start DESC LIMIT 1`).Scan(&newest))
	_, err := db.Pool.Exec(ctx, `DROP TABLE audit.`+newest)
	require.NoError(t, err)
	p := component(t, m.Health(ctx, db.Pool, nil), ComponentPartitions)
	require.Equal(t, StatusDegraded, p.Status)
	require.Equal(t, "2 months ahead, fewer than 3: run auditworker partitions ensure", p.Detail)

	// without this month's partition rows go to the default one
	var current string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT partition_name FROM audit.partition_status
		WHERE note = 'current'`).Scan(&current))
	_, err = db.Pool.Exec(ctx, `DROP TABLE audit.`+current)
	require.NoError(t, err)
	p = component(t, m.Health(ctx, db.Pool, nil), ComponentPartitions)
	require.Equal(t, StatusDegraded, p.Status)
	require.Contains(t, p.Detail, "no partition for the current month")
}

func TestHealthCacheAndDatabaseDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	m := newMonitor(t, Config{CheckTimeout: 2 * time.Second})

	tests := []struct {
		status, detail string
		want           Status
		wantDetail     string
	}{
		{"healthy", "L1 and L2", StatusHealthy, "L1 and L2"},
		{"degraded", "L1 only: Redis does not answer", StatusDegraded, "L1 only: Redis does not answer"},
		{"unhealthy", "broken", StatusUnhealthy, "broken"},
		{"so-so", "odd", StatusUnhealthy, `unknown status "so-so": odd`},
	}
	for _, tt := range tests {
		got := component(t, m.Health(ctx, db.Pool, &testCache{status: tt.status, detail: tt.detail}), ComponentCache)
		require.Equal(t, tt.want, got.Status, tt.status)
		require.Equal(t, tt.wantDetail, got.Detail, tt.status)
	}

	// a database that does not answer
	pcfg, err := pgxpool.ParseConfig("postgres://nobody:s3cret@127.0.0.1:1/nothing?sslmode=disable&connect_timeout=1")
	require.NoError(t, err)
	dead, err := pgxpool.NewWithConfig(ctx, pcfg)
	require.NoError(t, err)
	defer dead.Close()
	h := m.Health(ctx, dead, nil)
	require.Equal(t, StatusUnhealthy, h.Overall)
	for _, c := range h.Components {
		require.Equal(t, StatusUnhealthy, c.Status, c.Name)
		require.NotContains(t, c.Detail, "s3cret")
		require.NotContains(t, c.Detail, "nobody")
	}
	require.Equal(t, "does not answer: connection failed", component(t, h, ComponentDatabase).Detail)
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	m := newMonitor(t, Config{})
	pool := tracedPool(t, db, m.Tracer())
	for range 3 {
		_, err := pool.Exec(ctx, `SELECT 1`)
		require.NoError(t, err)
	}

	pm := m.Metrics(pool, nil)
	require.Nil(t, pm.Cache)
	require.Equal(t, int64(3), pm.Queries.Count)
	require.Positive(t, pm.Queries.Average)
	require.Equal(t, int32(1), pm.Pool.TotalConns)

	c := &testCache{status: "healthy"}
	require.Zero(t, m.Metrics(pool, c).Cache.HitRate, "no lookups yet")
	c.hits.Store(3)
	c.misses.Store(1)
	pm = m.Metrics(pool, c)
	require.Equal(t, &CacheMetrics{Hits: 3, Misses: 1, HitRate: 0.75}, pm.Cache)
}

// Health judges tampering per chain, as the alerts do: a newer run over
// other chains that found them intact does not hide it.
func TestHealthTamperingNotHiddenByNewerRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	insertEvents(t, db.Pool, 10)
	m := newMonitor(t, Config{})

	var tamperedRun int64
	require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO audit.verification_runs (mode, status, finished_at, findings_count, chains, chain_results)
		VALUES ('full', 'tampered', now() - interval '1 minute', 2, '{0}', '{"0": {"findings": 2, "verified_seq": 0}}') RETURNING id`).Scan(&tamperedRun))
	var newer int64
	require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO audit.verification_runs (mode, status, finished_at, findings_count, chains, chain_results)
		VALUES ('incremental', 'intact', now(), 0, '{1}', '{"1": {"findings": 0, "verified_seq": 1000000}}') RETURNING id`).Scan(&newer))
	require.Greater(t, newer, tamperedRun)

	h := m.Health(ctx, db.Pool, nil)
	v := component(t, h, ComponentVerification)
	require.Equal(t, StatusUnhealthy, v.Status, v.Detail)
	require.Equal(t, fmt.Sprintf("run %d found tampering on 1 chain(s): the log was tampered with", tamperedRun), v.Detail)
	require.Equal(t, StatusUnhealthy, h.Overall)

	// the alerts see the same
	conds, err := EvaluateAlerts(ctx, db.Pool, AlertConfig{})
	require.NoError(t, err)
	require.Contains(t, kindsOf(conds), AlertIntegrityTampered+"/")

	// a reader role sees it too
	v = component(t, m.Health(ctx, db.LoginRole(t, "audit_reader"), nil), ComponentVerification)
	require.Equal(t, StatusUnhealthy, v.Status, v.Detail)

	// once a run over chain 0 finds it intact, health follows the newest run
	_, err = db.Pool.Exec(ctx, `INSERT INTO audit.verification_runs (mode, status, finished_at, findings_count, chains, chain_results)
		VALUES ('full', 'intact', now(), 0, '{0}', '{"0": {"findings": 0, "verified_seq": 1000000}}')`)
	require.NoError(t, err)
	v = component(t, m.Health(ctx, db.Pool, nil), ComponentVerification)
	require.Equal(t, StatusHealthy, v.Status, v.Detail)
}
