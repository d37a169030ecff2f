package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/verifier"
	"github.com/auditdb/auditdb/monitor"
	"github.com/auditdb/auditdb/workers"
)

// shutdownTimeout is how long running jobs get to finish on SIGTERM before
// they are cancelled.
const shutdownTimeout = 10 * time.Second

func runCommand() *cli.Command {
	interval := func(name, env string, def time.Duration, what string) cli.Flag {
		return &cli.DurationFlag{Name: name, Value: def, EnvVars: []string{env}, Usage: what + " (0 disables)"}
	}
	flags := []cli.Flag{
		&cli.StringFlag{Name: "listen", Value: workers.ListenDefault, Usage: "address of /healthz, /readyz and /metrics (loopback by default; :9187 for every interface)", EnvVars: []string{"AUDIT_WORKER_LISTEN"}},
		interval("seal-interval", "AUDIT_SEAL_INTERVAL", workers.SealIntervalDefault, "how often chains are sealed"),
		interval("verify-interval", "AUDIT_VERIFY_INTERVAL", workers.VerifyIntervalDefault, "how often an incremental verification runs"),
		interval("full-verify-interval", "AUDIT_FULL_VERIFY_INTERVAL", workers.FullVerifyIntervalDefault, "how often a full verification runs"),
		&cli.DurationFlag{Name: "verify-timeout", Value: workers.VerifyTimeoutDefault, EnvVars: []string{"AUDIT_VERIFY_TIMEOUT"},
			Usage: "longest one verification may run; a verification whose worker died is retried after it"},
		interval("partitions-interval", "AUDIT_PARTITIONS_INTERVAL", workers.PartitionsIntervalDefault, "how often partitions are created ahead and the default partition rescued"),
		interval("retention-interval", "AUDIT_RETENTION_INTERVAL", workers.RetentionIntervalDefault, "how often rows past retention are archived and removed (needs the seal key)"),
		archiveSinkFlag(),
		archiveDirFlag(),
		archiveRetainFlag(),
		interval("erasure-interval", "AUDIT_ERASURE_INTERVAL", workers.ErasureIntervalDefault, "how often open GDPR erasure requests are carried out (needs the seal key)"),
		interval("anchor-interval", "AUDIT_ANCHOR_INTERVAL", workers.AnchorIntervalDefault, "how often a signed bundle of every chain head is anchored (needs AUDIT_ANCHOR_KEY and AUDIT_ANCHOR_SINK)"),
		interval("optimize-interval", "AUDIT_OPTIMIZE_INTERVAL", workers.OptimizeIntervalDefault, "how often indexes and tables are analysed (and with --optimize-apply the safe actions run)"),
		&cli.BoolFlag{Name: "optimize-apply", Usage: "let the optimize job run ANALYZE and REINDEX INDEX CONCURRENTLY; without it the job only reports", EnvVars: []string{"AUDIT_OPTIMIZE_APPLY"}},
		interval("alerts-interval", "AUDIT_ALERTS_INTERVAL", workers.AlertsIntervalDefault, "how often alert conditions are evaluated (thresholds and webhooks: AUDIT_ALERT_*)"),
		&cli.IntFlag{Name: "months-ahead", Value: workers.MonthsAheadDefault, Usage: "months of partitions kept ahead", EnvVars: []string{"AUDIT_PARTITIONS_AHEAD"}},
		&cli.DurationFlag{Name: "max-seal-lag", Value: workers.MaxSealLagDefault, Usage: "largest seal lag /readyz accepts", EnvVars: []string{"AUDIT_MAX_SEAL_LAG"}},
		&cli.IntFlag{Name: "concurrency", Value: workers.ConcurrencyDefault, Usage: "jobs worked at once", EnvVars: []string{"AUDIT_WORKER_CONCURRENCY"}},
		&cli.StringFlag{Name: "worker-id", Usage: "name of this worker among replicas (default: host name and start time)", EnvVars: []string{"AUDIT_WORKER_ID"}},
		&cli.IntFlag{Name: "pool-min", Usage: "connections kept open (0: pgx's default, none)", EnvVars: []string{"AUDIT_DB_POOL_MIN"}},
		&cli.IntFlag{Name: "pool-max", Usage: "largest number of connections (0: pgx's default, the larger of 4 and the CPUs)", EnvVars: []string{"AUDIT_DB_POOL_MAX"}},
		&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json", EnvVars: []string{"AUDIT_LOG_FORMAT"}},
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"AUDIT_LOG_LEVEL"}},
		otelFlag(),
		replicaFlag(),
		slowQueryFlag(),
	}
	return &cli.Command{
		Name:  "run",
		Usage: "run the worker suite (partitions, seal, verify, retention, erasure, optimize, alerts) with /healthz, /readyz and /metrics, until SIGTERM",
		Flags: append(append(append(append(append(flags, sealKeyFlags()...), cacheFlags()...), metricsTokenFlags()...), anchorKeyFlags()...), anchorSinkFlags()...),
		Action: func(c *cli.Context) error {
			for _, name := range []string{"seal-interval", "verify-interval", "full-verify-interval", "partitions-interval",
				"retention-interval", "erasure-interval", "optimize-interval", "alerts-interval", "anchor-interval"} {
				if d := c.Duration(name); d < 0 || (d > 0 && d < time.Second) {
					return fmt.Errorf("%s: must be at least 1s, or 0 to disable, got %s", name, d)
				}
			}
			if err := checkArchiveLocation(c); err != nil {
				return err
			}
			if n := c.Int("months-ahead"); n < 0 || n > 120 {
				return fmt.Errorf("months-ahead: must be between 0 and 120, got %d", n)
			}
			cfg := workers.SuiteConfig{
				ID:                 c.String("worker-id"),
				Concurrency:        c.Int("concurrency"),
				SealInterval:       enabled(c.Duration("seal-interval")),
				VerifyInterval:     enabled(c.Duration("verify-interval")),
				FullVerifyInterval: enabled(c.Duration("full-verify-interval")),
				VerifyTimeout:      c.Duration("verify-timeout"),
				PartitionsInterval: enabled(c.Duration("partitions-interval")),
				MonthsAhead:        c.Int("months-ahead"),
				MaxSealLag:         c.Duration("max-seal-lag"),
				Retention:          &workers.RetentionConfig{ArchiveSink: c.String("archive-sink"), ArchiveDir: c.String("archive-dir"), ArchiveRetain: c.Duration("archive-retain"), Interval: enabled(c.Duration("retention-interval"))},
				ErasureInterval:    enabled(c.Duration("erasure-interval")),
				OptimizeInterval:   enabled(c.Duration("optimize-interval")),
				OptimizeApply:      c.Bool("optimize-apply"),
				AlertsInterval:     enabled(c.Duration("alerts-interval")),
				AnchorInterval:     enabled(c.Duration("anchor-interval")),
			}
			// a bad anchor key or sink fails here, at start, naming the setting
			anchors, err := anchorSetup(c)
			if err != nil {
				return err
			}
			alerts, err := monitor.AlertConfigFromEnv()
			if err != nil {
				return err
			}
			cfg.Alerts = alerts
			// the optimize job and the slow_queries alert judge by the
			// same threshold as `optimize report`
			slow, err := slowQueryThreshold(c)
			if err != nil {
				return err
			}
			cfg.Optimize.SlowQuery = slow
			cfg.Alerts.SlowQuery = slow
			if cfg.MonthsAhead == 0 {
				cfg.MonthsAhead = -1 // SuiteConfig's "none ahead"; its 0 means the default
			}
			keys, err := optionalSealKeys(c)
			if err != nil {
				return err
			}
			if keys == nil && cfg.SealInterval > 0 {
				return fmt.Errorf("cannot seal: %w; or --seal-interval 0 to run without sealing", integrity.ErrNoSealKeys)
			}
			logger, err := newLogger(c)
			if err != nil {
				return err
			}
			var tracer pgx.QueryTracer
			if c.Bool("otel") {
				tp, err := newTracerProvider(c.Context)
				if err != nil {
					return err
				}
				defer func() {
					ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Context), shutdownTimeout)
					defer cancel()
					if err := tp.Shutdown(ctx); err != nil {
						logger.Warn("otel: flush spans", "error", err)
					}
				}()
				if tracer, err = sqlTracer(tp, logger, slow); err != nil {
					return err
				}
				cfg.TracerProvider = tp
			}
			pool, err := connectTraced(c, tracer)
			if err != nil {
				return err
			}
			defer pool.Close()
			if err := requireSchema(c.Context, pool); err != nil {
				return err
			}
			replica, err := connectReplica(c, tracer)
			if err != nil {
				return err
			}
			if replica != nil {
				defer replica.Close()
				if err := verifier.CheckStandby(c.Context, pool, replica); err != nil {
					return fmt.Errorf("replica-url: %w", err)
				}
			}
			purge, closePurge, err := erasurePurger(c)
			if err != nil {
				return err
			}
			if closePurge != nil {
				defer closePurge()
			}
			return runSuite(c, &workers.Deps{Pool: pool, Replica: replica, Keys: keys, Anchors: anchors, Logger: logger, FaultHooks: testFaultHooks(), AfterErasure: purge}, cfg)
		},
	}
}

