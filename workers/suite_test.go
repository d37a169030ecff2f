package workers_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/internal/migrate"
	"github.com/auditdb/auditdb/internal/verifier"
	"github.com/auditdb/auditdb/tests/harness"
	"github.com/auditdb/auditdb/workers"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// Two replicas on one database: River's elected leader alone enqueues the
// periodic jobs (and uniqueness per period backs it up), so each runs once
// per interval, not twice; writes get sealed within the interval; the log
// verifies; /healthz, /readyz and /metrics answer.
func TestReplicasRunEachPeriodicJobOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	k := keys(t, "", "k1")
	quiet := slog.New(slog.DiscardHandler)
	cfg := workers.SuiteConfig{SealInterval: time.Second, VerifyInterval: 2 * time.Second, FullVerifyInterval: -1,
		PartitionsInterval: time.Hour, MaxSealLag: 30 * time.Second}
	var suites []*workers.Suite
	for _, id := range []string{"replica-a", "replica-b"} {
		c := cfg
		c.ID = id
		s, err := workers.NewSuite(&workers.Deps{Pool: db.Pool, Keys: k, Logger: quiet}, c)
		require.NoError(t, err)
		suites = append(suites, s)
	}
	srv := httptest.NewServer(suites[0].Handler())
	defer srv.Close()
	code, _ := get(t, srv.URL+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code, "not started")

	start := time.Now()
	for _, s := range suites {
		require.NoError(t, s.Start(ctx))
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		for _, s := range suites {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			require.NoError(t, s.Stop(sctx))
			cancel()
		}
	}
	defer stop()

	fill(t, db, 4, 25)
	require.Eventually(t, func() bool {
		var unsealed int64
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT coalesce(sum(unsealed_rows), 0) FROM audit.integrity_status`).Scan(&unsealed))
		return unsealed == 0
	}, 15*time.Second, 100*time.Millisecond, "writes sealed")

	code, body := get(t, srv.URL+"/healthz")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok\n", body)
	code, body = get(t, srv.URL+"/readyz")
	require.Equal(t, http.StatusOK, code, body)
	code, body = get(t, srv.URL+"/metrics")
	require.Equal(t, http.StatusOK, code)
	for _, want := range []string{
		`auditdb_chain_head_seq{chain="0"}`, `auditdb_chain_rows{chain="0"}`, `auditdb_chain_seal_lag_seconds{chain="0"} 0`,
		"auditdb_seal_lag_seconds 0", `auditdb_scrape_error{source="chains"} 0`,
		`auditdb_river_jobs{kind="auditdb_seal",state=`, `auditdb_river_jobs{kind="auditdb_partitions",state=`,
		"auditdb_db_pool_acquires_total", "auditdb_db_pool_max_connections", "go_goroutines",
	} {
		require.True(t, strings.Contains(body, want), "/metrics has %s", want)
	}
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.verification_runs WHERE mode = 'incremental' AND status = 'intact'`).Scan(&n))
		return n >= 1
	}, 15*time.Second, 100*time.Millisecond, "incremental verification ran")
	// seals repeat (waited for: under load River may elect its leader late,
	// and only the leader enqueues), over at least 5 s for the bounds below
	require.Eventually(t, func() bool {
		counts, err := workers.JobCounts(ctx, db.Pool)
		require.NoError(t, err)
		var seals int64
		for _, jc := range counts {
			if jc.Kind == "auditdb_seal" && jc.State == "completed" {
				seals += jc.Count
			}
		}
		return seals >= 2
	}, 20*time.Second, 100*time.Millisecond, "seals repeat")
	time.Sleep(time.Until(start.Add(5 * time.Second)))
	stop()
	elapsed := time.Since(start)

	// what the replicas' own metrics saw, together
	var sealRuns, sealTimed, verifyRuns float64
	for _, s := range suites {
		_, body = get(t, httptestURL(t, s)+"/metrics")
		sealRuns += metricValue(body, `auditdb_jobs_total{kind="auditdb_seal",state="completed"}`)
		sealTimed += metricValue(body, `auditdb_job_duration_seconds_count{kind="auditdb_seal"}`)
		verifyRuns += metricValue(body, `auditdb_verification_runs_total{mode="incremental",status="intact"}`)
	}
	code, body = get(t, srv.URL+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "river is not running")

	counts, err := workers.JobCounts(ctx, db.Pool)
	require.NoError(t, err)
	byKind := map[string]int64{}
	for _, jc := range counts {
		byKind[jc.Kind] += jc.Count
	}
	periods := int64(elapsed/time.Second) + 1
	require.EqualValues(t, 1, byKind["auditdb_partitions"], "hourly job: once, not once per replica")
	require.GreaterOrEqual(t, byKind["auditdb_seal"], int64(2), "seals repeat")
	require.LessOrEqual(t, byKind["auditdb_seal"], periods, "at most one seal per second over %s", elapsed)
	require.LessOrEqual(t, byKind["auditdb_verify"], periods/2+1)
	require.InDelta(t, float64(byKind["auditdb_seal"]), sealRuns, 1, "jobs seen by the replicas' metrics")
	require.Equal(t, sealRuns, sealTimed)
	require.GreaterOrEqual(t, verifyRuns, 1.0)

	rep, err := verifier.Verify(ctx, db.Pool, verifier.Options{Keys: k.Ring, NoRecord: true})
	require.NoError(t, err)
	require.True(t, rep.Intact(), kinds(rep))
}

