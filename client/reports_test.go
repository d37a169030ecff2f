package client

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/internal/verifier"
)

const script = `<script>alert(1)</script>`

// reportEvent is a minimal event at baseTime plus offset seconds.
func reportEvent(offset int, action string, status Status, principal, rtype, rid string) Event {
	return Event{
		Timestamp: baseTime.Add(time.Duration(offset) * time.Second), Action: action, Status: status,
		PrincipalID: principal, PrincipalType: "practitioner", TargetResourceType: rtype, TargetResourceID: rid,
		DataClassification: ClassificationPHI,
	}
}

func renderReport(t *testing.T, rep *Report, f ReportFormat) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, rep.Render(&b, f))
	return b.String()
}

// column returns the values of the column keyed key.
func column(rep *Report, key string) []any {
	for i, c := range rep.Columns {
		if c.Key == key {
			out := make([]any, len(rep.Rows))
			for j, row := range rep.Rows {
				out[j] = row[i]
			}
			return out
		}
	}
	panic("no column " + key)
}

func summary(rep *Report) map[string]any {
	m := map[string]any{}
	for _, f := range rep.Summary {
		m[f.Key] = f.Value
	}
	return m
}

func TestAccessReport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := setup(t, Config{})

	evil := reportEvent(3, "fhir.patient.read", StatusFailure, "=cmd|' /C calc'!A0", "Patient", "patient-a")
	evil.OutcomeDescription = script
	events := []Event{
		reportEvent(1, "fhir.patient.read", StatusSuccess, "dr-1", "Patient", "patient-a"),
		reportEvent(2, "fhir.patient.write", StatusSuccess, "dr-1", "Patient", "patient-a"),
		evil,
		reportEvent(4, "fhir.patient.read", StatusAttempt, "nurse-9", "Patient", "patient-a"),
		reportEvent(5, "fhir.patient.read", StatusSuccess, "dr-1", "Patient", "patient-b"),     // other patient
		reportEvent(6, "fhir.patient.read", StatusSuccess, "dr-1", "Observation", "patient-a"), // other type
		reportEvent(-10, "fhir.patient.read", StatusSuccess, "dr-1", "Patient", "patient-a"),   // before From
		reportEvent(100, "fhir.patient.read", StatusSuccess, "dr-1", "Patient", "patient-a"),   // at To: excluded
	}
	events[0].SourceIP = validEvent(1).SourceIP
	events[0].CorrelationID = "req-1"
	_, err := c.InsertBatch(ctx, events)
	require.NoError(t, err)

	rep, err := c.AccessReport(ctx, AccessReportRequest{TargetResourceID: "patient-a", From: baseTime, To: baseTime.Add(100 * time.Second)})
	require.NoError(t, err)
	require.Equal(t, "access", rep.Kind)
	require.Equal(t, []any{"dr-1", "dr-1", evil.PrincipalID, "nurse-9"}, column(rep, "principal_id"))
	require.Equal(t, []any{"success", "success", "failure", "attempt"}, column(rep, "status"))
	require.Equal(t, []any{"fhir.patient.read", "fhir.patient.write", "fhir.patient.read", "fhir.patient.read"}, column(rep, "action"))
	require.Equal(t, []any{nil, nil, script, nil}, column(rep, "outcome_description"))
	require.Equal(t, []any{"10.0.0.2", nil, nil, nil}, column(rep, "source_ip"))
	require.Equal(t, []any{"req-1", nil, nil, nil}, column(rep, "correlation_id"))
	require.Equal(t, baseTime.Add(time.Second), rep.Rows[0][0])
	require.Equal(t, map[string]any{"events": 4, "principals": 3, "success": 2, "failure": 1, "attempt": 1}, summary(rep))
	require.Equal(t, [][]any{
		{"dr-1", "practitioner", 2, 0, baseTime.Add(time.Second), baseTime.Add(2 * time.Second)},
		{evil.PrincipalID, "practitioner", 1, 1, baseTime.Add(3 * time.Second), baseTime.Add(3 * time.Second)},
		{"nurse-9", "practitioner", 1, 0, baseTime.Add(4 * time.Second), baseTime.Add(4 * time.Second)},
	}, rep.Sections[0].Rows)
	require.Equal(t, "16 chains: 0 intact, 0 behind, 16 unverified, 0 tampered; no verification has run", rep.Integrity)
	require.WithinDuration(t, time.Now(), rep.GeneratedAt, time.Minute)

	// every format parses, and PHI-bearing values cannot inject anything
	var js struct {
		Rows    []map[string]any `json:"rows"`
		Summary map[string]any   `json:"summary"`
	}
	require.NoError(t, json.Unmarshal([]byte(renderReport(t, rep, ReportJSON)), &js))
	require.Len(t, js.Rows, 4)
	require.Equal(t, script, js.Rows[2]["outcome_description"])
	require.EqualValues(t, 3, js.Summary["principals"])

	recs, err := csv.NewReader(strings.NewReader(renderReport(t, rep, ReportCSV))).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 5)
	require.Equal(t, "principal_id", recs[0][2])
	require.Equal(t, "'"+evil.PrincipalID, recs[3][2], "formula defused")
	require.Equal(t, script, recs[3][6])

	html := renderReport(t, rep, ReportHTML)
	require.NotContains(t, html, script)
	require.Contains(t, html, "&lt;script&gt;alert(1)&lt;/script&gt;")
	require.Contains(t, html, "no verification has run")

	text := renderReport(t, rep, ReportTable)
	require.Contains(t, text, "nurse-9")
	require.Contains(t, text, "Integrity at generation: 16 chains")

	// the same events under another type are another resource
	rep, err = c.AccessReport(ctx, AccessReportRequest{TargetResourceType: "Observation", TargetResourceID: "patient-a",
		From: baseTime, To: baseTime.Add(time.Hour)})
	require.NoError(t, err)
	require.Len(t, rep.Rows, 1)

	// the default period ends now: these events are next month
	rep, err = c.AccessReport(ctx, AccessReportRequest{TargetResourceID: "patient-a"})
	require.NoError(t, err)
	require.Empty(t, rep.Rows)
	require.Equal(t, 0, summary(rep)["events"])
}

