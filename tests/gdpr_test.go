package tests

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/cache"
	"github.com/auditdb/auditdb/client"
	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/verifier"
	"github.com/auditdb/auditdb/monitor"
	"github.com/auditdb/auditdb/tests/harness"
	"github.com/auditdb/auditdb/workers"
)

// The subjects of these tests: a patient as the resource acted on, a
// clinician as the principal.
var (
	patient42 = client.Subject{ResourceType: "Patient", ResourceID: "patient-42"}
	drWho     = client.Subject{PrincipalID: "dr-who"}
)

type gdprBundle struct {
	db     *harness.DB
	client *client.Client
	deps   *workers.Deps
	keys   *integrity.SealKeys
}

func setupGDPR(t *testing.T) *gdprBundle {
	t.Helper()
	db := harness.NewDB(t)
	c, err := client.New(context.Background(), db.URL)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	k, err := integrity.GenerateSealKey("k1")
	require.NoError(t, err)
	keys, err := integrity.ParseSealKeys(k, "")
	require.NoError(t, err)
	return &gdprBundle{db: db, client: c, keys: keys, deps: &workers.Deps{Pool: db.Pool, Keys: keys}}
}

// subjectEvents writes events in which "patient-42" is the target, "dr-who"
// the principal, and others in which neither appears.
func (b *gdprBundle) subjectEvents(t *testing.T, n int) {
	t.Helper()
	events := make([]client.Event, 0, n)
	for i := range n {
		e := client.Event{
			Timestamp: time.Now().UTC().Add(-time.Duration(n-i) * time.Second), Action: "fhir.patient.read",
			Status: client.StatusSuccess, PrincipalID: fmt.Sprintf("dr-%d", i%5), PrincipalType: "practitioner",
			OrganizationID: "org-1", TargetResourceType: "Patient", TargetResourceID: fmt.Sprintf("patient-%d", 100+i%50),
			SourceIP: netip.MustParseAddr("10.1.2.3"), OutcomeDescription: "chart opened",
			Details: map[string]any{"note": "follow-up"}, DataClassification: client.ClassificationPHI,
		}
		switch i % 10 {
		case 0:
			e.TargetResourceID = "patient-42"
			e.OutcomeDescription = "chart of patient-42 opened"
			e.Details = map[string]any{"patient": "patient-42"}
		case 1:
			e.PrincipalID = "dr-who"
			e.Action = "fhir.observation.create"
		}
		events = append(events, e)
	}
	_, err := b.client.InsertBatch(context.Background(), events)
	require.NoError(t, err)
}

// seal writes a checkpoint at each chain head, as the seal job does.
func (b *gdprBundle) seal(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	id, key, err := b.keys.ActiveKey()
	require.NoError(t, err)
	rows, err := b.db.Pool.Query(ctx, `SELECT chain_id, head_seq, encode(head_hash, 'hex'), now() FROM audit.chain_heads WHERE head_seq > 0`)
	require.NoError(t, err)
	type head struct {
		c    int16
		s    int64
		h    string
		when time.Time
	}
	var heads []head
	for rows.Next() {
		var h head
		require.NoError(t, rows.Scan(&h.c, &h.s, &h.h, &h.when))
		heads = append(heads, h)
	}
	require.NoError(t, rows.Err())
	for _, h := range heads {
		_, err := b.db.Pool.Exec(ctx, `INSERT INTO audit.integrity_checkpoints (chain_id, chain_seq, hash, sealed_at, key_id, mac)
			VALUES ($1, $2, $3, $4, $5, $6)`, h.c, h.s, h.h, h.when, id, integrity.CheckpointMAC(key, h.c, h.s, h.h, h.when.UnixMicro()))
		require.NoError(t, err)
	}
}

func (b *gdprBundle) verifyWithKeys(t *testing.T) *integrity.Report {
	t.Helper()
	return verify(t, b.db.Pool, verifier.Options{Keys: b.keys.Ring, NoRecord: true})
}

// occurrences counts rows of every audit table whose text holds s.
func occurrences(t *testing.T, pool *pgxpool.Pool, s string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"audit.audit_log", "audit.erasure_requests", "audit.pseudonyms", "audit.redactions", "audit.verification_findings"} {
		var n int
		require.NoError(t, pool.QueryRow(context.Background(),
			`SELECT count(*) FROM `+table+` t WHERE strpos(row_to_json(t)::text, $1) > 0`, s).Scan(&n))
		if n > 0 {
			out[table] = n
		}
	}
	return out
}

