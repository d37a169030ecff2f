package workers_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/monitor"
	"github.com/auditdb/auditdb/tests/harness"
	"github.com/auditdb/auditdb/workers"
)

// Incremental runs start after each chain's last verified checkpoint, read
// only the rows after it, and catch tampering there. Tampering before the
// seed is the full run's to find; once a run has found it, the chain is
// read in full until it verifies again, so the finding does not vanish.
func TestIncrementalVerification(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	var raised alerts
	d := &workers.Deps{Pool: db.Pool, Keys: keys(t, "", "k1"), Alerter: &raised}
	fill(t, db, 3, 100)

	rep, err := d.Verify(ctx, workers.VerifyOptions{})
	require.NoError(t, err)
	require.Equal(t, "incremental", rep.Mode)
	require.EqualValues(t, 300, rep.RowsChecked, "no previous run and no checkpoint: everything is read")

	_, err = d.Seal(ctx, workers.SealOptions{})
	require.NoError(t, err)
	rep, err = d.Verify(ctx, workers.VerifyOptions{})
	require.NoError(t, err)
	require.Zero(t, rep.RowsChecked, "seeded at the checkpoints at the seqs the last run verified")
	require.True(t, rep.Intact())

	fill(t, db, 3, 20)
	_, err = d.Seal(ctx, workers.SealOptions{})
	require.NoError(t, err)
	rep, err = d.Verify(ctx, workers.VerifyOptions{})
	require.NoError(t, err)
	require.True(t, rep.Intact(), kinds(rep))
	require.EqualValues(t, 60, rep.RowsChecked, "only rows after the seeds")
	seeded := 0
	for _, ch := range rep.Chains {
		if ch.FromSeq > 0 {
			seeded++
		}
	}
	require.GreaterOrEqual(t, seeded, 1)
	var mode string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT mode FROM audit.verification_runs WHERE id = $1`, rep.RunID).Scan(&mode))
	require.Equal(t, "incremental", mode)

	// a row after the seed: caught by the incremental run
	fill(t, db, 1, 10)
	_, err = db.Pool.Exec(ctx, `BEGIN; SET LOCAL session_replication_role = replica;
		UPDATE audit.audit_log SET status = 'failure' WHERE chain_id = (SELECT chain_id FROM audit.chain_heads ORDER BY updated_at DESC LIMIT 1)
		AND chain_seq = (SELECT head_seq FROM audit.chain_heads ORDER BY updated_at DESC LIMIT 1); COMMIT`)
	require.NoError(t, err)
	rep, err = d.Verify(ctx, workers.VerifyOptions{})
	require.NoError(t, err)
	require.Len(t, rep.Findings, 1)
	require.Equal(t, integrity.RowModified, rep.Findings[0].Kind)
	require.EqualValues(t, 10, rep.RowsChecked)
	require.Len(t, raised.all(), 1)
	require.Contains(t, raised.all()[0], "integrity_tampered/critical: verification run")
	require.Contains(t, raised.all()[0], "row_modified 1")

	// a row before the seed: missed by incremental runs of chains that
	// verified, found by the full run; later incremental runs keep finding it
	db2 := harness.NewDB(t)
	d2 := &workers.Deps{Pool: db2.Pool, Keys: d.Keys, Alerter: &raised}
	fill(t, db2, 2, 50)
	_, err = d2.Seal(ctx, workers.SealOptions{})
	require.NoError(t, err)
	rep, err = d2.Verify(ctx, workers.VerifyOptions{Full: true})
	require.NoError(t, err)
	require.True(t, rep.Intact())
	c := busyChains(t, db2)[0]
	_, err = db2.Pool.Exec(ctx, `BEGIN; SET LOCAL session_replication_role = replica;
		UPDATE audit.audit_log SET status = 'failure' WHERE chain_seq = 7 AND chain_id = (SELECT min(chain_id) FROM audit.chain_heads WHERE head_seq > 0); COMMIT`)
	require.NoError(t, err)
	rep, err = d2.Verify(ctx, workers.VerifyOptions{})
	require.NoError(t, err)
	require.True(t, rep.Intact(), "before the seed: not re-read")
	require.Zero(t, rep.RowsChecked)
	rep, err = d2.Verify(ctx, workers.VerifyOptions{Full: true})
	require.NoError(t, err)
	require.Equal(t, []string{fmtFinding(c, 7, integrity.RowModified)}, kinds(rep))
	rep, err = d2.Verify(ctx, workers.VerifyOptions{})
	require.NoError(t, err)
	require.Equal(t, []string{fmtFinding(c, 7, integrity.RowModified)}, kinds(rep), "the tampered chain is read in full again")
	require.EqualValues(t, 50, rep.RowsChecked)

	// into the alert store: one open alert however many runs find it, and
	// the evaluator's view of the same tampering joins it
	store := monitor.NewAlertStore(db2.Pool, monitor.AlertStoreOptions{})
	d2.Alerter = store
	for range 3 {
		_, err = d2.Verify(ctx, workers.VerifyOptions{})
		require.NoError(t, err)
	}
	_, err = d2.EvaluateAlerts(ctx, store, monitor.AlertConfig{})
	require.NoError(t, err)
	open, err := store.List(ctx, "active", 100)
	require.NoError(t, err)
	var tampered []monitor.Alert
	for _, a := range open {
		if a.Kind == monitor.AlertIntegrityTampered {
			tampered = append(tampered, a)
		}
	}
	require.Len(t, tampered, 1, "%+v", open)
	require.GreaterOrEqual(t, tampered[0].Occurrences, int64(3))
}