// TestReportsPageAndCap puts more events than a keyset batch on one
// resource, many sharing a timestamp across batch boundaries, and checks
// that every event comes once, in order, and that a cap below the count is
// an error rather than a short report.
func TestReportsPageAndCap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := setup(t, Config{})
	const n = 2*reportBatch + 501
	events := make([]Event, n)
	for i := range events {
		events[i] = reportEvent(i/7, "fhir.patient.read", StatusSuccess, fmt.Sprintf("dr-%d", i%5), "Patient", "patient-big")
	}
	_, err := c.InsertBatch(ctx, events)
	require.NoError(t, err)

	start := time.Now()
	rep, err := c.AccessReport(ctx, AccessReportRequest{TargetResourceID: "patient-big", From: baseTime, To: baseTime.Add(time.Hour), MaxRows: n})
	require.NoError(t, err)
	t.Logf("access report of %d events: %s", n, time.Since(start))
	require.Len(t, rep.Rows, n)
	seen := map[int64]bool{}
	for i, row := range rep.Rows {
		id := row[1].(int64)
		require.False(t, seen[id], "event %d twice", id)
		seen[id] = true
		if i > 0 {
			prev := rep.Rows[i-1]
			ts, pts := row[0].(time.Time), prev[0].(time.Time)
			require.True(t, ts.After(pts) || (ts.Equal(pts) && id > prev[1].(int64)), "order at %d", i)
		}
	}
	require.Equal(t, 5, summary(rep)["principals"])

	_, err = c.AccessReport(ctx, AccessReportRequest{TargetResourceID: "patient-big", From: baseTime, To: baseTime.Add(time.Hour), MaxRows: n - 1})
	require.ErrorIs(t, err, ErrReportTooLarge)
	require.ErrorContains(t, err, fmt.Sprintf("more than %d rows", n-1))
	_, err = c.WorkforceActivityReport(ctx, ActivityReportRequest{PrincipalID: "dr-0", From: baseTime, To: baseTime.Add(time.Hour), MaxRows: reportBatch})
	require.NoError(t, err, "dr-0 has exactly %d events", (n+4)/5)
	_, err = c.WorkforceActivityReport(ctx, ActivityReportRequest{PrincipalID: "dr-0", From: baseTime, To: baseTime.Add(time.Hour), MaxRows: (n+4)/5 - 1})
	require.ErrorIs(t, err, ErrReportTooLarge)
}