func TestErasureKeepsVerificationIntact(t *testing.T) {
	t.Parallel()
	b := setupGDPR(t)
	ctx := context.Background()
	b.subjectEvents(t, 1200) // 120 rows name patient-42: more than one erasure batch is not needed, 3 are
	b.seal(t)
	require.True(t, b.verifyWithKeys(t).Intact())

	id, err := b.client.RequestErasure(ctx, patient42, "data subject request #1")
	require.NoError(t, err)
	var progressed []int64
	res, err := b.deps.Erase(ctx, id, func(done, total int64) { progressed = append(progressed, done) })
	require.NoError(t, err)
	require.EqualValues(t, 120, res.Rows)
	require.Equal(t, []string{"org-1"}, res.Organizations)
	require.NotEmpty(t, progressed)

	rep := b.verifyWithKeys(t)
	require.True(t, rep.Intact(), "findings: %+v", rep.Findings)
	requireIntact(t, b.db.Pool)

	// gone from every table; through the indexes too
	require.Empty(t, occurrences(t, b.db.Pool, "patient-42"))
	tx, err := b.db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	_, err = tx.Exec(ctx, `SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off`)
	require.NoError(t, err)
	var n int
	require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log WHERE target_resource_type = 'Patient' AND target_resource_id = 'patient-42'`).Scan(&n))
	require.Zero(t, n)
	require.NoError(t, tx.Rollback(ctx))

	// the token stands in for the subject, the same in every row
	require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log WHERE target_resource_id = $1 AND pii_salt IS NULL`, res.Token).Scan(&n))
	require.Equal(t, 120, n)
	require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.redactions`).Scan(&n))
	require.Equal(t, 120, n)
	st, err := b.client.ErasureStatus(ctx, id)
	require.NoError(t, err)
	require.Equal(t, "done", st.Status)
	require.EqualValues(t, 120, st.RowsDone)

	// what erasure left is sealed: changing it afterwards (say, who looked at
	// the erased patient's chart) is found, though the salt is gone
	var erasedRow int64
	require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT id FROM audit.audit_log WHERE target_resource_id = $1 ORDER BY id LIMIT 1`, res.Token).Scan(&erasedRow))
	_, err = b.db.Pool.Exec(ctx, fmt.Sprintf(`BEGIN; SET LOCAL auditdb.maintenance = 'erasure';
		UPDATE audit.audit_log SET principal_id = 'dr-innocent' WHERE id = %d; COMMIT`, erasedRow))
	require.NoError(t, err)
	rep = b.verifyWithKeys(t)
	require.Len(t, rep.Findings, 1)
	require.Equal(t, integrity.UnauthorizedRedaction, rep.Findings[0].Kind)
	require.Equal(t, erasedRow, rep.Findings[0].RowID)
	_, err = b.db.Pool.Exec(ctx, fmt.Sprintf(`BEGIN; SET LOCAL auditdb.maintenance = 'erasure';
		UPDATE audit.audit_log SET principal_id = 'dr-0' WHERE id = %d; COMMIT`, erasedRow))
	require.NoError(t, err)

	// again: nothing left to do, nothing changes
	res, err = b.deps.Erase(ctx, id, nil)
	require.NoError(t, err)
	require.Equal(t, "done", res.Status)

	// an export for the subject finds nothing now
	var buf bytes.Buffer
	sum, err := b.client.ExportSubject(ctx, patient42, client.ExportJSON, &buf)
	require.NoError(t, err)
	require.Zero(t, sum.Events)
}

