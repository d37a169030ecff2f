package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Receipt is what the database assigned to an inserted event: its id, its
// place in a hash chain and its hash (hex SHA-256), which auditworker verify
// later checks.
type Receipt struct {
	// ID is the row's id, for Get.
	ID int64
	// ChainID is the hash chain the row joined (one per transaction).
	ChainID int16
	// ChainSeq is the row's position in its chain, from 1.
	ChainSeq int64
	// Hash is the row's chain hash, hex SHA-256.
	Hash string
	// RecordedAt is when the trigger wrote the row (the server's clock), in
	// UTC.
	RecordedAt time.Time
}

var auditLogTable = pgx.Identifier{"audit", "audit_log"}

// insertSQL goes to audit.audit_log itself rather than the public view: the
// same trigger runs, with one less rewrite.
var insertSQL = func() string {
	cols := make([]string, len(columns))
	params := make([]string, len(columns))
	for i, c := range columns {
		cols[i] = pgx.Identifier{c}.Sanitize()
		params[i] = "$" + strconv.Itoa(i+1)
	}
	return "INSERT INTO audit.audit_log (" + strings.Join(cols, ", ") + ") VALUES (" +
		strings.Join(params, ", ") + ") RETURNING id, chain_id, chain_seq, hash, recorded_at"
}()

// Insert validates e and writes it, returning what the database assigned.
// An invalid event returns its *ValidationError without a round trip.
func (c *Client) Insert(ctx context.Context, e Event) (Receipt, error) {
	if err := c.checkEvents([]Event{e}, false); err != nil {
		return Receipt{}, err
	}
	r, err := insert(ctx, c.pool, e)
	if err == nil && c.written != nil {
		c.written(ctx, map[string]bool{e.OrganizationID: true})
	}
	return r, err
}

// checkEvents runs the enhanced client's extra rules (HIPAA mode) on
// events, naming the index of a batch's bad event.
func (c *Client) checkEvents(events []Event, batch bool) error {
	if c.check == nil {
		return nil
	}
	for i, e := range events {
		if err := c.check(e); err != nil {
			if batch {
				return fmt.Errorf("events[%d]: %w", i, err)
			}
			return err
		}
	}
	return nil
}

func organizations(events []Event) map[string]bool {
	orgs := make(map[string]bool, 1)
	for _, e := range events {
		orgs[e.OrganizationID] = true
	}
	return orgs
}

// InsertBatch validates every event, then writes them all with one COPY
// into audit.audit_log (the trigger hashes and chains each row). It is all
// or nothing: when an event is invalid nothing is sent and the error names
// its index ("events[3]: audit_log.action: is required"); when the database
// refuses the COPY no row is written. It returns the number of rows written.
func (c *Client) InsertBatch(ctx context.Context, events []Event) (int64, error) {
	if err := c.checkEvents(events, true); err != nil {
		return 0, err
	}
	n, err := insertBatch(ctx, c.pool, events)
	if err == nil && c.written != nil {
		c.written(ctx, organizations(events))
	}
	return n, err
}

func insert(ctx context.Context, q querier, e Event) (Receipt, error) {
	row, err := e.row()
	if err != nil {
		return Receipt{}, err
	}
	var r Receipt
	if err := q.QueryRow(ctx, insertSQL, row...).Scan(&r.ID, &r.ChainID, &r.ChainSeq, &r.Hash, &r.RecordedAt); err != nil {
		return Receipt{}, fmt.Errorf("client: insert: %w", err)
	}
	r.RecordedAt = r.RecordedAt.UTC()
	return r, nil
}

func insertBatch(ctx context.Context, q querier, events []Event) (int64, error) {
	rows := make([][]any, len(events))
	for i, e := range events {
		row, err := e.row()
		if err != nil {
			return 0, fmt.Errorf("events[%d]: %w", i, err)
		}
		rows[i] = row
	}
	if len(rows) == 0 {
		return 0, nil
	}
	n, err := q.CopyFrom(ctx, auditLogTable, columns, pgx.CopyFromRows(rows))
	if err != nil {
		return 0, fmt.Errorf("client: insert batch: %w", err)
	}
	return n, nil
}

// IsolationLevel is a transaction isolation level.
type IsolationLevel string

// The isolation levels of PostgreSQL (READ UNCOMMITTED behaves as READ
// COMMITTED there).
const (
	ReadCommitted  IsolationLevel = "read committed"
	RepeatableRead IsolationLevel = "repeatable read"
	Serializable   IsolationLevel = "serializable"
)

// TxOptions configures WithTxOptions.
type TxOptions struct {
	// Isolation is the transaction's isolation level. Under REPEATABLE READ
	// and SERIALIZABLE the insert trigger may fail with a serialization
	// failure when every free chain advanced after the transaction began;
	// WithTxOptions retries those. Defaults to the session's
	// default_transaction_isolation (READ COMMITTED unless configured).
	Isolation IsolationLevel
}

