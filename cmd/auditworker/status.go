package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/monitor"
	"github.com/auditdb/auditdb/workers"
)

// ChainStatus is one row of audit.integrity_status.
type ChainStatus struct {
	ChainID          int16      `json:"chain_id"`
	HeadSeq          int64      `json:"head_seq"`
	LastCheckpoint   *int64     `json:"last_checkpoint_seq"`
	LastCheckpointAt *time.Time `json:"last_checkpoint_at"`
	UnsealedRows     int64      `json:"unsealed_rows"`
	LastVerifiedAt   *time.Time `json:"last_verified_at"`
	VerifiedSeq      *int64     `json:"verified_seq"`
	Findings         int        `json:"findings"`
	State            string     `json:"state"`
}

// statusSection is one part of `auditworker status`: load reads it, print
// shows it as a table, and --json puts it under key. Every part of the
// system with something to show at a glance adds one entry to
// statusSections (alerts too).
type statusSection struct {
	key, title string
	load       func(ctx context.Context, pool *pgxpool.Pool) (any, error)
	print      func(w io.Writer, v any)
}

// section adapts typed load and print functions to a statusSection.
func section[T any](key, title string, load func(context.Context, *pgxpool.Pool) (T, error), print func(io.Writer, T)) statusSection {
	return statusSection{key: key, title: title,
		load:  func(ctx context.Context, pool *pgxpool.Pool) (any, error) { return load(ctx, pool) },
		print: func(w io.Writer, v any) { print(w, v.(T)) },
	}
}

func statusSections() []statusSection {
	return []statusSection{
		section("chains", "Integrity (audit.integrity_status)", integrityStatus, printIntegrity),
		section("partitions", "Partitions (audit.partition_status)", listPartitions, printPartitions),
		section("jobs", "Jobs (River, by kind and state)", jobCounts, printJobCounts),
		section("alerts", "Alerts (open and acknowledged)", activeAlerts, printAlerts),
	}
}

func activeAlerts(ctx context.Context, pool *pgxpool.Pool) ([]monitor.Alert, error) {
	return monitor.NewAlertStore(pool, monitor.AlertStoreOptions{}).List(ctx, "active", 100)
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "integrity, partitions, jobs and alerts at a glance",
		Flags: []cli.Flag{jsonFlag()},
		Action: withPool(func(c *cli.Context, pool *pgxpool.Pool) error {
			sections := statusSections()
			data := make(map[string]any, len(sections))
			for _, s := range sections {
				v, err := s.load(c.Context, pool)
				if err != nil {
					return err
				}
				data[s.key] = v
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, data)
			}
			for i, s := range sections {
				if i > 0 {
					fmt.Fprintln(c.App.Writer)
				}
				fmt.Fprintln(c.App.Writer, s.title)
				s.print(c.App.Writer, data[s.key])
			}
			return nil
		}),
	}
}

func jobCounts(ctx context.Context, pool *pgxpool.Pool) ([]workers.JobCount, error) {
	counts, err := workers.JobCounts(ctx, pool)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return counts, nil
}

func printJobCounts(w io.Writer, counts []workers.JobCount) {
	if len(counts) == 0 {
		fmt.Fprintln(w, "no jobs yet (auditworker run works them)")
		return
	}
	rows := make([][]string, len(counts))
	for i, jc := range counts {
		rows[i] = []string{jc.Kind, jc.State, fmt.Sprint(jc.Count)}
	}
	table(w, []string{"KIND", "STATE", "COUNT"}, rows)
}

func integrityStatus(ctx context.Context, pool *pgxpool.Pool) ([]ChainStatus, error) {
	rows, err := pool.Query(ctx, `SELECT chain_id, head_seq, last_checkpoint_seq, last_checkpoint_at,
		unsealed_rows, last_verified_at, verified_seq, findings, state
		FROM audit.integrity_status ORDER BY chain_id`)
	if err != nil {
		return nil, fmt.Errorf("integrity status: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ChainStatus, error) {
		var s ChainStatus
		err := r.Scan(&s.ChainID, &s.HeadSeq, &s.LastCheckpoint, &s.LastCheckpointAt, &s.UnsealedRows,
			&s.LastVerifiedAt, &s.VerifiedSeq, &s.Findings, &s.State)
		return s, err
	})
}

func printIntegrity(w io.Writer, chains []ChainStatus) {
	opt := func(v *int64) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprint(*v)
	}
	when := func(t *time.Time) string {
		if t == nil {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	}
	out := make([][]string, len(chains))
	for i, s := range chains {
		out[i] = []string{fmt.Sprint(s.ChainID), fmt.Sprint(s.HeadSeq), opt(s.LastCheckpoint), fmt.Sprint(s.UnsealedRows),
			when(s.LastVerifiedAt), opt(s.VerifiedSeq), fmt.Sprint(s.Findings), s.State}
	}
	table(w, []string{"CHAIN", "HEAD SEQ", "CHECKPOINT", "UNSEALED", "VERIFIED AT", "VERIFIED SEQ", "FINDINGS", "STATE"}, out)
}
