package client

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/internal/verifier"
	"github.com/auditdb/auditdb/tests/harness"
)

func TestInsertReceipt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, db := setup(t, Config{})

	e := validEvent(7)
	r, err := c.Insert(ctx, e)
	require.NoError(t, err)
	require.Positive(t, r.ID)
	require.EqualValues(t, 1, r.ChainSeq, "the first row of a fresh chain")
	require.Len(t, r.Hash, 64)

	var hash string
	var chain int16
	var seq int64
	var recordedAt = r.RecordedAt
	require.NoError(t, db.Pool.QueryRow(ctx,
		`SELECT hash, chain_id, chain_seq, recorded_at FROM audit.audit_log WHERE id = $1`, r.ID).
		Scan(&hash, &chain, &seq, &recordedAt))
	require.Equal(t, hash, r.Hash)
	require.Equal(t, chain, r.ChainID)
	require.Equal(t, seq, r.ChainSeq)
	require.True(t, recordedAt.Equal(r.RecordedAt))

	// the row holds the event, defaults applied as the database would
	got, err := c.Get(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, r.Hash, got.Hash)
	require.True(t, e.Timestamp.Equal(got.Timestamp))
	got.Timestamp = e.Timestamp
	e.Details = map[string]any{"department": "cardiology", "n": json.Number("7")} // numbers come back as json.Number
	require.Equal(t, e, got.Event)

	minimal, err := c.Insert(ctx, Event{Timestamp: baseTime, Action: "login", Status: StatusFailure})
	require.NoError(t, err)
	var class, retention, version string
	require.NoError(t, db.Pool.QueryRow(ctx,
		`SELECT data_classification, retention_policy, event_version FROM audit.audit_log WHERE id = $1`, minimal.ID).
		Scan(&class, &retention, &version))
	require.Equal(t, []string{"INTERNAL", "standard", "1.0"}, []string{class, retention, version})

	// invalid: no round trip, the trigger's message
	_, err = c.Insert(ctx, Event{Timestamp: baseTime, Status: StatusSuccess})
	require.EqualError(t, err, "audit_log.action: is required")

	rep, err := verifier.Verify(ctx, db.Pool, verifier.Options{})
	require.NoError(t, err)
	require.True(t, rep.Intact(), "findings: %+v", rep.Findings)
	require.EqualValues(t, 2, rep.RowsChecked)
}

func TestInsertBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, db := setup(t, Config{})

	events := make([]Event, 10_000)
	for i := range events {
		events[i] = validEvent(i)
	}
	n, err := c.InsertBatch(ctx, events)
	require.NoError(t, err)
	require.EqualValues(t, len(events), n)

	count, err := c.Count(ctx, Query{})
	require.NoError(t, err)
	require.EqualValues(t, len(events), count)
	var chains int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(DISTINCT chain_id) FROM audit.audit_log`).Scan(&chains))
	require.Equal(t, 1, chains, "one COPY, one transaction, one chain")

	rep, err := verifier.Verify(ctx, db.Pool, verifier.Options{})
	require.NoError(t, err)
	require.True(t, rep.Intact(), "findings: %+v", rep.Findings)
	require.EqualValues(t, len(events), rep.RowsChecked)

	n, err = c.InsertBatch(ctx, nil)
	require.NoError(t, err)
	require.Zero(t, n)
}

// One invalid event: nothing is sent, the error names its index.
func TestInsertBatchInvalidWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, db := setup(t, Config{})

	events := make([]Event, 10)
	for i := range events {
		events[i] = validEvent(i)
	}
	events[3].Action = ""
	events[7].Status = "done"
	n, err := c.InsertBatch(ctx, events)
	require.EqualError(t, err, "events[3]: audit_log.action: is required")
	require.Zero(t, n)
	var ve *ValidationError
	require.True(t, errors.As(err, &ve))
	require.Equal(t, "action", ve.Field)

	var rows, heads int64
	require.NoError(t, db.Pool.QueryRow(ctx,
		`SELECT (SELECT count(*) FROM audit.audit_log), (SELECT coalesce(sum(head_seq), 0) FROM audit.chain_heads)`).
		Scan(&rows, &heads))
	require.Zero(t, rows)
	require.Zero(t, heads, "no chain moved")
}

func TestWithTxCommitsOrRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, db := setup(t, Config{})

	var receipts []Receipt
	err := c.WithTx(ctx, func(tx *Tx) error {
		r, err := tx.Insert(ctx, validEvent(1))
		if err != nil {
			return err
		}
		receipts = append(receipts, r)
		if _, err := tx.InsertBatch(ctx, []Event{validEvent(2), validEvent(3)}); err != nil {
			return err
		}
		// the transaction sees its own rows
		n, err := tx.Count(ctx, Query{})
		require.NoError(t, err)
		require.EqualValues(t, 3, n)
		got, err := tx.Get(ctx, r.ID)
		require.NoError(t, err)
		require.Equal(t, r.Hash, got.Hash)
		return nil
	})
	require.NoError(t, err)
	n, err := c.Count(ctx, Query{})
	require.NoError(t, err)
	require.EqualValues(t, 3, n, "committed")

	errBusiness := errors.New("changed my mind")
	err = c.WithTx(ctx, func(tx *Tx) error {
		if _, err := tx.Insert(ctx, validEvent(4)); err != nil {
			return err
		}
		return errBusiness
	})
	require.ErrorIs(t, err, errBusiness)
	require.Equal(t, errBusiness, err, "fn's error comes back as it is")

	// a refused COPY aborts the transaction; the error rolls it back
	err = c.WithTx(ctx, func(tx *Tx) error {
		if _, err := tx.Insert(ctx, validEvent(5)); err != nil {
			return err
		}
		_, err := tx.InsertBatch(ctx, []Event{validEvent(6), {Timestamp: baseTime, Action: "x"}})
		return err
	})
	require.EqualError(t, err, "events[1]: audit_log.status: is required")

	require.Panics(t, func() {
		_ = c.WithTx(ctx, func(tx *Tx) error {
			_, _ = tx.Insert(ctx, validEvent(7))
			panic("boom")
		})
	})

	n, err = c.Count(ctx, Query{})
	require.NoError(t, err)
	require.EqualValues(t, 3, n, "rolled back")
	rep, err := verifier.Verify(ctx, db.Pool, verifier.Options{})
	require.NoError(t, err)
	require.True(t, rep.Intact(), "rolled-back work leaves no trace in the chains: %+v", rep.Findings)

	err = c.WithTxOptions(ctx, TxOptions{Isolation: "chaos"}, func(tx *Tx) error { return nil })
	require.EqualError(t, err, "client: TxOptions.Isolation: must be one of read committed, repeatable read, serializable")
}

// A function that fails with a serialization failure once runs twice and
// commits once; other errors are not retried; retries stop at MaxRetries.
func TestWithTxRetriesSerializationFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := setup(t, Config{MaxRetries: 2})

	var runs int
	err := c.WithTx(ctx, func(tx *Tx) error {
		runs++
		if _, err := tx.Insert(ctx, validEvent(runs)); err != nil {
			return err
		}
		if runs == 1 {
			return &pgconn.PgError{Code: "40001", Message: "could not serialize access"}
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 2, runs)
	page, err := c.Search(ctx, Query{})
	require.NoError(t, err)
	require.Len(t, page.Events, 1, "only the second attempt committed")
	require.Equal(t, "req-2", page.Events[0].CorrelationID)

	runs = 0
	err = c.WithTx(ctx, func(tx *Tx) error {
		runs++
		return &pgconn.PgError{Code: "40P01", Message: "deadlock detected"}
	})
	require.True(t, Retryable(err))
	require.Equal(t, 3, runs, "the first run and MaxRetries more")
	require.ErrorContains(t, err, "client: transaction failed 3 times: ")

	runs = 0
	err = c.WithTx(ctx, func(tx *Tx) error {
		runs++
		return &pgconn.PgError{Code: "23505", Message: "duplicate key"}
	})
	require.False(t, Retryable(err))
	require.Equal(t, 1, runs)

	noRetry, err := NewWithConfig(ctx, Config{URL: c.Pool().Config().ConnString(), MaxRetries: -1})
	require.NoError(t, err)
	t.Cleanup(noRetry.Close)
	runs = 0
	err = noRetry.WithTx(ctx, func(tx *Tx) error {
		runs++
		return &pgconn.PgError{Code: "40001"}
	})
	require.True(t, Retryable(err))
	require.Equal(t, 1, runs)
}

// A real serialization failure: two SERIALIZABLE transactions each count
// the events of an action, then insert one (write skew). PostgreSQL fails
// one of them with 40001; WithTx runs it again, and then it sees the
// other's row.
func TestWithTxRetriesRealSerializationConflict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, db := setup(t, Config{MaxRetries: 5})

	var (
		bothRead sync.WaitGroup
		wg       sync.WaitGroup
		attempts atomic.Int32
		seen     [2][]int64
		errs     [2]error
	)
	bothRead.Add(2)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			errs[w] = c.WithTxOptions(ctx, TxOptions{Isolation: Serializable}, func(tx *Tx) error {
				attempts.Add(1)
				n, err := tx.Count(ctx, Query{Action: "ticket.issue"})
				if err != nil {
					return err
				}
				seen[w] = append(seen[w], n)
				if first {
					first = false
					bothRead.Done()
					bothRead.Wait()
				}
				e := validEvent(w)
				e.Action = "ticket.issue"
				_, err = tx.Insert(ctx, e)
				return err
			})
		}()
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.GreaterOrEqual(t, attempts.Load(), int32(3), "one transaction was retried; seen %v", seen)

	n, err := c.Count(ctx, Query{Action: "ticket.issue"})
	require.NoError(t, err)
	require.EqualValues(t, 2, n, "both committed once")
	// the retried transaction saw the other's row on its last attempt
	last := []int64{seen[0][len(seen[0])-1], seen[1][len(seen[1])-1]}
	require.ElementsMatch(t, []int64{0, 1}, last)

	rep, err := verifier.Verify(ctx, db.Pool, verifier.Options{})
	require.NoError(t, err)
	require.True(t, rep.Intact(), "findings: %+v", rep.Findings)
}

// An application connected as a member of audit_writer can use Insert,
// InsertBatch and WithTx (they read back only the columns it may read),
// but not read the log.
func TestWriterRole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	writerPool := db.LoginRole(t, "audit_writer")
	c, err := New(ctx, writerPool.Config().ConnString())
	require.NoError(t, err)
	t.Cleanup(c.Close)

	require.NoError(t, c.CheckConnection(ctx))
	r, err := c.Insert(ctx, validEvent(1))
	require.NoError(t, err)
	require.Len(t, r.Hash, 64)
	n, err := c.InsertBatch(ctx, []Event{validEvent(2), validEvent(3)})
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	require.NoError(t, c.WithTx(ctx, func(tx *Tx) error {
		_, err := tx.Insert(ctx, validEvent(4))
		return err
	}))

	_, err = c.Search(ctx, Query{})
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "got %v", err)
	require.Equal(t, "42501", pgErr.Code) // insufficient_privilege

	rep, err := verifier.Verify(ctx, db.Pool, verifier.Options{})
	require.NoError(t, err)
	require.True(t, rep.Intact(), "findings: %+v", rep.Findings)
	require.EqualValues(t, 4, rep.RowsChecked)
}
