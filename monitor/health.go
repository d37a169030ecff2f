package monitor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Status is the state of a component or of the whole.
type Status string

// Statuses, from best to worst.
const (
	StatusHealthy Status = "healthy"
	// StatusDegraded works but needs attention (the worker behind, Redis
	// gone and the cache on L1 only).
	StatusDegraded Status = "degraded"
	// StatusUnhealthy does not work, or the log was found tampered with.
	StatusUnhealthy Status = "unhealthy"
)

func (s Status) rank() int {
	switch s {
	case StatusHealthy:
		return 0
	case StatusDegraded:
		return 1
	}
	return 2
}

// Names of the components Health checks.
const (
	ComponentDatabase     = "database"
	ComponentCache        = "cache"
	ComponentPartitions   = "partitions"
	ComponentSealLag      = "seal_lag"
	ComponentVerification = "verification"
)

// Cache is what Health and Metrics need of a query cache. The cache
// package implements it; monitor does not import it.
type Cache interface {
	// Health returns "healthy", "degraded" (working with less, e.g. L1 only
	// because Redis does not answer) or "unhealthy", and a detail safe to
	// show (no keys, no values, no URL). Any other status counts as
	// unhealthy.
	Health(ctx context.Context) (status, detail string)
	// Counts returns the cache's hits and misses since it started.
	Counts() (hits, misses int64)
}

// ComponentHealth is the result of one check.
type ComponentHealth struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Detail says why, in words; never values of the log.
	Detail string `json:"detail"`
	// Latency is how long the check took.
	Latency time.Duration `json:"latency_ns"`
}

// HealthStatus is the result of Health: the worst component's status as
// Overall, and every component.
type HealthStatus struct {
	Overall    Status            `json:"overall"`
	Components []ComponentHealth `json:"components"`
	CheckedAt  time.Time         `json:"checked_at"`
}

// Component returns the named component's result, and whether it was
// checked.
func (h HealthStatus) Component(name string) (ComponentHealth, bool) {
	for _, c := range h.Components {
		if c.Name == name {
			return c, true
		}
	}
	return ComponentHealth{}, false
}

// Health checks the database (it answers), the cache (when cache is not
// nil), the partitions ahead, the seal lag and the newest verification run,
// each bounded by Config.CheckTimeout. It never fails: a check that cannot
// run reports its component unhealthy. The role of pool needs to read the
// audit schema's status views (audit_reader).
func (m *Monitor) Health(ctx context.Context, pool *pgxpool.Pool, cache Cache) HealthStatus {
	checks := []struct {
		name string
		run  func(context.Context) (Status, string)
	}{
		{ComponentDatabase, func(ctx context.Context) (Status, string) { return checkDatabase(ctx, pool) }},
		{ComponentCache, func(ctx context.Context) (Status, string) { return checkCache(ctx, cache) }},
		{ComponentPartitions, func(ctx context.Context) (Status, string) {
			return checkPartitions(ctx, pool, m.cfg.PartitionsAheadMin)
		}},
		{ComponentSealLag, func(ctx context.Context) (Status, string) { return checkSealLag(ctx, pool, m.cfg.SealLagMax) }},
		{ComponentVerification, func(ctx context.Context) (Status, string) {
			return checkVerification(ctx, pool, m.cfg.VerificationMaxAge)
		}},
	}
	h := HealthStatus{Overall: StatusHealthy, CheckedAt: time.Now()}
	for _, c := range checks {
		if c.name == ComponentCache && cache == nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, m.cfg.CheckTimeout)
		start := time.Now()
		status, detail := c.run(cctx)
		cancel()
		h.Components = append(h.Components, ComponentHealth{Name: c.name, Status: status, Detail: detail, Latency: time.Since(start)})
		if status.rank() > h.Overall.rank() {
			h.Overall = status
		}
	}
	return h
}

