package workers

import (
	"context"

	"github.com/riverqueue/river"

	"github.com/auditdb/auditdb/monitor"
)

// AlertEvaluateArgs is the alert evaluation job: compute the conditions
// (monitor.EvaluateAlerts), open or repeat their alerts, resolve the
// evaluator's alerts whose condition cleared.
type AlertEvaluateArgs struct{}

// Kind names the job in River.
func (AlertEvaluateArgs) Kind() string { return "auditdb_alert_evaluate" }

// InsertOpts: one attempt; the next period evaluates afresh.
func (AlertEvaluateArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: 1}
}

// AlertEvaluateWorker works AlertEvaluateArgs jobs.
type AlertEvaluateWorker struct {
	river.WorkerDefaults[AlertEvaluateArgs]
	Deps *Deps
	// Alerts records the alerts (and, through its notifier, enqueues their
	// webhooks). Required.
	Alerts *monitor.AlertStore
	// Config holds the thresholds. Zero fields take their defaults.
	Config monitor.AlertConfig
}

// Work evaluates; see Deps.EvaluateAlerts.
func (w *AlertEvaluateWorker) Work(ctx context.Context, _ *river.Job[AlertEvaluateArgs]) error {
	_, err := w.Deps.EvaluateAlerts(ctx, w.Alerts, w.Config)
	return err
}

// EvaluateAlerts computes the alert conditions and records them in store.
func (d *Deps) EvaluateAlerts(ctx context.Context, store *monitor.AlertStore, cfg monitor.AlertConfig) (*monitor.AlertSync, error) {
	conds, err := monitor.EvaluateAlerts(ctx, d.Pool, cfg)
	if err != nil {
		return nil, err
	}
	return store.Sync(ctx, conds, monitor.EvaluatedAlertKinds)
}
