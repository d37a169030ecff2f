package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"
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

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "integrity and partitions at a glance",
		Flags: []cli.Flag{jsonFlag()},
		Action: withPool(func(c *cli.Context, pool *pgxpool.Pool) error {
			chains, err := integrityStatus(c.Context, pool)
			if err != nil {
				return err
			}
			parts, err := listPartitions(c.Context, pool)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, map[string]any{"chains": chains, "partitions": parts})
			}
			fmt.Fprintln(c.App.Writer, "Integrity (audit.integrity_status)")
			printIntegrity(c.App.Writer, chains)
			fmt.Fprintln(c.App.Writer, "\nPartitions (audit.partition_status)")
			printPartitions(c.App.Writer, parts)
			return nil
		}),
	}
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
