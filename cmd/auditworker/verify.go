package main

import (
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/verifier"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "re-compute every chain and report tampering (exit 0 intact, 2 tampered, 1 error)",
		Flags: append([]cli.Flag{
			jsonFlag(),
			&cli.BoolFlag{Name: "incremental", Usage: "start each chain from its last verified checkpoint instead of its first row", EnvVars: []string{"AUDIT_VERIFY_INCREMENTAL"}},
			&cli.IntSliceFlag{Name: "chain", Usage: "verify only this chain id (repeatable)", EnvVars: []string{"AUDIT_VERIFY_CHAINS"}},
			&cli.BoolFlag{Name: "no-record", Usage: "do not record the run in audit.verification_runs", EnvVars: []string{"AUDIT_VERIFY_NO_RECORD"}},
			&cli.IntFlag{Name: "parallel", Usage: "chains read at once (default: CPUs)", EnvVars: []string{"AUDIT_VERIFY_PARALLEL"}},
			replicaFlag(),
		}, sealKeyFlags()...),
		Action: withPool(func(c *cli.Context, pool *pgxpool.Pool) error {
			keys, err := optionalSealKeys(c)
			if err != nil {
				return err
			}
			replica, err := connectReplica(c, nil)
			if err != nil {
				return err
			}
			if replica != nil {
				defer replica.Close()
			}
			opts := verifier.Options{NoRecord: c.Bool("no-record"), Parallel: c.Int("parallel"), Incremental: c.Bool("incremental"), Source: replica}
			if keys != nil {
				opts.Keys = keys.Ring
			}
			for _, id := range c.IntSlice("chain") {
				if id < 0 || id > 32767 {
					return fmt.Errorf("chain: %d is not a chain id (0..32767)", id)
				}
				opts.Chains = append(opts.Chains, int16(id))
			}
			rep, err := runVerify(c, pool, opts)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				if err := printJSON(c.App.Writer, rep); err != nil {
					return err
				}
			} else {
				printReport(c.App.Writer, rep)
			}
			if !rep.Intact() {
				return errTampered
			}
			return nil
		}),
	}
}

// runVerify runs the verifier with a progress bar on a terminal.
func runVerify(c *cli.Context, pool *pgxpool.Pool, opts verifier.Options) (*integrity.Report, error) {
	if isTerminal(c.App.ErrWriter) {
		start := time.Now()
		opts.Progress = func(done, total int64) { progressBar(c.App.ErrWriter, "verify", "rows", done, total, start) }
	}
	rep, err := verifier.Verify(c.Context, pool, opts)
	if opts.Progress != nil {
		fmt.Fprintln(c.App.ErrWriter)
	}
	return rep, err
}

// progressBar redraws, in place on w, the progress of what: done of total
// units, and the rate since start.
func progressBar(w io.Writer, what, unit string, done, total int64, start time.Time) {
	bar, frac := drawBar(done, total)
	rate := float64(done) / max(time.Since(start).Seconds(), 1e-9)
	fmt.Fprintf(w, "\r%s [%s] %3.0f%% %d/%d %s, %.0f %s/s ", what, bar, frac*100, done, total, unit, rate, unit)
}

// drawBar draws done of total as a bar of '#' (a cell partly done counts)
// and '.', and returns the fraction done; a total of 0 is done.
func drawBar(done, total int64) (string, float64) {
	const width = 30
	frac := 1.0
	if total > 0 {
		frac = min(float64(done)/float64(total), 1)
	}
	bar := make([]byte, width)
	for i := range bar {
		if float64(i) < frac*width {
			bar[i] = '#'
		} else {
			bar[i] = '.'
		}
	}
	return string(bar), frac
}

func printReport(w io.Writer, rep *integrity.Report) {
	verdict := "INTACT"
	if !rep.Intact() {
		verdict = "TAMPERED"
	}
	fmt.Fprintf(w, "%s verification %s: %d rows in %d chains, %s (%.0f rows/s)", rep.Mode, verdict, rep.RowsChecked,
		len(rep.Chains), rep.Duration.Round(time.Millisecond), rep.RowsPerSec)
	if rep.RunID != 0 {
		fmt.Fprintf(w, ", run %d", rep.RunID)
	}
	fmt.Fprintln(w)
	if !rep.MACsChecked {
		fmt.Fprintln(w, "checkpoint MACs not checked: no seal keys configured")
	}
	fmt.Fprintln(w)
	rows := make([][]string, 0, len(rep.Chains))
	empty := 0
	for _, ch := range rep.Chains {
		if ch.Rows == 0 && ch.Findings == 0 {
			empty++
			continue
		}
		state := "intact"
		if ch.Findings > 0 {
			state = fmt.Sprintf("%d finding(s)", ch.Findings)
		}
		rows = append(rows, []string{fmt.Sprint(ch.ChainID), fmt.Sprint(ch.Rows), fmt.Sprint(ch.VerifiedSeq),
			fmt.Sprint(ch.Checkpoints), state})
	}
	table(w, []string{"CHAIN", "ROWS", "LAST SEQ", "CHECKPOINTS", "STATE"}, rows)
	if empty > 0 {
		fmt.Fprintf(w, "(%d chain(s) without rows not shown)\n", empty)
	}
	printFindings(w, rep.Findings)
}

// printFindings prints a report's findings as a table after a blank line,
// or nothing when there are none.
func printFindings(w io.Writer, findings []integrity.Finding) {
	if len(findings) == 0 {
		return
	}
	fmt.Fprintln(w)
	rows := make([][]string, len(findings))
	for i, f := range findings {
		id := ""
		if f.RowID != 0 {
			id = fmt.Sprint(f.RowID)
		}
		rows[i] = []string{fmt.Sprint(f.ChainID), fmt.Sprint(f.ChainSeq), id, string(f.Kind), f.Detail}
	}
	table(w, []string{"CHAIN", "SEQ", "ROW ID", "KIND", "DETAIL"}, rows)
}
