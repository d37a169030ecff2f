package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/workers"
)

func retentionFlags() []cli.Flag {
	return []cli.Flag{
		jsonFlag(),
		archiveSinkFlag(),
		archiveDirFlag(),
		archiveRetainFlag(),
		&cli.IntFlag{Name: "max-rows-per-archive", Value: workers.RetentionMaxRowsPerArchiveDefault, Usage: "rows in one archive file (one manifest transaction, one removal)", EnvVars: []string{"AUDIT_RETENTION_MAX_ROWS_PER_ARCHIVE"}},
	}
}

func archiveSinkFlag() cli.Flag {
	return &cli.StringFlag{Name: "archive-sink", EnvVars: []string{"AUDIT_ARCHIVE_SINK"},
		Usage: "where archives go: a directory, or s3://bucket/prefix (endpoint and credentials from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); empty: --archive-dir"}
}

func archiveDirFlag() cli.Flag {
	return &cli.StringFlag{Name: "archive-dir", Value: workers.RetentionArchiveDirDefault, EnvVars: []string{"AUDIT_ARCHIVE_DIR"},
		Usage: "directory archives go to when --archive-sink is empty"}
}

func archiveRetainFlag() cli.Flag {
	return &cli.DurationFlag{Name: "archive-retain", Value: workers.RetentionArchiveRetainDefault, EnvVars: []string{"AUDIT_ARCHIVE_RETAIN"},
		Usage: "least Object Lock (COMPLIANCE) retention of an archive from when it is written, e.g. 61320h for 7 years; the end of its rows' own retention applies when later; enforced only by an S3 bucket with Object Lock"}
}

func retentionConfig(c *cli.Context) (*workers.RetentionConfig, error) {
	cfg := (&workers.RetentionConfig{ArchiveSink: c.String("archive-sink"), ArchiveDir: c.String("archive-dir"),
		ArchiveRetain: c.Duration("archive-retain"), MaxRowsPerArchive: c.Int("max-rows-per-archive")}).WithDefaults()
	return cfg, cfg.Validate()
}

func retentionCommand() *cli.Command {
	return &cli.Command{
		Name:  "retention",
		Usage: "archive rows past their retention, seal manifests, then remove them",
		Description: `A row is due when it is older than its policy's retention_days and than the
longest retention of any active policy for its data_classification. Per chain,
a run archives the due rows that directly follow what earlier archives cover,
in seq order, up to the first row not yet due: archive manifests cover
contiguous seq ranges, so later due rows are held back until that row is due.
Each chain's newest row is kept. A run writes a gzip JSON-lines archive,
re-reads and verifies it, seals one manifest per chain range (needs the seal
key), and then, in one transaction, drops monthly partitions whose rows are all
archived and deletes the archived rows from the others. A run that stopped
anywhere is completed by the next.`,
		Subcommands: []*cli.Command{
			{
				Name:  "plan",
				Usage: "what a run would archive now, per policy, chain and partition (changes nothing)",
				Flags: retentionFlags(),
				Action: withPool(func(c *cli.Context, pool *pgxpool.Pool) error {
					cfg, err := retentionConfig(c)
					if err != nil {
						return err
					}
					plan, err := (&workers.Deps{Pool: pool}).PlanRetention(c.Context, cfg)
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(c.App.Writer, plan)
					}
					printRetentionPlan(c.App.Writer, plan)
					return nil
				}),
			},
			{
				Name:  "run",
				Usage: "archive, verify, seal and remove every due row (needs the seal key); --dry-run only plans",
				Flags: append(append(retentionFlags(),
					&cli.BoolFlag{Name: "dry-run", Usage: "plan and print, change nothing", EnvVars: []string{"AUDIT_RETENTION_DRY_RUN"}}),
					sealKeyFlags()...),
				Action: withPool(func(c *cli.Context, pool *pgxpool.Pool) error {
					cfg, err := retentionConfig(c)
					if err != nil {
						return err
					}
					// the run's own summary is printed; the log says only what goes wrong
					deps := &workers.Deps{Pool: pool, Logger: cliLogger(c)}
					if !c.Bool("dry-run") {
						if deps.Keys, err = sealKeys(c); err != nil {
							return err
						}
					}
					opts := workers.RetentionRunOptions{DryRun: c.Bool("dry-run")}
					if isTerminal(c.App.ErrWriter) && !opts.DryRun {
						start := time.Now()
						opts.Progress = func(done, total int64) { progressBar(c.App.ErrWriter, "retention", "rows", done, total, start) }
					}
					res, err := deps.RunRetention(c.Context, cfg, opts)
					if opts.Progress != nil {
						fmt.Fprintln(c.App.ErrWriter)
					}
					if err != nil {
						if res != nil && len(res.Archives)+res.Resumed > 0 {
							printRetentionResult(c.App.ErrWriter, res)
						}
						return err
					}
					if c.Bool("json") {
						return printJSON(c.App.Writer, res)
					}
					if res.DryRun {
						fmt.Fprintln(c.App.Writer, "dry run: nothing was changed")
						printRetentionPlan(c.App.Writer, res.Plan)
						return nil
					}
					printRetentionResult(c.App.Writer, res)
					return nil
				}),
			},
		},
	}
}

