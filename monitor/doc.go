// Package monitor watches an auditdb deployment from the client side: how
// long queries take (with a slow-query log), how busy the connection pool
// is, which statements cost the most (pg_stat_statements, when installed),
// whether the parts the integrity guarantees rest on are healthy, and
// OpenTelemetry tracing of every query.
//
// A [Monitor] is made before the pool it watches, because pgx takes its
// tracer at pool creation:
//
//	cfg, err := monitor.ConfigFromEnv()
//	m, err := monitor.New(cfg)
//	pcfg.ConnConfig.Tracer = m.Tracer()
//	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
//	health := m.Health(ctx, pool, cache)   // cache may be nil
//	metrics := m.Metrics(pool, cache)
//
// Nothing this package logs, records in spans or returns carries a query's
// parameters, and statement texts are normalised first ([NormalizeSQL]):
// literals, which may hold PHI, become '?'.
package monitor