func TestErasureResumesAfterInterruption(t *testing.T) {
	t.Parallel()
	b := setupGDPR(t)
	b.subjectEvents(t, 6000) // 600 rows of patient-42: two batches
	b.seal(t)
	id, err := b.client.RequestErasure(context.Background(), patient42, "request")
	require.NoError(t, err)

	// The first batch commits, then the job dies (its context is cancelled
	// while it works on the second).
	ctx, cancel := context.WithCancel(context.Background())
	_, err = b.deps.Erase(ctx, id, func(done, total int64) { cancel() })
	require.Error(t, err)
	st, err := b.client.ErasureStatus(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, "running", st.Status)
	require.EqualValues(t, 500, st.RowsDone)
	require.True(t, b.verifyWithKeys(t).Intact(), "a half-done erasure verifies too")

	// the periodic sweep finishes it
	require.NoError(t, b.deps.ProcessErasures(context.Background()))
	st, err = b.client.ErasureStatus(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, "done", st.Status)
	require.EqualValues(t, 600, st.RowsDone)
	require.EqualValues(t, 600, st.RowsTotal)
	require.Empty(t, occurrences(t, b.db.Pool, "patient-42"))
	require.True(t, b.verifyWithKeys(t).Intact())
}

func TestLegalHoldBlocksErasure(t *testing.T) {
	t.Parallel()
	b := setupGDPR(t)
	ctx := context.Background()
	b.subjectEvents(t, 100)

	for _, h := range []client.LegalHold{
		{Scope: client.HoldOrganization, Value: "org-1", Reason: "litigation 2026-17"},
		{Scope: client.HoldResource, TargetResourceType: "Patient", Value: "patient-42", Reason: "investigation"},
		{Scope: client.HoldSubject, Value: "patient-42", Reason: "regulator order"},
	} {
		hid, err := b.client.PlaceHold(ctx, h)
		require.NoError(t, err)
		_, err = b.client.RequestErasure(ctx, patient42, "request")
		require.ErrorIs(t, err, client.ErrLegalHold, h.Scope)
		require.ErrorContains(t, err, fmt.Sprint(hid))
		require.NoError(t, b.client.ReleaseHold(ctx, hid))
	}
	_, err := b.client.PlaceHold(ctx, client.LegalHold{Scope: client.HoldResource, Value: "x", Reason: "r"})
	require.ErrorContains(t, err, "legal_holds.target_resource_type: required for scope resource")

	// a hold placed after the request stops the job, and the request is refused
	id, err := b.client.RequestErasure(ctx, patient42, "request")
	require.NoError(t, err)
	_, err = b.client.PlaceHold(ctx, client.LegalHold{Scope: client.HoldSubject, Value: "patient-42", Reason: "late hold"})
	require.NoError(t, err)
	_, err = b.deps.Erase(ctx, id, nil)
	require.ErrorIs(t, err, workers.ErrLegalHold)
	st, err := b.client.ErasureStatus(ctx, id)
	require.NoError(t, err)
	require.Equal(t, "refused", st.Status)
	require.Contains(t, st.Error, "legal hold")
	var n int
	require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log WHERE target_resource_id = 'patient-42' AND pii_salt IS NOT NULL`).Scan(&n))
	require.Equal(t, 10, n, "nothing erased")
	holds, err := b.client.Holds(ctx, false)
	require.NoError(t, err)
	require.Len(t, holds, 1)
}

func TestUnauthorizedRedactionIsFound(t *testing.T) {
	t.Parallel()
	b := setupGDPR(t)
	ctx := context.Background()
	b.subjectEvents(t, 50)
	b.seal(t)
	var rowID, seq int64
	var chain int16
	require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT id, chain_id, chain_seq FROM audit.audit_log ORDER BY id LIMIT 1 OFFSET 7`).Scan(&rowID, &chain, &seq))
	// someone with UPDATE rights removes a salt without a sealed record
	_, err := b.db.Pool.Exec(ctx, `BEGIN; SET LOCAL auditdb.maintenance = 'erasure';
		UPDATE audit.audit_log SET pii_salt = NULL WHERE id = `+fmt.Sprint(rowID)+`; COMMIT`)
	require.NoError(t, err)
	rep := b.verifyWithKeys(t)
	require.Len(t, rep.Findings, 1)
	require.Equal(t, integrity.UnauthorizedRedaction, rep.Findings[0].Kind)
	require.Equal(t, rowID, rep.Findings[0].RowID)

	// ... and a redaction record they write without the key does not cover it
	_, err = b.db.Pool.Exec(ctx, `INSERT INTO audit.redactions (row_id, chain_id, chain_seq, reason, key_id, mac)
		VALUES ($1, $2, $3, 'looks legit', 'k1', repeat('0', 64))`, rowID, chain, seq)
	require.NoError(t, err)
	rep = b.verifyWithKeys(t)
	require.Len(t, rep.Findings, 1)
	require.Equal(t, integrity.UnauthorizedRedaction, rep.Findings[0].Kind)
}

