package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/client"
	"github.com/auditdb/auditdb/workers"
)

// withClient wraps an action that uses the Go client on --database-url.
func withClient(action func(c *cli.Context, cl *client.Client) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		url := c.String("database-url")
		if url == "" {
			return errors.New("no database: set AUDIT_DB_URL or --database-url (or run `auditworker dev` for a private one)")
		}
		cl, err := client.NewWithConfig(c.Context, client.Config{URL: url, PoolMax: 4})
		if err != nil {
			return err
		}
		defer cl.Close()
		if err := cl.CheckConnection(c.Context); err != nil {
			return err
		}
		return action(c, cl)
	}
}

func gdprCommand() *cli.Command {
	return &cli.Command{
		Name:  "gdpr",
		Usage: "data subject rights: export (art. 15, 20), erasure (art. 17), legal holds, pseudonymisation",
		Subcommands: []*cli.Command{
			{
				Name:  "export",
				Usage: "write every event of a subject (as principal or target resource), each with its inclusion proof",
				Flags: append(subjectFlags(),
					&cli.StringFlag{Name: "format", Value: "json", Usage: "json or csv", EnvVars: []string{"AUDIT_EXPORT_FORMAT"}},
					&cli.StringFlag{Name: "out", Usage: "write to this file (default: standard output)", EnvVars: []string{"AUDIT_EXPORT_OUT"}},
				),
				Action: withClient(func(c *cli.Context, cl *client.Client) error {
					sub, err := subjectOf(c)
					if err != nil {
						return err
					}
					var w io.Writer = c.App.Writer
					var f *os.File
					if out := c.String("out"); out != "" {
						if f, err = os.OpenFile(out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err != nil {
							return fmt.Errorf("out: %w", err)
						}
						w = f
					}
					sum, err := cl.ExportSubject(c.Context, sub, client.ExportFormat(c.String("format")), w)
					if f != nil {
						if cerr := f.Close(); err == nil {
							err = cerr
						}
					}
					if err != nil {
						return err
					}
					if sum.Unsealed > 0 {
						// on stderr: stdout may be the export itself
						fmt.Fprintf(c.App.ErrWriter, "warning: "+client.UnsealedNote+"\n", sum.Unsealed)
					}
					if f == nil {
						return nil // the export itself is the output
					}
					fmt.Fprintf(c.App.Writer, "exported %d events (%d as principal, %d as target) to %s\n", sum.Events, sum.AsPrincipal, sum.AsTarget, c.String("out"))
					rows := [][]string{}
					for _, by := range []struct {
						name   string
						counts map[string]int64
					}{{"action", sum.ByAction}, {"month", sum.ByMonth}} {
						for _, k := range slices.Sorted(maps.Keys(by.counts)) {
							rows = append(rows, []string{by.name, k, strconv.FormatInt(by.counts[k], 10)})
						}
					}
					table(c.App.Writer, []string{"BY", "VALUE", "EVENTS"}, rows)
					return nil
				}),
			},
			{
				Name:  "erase",
				Usage: "erase a subject's PII from their events; verification stays intact (needs the seal key)",
				Flags: append(append(subjectFlags(),
					&cli.StringFlag{Name: "reason", Required: true, Usage: "why (kept with the request; no personal data)", EnvVars: []string{"AUDIT_ERASURE_REASON"}},
					&cli.BoolFlag{Name: "enqueue", Usage: "record the request only; the worker's erasure job carries it out", EnvVars: []string{"AUDIT_ERASURE_ENQUEUE"}},
					jsonFlag()),
					append(sealKeyFlags(), cacheFlags()...)...),
				Action: withClient(func(c *cli.Context, cl *client.Client) error {
					sub, err := subjectOf(c)
					if err != nil {
						return err
					}
					var deps *workers.Deps
					if !c.Bool("enqueue") {
						keys, err := sealKeys(c)
						if err != nil {
							return err
						}
						purge, closePurge, err := erasurePurger(c)
						if err != nil {
							return err
						}
						if closePurge != nil {
							defer closePurge()
						}
						deps = &workers.Deps{Pool: cl.Pool(), Keys: keys, AfterErasure: purge}
					}
					id, err := cl.RequestErasure(c.Context, sub, c.String("reason"))
					if err != nil {
						return err
					}
					if deps == nil {
						return printErasure(c, cl, id)
					}
					var progress func(done, total int64)
					if isTerminal(c.App.ErrWriter) {
						start := time.Now()
						progress = func(done, total int64) { progressBar(c.App.ErrWriter, "erase", "rows", done, total, start) }
					}
					_, err = deps.Erase(c.Context, id, progress)
					if progress != nil {
						fmt.Fprintln(c.App.ErrWriter)
					}
					if err != nil {
						return err
					}
					return printErasure(c, cl, id)
				}),
			},
			{
				Name:      "status",
				Usage:     "show an erasure request",
				ArgsUsage: "REQUEST_ID",
				Flags:     []cli.Flag{jsonFlag()},
				Action: withClient(func(c *cli.Context, cl *client.Client) error {
					id, err := idArg(c, "REQUEST_ID")
					if err != nil {
						return err
					}
					return printErasure(c, cl, id)
				}),
			},
			holdsCommand(),
			{
				Name:  "pseudonymise",
				Usage: "replace principal ids of an organization's new events by keyed pseudonyms before they are stored",
				Subcommands: []*cli.Command{
					{Name: "enable", ArgsUsage: "ORGANIZATION", Usage: "start pseudonymising", Action: withClient(func(c *cli.Context, cl *client.Client) error {
						org, err := oneArg(c, "ORGANIZATION")
						if err != nil {
							return err
						}
						if err := cl.EnablePseudonymisation(c.Context, org); err != nil {
							return err
						}
						fmt.Fprintln(c.App.Writer, "pseudonymisation on for new events of the organization; the audit_privacy_officer role resolves pseudonyms (audit.pseudonyms)")
						return nil
					})},
					{Name: "disable", ArgsUsage: "ORGANIZATION", Usage: "stop pseudonymising (earlier pseudonyms stay resolvable)", Action: withClient(func(c *cli.Context, cl *client.Client) error {
						org, err := oneArg(c, "ORGANIZATION")
						if err != nil {
							return err
						}
						if err := cl.DisablePseudonymisation(c.Context, org); err != nil {
							return err
						}
						fmt.Fprintln(c.App.Writer, "pseudonymisation off for new events of the organization")
						return nil
					})},
				},
			},
		},
	}
}

// subjectFlags name a data subject. The environment is the better place for
// them: command lines show in ps and shell history.
func subjectFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "principal", Usage: "the subject as principal (principal_id; write-time pseudonyms included)", EnvVars: []string{"AUDIT_GDPR_PRINCIPAL_ID"}},
		&cli.StringFlag{Name: "resource-type", Usage: "the subject as target resource: its type (e.g. Patient)", EnvVars: []string{"AUDIT_GDPR_RESOURCE_TYPE"}},
		&cli.StringFlag{Name: "resource-id", Usage: "the subject as target resource: its id", EnvVars: []string{"AUDIT_GDPR_RESOURCE_ID"}},
	}
}