func httptestURL(t *testing.T, s *workers.Suite) string {
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// metricValue reads one sample of a Prometheus text exposition; 0 if absent.
func metricValue(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			_, _ = fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

// Seal lag is the age of a chain's oldest unsealed row; /readyz fails once
// it passes MaxSealLag, and sealing brings it back to zero.
func TestSealLagAndReadiness(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	d := &workers.Deps{Pool: db.Pool, Keys: keys(t, "", "k1"), Logger: slog.New(slog.DiscardHandler)}
	fill(t, db, 2, 3)
	_, err := d.Seal(ctx, workers.SealOptions{})
	require.NoError(t, err)
	states, err := d.ChainStates(ctx)
	require.NoError(t, err)
	require.Zero(t, workers.MaxSealLag(states))

	// sealing scheduled hourly: the first seal runs at start, then the lag grows
	s, err := workers.NewSuite(d, workers.SuiteConfig{SealInterval: time.Hour, VerifyInterval: -1, FullVerifyInterval: -1,
		PartitionsInterval: -1, MaxSealLag: 500 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, s.Start(ctx))
	defer func() { require.NoError(t, s.Stop(ctx)) }()
	require.NoError(t, s.Ready(ctx))
	require.Eventually(t, func() bool {
		counts, err := workers.JobCounts(ctx, db.Pool)
		require.NoError(t, err)
		return slices.Contains(counts, workers.JobCount{Kind: "auditdb_seal", State: "completed", Count: 1})
	}, 15*time.Second, 20*time.Millisecond, "the seal run at start is done")
	fill(t, db, 1, 3)
	time.Sleep(700 * time.Millisecond)
	states, err = d.ChainStates(ctx)
	require.NoError(t, err)
	lag := workers.MaxSealLag(states)
	require.Greater(t, lag, 600*time.Millisecond)
	require.Less(t, lag, 10*time.Second)
	unsealedChains := 0
	for _, st := range states {
		if st.SealLag > 0 {
			unsealedChains++
			require.Equal(t, st.HeadSeq-3, st.SealedSeq)
			require.Equal(t, st.HeadSeq, st.Rows)
		}
	}
	require.Equal(t, 1, unsealedChains)
	require.ErrorContains(t, s.Ready(ctx), "exceeds 500ms")

	// the seal job seals, and the lag is gone
	require.NoError(t, (&workers.SealWorker{Deps: d}).Work(ctx, &river.Job[workers.SealArgs]{}))
	require.NoError(t, s.Ready(ctx))
}

// The worker needs no more than audit_maintainer: the suite runs every job
// as a login role in that group only.
func TestSuiteRunsAsMaintainer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	pool := db.LoginRole(t, "audit_maintainer")
	fill(t, db, 2, 10)
	s, err := workers.NewSuite(&workers.Deps{Pool: pool, Keys: keys(t, "", "k1"), Logger: slog.New(slog.DiscardHandler)},
		workers.SuiteConfig{SealInterval: time.Second, VerifyInterval: time.Second, FullVerifyInterval: time.Hour, PartitionsInterval: time.Hour})
	require.NoError(t, err)
	require.NoError(t, s.Start(ctx))
	defer func() { require.NoError(t, s.Stop(ctx)) }()
	require.Eventually(t, func() bool {
		counts, err := workers.JobCounts(ctx, db.Pool)
		require.NoError(t, err)
		done := map[string]int64{}
		for _, c := range counts {
			require.NotEqual(t, "retryable", c.State, "a job failed: %+v", c)
			if c.State == "completed" {
				done[c.Kind] += c.Count
			}
		}
		return done["auditdb_partitions"] == 1 && done["auditdb_seal"] >= 1 && done["auditdb_verify"] >= 2
	}, 20*time.Second, 50*time.Millisecond)
	require.NoError(t, s.Ready(ctx))
	var runs int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.verification_runs WHERE status = 'intact'`).Scan(&runs))
	require.GreaterOrEqual(t, runs, 2)
}

// A verification whose worker died mid-run (the job left running, started
// long ago) is rescued and run again: River rescues only jobs with a
// timeout, so VerifyTimeout must give the verify job one.
func TestVerifyOfDeadWorkerIsRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	fill(t, db, 2, 10)
	inserter, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{Schema: migrate.RiverSchema})
	require.NoError(t, err)
	res, err := inserter.Insert(ctx, workers.VerifyArgs{Full: true}, nil)
	require.NoError(t, err)
	id := res.Job.ID
	// as a worker killed a day into the job leaves it: the job, and its run
	_, err = db.Pool.Exec(ctx, `UPDATE `+migrate.RiverSchema+`.river_job
		SET state = 'running', attempt = 1, attempted_at = now() - interval '1 day', attempted_by = '{dead-worker}'
		WHERE id = $1`, id)
	require.NoError(t, err)
	var abandoned, current int64
	require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO audit.verification_runs (mode, started_at)
		VALUES ('full', now() - interval '1 day') RETURNING id`).Scan(&abandoned))
	require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO audit.verification_runs (mode) VALUES ('incremental') RETURNING id`).Scan(&current))

	s, err := workers.NewSuite(&workers.Deps{Pool: db.Pool, Logger: slog.New(slog.DiscardHandler)},
		workers.SuiteConfig{SealInterval: -1, VerifyInterval: -1, FullVerifyInterval: -1, PartitionsInterval: -1,
			Retention: &workers.RetentionConfig{Interval: -1}, ErasureInterval: -1, OptimizeInterval: -1, AlertsInterval: -1,
			VerifyTimeout: time.Hour})
	require.NoError(t, err)
	require.NoError(t, s.Start(ctx))
	defer func() { require.NoError(t, s.Stop(ctx)) }()
	require.Eventually(t, func() bool {
		var state string
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT state FROM `+migrate.RiverSchema+`.river_job WHERE id = $1`, id).Scan(&state))
		return state == "completed"
	}, 60*time.Second, 100*time.Millisecond, "the dead worker's verification was never retried")
	var runs int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.verification_runs WHERE mode = 'full' AND status = 'intact'`).Scan(&runs))
	require.Equal(t, 1, runs)
	// the dead worker's run is closed as abandoned; one that may still be going is not
	var status, why string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT status, coalesce(error, '') FROM audit.verification_runs WHERE id = $1`, abandoned).Scan(&status, &why))
	require.Equal(t, "failed", status)
	require.Contains(t, why, "abandoned: no result within 1h0m0s")
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT status FROM audit.verification_runs WHERE id = $1`, current).Scan(&status))
	require.Equal(t, "running", status)
}

// ReloadKeys rotates without a restart: after adding a key and making it
// active, seals use it and the log verifies with the ring. A ring that
// drops or changes a key in use is refused, and so is a reload for a suite
// started without keys.
func TestReloadKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	off := workers.SuiteConfig{SealInterval: -1, VerifyInterval: -1, FullVerifyInterval: -1, PartitionsInterval: -1}
	old := keys(t, "", "k1")
	s, err := workers.NewSuite(&workers.Deps{Pool: db.Pool, Keys: old, Logger: slog.New(slog.DiscardHandler)}, off)
	require.NoError(t, err)
	seal := func() string {
		t.Helper()
		rep, err := s.Deps().Seal(ctx, workers.SealOptions{})
		require.NoError(t, err)
		return rep.KeyID
	}
	fill(t, db, 2, 5)
	require.Equal(t, "k1", seal())

	next := keys(t, "k2", "k2")
	next.Ring["k1"] = old.Ring["k1"]
	require.NoError(t, s.ReloadKeys(next))
	fill(t, db, 2, 5)
	require.Equal(t, "k2", seal())
	var byKey []string
	rows, err := db.Pool.Query(ctx, `SELECT DISTINCT key_id FROM audit.integrity_checkpoints ORDER BY 1`)
	require.NoError(t, err)
	byKey, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"k1", "k2"}, byKey)
	rep, err := s.Deps().Verify(ctx, workers.VerifyOptions{Full: true})
	require.NoError(t, err)
	require.True(t, rep.Intact(), "findings: %+v", rep.Findings)
	require.True(t, rep.MACsChecked)

	err = s.ReloadKeys(keys(t, "k3", "k2", "k3")) // k1 dropped
	require.ErrorContains(t, err, `key "k1" is missing`)
	changed := keys(t, "", "k1") // a new random k1
	changed.Ring["k2"], changed.Active = next.Ring["k2"], "k2"
	err = s.ReloadKeys(changed) // k1 with other bytes
	require.ErrorContains(t, err, `key "k1" has other bytes`)
	require.Equal(t, "k2", seal(), "a refused reload leaves the keys in use")

	bare, err := workers.NewSuite(&workers.Deps{Pool: db.Pool, Logger: slog.New(slog.DiscardHandler)}, off)
	require.NoError(t, err)
	require.ErrorContains(t, bare.ReloadKeys(next), "started without seal keys")
}