func TestDisclosureReport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, db := setup(t, Config{})

	withDetails := func(e Event, details map[string]any) Event { e.Details = details; return e }
	internal := reportEvent(4, "ehr.record.disclose", StatusSuccess, "dr-1", "Patient", "patient-a")
	internal.DataClassification = ClassificationInternal
	oldest := reportEvent(0, "ehr.record.disclose", StatusSuccess, "dr-1", "Patient", "patient-c")
	oldest.Timestamp = baseTime.AddDate(-5, 0, 0)
	tooOld := reportEvent(0, "ehr.record.disclose", StatusSuccess, "dr-1", "Patient", "patient-c")
	tooOld.Timestamp = baseTime.AddDate(-6, 0, -1)
	_, err := c.InsertBatch(ctx, []Event{
		withDetails(reportEvent(1, "ehr.record.disclose", StatusSuccess, "dr-1", "Patient", "patient-a"),
			map[string]any{"recipient": "Acme Insurance", "purpose": "payment"}),
		withDetails(reportEvent(2, "fhir.bundle.export", StatusSuccess, "dr-2", "Patient", "patient-b"),
			map[string]any{"recipient": "=HYPERLINK(\"x\")"}),
		reportEvent(3, "ehr.chart.print", StatusSuccess, "dr-1", "Patient", "patient-a"),
		internal, // not PHI
		reportEvent(5, "ehr.record.disclose", StatusFailure, "dr-1", "Patient", "patient-a"),  // nothing disclosed
		reportEvent(6, "fhir.patient.read", StatusSuccess, "dr-1", "Patient", "patient-a"),    // not a disclosure
		reportEvent(7, "ehr.record.disclosed", StatusSuccess, "dr-1", "Patient", "patient-a"), // suffix differs
		reportEvent(8, "ehr.record.disclose", StatusSuccess, "dr-1", "Device", "patient-a"),   // not a patient
		oldest, tooOld,
	})
	require.NoError(t, err)
	to := baseTime.Add(time.Hour)

	rep, err := c.DisclosureReport(ctx, DisclosureReportRequest{To: to})
	require.NoError(t, err)
	require.Equal(t, "disclosures", rep.Kind)
	require.Equal(t, []any{"patient-c", "patient-a", "patient-b", "patient-a"}, column(rep, "target_resource_id"))
	require.Equal(t, []any{"ehr.record.disclose", "ehr.record.disclose", "fhir.bundle.export", "ehr.chart.print"}, column(rep, "action"))
	require.Equal(t, []any{nil, "Acme Insurance", "=HYPERLINK(\"x\")", nil}, column(rep, "recipient"))
	require.Equal(t, []any{nil, "payment", nil, nil}, column(rep, "purpose"))
	require.Equal(t, []any{"dr-1", "dr-1", "dr-2", "dr-1"}, column(rep, "principal_id"))
	require.Equal(t, map[string]any{"disclosures": 4, "individuals": 3, "recipients": 2, "without_recipient": 2, "without_purpose": 3}, summary(rep))
	require.Equal(t, [][]any{
		{"patient-a", 2, baseTime.Add(time.Second), baseTime.Add(3 * time.Second)},
		{"patient-b", 1, baseTime.Add(2 * time.Second), baseTime.Add(2 * time.Second)},
		{"patient-c", 1, oldest.Timestamp, oldest.Timestamp},
	}, rep.Sections[0].Rows)
	require.Equal(t, to.AddDate(-6, 0, 0), rep.Parameters[1].Value, "six years back from To")
	require.Len(t, rep.Notes, 4, "no archive note without manifests")

	recs, err := csv.NewReader(strings.NewReader(renderReport(t, rep, ReportCSV))).ReadAll()
	require.NoError(t, err)
	require.Equal(t, "'=HYPERLINK(\"x\")", recs[3][5])

	// one individual, custom actions
	rep, err = c.DisclosureReport(ctx, DisclosureReportRequest{TargetResourceID: "patient-a", To: to, Actions: []string{"ehr.record.*"}})
	require.NoError(t, err)
	require.Equal(t, []any{"ehr.record.disclose", "ehr.record.disclosed"}, column(rep, "action"))
	rep, err = c.DisclosureReport(ctx, DisclosureReportRequest{TargetResourceID: "patient-a", To: to, Actions: []string{"*chart*"}})
	require.NoError(t, err)
	require.Equal(t, []any{"ehr.chart.print"}, column(rep, "action"))
	rep, err = c.DisclosureReport(ctx, DisclosureReportRequest{TargetResourceType: "Device", To: to})
	require.NoError(t, err)
	require.Len(t, rep.Rows, 1)

	_, err = db.Pool.Exec(ctx, `INSERT INTO audit.archive_manifests (chain_id, first_seq, last_seq, end_hash, row_count,
		archive_uri, archive_sha256, key_id, mac) VALUES (3, 1, 10, repeat('a', 64), 10, 'file:///a', repeat('b', 64), 'k', 'm')`)
	require.NoError(t, err)
	rep, err = c.DisclosureReport(ctx, DisclosureReportRequest{To: to})
	require.NoError(t, err)
	require.Contains(t, rep.Notes[len(rep.Notes)-1], "under 1 archive manifests")
}

