package client

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/verifier"
)

// The worker's role may UPDATE audit.verification_runs (it records runs).
// Flipping a tampered run to intact, or freshening an old run, must not
// make the attestation say INTACT: the flipped run contradicts its
// findings (caught without keys), and with the seal keys every edit breaks
// the run's seal. An honest sealed run is accepted.
func TestAttestationCatchesEditedVerificationRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, db := setup(t, Config{})
	maint := db.LoginRole(t, "audit_maintainer")
	entry, err := integrity.GenerateSealKey("k1")
	require.NoError(t, err)
	keys, err := integrity.ParseSealKeys(entry, "")
	require.NoError(t, err)
	sealed := verifier.Options{Keys: keys.Ring, SealKeyID: "k1"}

	attest := func(withKeys bool) (string, [][]any) {
		t.Helper()
		req := AttestationRequest{}
		if withKeys {
			req.Keys = keys.Ring
		}
		rep, err := c.IntegrityAttestation(ctx, req)
		require.NoError(t, err)
		sec := rep.Sections[len(rep.Sections)-1]
		require.Equal(t, "Verification records that cannot be trusted", sec.Title)
		return summary(rep)["verdict"].(string), sec.Rows
	}

	events := make([]Event, 30)
	for i := range events {
		events[i] = validEvent(i)
	}
	_, err = c.InsertBatch(ctx, events)
	require.NoError(t, err)
	honest, err := verifier.Verify(ctx, maint, sealed)
	require.NoError(t, err)
	require.True(t, honest.Intact())
	for _, withKeys := range []bool{false, true} {
		v, untrusted := attest(withKeys)
		require.Equal(t, VerdictIntact, v, "an honest sealed run is accepted (keys: %v)", withKeys)
		require.Empty(t, untrusted)
	}

	// the log is tampered with, and the next run, sealed, says so
	_, err = db.Pool.Exec(ctx, `BEGIN; SET LOCAL session_replication_role = replica;
		UPDATE audit.audit_log SET action = 'edited' WHERE id = (SELECT min(id) FROM audit.audit_log); COMMIT`)
	require.NoError(t, err)
	bad, err := verifier.Verify(ctx, maint, sealed)
	require.NoError(t, err)
	require.False(t, bad.Intact())
	v, untrusted := attest(true)
	require.Equal(t, VerdictTampered, v)
	require.Empty(t, untrusted, "the tampered run's own record is honest")

	// the maintainer flips it to intact
	_, err = maint.Exec(ctx, `UPDATE audit.verification_runs SET status = 'intact', findings_count = 0 WHERE id = $1`, bad.RunID)
	require.NoError(t, err)
	v, untrusted = attest(false)
	require.Equal(t, VerdictTampered, v, "without keys: the run still has its findings")
	require.Equal(t, [][]any{{bad.RunID, verifier.RunContradicted, "status intact with findings_count 0, but 1 findings recorded"}}, untrusted)
	v, untrusted = attest(true)
	require.Equal(t, VerdictTampered, v)
	require.Equal(t, [][]any{
		{bad.RunID, verifier.RunContradicted, "status intact with findings_count 0, but 1 findings recorded"},
		{bad.RunID, verifier.RunForged, "the seal does not verify: the record was changed after the verifier wrote it"},
	}, untrusted)

	// ... or marks it failed, so that the honest older run is the newest
	_, err = maint.Exec(ctx, `UPDATE audit.verification_runs SET status = 'failed', findings_count = 1 WHERE id = $1`, bad.RunID)
	require.NoError(t, err)
	v, untrusted = attest(false)
	require.Equal(t, VerdictTampered, v)
	require.Len(t, untrusted, 1)
	require.Equal(t, verifier.RunContradicted, untrusted[0][1])
	_, err = db.Pool.Exec(ctx, `UPDATE audit.verification_runs SET status = 'tampered', findings_count = 1 WHERE id = $1`, bad.RunID)
	require.NoError(t, err)

	// the log is repaired (rows restored from a backup, say) and verified
	// again; then the maintainer freshens the honest run's time, or writes
	// a run of its own: only the seals can tell
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SET LOCAL session_replication_role = replica`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE audit.audit_log SET action = $1 WHERE id = (SELECT min(id) FROM audit.audit_log)`, events[0].Action)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	good, err := verifier.Verify(ctx, maint, sealed)
	require.NoError(t, err)
	require.True(t, good.Intact())
	v, untrusted = attest(true)
	require.Equal(t, VerdictIntact, v)
	require.Empty(t, untrusted)
	_, err = maint.Exec(ctx, `UPDATE audit.verification_runs SET finished_at = finished_at + interval '1 day' WHERE id = $1`, good.RunID)
	require.NoError(t, err)
	v, _ = attest(false)
	require.Equal(t, VerdictIntact, v, "without keys a changed time goes unseen: the note says the seals were not checked")
	rep, err := c.IntegrityAttestation(ctx, AttestationRequest{Keys: keys.Ring})
	require.NoError(t, err)
	require.Contains(t, rep.Statement, "TAMPERED: 1 verification records cannot be trusted")
	require.NotContains(t, rep.Statement, "open findings", "no open findings to speak of")
	v, untrusted = attest(true)
	require.Equal(t, VerdictTampered, v)
	require.Equal(t, [][]any{{good.RunID, verifier.RunForged, "the seal does not verify: the record was changed after the verifier wrote it"}}, untrusted)
	_, err = maint.Exec(ctx, `UPDATE audit.verification_runs SET finished_at = finished_at - interval '1 day' WHERE id = $1`, good.RunID)
	require.NoError(t, err)
	var fake int64
	require.NoError(t, maint.QueryRow(ctx, `INSERT INTO audit.verification_runs (mode, status, finished_at, chains, rows_checked)
		SELECT 'full', 'intact', now(), array_agg(chain_id::int), 30 FROM audit.chain_heads RETURNING id`).Scan(&fake))
	v, untrusted = attest(true)
	require.Equal(t, VerdictTampered, v)
	require.Equal(t, [][]any{{fake, verifier.RunUnsealed, "no seal: recorded without the seal key, or its seal was removed"}}, untrusted)
	_, err = maint.Exec(ctx, `UPDATE audit.verification_runs SET key_id = 'k1', mac = repeat('0', 64) WHERE id = $1`, fake)
	require.NoError(t, err)
	_, untrusted = attest(true)
	require.Equal(t, [][]any{{fake, verifier.RunForged, "the seal does not verify: the record was changed after the verifier wrote it"}}, untrusted)
}
