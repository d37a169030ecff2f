package workers

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// MonthsAheadDefault is how many months of partitions are kept ahead of the
// current one.
const MonthsAheadDefault = 3

// PartitionsArgs is the partitions job: keep MonthsAhead months of
// partitions ahead and move rows found in the default partition into their
// month.
type PartitionsArgs struct {
	MonthsAhead int `json:"months_ahead"`
}

// Kind names the job in River.
func (PartitionsArgs) Kind() string { return "auditdb_partitions" }

// InsertOpts puts the job on the suite's queue.
func (PartitionsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: 5}
}

// PartitionsWorker works PartitionsArgs jobs.
type PartitionsWorker struct {
	river.WorkerDefaults[PartitionsArgs]
	Deps *Deps
}

// Work maintains partitions; see Deps.MaintainPartitions.
func (w *PartitionsWorker) Work(ctx context.Context, job *river.Job[PartitionsArgs]) error {
	_, err := w.Deps.MaintainPartitions(ctx, job.Args.MonthsAhead)
	return err
}

// PartitionChange is one partition a maintenance run created or moved rows
// into.
type PartitionChange struct {
	Partition string `json:"partition"`
	Created   bool   `json:"created"`
	RowsMoved int64  `json:"rows_moved"`
}

// MaintainPartitions creates the partitions from this month through
// monthsAhead months ahead, then rescues rows of other months from the
// default partition (audit.ensure_partitions, audit.rescue_default_partition).
// Both functions are idempotent and move rows as they are, so a retry
// neither loses nor re-hashes a row, and a non-empty default partition never
// blocks creating a month. It returns the partitions that changed.
func (d *Deps) MaintainPartitions(ctx context.Context, monthsAhead int) ([]PartitionChange, error) {
	if monthsAhead < 0 || monthsAhead > 120 {
		return nil, fmt.Errorf("partitions: months ahead must be between 0 and 120, got %d", monthsAhead)
	}
	var changes []PartitionChange
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`SELECT partition_name, created, rows_moved FROM audit.ensure_partitions($1)`, []any{monthsAhead}},
		{`SELECT partition_name, created, rows_moved FROM audit.rescue_default_partition()`, nil},
	} {
		rows, err := d.Pool.Query(ctx, q.sql, q.args...)
		if err != nil {
			return nil, fmt.Errorf("partitions: %w", err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[PartitionChange])
		if err != nil {
			return nil, fmt.Errorf("partitions: %w", err)
		}
		for _, c := range got {
			if c.Created || c.RowsMoved > 0 {
				changes = append(changes, c)
			}
		}
	}
	for _, c := range changes {
		d.logger().InfoContext(ctx, "partitions: changed", "partition", c.Partition, "created", c.Created, "rows_moved", c.RowsMoved)
	}
	return changes, nil
}
