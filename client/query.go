package client

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/auditdb/auditdb/cache"
	auditsql "github.com/auditdb/auditdb/sql"
)

// CachedQueryOptions are the cache settings of one QueryCached call.
type CachedQueryOptions struct {
	// Key names the result in the cache instead of the SQL text and its
	// arguments. Two calls with the same Key (and scope and row type) share
	// a result, whatever their SQL: give different queries different keys.
	// Defaults to empty: the SQL text and arguments (which must then encode
	// to JSON).
	Key string
	// TTL is how long the result lives in Redis, and in L1 at most L1TTL.
	// Defaults to 0: the cache's L1TTL and L2TTL.
	TTL time.Duration
	// OrganizationID scopes the result: events written for that
	// organization through any enhanced client sharing the Redis drop it,
	// as they drop Search's pages. Empty: every write drops it. Scope a
	// query by the organization its result depends on; a query that reads
	// several organizations must leave it empty.
	OrganizationID string
}

// ErrNotReadOnly is returned (wrapped) by QueryCached when the SQL tried to
// write: it runs in a READ ONLY transaction, which PostgreSQL enforces.
var ErrNotReadOnly = errors.New("client: cached query: only read-only SQL may be cached")

var queryReadOnlyCheck = auditsql.MustQuery("CachedQueryReadOnlyCheck")

// QueryCached runs a read-only SQL statement through the enhanced client's
// cache and returns its rows as T, the documented cached query of the
// upstream package (query(sql, params, {cacheKey, ttl})).
//
// T is a struct, whose exported fields receive the columns of the same
// name (a `db:"name"` tag renames, case does not matter; every column
// needs a field: pgx.RowToStructByName), or a single value type (int64,
// string, time.Time, ...) for one-column results (pgx.RowTo). Results are
// kept as JSON in Redis, so T must round-trip through encoding/json; the
// slice returned is shared with the cache: read it, never modify it.
//
// The statement runs in a READ ONLY transaction on the primary (never a
// replica, as for Search); a statement that writes fails there with
// ErrNotReadOnly, and nothing is cached. One statement per call. Cache
// misses, hits, load times and Redis health count in CacheStats, Metrics
// and Health like Search's. See the package documentation, "Cached
// queries", for when results are dropped.
func QueryCached[T any](ctx context.Context, e *Enhanced, opts CachedQueryOptions, sql string, args ...any) ([]T, error) {
	if strings.TrimSpace(sql) == "" {
		return nil, errors.New("client: cached query: sql: required")
	}
	if opts.TTL < 0 {
		return nil, errors.New("client: cached query: CachedQueryOptions.TTL: must not be negative")
	}
	load := func(ctx context.Context) ([]T, error) { return queryReadOnly[T](ctx, e, sql, args) }
	if e.cache == nil {
		return load(ctx)
	}
	scope := opts.OrganizationID
	var (
		key cache.Key
		err error
	)
	if opts.Key != "" {
		key, err = cache.QueryKey(scope, "query-key", opts.Key)
	} else {
		key, err = cache.QueryKey(scope, "query", sql, args)
	}
	if err != nil {
		return nil, fmt.Errorf("client: cached query: arguments must encode to JSON, or give CachedQueryOptions.Key: %w", err)
	}
	typed := cache.NewTyped(e.cache, cache.JSONCodec[[]T]())
	return typed.Get(ctx, key.WithTTL(opts.TTL), load)
}

// queryReadOnly runs sql in a READ ONLY transaction and scans its rows.
func queryReadOnly[T any](ctx context.Context, e *Enhanced, sql string, args []any) ([]T, error) {
	var out []T
	err := pgx.BeginTxFunc(ctx, e.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var ro bool
		if err := tx.QueryRow(ctx, queryReadOnlyCheck).Scan(&ro); err != nil {
			return err
		}
		if !ro {
			return ErrNotReadOnly // not reachable: BEGIN READ ONLY
		}
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		if reflect.TypeFor[T]().Kind() == reflect.Struct && reflect.TypeFor[T]() != reflect.TypeFor[time.Time]() {
			out, err = pgx.CollectRows(rows, pgx.RowToStructByName[T])
		} else {
			out, err = pgx.CollectRows(rows, pgx.RowTo[T])
		}
		return err
	})
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "25006": // read_only_sql_transaction
		return nil, fmt.Errorf("%w: the statement tried to write (SQLSTATE 25006)", ErrNotReadOnly)
	case err != nil:
		return nil, fmt.Errorf("client: cached query: %w", err)
	}
	if out == nil {
		out = []T{}
	}
	return out, nil
}
