package monitor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrStatementsUnavailable is returned (wrapped) by TopStatements when the
// database cannot report statement statistics: the pg_stat_statements
// extension is not created in it, or the server does not load it
// (shared_preload_libraries).
var ErrStatementsUnavailable = errors.New("monitor: pg_stat_statements is not available " +
	"(add it to shared_preload_libraries and run CREATE EXTENSION pg_stat_statements)")

// Statement is one row of pg_stat_statements: a statement shape with its
// accumulated cost in the current database.
type Statement struct {
	// QueryID is pg_stat_statements' queryid.
	QueryID int64 `json:"query_id"`
	// Query is the statement text, normalised (NormalizeSQL) on top of
	// pg_stat_statements' own normalisation, which keeps utility
	// statements' literals.
	Query string `json:"query"`
	// Calls is how many times it ran; Rows how many rows it returned or
	// affected in all.
	Calls int64 `json:"calls"`
	Rows  int64 `json:"rows"`
	// TotalTime and MeanTime are its execution times.
	TotalTime time.Duration `json:"total_time_ns"`
	MeanTime  time.Duration `json:"mean_time_ns"`
	// HitRatio is the share of its shared-buffer reads found in the buffer
	// cache (0 to 1; 1 when it read nothing).
	HitRatio float64 `json:"hit_ratio"`
}

// Querier runs queries: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// TopStatements returns up to n statements of the current database by
// total execution time, most expensive first, or an error wrapping
// ErrStatementsUnavailable. A role without pg_read_all_stats sees other
// roles' statement texts as "<insufficient privilege>".
func TopStatements(ctx context.Context, db Querier, n int) ([]Statement, error) {
	if n < 1 {
		return nil, fmt.Errorf("monitor: top statements: n must be at least 1 (%d)", n)
	}
	var schema *string
	err := db.QueryRow(ctx, `SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
		WHERE e.extname = 'pg_stat_statements'`).Scan(&schema)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("monitor: top statements: extension not created in this database: %w", ErrStatementsUnavailable)
	}
	if err != nil {
		return nil, fmt.Errorf("monitor: top statements: %w", err)
	}
	view := pgx.Identifier{*schema, "pg_stat_statements"}.Sanitize()
	rows, err := db.Query(ctx, `SELECT coalesce(queryid, 0), coalesce(query, ''), calls, rows,
			total_exec_time, mean_exec_time, shared_blks_hit, shared_blks_read
		FROM `+view+`
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		ORDER BY total_exec_time DESC
		LIMIT $1`, n)
	if err != nil {
		return nil, statementsError(err)
	}
	defer rows.Close()
	var out []Statement
	for rows.Next() {
		var s Statement
		var totalMS, meanMS float64
		var hit, read int64
		if err := rows.Scan(&s.QueryID, &s.Query, &s.Calls, &s.Rows, &totalMS, &meanMS, &hit, &read); err != nil {
			return nil, statementsError(err)
		}
		s.Query = NormalizeSQL(s.Query)
		s.TotalTime = time.Duration(totalMS * float64(time.Millisecond))
		s.MeanTime = time.Duration(meanMS * float64(time.Millisecond))
		s.HitRatio = 1
		if hit+read > 0 {
			s.HitRatio = float64(hit) / float64(hit+read)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, statementsError(err)
	}
	return out, nil
}

func statementsError(err error) error {
	// "pg_stat_statements must be loaded via shared_preload_libraries"
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "55000" {
		return fmt.Errorf("monitor: top statements: server does not load the library: %w", ErrStatementsUnavailable)
	}
	return fmt.Errorf("monitor: top statements: %w", err)
}
