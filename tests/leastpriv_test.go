package tests

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
)

// archived_at is maintenance's: a writer cannot set it by INSERT (through
// the table or the public view) or COPY, and still inserts and copies
// everything else.
func TestWriterCannotSetArchivedAt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	writer := db.LoginRole(t, "audit_writer")
	denied := func(err error, what string) {
		t.Helper()
		var pgErr *pgconn.PgError
		require.True(t, errors.As(err, &pgErr), "%s: want an error, got %v", what, err)
		require.Equal(t, "42501", pgErr.Code, "%s: %s", what, pgErr.Message)
	}
	for _, table := range []string{"audit.audit_log", "audit_log"} {
		_, err := writer.Exec(ctx, `INSERT INTO `+table+` ("timestamp", action, status, archived_at) VALUES (now(), 'a', 'success', now())`)
		denied(err, table)
		_, err = writer.Exec(ctx, `INSERT INTO `+table+` ("timestamp", action, status) VALUES (now(), 'a', 'success')`)
		require.NoError(t, err, table)
	}
	now := time.Now()
	_, err := writer.CopyFrom(ctx, pgx.Identifier{"audit", "audit_log"}, []string{"timestamp", "action", "status", "archived_at"},
		pgx.CopyFromRows([][]any{{now, "a", "success", now}}))
	denied(err, "COPY with archived_at")
	n, err := writer.CopyFrom(ctx, pgx.Identifier{"audit", "audit_log"}, []string{"timestamp", "action", "status"},
		pgx.CopyFromRows([][]any{{now, "a", "success"}, {now, "b", "success"}}))
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	var archived, rows int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE archived_at IS NOT NULL), count(*) FROM audit.audit_log`).Scan(&archived, &rows))
	require.Zero(t, archived)
	require.EqualValues(t, 4, rows)
	requireIntact(t, db.Pool)
}