func subjectOf(c *cli.Context) (client.Subject, error) {
	sub := client.Subject{PrincipalID: c.String("principal"), ResourceType: c.String("resource-type"), ResourceID: c.String("resource-id")}
	if c.NArg() > 0 {
		return sub, errors.New("subject: give it with --principal and/or --resource-type and --resource-id, not as an argument")
	}
	return sub, sub.Validate()
}

func printErasure(c *cli.Context, cl *client.Client, id int64) error {
	r, err := cl.ErasureStatus(c.Context, id)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, r)
	}
	finished := ""
	if r.FinishedAt != nil {
		finished = r.FinishedAt.UTC().Format(time.RFC3339)
	}
	table(c.App.Writer, []string{"REQUEST", "STATUS", "ROWS", "TOKEN", "FINISHED", "ERROR"}, [][]string{{
		strconv.FormatInt(r.ID, 10), r.Status, fmt.Sprintf("%d/%d", r.RowsDone, r.RowsTotal), r.Token, finished, r.Error,
	}})
	return nil
}

func holdsCommand() *cli.Command {
	return &cli.Command{
		Name:  "holds",
		Usage: "legal holds: events they cover cannot be erased",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list legal holds",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "all", Usage: "include released holds", EnvVars: []string{"AUDIT_HOLDS_ALL"}},
					jsonFlag(),
				},
				Action: withClient(func(c *cli.Context, cl *client.Client) error {
					holds, err := cl.Holds(c.Context, c.Bool("all"))
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(c.App.Writer, holds)
					}
					rows := make([][]string, len(holds))
					for i, h := range holds {
						released := ""
						if h.ReleasedAt != nil {
							released = h.ReleasedAt.UTC().Format(time.RFC3339)
						}
						value := h.Value
						if h.TargetResourceType != "" {
							value = h.TargetResourceType + "/" + h.Value
						}
						rows[i] = []string{strconv.FormatInt(h.ID, 10), string(h.Scope), value, h.Reason, h.CreatedBy, h.CreatedAt.UTC().Format(time.RFC3339), released}
					}
					table(c.App.Writer, []string{"ID", "SCOPE", "VALUE", "REASON", "BY", "PLACED", "RELEASED"}, rows)
					return nil
				}),
			},
			{
				Name:  "add",
				Usage: "place a legal hold",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "scope", Required: true, Usage: "subject, resource or organization", EnvVars: []string{"AUDIT_HOLD_SCOPE"}},
					&cli.StringFlag{Name: "value", Required: true, Usage: "the subject id, resource id or organization id", EnvVars: []string{"AUDIT_HOLD_VALUE"}},
					&cli.StringFlag{Name: "resource-type", Usage: "the target resource type (scope resource)", EnvVars: []string{"AUDIT_HOLD_RESOURCE_TYPE"}},
					&cli.StringFlag{Name: "reason", Required: true, Usage: "why", EnvVars: []string{"AUDIT_HOLD_REASON"}},
				},
				Action: withClient(func(c *cli.Context, cl *client.Client) error {
					id, err := cl.PlaceHold(c.Context, client.LegalHold{Scope: client.HoldScope(c.String("scope")), Value: c.String("value"),
						TargetResourceType: c.String("resource-type"), Reason: c.String("reason")})
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "legal hold %d placed\n", id)
					return nil
				}),
			},
			{
				Name:      "release",
				Usage:     "release a legal hold (it stays on record)",
				ArgsUsage: "HOLD_ID",
				Action: withClient(func(c *cli.Context, cl *client.Client) error {
					id, err := idArg(c, "HOLD_ID")
					if err != nil {
						return err
					}
					if err := cl.ReleaseHold(c.Context, id); err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "legal hold %d released\n", id)
					return nil
				}),
			},
		},
	}
}

