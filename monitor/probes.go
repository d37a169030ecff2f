package monitor

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The probes below read the facts of one condition each. Health and
// EvaluateAlerts both judge by them, so the two cannot disagree about what
// the database holds; they differ only in thresholds and wording. Each
// reads only what audit_reader may (the status views,
// audit.verification_runs and, since step 0019, audit.audit_log_default).

// tamperState is what the verification record says about tampering.
type tamperState struct {
	// Chains is how many chains the newest run that covered them found
	// tampered with (audit.integrity_status.state), so that a newer run
	// over other chains does not hide it; RunID is the newest such run.
	Chains int
	RunID  int64
	// Latest is the newest finished run, nil when none has finished.
	Latest *finishedRun
}

// finishedRun is one finished row of audit.verification_runs.
type finishedRun struct {
	ID       int64
	Status   string // intact, tampered or failed
	Findings int
	Age      time.Duration // since it finished
}

// Tampered says whether the log was found tampered with: on some chain, or
// by the newest finished run.
func (s tamperState) Tampered() bool {
	return s.Chains > 0 || (s.Latest != nil && s.Latest.Status == "tampered")
}

// tamperedChains reads the chains found tampered with and the newest
// finished verification run.
func tamperedChains(ctx context.Context, pool *pgxpool.Pool) (tamperState, error) {
	var s tamperState
	var runID *int64
	if err := pool.QueryRow(ctx, `SELECT count(*), max(last_run_id) FROM audit.integrity_status WHERE state = 'tampered'`).
		Scan(&s.Chains, &runID); err != nil {
		return s, &probeError{"audit.integrity_status", err}
	}
	if runID != nil {
		s.RunID = *runID
	}
	var r finishedRun
	err := pool.QueryRow(ctx, `SELECT id, status, findings_count, now() - finished_at
		FROM audit.verification_runs
		WHERE finished_at IS NOT NULL AND status <> 'running'
		ORDER BY finished_at DESC, id DESC
		LIMIT 1`).Scan(&r.ID, &r.Status, &r.Findings, &r.Age)
	switch {
	case err == nil:
		s.Latest = &r
	case !errors.Is(err, pgx.ErrNoRows):
		return s, &probeError{"audit.verification_runs", err}
	}
	return s, nil
}

// sealLagState is how far sealing lags, over the chains with rows no HMAC
// checkpoint covers yet.
type sealLagState struct {
	Chains   int           // chains with unsealed rows
	Unsealed int64         // unsealed rows over them
	Oldest   time.Duration // age of the oldest unsealed row
	// Past: chains past the thresholds given to sealLag, the most
	// unsealed rows of one of them, and the oldest unsealed row among them.
	Past        int
	PastMaxRows int64
	PastOldest  time.Duration
}

// sealLag measures, per chain, how long ago the first row after the newest
// checkpoint was written (when retention has already removed that row, the
// time the chain's head last moved stands in, a lower bound) and how many
// rows follow the checkpoint. A chain is past the thresholds when its
// oldest unsealed row is older than maxAge or, when maxRows is positive,
// it has more than maxRows unsealed rows.
func sealLag(ctx context.Context, pool *pgxpool.Pool, maxAge time.Duration, maxRows int64) (sealLagState, error) {
	var s sealLagState
	err := pool.QueryRow(ctx, `
SELECT count(*), coalesce(sum(unsealed_rows), 0)::bigint, coalesce(max(age), interval '0'),
       count(*) FILTER (WHERE past), coalesce(max(unsealed_rows) FILTER (WHERE past), 0)::bigint,
       coalesce(max(age) FILTER (WHERE past), interval '0')
FROM (SELECT unsealed_rows, age, (age > $1 OR ($2 > 0 AND unsealed_rows > $2)) AS past
      FROM (SELECT unsealed_rows, coalesce(now() - oldest_unsealed_at, interval '0') AS age
            FROM audit.integrity_status WHERE unsealed_rows > 0) a) c`, maxAge, maxRows).
		Scan(&s.Chains, &s.Unsealed, &s.Oldest, &s.Past, &s.PastMaxRows, &s.PastOldest)
	if err != nil {
		return s, &probeError{"audit.integrity_status", err}
	}
	return s, nil
}

// partitionsState is what audit.partition_status says of the partitions.
type partitionsState struct {
	Ahead           int  // monthly partitions after the current month
	Current         int  // partitions holding the current month
	DefaultHasRows  bool // rows landed in the default partition
	MissingTriggers bool // a partition lacks the statement triggers
}

// partitionsAhead reads the partitions ahead and what needs doing.
func partitionsAhead(ctx context.Context, pool *pgxpool.Pool) (partitionsState, error) {
	var s partitionsState
	err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE NOT is_default AND range_start > now()),
			count(*) FILTER (WHERE NOT is_default AND range_start <= now() AND range_end > now()),
			coalesce(bool_or(is_default AND note LIKE 'holds rows%'), false),
			coalesce(bool_or(NOT triggers_ok AND NOT is_default), false)
		FROM audit.partition_status`).Scan(&s.Ahead, &s.Current, &s.DefaultHasRows, &s.MissingTriggers)
	if err != nil {
		return s, &probeError{"audit.partition_status", err}
	}
	return s, nil
}

// defaultPartitionRows counts the rows of the default partition, stopping
// past limit. It reads audit.audit_log_default directly (through the parent
// it would scan every partition); step 0019 grants that to audit_reader.
func defaultPartitionRows(ctx context.Context, pool *pgxpool.Pool, limit int64) (int64, error) {
	var n int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM audit.audit_log_default LIMIT $1) d`, limit).Scan(&n); err != nil {
		return 0, &probeError{"audit.audit_log_default", err}
	}
	return n, nil
}

// probeError is a probe's failure to read a relation.
type probeError struct {
	relation string
	err      error
}

func (e *probeError) Error() string { return "read " + e.relation + ": " + e.err.Error() }
func (e *probeError) Unwrap() error { return e.err }

// healthDetail describes a probe's failure for a health detail: the
// relation and ErrorClass, nothing of the connection.
func healthDetail(err error) string {
	var pe *probeError
	if errors.As(err, &pe) {
		return "cannot read " + pe.relation + ": " + ErrorClass(err)
	}
	return "cannot read: " + ErrorClass(err)
}
