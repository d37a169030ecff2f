package workers_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/verifier"
	"github.com/auditdb/auditdb/tests/harness"
	"github.com/auditdb/auditdb/workers"
)

// recomputeFrom rewrites chain c from seq on as an attacker without the
// key would: every hash recomputed with the public functions, the head
// moved along, the append-only guard bypassed.
func recomputeFrom(c int16, seq int64) string {
	return fmt.Sprintf(`DO $$
DECLARE r record; prev bytea;
BEGIN
    SELECT decode(hash, 'hex') INTO prev FROM audit.audit_log WHERE chain_id = %[1]d AND chain_seq = %[2]d - 1;
    FOR r IN SELECT * FROM audit.audit_log WHERE chain_id = %[1]d AND chain_seq >= %[2]d ORDER BY chain_seq LOOP
        prev := audit.chain_hash(prev, audit.row_hash(r.id, r.chain_id, r.chain_seq, r."timestamp", r.recorded_at,
            r.action, r.status, r.principal_type, r.organization_id, r.target_resource_type, r.event_version,
            r.correlation_id, r.data_classification, r.retention_policy, r.processing_latency, r.ttl,
            audit.pii_commitment(r.pii_salt, r.principal_id, r.target_resource_id, r.source_ip,
                                 r.outcome_description, r.details)));
        UPDATE audit.audit_log SET hash = encode(prev, 'hex') WHERE id = r.id;
    END LOOP;
    UPDATE audit.chain_heads SET head_hash = prev WHERE chain_id = %[1]d;
END $$;`, c, seq)
}

// Attacks by a privileged user without the seal key, after a seal at seq
// 50 of every chain: each is caught with the kind INTEGRITY.md names, and
// only with the key (the keyless verification misses the ones that need it).
func TestSealedAttacksAreCaught(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		attack func(c int16) string
		want   func(c int16) []string
	}{
		{"row changed and chain recomputed to the head",
			func(c int16) string {
				return fmt.Sprintf(`UPDATE audit.audit_log SET action = 'fhir.patient.delete' WHERE chain_id = %d AND chain_seq = 20;`, c) + recomputeFrom(c, 20)
			},
			func(c int16) []string { return []string{fmt.Sprintf("%d/50/checkpoint_mismatch", c)} }},
		{"row changed, chain recomputed, checkpoint hash rewritten",
			func(c int16) string {
				return fmt.Sprintf(`UPDATE audit.audit_log SET action = 'fhir.patient.delete' WHERE chain_id = %[1]d AND chain_seq = 20;`, c) + recomputeFrom(c, 20) +
					fmt.Sprintf(`UPDATE audit.integrity_checkpoints i SET hash = l.hash FROM audit.audit_log l
						WHERE i.chain_id = %[1]d AND l.chain_id = %[1]d AND l.chain_seq = i.chain_seq;`, c)
			},
			func(c int16) []string { return []string{fmt.Sprintf("%d/50/checkpoint_forged", c)} }},
		{"checkpoint forged at an earlier seq",
			func(c int16) string {
				return fmt.Sprintf(`INSERT INTO audit.integrity_checkpoints (chain_id, chain_seq, hash, sealed_at, key_id, mac)
					SELECT chain_id, chain_seq, hash, now(), 'k1', repeat('0', 64) FROM audit.audit_log WHERE chain_id = %d AND chain_seq = 30;`, c)
			},
			func(c int16) []string { return []string{fmt.Sprintf("%d/30/checkpoint_forged", c)} }},
		{"rows deleted up to the checkpoint, head moved back",
			func(c int16) string {
				return fmt.Sprintf(`DELETE FROM audit.audit_log WHERE chain_id = %[1]d AND chain_seq > 40;
					UPDATE audit.chain_heads h SET head_seq = 40, head_hash = decode(l.hash, 'hex')
					FROM audit.audit_log l WHERE h.chain_id = %[1]d AND l.chain_id = %[1]d AND l.chain_seq = 40;`, c)
			},
			func(c int16) []string { return []string{fmt.Sprintf("%d/50/tail_truncated", c)} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := harness.NewDB(t)
			fill(t, db, 2, 50)
			k := keys(t, "", "k1")
			d := &workers.Deps{Pool: db.Pool, Keys: k}
			rep, err := d.Seal(ctx, workers.SealOptions{})
			require.NoError(t, err)
			require.Equal(t, 2, rep.Sealed())
			c := busyChains(t, db)[1]

			_, err = db.Pool.Exec(ctx, "BEGIN; SET LOCAL session_replication_role = replica;"+tc.attack(c)+"COMMIT;")
			require.NoError(t, err)
			got, err := verifier.Verify(ctx, db.Pool, verifier.Options{Keys: k.Ring})
			require.NoError(t, err)
			require.Equal(t, tc.want(c), kinds(got))
		})
	}
}