// Tx is a transaction of WithTx. It is valid only until the function given
// to WithTx returns, and is not safe for concurrent use. Every event a
// transaction inserts goes into one hash chain.
type Tx struct {
	tx   pgx.Tx
	c    *Client
	orgs map[string]bool // of the events written, for Client.written after commit
}

// Insert is Client.Insert inside the transaction.
func (t *Tx) Insert(ctx context.Context, e Event) (Receipt, error) {
	if err := t.c.checkEvents([]Event{e}, false); err != nil {
		return Receipt{}, err
	}
	r, err := insert(ctx, t.tx, e)
	if err == nil {
		t.orgs[e.OrganizationID] = true
	}
	return r, err
}

// InsertBatch is Client.InsertBatch inside the transaction. A refused COPY
// aborts the transaction: return the error to roll it back.
func (t *Tx) InsertBatch(ctx context.Context, events []Event) (int64, error) {
	if err := t.c.checkEvents(events, true); err != nil {
		return 0, err
	}
	n, err := insertBatch(ctx, t.tx, events)
	if err == nil {
		for o := range organizations(events) {
			t.orgs[o] = true
		}
	}
	return n, err
}

// Search is Client.Search inside the transaction: it sees the
// transaction's own inserts.
func (t *Tx) Search(ctx context.Context, q Query) (Page, error) { return search(ctx, t.tx, q) }

// Count is Client.Count inside the transaction.
func (t *Tx) Count(ctx context.Context, q Query) (int64, error) { return count(ctx, t.tx, q) }

// Get is Client.Get inside the transaction.
func (t *Tx) Get(ctx context.Context, id int64) (StoredEvent, error) { return get(ctx, t.tx, id) }

// WithTx runs fn in a transaction, committing when fn returns nil and
// rolling back otherwise (or when fn panics); fn's error is returned as it
// is. When the transaction fails with a serialization failure or a
// deadlock (see Retryable), whether fn returned it or the commit did, the
// whole of fn runs again, up to Config.MaxRetries more times, after a short
// random pause: nothing of a failed attempt persists, the hash chains
// included. fn must therefore be safe to run more than once: keep side
// effects outside the database out of it, or make them idempotent.
func (c *Client) WithTx(ctx context.Context, fn func(tx *Tx) error) error {
	return c.WithTxOptions(ctx, TxOptions{}, fn)
}

// WithTxOptions is WithTx with options, such as a stricter isolation level.
func (c *Client) WithTxOptions(ctx context.Context, opts TxOptions, fn func(tx *Tx) error) error {
	var pgOpts pgx.TxOptions
	switch opts.Isolation {
	case "":
	case ReadCommitted:
		pgOpts.IsoLevel = pgx.ReadCommitted
	case RepeatableRead:
		pgOpts.IsoLevel = pgx.RepeatableRead
	case Serializable:
		pgOpts.IsoLevel = pgx.Serializable
	default:
		return errors.New("client: TxOptions.Isolation: must be one of read committed, repeatable read, serializable")
	}
	for attempt := 0; ; attempt++ {
		err := c.runTx(ctx, pgOpts, fn)
		if err == nil || !Retryable(err) || attempt >= c.maxRetries {
			if err != nil && attempt > 0 && Retryable(err) {
				return fmt.Errorf("client: transaction failed %d times: %w", attempt+1, err)
			}
			return err
		}
		if err := sleep(ctx, retryPause(attempt)); err != nil {
			return err
		}
	}
}

func (c *Client) runTx(ctx context.Context, opts pgx.TxOptions, fn func(tx *Tx) error) (err error) {
	ptx, err := c.pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("client: begin: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			// A rollback error adds nothing to fn's error or the panic; the
			// connection is discarded by pgx if it cannot roll back.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
			_ = ptx.Rollback(rctx)
			cancel()
		}
	}()
	tx := &Tx{tx: ptx, c: c, orgs: map[string]bool{}}
	if err := fn(tx); err != nil {
		return err
	}
	committed = true
	if err := ptx.Commit(ctx); err != nil {
		return fmt.Errorf("client: commit: %w", err)
	}
	if c.written != nil && len(tx.orgs) > 0 {
		c.written(ctx, tx.orgs)
	}
	return nil
}

// rollbackTimeout bounds the rollback of a failed attempt, which runs even
// when ctx is done.
const rollbackTimeout = 5 * time.Second

// retryPause is a full-jitter exponential backoff: up to 5ms, 10ms, 20ms...
// capped at 500ms, so that transactions that collided do not collide again.
func retryPause(attempt int) time.Duration {
	ceiling := min(5*time.Millisecond<<min(attempt, 10), 500*time.Millisecond)
	return time.Duration(rand.Int64N(int64(ceiling)) + 1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
