package workers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
	"github.com/auditdb/auditdb/workers"
)

// syncBuffer is a bytes.Buffer safe for River's and the suite's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(s.b.Bytes(), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		m := map[string]any{}
		require.NoError(t, json.Unmarshal(l, &m))
		out = append(out, m)
	}
	return out
}

// jobLog starts a suite with cfg, stops it, and returns per job name what
// the start-up log said: the interval, or why it is not scheduled.
func jobLog(t *testing.T, cfg workers.SuiteConfig) map[string]map[string]any {
	t.Helper()
	ctx := context.Background()
	db := harness.NewDB(t)
	var buf syncBuffer
	s, err := workers.NewSuite(&workers.Deps{Pool: db.Pool, Keys: keys(t, "", "k1"),
		Logger: slog.New(slog.NewJSONHandler(&buf, nil))}, cfg)
	require.NoError(t, err)
	require.NoError(t, s.Start(ctx))
	require.NoError(t, s.Stop(ctx))
	jobs := map[string]map[string]any{}
	for _, l := range buf.lines(t) {
		if name, ok := l["job"].(string); ok && (l["msg"] == "workers: job scheduled" || l["msg"] == "workers: job not scheduled") {
			jobs[name] = l
		}
	}
	return jobs
}

// With the defaults, the worker changes the database only by sealing,
// partitions and its own records: retention (it deletes rows) waits for an
// archive location, the optimize job only reports. Every job and its
// interval, or why it is off, is logged at start.
func TestSuiteDefaultsAreSafeAndLogged(t *testing.T) {
	t.Parallel()
	jobs := jobLog(t, workers.SuiteConfig{})
	for name, interval := range map[string]string{
		"partitions": "1h0m0s", "seal": "10s", "verify": "5m0s", "full_verify": "24h0m0s",
		"erasure": "30s", "optimize": "6h0m0s", "alerts": "1m0s",
	} {
		require.Contains(t, jobs, name)
		require.Equal(t, "workers: job scheduled", jobs[name]["msg"], name)
		require.Equal(t, interval, jobs[name]["interval"], name)
	}
	require.Len(t, jobs, 10, "every job kind is logged: %v", jobs)
	require.Equal(t, "workers: job not scheduled", jobs["anchor"]["msg"])
	require.Contains(t, jobs["anchor"]["why"], "no anchor key and sink")
	require.Equal(t, "workers: job not scheduled", jobs["retention"]["msg"])
	require.Contains(t, jobs["retention"]["why"], "no archive location")
	require.Contains(t, jobs["optimize"]["mode"], "report only")
	require.Contains(t, jobs["alert_webhook"]["why"], "on demand")

	// opted in: an absolute archive directory, and --optimize-apply
	jobs = jobLog(t, workers.SuiteConfig{OptimizeApply: true, Retention: &workers.RetentionConfig{ArchiveDir: t.TempDir()}})
	require.Equal(t, "workers: job scheduled", jobs["retention"]["msg"])
	require.Equal(t, "1h0m0s", jobs["retention"]["interval"])
	require.Contains(t, jobs["optimize"]["mode"], "apply")

	// a relative archive directory is refused at start, naming the field
	_, err := workers.NewSuite(&workers.Deps{Pool: harness.NewDB(t).Pool, Keys: keys(t, "", "k1")},
		workers.SuiteConfig{Retention: &workers.RetentionConfig{ArchiveDir: "archive"}})
	require.ErrorContains(t, err, "ArchiveDir: must be an absolute path")
}

// Retention never runs without an archive location, even when asked.
func TestRetentionNeedsAnArchiveLocation(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	_, err := (&workers.Deps{Pool: db.Pool, Keys: keys(t, "", "k1")}).RunRetention(context.Background(), nil, workers.RetentionRunOptions{})
	require.ErrorIs(t, err, workers.ErrNoArchiveLocation)
}

// Retention counts from the event's "timestamp", not from recorded_at (the
// README, "Retention and archives", says why): a backfilled event, written
// today with a timestamp past its policy, is due at once, and only through
// an archive. Here a PUBLIC 'minimal' (90 days) event from 100 days ago,
// recorded now, is due; one from 10 days ago is not.
func TestRetentionCountsFromTimestamp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	_, err := db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, data_classification, retention_policy)
		VALUES (now() - interval '100 days', 'backfilled', 'success', 'PUBLIC', 'minimal'),
		       (now() - interval '10 days', 'recent', 'success', 'PUBLIC', 'minimal'),
		       (now(), 'newest', 'success', 'PUBLIC', 'minimal')`)
	require.NoError(t, err)
	var recordedAgo float64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT extract(epoch FROM now() - recorded_at) FROM audit.audit_log WHERE action = 'backfilled'`).Scan(&recordedAgo))
	require.Less(t, recordedAgo, 60.0, "the backfilled row was recorded just now")

	plan, err := (&workers.Deps{Pool: db.Pool}).PlanRetention(ctx, nil)
	require.NoError(t, err)
	var due int64 = -1
	for _, p := range plan.Policies {
		if p.Policy == "minimal" && p.Classification == "PUBLIC" {
			due = p.RowsDue
		}
	}
	require.EqualValues(t, 1, due, "the 100-day-old event is due by its timestamp, the 10-day-old one is not")
}
