package monitor

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/auditdb/auditdb/tests/harness"
)

func TestTracerSpansCarryNoParameters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { require.NoError(t, tp.Shutdown(context.Background())) })
	m := newMonitor(t, Config{TracerProvider: tp, Logger: slog.New(slog.DiscardHandler)})
	db := harness.NewDB(t)
	pool := tracedPool(t, db, m.Tracer())

	ctx, parent := tp.Tracer("test").Start(ctx, "request")
	var got string
	require.NoError(t, pool.QueryRow(ctx, `SELECT $1::text || 'inline-mrn-0042'`, "patient-jane-doe").Scan(&got))
	_, err := pool.Exec(ctx, `SELECT 1 FROM audit.audit_log WHERE principal_id = $1`, "patient-john-roe")
	require.NoError(t, err)
	parent.End()
	// queries outside a traced request make no spans but are still timed
	_, err = pool.Exec(context.Background(), `SELECT 1`)
	require.NoError(t, err)
	require.Equal(t, int64(3), m.Queries().Stats().Count)

	spans := exp.GetSpans()
	var texts []string
	for _, s := range spans {
		for _, kv := range s.Attributes {
			v := kv.Value.Emit()
			require.NotContains(t, v, "patient-", "span %s attribute %s", s.Name, kv.Key)
			require.NotContains(t, v, "inline-mrn", "span %s attribute %s", s.Name, kv.Key)
			require.NotEqual(t, "pgx.query.parameters", string(kv.Key))
			if kv.Key == "db.query.text" {
				texts = append(texts, v)
			}
		}
		require.NotContains(t, s.Name, "patient-")
		require.NotContains(t, s.Name, "inline-mrn")
	}
	// pgx prepares each statement (once per connection) before running it
	first, second := `SELECT $1::text || ?`, `SELECT ? FROM audit.audit_log WHERE principal_id = $1`
	require.Equal(t, []string{first, first, second, second}, texts)

	var querySpans int
	for _, s := range spans {
		if s.Name == "query SELECT" {
			querySpans++
			require.Equal(t, parent.SpanContext().TraceID(), s.Parent.TraceID())
			// which server answered (a replica or the primary) is recorded
			var port int64
			for _, kv := range s.Attributes {
				if kv.Key == "server.port" {
					port = kv.Value.AsInt64()
				}
			}
			require.Equal(t, int64(pool.Config().ConnConfig.Port), port)
		}
	}
	require.Equal(t, 2, querySpans, "one span per query inside the request: %v", spanNames(spans))
	// the parent keeps its own attributes only
	for _, s := range spans {
		if s.Name == "request" {
			require.Empty(t, s.Attributes)
		}
	}
}

func spanNames(spans tracetest.SpanStubs) string {
	var names []string
	for _, s := range spans {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}
