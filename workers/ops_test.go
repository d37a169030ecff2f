package workers

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/internal/migrate"
	"github.com/auditdb/auditdb/monitor"
	"github.com/auditdb/auditdb/tests/harness"
)

// The ops jobs in a running River client: the evaluator runs at start,
// opens an alert, and its webhook is delivered; a job's own alert raised
// through Deps' Alerter is delivered too.
func TestOpsInARiverClient(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	hook := newHookServer(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	deps := &Deps{Pool: db.Pool, Logger: quiet}
	w := river.NewWorkers()
	ops := NewOps(deps, w, OpsConfig{Alerts: monitor.AlertConfig{PartitionsAhead: 12, WebhookURLs: []string{hook.URL}}})
	client, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{
		Schema:            migrate.RiverSchema,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}},
		Workers:           w,
		PeriodicJobs:      ops.Periodic,
		FetchPollInterval: 50 * time.Millisecond,
		FetchCooldown:     10 * time.Millisecond,
		Logger:            quiet,
		TestOnly:          true,
	})
	require.NoError(t, err)
	ops.Attach(client)
	require.NoError(t, client.Start(ctx))
	defer func() { require.NoError(t, client.Stop(context.Background())) }()

	waitBodies := func(n int) []AlertWebhookBody {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if b, _ := hook.received(); len(b) >= n {
				return b
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("fewer than %d webhook deliveries within 30s", n)
		return nil
	}
	b := waitBodies(1)
	require.Equal(t, monitor.AlertPartitionsAhead, b[0].Kind)

	// outside any job: the attached client enqueues the delivery
	require.NoError(t, ops.Alerts.Raise(ctx, "seal_head_mismatch", monitor.AlertCritical, "chain 5", map[string]string{"chain_id": "5"}))
	b = waitBodies(2)
	require.Equal(t, "seal_head_mismatch", b[1].Kind)
	require.Equal(t, monitor.AlertCritical, b[1].Severity)
}