func TestActionPatternsAreLiteral(t *testing.T) {
	t.Parallel()
	got, err := actionPatterns("R", []string{"*.disclose", "a_b%c\\*", "exact"})
	require.NoError(t, err)
	require.Equal(t, []string{`%.disclose`, `a\_b\%c\\%`, `exact`}, got)
	for _, bad := range [][]string{{}, {"*"}, {"**"}, {"a*b"}, {""}} {
		_, err := actionPatterns("R", bad)
		require.Error(t, err, bad)
	}
}

func TestWorkforceActivityReport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := setup(t, Config{})
	login := reportEvent(0, "auth.login", StatusSuccess, "dr-1", "", "")
	login.DataClassification = ClassificationInternal
	_, err := c.InsertBatch(ctx, []Event{
		login,
		reportEvent(1, "fhir.patient.read", StatusSuccess, "dr-1", "Patient", "p-1"),
		reportEvent(2, "fhir.patient.read", StatusSuccess, "dr-1", "Patient", "p-2"),
		reportEvent(3, "fhir.patient.read", StatusFailure, "dr-1", "Patient", "p-1"),
		reportEvent(4, "fhir.observation.write", StatusSuccess, "dr-1", "Observation", "obs-1"),
		reportEvent(5, "fhir.patient.read", StatusSuccess, "dr-2", "Patient", "p-3"), // someone else
	})
	require.NoError(t, err)

	rep, err := c.WorkforceActivityReport(ctx, ActivityReportRequest{PrincipalID: "dr-1", From: baseTime, To: baseTime.Add(time.Minute)})
	require.NoError(t, err)
	require.Equal(t, "activity", rep.Kind)
	require.Equal(t, []any{"auth.login", "fhir.patient.read", "fhir.patient.read", "fhir.patient.read", "fhir.observation.write"}, column(rep, "action"))
	require.Equal(t, []any{nil, "p-1", "p-2", "p-1", "obs-1"}, column(rep, "target_resource_id"))
	require.Equal(t, map[string]any{"events": 5, "phi_events": 4, "patients": 2, "resources": 3, "failures": 1}, summary(rep))
	require.Equal(t, [][]any{
		{"auth.login", 1, 0, 0},
		{"fhir.observation.write", 1, 0, 0},
		{"fhir.patient.read", 3, 2, 1},
	}, rep.Sections[0].Rows)
	require.Equal(t, [][]any{
		{"p-1", 2, baseTime.Add(time.Second), baseTime.Add(3 * time.Second)},
		{"p-2", 1, baseTime.Add(2 * time.Second), baseTime.Add(2 * time.Second)},
	}, rep.Sections[1].Rows)
}

