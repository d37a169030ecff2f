package main

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/tests/harness"
	"github.com/auditdb/auditdb/workers"
)

// With tracing on, every job is a span and its SQL statements are child
// spans, recorded with their text but never their parameters: a seal binds
// hashes and MACs, none of which may appear in a span.
func TestTracingRecordsJobsAndSQLWithoutParameters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	fillChains(t, db.URL, 2, 5)
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	defer func() { require.NoError(t, tp.Shutdown(ctx)) }()
	cfg, err := pgxpool.ParseConfig(db.URL)
	require.NoError(t, err)
	var logs strings.Builder
	var logsMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logsMu.Lock()
		defer logsMu.Unlock()
		return logs.Write(p)
	}), nil))
	cfg.ConnConfig.Tracer, err = sqlTracer(tp, logger, 5*time.Millisecond)
	require.NoError(t, err)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer pool.Close()

	// the slow-query log goes to the logger given, at the threshold given
	_, err = pool.Exec(ctx, `SELECT pg_sleep(0.05)`)
	require.NoError(t, err)
	logsMu.Lock()
	require.Contains(t, logs.String(), "monitor: slow query")
	logsMu.Unlock()

	keys, err := integrity.ParseSealKeys(sealKey(t, "k1"), "")
	require.NoError(t, err)
	suite, err := workers.NewSuite(&workers.Deps{Pool: pool, Keys: keys, Logger: slog.New(slog.DiscardHandler)},
		workers.SuiteConfig{SealInterval: time.Second, VerifyInterval: -1, FullVerifyInterval: -1, PartitionsInterval: -1, TracerProvider: tp})
	require.NoError(t, err)
	require.NoError(t, suite.Start(ctx))
	require.Eventually(t, func() bool { return unsealed(t, db.Pool) == 0 }, 20*time.Second, 50*time.Millisecond)
	require.NoError(t, suite.Stop(ctx))

	var macs, hashes []string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT array_agg(mac), array_agg(hash) FROM audit.integrity_checkpoints`).Scan(&macs, &hashes))
	require.Len(t, macs, 2)
	var jobSpan, insertSpan bool
	for _, s := range spans.GetSpans() {
		jobSpan = jobSpan || s.Name == "job auditdb_seal"
		for _, a := range s.Attributes {
			v := a.Value.Emit()
			insertSpan = insertSpan || strings.Contains(v, "INSERT INTO audit.integrity_checkpoints")
			for _, secret := range append(macs, hashes...) {
				require.NotContains(t, v, secret, "span %s attribute %s", s.Name, a.Key)
			}
		}
	}
	require.True(t, jobSpan, "the seal job is a span")
	require.True(t, insertSpan, "the checkpoint insert is a span with its statement")
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
