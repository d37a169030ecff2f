package client

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
)

// plainInsert writes e with plain SQL through the public audit_log view,
// independently of the client's own encoding: fields left empty are left
// out, so the database applies its NULLs and defaults.
func plainInsert(ctx context.Context, pool *pgxpool.Pool, e Event) error {
	var cols, params []string
	var args []any
	add := func(col string, v any) {
		args = append(args, v)
		cols = append(cols, `"`+col+`"`)
		params = append(params, "$"+strconv.Itoa(len(args)))
	}
	text := func(col, v string) {
		if v != "" {
			add(col, v)
		}
	}
	if !e.Timestamp.IsZero() {
		add("timestamp", e.Timestamp)
	}
	text("action", e.Action)
	text("status", string(e.Status))
	text("principal_id", e.PrincipalID)
	text("principal_type", e.PrincipalType)
	text("organization_id", e.OrganizationID)
	text("target_resource_type", e.TargetResourceType)
	text("target_resource_id", e.TargetResourceID)
	if e.SourceIP.IsValid() {
		add("source_ip", e.SourceIP.String())
	}
	text("outcome_description", e.OutcomeDescription)
	if e.Details != nil {
		b, err := json.Marshal(e.Details)
		if err != nil {
			return err
		}
		add("details", string(b))
	}
	text("data_classification", string(e.DataClassification))
	text("retention_policy", e.RetentionPolicy)
	text("event_version", e.EventVersion)
	text("correlation_id", e.CorrelationID)
	if e.ProcessingLatency != nil {
		add("processing_latency", *e.ProcessingLatency)
	}
	text("ttl", e.TTL)
	sql := `INSERT INTO audit_log DEFAULT VALUES`
	if len(cols) > 0 {
		sql = `INSERT INTO audit_log (` + strings.Join(cols, ", ") + `) VALUES (` + strings.Join(params, ", ") + `)`
	}
	_, err := pool.Exec(ctx, sql, args...)
	return err
}

func int32p(v int32) *int32 { return &v }

// bigNumbers returns a details document whose text form (numbers printed in
// full by numeric_out, 301 digits each) is far larger than its binary form.
func bigNumbers(n int) map[string]any {
	list := make([]any, n)
	for i := range list {
		list[i] = 1e300
	}
	return map[string]any{"v": list}
}

