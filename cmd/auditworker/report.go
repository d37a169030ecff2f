package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/client"
	"github.com/auditdb/auditdb/internal/report"
)

func reportCommand() *cli.Command {
	return &cli.Command{
		Name:  "report",
		Usage: "HIPAA reports: access, disclosures, activity, attestation (table, JSON, CSV or printable HTML)",
		Description: "Each report reads one database snapshot. Reports hold at most --max-rows rows and fail,\n" +
			"naming the limit, rather than truncate. Times are UTC; --from is inclusive, --to exclusive,\n" +
			"and a --to given as a date (2006-01-02) includes that whole day.",
		Subcommands: []*cli.Command{
			{
				Name:         "access",
				OnUsageError: usageErrorOneLine,
				Usage:        "every event on one resource (a patient's record) in a period: who, when, what, outcome",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "resource-type", Value: "Patient", Usage: "target resource type", EnvVars: []string{"AUDIT_REPORT_RESOURCE_TYPE"}},
					&cli.StringFlag{Name: "resource-id", Usage: "target resource id (required)", EnvVars: []string{"AUDIT_REPORT_RESOURCE_ID"}},
					maxRowsFlag(),
				}, append(periodFlags("30 days before --to"), reportOutputFlags()...)...),
				Action: func(c *cli.Context) error {
					if c.String("resource-id") == "" {
						return errors.New("resource-id: required")
					}
					return reportAction(c, true, func(cl *client.Client, from, to time.Time) (*client.Report, error) {
						return cl.AccessReport(c.Context, client.AccessReportRequest{
							TargetResourceType: c.String("resource-type"), TargetResourceID: c.String("resource-id"),
							From: from, To: to, MaxRows: c.Int("max-rows"),
						})
					})
				},
			},
			{
				Name:         "disclosures",
				OnUsageError: usageErrorOneLine,
				Usage: "accounting of disclosures (HIPAA 164.528): successful PHI events whose action is a disclosure, " +
					"with recipient and purpose from details",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "resource-type", Value: "Patient", Usage: "type of the individuals' resources", EnvVars: []string{"AUDIT_REPORT_RESOURCE_TYPE"}},
					&cli.StringFlag{Name: "resource-id", Usage: "one individual (default: all)", EnvVars: []string{"AUDIT_REPORT_RESOURCE_ID"}},
					&cli.StringSliceFlag{Name: "action", Usage: "disclosure action pattern, * at start or end (repeatable; default: " +
						fmt.Sprint(client.DisclosureActionsDefault) + ")", EnvVars: []string{"AUDIT_REPORT_DISCLOSURE_ACTIONS"}},
					maxRowsFlag(),
				}, append(periodFlags("six years before --to"), reportOutputFlags()...)...),
				Action: func(c *cli.Context) error {
					return reportAction(c, true, func(cl *client.Client, from, to time.Time) (*client.Report, error) {
						return cl.DisclosureReport(c.Context, client.DisclosureReportRequest{
							TargetResourceType: c.String("resource-type"), TargetResourceID: c.String("resource-id"),
							From: from, To: to, Actions: c.StringSlice("action"), MaxRows: c.Int("max-rows"),
						})
					})
				},
			},
			{
				Name:         "activity",
				OnUsageError: usageErrorOneLine,
				Usage:        "what one workforce member did in a period, with counts by action and patient",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "principal", Usage: "the workforce member's principal_id (required)", EnvVars: []string{"AUDIT_REPORT_PRINCIPAL"}},
					maxRowsFlag(),
				}, append(periodFlags("30 days before --to"), reportOutputFlags()...)...),
				Action: func(c *cli.Context) error {
					if c.String("principal") == "" {
						return errors.New("principal: required")
					}
					return reportAction(c, true, func(cl *client.Client, from, to time.Time) (*client.Report, error) {
						return cl.WorkforceActivityReport(c.Context, client.ActivityReportRequest{
							PrincipalID: c.String("principal"), From: from, To: to, MaxRows: c.Int("max-rows"),
						})
					})
				},
			},
			{
				Name:         "attestation",
				OnUsageError: usageErrorOneLine,
				Usage: "integrity attestation: newest verification, chains, checkpoints, open findings, archive manifests " +
					"(exit 2 when TAMPERED)",
				Flags: append([]cli.Flag{
					&cli.DurationFlag{Name: "max-age", Value: client.AttestationMaxAgeDefault,
						Usage: "a verification older than this makes the verdict STALE", EnvVars: []string{"AUDIT_REPORT_MAX_AGE"}},
				}, append(reportOutputFlags(), sealKeyFlags()...)...),
				Action: func(c *cli.Context) error {
					if c.Duration("max-age") <= 0 {
						return fmt.Errorf("max-age: must be positive, got %s", c.Duration("max-age"))
					}
					var verdict any
					err := reportAction(c, false, func(cl *client.Client, _, _ time.Time) (*client.Report, error) {
						req := client.AttestationRequest{MaxAge: c.Duration("max-age")}
						keys, err := optionalSealKeys(c) // with keys, the verification runs' seals are checked
						if err != nil {
							return nil, err
						}
						if keys != nil {
							req.Keys = keys.Ring
						}
						rep, err := cl.IntegrityAttestation(c.Context, req)
						if err == nil {
							for _, f := range rep.Summary {
								if f.Key == "verdict" {
									verdict = f.Value
								}
							}
						}
						return rep, err
					})
					if err == nil && verdict == client.VerdictTampered {
						return errTampered
					}
					return err
				},
			},
		},
	}
}

