package workers_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/internal/verifier"
	"github.com/auditdb/auditdb/tests/harness"
	"github.com/auditdb/auditdb/workers"
)

// The partitions job keeps months ahead and moves rows out of the default
// partition without losing or re-hashing one; running it again changes
// nothing.
func TestMaintainPartitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	fill(t, db, 1, 10)
	_, err := db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, principal_id)
		VALUES ('2031-03-15 12:00:00+00', 'late.event', 'success', 'u1'), ('2031-03-16 12:00:00+00', 'late.event', 'success', 'u2')`)
	require.NoError(t, err)
	var before []string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT array_agg(hash ORDER BY id) FROM audit.audit_log`).Scan(&before))

	d := &workers.Deps{Pool: db.Pool}
	changes, err := d.MaintainPartitions(ctx, 5)
	require.NoError(t, err)
	require.Contains(t, changes, workers.PartitionChange{Partition: "audit_log_2031_03", Created: true, RowsMoved: 2})
	require.Len(t, changes, 3, "two more months ahead (the template has 3) and the rescued month")

	changes, err = d.MaintainPartitions(ctx, 5)
	require.NoError(t, err)
	require.Empty(t, changes)
	var inDefault int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log_default`).Scan(&inDefault))
	require.Zero(t, inDefault)
	var after []string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT array_agg(hash ORDER BY id) FROM audit.audit_log`).Scan(&after))
	require.Equal(t, before, after)
	rep, err := verifier.Verify(ctx, db.Pool, verifier.Options{NoRecord: true})
	require.NoError(t, err)
	require.True(t, rep.Intact())

	_, err = d.MaintainPartitions(ctx, 121)
	require.ErrorContains(t, err, "months ahead must be between 0 and 120")
}
