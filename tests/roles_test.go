package tests

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
)

func TestRoles(t *testing.T) {
	t.Parallel()
	harness.ForEachTrigger(t, func(t *testing.T, db *harness.DB) {
		ctx := context.Background()
		writer := db.LoginRole(t, "audit_writer")
		reader := db.LoginRole(t, "audit_reader")

		// the writer inserts and reads back what RETURNING needs
		var id, seq int64
		var chain int16
		var hash string
		require.NoError(t, writer.QueryRow(ctx, insertEvent+` RETURNING id, chain_id, chain_seq, hash`, "a", "u", "p").Scan(&id, &chain, &seq, &hash))
		require.Len(t, hash, 64)
		_, err := writer.Exec(ctx, `INSERT INTO audit.audit_log ("timestamp", action, status) VALUES (now(), 'b', 'success')`)
		require.NoError(t, err)

		denied := func(t *testing.T, who string, sql string) {
			t.Helper()
			pool := writer
			if who == "reader" {
				pool = reader
			}
			_, err := pool.Exec(ctx, sql)
			var pgErr *pgconn.PgError
			require.True(t, errors.As(err, &pgErr), "%s: %s: want an error, got %v", who, sql, err)
			require.Contains(t, []string{"42501", "2F003"}, pgErr.Code, "%s: %s: %s", who, sql, pgErr.Message)
		}
		for _, sql := range []string{
			`UPDATE audit.audit_log SET action = 'x'`,
			`DELETE FROM audit.audit_log`,
			`TRUNCATE audit.audit_log`,
			`ALTER TABLE audit.audit_log DISABLE TRIGGER zz_audit_log_integrity`,
			`ALTER TABLE audit.audit_log DISABLE TRIGGER ALL`,
			`SET session_replication_role = replica`,
			`SELECT principal_id FROM audit.audit_log`,
			`SELECT details FROM audit_log`,
			`UPDATE audit.chain_heads SET head_seq = 0`,
			`SELECT * FROM audit.chain_heads`,
			`INSERT INTO audit.integrity_checkpoints (chain_id, chain_seq, hash, sealed_at, key_id, mac) VALUES (0, 1, repeat('a', 64), now(), 'k', repeat('a', 64))`,
			`DELETE FROM audit.verification_runs`,
			`INSERT INTO audit.audit_log_default ("timestamp", action, status) VALUES (now(), 'c', 'success')`,
			`SELECT * FROM audit.ensure_partitions(1)`,
			`DROP TABLE audit.audit_log_default`,
		} {
			denied(t, "writer", sql)
		}
		for _, sql := range []string{
			`INSERT INTO audit_log ("timestamp", action, status) VALUES (now(), 'r', 'success')`,
			`UPDATE audit.audit_log SET action = 'x'`,
			`UPDATE audit.chain_heads SET head_seq = 0`,
		} {
			denied(t, "reader", sql)
		}
		var n int64
		require.NoError(t, reader.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log WHERE principal_id IS NOT NULL OR true`).Scan(&n))
		require.EqualValues(t, 2, n)
		require.NoError(t, reader.QueryRow(ctx, `SELECT count(*) FROM audit.integrity_status`).Scan(&n))
		require.EqualValues(t, 16, n)
		require.NoError(t, reader.QueryRow(ctx, `SELECT count(*) FROM audit.partition_status`).Scan(&n))
		require.Positive(t, n)
		requireIntact(t, db.Pool)
	})
}
