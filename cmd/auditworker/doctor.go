package main

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/internal/doctor"
)

func doctorCommand() *cli.Command {
	return &cli.Command{
		Name: "doctor",
		Usage: "compare the live schema with the one migrations make: tables, functions (SECURITY DEFINER, search_path), " +
			"triggers on every partition, grants, migration checksums (exit 0 as expected, 2 differences, 1 error)",
		Flags: []cli.Flag{jsonFlag()},
		Action: withPool(func(c *cli.Context, pool *pgxpool.Pool) error {
			rep, err := doctor.Check(c.Context, pool)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				if err := printJSON(c.App.Writer, rep); err != nil {
					return err
				}
			} else {
				checks := make([]string, 0, len(rep.Checked))
				for k := range rep.Checked {
					checks = append(checks, k)
				}
				sort.Strings(checks)
				w := c.App.Writer
				for _, k := range checks {
					n := "every partition"
					if rep.Checked[k] >= 0 {
						n = strconv.Itoa(rep.Checked[k]) + " expected"
					}
					fmt.Fprintf(w, "checked %-9s %s\n", k, n)
				}
				if rep.OK() {
					fmt.Fprintln(w, "schema as expected")
				} else {
					fmt.Fprintf(w, "%d difference(s):\n", len(rep.Differences))
					rows := make([][]string, len(rep.Differences))
					for i, d := range rep.Differences {
						rows[i] = []string{d.Check, d.Object, d.Problem}
					}
					table(w, []string{"CHECK", "OBJECT", "PROBLEM"}, rows)
				}
			}
			if !rep.OK() {
				return errTampered // exit 2, like verify
			}
			return nil
		}),
	}
}
