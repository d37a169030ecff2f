package tests

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/verifier"
	"github.com/auditdb/auditdb/tests/harness"
	"github.com/auditdb/auditdb/workers"
)

// Verification can read the log on a streaming standby and record the run
// on the primary: it sees what the standby has replayed (and no more), it
// finds tampering done on the primary once replayed, and it refuses a
// source that is not a standby of the database.
func TestVerifyFromStandby(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := harness.StartReplicated(t)
	standby, err := pgxpool.New(ctx, r.StandbyURL)
	require.NoError(t, err)
	t.Cleanup(standby.Close)
	replayed := func(n int) {
		t.Helper()
		require.Eventually(t, func() bool {
			var got int
			return standby.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log`).Scan(&got) == nil && got == n
		}, 30*time.Second, 20*time.Millisecond, "the standby did not replay %d rows", n)
	}

	insertN(t, r.PrimaryPool, 300)
	replayed(300)
	rep := verify(t, r.PrimaryPool, verifier.Options{Source: standby})
	require.True(t, rep.Intact(), "findings: %+v", rep.Findings)
	require.EqualValues(t, 300, rep.RowsChecked)
	var recorded int64
	require.NoError(t, r.PrimaryPool.QueryRow(ctx, `SELECT rows_checked FROM audit.verification_runs WHERE id = $1 AND status = 'intact'`,
		rep.RunID).Scan(&recorded), "the run is recorded on the primary")
	require.EqualValues(t, 300, recorded)

	// the rows are read on the standby: with its replay paused, rows the
	// primary has since written are not seen
	_, err = standby.Exec(ctx, `SELECT pg_wal_replay_pause()`)
	require.NoError(t, err)
	insertN(t, r.PrimaryPool, 50)
	rep = verify(t, r.PrimaryPool, verifier.Options{Source: standby, NoRecord: true})
	require.True(t, rep.Intact(), "findings: %+v", rep.Findings)
	require.EqualValues(t, 300, rep.RowsChecked)
	_, err = standby.Exec(ctx, `SELECT pg_wal_replay_resume()`)
	require.NoError(t, err)
	replayed(350)
	// the worker's verification jobs read there too (workers.Deps.Replica)
	deps := &workers.Deps{Pool: r.PrimaryPool, Replica: standby, Logger: slog.New(slog.DiscardHandler)}
	rep, err = deps.Verify(ctx, workers.VerifyOptions{Full: true})
	require.NoError(t, err)
	require.True(t, rep.Intact(), "findings: %+v", rep.Findings)
	require.EqualValues(t, 350, rep.RowsChecked)

	// tampering on the primary is found on the standby once replayed
	victim := rowAt(t, r.PrimaryPool, 7)
	require.NoError(t, pgx.BeginFunc(ctx, r.PrimaryPool, func(tx pgx.Tx) error {
		exec(t, tx, `SET LOCAL session_replication_role = replica`) // every trigger off
		exec(t, tx, `UPDATE audit.audit_log SET status = 'failure' WHERE id = $1`, victim.id)
		return nil
	}))
	require.Eventually(t, func() bool {
		var status string
		return standby.QueryRow(ctx, `SELECT status FROM audit.audit_log WHERE id = $1`, victim.id).Scan(&status) == nil && status == "failure"
	}, 30*time.Second, 20*time.Millisecond)
	rep = verify(t, r.PrimaryPool, verifier.Options{Source: standby, NoRecord: true})
	require.Len(t, rep.Findings, 1)
	f := rep.Findings[0]
	require.Equal(t, integrity.Finding{ChainID: victim.chain, ChainSeq: victim.seq, RowID: victim.id, Kind: integrity.RowModified},
		integrity.Finding{ChainID: f.ChainID, ChainSeq: f.ChainSeq, RowID: f.RowID, Kind: f.Kind})

	// a source that is not a standby of this database is refused
	_, err = verifier.Verify(ctx, r.PrimaryPool, verifier.Options{Source: r.PrimaryPool})
	require.ErrorIs(t, err, verifier.ErrNotStandby)
	require.ErrorContains(t, err, "not in recovery")
	other := harness.NewDB(t) // the shared server: another cluster
	_, err = verifier.Verify(ctx, other.Pool, verifier.Options{Source: standby})
	require.ErrorIs(t, err, verifier.ErrNotStandby)
	require.ErrorContains(t, err, "another cluster")
}
