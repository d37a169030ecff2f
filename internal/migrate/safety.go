package migrate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	auditsql "github.com/auditdb/auditdb/sql"
)

// Production safety of migrations: the server version check, lock_timeout
// with bounded retries on every step. Kept apart from migrate.go, whose
// step loop only calls runStep.

// MinServerVersionNum is the oldest PostgreSQL the schema runs on, as
// server_version_num: 14, whose SQL-standard function bodies (CREATE
// FUNCTION ... RETURN) the steps use.
const MinServerVersionNum = 140000

// Defaults of the step lock settings.
const (
	// LockTimeoutDefault bounds how long one statement of a step waits for
	// a lock (DDL on audit tables that a long report or verification
	// holds); then the step is rolled back and retried.
	LockTimeoutDefault = 5 * time.Second
	// LockRetriesDefault is how many times a step that hit lock_timeout is
	// tried again before the migration fails.
	LockRetriesDefault = 5
	// LockRetryBackoffDefault is the wait before the first retry; it
	// doubles each time (5 retries: 1+2+4+8+16 s).
	LockRetryBackoffDefault = time.Second
)

var (
	queryServerVersion = auditsql.MustQuery("ServerVersionRead")
	queryLockTimeout   = auditsql.MustQuery("MigrationStepLockTimeoutSet")
)

// ErrServerTooOld is wrapped by CheckServerVersion.
var ErrServerTooOld = errors.New("migrate: PostgreSQL too old")

// CheckServerVersion refuses servers older than MinServerVersionNum with
// one line naming the version found.
func CheckServerVersion(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) error {
	var (
		num     int
		version string
	)
	if err := q.QueryRow(ctx, queryServerVersion).Scan(&num, &version); err != nil {
		return fmt.Errorf("migrate: server version: %w", err)
	}
	return CheckServerVersionNum(num, version)
}

// CheckServerVersionNum is CheckServerVersion's rule on a server_version_num
// and a server_version.
func CheckServerVersionNum(num int, version string) error {
	if num >= MinServerVersionNum {
		return nil
	}
	// "13.4 (Debian 13.4-1)": the number is enough
	if f := strings.Fields(version); len(f) > 0 {
		version = f[0]
	}
	return fmt.Errorf("%w: found PostgreSQL %s; auditdb's schema needs PostgreSQL %d or newer", ErrServerTooOld, version, MinServerVersionNum/10000)
}

// lockSettings are Options' lock fields with their defaults applied.
type lockSettings struct {
	timeout time.Duration
	retries int
	backoff time.Duration
	onRetry func(step, attempt int, wait time.Duration)
}

func (o Options) lockSettings() (lockSettings, error) {
	s := lockSettings{timeout: o.LockTimeout, retries: o.LockRetries, backoff: o.LockRetryBackoff, onRetry: o.OnLockRetry}
	switch {
	case s.timeout < 0:
		return s, errors.New("migrate: Options.LockTimeout: must not be negative")
	case s.backoff < 0:
		return s, errors.New("migrate: Options.LockRetryBackoff: must not be negative")
	}
	if s.timeout == 0 {
		s.timeout = LockTimeoutDefault
	}
	switch {
	case o.LockRetries == 0:
		s.retries = LockRetriesDefault
	case o.LockRetries < 0:
		s.retries = 0
	}
	if s.backoff == 0 {
		s.backoff = LockRetryBackoffDefault
	}
	return s, nil
}

// runStep runs fn in a transaction whose statements wait at most
// s.timeout for a lock. A step that hits it (SQLSTATE 55P03,
// lock_not_available) is rolled back whole, so nothing of it stays, and
// tried again after a backoff that doubles, s.retries times at most.
// Other errors fail at once.
func runStep(ctx context.Context, conn interface {
	Begin(context.Context) (pgx.Tx, error)
}, version int, s lockSettings, fn func(tx pgx.Tx) error) error {
	wait := s.backoff
	for attempt := 0; ; attempt++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, queryLockTimeout, strconv.FormatInt(s.timeout.Milliseconds(), 10)); err != nil {
				return err
			}
			return fn(tx)
		})
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55P03" {
			return err
		}
		if attempt >= s.retries {
			return fmt.Errorf("a lock was not granted within lock_timeout (%s) in %d attempts; find the session holding it (pg_locks, pg_stat_activity) or raise --lock-timeout: %w",
				s.timeout, attempt+1, err)
		}
		if s.onRetry != nil {
			s.onRetry(version, attempt+1, wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}
