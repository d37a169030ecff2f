package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
)

func TestAlertConfigFromEnv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  map[string]string
		want AlertConfig
		err  string
	}{
		{name: "defaults", want: AlertConfig{}.WithDefaults()},
		{name: "all set", env: map[string]string{
			EnvAlertSealLag: "2m", EnvAlertSealLagRows: "50", EnvAlertPartitionsAhead: "4",
			EnvAlertSlowQuery: "250", EnvAlertConnectionsRatio: "0.5",
			EnvAlertWebhookURLs: " https://hooks.example/a?token=s3cret , http://127.0.0.1:9/b ",
		}, want: AlertConfig{SealLag: 2 * time.Minute, SealLagRows: 50, PartitionsAhead: 4,
			SlowQuery: 250 * time.Millisecond, SlowQueryMinCalls: AlertSlowQueryMinCallsDefault, ConnectionsRatio: 0.5,
			WebhookURLs: []string{"https://hooks.example/a?token=s3cret", "http://127.0.0.1:9/b"}}},
		{name: "bad duration", env: map[string]string{EnvAlertSealLag: "15"}, err: "AUDIT_ALERT_SEAL_LAG: not a duration"},
		// parsed as ConfigFromEnv parses it
		{name: "bad slow query", env: map[string]string{EnvAlertSlowQuery: "1s"}, err: "AUDIT_SLOW_QUERY_THRESHOLD: must be a whole number of milliseconds"},
		{name: "zero slow query", env: map[string]string{EnvAlertSlowQuery: "0"}, err: "AUDIT_SLOW_QUERY_THRESHOLD: must be at least 1 millisecond"},
		{name: "bad ratio", env: map[string]string{EnvAlertConnectionsRatio: "2"}, err: "ConnectionsRatio: must be in (0, 1]"},
		{name: "bad url", env: map[string]string{EnvAlertWebhookURLs: "ftp://x/secret-token"}, err: "WebhookURLs[0]: must be an absolute http or https URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := alertConfigFromEnv(func(k string) string { return tc.env[k] })
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				require.NotContains(t, err.Error(), "secret", "URLs may carry tokens")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

type notified struct {
	mu     sync.Mutex
	events []string
}

func (n *notified) notify(_ context.Context, _ pgx.Tx, a Alert, event string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.events = append(n.events, fmt.Sprintf("%s %d", event, a.ID))
	return nil
}

func (n *notified) list() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.events...)
}

func TestAlertStoreLifecycle(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	var logs syncLog
	var n notified
	store := NewAlertStore(db.Pool, AlertStoreOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Notify: n.notify})

	require.NoError(t, store.Raise(ctx, "seal_head_mismatch", AlertCritical, "chain 3 head does not match", map[string]string{"chain_id": "3"}))
	a, opened, err := store.Open(ctx, Condition{Kind: "seal_head_mismatch", Severity: AlertCritical, Message: "chain 3 head still off", Labels: map[string]string{"chain_id": "3"}})
	require.NoError(t, err)
	require.False(t, opened, "same kind and labels while open: one alert")
	require.EqualValues(t, 2, a.Occurrences)
	require.Equal(t, "chain 3 head still off", a.Message)
	require.Equal(t, map[string]string{"chain_id": "3"}, a.Labels)
	require.Contains(t, logs.String(), "alerts: opened chain 3 head does not match")

	other, opened, err := store.Open(ctx, Condition{Kind: "seal_head_mismatch", Severity: AlertCritical, Message: "chain 4", Labels: map[string]string{"chain_id": "4"}})
	require.NoError(t, err)
	require.True(t, opened, "other labels: another alert")
	require.NotEqual(t, a.ID, other.ID)

	acked, err := store.Acknowledge(ctx, a.ID, "alice")
	require.NoError(t, err)
	require.Equal(t, AlertAcknowledged, acked.Status)
	require.Equal(t, "alice", *acked.AcknowledgedBy)
	again, err := store.Acknowledge(ctx, a.ID, "bob")
	require.NoError(t, err)
	require.Equal(t, "alice", *again.AcknowledgedBy, "first acknowledgement stays")

	a2, opened, err := store.Open(ctx, Condition{Kind: "seal_head_mismatch", Severity: AlertCritical, Message: "m", Labels: map[string]string{"chain_id": "3"}})
	require.NoError(t, err)
	require.False(t, opened, "acknowledged alerts still deduplicate")
	require.Equal(t, a.ID, a2.ID)
	require.Equal(t, AlertAcknowledged, a2.Status)
	require.EqualValues(t, 3, a2.Occurrences)

	resolved, err := store.Resolve(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, AlertResolved, resolved.Status)
	require.NotNil(t, resolved.ResolvedAt)
	_, err = store.Resolve(ctx, a.ID)
	require.NoError(t, err, "resolving twice is harmless")
	_, err = store.Acknowledge(ctx, a.ID, "carol")
	require.ErrorIs(t, err, ErrAlertResolved)

	a3, opened, err := store.Open(ctx, Condition{Kind: "seal_head_mismatch", Severity: AlertCritical, Message: "back", Labels: map[string]string{"chain_id": "3"}})
	require.NoError(t, err)
	require.True(t, opened, "after resolution the same problem is a new alert")
	require.NotEqual(t, a.ID, a3.ID)

	_, err = store.Acknowledge(ctx, 999999, "alice")
	require.ErrorIs(t, err, ErrAlertNotFound)
	_, err = store.Resolve(ctx, 999999)
	require.ErrorIs(t, err, ErrAlertNotFound)
	_, err = store.Acknowledge(ctx, a3.ID, " ")
	require.ErrorContains(t, err, "by must name")
	require.ErrorContains(t, store.Raise(ctx, "Bad Kind", AlertWarning, "m", nil), "must be lower_snake_case")
	require.ErrorContains(t, store.Raise(ctx, "k", "page", "m", nil), "must be info, warning or critical")

	require.Equal(t, []string{
		fmt.Sprintf("opened %d", a.ID), fmt.Sprintf("opened %d", other.ID),
		fmt.Sprintf("resolved %d", a.ID), fmt.Sprintf("opened %d", a3.ID),
	}, n.list())

	for status, want := range map[string]int{"open": 2, "acknowledged": 0, "resolved": 1, "active": 2, "all": 3} {
		list, err := store.List(ctx, status, 0)
		require.NoError(t, err)
		require.Len(t, list, want, status)
	}
	_, err = store.List(ctx, "closed", 0)
	require.ErrorContains(t, err, "must be open, acknowledged, resolved, active or all")
}