func TestSubjectExport(t *testing.T) {
	t.Parallel()
	b := setupGDPR(t)
	ctx := context.Background()
	// 550 events of each subject: more than one export page (500); sealed
	// every 500 rows, as the worker would, so each proof stays short
	for range 11 {
		b.subjectEvents(t, 500)
		b.seal(t)
	}

	var buf bytes.Buffer
	sum, err := b.client.ExportSubject(ctx, drWho, client.ExportJSON, &buf)
	require.NoError(t, err)
	require.EqualValues(t, 550, sum.Events)
	require.EqualValues(t, 550, sum.AsPrincipal)
	require.Equal(t, map[string]int64{"fhir.observation.create": 550}, sum.ByAction)

	var doc struct {
		Events []struct {
			Role  string                 `json:"role"`
			Event client.StoredEvent     `json:"event"`
			Proof *client.InclusionProof `json:"inclusion_proof"`
		} `json:"events"`
		Summary client.ExportSummary `json:"summary"`
	}
	require.NoError(t, json.Unmarshal(buf.Bytes(), &doc))
	require.Len(t, doc.Events, 550)
	require.EqualValues(t, 550, doc.Summary.Events)
	seen := map[int64]bool{}
	for i, e := range doc.Events {
		require.False(t, seen[e.Event.ID], "each event once")
		seen[e.Event.ID] = true
		if i > 0 {
			prev := doc.Events[i-1].Event
			require.True(t, prev.Timestamp.Before(e.Event.Timestamp) || (prev.Timestamp.Equal(e.Event.Timestamp) && prev.ID < e.Event.ID), "oldest first")
		}
		require.Equal(t, "principal", e.Role)
		res, err := client.VerifyInclusionProof(e.Proof, b.keys.Ring)
		require.NoError(t, err)
		require.True(t, res.Sealed && res.MACChecked && res.PIIChecked)
		require.Equal(t, "dr-who", *e.Proof.Row.PrincipalID)
	}

	buf.Reset()
	sum, err = b.client.ExportSubject(ctx, patient42, client.ExportCSV, &buf)
	require.NoError(t, err)
	require.EqualValues(t, 550, sum.AsTarget)
	recs, err := csv.NewReader(&buf).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 551)
	require.Equal(t, "inclusion_proof", recs[0][len(recs[0])-1])
	var p client.InclusionProof
	require.NoError(t, json.Unmarshal([]byte(recs[1][len(recs[1])-1]), &p))
	_, err = client.VerifyInclusionProof(&p, b.keys.Ring)
	require.NoError(t, err)
}

func TestWriteTimePseudonymisation(t *testing.T) {
	t.Parallel()
	b := setupGDPR(t)
	ctx := context.Background()
	require.NoError(t, b.client.EnablePseudonymisation(ctx, "org-1"))
	b.subjectEvents(t, 100)

	var plain int
	require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log WHERE principal_id NOT LIKE 'psn\_%'`).Scan(&plain))
	require.Zero(t, plain, "no principal id reaches the table in the clear")
	requireIntact(t, b.db.Pool)

	// the same principal gets the same pseudonym; only the privacy officer resolves it
	var psn string
	require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT pseudonym FROM audit.pseudonyms WHERE principal_id = 'dr-who'`).Scan(&psn))
	require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log WHERE principal_id = $1`, psn).Scan(&plain))
	require.Equal(t, 10, plain)
	for role, allowed := range map[string]bool{"audit_writer": false, "audit_reader": false, "audit_privacy_officer": true} {
		var got string
		err := b.db.LoginRole(t, role).QueryRow(ctx, `SELECT principal_id FROM audit.pseudonyms WHERE pseudonym = $1`, psn).Scan(&got)
		if allowed {
			require.NoError(t, err, role)
			require.Equal(t, "dr-who", got)
		} else {
			require.ErrorContains(t, err, "permission denied", role)
		}
	}

	// erasure of the real id reaches the pseudonymised rows and drops the mapping
	id, err := b.client.RequestErasure(ctx, drWho, "request")
	require.NoError(t, err)
	res, err := b.deps.Erase(ctx, id, nil)
	require.NoError(t, err)
	require.EqualValues(t, 10, res.Rows)
	require.Empty(t, occurrences(t, b.db.Pool, psn))
	require.Empty(t, occurrences(t, b.db.Pool, "dr-who"))
	require.True(t, b.verifyWithKeys(t).Intact())

	require.NoError(t, b.client.DisablePseudonymisation(ctx, "org-1"))
	var triggers int
	require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_trigger WHERE tgname = 'audit_log_pseudonymise'`).Scan(&triggers))
	require.Zero(t, triggers, "no organization left, no trigger left")
}