func checkDatabase(ctx context.Context, pool *pgxpool.Pool) (Status, string) {
	var installed bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('audit.audit_log') IS NOT NULL`).Scan(&installed); err != nil {
		return StatusUnhealthy, "does not answer: " + ErrorClass(err)
	}
	if !installed {
		return StatusUnhealthy, "answers, but the auditdb schema is not installed (run auditworker migrate)"
	}
	return StatusHealthy, "answers"
}

func checkCache(ctx context.Context, cache Cache) (Status, string) {
	status, detail := cache.Health(ctx)
	switch s := Status(status); s {
	case StatusHealthy, StatusDegraded, StatusUnhealthy:
		return s, detail
	}
	return StatusUnhealthy, fmt.Sprintf("unknown status %q: %s", status, detail)
}

func checkPartitions(ctx context.Context, pool *pgxpool.Pool, minAhead int) (Status, string) {
	p, err := partitionsAhead(ctx, pool)
	if err != nil {
		return StatusUnhealthy, healthDetail(err)
	}
	switch {
	case p.MissingTriggers:
		// rows in such a partition skip the per-statement chain head flush
		return StatusUnhealthy, "a partition lacks the statement triggers: run auditworker partitions ensure"
	case p.Current == 0:
		return StatusDegraded, "no partition for the current month: new rows land in the default partition"
	case p.DefaultHasRows:
		return StatusDegraded, "the default partition holds rows: run auditworker partitions rescue"
	case p.Ahead < minAhead:
		return StatusDegraded, fmt.Sprintf("%d months ahead, fewer than %d: run auditworker partitions ensure", p.Ahead, minAhead)
	}
	return StatusHealthy, fmt.Sprintf("%d months ahead", p.Ahead)
}

// checkSealLag judges the age of the oldest row no HMAC checkpoint covers
// yet (see sealLag).
func checkSealLag(ctx context.Context, pool *pgxpool.Pool, maxLag time.Duration) (Status, string) {
	s, err := sealLag(ctx, pool, maxLag, 0)
	if err != nil {
		return StatusUnhealthy, healthDetail(err)
	}
	if s.Chains == 0 {
		return StatusHealthy, "every row is sealed"
	}
	detail := fmt.Sprintf("%d unsealed rows on %d chains, the oldest written %s ago", s.Unsealed, s.Chains, max(s.Oldest, 0).Round(time.Second))
	if s.Past > 0 {
		return StatusDegraded, detail + fmt.Sprintf(", over %s: is the seal job running with a key?", maxLag)
	}
	return StatusHealthy, detail
}

// checkVerification is unhealthy while any chain stands tampered with by
// the newest run that covered it (see tamperedChains), even when a newer
// run over other chains found them intact; else it judges the newest
// finished run.
func checkVerification(ctx context.Context, pool *pgxpool.Pool, maxAge time.Duration) (Status, string) {
	s, err := tamperedChains(ctx, pool)
	if err != nil {
		return StatusUnhealthy, healthDetail(err)
	}
	if s.Chains > 0 {
		return StatusUnhealthy, fmt.Sprintf("run %d found tampering on %d chain(s): the log was tampered with", s.RunID, s.Chains)
	}
	r := s.Latest
	if r == nil {
		return StatusDegraded, "no verification run has finished yet: run auditworker verify"
	}
	ago := max(r.Age, 0).Round(time.Second)
	switch {
	case r.Status == "tampered":
		return StatusUnhealthy, fmt.Sprintf("run %d, %s ago, found %d findings: the log was tampered with", r.ID, ago, r.Findings)
	case r.Status == "failed":
		return StatusDegraded, fmt.Sprintf("run %d, %s ago, failed before finishing", r.ID, ago)
	case r.Age > maxAge:
		return StatusDegraded, fmt.Sprintf("run %d found the log intact, but %s ago, over %s", r.ID, ago, maxAge)
	}
	return StatusHealthy, fmt.Sprintf("run %d found the log intact %s ago", r.ID, ago)
}

// ErrorClass describes err for a health detail or a replica state without
// what connection errors carry (user, host, database names): the server's
// SQLSTATE and message (of fixed, parameterless queries), else the kind.
func ErrorClass(err error) string {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr):
		return pgErr.Code + " " + pgErr.Message
	case errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "connection failed"
}
