package workers_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/tests/harness"
	"github.com/auditdb/auditdb/workers"
)

// fill writes rows rows into each of chains chains: one open transaction per
// chain, so that each holds its chain and the next writer takes another.
func fill(t *testing.T, db *harness.DB, chains, rows int) {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(db.URL)
	require.NoError(t, err)
	cfg.MaxConns = int32(chains)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer pool.Close()
	txs := make([]pgx.Tx, chains)
	for i := range txs {
		txs[i], err = pool.Begin(ctx)
		require.NoError(t, err)
		_, err = txs[i].Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, principal_id, details)
			SELECT now(), 'fhir.patient.read', 'success', 'dr-' || g, jsonb_build_object('n', g)
			FROM generate_series(1, $1) g`, rows)
		require.NoError(t, err)
	}
	for _, tx := range txs {
		require.NoError(t, tx.Commit(ctx))
	}
}

// keys builds a keyring of the given ids with random keys; the first id is
// active unless active is set.
func keys(t *testing.T, active string, ids ...string) *integrity.SealKeys {
	t.Helper()
	var list string
	for _, id := range ids {
		e, err := integrity.GenerateSealKey(id)
		require.NoError(t, err)
		list += e + ","
	}
	k, err := integrity.ParseSealKeys(list, active)
	require.NoError(t, err)
	return k
}

// alerts records raised alerts.
type alerts struct {
	mu   sync.Mutex
	list []string
}

func (a *alerts) Raise(_ context.Context, kind, severity, message string, _ map[string]string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.list = append(a.list, fmt.Sprintf("%s/%s: %s", kind, severity, message))
	return nil
}

func (a *alerts) all() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.list...)
}

func kinds(rep *integrity.Report) []string {
	var out []string
	for _, f := range rep.Findings {
		out = append(out, fmt.Sprintf("%d/%d/%s", f.ChainID, f.ChainSeq, f.Kind))
	}
	return out
}

func fmtFinding(c int16, seq int64, k integrity.Kind) string {
	return fmt.Sprintf("%d/%d/%s", c, seq, k)
}

// busyChains returns the chains with rows, in order.
func busyChains(t *testing.T, db *harness.DB) []int16 {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT chain_id FROM audit.chain_heads WHERE head_seq > 0 ORDER BY chain_id`)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int16])
	require.NoError(t, err)
	return ids
}

var _ workers.Alerter = (*alerts)(nil)
