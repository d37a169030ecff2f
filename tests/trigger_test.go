package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
)

// The SQL functions reproduce every test vector (the Go side is checked in
// integrity)
func TestVectorsSQL(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	raw, err := os.ReadFile("../integrity/testdata/vectors.json")
	require.NoError(t, err)
	var doc struct {
		Vectors []map[string]any `json:"vectors"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // ids beyond 2^53 must survive
	require.NoError(t, dec.Decode(&doc))
	require.NotEmpty(t, doc.Vectors)
	for _, v := range doc.Vectors {
		exp := v["expected"].(map[string]any)
		v["details_in"] = v["details"] // the text typed into PostgreSQL, parsed there
		var pc, rh, h, ipText, detText, pii string
		err := db.Pool.QueryRow(context.Background(), `
			WITH v AS (SELECT * FROM jsonb_to_record($1::jsonb) AS x(
				id bigint, chain_id smallint, chain_seq bigint, "timestamp" timestamptz, recorded_at timestamptz,
				action text, status text, principal_type text, organization_id text, target_resource_type text,
				event_version text, correlation_id text, data_classification text, retention_policy text,
				processing_latency integer, ttl text, principal_id text, target_resource_id text, source_ip inet,
				outcome_description text, details_in text, pii_salt text, prev_hash text)),
			d AS (SELECT v.*, details_in::jsonb AS details FROM v),
			c AS (SELECT d.*, audit.pii_commitment(decode(pii_salt, 'hex'), principal_id, target_resource_id,
				source_ip, outcome_description, details) AS pc FROM d),
			r AS (SELECT c.*, audit.row_hash(id, chain_id, chain_seq, "timestamp", recorded_at, action, status,
				principal_type, organization_id, target_resource_type, event_version, correlation_id,
				data_classification, retention_policy, processing_latency, ttl, pc) AS rh FROM c)
			SELECT encode(pc, 'hex'), encode(rh, 'hex'),
			       encode(audit.chain_hash(decode(prev_hash, 'hex'), rh), 'hex'),
			       coalesce(abbrev(source_ip), ''), coalesce(details::text, ''),
			       jsonb_build_array('auditdb/pii/v1', principal_id, target_resource_id, source_ip,
			                         outcome_description, details)::text
			FROM r`, v).Scan(&pc, &rh, &h, &ipText, &detText, &pii)
		require.NoError(t, err, v["name"])
		require.Equal(t, exp["pii_encoding"], pii, "%s: J() as jsonb_build_array", v["name"])
		require.Equal(t, exp["pii_commitment"], pc, v["name"])
		require.Equal(t, exp["row_hash"], rh, v["name"])
		require.Equal(t, exp["hash"], h, v["name"])
		if s, ok := v["source_ip_text"].(string); ok {
			require.Equal(t, s, ipText, v["name"])
		}
		if s, ok := v["details_text"].(string); ok {
			require.Equal(t, s, detText, v["name"])
		}
	}
}

// Rows written by the trigger verify in Go and in SQL; integrity columns
// sent by a client are replaced.
func TestTriggerHashesAndChains(t *testing.T) {
	t.Parallel()
	harness.ForEachTrigger(t, func(t *testing.T, db *harness.DB) {
		ctx := context.Background()
		insertN(t, db.Pool, 500)

		var id, seq int64
		var chain int16
		var hash string
		err := db.Pool.QueryRow(ctx, `INSERT INTO audit_log ("timestamp", action, status, chain_id, chain_seq,
			hash, pii_commitment, recorded_at, details, source_ip, principal_id, principal_type, ttl)
			VALUES ('2026-11-20 10:00:00.123456+00', 'x.y', 'failure', 999, 999, 'forged', '\x00', '2000-01-01',
			        '{"nested": {"k": [1, 2.50, "ü\n", 1e3]}, "ctl": "\u0001"}', '2001:db8::7', E'quote " and \\ backslash, tab\t, \x01, ñ 😀', '', '')
			RETURNING id, chain_id, chain_seq, hash`).Scan(&id, &chain, &seq, &hash)
		require.NoError(t, err)
		require.NotEqual(t, int16(999), chain)
		require.NotEqual(t, int64(999), seq)
		require.Len(t, hash, 64)

		var salt []byte
		var recAfter bool
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT pii_salt, recorded_at > '2020-01-01' FROM audit.audit_log WHERE id = $1`, id).Scan(&salt, &recAfter))
		require.Len(t, salt, 16)
		require.True(t, recAfter, "recorded_at is the trigger's clock, not the client's")

		rep := requireIntact(t, db.Pool)
		require.EqualValues(t, 501, rep.RowsChecked)

		// every chain: seqs 1..n with no gaps, and the head table agrees
		rows, err := db.Pool.Query(ctx, `SELECT l.chain_id, count(*), min(chain_seq), max(chain_seq), h.head_seq,
			(SELECT hash FROM audit.audit_log x WHERE x.chain_id = l.chain_id ORDER BY chain_seq DESC LIMIT 1), encode(h.head_hash, 'hex')
			FROM audit.audit_log l JOIN audit.chain_heads h USING (chain_id) GROUP BY l.chain_id, h.head_seq, h.head_hash`)
		require.NoError(t, err)
		for rows.Next() {
			var c int16
			var n, lo, hi, head int64
			var last, headHash string
			require.NoError(t, rows.Scan(&c, &n, &lo, &hi, &head, &last, &headHash))
			require.Equal(t, int64(1), lo)
			require.Equal(t, n, hi, "chain %d has gaps or duplicates", c)
			require.Equal(t, hi, head)
			require.Equal(t, last, headHash)
		}
		require.NoError(t, rows.Err())
	})
}

