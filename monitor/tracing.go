package monitor

import (
	"context"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// newOtelTracer makes the OpenTelemetry side of Tracer. otelpgx records no
// parameters unless asked (WithIncludeQueryParameters, never used here);
// its raw statement attribute is turned off too, because a statement
// written with inline literals would carry them: statementText puts the
// normalised text in its place (otelQueries). Connection details (host,
// port, database, user; never the password) stay: they tell a replica's
// reads from the primary's.
func newOtelTracer(tp trace.TracerProvider) *otelpgx.Tracer {
	return otelpgx.NewTracer(
		otelpgx.WithTracerProvider(tp),
		otelpgx.WithDisableSQLStatementInAttributes(),
		// "query SELECT" and "prepare SELECT" rather than two "SELECT"s
		otelpgx.WithQuerySpanNamePrefix(),
	)
}

// otelQueries is otelpgx with the normalised statement added as
// db.query.text to the spans it starts for queries and prepares. Embedding keeps
// otelpgx's batch, COPY, prepare, connect and acquire tracing.
type otelQueries struct{ *otelpgx.Tracer }

func (t otelQueries) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	parent := trace.SpanFromContext(ctx).SpanContext().SpanID()
	ctx = t.Tracer.TraceQueryStart(ctx, conn, data)
	setStatement(ctx, parent, data.SQL)
	return ctx
}

func (t otelQueries) TracePrepareStart(ctx context.Context, conn *pgx.Conn, data pgx.TracePrepareStartData) context.Context {
	parent := trace.SpanFromContext(ctx).SpanContext().SpanID()
	ctx = t.Tracer.TracePrepareStart(ctx, conn, data)
	setStatement(ctx, parent, data.SQL)
	return ctx
}

func setStatement(ctx context.Context, parent trace.SpanID, sql string) {
	// otelpgx starts a span only under a recording parent
	if span := trace.SpanFromContext(ctx); span.IsRecording() && span.SpanContext().SpanID() != parent {
		span.SetAttributes(semconv.DBQueryText(NormalizeSQL(sql)))
	}
}

// Tracer returns the pgx tracer to set as pgxpool.Config.ConnConfig.Tracer
// before the pool is made: OpenTelemetry spans (through otelpgx, on
// Config.TracerProvider) with the normalised statement and never its
// parameters, and the Monitor's QueryTracer for timings and the slow-query
// log.
func (m *Monitor) Tracer() pgx.QueryTracer {
	return multitracer.New(otelQueries{newOtelTracer(m.cfg.TracerProvider)}, m.queries)
}
