package workers

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/auditdb/auditdb/internal/migrate"
)

// MonthsAheadDefault is how many months of partitions are kept ahead of the
// current one: the same number `auditworker migrate` creates.
const MonthsAheadDefault = migrate.MonthsAheadDefault

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
// monthsAhead months ahead and moves the rows found in the default partition
// into their month (audit.partition_months, audit.create_partition). Each
// month is its own transaction, so no lock outlives the month it is for, and
// audit.create_partition never takes ACCESS EXCLUSIVE on audit_log and locks
// the parent before its partitions, as every query does (step 0013): writers
// of months that have a partition never wait for it, and it cannot deadlock
// with a seal or a verification reading the log. It is idempotent and moves
// rows as they are, so a retry neither loses nor re-hashes a row, and a
// non-empty default partition never blocks creating a month. It returns
// the partitions that changed.
func (d *Deps) MaintainPartitions(ctx context.Context, monthsAhead int) ([]PartitionChange, error) {
	if monthsAhead < 0 || monthsAhead > 120 {
		return nil, fmt.Errorf("partitions: months ahead must be between 0 and 120, got %d", monthsAhead)
	}
	rows, err := d.Pool.Query(ctx, `SELECT audit.partition_months($1)`, monthsAhead)
	if err != nil {
		return nil, fmt.Errorf("partitions: %w", err)
	}
	months, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return nil, fmt.Errorf("partitions: %w", err)
	}
	var changes []PartitionChange
	for _, m := range months {
		var c PartitionChange
		err := d.Pool.QueryRow(ctx, `SELECT partition_name, created, rows_moved FROM audit.create_partition($1)`, m).
			Scan(&c.Partition, &c.Created, &c.RowsMoved)
		if err != nil {
			return changes, fmt.Errorf("partitions: month %s: %w", m.Format("2006-01"), err)
		}
		if c.Created || c.RowsMoved > 0 {
			d.logger().InfoContext(ctx, "partitions: changed", "partition", c.Partition, "created", c.Created, "rows_moved", c.RowsMoved)
			changes = append(changes, c)
		}
	}
	return changes, nil
}
