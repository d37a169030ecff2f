package monitor

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
)

func TestQueryTracerSlowQueryLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var logs syncBuffer
	qt := NewQueryTracer(Config{
		SlowQueryThreshold: 150 * time.Millisecond,
		Logger:             slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	pool := tracedPool(t, harness.NewDB(t), qt)

	for range 5 {
		_, err := pool.Exec(ctx, `SELECT 1`)
		require.NoError(t, err)
	}
	// slow, with a parameter and an inline literal that must not be logged
	var s string
	require.NoError(t, pool.QueryRow(ctx, `SELECT $1::text || 'inline-mrn-0042' FROM pg_sleep(0.3)`, "patient-jane-doe").Scan(&s))
	_, err := pool.Exec(ctx, `SELECT pg_sleep(0.2)::text::int`)
	require.Error(t, err)

	st := qt.Stats()
	require.Equal(t, int64(7), st.Count)
	require.Equal(t, int64(1), st.Errors)
	require.Equal(t, int64(2), st.Slow)
	require.GreaterOrEqual(t, st.Max, 300*time.Millisecond)
	require.Greater(t, st.Average, time.Duration(0))
	require.Less(t, st.P50, 150*time.Millisecond, "most statements were fast")
	require.GreaterOrEqual(t, st.P95, 200*time.Millisecond)
	require.Equal(t, 150*time.Millisecond, st.SlowThreshold)

	slow := qt.SlowQueries()
	require.Len(t, slow, 2)
	require.Equal(t, `SELECT $1::text || ? FROM pg_sleep(?)`, slow[0].Query)
	require.Equal(t, Fingerprint(`SELECT $1::text || 'other' FROM pg_sleep(1)`), slow[0].Fingerprint)
	require.False(t, slow[0].Failed)
	require.GreaterOrEqual(t, slow[0].Duration, 300*time.Millisecond)
	require.True(t, slow[1].Failed)
	require.Equal(t, "22P02", slow[1].SQLState, "invalid input syntax for type integer")

	out := logs.String()
	require.NotContains(t, out, "patient-jane-doe")
	require.NotContains(t, out, "inline-mrn-0042")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2)
	var rec map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &rec))
	require.Equal(t, "WARN", rec["level"])
	require.Equal(t, "monitor: slow query", rec["msg"])
	require.Equal(t, slow[0].Fingerprint, rec["fingerprint"])
	require.Equal(t, slow[0].Query, rec["query"])
	require.GreaterOrEqual(t, rec["duration_ms"].(float64), 300.0)
	require.NotContains(t, rec, "sqlstate")
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &rec))
	require.Equal(t, "22P02", rec["sqlstate"])
	require.Equal(t, true, rec["failed"])
}

func TestQueryTracerTimesCopy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	qt := NewQueryTracer(Config{SlowQueryThreshold: time.Nanosecond, Logger: slog.New(slog.DiscardHandler)})
	pool := tracedPool(t, harness.NewDB(t), qt)
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, `CREATE TEMP TABLE c (v text)`)
	require.NoError(t, err)
	n, err := conn.CopyFrom(ctx, []string{"c"}, []string{"v"}, pgx.CopyFromRows([][]any{{"secret-a"}, {"secret-b"}}))
	require.NoError(t, err)
	require.Equal(t, int64(2), n)

	slow := qt.SlowQueries()
	require.Equal(t, `COPY "c" FROM STDIN`, slow[len(slow)-1].Query)
}

func TestQueryTracerRings(t *testing.T) {
	t.Parallel()
	qt := NewQueryTracer(Config{SampleSize: 4, SlowQueryLogSize: 2, SlowQueryThreshold: 50 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	run := func(sql string, d time.Duration) {
		// drive the tracer the way pgx does, with a start time set back by d
		ctx := qt.TraceQueryStart(ctx, nil, pgxStart(sql))
		start := ctx.Value(queryStartKey{}).(queryStart)
		start.at = start.at.Add(-d)
		qt.end(context.WithValue(ctx, queryStartKey{}, start), nil)
	}
	for i := range 6 {
		run("SELECT "+strings.Repeat("x", i+1), time.Duration(i+1)*20*time.Millisecond)
	}
	st := qt.Stats()
	require.Equal(t, int64(6), st.Count)
	require.Equal(t, int64(4), st.Slow) // 60, 80, 100, 120 ms
	// the sample holds only the latest four: 60, 80, 100, 120 ms
	require.InDelta(t, float64(80*time.Millisecond), float64(st.P50), float64(10*time.Millisecond))
	require.InDelta(t, float64(120*time.Millisecond), float64(st.P95), float64(10*time.Millisecond))
	require.InDelta(t, float64(120*time.Millisecond), float64(st.Max), float64(10*time.Millisecond))
	slow := qt.SlowQueries()
	require.Len(t, slow, 2)
	require.Equal(t, "SELECT xxxxx", slow[0].Query, "oldest first")
	require.Equal(t, "SELECT xxxxxx", slow[1].Query)
}

// BenchmarkQueryTracer is the cost the tracer adds to each statement that
// is not slow (the common case): a context value, two clock reads, a lock.
func BenchmarkQueryTracer(b *testing.B) {
	if testing.Short() {
		b.Skip("benchmark")
	}
	qt := NewQueryTracer(Config{Logger: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	data := pgx.TraceQueryStartData{SQL: `SELECT ` + selectList + ` FROM audit.audit_log WHERE id = $1`}
	b.ReportAllocs()
	for b.Loop() {
		qt.TraceQueryEnd(qt.TraceQueryStart(ctx, nil, data), nil, pgx.TraceQueryEndData{})
	}
}

// BenchmarkNormalizeSQL is the cost paid per slow statement and per traced
// span.
func BenchmarkNormalizeSQL(b *testing.B) {
	if testing.Short() {
		b.Skip("benchmark")
	}
	sql := `SELECT ` + selectList + ` FROM audit.audit_log WHERE "timestamp" <= $1 AND action = 'fhir.read' ORDER BY id DESC LIMIT 101`
	b.ReportAllocs()
	for b.Loop() {
		NormalizeSQL(sql)
	}
}

const selectList = `id, chain_id, chain_seq, "timestamp", recorded_at, action, status, principal_id,
	principal_type, organization_id, target_resource_type, target_resource_id, source_ip`
