package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/internal/migrate"
	auditsql "github.com/auditdb/auditdb/sql"
)

func migrateCommand() *cli.Command {
	return &cli.Command{
		Name:  "migrate",
		Usage: "install or upgrade auditdb's schema (idempotent; each step in its own transaction)",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "dry-run", Usage: "list the steps that would run, change nothing", EnvVars: []string{"AUDIT_MIGRATE_DRY_RUN"}},
			&cli.IntFlag{Name: "target", Usage: "stop after this step number (0: the newest)", EnvVars: []string{"AUDIT_MIGRATE_TARGET"}},
			&cli.BoolFlag{Name: "accelerator", Value: true, Usage: "use the C insert trigger where the server has it (superuser only; otherwise PL/pgSQL)", EnvVars: []string{"AUDIT_ACCELERATOR"}},
			&cli.IntFlag{Name: "months-ahead", Value: migrate.MonthsAheadDefault, Usage: "create monthly partitions from this month through this many months ahead (the worker keeps them)", EnvVars: []string{"AUDIT_PARTITIONS_AHEAD"}},
			jsonFlag(),
		}, migrateSafetyFlags()...),
		Action: withPool(func(c *cli.Context, pool *pgxpool.Pool) (err error) {
			if n := c.Int("months-ahead"); n < 0 || n > 120 {
				return fmt.Errorf("months-ahead: must be between 0 and 120")
			}
			opts := migrate.Options{DryRun: c.Bool("dry-run"), TargetVersion: c.Int("target"), Accelerator: c.Bool("accelerator"), MonthsAhead: monthsAhead(c.Int("months-ahead"))}
			if err := migrateLockOptions(c, &opts); err != nil {
				return err
			}
			if err := verifyBeforeMigrate(c, pool); err != nil {
				return err
			}
			res, err := migrate.Migrate(c.Context, pool, opts)
			if err != nil {
				return err
			}
			if !res.DryRun {
				defer func() {
					if err == nil {
						err = verifyAfterMigrate(c, pool)
					}
				}()
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, res)
			}
			w := c.App.Writer
			switch {
			case len(res.Applied) == 0:
				fmt.Fprintf(w, "up to date at step %04d\n", res.Current)
			case res.DryRun:
				fmt.Fprintf(w, "would apply %d step(s) (dry run, nothing changed):\n", len(res.Applied))
			default:
				fmt.Fprintf(w, "applied %d step(s), now at step %04d:\n", len(res.Applied), res.Current)
			}
			if res.Trigger != "" {
				fmt.Fprintf(w, "insert trigger: %s\n", res.Trigger)
			}
			if len(res.Partitions) > 0 {
				fmt.Fprintf(w, "partitions created: %s\n", strings.Join(res.Partitions, ", "))
			}
			if len(res.Applied) > 0 {
				rows := make([][]string, len(res.Applied))
				for i, a := range res.Applied {
					rows[i] = []string{fmt.Sprintf("%04d", a.Version), a.Name, "sql/" + a.Path}
				}
				table(w, []string{"STEP", "NAME", "FILE"}, rows)
			}
			return nil
		}),
	}
}

// monthsAhead maps the flag (0: the current month only) to
// migrate.Options.MonthsAhead (0: the default, negative: none ahead).
func monthsAhead(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

func printExtensionScript(w io.Writer) error {
	s, err := auditsql.ExtensionScript()
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, s)
	return err
}
