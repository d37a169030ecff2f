package client

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
)

type actionCount struct {
	Action string `db:"action"`
	Events int64  `db:"events"`
}

// QueryCached: typed rows through L1 and Redis, shared by a second
// instance; a write for the query's organization (through either
// instance) drops it, a write for another organization does not; a
// writing statement is refused and nothing is cached.
func TestQueryCached(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	p := testPrefix(t)
	a := enhanced(t, db, p, nil)
	b := enhanced(t, db, p, nil)
	ctx := context.Background()
	for i := range 30 {
		_, err := a.Insert(ctx, validEvent(i)) // org-0, org-1, org-2 in turn
		require.NoError(t, err)
	}
	const sql = `SELECT action, count(*) AS events FROM audit.audit_log WHERE organization_id = $1 GROUP BY action ORDER BY action`
	org1 := CachedQueryOptions{OrganizationID: "org-1"}

	rows, err := QueryCached[actionCount](ctx, a, org1, sql, "org-1")
	require.NoError(t, err)
	require.Equal(t, []actionCount{{"fhir.patient.read", 10}}, rows)
	loads := a.CacheStats().Loads.Loads
	rows, err = QueryCached[actionCount](ctx, a, org1, sql, "org-1")
	require.NoError(t, err)
	require.Equal(t, []actionCount{{"fhir.patient.read", 10}}, rows)
	require.Equal(t, loads, a.CacheStats().Loads.Loads, "served from L1")
	rows, err = QueryCached[actionCount](ctx, b, org1, sql, "org-1")
	require.NoError(t, err)
	require.Equal(t, []actionCount{{"fhir.patient.read", 10}}, rows)
	require.Zero(t, b.CacheStats().Loads.Loads, "the other instance got it from Redis")
	require.EqualValues(t, 1, b.CacheStats().L2.Hits)

	// scalars, and a caller key
	n, err := QueryCached[int64](ctx, a, CachedQueryOptions{Key: "total", TTL: time.Minute}, `SELECT count(*) FROM audit.audit_log`)
	require.NoError(t, err)
	require.Equal(t, []int64{30}, n)

	// a write for org-2 leaves org-1's result; one for org-1 drops it on
	// both instances; the unscoped total is dropped by any write
	e := validEvent(1)
	e.OrganizationID = "org-2"
	_, err = a.Insert(ctx, e)
	require.NoError(t, err)
	loads = a.CacheStats().Loads.Loads
	_, err = QueryCached[actionCount](ctx, a, org1, sql, "org-1")
	require.NoError(t, err)
	require.Equal(t, loads, a.CacheStats().Loads.Loads, "org-2's write left org-1's result")
	n, err = QueryCached[int64](ctx, a, CachedQueryOptions{Key: "total"}, `SELECT count(*) FROM audit.audit_log`)
	require.NoError(t, err)
	require.Equal(t, []int64{31}, n, "an unscoped result is dropped by every write")

	e.OrganizationID, e.Action = "org-1", "fhir.patient.write"
	_, err = b.Insert(ctx, e)
	require.NoError(t, err)
	want := []actionCount{{"fhir.patient.read", 10}, {"fhir.patient.write", 1}}
	require.Eventually(t, func() bool {
		rows, err := QueryCached[actionCount](ctx, a, org1, sql, "org-1")
		return err == nil && len(rows) == 2 && rows[1] == want[1]
	}, 5*time.Second, 10*time.Millisecond, "a's L1 dropped by b's write")
	rows, err = QueryCached[actionCount](ctx, b, org1, sql, "org-1")
	require.NoError(t, err)
	require.Equal(t, want, rows)

	// refused: writing SQL, through the cache or without it
	before := a.CacheStats().Loads
	_, err = QueryCached[int64](ctx, a, CachedQueryOptions{}, `DELETE FROM audit.alerts RETURNING id`)
	require.ErrorIs(t, err, ErrNotReadOnly)
	require.EqualError(t, err, "client: cached query: only read-only SQL may be cached: the statement tried to write (SQLSTATE 25006)")
	_, err = QueryCached[string](ctx, a, CachedQueryOptions{}, `SELECT set_config('transaction_read_only', 'off', true)`)
	require.Error(t, err, "the transaction cannot be made read-write")
	_, err = QueryCached[int64](ctx, a, CachedQueryOptions{}, `SELECT nextval('audit.alerts_id_seq')`)
	require.ErrorIs(t, err, ErrNotReadOnly)
	require.Equal(t, before.Loads+3, a.CacheStats().Loads.Loads)
	require.Equal(t, before.Errors+3, a.CacheStats().Loads.Errors, "failed loads are counted, never cached")
	_, err = QueryCached[int64](ctx, a, CachedQueryOptions{TTL: -time.Second}, `SELECT 1`)
	require.ErrorContains(t, err, "CachedQueryOptions.TTL: must not be negative")

	// without a cache it runs the same, read-only
	plain := enhanced(t, db, p, func(c *EnhancedConfig) { c.CacheDisabled = true })
	n, err = QueryCached[int64](ctx, plain, CachedQueryOptions{}, `SELECT count(*) FROM audit.audit_log`)
	require.NoError(t, err)
	require.Equal(t, []int64{32}, n)
	_, err = QueryCached[int64](ctx, plain, CachedQueryOptions{}, `DELETE FROM audit.alerts RETURNING id`)
	require.ErrorIs(t, err, ErrNotReadOnly)

	m := a.Metrics()
	require.NotNil(t, m.Cache)
	require.Greater(t, m.Cache.HitRate, 0.0)
}
