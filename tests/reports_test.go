package tests

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/client"
	"github.com/auditdb/auditdb/workers"
)

// reportIDs returns the event ids of a report's main table.
func reportIDs(t *testing.T, rep *client.Report) []int64 {
	t.Helper()
	i := slices.IndexFunc(rep.Columns, func(c client.ReportColumn) bool { return c.Key == "event_id" })
	require.GreaterOrEqual(t, i, 0)
	ids := make([]int64, len(rep.Rows))
	for j, row := range rep.Rows {
		ids[j] = row[i].(int64)
	}
	return ids
}

func reportField(fields []client.ReportField, key string) any {
	for _, f := range fields {
		if f.Key == key {
			return f.Value
		}
	}
	return "no field " + key
}

// exportIDs returns the ids of the events a GDPR JSON export of sub holds.
func exportIDs(t *testing.T, c *client.Client, sub client.Subject) []int64 {
	t.Helper()
	var buf bytes.Buffer
	_, err := c.ExportSubject(context.Background(), sub, client.ExportJSON, &buf)
	require.NoError(t, err)
	var doc struct {
		Events []client.ExportedEvent `json:"events"`
	}
	require.NoError(t, json.Unmarshal(buf.Bytes(), &doc))
	ids := make([]int64, len(doc.Events))
	for i, e := range doc.Events {
		ids[i] = e.Event.ID
	}
	return ids
}