// usageErrorOneLine returns a flag parsing error as it is, so that Run
// prints it as one line on stderr instead of the help on stdout (which
// --out or a pipe would otherwise receive).
func usageErrorOneLine(_ *cli.Context, err error, _ bool) error { return err }

// Flags are made per command and per app (see app.go).

func periodFlags(fromDefault string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "from", Usage: "start, inclusive: 2006-01-02 or RFC 3339 (default: " + fromDefault + ")", EnvVars: []string{"AUDIT_REPORT_FROM"}},
		&cli.StringFlag{Name: "to", Usage: "end, exclusive; a date includes that day (default: now)", EnvVars: []string{"AUDIT_REPORT_TO"}},
	}
}

func maxRowsFlag() cli.Flag {
	return &cli.IntFlag{Name: "max-rows", Value: client.ReportMaxRowsDefault,
		Usage: fmt.Sprintf("fail rather than hold more rows than this (at most %d)", client.ReportMaxRowsLimit), EnvVars: []string{"AUDIT_REPORT_MAX_ROWS"}}
}

func reportOutputFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "format", Value: string(report.FormatTable), Usage: "table, json, csv or html", EnvVars: []string{"AUDIT_REPORT_FORMAT"}},
		jsonFlag(),
		&cli.StringFlag{Name: "out", Usage: "write to this file (mode 0600: reports hold PHI) instead of stdout", EnvVars: []string{"AUDIT_REPORT_OUT"}},
	}
}

// reportAction checks the output flags, and the period flags when the
// report has a period, makes the report with a
// client on --database-url, and writes it.
func reportAction(c *cli.Context, period bool, build func(cl *client.Client, from, to time.Time) (*client.Report, error)) error {
	format, err := report.ParseFormat(c.String("format"))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		if c.IsSet("format") && format != report.FormatJSON {
			return fmt.Errorf("json: conflicts with --format %s", format)
		}
		format = report.FormatJSON
	}
	var from, to time.Time
	if period {
		if from, err = parseReportTime("from", c.String("from"), false); err != nil {
			return err
		}
		if to, err = parseReportTime("to", c.String("to"), true); err != nil {
			return err
		}
		if !from.IsZero() && !to.IsZero() && !to.After(from) {
			return fmt.Errorf("to: must be after from (from %s, to %s)", c.String("from"), c.String("to"))
		}
		if n := c.Int("max-rows"); n < 1 || n > client.ReportMaxRowsLimit {
			return fmt.Errorf("max-rows: must be between 1 and %d, got %d", client.ReportMaxRowsLimit, n)
		}
	}

	cl, err := reportClient(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	rep, err := build(cl, from, to)
	if err != nil {
		var tooLarge *client.ReportTooLargeError
		if errors.As(err, &tooLarge) {
			// the client's message names its Go field; say it in flags
			return fmt.Errorf("max-rows: the %s would hold more than %d rows: narrow --from/--to or raise --max-rows (at most %d)",
				tooLarge.What, tooLarge.MaxRows, tooLarge.Limit())
		}
		return err
	}
	var buf bytes.Buffer
	if err := rep.Render(&buf, format); err != nil {
		return err
	}
	if out := c.String("out"); out != "" {
		if err := writeFileAtomic(out, buf.Bytes()); err != nil {
			return fmt.Errorf("out: %w", err)
		}
		fmt.Fprintf(c.App.Writer, "%s report (%s, %d rows) written to %s\n", rep.Kind, format, len(rep.Rows), out)
		return nil
	}
	_, err = c.App.Writer.Write(buf.Bytes())
	return err
}

// writeFileAtomic writes data to path through a temporary file in the same
// folder, renamed into place: the file is mode 0600 (reports hold PHI) even
// when it replaces a file readable by others, and a failure leaves no
// partial report behind.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".auditworker-report-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename there is nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// parseReportTime reads a --from or --to value: RFC 3339, or a date
// (midnight UTC; for an end, the next midnight, so the day is included).
func parseReportTime(flag, s string, end bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		if end {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%s: not a time: use 2006-01-02 or RFC 3339 (2006-01-02T15:04:05Z), got %q", flag, s)
}

// reportClient connects a client to --database-url, with the same messages
// as the other commands' connect.
func reportClient(c *cli.Context) (*client.Client, error) {
	url := c.String("database-url")
	if url == "" {
		return nil, errors.New("no database: set AUDIT_DB_URL or --database-url (or run `auditworker dev` for a private one)")
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errors.New("database-url: not a valid PostgreSQL URL")
	}
	cl, err := client.NewWithConfig(c.Context, client.Config{URL: url, PoolMin: 1, PoolMax: 2})
	if err != nil {
		return nil, err
	}
	if err := cl.CheckConnection(c.Context); err != nil {
		cl.Close()
		return nil, fmt.Errorf("connect to %s:%d/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	return cl, nil
}