// Rolled-back transactions and savepoints leave no trace in a chain.
func TestRollbackLeavesNoTrace(t *testing.T) {
	t.Parallel()
	harness.ForEachTrigger(t, func(t *testing.T, db *harness.DB) {
		ctx := context.Background()
		conn, err := db.Pool.Acquire(ctx)
		require.NoError(t, err)
		defer conn.Release()

		tx, err := conn.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, insertEvent, "a", "u1", "p1")
		require.NoError(t, err)
		require.NoError(t, tx.Rollback(ctx))

		tx, err = conn.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, insertEvent, "kept-1", "u1", "p1")
		require.NoError(t, err)
		sp, err := tx.Begin(ctx) // savepoint
		require.NoError(t, err)
		_, err = sp.Exec(ctx, insertEvent, "dropped", "u1", "p1")
		require.NoError(t, err)
		_, err = sp.Exec(ctx, insertEvent, "dropped", "u1", "p1")
		require.NoError(t, err)
		require.NoError(t, sp.Rollback(ctx))
		_, err = tx.Exec(ctx, insertEvent, "kept-2", "u1", "p1")
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))

		var actions []string
		rows, err := db.Pool.Query(ctx, `SELECT action FROM audit.audit_log ORDER BY chain_id, chain_seq`)
		require.NoError(t, err)
		actions, err = pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.Equal(t, []string{"kept-1", "kept-2"}, actions)
		var maxSeq int64
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT max(chain_seq) FROM audit.audit_log`).Scan(&maxSeq))
		require.EqualValues(t, 2, maxSeq, "both kept rows are seq 1 and 2 of one chain")
		requireIntact(t, db.Pool)
	})
}

// Bad input: a clear error naming the field and the rule, nothing written.
func TestValidation(t *testing.T) {
	t.Parallel()
	harness.ForEachTrigger(t, func(t *testing.T, db *harness.DB) {
		ctx := context.Background()
		long := strings.Repeat("x", 256)
		for _, tc := range []struct {
			name, cols, vals string
			want             string
			code             string
		}{
			{"missing action", `"timestamp", status`, `now(), 'success'`, "audit_log.action: is required", "23502"},
			{"missing timestamp", `action, status`, `'a', 'success'`, "audit_log.timestamp: is required", "23502"},
			{"infinite timestamp", `"timestamp", action, status`, `'infinity', 'a', 'success'`, "audit_log.timestamp: must be a finite time, not infinity", "23514"},
			{"bad status", `"timestamp", action, status`, `now(), 'a', 'ok'`, "audit_log.status: must be one of attempt, success, failure", "23514"},
			{"bad classification", `"timestamp", action, status, data_classification`, `now(), 'a', 'success', 'SECRET'`, "audit_log.data_classification: must be one of PUBLIC, INTERNAL, CONFIDENTIAL, PHI", "23514"},
			{"empty action", `"timestamp", action, status`, `now(), '', 'success'`, "audit_log.action: must not be empty", "23514"},
			{"long principal", `"timestamp", action, status, principal_id`, `now(), 'a', 'success', '` + long + `'`, "audit_log.principal_id: longer than 255 characters", "22001"},
			{"details array", `"timestamp", action, status, details`, `now(), 'a', 'success', '[1,2]'`, "audit_log.details: must be a JSON object, not array", "23514"},
			{"details too large", `"timestamp", action, status, details`, `now(), 'a', 'success', jsonb_build_object('k', repeat('y', 70000))`, "audit_log.details: larger than 65536 bytes as JSON text", "54000"},
			{"details small stored, large printed", `"timestamp", action, status, details`, `now(), 'a', 'success', '{"n": 1e70000}'`, "audit_log.details: larger than 65536 bytes as JSON text", "54000"},
			{"negative latency", `"timestamp", action, status, processing_latency`, `now(), 'a', 'success', -1`, "audit_log.processing_latency: must not be negative", "23514"},
			{"long outcome", `"timestamp", action, status, outcome_description`, `now(), 'a', 'success', repeat('z', 10001)`, "audit_log.outcome_description: longer than 10000 characters", "22001"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := db.Pool.Exec(ctx, fmt.Sprintf(`INSERT INTO audit_log (%s) VALUES (%s)`, tc.cols, tc.vals))
				var pgErr *pgconn.PgError
				require.True(t, errors.As(err, &pgErr), "want a database error, got %v", err)
				require.Equal(t, tc.want, pgErr.Message)
				require.Equal(t, tc.code, pgErr.Code)
				require.NotContains(t, pgErr.Message, "yyyy", "values never appear in errors")
			})
		}
		// a multi-row insert with one bad row writes nothing
		_, err := db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status) VALUES (now(), 'ok', 'success'), (now(), 'bad', 'nope')`)
		require.Error(t, err)
		var n int64
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log`).Scan(&n))
		require.Zero(t, n)
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT coalesce(sum(head_seq), 0) FROM audit.chain_heads`).Scan(&n))
		require.Zero(t, n)
	})
}