// With write-time pseudonymisation on for one organization, the activity
// report of a clinician finds the events stored under their pseudonym,
// exactly the events a GDPR export of them finds, when its role may
// resolve pseudonyms; made by a reader it leaves them out and says so.
// A patient erased under GDPR is not counted as a patient.
func TestActivityReportFindsPseudonymisedEvents(t *testing.T) {
	t.Parallel()
	b := setupGDPR(t)
	ctx := context.Background()
	// org-1 pseudonymises; org-2 does not: dr-who has events stored under
	// a pseudonym and events stored under their own id
	require.NoError(t, b.client.EnablePseudonymisation(ctx, "org-1"))
	b.subjectEvents(t, 100) // org-1: 10 events by dr-who, 10 on patient-42
	_, err := b.client.InsertBatch(ctx, []client.Event{
		{Timestamp: time.Now().UTC().Add(-time.Second), Action: "fhir.patient.read", Status: client.StatusSuccess,
			PrincipalID: "dr-who", OrganizationID: "org-2", TargetResourceType: "Patient", TargetResourceID: "patient-42",
			DataClassification: client.ClassificationPHI},
		{Timestamp: time.Now().UTC().Add(-time.Second), Action: "fhir.patient.read", Status: client.StatusSuccess,
			PrincipalID: "dr-who", OrganizationID: "org-2", TargetResourceType: "Patient", TargetResourceID: "patient-7",
			DataClassification: client.ClassificationPHI},
	})
	require.NoError(t, err)
	var psn string
	require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT pseudonym FROM audit.pseudonyms WHERE principal_id = 'dr-who'`).Scan(&psn))

	req := client.ActivityReportRequest{PrincipalID: "dr-who", From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Minute)}
	rep, err := b.client.WorkforceActivityReport(ctx, req)
	require.NoError(t, err)
	require.Len(t, rep.Rows, 12, "10 under the pseudonym, 2 under the id")
	require.Equal(t, exportIDs(t, b.client, drWho), reportIDs(t, rep), "the report and the GDPR export select the same events")
	require.Equal(t, true, reportField(rep.Parameters, "pseudonyms_resolved"))
	require.Equal(t, 1, reportField(rep.Parameters, "pseudonyms"))
	require.Equal(t, 10, reportField(rep.Summary, "pseudonymised_events"))
	recorded := map[any]int{}
	for _, row := range rep.Rows {
		recorded[row[2]]++
	}
	require.Equal(t, map[any]int{psn: 10, "dr-who": 2}, recorded)

	// the privacy officer gets the same report; a reader gets the events
	// under the id only, and the report says what it leaves out
	// a privacy officer who also reads the log (the officer role alone
	// reads the mapping, not the log)
	officerPool := b.db.LoginRole(t, "audit_privacy_officer")
	_, err = b.db.Pool.Exec(ctx, `GRANT audit_reader TO `+pgx.Identifier{officerPool.Config().ConnConfig.User}.Sanitize())
	require.NoError(t, err)
	officer, err := client.NewWithConfig(ctx, client.Config{URL: officerPool.Config().ConnString()})
	require.NoError(t, err)
	t.Cleanup(officer.Close)
	officerRep, err := officer.WorkforceActivityReport(ctx, req)
	require.NoError(t, err)
	require.Equal(t, reportIDs(t, rep), reportIDs(t, officerRep))

	reader, err := client.NewWithConfig(ctx, client.Config{URL: b.db.LoginRole(t, "audit_reader").Config().ConnString()})
	require.NoError(t, err)
	t.Cleanup(reader.Close)
	readerRep, err := reader.WorkforceActivityReport(ctx, req)
	require.NoError(t, err)
	require.Len(t, readerRep.Rows, 2)
	require.Equal(t, false, reportField(readerRep.Parameters, "pseudonyms_resolved"))
	require.True(t, strings.HasPrefix(readerRep.Notes[0], "INCOMPLETE FOR PSEUDONYMISED ORGANIZATIONS"), readerRep.Notes[0])
	var html bytes.Buffer
	require.NoError(t, readerRep.Render(&html, client.ReportHTML))
	require.Contains(t, html.String(), "INCOMPLETE FOR PSEUDONYMISED ORGANIZATIONS")

	// patient-42 is erased: dr-who's events on them stay in the report,
	// but the token is no patient
	require.Equal(t, 7, reportField(rep.Summary, "patients"), "before: patient-42, patient-7 and 5 others")
	b.seal(t)
	id, err := b.client.RequestErasure(ctx, patient42, "request")
	require.NoError(t, err)
	_, err = b.deps.Erase(ctx, id, nil)
	require.NoError(t, err)
	rep, err = b.client.WorkforceActivityReport(ctx, req)
	require.NoError(t, err)
	require.Len(t, rep.Rows, 12)
	require.Equal(t, 6, reportField(rep.Summary, "patients"), "the erased patient's token is not a patient")
	require.Equal(t, 1, reportField(rep.Summary, "erased_patient_events"))
	for _, row := range rep.Sections[1].Rows {
		require.NotContains(t, row[0], "erased_", "no token in Events by patient")
	}

	// the access report of patient-7 counts dr-who once; after dr-who is
	// erased, their token is not a principal
	access, err := b.client.AccessReport(ctx, client.AccessReportRequest{TargetResourceID: "patient-7", From: req.From, To: req.To})
	require.NoError(t, err)
	require.Equal(t, 1, reportField(access.Summary, "principals"))
	id, err = b.client.RequestErasure(ctx, drWho, "request")
	require.NoError(t, err)
	_, err = b.deps.Erase(ctx, id, nil)
	require.NoError(t, err)
	access, err = b.client.AccessReport(ctx, client.AccessReportRequest{TargetResourceID: "patient-7", From: req.From, To: req.To})
	require.NoError(t, err)
	require.Len(t, access.Rows, 1)
	require.Equal(t, 0, reportField(access.Summary, "principals"))
	require.Equal(t, 1, reportField(access.Summary, "erased_principal_events"))
	require.Empty(t, access.Sections[0].Rows)

	// CSV ends with the integrity status, as every format does
	var out bytes.Buffer
	require.NoError(t, access.Render(&out, client.ReportCSV))
	recs, err := csv.NewReader(&out).ReadAll()
	require.NoError(t, err)
	last := recs[len(recs)-1]
	require.Equal(t, "# integrity", last[0])
	require.Equal(t, access.Integrity, last[1])
	require.Equal(t, "# generated_at", recs[len(recs)-2][0])
}

// A GDPR export made before the next seal flags the proofs no checkpoint
// covers, per event and in the summary and notes; after a seal none is.
// Its events use the columns' snake_case names, like its proofs.
func TestExportFlagsUnsealedProofs(t *testing.T) {
	t.Parallel()
	b := setupGDPR(t)
	ctx := context.Background()
	b.subjectEvents(t, 20) // 2 events of dr-who
	b.seal(t)
	b.subjectEvents(t, 10) // 1 more, after the seal

	var buf bytes.Buffer
	sum, err := b.client.ExportSubject(ctx, drWho, client.ExportJSON, &buf)
	require.NoError(t, err)
	require.EqualValues(t, 3, sum.Events)
	require.EqualValues(t, 1, sum.Unsealed)
	var doc struct {
		Events []map[string]any `json:"events"`
		Notes  []string         `json:"notes"`
		Sum    map[string]any   `json:"summary"`
	}
	require.NoError(t, json.Unmarshal(buf.Bytes(), &doc))
	require.Len(t, doc.Events, 3)
	statuses := []any{}
	for _, e := range doc.Events {
		statuses = append(statuses, e["proof_status"])
		ev := e["event"].(map[string]any)
		for k := range ev {
			require.Equal(t, strings.ToLower(k), k, "snake_case keys only")
		}
		require.Equal(t, "dr-who", ev["principal_id"])
		require.Contains(t, ev, "chain_id")
		require.Contains(t, ev, "action")
	}
	require.Equal(t, []any{"sealed", "sealed", "not yet sealed"}, statuses)
	require.EqualValues(t, 1, doc.Sum["unsealed_proofs"])
	require.Len(t, doc.Notes, 1)
	require.Contains(t, doc.Notes[0], "not yet sealed: 1 of the events")
	require.Contains(t, doc.Notes[0], "auditworker seal")

	buf.Reset()
	_, err = b.client.ExportSubject(ctx, drWho, client.ExportCSV, &buf)
	require.NoError(t, err)
	recs, err := csv.NewReader(&buf).ReadAll()
	require.NoError(t, err)
	col := slices.Index(recs[0], "proof_status")
	require.Equal(t, []string{"sealed", "sealed", "not yet sealed"}, []string{recs[1][col], recs[2][col], recs[3][col]})

	// the worker's seal: only chains whose head moved
	_, err = b.deps.Seal(ctx, workers.SealOptions{})
	require.NoError(t, err)
	buf.Reset()
	sum, err = b.client.ExportSubject(ctx, drWho, client.ExportJSON, &buf)
	require.NoError(t, err)
	require.Zero(t, sum.Unsealed)
	require.NoError(t, json.Unmarshal(buf.Bytes(), &doc))
	require.Empty(t, doc.Notes)
}
