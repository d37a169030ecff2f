package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/anchor"
	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/verifier"
	"github.com/auditdb/auditdb/workers"
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
			&cli.IntFlag{Name: "parallel", Usage: "chains read at once (0: one per CPU)", EnvVars: []string{"AUDIT_VERIFY_PARALLEL"}},
			replicaFlag(),
		}, append(anchorVerifyFlags(), sealKeyFlags()...)...),
		Action: func(c *cli.Context) error {
			if c.Bool("offline") {
				return verifyOffline(c)
			}
			return withPool(verifyOnline)(c)
		},
	}
}

// anchorVerifyFlags are verify's anchor settings.
func anchorVerifyFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "anchors", Usage: "also check the anchor bundles in this sink (a directory or s3://bucket/prefix) and every chain against them", EnvVars: []string{"AUDIT_VERIFY_ANCHORS"}},
		&cli.StringFlag{Name: "anchor-keys", Usage: "anchor public keys accepted, keyid:base64pub[,...] (the log's and its witnesses')", EnvVars: []string{"AUDIT_ANCHOR_KEYS"}},
		&cli.IntFlag{Name: "min-signatures", Value: 1, Usage: "distinct known keys every bundle needs (count a witness to require it)", EnvVars: []string{"AUDIT_ANCHOR_MIN_SIGNATURES"}},
		&cli.StringFlag{Name: "log-id", Usage: "the log id, pinned from outside the database (default: audit.settings'; offline: the only log in the sink)", EnvVars: []string{"AUDIT_LOG_ID"}},
		&cli.BoolFlag{Name: "offline", Usage: "no database: check the bundles of --anchors and the archive files of --archives against each other", EnvVars: []string{"AUDIT_VERIFY_OFFLINE"}},
		&cli.StringFlag{Name: "archives", Usage: "with --offline: where the retention archives are (a directory or s3://bucket/prefix)", EnvVars: []string{"AUDIT_VERIFY_ARCHIVES"}},
	}
}

// anchorCheckOptions reads --anchors, --anchor-keys and --min-signatures;
// nil options when --anchors is not set.
func anchorCheckOptions(c *cli.Context) (*workers.AnchorCheckOptions, error) {
	if c.String("anchors") == "" {
		if c.String("anchor-keys") != "" && c.Bool("offline") {
			return nil, errors.New("anchors: required with --offline")
		}
		return nil, nil
	}
	if c.String("anchor-keys") == "" {
		return nil, errors.New("anchor-keys: required with --anchors (keyid:base64pub, from `auditworker keys public`)")
	}
	keys, err := integrity.ParseAnchorKeys(c.String("anchor-keys"), "anchor-keys")
	if err != nil {
		return nil, err
	}
	if n := c.Int("min-signatures"); n < 1 || n > len(keys) {
		return nil, fmt.Errorf("min-signatures: must be between 1 and the number of anchor keys (%d), got %d", len(keys), n)
	}
	if id := c.String("log-id"); id != "" && !integrity.ValidLogID(id) {
		return nil, errors.New("log-id: must be a lowercase UUID")
	}
	sink, err := anchor.OpenSink(c.Context, c.String("anchors"))
	if err != nil {
		return nil, fmt.Errorf("anchors: %w", err)
	}
	return &workers.AnchorCheckOptions{Sink: sink, Keys: keys, MinSignatures: c.Int("min-signatures"), LogID: c.String("log-id")}, nil
}

func verifyOnline(c *cli.Context, pool *pgxpool.Pool) error {
	keys, err := optionalSealKeys(c)
	if err != nil {
		return err
	}
	anchorOpts, err := anchorCheckOptions(c)
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
		if _, _, err := keys.ActiveKey(); err == nil {
			opts.SealKeyID = keys.Active // the recorded run is sealed
		}
	}
	if anchorOpts != nil {
		deps := &workers.Deps{Pool: pool, Logger: cliLogger(c)}
		if opts.Anchors, err = deps.CheckAnchors(c.Context, *anchorOpts); err != nil {
			return err
		}
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
	if a := rep.Anchors; a != nil {
		checked, inArchive := 0, 0
		for _, ch := range rep.Chains {
			checked += ch.Anchors
			inArchive += ch.AnchorsInArchive
		}
		fmt.Fprintf(w, "anchors: log %s, %d bundle(s) read, %d trusted (%d witness cosignature(s)), newest %d; %d anchored position(s) checked",
			a.Log, a.Bundles, a.Trusted, a.Cosignatures, a.LastBundle, checked)
		if inArchive > 0 {
			fmt.Fprintf(w, ", %d anchored in archive, not checked", inArchive)
		}
		fmt.Fprintln(w)
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
		if f.Bundle != 0 {
			rows[i][2] = fmt.Sprintf("bundle %d", f.Bundle)
		}
	}
	table(w, []string{"CHAIN", "SEQ", "ROW ID", "KIND", "DETAIL"}, rows)
}