// UPDATE, DELETE and TRUNCATE fail for the owner too; only maintenance gets through.
func TestAppendOnlyGuard(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	insertN(t, db.Pool, 3)
	for _, sql := range []string{
		`UPDATE audit.audit_log SET action = 'changed'`,
		`DELETE FROM audit.audit_log`,
		`TRUNCATE audit.audit_log`,
		`TRUNCATE audit.audit_log_default`,
		`UPDATE audit_log SET status = 'failure'`,
	} {
		_, err := db.Pool.Exec(ctx, sql)
		var pgErr *pgconn.PgError
		require.True(t, errors.As(err, &pgErr), sql)
		require.Contains(t, pgErr.Message, "audit_log is append-only", sql)
	}
	var n int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log WHERE action <> 'changed'`).Scan(&n))
	require.EqualValues(t, 3, n)
}

// The two implementations share the chain state: switching between them in
// the middle of a chain (even inside one transaction) keeps it intact.
func TestSwitchingTriggerMidChain(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	db.UseTrigger(t, "plpgsql")
	insertN(t, db.Pool, 50)
	db.UseTrigger(t, "c")
	insertN(t, db.Pool, 50)
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, insertEvent, "in-tx-c", "u", "p")
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT audit.use_accelerator(false)`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, insertEvent, "in-tx-plpgsql", "u", "p")
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	var chains int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(DISTINCT chain_id) FROM audit.audit_log WHERE action LIKE 'in-tx-%'`).Scan(&chains))
	require.Equal(t, 1, chains, "one transaction, one chain, whichever implementation")
	requireIntact(t, db.Pool)
}

// Every chain held by other writers: under READ COMMITTED the insert queues
// behind one and goes through when it is free; under REPEATABLE READ it
// fails with 40001 (retry), never another error. (The PL/pgSQL loop once
// left its last candidate chain set when every try-lock failed, and then
// failed with "chain has no row".)
func TestAllChainsBusy(t *testing.T) {
	harness.ForEachTrigger(t, func(t *testing.T, db *harness.DB) {
		ctx := context.Background()
		// Chains are taken by locking their rows in audit.chain_holders,
		// which only the owner (this test's superuser) can do.
		holder, err := db.Pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = holder.Rollback(ctx) }()
		_, err = holder.Exec(ctx, `SELECT 1 FROM audit.chain_holders FOR UPDATE`)
		require.NoError(t, err)

		_, err = db.Pool.Exec(ctx, `BEGIN ISOLATION LEVEL REPEATABLE READ;
			INSERT INTO audit_log ("timestamp", action, status) VALUES (now(), 'a', 'success'); COMMIT`)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		require.Equal(t, "40001", pgErr.Code, pgErr.Message)

		done := make(chan error, 1)
		go func() {
			_, err := db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status) VALUES (now(), 'a', 'success')`)
			done <- err
		}()
		select {
		case err := <-done:
			t.Fatalf("the READ COMMITTED insert did not wait for a chain: %v", err)
		case <-time.After(300 * time.Millisecond):
		}
		require.NoError(t, holder.Rollback(ctx))
		require.NoError(t, <-done)
		requireIntact(t, db.Pool)
	})
}
