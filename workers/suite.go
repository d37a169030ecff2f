package workers

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/migrate"
	"github.com/auditdb/auditdb/monitor"
)

// Queue is the River queue of auditdb's jobs.
const Queue = "auditdb"

// Defaults of SuiteConfig.
const (
	SealIntervalDefault       = 10 * time.Second
	VerifyIntervalDefault     = 5 * time.Minute
	FullVerifyIntervalDefault = 24 * time.Hour
	VerifyTimeoutDefault      = 6 * time.Hour
	PartitionsIntervalDefault = time.Hour
	OptimizeIntervalDefault   = 6 * time.Hour
	AlertsIntervalDefault     = time.Minute
	ErasureIntervalDefault    = 30 * time.Second
	ConcurrencyDefault        = 4
	MaxSealLagDefault         = time.Minute
)

// AnchorInterval's default is AnchorIntervalDefault (workers/anchor.go).

// minInterval is River's floor for periodic jobs.
const minInterval = time.Second

// SuiteConfig configures the worker suite. Every interval may be negative
// to leave that job unscheduled (its worker is still registered, so jobs
// inserted by hand run).
type SuiteConfig struct {
	// ID names this process among River clients. Defaults to River's
	// (host name and a timestamp).
	ID string
	// Concurrency is how many jobs run at once. Defaults to 4.
	Concurrency int
	// SealInterval is how often chains are sealed. Defaults to 10s.
	SealInterval time.Duration
	// VerifyInterval is how often an incremental verification runs.
	// Defaults to 5m.
	VerifyInterval time.Duration
	// FullVerifyInterval is how often a full verification runs. Defaults
	// to 24h.
	FullVerifyInterval time.Duration
	// VerifyTimeout bounds one verification job, incremental or full (a
	// full one reads about 250,000 rows/s: BENCHMARKS.md). A run still
	// going then is cancelled and retried; the job of a worker that died
	// mid-run is retried once this has passed since it started (River
	// never retries a job that has no timeout). Defaults to 6h.
	VerifyTimeout time.Duration
	// PartitionsInterval is how often partitions are created ahead and the
	// default partition rescued. Defaults to 1h.
	PartitionsInterval time.Duration
	// MonthsAhead is how many months of partitions are kept ahead of the
	// current one; negative keeps the current month only. Defaults to 3.
	MonthsAhead int
	// MaxSealLag is the largest seal lag /readyz accepts while sealing is
	// scheduled (the alert evaluator has its own threshold, Alerts.SealLag).
	// Defaults to 1m.
	MaxSealLag time.Duration
	// Retention configures retention: how often it runs (Interval, 1h) and
	// the archive (directory or sink, sizes). It deletes rows once they are
	// archived, so it is scheduled only with an archive location configured
	// (RetentionConfig.HasArchiveLocation) and a seal key. Defaults to
	// RetentionConfig's defaults: no archive location, retention off.
	Retention *RetentionConfig
	// OptimizeInterval is how often indexes and tables are analysed (and,
	// with OptimizeApply, the safe actions run). Defaults to 6h.
	OptimizeInterval time.Duration
	// OptimizeApply lets the optimize job run the safe actions it finds
	// (ANALYZE, REINDEX INDEX CONCURRENTLY of one partition's index).
	// Defaults to false: the job analyses and logs what it would do, and
	// changes nothing; automatic changes beyond sealing and partitions are
	// opt-in.
	OptimizeApply bool
	// Optimize holds the analysis thresholds. Defaults to
	// monitor.OptimizeConfig's.
	Optimize monitor.OptimizeConfig
	// AlertsInterval is how often alert conditions are evaluated. Defaults
	// to 1m.
	AlertsInterval time.Duration
	// Alerts holds alert thresholds and webhooks
	// (monitor.AlertConfigFromEnv). Defaults to monitor.AlertConfig's.
	Alerts monitor.AlertConfig
	// ErasureInterval is how often open GDPR erasure requests are carried
	// out. Defaults to 30s; unscheduled without a seal key (redaction
	// records are sealed).
	ErasureInterval time.Duration
	// AnchorInterval is how often a bundle of every chain head is anchored
	// (after a seal). Unscheduled without Deps.Anchors. Defaults to 1h.
	AnchorInterval time.Duration
	// TracerProvider, if set, gets a span per job worked, the parent of
	// the job's SQL spans (otelpgx records those only inside a span).
	// Defaults to none.
	TracerProvider trace.TracerProvider
}