// Sealing is idempotent, seals only chains that moved, and rotation (a new
// active key, the old one kept) re-seals every chain under the new key while
// the old checkpoints still verify; dropping the old key from the ring is
// what makes them unverifiable.
func TestSealIdempotentAndRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	fill(t, db, 3, 10)

	old := keys(t, "", "k1")
	d := &workers.Deps{Pool: db.Pool, Keys: old}
	rep, err := d.Seal(ctx, workers.SealOptions{})
	require.NoError(t, err)
	require.Equal(t, 3, rep.Sealed())
	require.Equal(t, 13, rep.Unchanged)
	rep, err = d.Seal(ctx, workers.SealOptions{})
	require.NoError(t, err)
	require.Equal(t, 0, rep.Sealed(), "nothing moved")
	require.Empty(t, rep.Chains)

	fill(t, db, 1, 5)
	rep, err = d.Seal(ctx, workers.SealOptions{})
	require.NoError(t, err)
	require.Equal(t, 1, rep.Sealed(), "only the chain that moved")

	both := &integrity.SealKeys{Active: "k2", Ring: integrity.Keyring{"k1": old.Ring["k1"], "k2": keys(t, "", "k2").Ring["k2"]}}
	d2 := &workers.Deps{Pool: db.Pool, Keys: both}
	rep, err = d2.Seal(ctx, workers.SealOptions{})
	require.NoError(t, err)
	require.Equal(t, "k2", rep.KeyID)
	require.Equal(t, len(busyChains(t, db)), rep.Sealed(), "every chain re-sealed under the new key")

	vr, err := d2.Verify(ctx, workers.VerifyOptions{Full: true})
	require.NoError(t, err)
	require.True(t, vr.Intact(), kinds(vr))
	require.True(t, vr.MACsChecked)
	checked := 0
	for _, ch := range vr.Chains {
		checked += ch.Checkpoints
	}
	require.Equal(t, 4+len(busyChains(t, db)), checked, "old and new checkpoints checked")

	newOnly := &integrity.SealKeys{Active: "k2", Ring: integrity.Keyring{"k2": both.Ring["k2"]}}
	vr, err = verifier.Verify(ctx, db.Pool, verifier.Options{Keys: newOnly.Ring, NoRecord: true})
	require.NoError(t, err)
	require.Len(t, vr.Findings, 4, "the retired key's checkpoints need the retired key")
	for _, f := range vr.Findings {
		require.Equal(t, integrity.CheckpointForged, f.Kind)
	}
}

// A head that does not match its row is not sealed, and raises an alert.
func TestSealRefusesMismatchedHead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	fill(t, db, 2, 5)
	c := busyChains(t, db)[0]
	_, err := db.Pool.Exec(ctx, `UPDATE audit.chain_heads SET head_hash = sha256('forged') WHERE chain_id = $1`, c)
	require.NoError(t, err)
	var got alerts
	d := &workers.Deps{Pool: db.Pool, Keys: keys(t, "", "k1"), Alerter: &got}
	rep, err := d.Seal(ctx, workers.SealOptions{})
	require.NoError(t, err)
	require.Equal(t, 1, rep.Sealed())
	require.Len(t, rep.Chains, 2)
	require.Equal(t, workers.SealStateHeadMismatch, rep.Chains[0].State)
	require.Len(t, got.all(), 1)
	require.Contains(t, got.all()[0], "seal_head_mismatch/critical: chain")
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.integrity_checkpoints WHERE chain_id = $1`, c).Scan(&n))
	require.Zero(t, n)
}

func TestSealWithoutKeyRefuses(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	_, err := (&workers.Deps{Pool: db.Pool}).Seal(context.Background(), workers.SealOptions{})
	require.ErrorIs(t, err, integrity.ErrNoSealKeys)
	_, err = workers.NewSuite(&workers.Deps{Pool: db.Pool}, workers.SuiteConfig{})
	require.ErrorIs(t, err, integrity.ErrNoSealKeys)
	require.ErrorContains(t, err, "cannot seal: no seal key configured: set AUDIT_SEAL_KEYS")
	_, err = workers.NewSuite(&workers.Deps{Pool: db.Pool}, workers.SuiteConfig{SealInterval: -1})
	require.NoError(t, err, "sealing not scheduled: no key needed")
	_, err = workers.NewSuite(&workers.Deps{Pool: db.Pool}, workers.SuiteConfig{SealInterval: -1, FullVerifyInterval: 10})
	require.ErrorContains(t, err, "auditdb_verify: interval must be at least 1s")
	_, err = workers.NewSuite(&workers.Deps{Pool: db.Pool}, workers.SuiteConfig{SealInterval: -1,
		Retention: &workers.RetentionConfig{MaxRowsPerArchive: -1}})
	require.ErrorContains(t, err, "Retention: retention: MaxRowsPerArchive: must be at least 1", "bad job settings fail at start")
}
