package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/internal/migrate"
	"github.com/auditdb/auditdb/monitor"
	"github.com/auditdb/auditdb/workers"
)

func webhookFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "webhook-url", Usage: "webhooks that receive alerts opened and resolved (delivered by the worker)",
		EnvVars: []string{monitor.EnvAlertWebhookURLs}}
}

func alertsCommand() *cli.Command {
	return &cli.Command{
		Name:  "alerts",
		Usage: "list, acknowledge, resolve and evaluate alerts",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "alerts, newest first",
				Flags: []cli.Flag{
					jsonFlag(),
					&cli.StringFlag{Name: "status", Value: "active", Usage: "open, acknowledged, resolved, active (open or acknowledged) or all",
						EnvVars: []string{"AUDIT_ALERTS_STATUS"}},
					&cli.IntFlag{Name: "limit", Value: 100, Usage: "at most this many", EnvVars: []string{"AUDIT_ALERTS_LIMIT"}},
				},
				Action: withPool(func(c *cli.Context, pool *pgxpool.Pool) error {
					list, err := monitor.NewAlertStore(pool, monitor.AlertStoreOptions{}).List(c.Context, c.String("status"), c.Int("limit"))
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(c.App.Writer, list)
					}
					printAlerts(c.App.Writer, list)
					return nil
				}),
			},
			{
				Name:      "ack",
				Usage:     "acknowledge an open alert: it stays until resolved, repeats still count on it",
				ArgsUsage: "[flags] ID",
				Flags: []cli.Flag{
					jsonFlag(),
					&cli.StringFlag{Name: "by", Usage: "who acknowledges", EnvVars: []string{"AUDIT_ALERT_ACK_BY", "USER"}},
				},
				Action: withPool(func(c *cli.Context, pool *pgxpool.Pool) error {
					id, err := idArg(c, "alert ID")
					if err != nil {
						return err
					}
					store := monitor.NewAlertStore(pool, monitor.AlertStoreOptions{})
					if strings.TrimSpace(c.String("by")) == "" {
						// a missing alert is the first thing to say; then the flag
						if _, err := store.Get(c.Context, id); err != nil {
							return err
						}
						return errors.New("by: required: pass --by NAME before the alert ID, or set AUDIT_ALERT_ACK_BY (USER, the fallback, is not set)")
					}
					a, err := store.Acknowledge(c.Context, id, c.String("by"))
					if err != nil {
						return err
					}
					return printAlert(c, a)
				}),
			},
			{
				Name:      "resolve",
				Usage:     "resolve an alert; the same problem raised again opens a new one",
				ArgsUsage: "[flags] ID",
				Flags:     []cli.Flag{jsonFlag(), webhookFlag()},
				Action: withPool(func(c *cli.Context, pool *pgxpool.Pool) error {
					id, err := idArg(c, "alert ID")
					if err != nil {
						return err
					}
					store, err := cliAlertStore(c, pool)
					if err != nil {
						return err
					}
					a, err := store.Resolve(c.Context, id)
					if err != nil {
						return err
					}
					return printAlert(c, a)
				}),
			},
			{
				Name:  "evaluate",
				Usage: "compute the alert conditions once (as the worker does every minute), open and resolve alerts; thresholds from AUDIT_ALERT_*",
				Flags: []cli.Flag{jsonFlag(), webhookFlag()},
				Action: withPool(func(c *cli.Context, pool *pgxpool.Pool) error {
					cfg, err := monitor.AlertConfigFromEnv()
					if err != nil {
						return err
					}
					store, err := cliAlertStore(c, pool)
					if err != nil {
						return err
					}
					res, err := (&workers.Deps{Pool: pool}).EvaluateAlerts(c.Context, store, cfg)
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(c.App.Writer, res)
					}
					fmt.Fprintf(c.App.Writer, "%d opened, %d still open, %d resolved\n", len(res.Opened), len(res.Repeated), len(res.Resolved))
					all := append(append(append([]monitor.Alert{}, res.Opened...), res.Repeated...), res.Resolved...)
					if len(all) > 0 {
						fmt.Fprintln(c.App.Writer)
						printAlerts(c.App.Writer, all)
					}
					return nil
				}),
			},
		},
	}
}

// cliAlertStore is an alert store whose alerts opened and resolved enqueue
// their webhook deliveries for the worker, through an insert-only River
// client.
func cliAlertStore(c *cli.Context, pool *pgxpool.Pool) (*monitor.AlertStore, error) {
	urls := c.StringSlice("webhook-url")
	if len(urls) == 0 {
		return monitor.NewAlertStore(pool, monitor.AlertStoreOptions{}), nil
	}
	for i, u := range urls {
		// the flag's words for monitor.AlertConfig.WebhookURLs' rule
		if err := (monitor.AlertConfig{WebhookURLs: []string{u}}).WithDefaults().Validate(); err != nil {
			return nil, fmt.Errorf("webhook-url: value %d: must be an absolute http or https URL", i+1)
		}
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: migrate.RiverSchema})
	if err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	hooks := &workers.AlertWebhooks{URLs: urls, Client: client}
	return monitor.NewAlertStore(pool, monitor.AlertStoreOptions{Notify: hooks.Notify}), nil
}

func printAlert(c *cli.Context, a monitor.Alert) error {
	if c.Bool("json") {
		return printJSON(c.App.Writer, a)
	}
	printAlerts(c.App.Writer, []monitor.Alert{a})
	return nil
}

func printAlerts(w io.Writer, list []monitor.Alert) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no alerts")
		return
	}
	stamp := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }
	rows := make([][]string, len(list))
	for i, a := range list {
		status := a.Status
		if a.AcknowledgedBy != nil {
			status += " (" + *a.AcknowledgedBy + ")"
		}
		rows[i] = []string{strconv.FormatInt(a.ID, 10), status, a.Severity, a.Kind, strconv.FormatInt(a.Occurrences, 10),
			stamp(a.FirstSeen), stamp(a.LastSeen), a.Message}
	}
	table(w, []string{"ID", "STATUS", "SEVERITY", "KIND", "SEEN", "FIRST", "LAST", "MESSAGE"}, rows)
}