// WithDefaults returns the config with zero fields set to their defaults.
func (c SuiteConfig) WithDefaults() SuiteConfig {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.SealInterval, SealIntervalDefault)
	def(&c.VerifyInterval, VerifyIntervalDefault)
	def(&c.FullVerifyInterval, FullVerifyIntervalDefault)
	def(&c.VerifyTimeout, VerifyTimeoutDefault)
	def(&c.PartitionsInterval, PartitionsIntervalDefault)
	def(&c.MaxSealLag, MaxSealLagDefault)
	def(&c.OptimizeInterval, OptimizeIntervalDefault)
	def(&c.AlertsInterval, AlertsIntervalDefault)
	def(&c.ErasureInterval, ErasureIntervalDefault)
	def(&c.AnchorInterval, AnchorIntervalDefault)
	if c.Concurrency == 0 {
		c.Concurrency = ConcurrencyDefault
	}
	if c.MonthsAhead == 0 {
		c.MonthsAhead = MonthsAheadDefault
	}
	return c
}

func (c SuiteConfig) validate() error {
	if c.Concurrency < 1 || c.Concurrency > river.QueueNumWorkersMax {
		return fmt.Errorf("Concurrency: must be between 1 and %d, got %d", river.QueueNumWorkersMax, c.Concurrency)
	}
	if c.MonthsAhead > 120 {
		return fmt.Errorf("MonthsAhead: must be at most 120, got %d", c.MonthsAhead)
	}
	if c.MaxSealLag < 0 {
		return fmt.Errorf("MaxSealLag: must not be negative, got %s", c.MaxSealLag)
	}
	if c.VerifyTimeout < time.Second {
		return fmt.Errorf("VerifyTimeout: must be at least 1s, got %s", c.VerifyTimeout)
	}
	// the jobs' own settings fail here, at start, not at their first run
	if err := c.Retention.WithDefaults().Validate(); err != nil {
		return fmt.Errorf("Retention: %w", err)
	}
	if err := c.Alerts.WithDefaults().Validate(); err != nil {
		return fmt.Errorf("Alerts: %w", err)
	}
	if err := c.Optimize.WithDefaults().Validate(); err != nil {
		return fmt.Errorf("Optimize: %w", err)
	}
	return nil
}

// jobKind is one entry of the suite's registration table: a worker, and
// when every > 0 the periodic schedule of args.
type jobKind struct {
	args  river.JobArgs
	every time.Duration
	add   func(*river.Workers) error
	// later: the first run waits a whole interval instead of starting with
	// the worker, for heavy jobs (a full verification at every deploy
	// would read the whole log while writers write)
	later bool
	// name is how the start-up log names the job; off says why a job
	// with every <= 0 is not scheduled.
	name, off string
}

// periodic registers worker for T's kind and schedules args every every.
func periodic[T river.JobArgs](worker river.Worker[T], every time.Duration, args T) jobKind {
	return jobKind{args: args, every: every, add: func(w *river.Workers) error { return river.AddWorkerSafely(w, worker) }}
}

func later(jk jobKind) jobKind {
	jk.later = true
	return jk
}

// named gives the job its start-up log name, and the reason it is off when
// every <= 0 (an interval of 0 on the command line, or a missing key or
// setting).
func named(jk jobKind, name string, off func() string) jobKind {
	jk.name = name
	if jk.every <= 0 {
		jk.off = "disabled (interval 0)"
		if off != nil {
			if why := off(); why != "" {
				jk.off = why
			}
		}
	}
	return jk
}