func printRetentionPlan(w io.Writer, p *workers.RetentionPlan) {
	fmt.Fprintf(w, "retention plan at %s: %d row(s) to archive now\n\n", p.At.UTC().Format(time.RFC3339), p.Rows)
	rows := [][]string{}
	for _, rp := range p.Policies {
		rows = append(rows, []string{rp.Policy, rp.Classification, fmt.Sprint(rp.EffectiveDays), rp.Cutoff.UTC().Format("2006-01-02"),
			fmt.Sprint(rp.RowsDue), fmt.Sprint(rp.RowsArchivable), fmt.Sprint(rp.RowsHeldBack)})
	}
	table(w, []string{"POLICY", "CLASSIFICATION", "RETENTION DAYS", "DUE BEFORE", "ROWS DUE", "ARCHIVED NOW", "HELD BACK"}, rows)

	rows = rows[:0]
	idle := 0
	for _, c := range p.Chains {
		if c.Rows == 0 && c.HeldBack == 0 {
			idle++
			continue
		}
		seqs := "-"
		if c.Rows > 0 {
			seqs = fmt.Sprintf("%d..%d", c.FirstSeq, c.LastSeq)
		}
		rows = append(rows, []string{fmt.Sprint(c.ChainID), fmt.Sprint(c.ArchivedThrough), seqs, fmt.Sprint(c.Rows), fmt.Sprint(c.HeldBack), c.StoppedBy})
	}
	fmt.Fprintln(w)
	table(w, []string{"CHAIN", "ARCHIVED THROUGH", "ARCHIVE SEQS", "ROWS", "HELD BACK", "STOPS AT"}, rows)
	if idle > 0 {
		fmt.Fprintf(w, "(%d chain(s) with nothing due not shown)\n", idle)
	}
	if len(p.Partitions) > 0 {
		rows = rows[:0]
		for _, pr := range p.Partitions {
			action := "delete archived rows"
			if pr.Droppable {
				action = "detach and drop"
			}
			rows = append(rows, []string{pr.Partition, fmt.Sprint(pr.Rows), fmt.Sprint(pr.RowsCovered), action})
		}
		fmt.Fprintln(w)
		table(w, []string{"PARTITION", "ROWS", "ARCHIVED AFTER THIS RUN", "ACTION"}, rows)
	}
	if len(p.Pending) > 0 {
		fmt.Fprintf(w, "\n%d sealed manifest(s) still have rows in audit_log (a run stopped before removal); the next run verifies their archives and removes them\n", len(p.Pending))
	}
	if len(p.Unsealed) > 0 {
		fmt.Fprintf(w, "\n%d archive file(s) that no manifest names (runs stopped before sealing; their rows are still in audit_log, so the files can be deleted): %s\n",
			len(p.Unsealed), strings.Join(p.Unsealed, ", "))
	}
	fmt.Fprintln(w, "\nHELD BACK: due rows a run leaves for now: rows behind a row not yet due (archives cover each chain's\nseqs in order, see `auditworker retention --help`) and the newest row of each chain, which is always kept.")
}

func printRetentionResult(w io.Writer, res *workers.RetentionResult) {
	fmt.Fprintf(w, "retention: %d row(s) archived in %d file(s), %d row(s) removed", res.RowsArchived, len(res.Archives), res.RowsRemoved)
	if res.Resumed > 0 {
		fmt.Fprintf(w, " (%d archive(s) of an earlier run completed)", res.Resumed)
	}
	fmt.Fprintln(w)
	if len(res.Archives) > 0 {
		rows := make([][]string, len(res.Archives))
		for i, a := range res.Archives {
			chains := make([]string, len(a.Ranges))
			for j, rg := range a.Ranges {
				chains[j] = fmt.Sprintf("%d:%d..%d", rg.ChainID, rg.FirstSeq, rg.LastSeq)
			}
			retain := "-"
			if a.RetainUntil != nil {
				retain = a.RetainUntil.UTC().Format("2006-01-02")
				if a.Locked {
					retain += " (locked)"
				} else {
					retain += " (not enforced)"
				}
			}
			rows[i] = []string{a.URI, fmt.Sprint(a.Rows), strings.Join(chains, " "), a.SHA256[:16], retain}
		}
		fmt.Fprintln(w)
		table(w, []string{"ARCHIVE", "ROWS", "CHAIN:SEQS", "SHA-256", "RETAIN UNTIL"}, rows)
	}
	if len(res.PartitionsDropped) > 0 {
		fmt.Fprintf(w, "\npartitions dropped: %s\n", strings.Join(res.PartitionsDropped, ", "))
	}
}
