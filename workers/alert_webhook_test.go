package workers

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/internal/migrate"
	"github.com/auditdb/auditdb/monitor"
	"github.com/auditdb/auditdb/tests/harness"
)

// hookServer answers with the statuses given, in turn (then 200), and
// keeps what it received.
type hookServer struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	bodies   []AlertWebhookBody
	keys     []string
}

func newHookServer(t *testing.T, statuses ...int) *hookServer {
	h := &hookServer{statuses: statuses}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b AlertWebhookBody
		raw, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if err := json.Unmarshal(raw, &b); err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusUnsupportedMediaType)
			return
		}
		h.bodies = append(h.bodies, b)
		h.keys = append(h.keys, r.Header.Get("Idempotency-Key"))
		status := http.StatusOK
		if len(h.statuses) > 0 {
			status, h.statuses = h.statuses[0], h.statuses[1:]
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) received() ([]AlertWebhookBody, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]AlertWebhookBody(nil), h.bodies...), append([]string(nil), h.keys...)
}

// retryNow makes River retry a failed job at once instead of after its
// backoff, so that the test sees the retry.
type retryNow struct{}

func (retryNow) NextRetry(*rivertype.JobRow) time.Time { return time.Now().Add(-time.Second) }

// An alert opened and resolved reaches a webhook through River: the first
// delivery fails with 503, River retries it, the second succeeds. The
// webhook's URL, token included, never enters the job table.
func TestAlertWebhookDeliveredAndRetriedByRiver(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	hook := newHookServer(t, http.StatusServiceUnavailable)
	hookURL := hook.URL + "/hook?token=s3cret"
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	deps := &Deps{Pool: db.Pool, Logger: quiet}

	webhooks := &AlertWebhooks{URLs: []string{hookURL}}
	store := monitor.NewAlertStore(db.Pool, monitor.AlertStoreOptions{Logger: quiet, Notify: webhooks.Notify})
	workers := river.NewWorkers()
	river.AddWorker(workers, &AlertWebhookWorker{Deps: deps, URLs: webhooks.URLs})
	client, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{
		Schema:            migrate.RiverSchema,
		Queues:            map[string]river.QueueConfig{Queue: {MaxWorkers: 2}},
		Workers:           workers,
		RetryPolicy:       retryNow{},
		FetchPollInterval: 50 * time.Millisecond,
		FetchCooldown:     10 * time.Millisecond,
		Logger:            quiet,
		TestOnly:          true,
	})
	require.NoError(t, err)
	webhooks.Client = client
	events, cancel := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled)
	defer cancel()
	require.NoError(t, client.Start(ctx))
	defer func() { require.NoError(t, client.Stop(context.Background())) }()

	next := func() *river.Event {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(20 * time.Second):
			t.Fatal("no job event within 20s")
			return nil
		}
	}

	a, opened, err := store.Open(ctx, monitor.Condition{Kind: monitor.AlertSealLag, Severity: monitor.AlertWarning,
		Message: "3 chain(s) past the seal thresholds", Labels: map[string]string{"chain_id": "3"}})
	require.NoError(t, err)
	require.True(t, opened)

	ev := next()
	require.Equal(t, river.EventKindJobFailed, ev.Kind, "503 fails the first attempt")
	ev = next()
	require.Equal(t, river.EventKindJobCompleted, ev.Kind, "River's retry delivers it")
	require.Equal(t, 2, ev.Job.Attempt)

	// A repeat of the open alert sends nothing; resolving it sends once.
	require.NoError(t, store.Raise(ctx, monitor.AlertSealLag, monitor.AlertWarning, "again", map[string]string{"chain_id": "3"}))
	_, err = store.Resolve(ctx, a.ID)
	require.NoError(t, err)
	ev = next()
	require.Equal(t, river.EventKindJobCompleted, ev.Kind)

	bodies, keys := hook.received()
	require.Len(t, bodies, 3)
	first := bodies[0]
	require.Equal(t, "auditdb", first.Source)
	require.Equal(t, monitor.AlertEventOpened, first.Event)
	require.Equal(t, a.ID, first.AlertID)
	require.Equal(t, monitor.AlertSealLag, first.Kind)
	require.Equal(t, monitor.AlertWarning, first.Severity)
	require.Equal(t, map[string]string{"chain_id": "3"}, first.Labels)
	require.Equal(t, bodies[0], bodies[1], "the retry sends the same event")
	require.Equal(t, keys[0], keys[1], "with the same idempotency key")
	require.Equal(t, monitor.AlertEventResolved, bodies[2].Event)
	require.Equal(t, monitor.AlertResolved, bodies[2].Status)
	require.NotEqual(t, keys[0], keys[2])

	var leaked int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_river.river_job WHERE args::text LIKE '%s3cret%' OR args::text LIKE '%127.0.0.1%'`).Scan(&leaked))
	require.Zero(t, leaked, "job args name the webhook by hash only")
}

func TestDeliverAlertWebhookOutcomes(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	deps := &Deps{Pool: db.Pool, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	store := monitor.NewAlertStore(db.Pool, monitor.AlertStoreOptions{Logger: deps.Logger})
	a, _, err := store.Open(ctx, monitor.Condition{Kind: "k", Severity: monitor.AlertInfo, Message: "m"})
	require.NoError(t, err)

	for _, tc := range []struct {
		name   string
		status int
		cancel bool
	}{
		{"ok", http.StatusNoContent, false},
		{"server error retries", http.StatusBadGateway, false},
		{"rate limited retries", http.StatusTooManyRequests, false},
		{"refused cancels", http.StatusNotFound, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hook := newHookServer(t, tc.status)
			u := hook.URL + "/?token=s3cret"
			err := deps.DeliverAlertWebhook(ctx, nil, []string{u}, AlertWebhookArgs{AlertID: a.ID, Event: monitor.AlertEventOpened, Target: WebhookTarget(u)})
			var cancelErr *river.JobCancelError
			switch {
			case tc.status < 300:
				require.NoError(t, err)
			case tc.cancel:
				require.ErrorAs(t, err, &cancelErr)
			default:
				require.Error(t, err)
				require.False(t, errors.As(err, &cancelErr), "retryable")
			}
			if err != nil {
				require.NotContains(t, err.Error(), "s3cret")
			}
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		u := "http://127.0.0.1:1/?token=s3cret"
		err := deps.DeliverAlertWebhook(ctx, nil, []string{u}, AlertWebhookArgs{AlertID: a.ID, Event: monitor.AlertEventOpened, Target: WebhookTarget(u)})
		require.Error(t, err)
		require.NotContains(t, err.Error(), "s3cret", "errors name the target, not the URL")
		require.Contains(t, err.Error(), WebhookTarget(u))
	})
	t.Run("target no longer configured", func(t *testing.T) {
		t.Parallel()
		err := deps.DeliverAlertWebhook(ctx, nil, []string{"http://127.0.0.1:1/"}, AlertWebhookArgs{AlertID: a.ID, Event: monitor.AlertEventOpened, Target: "0000"})
		var cancelErr *river.JobCancelError
		require.ErrorAs(t, err, &cancelErr)
	})
	t.Run("alert gone", func(t *testing.T) {
		t.Parallel()
		u := "http://127.0.0.1:1/"
		err := deps.DeliverAlertWebhook(ctx, nil, []string{u}, AlertWebhookArgs{AlertID: 424242, Event: monitor.AlertEventOpened, Target: WebhookTarget(u)})
		require.ErrorIs(t, err, monitor.ErrAlertNotFound)
	})
}

// Outside a job and without a client, an alert cannot enqueue its
// deliveries: Notify fails and the alert is not recorded half-delivered.
func TestAlertWebhooksNeedAClient(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	webhooks := &AlertWebhooks{URLs: []string{"http://127.0.0.1:1/"}}
	store := monitor.NewAlertStore(db.Pool, monitor.AlertStoreOptions{Notify: webhooks.Notify})
	err := store.Raise(context.Background(), "k", monitor.AlertWarning, "m", nil)
	require.ErrorContains(t, err, "no River client")
	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit.alerts`).Scan(&n))
	require.Zero(t, n)
}