// jobKinds is the single registration point of the suite's jobs. Adding a
// job kind is one line here, its interval in SuiteConfig with a default in
// WithDefaults, and a flag in cmd/auditworker/run.go.
func jobKinds(d *Deps, c SuiteConfig, alerts *monitor.AlertStore) []jobKind {
	keyed := func(every time.Duration) time.Duration { // jobs that seal need a key
		if d.Keys == nil {
			return -1
		}
		return every
	}
	anchored := func(every time.Duration) time.Duration { // anchoring needs a key and a sink
		if d.Anchors == nil {
			return -1
		}
		return every
	}
	noKey := func() string {
		if d.Keys == nil {
			return "off: no seal key (AUDIT_SEAL_KEYS or AUDIT_SEAL_KEYS_FILE)"
		}
		return ""
	}
	retention := c.Retention.WithDefaults()
	retentionEvery := keyed(retention.Interval)
	if !retention.HasArchiveLocation() {
		// it deletes what it archived: never without a chosen archive
		retentionEvery = -1
	}
	return []jobKind{
		named(periodic(&PartitionsWorker{Deps: d}, c.PartitionsInterval, PartitionsArgs{MonthsAhead: max(c.MonthsAhead, 0)}), "partitions", nil),
		named(periodic(&SealWorker{Deps: d}, c.SealInterval, SealArgs{}), "seal", nil),
		named(periodic(&VerifyWorker{Deps: d, JobTimeout: c.VerifyTimeout}, keyed(c.VerifyInterval), VerifyArgs{}), "verify", noKey), // incremental: trusts checkpoints by their MACs
		named(later(periodic(&VerifyWorker{Deps: d, JobTimeout: c.VerifyTimeout}, c.FullVerifyInterval, VerifyArgs{Full: true})), "full_verify", nil),
		named(later(periodic(&RetentionWorker{Deps: d, Config: c.Retention}, retentionEvery, RetentionArgs{})), "retention", func() string {
			if !retention.HasArchiveLocation() {
				return "off: no archive location (opt in with --archive-sink / AUDIT_ARCHIVE_SINK, an absolute directory or s3://bucket/prefix; retention deletes rows once archived there)"
			}
			return noKey()
		}),
		named(periodic(&ErasureWorker{Deps: d}, keyed(c.ErasureInterval), ErasureArgs{}), "erasure", noKey),
		named(periodic(&AnchorWorker{Deps: d}, anchored(c.AnchorInterval), AnchorArgs{}), "anchor", func() string {
			if d.Anchors == nil {
				return "off: no anchor key and sink (AUDIT_ANCHOR_KEY or AUDIT_ANCHOR_KEY_FILE, and AUDIT_ANCHOR_SINK)"
			}
			return ""
		}),
		named(later(periodic(&OptimizeWorker{Deps: d, Config: c.Optimize}, c.OptimizeInterval, OptimizeArgs{DryRun: !c.OptimizeApply})), "optimize", nil),
		named(periodic(&AlertEvaluateWorker{Deps: d, Alerts: alerts, Config: c.Alerts}, c.AlertsInterval, AlertEvaluateArgs{}), "alerts", nil),
		named(periodic(&AlertWebhookWorker{Deps: d, URLs: c.Alerts.WebhookURLs}, -1, AlertWebhookArgs{}), "alert_webhook", func() string {
			return "on demand: one job per alert opened or resolved, to AUDIT_ALERT_WEBHOOK_URLS"
		}),
	}
}

// periodicIDPattern is River's rule for PeriodicJobOpts.ID (it panics on
// others).
var periodicIDPattern = regexp.MustCompile(`\A[\w][\w\-\[\]<>\/.·:+]+\z`)

// periodicID names a periodic job by its kind and arguments, stable across
// restarts: auditdb_verify:full:true.
func periodicID(args river.JobArgs) (string, error) {
	b, err := json.Marshal(args)
	if err != nil {
		return "", err
	}
	id := args.Kind()
	if a := strings.NewReplacer("{", "", "}", "", `"`, "", ",", "+").Replace(string(b)); a != "" {
		id += ":" + a
	}
	if !periodicIDPattern.MatchString(id) {
		return "", fmt.Errorf("periodic job id %q: arguments must be simple values", id)
	}
	return id, nil
}

// Suite is auditworker's River client with its jobs, metrics and health.
type Suite struct {
	deps    *Deps
	cfg     SuiteConfig
	client  *river.Client[pgx.Tx]
	events  <-chan *river.Event
	cancel  func()
	running atomic.Bool
	wg      sync.WaitGroup
	kinds   []jobKind  // for the start-up log
	reload  sync.Mutex // one ReloadKeys at a time: each checks against the keys in force
}