func complianceCommand() *cli.Command {
	return &cli.Command{
		Name:  "compliance",
		Usage: "show or set the database's HIPAA and GDPR modes",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "hipaa", Usage: "on or off: PHI events need a principal and a target; PHI retention at least six years", EnvVars: []string{"AUDIT_HIPAA_ENABLED"}},
			&cli.StringFlag{Name: "gdpr", Usage: "on or off: erasure allowed", EnvVars: []string{"AUDIT_GDPR_ENABLED"}},
			jsonFlag(),
		},
		Action: withClient(func(c *cli.Context, cl *client.Client) error {
			hipaa, err := switchFlag(c, "hipaa")
			if err != nil {
				return err
			}
			gdpr, err := switchFlag(c, "gdpr")
			if err != nil {
				return err
			}
			m, err := cl.SetCompliance(c.Context, hipaa, gdpr)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, m)
			}
			onOff := map[bool]string{true: "on", false: "off"}
			table(c.App.Writer, []string{"MODE", "STATE"}, [][]string{{"hipaa", onOff[m.HIPAA]}, {"gdpr", onOff[m.GDPR]}})
			return nil
		}),
	}
}

// switchFlag reads an on/off flag; nil when not given.
func switchFlag(c *cli.Context, name string) (*bool, error) {
	if !c.IsSet(name) {
		return nil, nil
	}
	switch c.String(name) {
	case "on", "true", "1", "yes":
		v := true
		return &v, nil
	case "off", "false", "0", "no":
		v := false
		return &v, nil
	}
	return nil, fmt.Errorf("%s: must be on or off", name)
}
