package workers

import (
	"context"
	"errors"
	"time"

	"github.com/riverqueue/river"

	"github.com/auditdb/auditdb/monitor"
)

// OptimizeArgs is the optimize job: analyse indexes and tables
// (monitor.AnalyzeIndexes) and run the safe actions, ANALYZE and REINDEX
// INDEX CONCURRENTLY of single leaf indexes. Everything else the analysis
// finds is a recommendation for `auditworker optimize report`.
type OptimizeArgs struct {
	// DryRun lists the actions without running them.
	DryRun bool `json:"dry_run,omitempty"`
}

// Kind names the job in River.
func (OptimizeArgs) Kind() string { return "auditdb_optimize" }

// InsertOpts: one attempt. A REINDEX CONCURRENTLY that fails leaves an
// invalid copy of the index that a blind retry would pile onto; the next
// period's run starts from a fresh analysis instead.
func (OptimizeArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: 1}
}

// OptimizeWorker works OptimizeArgs jobs.
type OptimizeWorker struct {
	river.WorkerDefaults[OptimizeArgs]
	Deps *Deps
	// Config holds the analysis thresholds. Zero fields take their
	// defaults.
	Config monitor.OptimizeConfig
}

// Work optimises; see Deps.Optimize.
func (w *OptimizeWorker) Work(ctx context.Context, job *river.Job[OptimizeArgs]) error {
	_, err := w.Deps.Optimize(ctx, w.Config, job.Args.DryRun)
	return err
}

// Timeout: a reindex of a large partition's index takes minutes, River's
// default minute is too short.
func (w *OptimizeWorker) Timeout(*river.Job[OptimizeArgs]) time.Duration { return 2 * time.Hour }

// AppliedAction is one safe action and what became of it.
type AppliedAction struct {
	monitor.Action
	// Error is set when the action failed.
	Error string `json:"error,omitempty"`
	// Skipped says why the action was not run although it is safe: only
	// the table's owner may run it (monitor.ErrNotOwner) and this role is
	// not the owner. Not a failure: the report keeps recommending it.
	Skipped string `json:"skipped,omitempty"`
	// Duration is how long it ran; zero in a dry run.
	Duration time.Duration `json:"duration_ns"`
}

// OptimizeResult is what Deps.Optimize found and did.
type OptimizeResult struct {
	Report  *monitor.IndexReport `json:"report"`
	DryRun  bool                 `json:"dry_run"`
	Applied []AppliedAction      `json:"actions"`
}

// Optimize analyses the database and runs the safe actions one at a time:
// ANALYZE first, and when it ran, a fresh analysis (the bloat estimate needs
// statistics) whose reindexes follow. A failed action does not stop the
// others; the failures come back joined, after every action was tried. A
// dry run lists the actions of the first analysis only.
func (d *Deps) Optimize(ctx context.Context, cfg monitor.OptimizeConfig, dryRun bool) (*OptimizeResult, error) {
	rep, err := monitor.AnalyzeIndexes(ctx, d.Pool, cfg)
	if err != nil {
		return nil, err
	}
	res := &OptimizeResult{Report: rep, DryRun: dryRun, Applied: []AppliedAction{}}
	if dryRun {
		for _, a := range rep.Actions() {
			res.Applied = append(res.Applied, AppliedAction{Action: a})
		}
		return res, nil
	}
	var errs []error
	apply := func(kind monitor.ActionKind) int {
		n := 0
		for _, a := range res.Report.Actions() {
			if a.Kind != kind {
				continue
			}
			n++
			start := time.Now()
			err := monitor.ApplyAction(ctx, d.Pool, a)
			done := AppliedAction{Action: a, Duration: time.Since(start)}
			switch {
			case errors.Is(err, monitor.ErrNotOwner):
				done.Skipped, done.Duration = monitor.ErrNotOwner.Error(), 0
				d.logger().InfoContext(ctx, "optimize: action skipped", "action", a.Kind, "target", a.Target, "reason", done.Skipped)
			case err != nil:
				done.Error = err.Error()
				errs = append(errs, err)
				d.logger().ErrorContext(ctx, "optimize: action failed", "action", a.Kind, "target", a.Target, "error", err)
			default:
				d.logger().InfoContext(ctx, "optimize: action done", "action", a.Kind, "target", a.Target, "duration", done.Duration)
			}
			res.Applied = append(res.Applied, done)
		}
		return n
	}
	if apply(monitor.ActionAnalyze) > 0 {
		if res.Report, err = monitor.AnalyzeIndexes(ctx, d.Pool, cfg); err != nil {
			return res, errors.Join(append(errs, err)...)
		}
	}
	apply(monitor.ActionReindex)
	return res, errors.Join(errs...)
}
