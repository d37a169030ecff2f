package workers

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/monitor"
	"github.com/auditdb/auditdb/tests/harness"
)

// The alert jobs in a running suite: the evaluator runs at start, opens an
// alert, and its webhook is delivered; an alert raised through the suite's
// Alerter (as jobs raise theirs) is delivered too.
func TestOpsInARiverClient(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	hook := newHookServer(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	// the suite with only the alert evaluator scheduled (it runs at start)
	suite, err := NewSuite(&Deps{Pool: db.Pool, Logger: quiet}, SuiteConfig{
		SealInterval: -1, VerifyInterval: -1, FullVerifyInterval: -1, PartitionsInterval: -1, OptimizeInterval: -1,
		Alerts: monitor.AlertConfig{PartitionsAhead: 12, WebhookURLs: []string{hook.URL}},
	})
	require.NoError(t, err)
	require.NoError(t, suite.Start(ctx))
	defer func() { require.NoError(t, suite.Stop(context.Background())) }()

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
	require.NoError(t, suite.Deps().Alerter.Raise(ctx, "seal_head_mismatch", monitor.AlertCritical, "chain 5", map[string]string{"chain_id": "5"}))
	b = waitBodies(2)
	require.Equal(t, "seal_head_mismatch", b[1].Kind)
	require.Equal(t, monitor.AlertCritical, b[1].Severity)
}