// Event.Validate refuses exactly what the insert trigger refuses, in the
// same words, for both trigger implementations.
func TestEventValidateMatchesDatabase(t *testing.T) {
	t.Parallel()
	long := func(n int) string { return strings.Repeat("x", n) }
	cases := []struct {
		name string
		edit func(e *Event)
		want string // "" when both accept
	}{
		{"valid", func(e *Event) {}, ""},
		{"minimal", func(e *Event) { *e = Event{Timestamp: e.Timestamp, Action: "a", Status: StatusAttempt} }, ""},
		{"missing timestamp", func(e *Event) { e.Timestamp = time.Time{} }, "audit_log.timestamp: is required"},
		{"missing action", func(e *Event) { e.Action = "" }, "audit_log.action: is required"},
		{"missing status", func(e *Event) { e.Status = "" }, "audit_log.status: is required"},
		{"missing everything", func(e *Event) { *e = Event{} }, "audit_log.timestamp: is required"},
		{"bad status", func(e *Event) { e.Status = "ok" }, "audit_log.status: must be one of attempt, success, failure"},
		{"status in upper case", func(e *Event) { e.Status = "SUCCESS" }, "audit_log.status: must be one of attempt, success, failure"},
		{"bad classification", func(e *Event) { e.DataClassification = "SECRET" }, "audit_log.data_classification: must be one of PUBLIC, INTERNAL, CONFIDENTIAL, PHI"},
		{"classification in lower case", func(e *Event) { e.DataClassification = "phi" }, "audit_log.data_classification: must be one of PUBLIC, INTERNAL, CONFIDENTIAL, PHI"},
		{"action of 255 two-byte characters", func(e *Event) { e.Action = strings.Repeat("é", 255) }, ""},
		{"action of 256 two-byte characters", func(e *Event) { e.Action = strings.Repeat("é", 256) }, "audit_log.action: longer than 255 characters"},
		{"action of 256 four-byte characters", func(e *Event) { e.Action = strings.Repeat("😀", 256) }, "audit_log.action: longer than 255 characters"},
		{"long principal_id", func(e *Event) { e.PrincipalID = long(256) }, "audit_log.principal_id: longer than 255 characters"},
		{"long principal_type", func(e *Event) { e.PrincipalType = long(256) }, "audit_log.principal_type: longer than 255 characters"},
		{"long organization_id", func(e *Event) { e.OrganizationID = long(256) }, "audit_log.organization_id: longer than 255 characters"},
		{"long target_resource_type", func(e *Event) { e.TargetResourceType = long(256) }, "audit_log.target_resource_type: longer than 255 characters"},
		{"long target_resource_id", func(e *Event) { e.TargetResourceID = long(256) }, "audit_log.target_resource_id: longer than 255 characters"},
		{"long correlation_id", func(e *Event) { e.CorrelationID = long(256) }, "audit_log.correlation_id: longer than 255 characters"},
		{"long ttl", func(e *Event) { e.TTL = long(256) }, "audit_log.ttl: longer than 255 characters"},
		{"event_version of 20", func(e *Event) { e.EventVersion = long(20) }, ""},
		{"long event_version", func(e *Event) { e.EventVersion = long(21) }, "audit_log.event_version: longer than 20 characters"},
		{"retention_policy of 50", func(e *Event) { e.RetentionPolicy = long(50) }, ""},
		{"long retention_policy", func(e *Event) { e.RetentionPolicy = long(51) }, "audit_log.retention_policy: longer than 50 characters"},
		{"outcome of 10000", func(e *Event) { e.OutcomeDescription = strings.Repeat("ß", 10000) }, ""},
		{"long outcome", func(e *Event) { e.OutcomeDescription = long(10001) }, "audit_log.outcome_description: longer than 10000 characters"},
		{"negative latency", func(e *Event) { e.ProcessingLatency = int32p(-1) }, "audit_log.processing_latency: must not be negative"},
		{"zero latency", func(e *Event) { e.ProcessingLatency = int32p(0) }, ""},
		{"empty details", func(e *Event) { e.Details = map[string]any{} }, ""},
		{"details too large", func(e *Event) { e.Details = map[string]any{"k": long(70000)} }, "audit_log.details: larger than 65536 bytes as JSON text"},
		// {"k": "<n x>"} prints as 9 + n bytes
		{"details of 65536 bytes", func(e *Event) { e.Details = map[string]any{"k": long(65527)} }, ""},
		{"details of 65537 bytes", func(e *Event) { e.Details = map[string]any{"k": long(65528)} }, "audit_log.details: larger than 65536 bytes as JSON text"},
		{"details escapes count", func(e *Event) { e.Details = map[string]any{"k": strings.Repeat("\x01", 11000)} }, "audit_log.details: larger than 65536 bytes as JSON text"},
		// 80 KB as text but under 8 KB as jsonb: the trigger never renders
		// the text of such a document, so it accepts it; so does Validate.
		{"details large as text, small as jsonb", func(e *Event) { e.Details = bigNumbers(260) }, "audit_log.details: larger than 65536 bytes as JSON text"},
		{"details with a 131072-digit number", func(e *Event) { e.Details = map[string]any{"n": json.Number("1e131071")} }, "audit_log.details: larger than 65536 bytes as JSON text"},
		{"details just under the limit as text", func(e *Event) { e.Details = bigNumbers(215) }, ""},
		{"details large as text and as jsonb", func(e *Event) { e.Details = bigNumbers(700) }, "audit_log.details: larger than 65536 bytes as JSON text"},
		// the first rule broken wins, in the trigger's order
		{"status before lengths", func(e *Event) { e.Action = long(300); e.Status = "nope" }, "audit_log.status: must be one of attempt, success, failure"},
		{"classification before lengths", func(e *Event) { e.PrincipalID = long(300); e.DataClassification = "X" }, "audit_log.data_classification: must be one of PUBLIC, INTERNAL, CONFIDENTIAL, PHI"},
		{"action before principal", func(e *Event) { e.PrincipalID = long(300); e.Action = long(300) }, "audit_log.action: longer than 255 characters"},
		{"ttl before event_version", func(e *Event) { e.EventVersion = long(30); e.TTL = long(300) }, "audit_log.ttl: longer than 255 characters"},
		{"retention before outcome", func(e *Event) { e.OutcomeDescription = long(10001); e.RetentionPolicy = long(51) }, "audit_log.retention_policy: longer than 50 characters"},
		{"lengths before details", func(e *Event) { e.Details = map[string]any{"k": long(70000)}; e.TTL = long(256) }, "audit_log.ttl: longer than 255 characters"},
		{"details before latency", func(e *Event) { e.Details = map[string]any{"k": long(70000)}; e.ProcessingLatency = int32p(-5) }, "audit_log.details: larger than 65536 bytes as JSON text"},
		{"required before status", func(e *Event) { e.Action = ""; e.Status = "nope" }, "audit_log.action: is required"},
	}
	harness.ForEachTrigger(t, func(t *testing.T, db *harness.DB) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				e := validEvent(1)
				tc.edit(&e)
				goErr := e.Validate()
				dbErr := plainInsert(ctx, db.Pool, e)
				if tc.want == "" {
					require.NoError(t, goErr)
					require.NoError(t, dbErr)
					return
				}
				require.EqualError(t, goErr, tc.want)
				var pgErr *pgconn.PgError
				require.True(t, errors.As(dbErr, &pgErr), "want a database error, got %v", dbErr)
				require.Equal(t, tc.want, pgErr.Message)
				var ve *ValidationError
				require.True(t, errors.As(goErr, &ve))
				require.Equal(t, pgErr.ColumnName, ve.Field)
			})
		}
	})
}

