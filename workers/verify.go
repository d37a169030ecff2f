package workers

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/verifier"
	"github.com/auditdb/auditdb/monitor"
)

// VerifyArgs is the verification job: incremental (from each chain's last
// verified checkpoint) or, with Full, every row from the start.
type VerifyArgs struct {
	Full bool `json:"full"`
}

// Kind names the job in River.
func (VerifyArgs) Kind() string { return "auditdb_verify" }

// InsertOpts puts the job on the suite's queue.
func (VerifyArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: 3}
}

// VerifyWorker works VerifyArgs jobs.
type VerifyWorker struct {
	river.WorkerDefaults[VerifyArgs]
	Deps *Deps
	// JobTimeout bounds one job (SuiteConfig.VerifyTimeout); zero is
	// VerifyTimeoutDefault.
	JobTimeout time.Duration
}

// Timeout lifts River's default one-minute limit, since a full verification
// of a large log takes as long as reading it, but keeps one: River rescues
// the job of a worker that died only once its timeout has passed, and never
// when it has none.
func (w *VerifyWorker) Timeout(*river.Job[VerifyArgs]) time.Duration {
	return cmp.Or(w.JobTimeout, VerifyTimeoutDefault)
}

// Work verifies; see Deps.Verify. Runs still "running" after the job
// timeout belong to a worker that died (River cancels a job at its timeout,
// and a cancelled run records its failure), so they are closed as
// abandoned first.
func (w *VerifyWorker) Work(ctx context.Context, job *river.Job[VerifyArgs]) error {
	_, err := w.Deps.Verify(ctx, VerifyOptions{Full: job.Args.Full, AbandonAfter: w.Timeout(job)})
	return err
}

// VerifyOptions for Deps.Verify. The zero value is an incremental run of
// every chain.
type VerifyOptions struct {
	// Full reads every row instead of starting from verified checkpoints.
	Full bool
	// AbandonAfter is passed to verifier.Options.AbandonAfter.
	AbandonAfter time.Duration
	// Progress is passed to verifier.Options.Progress.
	Progress func(done, total int64)
}

// Verify runs and records a verification with the configured keys (MACs
// unchecked without keys) and raises a critical alert when it finds
// tampering. The returned error means the run could not be done; tampering
// is in the report.
func (d *Deps) Verify(ctx context.Context, opts VerifyOptions) (*integrity.Report, error) {
	rep, err := verifier.Verify(ctx, d.Pool, verifier.Options{
		Keys: d.keyring(), Incremental: !opts.Full, Progress: opts.Progress, Source: d.Replica,
		AbandonAfter: opts.AbandonAfter,
	})
	mode := "incremental"
	if opts.Full {
		mode = "full"
	}
	d.Metrics.observeVerify(mode, rep, err)
	if err != nil {
		return nil, err
	}
	d.logger().InfoContext(ctx, "verify: done", "mode", rep.Mode, "run_id", rep.RunID, "status", rep.Status,
		"rows", rep.RowsChecked, "findings", len(rep.Findings), "duration", rep.Duration)
	if !rep.Intact() {
		kinds := map[integrity.Kind]int{}
		for _, f := range rep.Findings {
			kinds[f.Kind]++
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(kinds)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, kinds[k]))
		}
		msg := fmt.Sprintf("verification run %d (%s) found %d finding(s): %s", rep.RunID, rep.Mode,
			len(rep.Findings), strings.Join(parts, ", "))
		// no labels: one open alert while tampering stays, not one per run
		if err := d.alerter().Raise(ctx, AlertIntegrityTampered, monitor.AlertCritical, msg, nil); err != nil {
			// the run is recorded with its findings: failing the job would
			// only repeat it
			d.logger().ErrorContext(ctx, "verify: raise alert", "error", err)
		}
	}
	return rep, nil
}
