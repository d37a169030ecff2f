package monitor

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// QueryTracer is a pgx tracer (queries and COPY) that times every
// statement, keeps the latest durations for averages and percentiles, and
// logs statements slower than the threshold, with their normalised text
// and fingerprint and never their arguments. It is safe for concurrent use.
type QueryTracer struct {
	threshold time.Duration
	logger    *slog.Logger

	mu      sync.Mutex
	count   int64
	errors  int64
	slow    int64
	total   time.Duration
	max     time.Duration
	samples []time.Duration // ring of the latest durations
	next    int
	slowLog []SlowQuery // ring of the latest slow queries
	slowAt  int
}

// SlowQuery is one entry of the slow-query log.
type SlowQuery struct {
	// Fingerprint groups statements that differ only in literals.
	Fingerprint string `json:"fingerprint"`
	// Query is the statement as NormalizeSQL gives it.
	Query string `json:"query"`
	// Duration is how long it took.
	Duration time.Duration `json:"duration_ns"`
	// At is when it finished.
	At time.Time `json:"at"`
	// Failed says whether it ended in an error; SQLState is the server's
	// error code when the server raised it. The error's message is not
	// kept: it can quote values (a constraint violation's key).
	Failed   bool   `json:"failed"`
	SQLState string `json:"sqlstate,omitempty"`
}

// QueryStats summarises the statements traced so far.
type QueryStats struct {
	// Count, Errors and Slow count statements since the tracer was made.
	Count  int64 `json:"count"`
	Errors int64 `json:"errors"`
	Slow   int64 `json:"slow"`
	// Average is over every statement; Max is the slowest one.
	Average time.Duration `json:"average_ns"`
	Max     time.Duration `json:"max_ns"`
	// P50 and P95 are over the latest Config.SampleSize statements.
	P50 time.Duration `json:"p50_ns"`
	P95 time.Duration `json:"p95_ns"`
	// SlowThreshold is the threshold in force.
	SlowThreshold time.Duration `json:"slow_threshold_ns"`
}

// NewQueryTracer makes a tracer with cfg's threshold, logger and sizes
// (defaults applied).
func NewQueryTracer(cfg Config) *QueryTracer {
	cfg = cfg.WithDefaults()
	return &QueryTracer{
		threshold: cfg.SlowQueryThreshold,
		logger:    cfg.Logger,
		samples:   make([]time.Duration, 0, cfg.SampleSize),
		slowLog:   make([]SlowQuery, 0, cfg.SlowQueryLogSize),
	}
}

type queryStartKey struct{}

type queryStart struct {
	sql string
	at  time.Time
}

// TraceQueryStart implements pgx.QueryTracer.
func (t *QueryTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, queryStartKey{}, queryStart{sql: data.SQL, at: time.Now()})
}

// TraceQueryEnd implements pgx.QueryTracer.
func (t *QueryTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	t.end(ctx, data.Err)
}

// TraceCopyFromStart implements pgx.CopyFromTracer: COPY is how batches
// are written, so it is timed like a query.
func (t *QueryTracer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromStartData) context.Context {
	sql := "COPY " + data.TableName.Sanitize() + " FROM STDIN"
	return context.WithValue(ctx, queryStartKey{}, queryStart{sql: sql, at: time.Now()})
}

// TraceCopyFromEnd implements pgx.CopyFromTracer.
func (t *QueryTracer) TraceCopyFromEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromEndData) {
	t.end(ctx, data.Err)
}

func (t *QueryTracer) end(ctx context.Context, err error) {
	start, ok := ctx.Value(queryStartKey{}).(queryStart)
	if !ok {
		return
	}
	now := time.Now()
	d := now.Sub(start.at)
	slow := d > t.threshold
	var entry SlowQuery
	if slow {
		// normalised outside the lock: it is the costly part
		entry = SlowQuery{Query: NormalizeSQL(start.sql), Duration: d, At: now, Failed: err != nil}
		entry.Fingerprint = fingerprintOf(entry.Query)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			entry.SQLState = pgErr.Code
		}
	}

	t.mu.Lock()
	t.count++
	t.total += d
	t.max = max(t.max, d)
	if err != nil {
		t.errors++
	}
	if len(t.samples) < cap(t.samples) {
		t.samples = append(t.samples, d)
	} else if cap(t.samples) > 0 {
		t.samples[t.next] = d
		t.next = (t.next + 1) % cap(t.samples)
	}
	if slow {
		t.slow++
		if len(t.slowLog) < cap(t.slowLog) {
			t.slowLog = append(t.slowLog, entry)
		} else if cap(t.slowLog) > 0 {
			t.slowLog[t.slowAt] = entry
			t.slowAt = (t.slowAt + 1) % cap(t.slowLog)
		}
	}
	t.mu.Unlock()

	if slow {
		attrs := []slog.Attr{
			slog.String("fingerprint", entry.Fingerprint),
			slog.String("query", entry.Query),
			slog.Float64("duration_ms", float64(d)/float64(time.Millisecond)),
			slog.Float64("threshold_ms", float64(t.threshold)/float64(time.Millisecond)),
			slog.Bool("failed", entry.Failed),
		}
		if entry.SQLState != "" {
			attrs = append(attrs, slog.String("sqlstate", entry.SQLState))
		}
		t.logger.LogAttrs(ctx, slog.LevelWarn, "monitor: slow query", attrs...)
	}
}

// Stats returns the summary of the statements traced so far.
func (t *QueryTracer) Stats() QueryStats {
	t.mu.Lock()
	s := QueryStats{Count: t.count, Errors: t.errors, Slow: t.slow, Max: t.max, SlowThreshold: t.threshold}
	if t.count > 0 {
		s.Average = t.total / time.Duration(t.count)
	}
	samples := slices.Clone(t.samples)
	t.mu.Unlock()

	if len(samples) > 0 {
		slices.Sort(samples)
		s.P50 = percentile(samples, 50)
		s.P95 = percentile(samples, 95)
	}
	return s
}

// percentile of sorted, by the nearest-rank method.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(rank, 1)-1]
}

// SlowQueries returns the latest slow queries, oldest first.
func (t *QueryTracer) SlowQueries() []SlowQuery {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]SlowQuery, 0, len(t.slowLog))
	out = append(out, t.slowLog[t.slowAt:]...)
	return append(out, t.slowLog[:t.slowAt]...)
}