// NewSuite builds the River client, its workers and its periodic jobs. It
// uses a copy of deps with the suite's Metrics. With sealing scheduled and
// no seal key it refuses with integrity.ErrNoSealKeys: a worker that
// silently did not seal would leave the log's tail unprotected.
func NewSuite(deps *Deps, cfg SuiteConfig) (*Suite, error) {
	if deps == nil || deps.Pool == nil {
		return nil, errors.New("workers: Deps.Pool is required")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("workers: %w", err)
	}
	if cfg.SealInterval > 0 {
		if _, _, err := deps.Keys.ActiveKey(); err != nil {
			if errors.Is(err, integrity.ErrNoSealKeys) {
				return nil, fmt.Errorf("cannot seal: %w", err)
			}
			return nil, err
		}
	}
	if deps.Anchors != nil {
		if err := deps.Anchors.WithDefaults().Validate(); err != nil {
			return nil, fmt.Errorf("workers: %w", err)
		}
	}
	d := *deps
	d.reloaded = new(atomic.Pointer[integrity.SealKeys])
	s := &Suite{deps: &d, cfg: cfg}
	d.Metrics = newMetrics(d.Pool, d.ChainStates)
	// Alerts the jobs raise are stored (deduplicated while open) and
	// delivered to the webhooks, unless the caller brought its own Alerter.
	hooks := &AlertWebhooks{URLs: cfg.Alerts.WebhookURLs}
	alerts := monitor.NewAlertStore(d.Pool, monitor.AlertStoreOptions{Logger: d.logger(), Notify: hooks.Notify})
	if d.Alerter == nil {
		d.Alerter = alerts
	}

	workers := river.NewWorkers()
	registered := map[string]bool{}
	var periodicJobs []*river.PeriodicJob
	kinds := jobKinds(&d, cfg, alerts)
	s.kinds = kinds
	for _, jk := range kinds {
		kind := jk.args.Kind()
		if !registered[kind] {
			if err := jk.add(workers); err != nil {
				return nil, fmt.Errorf("workers: %s: %w", kind, err)
			}
			registered[kind] = true
		}
		if jk.every <= 0 {
			continue
		}
		if jk.every < minInterval {
			return nil, fmt.Errorf("workers: %s: interval must be at least %s (or negative to disable), got %s", kind, minInterval, jk.every)
		}
		id, err := periodicID(jk.args)
		if err != nil {
			return nil, fmt.Errorf("workers: %s: %w", kind, err)
		}
		args, every, onStart := jk.args, jk.every, !jk.later
		// River's elected leader alone enqueues periodic jobs; uniqueness
		// per period also covers a leader change inside one period (the
		// new leader enqueues on start) and jobs inserted by hand.
		opts := &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: every}}
		periodicJobs = append(periodicJobs, river.NewPeriodicJob(river.PeriodicInterval(every),
			func() (river.JobArgs, *river.InsertOpts) { return args, opts },
			&river.PeriodicJobOpts{ID: id, RunOnStart: onStart}))
	}
	var middleware []rivertype.Middleware
	if cfg.TracerProvider != nil {
		middleware = append(middleware, jobSpans(cfg.TracerProvider.Tracer("github.com/auditdb/auditdb/workers")))
	}
	client, err := river.NewClient(riverpgxv5.New(d.Pool), &river.Config{
		Middleware:   middleware,
		ID:           cfg.ID,
		Schema:       migrate.RiverSchema,
		Queues:       map[string]river.QueueConfig{Queue: {MaxWorkers: cfg.Concurrency}},
		Workers:      workers,
		PeriodicJobs: periodicJobs,
		Logger:       d.logger().With("component", "river"),
	})
	if err != nil {
		return nil, fmt.Errorf("workers: river client: %w", err)
	}
	s.client = client
	hooks.Client = client
	s.events, s.cancel = client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed,
		river.EventKindJobCancelled, river.EventKindJobSnoozed)
	return s, nil
}

// ReloadKeys puts keys in place of the seal keys the jobs use, from their
// next seal or verification on: rotation without a restart (add a key,
// reload, make it active, reload). Every key the suite has must still be
// there with the same bytes, or the seals made with it would stop
// verifying; and a suite started without keys has not scheduled the jobs
// that need them, so it must be restarted instead.
func (s *Suite) ReloadKeys(keys *integrity.SealKeys) error {
	s.reload.Lock()
	defer s.reload.Unlock()
	current := s.deps.sealKeys()
	if current == nil {
		return errors.New("workers: reload seal keys: the suite started without seal keys, so the jobs that need them are not scheduled: restart it with keys")
	}
	if _, _, err := keys.ActiveKey(); err != nil {
		return fmt.Errorf("workers: reload seal keys: %w", err)
	}
	for _, id := range current.IDs() {
		k, ok := keys.Ring[id]
		switch {
		case !ok:
			return fmt.Errorf("workers: reload seal keys: key %q is missing: keep retired keys in the ring, or the seals made with them stop verifying", id)
		case !hmac.Equal(k, current.Ring[id]):
			return fmt.Errorf("workers: reload seal keys: key %q has other bytes than before: a key id must keep its key", id)
		}
	}
	s.deps.reloaded.Store(keys)
	s.deps.logger().Info("seal keys reloaded", "active", keys.Active, "keys", len(keys.Ring))
	return nil
}

