package tests

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
)

type rowDigest struct {
	ID   int64
	Hash string
}

func digests(t *testing.T, tx interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) []rowDigest {
	t.Helper()
	rows, err := tx.Query(context.Background(), `SELECT id, hash FROM audit.audit_log ORDER BY id`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[rowDigest])
	require.NoError(t, err)
	return out
}

// Rows for a month without a partition land in the default partition;
// creating the month's partition (directly, or through rescue) moves them
// with their ids and hashes unchanged, and the log still verifies.
func TestDefaultPartitionRescue(t *testing.T) {
	t.Parallel()
	harness.ForEachTrigger(t, func(t *testing.T, db *harness.DB) {
		ctx := context.Background()
		insertN(t, db.Pool, 50)
		far := time.Date(2031, 3, 15, 12, 0, 0, 0, time.UTC)
		_, err := db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, principal_id)
			SELECT $1::timestamptz + g * interval '1 hour', 'late.event', 'success', 'u' || g FROM generate_series(1, 30) g`, far)
		require.NoError(t, err)
		_, err = db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status) VALUES ('2019-07-04 00:00:00+00', 'old.event', 'success')`)
		require.NoError(t, err)
		var inDefault int64
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log_default`).Scan(&inDefault))
		require.EqualValues(t, 31, inDefault)
		var note string
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT note FROM audit.partition_status WHERE is_default`).Scan(&note))
		require.Contains(t, note, "holds rows without a partition")
		before := digests(t, db.Pool)

		// creating the 2031-03 partition directly moves that month's rows
		var moved int64
		var created bool
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT created, rows_moved FROM audit.create_partition('2031-03-01')`).Scan(&created, &moved))
		require.True(t, created)
		require.EqualValues(t, 30, moved)
		// and rescue takes the rest
		rows, err := db.Pool.Query(ctx, `SELECT partition_name, rows_moved FROM audit.rescue_default_partition()`)
		require.NoError(t, err)
		type res struct {
			Name  string
			Moved int64
		}
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[res])
		require.NoError(t, err)
		require.Equal(t, []res{{"audit_log_2019_07", 1}}, got)

		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log_default`).Scan(&inDefault))
		require.Zero(t, inDefault)
		require.Equal(t, before, digests(t, db.Pool), "same rows, same ids, same hashes")
		var n int64
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log_2031_03`).Scan(&n))
		require.EqualValues(t, 30, n)
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.partition_status WHERE NOT triggers_ok`).Scan(&n))
		require.Zero(t, n, "new partitions carry the statement triggers")

		// writing into the new partitions keeps chains intact
		_, err = db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status) VALUES ('2031-03-20', 'after', 'success'), ('2019-07-05', 'after', 'success')`)
		require.NoError(t, err)
		_, err = db.Pool.Exec(ctx, `INSERT INTO audit.audit_log_2031_03 ("timestamp", action, status) VALUES ('2031-03-21', 'direct.partition.insert', 'success')`)
		require.NoError(t, err)
		insertN(t, db.Pool, 10)
		requireIntact(t, db.Pool)
	})
}

func TestEnsurePartitionsIdempotent(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	var createdNow int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE created) FROM audit.ensure_partitions(5)`).Scan(&createdNow))
	require.Equal(t, 2, createdNow, "the template has 3 months ahead already")
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE created) FROM audit.ensure_partitions(5)`).Scan(&createdNow))
	require.Zero(t, createdNow)

	rows, err := db.Pool.Query(ctx, `SELECT partition_name, range_start, range_end FROM audit.partitions() WHERE NOT is_default`)
	require.NoError(t, err)
	type part struct {
		Name       string
		Start, End time.Time
	}
	parts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[part])
	require.NoError(t, err)
	require.Len(t, parts, 6)
	now := time.Now().UTC()
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	for i, p := range parts {
		want := first.AddDate(0, i, 0)
		require.Equal(t, "audit_log_"+want.Format("2006_01"), p.Name)
		require.True(t, p.Start.Equal(want), "%s starts %s", p.Name, p.Start)
		require.True(t, p.End.Equal(want.AddDate(0, 1, 0)))
	}
	_, err = db.Pool.Exec(ctx, `SELECT * FROM audit.ensure_partitions(-1)`)
	require.ErrorContains(t, err, "months_ahead: must be between 0 and 120")
}
