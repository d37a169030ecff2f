package tests

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/verifier"
	"github.com/auditdb/auditdb/tests/harness"
)

// Every finding kind that can occur without seal keys, each produced by a
// real tampering done as superuser with the triggers bypassed, and reported
// at the right chain, seq and kind.
func TestTamperingIsFound(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, tx pgx.Tx, a, b chainPos) []integrity.Finding
	}{
		{"core field changed", func(t *testing.T, tx pgx.Tx, a, _ chainPos) []integrity.Finding {
			exec(t, tx, `UPDATE audit.audit_log SET status = 'failure' WHERE id = $1`, a.id)
			return []integrity.Finding{{ChainID: a.chain, ChainSeq: a.seq, RowID: a.id, Kind: integrity.RowModified}}
		}},
		{"details changed", func(t *testing.T, tx pgx.Tx, a, _ chainPos) []integrity.Finding {
			exec(t, tx, `UPDATE audit.audit_log SET details = details || '{"n": -1}' WHERE id = $1`, a.id)
			return []integrity.Finding{{ChainID: a.chain, ChainSeq: a.seq, RowID: a.id, Kind: integrity.RowModified}}
		}},
		{"pii value changed", func(t *testing.T, tx pgx.Tx, a, _ chainPos) []integrity.Finding {
			exec(t, tx, `UPDATE audit.audit_log SET principal_id = 'someone-else' WHERE id = $1`, a.id)
			return []integrity.Finding{{ChainID: a.chain, ChainSeq: a.seq, RowID: a.id, Kind: integrity.RowModified}}
		}},
		{"middle row deleted", func(t *testing.T, tx pgx.Tx, a, _ chainPos) []integrity.Finding {
			exec(t, tx, `DELETE FROM audit.audit_log WHERE id = $1`, a.id)
			return []integrity.Finding{{ChainID: a.chain, ChainSeq: a.seq, Kind: integrity.ChainGap}}
		}},
		{"two rows' contents swapped", func(t *testing.T, tx pgx.Tx, a, b chainPos) []integrity.Finding {
			exec(t, tx, `UPDATE audit.audit_log x SET action = y.action, principal_id = y.principal_id,
				target_resource_id = y.target_resource_id, details = y.details, "timestamp" = y."timestamp"
				FROM (SELECT id, action, principal_id, target_resource_id, details, "timestamp" FROM audit.audit_log WHERE id IN ($1, $2)) y
				WHERE x.id IN ($1, $2) AND y.id <> x.id`, a.id, b.id)
			return []integrity.Finding{
				{ChainID: a.chain, ChainSeq: a.seq, RowID: a.id, Kind: integrity.RowModified},
				{ChainID: b.chain, ChainSeq: b.seq, RowID: b.id, Kind: integrity.RowModified},
			}
		}},
		{"duplicated chain_seq", func(t *testing.T, tx pgx.Tx, a, _ chainPos) []integrity.Finding {
			var id int64
			require.NoError(t, tx.QueryRow(context.Background(), `INSERT INTO audit.audit_log OVERRIDING SYSTEM VALUE
				SELECT (SELECT max(id) + 1000 FROM audit.audit_log), chain_id, chain_seq, "timestamp", recorded_at,
				'forged.action', status, principal_type, organization_id, target_resource_type, event_version,
				correlation_id, data_classification, retention_policy, processing_latency, ttl, principal_id,
				target_resource_id, source_ip, outcome_description, details, pii_salt, pii_commitment, hash,
				hash_algorithm, hash_version, archived_at
				FROM audit.audit_log WHERE id = $1 RETURNING id`, a.id).Scan(&id))
			return []integrity.Finding{{ChainID: a.chain, ChainSeq: a.seq, RowID: id, Kind: integrity.ChainFork}}
		}},
		{"trigger disabled and a row inserted with a made-up hash", func(t *testing.T, tx pgx.Tx, _, _ chainPos) []integrity.Finding {
			var id, seq int64
			var chain int16
			require.NoError(t, tx.QueryRow(context.Background(), `INSERT INTO audit.audit_log (id, "timestamp", recorded_at,
				action, status, chain_id, chain_seq, pii_salt, pii_commitment, hash)
				SELECT nextval('audit.audit_log_id_seq'), now(), now(), 'made.up', 'success', chain_id, head_seq + 1, '\x00112233445566778899aabbccddeeff',
				       sha256('x'), repeat('ab', 32)
				FROM audit.chain_heads WHERE head_seq > 0 ORDER BY chain_id LIMIT 1
				RETURNING id, chain_id, chain_seq`).Scan(&id, &chain, &seq))
			return []integrity.Finding{{ChainID: chain, ChainSeq: seq, RowID: id, Kind: integrity.RowModified}}
		}},
		{"rows inserted in a chain that does not exist", func(t *testing.T, tx pgx.Tx, _, _ chainPos) []integrity.Finding {
			var id int64
			require.NoError(t, tx.QueryRow(context.Background(), `INSERT INTO audit.audit_log (id, "timestamp", recorded_at,
				action, status, chain_id, chain_seq, pii_salt, pii_commitment, hash)
				VALUES (nextval('audit.audit_log_id_seq'), now(), now(), 'made.up', 'success', 77, 1, NULL, sha256('x'), repeat('ab', 32))
				RETURNING id`).Scan(&id))
			return []integrity.Finding{{ChainID: 77, ChainSeq: 1, RowID: id, Kind: integrity.RowModified}}
		}},
		{"pii_salt removed outside erasure", func(t *testing.T, tx pgx.Tx, a, _ chainPos) []integrity.Finding {
			exec(t, tx, `UPDATE audit.audit_log SET pii_salt = NULL, principal_id = NULL WHERE id = $1`, a.id)
			return []integrity.Finding{{ChainID: a.chain, ChainSeq: a.seq, RowID: a.id, Kind: integrity.UnauthorizedRedaction}}
		}},
		{"tail rows deleted", func(t *testing.T, tx pgx.Tx, a, _ chainPos) []integrity.Finding {
			exec(t, tx, `DELETE FROM audit.audit_log WHERE chain_id = $1 AND chain_seq >= $2`, a.chain, a.seq)
			return []integrity.Finding{{ChainID: a.chain, ChainSeq: a.seq, Kind: integrity.TailTruncated}}
		}},
		{"checkpoint hash does not match the chain", func(t *testing.T, tx pgx.Tx, a, _ chainPos) []integrity.Finding {
			exec(t, tx, `INSERT INTO audit.integrity_checkpoints (chain_id, chain_seq, hash, sealed_at, key_id, mac)
				VALUES ($1, $2, repeat('cd', 32), now(), 'k1', repeat('00', 32))`, a.chain, a.seq)
			return []integrity.Finding{{ChainID: a.chain, ChainSeq: a.seq, Kind: integrity.CheckpointMismatch}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := harness.NewDB(t)
			ctx := context.Background()
			insertN(t, db.Pool, 400)
			requireIntact(t, db.Pool)
			a := rowAt(t, db.Pool, 5)
			b := rowAt(t, db.Pool, 9)

			var want []integrity.Finding
			err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
				exec(t, tx, `SET LOCAL session_replication_role = replica`) // every trigger off
				want = tc.tamper(t, tx, a, b)
				return nil
			})
			require.NoError(t, err)

			rep := verify(t, db.Pool, verifier.Options{})
			require.Equal(t, "tampered", rep.Status)
			got := make([]integrity.Finding, len(rep.Findings))
			for i, f := range rep.Findings {
				f.Detail = ""
				got[i] = f
			}
			require.ElementsMatch(t, want, got)

			var status string
			var findings int
			require.NoError(t, db.Pool.QueryRow(ctx, `SELECT status, findings_count FROM audit.verification_runs WHERE id = $1`, rep.RunID).Scan(&status, &findings))
			require.Equal(t, "tampered", status)
			require.Equal(t, len(want), findings)
			if want[0].ChainID < 16 { // a stray chain has no row in the per-chain view
				var state string
				require.NoError(t, db.Pool.QueryRow(ctx, `SELECT state FROM audit.integrity_status WHERE chain_id = $1`, want[0].ChainID).Scan(&state))
				require.Equal(t, "tampered", state)
			}
		})
	}
}

// chainPos names a row by its place in a chain.
type chainPos struct {
	chain   int16
	seq, id int64
}

func rowAt(t *testing.T, pool *pgxpool.Pool, seq int64) (r chainPos) {
	t.Helper()
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT chain_id, chain_seq, id FROM audit.audit_log
		WHERE chain_seq = $1 ORDER BY chain_id LIMIT 1`, seq).Scan(&r.chain, &r.seq, &r.id))
	return r
}

func exec(t *testing.T, tx pgx.Tx, sql string, args ...any) {
	t.Helper()
	_, err := tx.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}