// enabled maps the CLI's "0 disables" to SuiteConfig's negative intervals.
func enabled(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func runSuite(c *cli.Context, deps *workers.Deps, cfg workers.SuiteConfig) error {
	logger := deps.Logger
	suite, err := workers.NewSuite(deps, cfg)
	if err != nil {
		return err
	}
	httpCfg, err := httpConfig(c)
	if err != nil {
		return err
	}
	handler, err := suite.HandlerWith(httpCfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if err := suite.Start(c.Context); err != nil {
		_ = srv.Close()
		return err
	}
	logger.Info("auditworker: serving", "url", "http://"+ln.Addr().String(), "health", "/healthz /readyz /metrics",
		"metrics_token", httpCfg.MetricsToken != "")
	stopReload := reloadKeysOnHUP(c, suite, logger)
	defer stopReload()

	select {
	case <-c.Context.Done():
	case err = <-serveErr:
		err = fmt.Errorf("http: %w", err)
	}
	logger.Info("auditworker: stopping")
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Context), shutdownTimeout)
	defer cancel()
	stopErr := suite.Stop(ctx)
	if shutErr := srv.Shutdown(ctx); shutErr != nil && !errors.Is(shutErr, http.ErrServerClosed) {
		stopErr = errors.Join(stopErr, shutErr)
	}
	return errors.Join(err, stopErr)
}

// newLogger builds the structured logger of --log-format and --log-level,
// writing to stderr.
func newLogger(c *cli.Context) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, fmt.Errorf("log-level: want debug, info, warn or error, got %q", c.String("log-level"))
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(c.String("log-format")) {
	case "text":
		return slog.New(slog.NewTextHandler(c.App.ErrWriter, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(c.App.ErrWriter, opts)), nil
	}
	return nil, fmt.Errorf("log-format: want text or json, got %q", c.String("log-format"))
}

// cliLogger is the logger of one-shot commands: warnings and errors only,
// as text on stderr.
func cliLogger(c *cli.Context) *slog.Logger {
	return slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// reloadKeysOnHUP re-reads the seal keys (a changed --seal-keys-file) on
// SIGHUP and hands them to the suite; a list that does not parse, or that
// drops or changes a key, is refused and the keys in use stay. It returns
// a function that stops listening.
func reloadKeysOnHUP(c *cli.Context, suite *workers.Suite, logger *slog.Logger) func() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				keys, err := sealKeys(c)
				if err == nil {
					err = suite.ReloadKeys(keys)
				}
				if err != nil {
					logger.Error("seal keys not reloaded; the keys in use stay", "error", err)
				}
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}
