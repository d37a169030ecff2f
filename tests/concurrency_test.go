package tests

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
)

// 16 writers for several seconds mixing single rows, multi-row inserts,
// COPY, rolled-back transactions and savepoints, under all three isolation
// levels. Afterwards: no fork, no gap, every committed row present exactly
// once, and verification intact.
func TestConcurrentWritersNeverForkOrGap(t *testing.T) {
	t.Parallel()
	harness.ForEachTrigger(t, func(t *testing.T, db *harness.DB) {
		ctx := context.Background()
		cfg, err := pgxpool.ParseConfig(db.URL)
		require.NoError(t, err)
		cfg.MaxConns = 20
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		require.NoError(t, err)
		defer pool.Close()

		const writers = 16
		duration := 4 * time.Second
		if testing.Short() {
			duration = time.Second
		}
		deadline := time.Now().Add(duration)
		var committed, retried atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(w), 1))
				iso := []pgx.TxIsoLevel{pgx.ReadCommitted, pgx.RepeatableRead, pgx.Serializable}[w%3]
				for i := 0; time.Now().Before(deadline); i++ {
					n, err := writeBatch(ctx, pool, r, iso, fmt.Sprintf("w%d-%d", w, i))
					var pgErr *pgconn.PgError
					if errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01") {
						retried.Add(1) // nothing was written; the writer moves on
						continue
					}
					if err != nil {
						errs <- fmt.Errorf("writer %d (%s): %w", w, iso, err)
						return
					}
					committed.Add(n)
				}
			}(w)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		t.Logf("%d rows committed in %s by %d writers, %d serialization retries", committed.Load(), duration, writers, retried.Load())
		require.Greater(t, committed.Load(), int64(1000))

		var rows, forks, gaps, lost int64
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log`).Scan(&rows))
		require.Equal(t, committed.Load(), rows, "every committed row is present, and nothing else")
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT chain_id, chain_seq FROM audit.audit_log
			GROUP BY 1, 2 HAVING count(*) > 1) f`).Scan(&forks))
		require.Zero(t, forks, "forks")
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT chain_id FROM audit.audit_log
			GROUP BY 1 HAVING max(chain_seq) <> count(*) OR min(chain_seq) <> 1) g`).Scan(&gaps))
		require.Zero(t, gaps, "gaps")
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log WHERE action LIKE '%rolled-back%'`).Scan(&lost))
		require.Zero(t, lost, "rolled-back rows are absent")
		var chainsUsed int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(DISTINCT chain_id) FROM audit.audit_log`).Scan(&chainsUsed))
		require.Greater(t, chainsUsed, 8, "writers spread over the chains")
		rep := requireIntact(t, pool)
		require.Equal(t, rows, rep.RowsChecked)
	})
}

// writeBatch runs one transaction of a random shape and returns the rows it
// committed.
func writeBatch(ctx context.Context, pool *pgxpool.Pool, r *rand.Rand, iso pgx.TxIsoLevel, tag string) (int64, error) {
	var n int64
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: iso}, func(tx pgx.Tx) error {
		n = 0
		switch r.IntN(6) {
		case 0, 1: // single row
			_, err := tx.Exec(ctx, insertEvent, "single-"+tag, "u", "p")
			n = 1
			return err
		case 2: // multi-row INSERT ... SELECT
			k := 2 + r.IntN(20)
			_, err := tx.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, principal_id)
				SELECT now(), $1, 'success', 'u' || g FROM generate_series(1, $2) g`, "multi-"+tag, k)
			n = int64(k)
			return err
		case 3: // COPY
			k := 1 + r.IntN(30)
			rows := make([][]any, k)
			for i := range rows {
				rows[i] = []any{time.Now(), "copy-" + tag, "success", fmt.Sprintf("u%d", i), map[string]any{"i": i}}
			}
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"audit", "audit_log"},
				[]string{"timestamp", "action", "status", "principal_id", "details"}, pgx.CopyFromRows(rows))
			n = int64(k)
			return err
		case 4: // a savepoint rolled back between kept rows
			if _, err := tx.Exec(ctx, insertEvent, "kept-"+tag, "u", "p"); err != nil {
				return err
			}
			sp, err := tx.Begin(ctx)
			if err != nil {
				return err
			}
			if _, err := sp.Exec(ctx, insertEvent, "rolled-back-"+tag, "u", "p"); err != nil {
				return err
			}
			if err := sp.Rollback(ctx); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, insertEvent, "kept-"+tag, "u", "p")
			n = 2
			return err
		default: // a whole transaction rolled back
			if _, err := tx.Exec(ctx, insertEvent, "rolled-back-"+tag, "u", "p"); err != nil {
				return err
			}
			return errRollback
		}
	})
	if errors.Is(err, errRollback) {
		return 0, nil
	}
	return n, err
}

var errRollback = errors.New("rolled back on purpose")
