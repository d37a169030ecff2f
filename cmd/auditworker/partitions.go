package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/workers"
)

func partitionsCommand() *cli.Command {
	return &cli.Command{
		Name:  "partitions",
		Usage: "list, create and repair audit_log's monthly partitions",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "every partition with bounds, size, row estimate and what needs doing",
				Flags: []cli.Flag{jsonFlag()},
				Action: withPool(func(c *cli.Context, pool *pgxpool.Pool) error {
					parts, err := listPartitions(c.Context, pool)
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(c.App.Writer, parts)
					}
					printPartitions(c.App.Writer, parts)
					return nil
				}),
			},
			{
				Name:  "ensure",
				Usage: "create partitions from this month through --months-ahead (idempotent)",
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "months-ahead", Value: workers.MonthsAheadDefault, Usage: "months after the current one", EnvVars: []string{"AUDIT_PARTITIONS_AHEAD"}},
					jsonFlag(),
				},
				Action: func(c *cli.Context) error {
					n := c.Int("months-ahead")
					if n < 0 || n > 120 {
						return fmt.Errorf("months-ahead: must be between 0 and 120, got %d", n)
					}
					return withPool(func(c *cli.Context, pool *pgxpool.Pool) error {
						return partitionChange(c, pool, `SELECT partition_name, created, rows_moved FROM audit.ensure_partitions($1)`, n)
					})(c)
				},
			},
			{
				Name:  "rescue",
				Usage: "move rows out of the default partition into their months (no row lost or re-hashed; one transaction per month, as the worker's job)",
				Flags: []cli.Flag{jsonFlag()},
				Action: withPool(func(c *cli.Context, pool *pgxpool.Pool) error {
					// the partitions job's own code (one month per transaction,
					// no lock outliving its month), for this month and the
					// months found in the default partition
					changes, err := (&workers.Deps{Pool: pool, Logger: cliLogger(c)}).MaintainPartitions(c.Context, 0)
					if err != nil {
						return err
					}
					rows := make([]partitionChangeRow, len(changes))
					for i, ch := range changes {
						rows[i] = partitionChangeRow(ch)
					}
					return printPartitionChanges(c, rows)
				}),
			},
		},
	}
}

type partitionChangeRow struct {
	Partition string `json:"partition"`
	Created   bool   `json:"created"`
	RowsMoved int64  `json:"rows_moved"`
}

func partitionChange(c *cli.Context, pool *pgxpool.Pool, sql string, args ...any) error {
	rows, err := pool.Query(c.Context, sql, args...)
	if err != nil {
		return err
	}
	changes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (partitionChangeRow, error) {
		var p partitionChangeRow
		err := r.Scan(&p.Partition, &p.Created, &p.RowsMoved)
		return p, err
	})
	if err != nil {
		return err
	}
	return printPartitionChanges(c, changes)
}

func printPartitionChanges(c *cli.Context, changes []partitionChangeRow) error {
	if c.Bool("json") {
		return printJSON(c.App.Writer, changes)
	}
	if len(changes) == 0 {
		fmt.Fprintln(c.App.Writer, "nothing to do")
		return nil
	}
	out := make([][]string, len(changes))
	for i, ch := range changes {
		state := "exists"
		if ch.Created {
			state = "created"
		}
		out[i] = []string{ch.Partition, state, fmt.Sprint(ch.RowsMoved)}
	}
	table(c.App.Writer, []string{"PARTITION", "STATE", "ROWS MOVED"}, out)
	return nil
}

// Partition is one row of audit.partition_status.
type Partition struct {
	Name        string     `json:"partition"`
	IsDefault   bool       `json:"is_default"`
	RangeStart  *time.Time `json:"range_start"`
	RangeEnd    *time.Time `json:"range_end"`
	TotalBytes  int64      `json:"total_bytes"`
	TotalSize   string     `json:"total_size"`
	RowEstimate int64      `json:"row_estimate"`
	TriggersOK  bool       `json:"triggers_ok"`
	Note        string     `json:"note"`
}

func listPartitions(ctx context.Context, pool *pgxpool.Pool) ([]Partition, error) {
	rows, err := pool.Query(ctx, `SELECT partition_name, is_default, range_start, range_end, total_bytes,
		total_size, row_estimate, triggers_ok, note FROM audit.partition_status`)
	if err != nil {
		return nil, fmt.Errorf("partitions: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Partition, error) {
		var p Partition
		err := r.Scan(&p.Name, &p.IsDefault, &p.RangeStart, &p.RangeEnd, &p.TotalBytes, &p.TotalSize,
			&p.RowEstimate, &p.TriggersOK, &p.Note)
		return p, err
	})
}

func printPartitions(w io.Writer, parts []Partition) {
	out := make([][]string, len(parts))
	day := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format("2006-01-02")
	}
	for i, p := range parts {
		out[i] = []string{p.Name, day(p.RangeStart), day(p.RangeEnd), p.TotalSize, fmt.Sprint(p.RowEstimate), p.Note}
	}
	table(w, []string{"PARTITION", "FROM", "TO", "SIZE", "ROWS (EST.)", "NOTE"}, out)
}
