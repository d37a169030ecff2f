package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/monitor"
	"github.com/auditdb/auditdb/tests/harness"
)

func TestAlertsListAckResolve(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	store := monitor.NewAlertStore(db.Pool, monitor.AlertStoreOptions{})
	a, _, err := store.Open(ctx, monitor.Condition{Kind: "seal_head_mismatch", Severity: monitor.AlertCritical,
		Message: "chain 3 head does not match its row", Labels: map[string]string{"chain_id": "3"}})
	require.NoError(t, err)
	id := fmt.Sprint(a.ID)

	code, out, errOut := run(t, "--database-url", db.URL, "alerts", "list")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "SEVERITY")
	require.Contains(t, out, "chain 3 head does not match its row")

	code, out, errOut = run(t, "--database-url", db.URL, "alerts", "ack", "--by", "alice", id)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "acknowledged (alice)")

	code, out, _ = run(t, "--database-url", db.URL, "alerts", "list", "--status", "acknowledged", "--json")
	require.Equal(t, 0, code)
	var list []monitor.Alert
	require.NoError(t, json.Unmarshal([]byte(out), &list))
	require.Len(t, list, 1)
	require.Equal(t, "alice", *list[0].AcknowledgedBy)

	code, out, errOut = run(t, "--database-url", db.URL, "alerts", "resolve", "--json", id)
	require.Equal(t, 0, code, errOut)
	var resolved monitor.Alert
	require.NoError(t, json.Unmarshal([]byte(out), &resolved))
	require.Equal(t, monitor.AlertResolved, resolved.Status)

	code, out, _ = run(t, "--database-url", db.URL, "alerts", "list")
	require.Equal(t, 0, code)
	require.Equal(t, "no alerts\n", out)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"alerts", "ack", "--by", "alice", "999999"}, "alert 999999: no such alert"},
		{[]string{"alerts", "resolve", "999999"}, "alert 999999: no such alert"},
		{[]string{"alerts", "ack", "--by", "bob", id}, "alert is already resolved"},
		{[]string{"alerts", "ack", "x1"}, "ack: alert ID must be a positive number"},
		{[]string{"alerts", "resolve"}, "resolve: give one alert ID"},
		{[]string{"alerts", "ack", id, "--by=alice"}, "ack: put --by before the alert ID: flags after an argument are not read"},
		{[]string{"alerts", "list", "--status", "closed"}, "must be open, acknowledged, resolved, active or all"},
		{[]string{"alerts", "resolve", "--webhook-url", "ftp://hooks/s3cret", id}, "webhook-url: value 1: must be an absolute http or https URL"},
	} {
		code, _, errOut := run(t, append([]string{"--database-url", db.URL}, tc.args...)...)
		require.Equal(t, 1, code, tc.args)
		require.Contains(t, errOut, tc.want)
		require.NotContains(t, errOut, "s3cret")
		require.Equal(t, 1, strings.Count(strings.TrimSpace(errOut), "\n")+1, "one line: %q", errOut)
	}
}

// evaluate raises what holds and enqueues the webhook deliveries for the
// worker, naming the webhook by hash only. Not parallel, as above.
func TestAlertsEvaluate(t *testing.T) {
	db := harness.NewDB(t)
	ctx := context.Background()
	code, out, errOut := run(t, "--database-url", db.URL, "alerts", "evaluate")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "0 opened, 0 still open, 0 resolved")

	_, err := db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status) VALUES ('2031-05-01', 'a', 'success')`)
	require.NoError(t, err)
	code, out, errOut = run(t, "--database-url", db.URL, "alerts", "evaluate", "--webhook-url", "http://127.0.0.1:1/hook?token=s3cret")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "1 opened")
	require.Contains(t, out, "default_partition_rows")

	var jobs int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_river.river_job
		WHERE kind = 'auditdb_alert_webhook' AND args->>'event' = 'opened' AND args::text NOT LIKE '%s3cret%'`).Scan(&jobs))
	require.Equal(t, 1, jobs)
}

// With $USER unset and no --by, ack of a missing alert says the alert is
// missing; of an existing one, names the flag to set.
func TestAlertAckWithoutUser(t *testing.T) {
	t.Setenv("USER", "")
	t.Setenv("AUDIT_ALERT_ACK_BY", "")
	db := harness.NewDB(t)
	code, _, errOut := run(t, "--database-url", db.URL, "alerts", "ack", "99")
	require.Equal(t, 1, code)
	require.Equal(t, "auditworker: alert 99: no such alert\n", errOut)

	var id int64
	require.NoError(t, db.Pool.QueryRow(context.Background(), `INSERT INTO audit.alerts (kind, severity, message, fingerprint)
		VALUES ('seal_lag', 'warning', 'm', 'f') RETURNING id`).Scan(&id))
	code, _, errOut = run(t, "--database-url", db.URL, "alerts", "ack", strconv.FormatInt(id, 10))
	require.Equal(t, 1, code)
	require.Equal(t, "auditworker: by: required: pass --by NAME before the alert ID, or set AUDIT_ALERT_ACK_BY (USER, the fallback, is not set)\n", errOut)
}
