package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditdb/auditdb/monitor"
)

// replicaCheckTimeout bounds one check of the replica and the primary: a
// replica that takes longer to say how far behind it is is not used.
const replicaCheckTimeout = 2 * time.Second

// ReplicaState is what the client last found out about its read replica.
type ReplicaState struct {
	// InUse says whether reads go to the replica.
	InUse bool
	// Lag is how far behind the primary the replica was: zero when it had
	// replayed everything the primary had written, else the time since the
	// last transaction it replayed was committed (an upper bound).
	Lag time.Duration
	// BytesBehind is how much WAL the replica had yet to replay.
	BytesBehind int64
	// CheckedAt is when this was found out.
	CheckedAt time.Time
	// Reason says why reads go to the primary; empty while InUse.
	Reason string
}

// replicaRouter sends reads to a streaming replica while it answers and is
// within maxLag of the primary, to the primary otherwise. The replica is
// checked again on the first read after interval has passed; reads meanwhile
// follow the last check.
type replicaRouter struct {
	primary, replica *pgxpool.Pool
	maxLag, interval time.Duration

	checking atomic.Bool // one read at a time refreshes the state
	mu       sync.Mutex
	state    ReplicaState
}

// newReplicaRouter opens a pool on cfg.ReplicaURL with the primary's pool
// settings (configurePool: sizes, timeouts, TLS, application name, tracer).
func newReplicaRouter(ctx context.Context, cfg Config, primary *pgxpool.Pool) (*replicaRouter, error) {
	rcfg, err := pgxpool.ParseConfig(cfg.ReplicaURL)
	if err != nil {
		return nil, checkURL("ReplicaURL", cfg.ReplicaURL)
	}
	configurePool(rcfg, cfg)
	replica, err := pgxpool.NewWithConfig(ctx, rcfg)
	if err != nil {
		return nil, fmt.Errorf("client: open replica pool: %w", err)
	}
	return &replicaRouter{
		primary:  primary,
		replica:  replica,
		maxLag:   cfg.ReplicaMaxLag,
		interval: cfg.ReplicaCheckInterval,
		state:    ReplicaState{Reason: "not checked yet"},
	}, nil
}

// pick returns the pool a read should use, and whether it is the replica.
func (r *replicaRouter) pick(ctx context.Context) (*pgxpool.Pool, bool) {
	r.mu.Lock()
	st := r.state
	r.mu.Unlock()
	if time.Since(st.CheckedAt) >= r.interval && r.checking.CompareAndSwap(false, true) {
		st = r.refresh(ctx)
		r.checking.Store(false)
	}
	if st.InUse {
		return r.replica, true
	}
	return r.primary, false
}

func (r *replicaRouter) current() ReplicaState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

func (r *replicaRouter) set(st ReplicaState) ReplicaState {
	st.CheckedAt = time.Now()
	r.mu.Lock()
	r.state = st
	r.mu.Unlock()
	return st
}

// refresh checks the replica against the primary. The primary's position
// is read first, so a replica that has replayed up to it was current at
// the time of the check even when the primary is idle (when the replay
// timestamp, the time of the last commit replayed, grows old although
// nothing is missing).
func (r *replicaRouter) refresh(ctx context.Context) ReplicaState {
	// a read cancelled by its caller must not leave a half-done check
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), replicaCheckTimeout)
	defer cancel()
	var primaryLSN string
	if err := r.primary.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&primaryLSN); err != nil {
		return r.set(ReplicaState{Reason: "the primary does not say its WAL position, so the lag is unknown: " + monitor.ErrorClass(err)})
	}
	var inRecovery bool
	var replayLSN *string
	var sinceReplay *time.Duration
	err := r.replica.QueryRow(ctx, `SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,
		now() - pg_last_xact_replay_timestamp()`).Scan(&inRecovery, &replayLSN, &sinceReplay)
	if err != nil {
		return r.set(ReplicaState{Reason: "the replica does not answer: " + monitor.ErrorClass(err)})
	}
	if !inRecovery || replayLSN == nil {
		// a promoted replica no longer receives the primary's writes
		return r.set(ReplicaState{Reason: "the replica is not a standby (pg_is_in_recovery() is false)"})
	}
	p, err1 := parseLSN(primaryLSN)
	q, err2 := parseLSN(*replayLSN)
	if err := errors.Join(err1, err2); err != nil {
		return r.set(ReplicaState{Reason: err.Error()})
	}
	if q >= p {
		return r.set(ReplicaState{InUse: true})
	}
	st := ReplicaState{BytesBehind: int64(p - q)}
	if sinceReplay == nil {
		st.Reason = "the replica is behind and has replayed no transaction since it started, so the lag is unknown"
		return r.set(st)
	}
	st.Lag = max(*sinceReplay, 0)
	if st.Lag > r.maxLag {
		st.Reason = fmt.Sprintf("the replica lags %s behind, more than %s", st.Lag.Round(time.Millisecond), r.maxLag)
		return r.set(st)
	}
	st.InUse = true
	return r.set(st)
}

// failed records that a read on the replica failed: reads go to the
// primary until the next check.
func (r *replicaRouter) failed(err error) {
	r.set(ReplicaState{Reason: "a read on the replica failed: " + monitor.ErrorClass(err)})
}

// parseLSN reads a pg_lsn's text form, two hexadecimal halves "X/Y".
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("client: replica: malformed WAL position %q", s)
	}
	return h<<32 | l, nil
}

// replicaFailed tells whether a read's error came from the replica rather
// than from the read itself, so the read can be run on the primary: the
// connection failed, the server is shutting down, or a query was cancelled
// by a conflict with recovery (40001 on a standby).
func replicaFailed(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "40", "58":
			return true
		case "57":
			return pgErr.Code != "57014" // a statement timeout would time out again
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err)
}

// routed runs read on the pool the router picks, and again on the primary
// when the replica failed it.
func routed[T any](ctx context.Context, c *Client, read func(querier) (T, error)) (T, error) {
	if c.replica == nil {
		return read(c.pool)
	}
	db, onReplica := c.replica.pick(ctx)
	v, err := read(db)
	if err != nil && onReplica && ctx.Err() == nil && replicaFailed(err) {
		c.replica.failed(err)
		return read(c.pool)
	}
	return v, err
}

// ReadPool returns the pool reads should use now: the replica's while it
// is up and within Config.ReplicaMaxLag of the primary, else the primary's
// (always the primary's without Config.ReplicaURL). A read run on it
// directly is not retried on the primary if the replica fails meanwhile.
// Closing the client closes it.
func (c *Client) ReadPool(ctx context.Context) *pgxpool.Pool {
	if c.replica == nil {
		return c.pool
	}
	db, _ := c.replica.pick(ctx)
	return db
}

// ReplicaState returns what the client last found out about its replica,
// and false when it has none (no Config.ReplicaURL).
func (c *Client) ReplicaState() (ReplicaState, bool) {
	if c.replica == nil {
		return ReplicaState{}, false
	}
	return c.replica.current(), true
}