func TestComplianceSwitches(t *testing.T) {
	t.Parallel()
	b := setupGDPR(t)
	ctx := context.Background()
	on, off := true, false

	_, err := b.db.Pool.Exec(ctx, `UPDATE audit.retention_policies SET retention_days = 365, archive_after_days = 30 WHERE policy_name = 'phi_extended'`)
	require.NoError(t, err)
	_, err = b.client.SetCompliance(ctx, &on, nil)
	require.ErrorContains(t, err, "HIPAA mode: PHI retention policies phi_extended keep less than 2190 days")
	_, err = b.db.Pool.Exec(ctx, `UPDATE audit.retention_policies SET retention_days = 2555 WHERE policy_name = 'phi_extended'`)
	require.NoError(t, err)
	m, err := b.client.SetCompliance(ctx, &on, nil)
	require.NoError(t, err)
	require.Equal(t, client.ComplianceModes{HIPAA: true, GDPR: true}, m)

	// HIPAA on: PHI events say who and what, from any client
	_, err = b.db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, principal_id, data_classification)
		VALUES (now(), 'fhir.patient.read', 'success', 'dr-1', 'PHI')`)
	require.ErrorContains(t, err, "audit_log.target_resource_id: required for PHI events in HIPAA mode")
	require.NotContains(t, err.Error(), "dr-1", "errors never carry values")
	_, err = b.db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, data_classification) VALUES (now(), 'auth.login', 'success', 'INTERNAL')`)
	require.NoError(t, err, "non-PHI events are not affected")
	_, err = b.db.Pool.Exec(ctx, `UPDATE audit.retention_policies SET retention_days = 2000 WHERE policy_name = 'phi_extended'`)
	require.ErrorContains(t, err, "retention_policies.retention_days: PHI policies keep at least 2190 days")

	// GDPR off: erasure refused
	m, err = b.client.SetCompliance(ctx, &off, &off)
	require.NoError(t, err)
	require.Equal(t, client.ComplianceModes{}, m)
	_, err = b.client.RequestErasure(ctx, client.Subject{PrincipalID: "dr-1"}, "request")
	require.ErrorContains(t, err, "GDPR mode is off")
	_, err = b.db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, principal_id, data_classification)
		VALUES (now(), 'fhir.patient.read', 'success', 'dr-1', 'PHI')`)
	require.NoError(t, err, "HIPAA off again")
}

// audit.hmac_sha256 (used for write-time pseudonyms without pgcrypto) is
// RFC 2104 HMAC: the same as Go's, for short, block-sized and long keys.
func TestSQLHMACMatchesGo(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	for _, keyLen := range []int{1, 32, 64, 65, 200} {
		key := bytes.Repeat([]byte{byte(keyLen)}, keyLen)
		msg := []byte(fmt.Sprintf("message with key length %d ✓", keyLen))
		var got []byte
		require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT audit.hmac_sha256($1, $2)`, key, msg).Scan(&got))
		m := hmac.New(sha256.New, key)
		m.Write(msg)
		require.Equal(t, hex.EncodeToString(m.Sum(nil)), hex.EncodeToString(got), keyLen)
	}
}

