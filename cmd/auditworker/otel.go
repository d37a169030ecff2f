package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/urfave/cli/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/auditdb/auditdb/monitor"
)

func otelFlag() cli.Flag {
	return &cli.BoolFlag{Name: "otel", Usage: "trace SQL with OpenTelemetry over OTLP/HTTP (endpoint from OTEL_EXPORTER_OTLP_ENDPOINT; statement parameters are never recorded)", EnvVars: []string{"AUDIT_OTEL_ENABLED"}}
}

// newTracerProvider exports spans over OTLP/HTTP; the exporter reads the
// standard OTEL_EXPORTER_OTLP_* variables.
func newTracerProvider(ctx context.Context) (*sdktrace.TracerProvider, error) {
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("otel: %w", err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "auditworker")))), nil
}

// sqlTracer traces the pool's queries: monitor's tracer (otelpgx with the
// statement normalised, literals dropped, parameters never recorded). Its
// slow-query log, of queries over slowQuery (0: the default), goes to
// logger.
func sqlTracer(tp trace.TracerProvider, logger *slog.Logger, slowQuery time.Duration) (pgx.QueryTracer, error) {
	m, err := monitor.New(monitor.Config{TracerProvider: tp, Logger: logger, SlowQueryThreshold: slowQuery})
	if err != nil {
		return nil, err
	}
	return m.Tracer(), nil
}