// The notifier runs in the alert's transaction: when it fails, no alert.
func TestAlertStoreNotifyFailureRollsBack(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	store := NewAlertStore(db.Pool, AlertStoreOptions{Notify: func(context.Context, pgx.Tx, Alert, string) error {
		return errors.New("queue down")
	}})
	require.ErrorContains(t, store.Raise(ctx, "k", AlertWarning, "m", nil), "queue down")
	list, err := store.List(ctx, "all", 0)
	require.NoError(t, err)
	require.Empty(t, list)
}

func TestAlertStoreConcurrentRaisesDeduplicate(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	store := NewAlertStore(db.Pool, AlertStoreOptions{})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- store.Raise(ctx, "pool_busy", AlertWarning, "busy", map[string]string{"pool": "main"})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	list, err := store.List(ctx, "all", 0)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.EqualValues(t, 20, list[0].Occurrences)
}

func kindsOf(conds []Condition) []string {
	var out []string
	for _, c := range conds {
		out = append(out, c.Kind+"/"+c.Labels["status"])
	}
	return out
}

func TestEvaluateAlertsRaisesAndResolves(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	store := NewAlertStore(db.Pool, AlertStoreOptions{})

	conds, err := EvaluateAlerts(ctx, db.Pool, AlertConfig{})
	require.NoError(t, err)
	require.Empty(t, conds, "a fresh install is healthy")

	_, err = db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, principal_id)
		SELECT now(), 'a', 'success', 'patient-' || g FROM generate_series(1, 50) g`)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, principal_id)
		VALUES ('2031-05-01', 'a', 'success', 'patient-x')`)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `INSERT INTO audit.verification_runs (mode, status, finished_at, chains, chain_results)
		VALUES ('full', 'tampered', now(), '{0}', '{"0": {"findings": 2, "verified_seq": 0}}'),
		       ('incremental', 'failed', now(), '{1}', '{}')`)
	require.NoError(t, err)

	strict := AlertConfig{SealLagRows: 1, PartitionsAhead: 10, ConnectionsRatio: 0.0001}
	conds, err = EvaluateAlerts(ctx, db.Pool, strict)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{
		"integrity_tampered/", "verification_failed/", "seal_lag/",
		"default_partition_rows/", "partitions_missing_ahead/", "connection_saturation/",
	}, kindsOf(conds))
	for _, c := range conds {
		require.NotContains(t, c.Message, "patient", "messages carry counts and names, never values")
	}

	res, err := store.Sync(ctx, conds, EvaluatedAlertKinds)
	require.NoError(t, err)
	require.Len(t, res.Opened, 6)
	res, err = store.Sync(ctx, conds, EvaluatedAlertKinds)
	require.NoError(t, err)
	require.Empty(t, res.Opened)
	require.Len(t, res.Repeated, 6)

	// An alert of a job's own kind is left alone by the evaluator.
	require.NoError(t, store.Raise(ctx, "seal_head_mismatch", AlertCritical, "chain 2", map[string]string{"chain_id": "2"}))

	// Repair what can be repaired; with default thresholds the rest clears.
	_, err = db.Pool.Exec(ctx, `SELECT count(*) FROM audit.rescue_default_partition()`)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `INSERT INTO audit.verification_runs (mode, status, finished_at, chains, chain_results)
		VALUES ('full', 'intact', now(), '{0}', '{"0": {"findings": 0, "verified_seq": 0}}')`)
	require.NoError(t, err)
	conds, err = EvaluateAlerts(ctx, db.Pool, AlertConfig{})
	require.NoError(t, err)
	require.Empty(t, conds)
	res, err = store.Sync(ctx, conds, EvaluatedAlertKinds)
	require.NoError(t, err)
	require.Len(t, res.Resolved, 6)
	active, err := store.List(ctx, "active", 0)
	require.NoError(t, err)
	require.Len(t, active, 1)
	require.Equal(t, "seal_head_mismatch", active[0].Kind)
}

// syncLog is a log sink several goroutines may write to.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
