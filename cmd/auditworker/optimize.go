package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/monitor"
	"github.com/auditdb/auditdb/workers"
)

func optimizeFlags() []cli.Flag {
	return []cli.Flag{
		jsonFlag(),
		&cli.StringSliceFlag{Name: "schema", Usage: "schemas to analyse (default: audit)", EnvVars: []string{"AUDIT_OPTIMIZE_SCHEMAS"}},
		&cli.DurationFlag{Name: "unused-min-age", Usage: "how long usage counters must have run before a never-scanned index counts as unused (negative: any age)",
			Value: monitor.OptimizeUnusedMinStatsAgeDefault, EnvVars: []string{"AUDIT_OPTIMIZE_UNUSED_MIN_AGE"}},
		&cli.Float64Flag{Name: "bloat-ratio", Usage: "estimated wasted share above which an index is bloated",
			Value: monitor.OptimizeBloatRatioDefault, EnvVars: []string{"AUDIT_OPTIMIZE_BLOAT_RATIO"}},
		&cli.Int64Flag{Name: "bloat-min-bytes", Usage: "indexes smaller than this are never bloated",
			Value: monitor.OptimizeBloatMinBytesDefault, EnvVars: []string{"AUDIT_OPTIMIZE_BLOAT_MIN_BYTES"}},
		slowQueryFlag(),
	}
}

// slowQueryFlag is --slow-query-threshold (AUDIT_SLOW_QUERY_THRESHOLD),
// read by slowQueryThreshold.
func slowQueryFlag() cli.Flag {
	return &cli.StringFlag{Name: "slow-query-threshold", Usage: "mean execution time (whole ms) above which a statement is slow",
		Value: strconv.FormatInt(monitor.SlowQueryThresholdDefault.Milliseconds(), 10), EnvVars: []string{monitor.EnvSlowQueryThreshold}}
}

// slowQueryThreshold parses --slow-query-threshold as monitor parses
// AUDIT_SLOW_QUERY_THRESHOLD.
func slowQueryThreshold(c *cli.Context) (time.Duration, error) {
	d, err := monitor.ParseSlowQueryThreshold(c.String("slow-query-threshold"))
	if err != nil {
		return 0, fmt.Errorf("slow-query-threshold: %w", err)
	}
	return d, nil
}

func optimizeConfig(c *cli.Context) (monitor.OptimizeConfig, error) {
	slow, err := slowQueryThreshold(c)
	if err != nil {
		return monitor.OptimizeConfig{}, err
	}
	return monitor.OptimizeConfig{
		Schemas:           c.StringSlice("schema"),
		UnusedMinStatsAge: c.Duration("unused-min-age"),
		BloatRatio:        c.Float64("bloat-ratio"),
		BloatMinBytes:     c.Int64("bloat-min-bytes"),
		SlowQuery:         slow,
	}, nil
}

func optimizeCommand() *cli.Command {
	return &cli.Command{
		Name:  "optimize",
		Usage: "index and table analysis: findings, recommendations and the safe actions (ANALYZE, REINDEX CONCURRENTLY of one partition's index)",
		Subcommands: []*cli.Command{
			{
				Name:  "report",
				Usage: "what the statistics show, with a fix for each finding; changes nothing",
				Flags: optimizeFlags(),
				Action: withPool(func(c *cli.Context, pool *pgxpool.Pool) error {
					cfg, err := optimizeConfig(c)
					if err != nil {
						return err
					}
					rep, err := monitor.AnalyzeIndexes(c.Context, pool, cfg)
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(c.App.Writer, rep)
					}
					printIndexReport(c.App.Writer, rep)
					return nil
				}),
			},
			{
				Name:  "apply",
				Usage: "run the safe actions the analysis finds, one at a time (never on a partitioned parent's index)",
				Flags: append(optimizeFlags(),
					&cli.BoolFlag{Name: "dry-run", Usage: "list the actions without running them", EnvVars: []string{"AUDIT_OPTIMIZE_DRY_RUN"}}),
				Action: withPool(func(c *cli.Context, pool *pgxpool.Pool) error {
					// the table printed below says what the log would
					cfg, err := optimizeConfig(c)
					if err != nil {
						return err
					}
					deps := &workers.Deps{Pool: pool, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
					res, err := deps.Optimize(c.Context, cfg, c.Bool("dry-run"))
					if res == nil {
						return err
					}
					if c.Bool("json") {
						if perr := printJSON(c.App.Writer, res); perr != nil {
							return perr
						}
					} else {
						printOptimizeResult(c.App.Writer, res)
					}
					if err != nil {
						return errors.New("optimize apply: some actions failed: " + err.Error())
					}
					return nil
				}),
			},
		},
	}
}

func printIndexReport(w io.Writer, rep *monitor.IndexReport) {
	fmt.Fprintf(w, "Index and table analysis: bloat by %s; pg_stat_statements %s; usage counted since %s (%s)\n\n",
		rep.BloatMethod, rep.Statements, rep.StatsSince.UTC().Format(time.RFC3339), rep.StatsSinceSource)
	if !rep.UnusedChecked {
		fmt.Fprintln(w, "Unused indexes not judged: the usage counters are younger than --unused-min-age.")
	}
	if len(rep.Findings) == 0 {
		fmt.Fprintln(w, "No findings.")
		return
	}
	rows := make([][]string, len(rep.Findings))
	for i, f := range rep.Findings {
		fix := "recommend: " + f.Recommendation
		if f.Action != nil {
			fix = "apply: " + f.Action.SQL
		}
		rows[i] = []string{string(f.Kind), dash(f.Table), dash(f.Index), f.Detail, fix}
	}
	table(w, []string{"KIND", "TABLE", "INDEX", "DETAIL", "FIX"}, rows)
	if n := len(rep.Actions()); n > 0 {
		fmt.Fprintf(w, "\n%d safe action(s): `auditworker optimize apply` runs them.\n", n)
	}
}

func printOptimizeResult(w io.Writer, res *workers.OptimizeResult) {
	if len(res.Applied) == 0 {
		fmt.Fprintln(w, "nothing to do")
		return
	}
	rows := make([][]string, len(res.Applied))
	for i, a := range res.Applied {
		result := "done"
		switch {
		case res.DryRun:
			result = "would run"
		case a.Error != "":
			result = "FAILED: " + a.Error
		case a.Skipped != "":
			result = "skipped: " + a.Skipped
		}
		rows[i] = []string{a.SQL, result, a.Duration.Round(time.Millisecond).String()}
	}
	table(w, []string{"ACTION", "RESULT", "TOOK"}, rows)
	if res.DryRun {
		fmt.Fprintln(w, "\ndry run: nothing was changed")
	}
}

func dash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
