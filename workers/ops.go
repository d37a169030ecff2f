package workers

import (
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/auditdb/auditdb/monitor"
)

// OpsConfig configures the optimize and alert jobs.
type OpsConfig struct {
	// Optimize holds the index analysis thresholds. Zero fields take their
	// defaults.
	Optimize monitor.OptimizeConfig
	// Alerts holds the alert thresholds and webhooks
	// (monitor.AlertConfigFromEnv reads them). Zero fields take their
	// defaults.
	Alerts monitor.AlertConfig
	// HTTPClient posts to the webhooks. Defaults to a client with a 10s
	// timeout.
	HTTPClient *http.Client
}

// Ops are the optimize and alert jobs, registered with a River client's
// workers: OptimizeWorker every OptimizeInterval, AlertEvaluateWorker every
// AlertEvaluateInterval (and at start), AlertWebhookWorker for deliveries.
type Ops struct {
	// Alerts is the alert store. It is a workers.Alerter: set Deps.Alerter
	// to it so that the jobs' own alerts are stored and delivered too.
	Alerts *monitor.AlertStore
	// Webhooks enqueues deliveries; Attach gives it its client.
	Webhooks *AlertWebhooks
	// Periodic are the periodic jobs for river.Config.PeriodicJobs.
	Periodic []*river.PeriodicJob
}

// NewOps adds the optimize and alert workers to w and returns the alert
// store and the periodic jobs. After creating the River client, call
// Attach before starting it.
func NewOps(deps *Deps, w *river.Workers, cfg OpsConfig) *Ops {
	logger := deps.Logger
	if logger == nil {
		logger = slog.Default()
	}
	hooks := &AlertWebhooks{URLs: cfg.Alerts.WebhookURLs}
	store := monitor.NewAlertStore(deps.Pool, monitor.AlertStoreOptions{Logger: logger, Notify: hooks.Notify})
	river.AddWorker(w, &OptimizeWorker{Deps: deps, Config: cfg.Optimize})
	river.AddWorker(w, &AlertEvaluateWorker{Deps: deps, Alerts: store, Config: cfg.Alerts})
	river.AddWorker(w, &AlertWebhookWorker{Deps: deps, URLs: cfg.Alerts.WebhookURLs, HTTPClient: cfg.HTTPClient})
	return &Ops{
		Alerts:   store,
		Webhooks: hooks,
		Periodic: []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(OptimizeInterval),
				func() (river.JobArgs, *river.InsertOpts) { return OptimizeArgs{}, nil }, nil),
			river.NewPeriodicJob(river.PeriodicInterval(AlertEvaluateInterval),
				func() (river.JobArgs, *river.InsertOpts) { return AlertEvaluateArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
		},
	}
}

// Attach lets alerts raised outside jobs enqueue their webhook deliveries
// through client.
func (o *Ops) Attach(client *river.Client[pgx.Tx]) {
	o.Webhooks.Client = client
}
