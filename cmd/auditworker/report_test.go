package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/client"
	"github.com/auditdb/auditdb/tests/harness"
)

const script = `<script>alert(1)</script>`

// reportTime is a fixed instant an hour ago, to the second, so --from and
// --to can name it.
var reportTime = time.Now().UTC().Add(-time.Hour).Truncate(time.Second)

// seedReports inserts known events through the Go client.
func seedReports(t *testing.T, db *harness.DB) {
	t.Helper()
	ctx := context.Background()
	c, err := client.New(ctx, db.URL)
	require.NoError(t, err)
	defer c.Close()
	at := func(s int) time.Time { return reportTime.Add(time.Duration(s) * time.Second) }
	for _, e := range []client.Event{
		{Timestamp: at(1), Action: "fhir.patient.read", Status: client.StatusSuccess, PrincipalID: "dr-1",
			TargetResourceType: "Patient", TargetResourceID: "patient-x", DataClassification: client.ClassificationPHI},
		{Timestamp: at(2), Action: "fhir.patient.read", Status: client.StatusFailure, PrincipalID: "=1+2",
			TargetResourceType: "Patient", TargetResourceID: "patient-x", DataClassification: client.ClassificationPHI,
			OutcomeDescription: script},
		{Timestamp: at(3), Action: "ehr.record.disclose", Status: client.StatusSuccess, PrincipalID: "dr-1",
			TargetResourceType: "Patient", TargetResourceID: "patient-x", DataClassification: client.ClassificationPHI,
			Details: map[string]any{"recipient": "Acme Insurance", "purpose": "payment"}},
		{Timestamp: at(4), Action: "fhir.patient.read", Status: client.StatusSuccess, PrincipalID: "dr-1",
			TargetResourceType: "Patient", TargetResourceID: "patient-y", DataClassification: client.ClassificationPHI},
	} {
		_, err := c.Insert(ctx, e)
		require.NoError(t, err)
	}
}

func TestReportCommands(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	seedReports(t, db)
	from, to := reportTime.Format(time.RFC3339), reportTime.Add(time.Minute).Format(time.RFC3339)
	access := []string{"--database-url", db.URL, "report", "access", "--resource-id", "patient-x", "--from", from, "--to", to}

	code, out, errOut := run(t, append(access, "--json")...)
	require.Equal(t, 0, code, errOut)
	var rep struct {
		Kind    string           `json:"kind"`
		Rows    []map[string]any `json:"rows"`
		Summary map[string]any   `json:"summary"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Equal(t, "access", rep.Kind)
	require.Len(t, rep.Rows, 3)
	require.Equal(t, []any{"dr-1", "=1+2", "dr-1"}, []any{rep.Rows[0]["principal_id"], rep.Rows[1]["principal_id"], rep.Rows[2]["principal_id"]})
	require.Equal(t, script, rep.Rows[1]["outcome_description"])
	require.Equal(t, map[string]any{"events": 3.0, "principals": 2.0, "success": 2.0, "failure": 1.0, "attempt": 0.0,
		"erased_principal_events": 0.0}, rep.Summary)

	code, out, _ = run(t, append(access, "--format", "csv")...)
	require.Equal(t, 0, code)
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 6, "header, 3 rows, generated_at and integrity")
	require.Equal(t, "'=1+2", recs[2][2], "formula defused")
	require.Equal(t, "# integrity", recs[5][0])
	require.Contains(t, recs[5][1], "16 chains: ")

	code, out, _ = run(t, access...)
	require.Equal(t, 0, code)
	require.Contains(t, out, "Access report")
	require.Contains(t, out, "Integrity at generation: 16 chains")

	file := filepath.Join(t.TempDir(), "access.html")
	require.NoError(t, os.WriteFile(file, []byte("old"), 0o644))
	code, out, _ = run(t, append(access, "--format", "html", "--out", file)...)
	require.Equal(t, 0, code)
	require.Equal(t, "access report (html, 3 rows) written to "+file+"\n", out)
	st, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "reports hold PHI, even over a file readable by others")
	left, err := os.ReadDir(filepath.Dir(file))
	require.NoError(t, err)
	require.Len(t, left, 1, "no temporary file left")
	html, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NotContains(t, string(html), script)
	require.Contains(t, string(html), "&lt;script&gt;alert(1)&lt;/script&gt;")

	code, out, errOut = run(t, "--database-url", db.URL, "report", "disclosures", "--resource-id", "patient-x",
		"--to", reportTime.Add(time.Minute).Format(time.RFC3339), "--json")
	require.Equal(t, 0, code, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Len(t, rep.Rows, 1)
	require.Equal(t, "Acme Insurance", rep.Rows[0]["recipient"])
	require.Equal(t, "payment", rep.Rows[0]["purpose"])
	code, out, _ = run(t, "--database-url", db.URL, "report", "disclosures", "--action", "*.read", "--json")
	require.Equal(t, 0, code)
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Len(t, rep.Rows, 2, "the default --to is now; a failed read is no disclosure")

	code, out, errOut = run(t, "--database-url", db.URL, "report", "activity", "--principal", "dr-1", "--format", "json")
	require.Equal(t, 0, code, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Equal(t, 3.0, rep.Summary["events"])
	require.Equal(t, 2.0, rep.Summary["patients"])

	// a date --to includes the day
	day := reportTime.Format(time.DateOnly)
	code, out, _ = run(t, "--database-url", db.URL, "report", "activity", "--principal", "dr-1", "--from", day, "--to", day, "--json")
	require.Equal(t, 0, code)
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Equal(t, 3.0, rep.Summary["events"])

	code, _, errOut = run(t, append(access, "--max-rows", "2")...)
	require.Equal(t, 1, code)
	require.Equal(t, "auditworker: max-rows: the access report would hold more than 2 rows: narrow --from/--to or raise --max-rows (at most 1000000)\n", errOut)
	require.NotContains(t, errOut, "MaxRows", "the command line names its flag, not the Go field")
}

func TestReportAttestationExitCodes(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	seedReports(t, db)
	ctx := context.Background()

	attest := func() (int, map[string]any) {
		t.Helper()
		code, out, errOut := run(t, "--database-url", db.URL, "report", "attestation", "--json")
		var rep struct {
			Summary map[string]any `json:"summary"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &rep), errOut)
		return code, rep.Summary
	}
	code, s := attest()
	require.Equal(t, 0, code)
	require.Equal(t, "UNVERIFIED", s["verdict"])

	code, _, _ = run(t, "--database-url", db.URL, "verify")
	require.Equal(t, 0, code)
	code, s = attest()
	require.Equal(t, 0, code)
	require.Equal(t, "INTACT", s["verdict"])
	require.Equal(t, 4.0, s["last_run_rows_checked"])
	code, out, _ := run(t, "--database-url", db.URL, "report", "attestation", "--max-age", "1ns")
	require.Equal(t, 0, code)
	require.Contains(t, out, "Verdict STALE")

	_, err := db.Pool.Exec(ctx, `BEGIN; SET LOCAL session_replication_role = replica;
		UPDATE audit.audit_log SET principal_id = 'mallory' WHERE id = 2; COMMIT`)
	require.NoError(t, err)
	code, _, _ = run(t, "--database-url", db.URL, "verify")
	require.Equal(t, 2, code)
	code, s = attest()
	require.Equal(t, 2, code, "TAMPERED exits 2, as verify does")
	require.Equal(t, "TAMPERED", s["verdict"])
	require.Equal(t, 1.0, s["open_findings"])
}