func TestIntegrityAttestation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, db := setup(t, Config{})

	verdict := func(req AttestationRequest) (*Report, any) {
		t.Helper()
		rep, err := c.IntegrityAttestation(ctx, req)
		require.NoError(t, err)
		return rep, summary(rep)["verdict"]
	}
	rep, v := verdict(AttestationRequest{})
	require.Equal(t, VerdictUnverified, v)
	require.Len(t, rep.Rows, 16)
	require.Contains(t, rep.Statement, "Verdict UNVERIFIED. NO VERIFICATION HAS RUN")

	events := make([]Event, 40)
	for i := range events {
		events[i] = validEvent(i)
	}
	_, err := c.InsertBatch(ctx, events)
	require.NoError(t, err)
	_, v = verdict(AttestationRequest{})
	require.Equal(t, VerdictUnverified, v)

	run, err := verifier.Verify(ctx, db.Pool, verifier.Options{})
	require.NoError(t, err)
	require.True(t, run.Intact())
	rep, v = verdict(AttestationRequest{})
	require.Equal(t, VerdictIntact, v)
	s := summary(rep)
	require.Equal(t, run.RunID, s["last_run_id"])
	require.Equal(t, int64(40), s["last_run_rows_checked"])
	require.Equal(t, 16, s["last_run_chains"])
	require.Equal(t, int64(0), s["open_findings"])
	require.Equal(t, int64(40), s["unsealed_rows"], "no checkpoints yet")
	require.Empty(t, rep.Sections[0].Rows)
	require.Contains(t, rep.Integrity, fmt.Sprintf("newest verification run %d intact", run.RunID))

	_, v = verdict(AttestationRequest{MaxAge: time.Nanosecond})
	require.Equal(t, VerdictStale, v)

	_, err = db.Pool.Exec(ctx, `BEGIN; SET LOCAL session_replication_role = replica;
		UPDATE audit.audit_log SET outcome_description = 'changed' WHERE id = 7; COMMIT`)
	require.NoError(t, err)
	run, err = verifier.Verify(ctx, db.Pool, verifier.Options{})
	require.NoError(t, err)
	require.False(t, run.Intact())
	var chain int16
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT chain_id FROM audit.audit_log WHERE id = 7`).Scan(&chain))
	_, err = db.Pool.Exec(ctx, `INSERT INTO audit.archive_manifests (chain_id, first_seq, last_seq, end_hash, row_count,
		archive_uri, archive_sha256, key_id, mac) VALUES (3, 1, 10, repeat('a', 64), 10, 'file:///a', repeat('b', 64), 'k', 'm')`)
	require.NoError(t, err)

	rep, v = verdict(AttestationRequest{MaxAge: time.Nanosecond})
	require.Equal(t, VerdictTampered, v, "tampering outranks staleness")
	require.Equal(t, [][]any{{run.RunID, chain, run.Findings[0].ChainSeq, int64(7), "row_modified", run.Findings[0].Detail}}, rep.Sections[0].Rows)
	require.Equal(t, int64(1), summary(rep)["open_findings"])
	require.Equal(t, int64(1), summary(rep)["archive_manifests"])
	require.Equal(t, int64(10), summary(rep)["archived_rows"])
	require.Equal(t, []any{int16(3), int64(1), int64(1), int64(10), int64(10)}, rep.Sections[1].Rows[0][:5])
	require.Equal(t, "tampered", rep.Rows[chain][9])
	require.Contains(t, rep.Integrity, "1 tampered")
	for _, f := range []ReportFormat{ReportTable, ReportJSON, ReportHTML} {
		require.Contains(t, renderReport(t, rep, f), "Verdict TAMPERED", f)
	}
	require.Contains(t, renderReport(t, rep, ReportCSV), ",tampered\n", "CSV holds the chains")
}

func TestReportRequestValidation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := setup(t, Config{})
	t0 := baseTime
	for _, tc := range []struct {
		name string
		run  func() error
		want string
	}{
		{"access without id", func() error { _, err := c.AccessReport(ctx, AccessReportRequest{}); return err },
			"client: AccessReportRequest.TargetResourceID: required"},
		{"access To before From", func() error {
			_, err := c.AccessReport(ctx, AccessReportRequest{TargetResourceID: "x", From: t0, To: t0.Add(-time.Second)})
			return err
		}, "client: AccessReportRequest.To: must be after AccessReportRequest.From"},
		{"access From after the default To", func() error {
			_, err := c.AccessReport(ctx, AccessReportRequest{TargetResourceID: "x", From: time.Now().Add(time.Hour)})
			return err
		}, "client: AccessReportRequest.From: must be before To (To defaults to now)"},
		{"access MaxRows", func() error {
			_, err := c.AccessReport(ctx, AccessReportRequest{TargetResourceID: "x", MaxRows: ReportMaxRowsLimit + 1})
			return err
		}, "client: AccessReportRequest.MaxRows: must be between 0"},
		{"access From out of range", func() error {
			_, err := c.AccessReport(ctx, AccessReportRequest{TargetResourceID: "x", From: time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC)})
			return err
		}, "client: AccessReportRequest.From: out of range"},
		{"activity without principal", func() error {
			_, err := c.WorkforceActivityReport(ctx, ActivityReportRequest{})
			return err
		}, "client: ActivityReportRequest.PrincipalID: required"},
		{"disclosure actions empty", func() error {
			_, err := c.DisclosureReport(ctx, DisclosureReportRequest{Actions: []string{}})
			return err
		}, "client: DisclosureReportRequest.Actions: must not be empty"},
		{"disclosure bad pattern", func() error {
			_, err := c.DisclosureReport(ctx, DisclosureReportRequest{Actions: []string{"a.*.b"}})
			return err
		}, "client: DisclosureReportRequest.Actions[0]: must be an action"},
		{"attestation MaxAge", func() error {
			_, err := c.IntegrityAttestation(ctx, AttestationRequest{MaxAge: -time.Second})
			return err
		}, "client: AttestationRequest.MaxAge: must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestReportsAsReader runs every report as a login role in audit_reader,
// the role auditors' tools get.
func TestReportsAsReader(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, db := setup(t, Config{})
	reader, err := NewWithConfig(ctx, Config{URL: db.LoginRole(t, "audit_reader").Config().ConnString()})
	require.NoError(t, err)
	t.Cleanup(reader.Close)
	_, err = reader.AccessReport(ctx, AccessReportRequest{TargetResourceID: "p"})
	require.NoError(t, err)
	_, err = reader.DisclosureReport(ctx, DisclosureReportRequest{})
	require.NoError(t, err)
	_, err = reader.WorkforceActivityReport(ctx, ActivityReportRequest{PrincipalID: "p"})
	require.NoError(t, err)
	_, err = reader.IntegrityAttestation(ctx, AttestationRequest{})
	require.NoError(t, err)
}

// An access report on one patient's record for January, written as a
// printable HTML page for an auditor. (It needs a database, so it has no
// checked output.)
func ExampleClient_AccessReport() {
	ctx := context.Background()
	c, err := New(ctx, "") // AUDIT_DB_URL
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	rep, err := c.AccessReport(ctx, AccessReportRequest{
		TargetResourceType: "Patient",
		TargetResourceID:   "patient-456",
		From:               time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC),
		To:                 time.Date(2026, time.February, 1, 0, 0, 0, 0, time.UTC),
	})
	if errors.Is(err, ErrReportTooLarge) {
		log.Fatal("narrow the period or raise MaxRows: ", err)
	}
	if err != nil {
		log.Fatal(err)
	}
	f, err := os.OpenFile("access-patient-456.html", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600) // PHI
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if err := rep.Render(f, ReportHTML); err != nil {
		log.Fatal(err)
	}
}