// Some input never reaches the trigger: the server refuses it while
// decoding the parameters. Validate refuses it too, in its own words.
func TestEventValidateBeforeDecode(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		edit   func(e *Event)
		want   string
		dbCode string // SQLSTATE of the database's refusal; "" when pgx cannot send it
	}{
		{"NUL in action", func(e *Event) { e.Action = "a\x00b" }, "audit_log.action: must not contain NUL characters", "22021"},
		{"invalid UTF-8", func(e *Event) { e.PrincipalID = "dr-\xff" }, "audit_log.principal_id: must be valid UTF-8", "22021"},
		{"NUL in a details value", func(e *Event) { e.Details = map[string]any{"k": []any{"a\x00"}} }, "audit_log.details: must not contain NUL characters", "22P05"},
		{"NUL in a details key", func(e *Event) { e.Details = map[string]any{"k\x00": 1} }, "audit_log.details: must not contain NUL characters", "22P05"},
		{"number beyond numeric", func(e *Event) { e.Details = map[string]any{"n": json.Number("1e131072")} }, "audit_log.details: must not hold numbers out of PostgreSQL's numeric range", "22003"},
		{"number below numeric", func(e *Event) { e.Details = map[string]any{"n": json.Number("0e-16384")} }, "audit_log.details: must not hold numbers out of PostgreSQL's numeric range", "22003"},
		{"NaN in details", func(e *Event) { e.Details = map[string]any{"k": math.NaN()} }, "audit_log.details: cannot be encoded as JSON", ""},
		{"before 1900", func(e *Event) { e.Timestamp = minTimestamp.Add(-time.Microsecond) }, "audit_log.timestamp: must be from 1900-01-01 to 9999-12-31 (UTC)", "22008"},
		{"after 9999", func(e *Event) { e.Timestamp = maxTimestamp.Add(time.Microsecond) }, "audit_log.timestamp: must be from 1900-01-01 to 9999-12-31 (UTC)", "22008"},
		{"decoding comes first", func(e *Event) { e.Status = "nope"; e.TTL = "\x00" }, "audit_log.ttl: must not contain NUL characters", "22021"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := validEvent(2)
			tc.edit(&e)
			require.EqualError(t, e.Validate(), tc.want)
			if tc.dbCode == "" {
				return
			}
			err := plainInsert(ctx, db.Pool, e)
			var pgErr *pgconn.PgError
			require.True(t, errors.As(err, &pgErr), "got %v", err)
			require.Equal(t, tc.dbCode, pgErr.Code, pgErr.Message)
		})
	}

	// the ends of the range are accepted and stored exactly
	c, err := New(ctx, db.URL)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	for _, ts := range []time.Time{minTimestamp, maxTimestamp} {
		e := validEvent(3)
		e.Timestamp = ts
		r, err := c.Insert(ctx, e)
		require.NoError(t, err)
		got, err := c.Get(ctx, r.ID)
		require.NoError(t, err)
		require.True(t, ts.Equal(got.Timestamp), "stored %s, sent %s", got.Timestamp, ts)
	}

	// an IPv6 zone, which inet cannot hold, is dropped
	e := validEvent(4)
	e.SourceIP = netip.MustParseAddr("fe80::1%eth0")
	r, err := c.Insert(ctx, e)
	require.NoError(t, err)
	got, err := c.Get(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, netip.MustParseAddr("fe80::1"), got.SourceIP)
}