func TestReportFlagErrors(t *testing.T) {
	t.Parallel()
	noDB := "postgres://nobody@127.0.0.1:1/x?connect_timeout=2"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"access"}, "resource-id: required"},
		{[]string{"access", "--resource-id", "x", "--from", "2026-02-01", "--to", "2026-01-01"}, "to: must be after from (from 2026-02-01, to 2026-01-01)"},
		{[]string{"access", "--resource-id", "x", "--from", "2026-02-01T00:00:00Z", "--to", "2026-02-01T00:00:00Z"}, "to: must be after from"},
		{[]string{"access", "--resource-id", "x", "--from", "yesterday"}, "from: not a time: use 2006-01-02 or RFC 3339"},
		{[]string{"activity", "--principal", "p", "--to", "2026-13-01"}, "to: not a time"},
		{[]string{"access", "--resource-id", "x", "--format", "pdf"}, "format: must be one of table, json, csv, html"},
		{[]string{"access", "--resource-id", "x", "--format", "csv", "--json"}, "json: conflicts with --format csv"},
		{[]string{"access", "--resource-id", "x", "--max-rows", "0"}, "max-rows: must be between 1 and 1000000"},
		{[]string{"access", "--resource-id", "x", "--max-rows", "abc"}, `invalid value "abc" for flag -max-rows`},
		{[]string{"access", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"activity"}, "principal: required"},
		{[]string{"attestation", "--max-age", "-1s"}, "max-age: must be positive"},
		{[]string{"attestation"}, "connect to 127.0.0.1:1/x"},
	} {
		code, out, errOut := run(t, append([]string{"--database-url", noDB, "report"}, tc.args...)...)
		require.Equal(t, 1, code, tc.args)
		require.Contains(t, errOut, tc.want, tc.args)
		require.Equal(t, 1, strings.Count(strings.TrimSpace(errOut), "\n")+1, "one line: %q", errOut)
		require.Empty(t, out, "nothing on stdout: %v", tc.args)
	}

	db := harness.NewDB(t)
	code, _, errOut := run(t, "--database-url", db.URL, "report", "disclosures", "--action", "a*b")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "Actions[0]: must be an action, with * only at its start or end")
	code, _, errOut = run(t, "--database-url", db.URL, "report", "access", "--resource-id", "x", "--out", filepath.Join(t.TempDir(), "no", "such", "dir"))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "out: open")
}
