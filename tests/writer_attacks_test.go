package tests

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
)

// The attacks of issue 9, each run as a real login role granted only
// audit_writer (or nothing at all), against both insert triggers. Each one
// either fails with a clear error or does no harm; afterwards an honest
// workload still verifies intact and audit.chain_heads agrees with the rows
// (requireIntact runs the Go verifier and the SQL recomputation).
func TestWriterCannotBreakChains(t *testing.T) {
	t.Parallel()
	const simpleInsert = `INSERT INTO audit_log ("timestamp", action, status) VALUES (now(), 'w', 'success')`
	hex64 := strings.Repeat("ab", 32)

	attacks := []struct {
		name string
		run  func(t *testing.T, ctx context.Context, writer *pgxpool.Pool, db *harness.DB)
	}{
		{"a forged chain state fails the statement and moves nothing", func(t *testing.T, ctx context.Context, writer *pgxpool.Pool, db *harness.DB) {
			tx := begin(t, writer)
			var lastID int64
			require.NoError(t, tx.QueryRow(ctx, simpleInsert+` RETURNING id`).Scan(&lastID))
			_, err := tx.Exec(ctx, `SELECT set_config('auditdb.chain_state', $1, true)`,
				fmt.Sprintf("3/999999/%s/%d/%s", hex64, lastID, hex64))
			require.NoError(t, err)
			_, err = tx.Exec(ctx, simpleInsert)
			requirePgError(t, err, "42501", "auditdb.chain_state was changed")
			require.NoError(t, tx.Rollback(ctx))
			// the top of bigint, in a transaction of its own
			_, err = writer.Exec(ctx, `SELECT set_config('auditdb.chain_state', $1, false)`,
				fmt.Sprintf("3/9223372036854775806/%s/1/%s", hex64, hex64))
			require.NoError(t, err)
			_, err = writer.Exec(ctx, simpleInsert)
			requirePgError(t, err, "42501", "auditdb.chain_state was changed")
			_, err = writer.Exec(ctx, `RESET auditdb.chain_state`)
			require.NoError(t, err)
		}},
		{"a state replayed from an earlier transaction is refused", func(t *testing.T, ctx context.Context, writer *pgxpool.Pool, db *harness.DB) {
			conn, err := writer.Acquire(ctx)
			require.NoError(t, err)
			defer conn.Release()
			tx, err := conn.Begin(ctx)
			require.NoError(t, err)
			_, err = tx.Exec(ctx, simpleInsert)
			require.NoError(t, err)
			var st string
			require.NoError(t, tx.QueryRow(ctx, `SELECT current_setting('auditdb.chain_state', true)`).Scan(&st))
			require.NoError(t, tx.Commit(ctx))
			tx, err = conn.Begin(ctx)
			require.NoError(t, err)
			_, err = tx.Exec(ctx, `SELECT set_config('auditdb.chain_state', $1, true)`, st)
			require.NoError(t, err)
			_, err = tx.Exec(ctx, simpleInsert)
			if st != "" { // the C trigger keeps its state in memory and never writes the setting
				requirePgError(t, err, "42501", "auditdb.chain_state was changed")
			} else {
				require.NoError(t, err)
			}
			require.NoError(t, tx.Rollback(ctx))
		}},
		{"a state replayed inside the transaction continues from the true head", func(t *testing.T, ctx context.Context, writer *pgxpool.Pool, db *harness.DB) {
			tx := begin(t, writer)
			_, err := tx.Exec(ctx, simpleInsert)
			require.NoError(t, err)
			var st string
			require.NoError(t, tx.QueryRow(ctx, `SELECT current_setting('auditdb.chain_state', true)`).Scan(&st))
			_, err = tx.Exec(ctx, simpleInsert)
			require.NoError(t, err)
			_, err = tx.Exec(ctx, `SELECT set_config('auditdb.chain_state', $1, true)`, st)
			require.NoError(t, err)
			// the setting restored between rows of one statement, too
			_, err = tx.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status)
				SELECT now(), 'w' || set_config('auditdb.chain_state', $1, true) IS NOT NULL, 'success'
				FROM generate_series(1, 3)`, st)
			require.NoError(t, err)
			requireOneChain(t, tx)
			require.NoError(t, tx.Commit(ctx))
		}},
		{"a cleared state neither forks nor takes a second chain", func(t *testing.T, ctx context.Context, writer *pgxpool.Pool, db *harness.DB) {
			tx := begin(t, writer)
			_, err := tx.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status)
				SELECT now(), 'w' || set_config('auditdb.chain_state', '', true), 'success'
				FROM generate_series(1, 5)`)
			require.NoError(t, err)
			_, err = tx.Exec(ctx, `SELECT set_config('auditdb.chain_state', '', true)`)
			require.NoError(t, err)
			_, err = tx.Exec(ctx, simpleInsert)
			require.NoError(t, err)
			requireOneChain(t, tx)
			// cleared after the last row: the statement's flush still writes the head
			_, err = tx.Exec(ctx, `SELECT set_config('auditdb.chain_state', '', true)`)
			require.NoError(t, err)
			require.NoError(t, tx.Commit(ctx))
		}},
		{"the chain functions cannot be called or attached", func(t *testing.T, ctx context.Context, writer *pgxpool.Pool, db *harness.DB) {
			_, err := writer.Exec(ctx, `CREATE TEMP TABLE mine (x int)`)
			require.NoError(t, err)
			for _, fn := range []string{"audit.audit_log_flush_chain_head()", "audit.audit_log_flush_chain_head_c()",
				"audit.audit_log_before_insert()", "audit.audit_log_before_insert_c()"} {
				_, err = writer.Exec(ctx, `CREATE TRIGGER t AFTER INSERT ON mine FOR EACH STATEMENT EXECUTE FUNCTION `+fn)
				requirePgError(t, err, "42501", "permission denied")
			}
			for _, q := range []string{`SELECT audit.chain_acquire()`, `SELECT * FROM audit.chain_state_verified()`,
				`SELECT * FROM audit.chain_true_head(0::smallint)`, `SELECT * FROM audit.chain_holders`,
				`SELECT nextval('audit.audit_log_id_seq')`, `SELECT setval('audit.audit_log_id_seq', 1)`} {
				_, err = writer.Exec(ctx, q)
				requirePgError(t, err, "42501", "permission denied")
			}
		}},
		{"ids are the database's", func(t *testing.T, ctx context.Context, writer *pgxpool.Pool, db *harness.DB) {
			var id int64
			var ts time.Time
			require.NoError(t, writer.QueryRow(ctx, simpleInsert+` RETURNING id, "timestamp"`).Scan(&id, &ts))
			var got int64
			require.NoError(t, writer.QueryRow(ctx, `INSERT INTO audit_log (id, "timestamp", action, status)
				OVERRIDING SYSTEM VALUE VALUES (90, now() - interval '1 day', 'w', 'success') RETURNING id`).Scan(&got))
			require.NotEqual(t, int64(90), got)
			// a conflict-skipped insert would advance the chain without a row;
			// with the id replaced there is no conflict, and the row is there
			tag, err := writer.Exec(ctx, `INSERT INTO audit.audit_log (id, "timestamp", action, status)
				VALUES ($1, $2, 'w', 'success') ON CONFLICT DO NOTHING`, id, ts)
			require.NoError(t, err)
			require.EqualValues(t, 1, tag.RowsAffected())
			conn, err := writer.Acquire(ctx)
			require.NoError(t, err)
			defer conn.Release()
			_, err = conn.Conn().PgConn().CopyFrom(ctx, strings.NewReader("90\t2020-01-01 00:00:00+00\tw\tsuccess\n"),
				`COPY audit.audit_log (id, "timestamp", action, status) FROM STDIN`)
			require.NoError(t, err)
			var planted int
			require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log WHERE id = 90`).Scan(&planted))
			require.Zero(t, planted)
		}},
		{"advisory locks taken by a role with no grants block no writer and no partition DDL", func(t *testing.T, ctx context.Context, writer *pgxpool.Pool, db *harness.DB) {
			nobody := db.LoginRole(t, "")
			holder, err := nobody.Acquire(ctx)
			require.NoError(t, err)
			defer holder.Release()
			// every chain's key, and the one partition DDL used to take
			_, err = holder.Exec(ctx, `SELECT pg_advisory_lock(1635083380, c) FROM generate_series(-1, 15) c`)
			require.NoError(t, err)
			_, err = holder.Exec(ctx, `SELECT 1 FROM audit.chain_holders FOR UPDATE`)
			requirePgError(t, err, "42501", "permission denied")
			ltx := begin(t, nobody)
			_, err = ltx.Exec(ctx, `LOCK TABLE audit.chain_holders`)
			requirePgError(t, err, "42501", "permission denied")
			require.NoError(t, ltx.Rollback(ctx))
			wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			for _, iso := range []string{"READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"} {
				_, err = writer.Exec(wctx, `BEGIN ISOLATION LEVEL `+iso+`; `+simpleInsert+`; COMMIT`)
				require.NoError(t, err, iso)
			}
			// partition DDL (the partitions job, retention's drops) goes through too
			_, err = db.Pool.Exec(wctx, `SELECT count(*) FROM audit.ensure_partitions(6)`)
			require.NoError(t, err)
			_, err = holder.Exec(ctx, `SELECT pg_advisory_unlock_all()`)
			require.NoError(t, err)
		}},
		{"timestamps out of range are refused naming the field", func(t *testing.T, ctx context.Context, writer *pgxpool.Pool, db *harness.DB) {
			for _, ts := range []string{"294276-01-01 00:00:00+00", "4713-01-01 00:00:00+00 BC", "1899-12-31 23:59:59.999999+00",
				"10000-01-01 00:00:00+00"} {
				_, err := writer.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status) VALUES ($1::timestamptz, 'w', 'success')`, ts)
				requirePgError(t, err, "22008", "audit_log.timestamp: must be from 1900-01-01 to 9999-12-31 (UTC)")
			}
			for _, ts := range []string{"1900-01-01 00:00:00+00", "9999-12-31 23:59:59.999999+00"} {
				_, err := writer.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status) VALUES ($1::timestamptz, 'w', 'success')`, ts)
				require.NoError(t, err, ts)
			}
			// partition maintenance survives what the trigger accepted
			_, err := db.Pool.Exec(ctx, `SELECT count(*) FROM audit.ensure_partitions(1)`)
			require.NoError(t, err)
			_, err = db.Pool.Exec(ctx, `SELECT count(*) FROM audit.rescue_default_partition()`)
			require.NoError(t, err)
		}},
		{"archived_at is maintenance's", func(t *testing.T, ctx context.Context, writer *pgxpool.Pool, db *harness.DB) {
			_, err := writer.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, archived_at) VALUES (now(), 'w', 'success', now())`)
			requirePgError(t, err, "42501", "audit_log.archived_at: is set by maintenance only")
		}},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			harness.ForEachTrigger(t, func(t *testing.T, db *harness.DB) {
				ctx := context.Background()
				writer := db.LoginRole(t, "audit_writer")
				insertN(t, db.Pool, 20)
				a.run(t, ctx, writer, db)
				// an honest workload afterwards, from several sessions
				for i := 0; i < 4; i++ {
					_, err := writer.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status)
						SELECT now(), 'honest', 'success' FROM generate_series(1, 25)`)
					require.NoError(t, err)
				}
				requireIntact(t, db.Pool)
			})
		})
	}
}

func begin(t *testing.T, pool *pgxpool.Pool) pgx.Tx {
	t.Helper()
	tx, err := pool.Begin(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx
}

func requirePgError(t *testing.T, err error, code, contains string) {
	t.Helper()
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want SQLSTATE %s, got %v", code, err)
	require.Equal(t, code, pgErr.Code, pgErr.Message)
	require.Contains(t, pgErr.Message, contains)
}

// requireOneChain checks that every row the transaction wrote (recorded
// since it began: the writer may read recorded_at, chain_id and chain_seq)
// is in one chain, with consecutive seqs.
func requireOneChain(t *testing.T, tx pgx.Tx) {
	t.Helper()
	var chains, n int
	var lo, hi int64
	require.NoError(t, tx.QueryRow(context.Background(), `SELECT count(DISTINCT chain_id), count(*), min(chain_seq), max(chain_seq)
		FROM audit.audit_log WHERE recorded_at >= now()`).Scan(&chains, &n, &lo, &hi))
	require.Equal(t, 1, chains)
	require.EqualValues(t, n-1, hi-lo)
}

// A finished transaction's chain secret would recompute the salts of its
// rows; the scrub (run by every seal and erasure) wipes it, and skips a
// chain whose transaction is still running.
func TestChainSecretsAreScrubbed(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	maintainer := db.LoginRole(t, "audit_maintainer")
	insertN(t, db.Pool, 10)
	running := begin(t, db.Pool)
	_, err := running.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status) VALUES (now(), 'open', 'success')`)
	require.NoError(t, err)
	var wiped, left int
	_, err = maintainer.Exec(ctx, `SELECT audit.chain_holders_scrub()`)
	require.NoError(t, err)
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.chain_holders WHERE secret IS NOT NULL`).Scan(&left))
	require.Equal(t, 1, left, "the running transaction's chain keeps its secret")
	_, err = running.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status) VALUES (now(), 'open', 'success')`)
	require.NoError(t, err)
	require.NoError(t, running.Commit(ctx))
	require.NoError(t, maintainer.QueryRow(ctx, `SELECT audit.chain_holders_scrub()`).Scan(&wiped))
	require.Equal(t, 1, wiped)
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.chain_holders WHERE secret IS NOT NULL`).Scan(&left))
	require.Zero(t, left)
	requireIntact(t, db.Pool)
}