// After an erasure the subject's values are not in Redis either: reads that
// cached them are purged (the worker does it when it knows the clients'
// Redis), and the next read shows the token.
func TestErasurePurgesTheReadCache(t *testing.T) {
	t.Parallel()
	b := setupGDPR(t)
	ctx := context.Background()
	b.subjectEvents(t, 100)
	prefix := fmt.Sprintf("test:%s:%d:", t.Name(), time.Now().UnixNano())
	e, err := client.NewEnhanced(ctx, client.EnhancedConfig{Config: client.Config{URL: b.db.URL},
		RedisURL: harness.SharedRedis().URL, Cache: cache.Config{KeyPrefix: prefix, CompressAbove: -1}})
	require.NoError(t, err)
	defer e.Close()
	require.Eventually(t, func() bool { // subscribed to invalidations
		c, _ := e.Health(ctx).Component(monitor.ComponentCache)
		return c.Status == monitor.StatusHealthy
	}, 5*time.Second, 10*time.Millisecond)

	page, err := e.Search(ctx, client.Query{OrganizationID: "org-1", TargetResourceID: "patient-42"})
	require.NoError(t, err)
	require.Len(t, page.Events, 10)
	_, err = e.Search(ctx, client.Query{TargetResourceID: "patient-42"})
	require.NoError(t, err)
	_, err = e.Get(ctx, page.Events[0].ID)
	require.NoError(t, err)

	opts, err := redis.ParseURL(harness.SharedRedis().URL)
	require.NoError(t, err)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	inRedis := func() (n int) {
		iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			if v, _ := rdb.Get(ctx, iter.Val()).Result(); strings.Contains(v, "patient-42") {
				n++
			}
		}
		require.NoError(t, iter.Err())
		return n
	}
	require.Equal(t, 3, inRedis())

	b.deps.AfterErasure = e.InvalidateAfterErasure
	id, err := b.client.RequestErasure(ctx, patient42, "request")
	require.NoError(t, err)
	res, err := b.deps.Erase(ctx, id, nil)
	require.NoError(t, err)
	require.Zero(t, inRedis(), "no cached value holds the subject")
	ev, err := e.Get(ctx, page.Events[0].ID)
	require.NoError(t, err)
	require.Equal(t, res.Token, ev.TargetResourceID)
	page, err = e.Search(ctx, client.Query{OrganizationID: "org-1", TargetResourceID: "patient-42"})
	require.NoError(t, err)
	require.Empty(t, page.Events)
}

// A subject is a type and an id: erasing Patient/42 leaves Invoice/42 and a
// principal called "42" alone, and exporting it returns only its rows.
func TestErasureReachesOnlyTheSubject(t *testing.T) {
	t.Parallel()
	b := setupGDPR(t)
	ctx := context.Background()
	_, err := b.db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, principal_id, target_resource_type, target_resource_id, data_classification)
		SELECT now(), 'a', 'success', p, t, '42', 'PHI'
		FROM (VALUES ('dr-1', 'Patient'), ('dr-1', 'Invoice'), ('42', 'Encounter'), ('dr-2', 'Patient')) v(p, t)`)
	require.NoError(t, err)
	sub := client.Subject{ResourceType: "Patient", ResourceID: "42"}
	var buf bytes.Buffer
	sum, err := b.client.ExportSubject(ctx, sub, client.ExportJSON, &buf)
	require.NoError(t, err)
	require.EqualValues(t, 2, sum.Events)
	require.EqualValues(t, 2, sum.AsTarget)

	id, err := b.client.RequestErasure(ctx, sub, "request")
	require.NoError(t, err)
	res, err := b.deps.Erase(ctx, id, nil)
	require.NoError(t, err)
	require.EqualValues(t, 2, res.Rows)
	var untouched int
	require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log
		WHERE target_resource_id = '42' AND pii_salt IS NOT NULL AND target_resource_type IN ('Invoice', 'Encounter')`).Scan(&untouched))
	require.Equal(t, 2, untouched)
	require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log WHERE principal_id = '42'`).Scan(&untouched))
	require.Equal(t, 1, untouched, "a principal named 42 is another subject")
	require.True(t, b.verifyWithKeys(t).Intact())

	_, err = b.client.RequestErasure(ctx, client.Subject{ResourceID: "42"}, "request")
	require.EqualError(t, err, "subject: resource_type and resource_id: give both or neither")
	_, err = b.client.RequestErasure(ctx, client.Subject{}, "request")
	require.EqualError(t, err, "subject: principal_id, or resource_type with resource_id, is required")
}
