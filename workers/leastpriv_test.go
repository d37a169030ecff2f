package workers_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/internal/migrate"
	"github.com/auditdb/auditdb/monitor"
	"github.com/auditdb/auditdb/tests/harness"
	"github.com/auditdb/auditdb/workers"
)

// The worker's documented role is enough for every job: a login role
// granted only audit_maintainer runs each job kind once through River (the
// suite's own client, its own pool), with a row sitting in the default
// partition before every job, and no job fails. The CLI's read paths the
// worker role uses (retention plan, optimize report) run as it too.
func TestEveryJobRunsAsMaintainer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	maint := db.LoginRole(t, "audit_maintainer")
	k := keys(t, "", "k1")
	fill(t, db, 2, 10)
	// due for retention (minimal: 90 days) and, having no partition, in the
	// default partition; an erasure request for one of the subjects
	_, err := db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, principal_id, retention_policy, data_classification)
		SELECT now() - interval '200 days', 'app.login', 'success', 'dr-' || g, 'minimal', 'PUBLIC' FROM generate_series(1, 5) g`)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `INSERT INTO audit.erasure_requests (principal_id, reason) VALUES ('dr-1', 'test')`)
	require.NoError(t, err)
	// a bloated index the optimizer wants rebuilt, owned (like every table
	// of schema audit) by the owner, not by the worker's role
	workers.BloatedScratchIndex(t, db)
	optimize := monitor.OptimizeConfig{BloatMinBytes: 64 << 10}

	hooks := make(chan string, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hooks <- r.Header.Get("Idempotency-Key")
	}))
	defer hook.Close()

	off := -1 * time.Second
	s, err := workers.NewSuite(&workers.Deps{Pool: maint, Keys: k, Logger: slog.New(slog.DiscardHandler)},
		workers.SuiteConfig{SealInterval: off, VerifyInterval: off, FullVerifyInterval: off, PartitionsInterval: off,
			OptimizeInterval: off, AlertsInterval: off, ErasureInterval: off, Concurrency: 1,
			Retention: &workers.RetentionConfig{Interval: off, ArchiveDir: t.TempDir()},
			Alerts:    monitor.AlertConfig{WebhookURLs: []string{hook.URL}}, Optimize: optimize})
	require.NoError(t, err)
	require.NoError(t, s.Start(ctx))
	defer func() { require.NoError(t, s.Stop(ctx)) }()
	inserter, err := river.NewClient(riverpgxv5.New(maint), &river.Config{Schema: migrate.RiverSchema})
	require.NoError(t, err)

	year := 1990
	defaultRow := func() {
		t.Helper()
		var n int64
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log_default`).Scan(&n))
		if n > 0 {
			return
		}
		// a year without a partition: the partitions job rescued the last one
		year++
		_, err := db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status) VALUES (make_timestamptz($1, 6, 1, 0, 0, 0, 'UTC'), 'old.event', 'success')`, year)
		require.NoError(t, err)
	}
	wait := func(id int64, kind string) {
		t.Helper()
		var state string
		var errs []byte
		require.Eventually(t, func() bool {
			require.NoError(t, db.Pool.QueryRow(ctx, `SELECT state, coalesce(errors::text, '') FROM `+migrate.RiverSchema+`.river_job WHERE id = $1`, id).Scan(&state, &errs))
			return state != "available" && state != "running" && state != "scheduled"
		}, 60*time.Second, 50*time.Millisecond, "%s: job never finished", kind)
		require.Equal(t, "completed", state, "%s as audit_maintainer: %s", kind, errs)
	}
	run := func(args river.JobArgs) {
		t.Helper()
		defaultRow()
		res, err := inserter.Insert(ctx, args, nil)
		require.NoError(t, err, args.Kind())
		wait(res.Job.ID, args.Kind())
	}

	run(workers.AlertEvaluateArgs{}) // opens default_partition_rows (and others), whose webhooks follow
	var webhookJobs []int64
	rows, err := db.Pool.Query(ctx, `SELECT id FROM `+migrate.RiverSchema+`.river_job WHERE kind = $1`, workers.AlertWebhookArgs{}.Kind())
	require.NoError(t, err)
	webhookJobs, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.NotEmpty(t, webhookJobs, "the evaluation opened alerts, so webhooks were enqueued")
	for _, id := range webhookJobs {
		wait(id, "auditdb_alert_webhook")
	}
	require.Len(t, hooks, len(webhookJobs))
	var open int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.alerts WHERE kind = 'default_partition_rows' AND status = 'open'`).Scan(&open))
	require.Equal(t, 1, open, "the evaluation saw the default partition's rows")

	run(workers.SealArgs{})
	run(workers.VerifyArgs{})
	run(workers.VerifyArgs{Full: true})
	run(workers.OptimizeArgs{DryRun: true})
	run(workers.OptimizeArgs{})
	run(workers.ErasureArgs{})
	run(workers.RetentionArgs{})
	run(workers.PartitionsArgs{MonthsAhead: 3})
	run(workers.AlertEvaluateArgs{})
	run(workers.SealArgs{})
	run(workers.VerifyArgs{Full: true})

	var status string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT status FROM audit.erasure_requests`).Scan(&status))
	require.Equal(t, "done", status)
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT status FROM audit.verification_runs ORDER BY id DESC LIMIT 1`).Scan(&status))
	require.Equal(t, "intact", status)
	var archived int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT coalesce(sum(row_count), 0) FROM audit.archive_manifests`).Scan(&archived))
	require.Positive(t, archived, "retention archived the due rows")

	// the read paths of `retention plan` and `optimize report`
	d := &workers.Deps{Pool: maint, Keys: k}
	defaultRow()
	_, err = d.PlanRetention(ctx, &workers.RetentionConfig{ArchiveDir: t.TempDir()})
	require.NoError(t, err, "retention plan")
	_, err = monitor.AnalyzeIndexes(ctx, maint, optimize)
	require.NoError(t, err, "optimize report")
	// PostgreSQL 15 lets only the owner REINDEX, and ANALYZE outside schema
	// audit (where audit.analyze_table lends it): the worker's role owns
	// nothing, so such actions are refused before they run, and the
	// optimizer reports them skipped instead of failing the job
	err = monitor.ApplyAction(ctx, maint, monitor.Action{Kind: monitor.ActionReindex, Target: "audit.scratch_v_idx"})
	require.ErrorIs(t, err, monitor.ErrNotOwner)
	require.NoError(t, monitor.ApplyAction(ctx, maint, monitor.Action{Kind: monitor.ActionAnalyze, Target: "audit.scratch"}))
	_, err = db.Pool.Exec(ctx, `CREATE TABLE public.stale (v int); INSERT INTO public.stale SELECT generate_series(1, 2000);
		SELECT pg_stat_force_next_flush()`)
	require.NoError(t, err)
	res, err := d.Optimize(ctx, monitor.OptimizeConfig{Schemas: []string{"audit", "public"}, StaleMinMods: 1}, false)
	require.NoError(t, err, "optimize apply")
	var skipped []string
	for _, a := range res.Applied {
		require.Empty(t, a.Error, a.SQL)
		if a.Skipped != "" {
			skipped = append(skipped, string(a.Kind)+" "+a.Target+": "+a.Skipped)
		}
	}
	require.Equal(t, []string{"analyze public.stale: " + monitor.ErrNotOwner.Error()}, skipped)
	_, err = monitor.EvaluateAlerts(ctx, maint, monitor.AlertConfig{})
	require.NoError(t, err, "alerts evaluate")
}