// Deps returns the suite's dependencies (with its Metrics).
func (s *Suite) Deps() *Deps { return s.deps }

// Start starts working jobs; it returns once River runs. Stop it with Stop.
func (s *Suite) Start(ctx context.Context) error {
	if err := s.client.Start(ctx); err != nil {
		return fmt.Errorf("workers: start river: %w", err)
	}
	s.running.Store(true)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		stopped := s.client.Stopped()
		for {
			select {
			case ev := <-s.events:
				if ev != nil && ev.Job != nil {
					var run time.Duration
					if ev.JobStats != nil {
						run = ev.JobStats.RunDuration
					}
					s.deps.Metrics.observeJob(ev.Job.Kind, eventState(ev.Kind), run)
				}
			case <-stopped:
				s.running.Store(false)
				return
			}
		}
	}()
	s.logJobs(ctx)
	return nil
}

// logJobs logs, at start, every job with its interval, or why it is not
// scheduled: what the worker will do to the database is never a surprise.
func (s *Suite) logJobs(ctx context.Context) {
	log := s.deps.logger()
	for _, jk := range s.kinds {
		if jk.every > 0 {
			attrs := []any{"job", jk.name, "interval", jk.every.String()}
			if jk.later {
				attrs = append(attrs, "first_run", "after one interval")
			}
			switch jk.name {
			case "optimize":
				if s.cfg.OptimizeApply {
					attrs = append(attrs, "mode", "apply (ANALYZE, REINDEX INDEX CONCURRENTLY)")
				} else {
					attrs = append(attrs, "mode", "report only (opt in to its actions with --optimize-apply / AUDIT_OPTIMIZE_APPLY)")
				}
			case "retention":
				attrs = append(attrs, "archive", "configured")
			}
			log.InfoContext(ctx, "workers: job scheduled", attrs...)
			continue
		}
		log.InfoContext(ctx, "workers: job not scheduled", "job", jk.name, "why", jk.off)
	}
}

// jobSpans starts a span around every job. Attributes are the job's kind,
// id and attempt; never its arguments.
func jobSpans(tracer trace.Tracer) rivertype.Middleware {
	return river.WorkerMiddlewareFunc(func(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
		ctx, span := tracer.Start(ctx, "job "+job.Kind, trace.WithAttributes(attribute.String("river.job.kind", job.Kind),
			attribute.Int64("river.job.id", job.ID), attribute.Int("river.job.attempt", job.Attempt)))
		defer span.End()
		err := doInner(ctx)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "job failed")
		}
		return err
	})
}

func eventState(k river.EventKind) string {
	switch k {
	case river.EventKindJobCompleted:
		return "completed"
	case river.EventKindJobFailed:
		return "failed"
	case river.EventKindJobCancelled:
		return "cancelled"
	case river.EventKindJobSnoozed:
		return "snoozed"
	}
	return string(k)
}

// Stop stops fetching jobs and waits for running ones until ctx ends, then
// cancels them.
func (s *Suite) Stop(ctx context.Context) error {
	err := s.client.Stop(ctx)
	if err != nil {
		// ctx ended first: cancel what still runs, and wait for that
		err = s.client.StopAndCancel(context.WithoutCancel(ctx))
	}
	s.cancel()
	s.wg.Wait()
	s.running.Store(false)
	return err
}

// Ready reports why the suite is not ready, or nil: the database answers,
// River runs, and (while sealing is scheduled) the seal lag is within
// MaxSealLag.
func (s *Suite) Ready(ctx context.Context) error {
	if err := s.deps.Pool.Ping(ctx); err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	if !s.running.Load() {
		return errors.New("river is not running")
	}
	if s.cfg.SealInterval > 0 {
		states, err := s.deps.ChainStates(ctx)
		if err != nil {
			return err
		}
		if lag := MaxSealLag(states); lag > s.cfg.MaxSealLag {
			return fmt.Errorf("seal lag %s exceeds %s", lag.Round(time.Millisecond), s.cfg.MaxSealLag)
		}
	}
	return nil
}

// logger is for components that only hold the suite.
func (s *Suite) logger() *slog.Logger { return s.deps.logger() }
