package workers

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/verifier"
	"github.com/auditdb/auditdb/tests/harness"
)

const (
	helperEnv    = "AUDITDB_TEST_HELPER"
	helperDBEnv  = "AUDITDB_TEST_HELPER_DB_URL"
	helperDirEnv = "AUDITDB_TEST_HELPER_ARCHIVE_DIR"
	pauseEnv     = "AUDITDB_TEST_PAUSE_AT"
)

func testKeys(t testing.TB) *integrity.SealKeys {
	t.Helper()
	entry, err := integrity.GenerateSealKey("k1")
	require.NoError(t, err)
	keys, err := integrity.ParseSealKeys(entry, "")
	require.NoError(t, err)
	return keys
}

// insertTx writes the statements' rows in one transaction, so in one chain
// and in this order.
func insertTx(t testing.TB, pool *pgxpool.Pool, stmts ...string) {
	t.Helper()
	require.NoError(t, pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		for _, s := range stmts {
			if _, err := tx.Exec(context.Background(), s); err != nil {
				return err
			}
		}
		return nil
	}))
}

func rowsOf(n int, policy, class, age string) string {
	return fmt.Sprintf(`INSERT INTO audit.audit_log ("timestamp", action, status, principal_id, source_ip, details,
			retention_policy, data_classification, processing_latency)
		SELECT now() - interval '%s' + g * interval '1 second', 'read', 'success', 'user-' || g, ('10.0.0.' || g %% 250)::inet,
			jsonb_build_object('n', g, 'note', 'ü "q"'), '%s', '%s', g
		FROM generate_series(1, %d) g`, age, policy, class, n)
}

func count(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func requireIntact(t testing.TB, pool *pgxpool.Pool, keys *integrity.SealKeys) {
	t.Helper()
	rep, err := verifier.Verify(context.Background(), pool, verifier.Options{Keys: keys.Ring, NoRecord: true})
	require.NoError(t, err)
	require.True(t, rep.Intact(), "verification findings: %+v", rep.Findings)
}

// requireArchivesAccountFor checks that every manifest's archive verifies
// offline and against the manifests with the keys, and that archived rows
// plus rows still in audit_log make up what was inserted.
func requireArchivesAccountFor(t testing.TB, pool *pgxpool.Pool, keys *integrity.SealKeys, location string, inserted int64) {
	t.Helper()
	ctx := context.Background()
	sink, err := openArchiveSink(ctx, location)
	require.NoError(t, err)
	uris, err := pgx.CollectRows(must(pool.Query(ctx, `SELECT DISTINCT archive_uri FROM audit.archive_manifests`)), pgx.RowTo[string])
	require.NoError(t, err)
	var archived int64
	for _, uri := range uris {
		require.Equal(t, sink.uri(ArchiveNameFromURI(uri)), uri, "manifests name the archive in this sink")
		f, err := sink.open(ctx, ArchiveNameFromURI(uri))
		require.NoError(t, err)
		rep, err := integrity.VerifyArchive(f, nil)
		f.Close()
		require.NoError(t, err)
		require.NoError(t, verifier.CheckArchiveManifests(ctx, pool, rep, keys.Ring))
		require.True(t, rep.Intact(), "%s: %+v", uri, rep.Findings)
		require.True(t, rep.MACsChecked)
		archived += rep.Rows
	}
	require.Equal(t, archived, count(t, pool, `SELECT coalesce(sum(row_count), 0) FROM audit.archive_manifests`))
	present := count(t, pool, `SELECT count(*) FROM audit.audit_log`)
	overlap := count(t, pool, `SELECT count(*) FROM audit.audit_log l JOIN audit.archive_manifests m
		ON m.chain_id = l.chain_id AND l.chain_seq BETWEEN m.first_seq AND m.last_seq`)
	require.Equal(t, inserted, archived+present-overlap, "archived + present rows = inserted rows")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestRetentionArchivesDuePrefixOfEachChain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	keys := testKeys(t)
	dir := t.TempDir()
	_, err := db.Pool.Exec(ctx, `SELECT audit.create_partition((now() - interval '9 years')::date),
		audit.create_partition((now() - interval '400 days')::date)`)
	require.NoError(t, err)
	// One chain: 30 due 'minimal' rows, 20 due 'standard' rows, then a
	// 'standard' row of today, then 10 due 'minimal' rows that must wait
	// behind it, and 5 'minimal' rows labelled PHI (PHI keeps 7 years).
	insertTx(t, db.Pool,
		rowsOf(30, "minimal", "PUBLIC", "400 days"),
		rowsOf(20, "standard", "INTERNAL", "9 years"),
		rowsOf(1, "standard", "INTERNAL", "0 days"),
		rowsOf(10, "minimal", "PUBLIC", "400 days"),
		rowsOf(5, "minimal", "PHI", "400 days"))
	const inserted = 66
	chain := int16(count(t, db.Pool, `SELECT min(chain_id) FROM audit.audit_log`))
	old9y := count(t, db.Pool, `SELECT count(*) FROM audit.audit_log WHERE "timestamp" < now() - interval '8 years'`)
	require.EqualValues(t, 20, old9y)

	// Checkpoints inside the range to archive, at its end and after it:
	// the verifier must still check them all once the rows are gone.
	keyID, key, err := keys.ActiveKey()
	require.NoError(t, err)
	for _, seq := range []int64{10, 50, 51} {
		var hash string
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT hash FROM audit.audit_log WHERE chain_id = $1 AND chain_seq = $2`, chain, seq).Scan(&hash))
		sealedAt := time.Now().Truncate(time.Microsecond)
		_, err = db.Pool.Exec(ctx, `INSERT INTO audit.integrity_checkpoints (chain_id, chain_seq, hash, sealed_at, key_id, mac)
			VALUES ($1, $2, $3, $4, $5, $6)`, chain, seq, hash, sealedAt, keyID, integrity.CheckpointMAC(key, chain, seq, hash, sealedAt.UnixMicro()))
		require.NoError(t, err)
	}

	deps := &Deps{Pool: db.Pool, Keys: keys}
	cfg := &RetentionConfig{ArchiveDir: dir}
	plan, err := deps.PlanRetention(ctx, cfg)
	require.NoError(t, err)
	require.EqualValues(t, 50, plan.Rows)
	var c ChainRetention
	for _, pc := range plan.Chains {
		if pc.ChainID == chain {
			c = pc
		}
	}
	require.Equal(t, ChainRetention{ChainID: chain, FirstSeq: 1, LastSeq: 50, Rows: 50, StartHash: c.StartHash, EndHash: c.EndHash,
		HeldBack: 10, StoppedBy: c.StoppedBy}, c)
	require.Contains(t, c.StoppedBy, "seq 51 (policy standard")
	byPolicy := map[string]RetentionPolicy{}
	for _, rp := range plan.Policies {
		byPolicy[rp.Policy+"/"+rp.Classification] = rp
	}
	require.EqualValues(t, 40, byPolicy["minimal/PUBLIC"].RowsDue)
	require.EqualValues(t, 30, byPolicy["minimal/PUBLIC"].RowsArchivable)
	require.EqualValues(t, 10, byPolicy["minimal/PUBLIC"].RowsHeldBack)
	require.EqualValues(t, 20, byPolicy["standard/INTERNAL"].RowsArchivable)
	require.Equal(t, 90, byPolicy["minimal/PUBLIC"].EffectiveDays, "minimal keeps its own 90 days for PUBLIC rows")
	_, phiListed := byPolicy["minimal/PHI"]
	require.False(t, phiListed, "PHI rows labelled minimal keep PHI's 7 years, so none is due")
	var dropped []string
	for _, p := range plan.Partitions {
		if p.Droppable {
			dropped = append(dropped, p.Partition)
		}
	}
	require.Len(t, dropped, 1, "only the 9-year-old month is wholly archived: %+v", plan.Partitions)

	dry, err := deps.RunRetention(ctx, cfg, RetentionRunOptions{DryRun: true})
	require.NoError(t, err)
	require.EqualValues(t, 50, dry.Plan.Rows)
	require.EqualValues(t, inserted, count(t, db.Pool, `SELECT count(*) FROM audit.audit_log`), "a dry run changes nothing")
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM audit.archive_manifests`))

	var lastDone, lastTotal int64
	res, err := deps.RunRetention(ctx, cfg, RetentionRunOptions{Progress: func(d, tot int64) { lastDone, lastTotal = d, tot }})
	require.NoError(t, err)
	require.Len(t, res.Archives, 1)
	require.EqualValues(t, 50, res.RowsArchived)
	require.EqualValues(t, 50, res.RowsRemoved)
	require.Equal(t, dropped, res.PartitionsDropped)
	require.EqualValues(t, 50, lastDone)
	require.EqualValues(t, 50, lastTotal)
	require.EqualValues(t, inserted-50, count(t, db.Pool, `SELECT count(*) FROM audit.audit_log`))
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM audit.partitions() WHERE partition_name = $1`, dropped[0]))
	requireIntact(t, db.Pool, keys)
	rep, err := verifier.Verify(ctx, db.Pool, verifier.Options{Keys: keys.Ring, NoRecord: true, Chains: []int16{chain}})
	require.NoError(t, err)
	require.Equal(t, 2, rep.Chains[0].Checkpoints, "the checkpoints at the manifest's end and after it are compared")
	requireArchivesAccountFor(t, db.Pool, keys, dir, inserted)

	again, err := deps.RunRetention(ctx, cfg, RetentionRunOptions{})
	require.NoError(t, err)
	require.Empty(t, again.Archives, "nothing more is due")
	require.Zero(t, again.RowsRemoved)

	// A forged manifest is caught by the verifier, so it cannot hide rows.
	_, err = db.Pool.Exec(ctx, `UPDATE audit.archive_manifests SET row_count = row_count + 1`)
	require.NoError(t, err)
	rep, err = verifier.Verify(ctx, db.Pool, verifier.Options{Keys: keys.Ring, NoRecord: true})
	require.NoError(t, err)
	require.False(t, rep.Intact())
}

func TestRetentionKeepsNewestRowAndBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	keys := testKeys(t)
	dir := t.TempDir()
	insertTx(t, db.Pool, rowsOf(25, "minimal", "PUBLIC", "200 days")) // default partition
	// the worker's role is enough: no DELETE grant, removal goes through
	// audit.retention_remove
	deps := &Deps{Pool: db.LoginRole(t, "audit_maintainer"), Keys: keys}
	plan, err := deps.PlanRetention(ctx, &RetentionConfig{ArchiveDir: dir, MaxRowsPerArchive: 10})
	require.NoError(t, err)
	require.EqualValues(t, 24, plan.Rows, "a plan covers the whole run, all its archives")
	res, err := deps.RunRetention(ctx, &RetentionConfig{ArchiveDir: dir, MaxRowsPerArchive: 10}, RetentionRunOptions{})
	require.NoError(t, err)
	require.Len(t, res.Archives, 3, "24 rows in archives of at most 10")
	require.EqualValues(t, 24, res.RowsRemoved)
	require.Empty(t, res.PartitionsDropped, "the default partition is never dropped")
	require.EqualValues(t, 25, count(t, db.Pool, `SELECT max(chain_seq) FROM audit.audit_log`), "the newest row of the chain stays")
	require.EqualValues(t, 3, count(t, db.Pool, `SELECT count(*) FROM audit.archive_manifests`))
	requireIntact(t, db.Pool, keys)
	requireArchivesAccountFor(t, db.Pool, keys, dir, 25)
}

func TestRetentionRefusesWithoutKeyOrOnTamperedRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	dir := t.TempDir()
	insertTx(t, db.Pool, rowsOf(10, "minimal", "PUBLIC", "200 days"))

	_, err := (&Deps{Pool: db.Pool}).RunRetention(ctx, &RetentionConfig{ArchiveDir: dir}, RetentionRunOptions{})
	require.ErrorIs(t, err, integrity.ErrNoSealKeys)

	_, err = db.Pool.Exec(ctx, `BEGIN; SET LOCAL session_replication_role = replica;
		UPDATE audit.audit_log SET action = 'other' WHERE chain_seq = 4; COMMIT`)
	require.NoError(t, err)
	_, err = (&Deps{Pool: db.Pool, Keys: testKeys(t)}).RunRetention(ctx, &RetentionConfig{ArchiveDir: dir}, RetentionRunOptions{})
	require.ErrorContains(t, err, "seq 4")
	require.ErrorContains(t, err, "stored hash differs")
	require.EqualValues(t, 10, count(t, db.Pool, `SELECT count(*) FROM audit.audit_log`), "a tampered chain is never archived, so never removed")
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM audit.archive_manifests`))
	files, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, files, "the aborted archive left nothing")
}

func TestRetentionRemoveNeedsManifests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	insertTx(t, db.Pool, rowsOf(5, "minimal", "PUBLIC", "200 days"))
	var n int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.retention_remove(ARRAY[1, 2]::bigint[])`).Scan(&n))
	require.Zero(t, n)
	require.EqualValues(t, 5, count(t, db.Pool, `SELECT count(*) FROM audit.audit_log`), "no manifest, nothing removed")
	_, err := db.Pool.Exec(ctx, `DELETE FROM audit.audit_log`)
	require.ErrorContains(t, err, "append-only", "the guard still stands outside the function")
}

// helperMain is a retention run in a process of its own, which the test
// kills with SIGKILL when the run reaches the step named by pauseEnv.
func helperMain() int {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv(helperDBEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer pool.Close()
	keys, err := integrity.SealKeysFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if os.Getenv(helperEnv) == "erasure" {
		return erasureHelper(ctx, &Deps{Pool: pool, Keys: keys})
	}
	pauseAt := os.Getenv(pauseEnv)
	cfg := &RetentionConfig{ArchiveSink: os.Getenv(helperDirEnv), MaxRowsPerArchive: 300, StepHook: func(step string) {
		if step == pauseAt {
			fmt.Println("PAUSED", step)
			select {} // wait for SIGKILL
		}
	}}
	if _, err := (&Deps{Pool: pool, Keys: keys}).RunRetention(ctx, cfg, RetentionRunOptions{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("DONE")
	return 0
}

func TestRetentionSurvivesKill(t *testing.T) {
	t.Parallel()
	testRetentionSurvivesKill(t, func(t *testing.T) string { return t.TempDir() })
}

// TestRetentionSurvivesKillS3 is the same into an S3 bucket with Object
// Lock: the killed run's archive, if any, stays (and is locked), and the
// next run writes its own under a new name.
func TestRetentionSurvivesKillS3(t *testing.T) {
	t.Parallel()
	testRetentionSurvivesKill(t, func(t *testing.T) string {
		return "s3://" + harness.SharedS3().NewBucket(t, true) + "/archives"
	})
}

// testRetentionSurvivesKill kills a retention run in a process of its own
// after each step, then checks that nothing is lost and the next run
// finishes the job.
func testRetentionSurvivesKill(t *testing.T, newSink func(t *testing.T) string) {
	for _, step := range []string{"planned", "archive_partial", "archive_written", "archive_verified", "manifests_sealed", "removed"} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := harness.NewDB(t)
			dir := newSink(t)
			entry, err := integrity.GenerateSealKey("k1")
			require.NoError(t, err)
			keys, err := integrity.ParseSealKeys(entry, "")
			require.NoError(t, err)
			_, err = db.Pool.Exec(ctx, `SELECT audit.create_partition((now() - interval '400 days')::date)`)
			require.NoError(t, err)
			// two chains at once: two open transactions hold two chains
			tx1, err := db.Pool.Begin(ctx)
			require.NoError(t, err)
			tx2, err := db.Pool.Begin(ctx)
			require.NoError(t, err)
			for _, tx := range []pgx.Tx{tx1, tx2} {
				_, err = tx.Exec(ctx, rowsOf(400, "minimal", "PUBLIC", "400 days"))
				require.NoError(t, err)
				_, err = tx.Exec(ctx, rowsOf(1, "minimal", "PUBLIC", "1 day"))
				require.NoError(t, err)
			}
			require.NoError(t, tx1.Commit(ctx))
			require.NoError(t, tx2.Commit(ctx))
			const inserted = 802
			require.EqualValues(t, 2, count(t, db.Pool, `SELECT count(DISTINCT chain_id) FROM audit.audit_log`))

			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnv+"=retention", helperDBEnv+"="+db.URL, helperDirEnv+"="+dir,
				pauseEnv+"="+step, "AUDIT_SEAL_KEYS="+entry, "AUDIT_SEAL_KEYS_FILE=", "AUDIT_SEAL_ACTIVE_KEY=")
			out, err := cmd.StdoutPipe()
			require.NoError(t, err)
			cmd.Stderr = os.Stderr
			require.NoError(t, cmd.Start())
			line, err := bufio.NewReader(out).ReadString('\n')
			require.NoError(t, err)
			require.Equal(t, "PAUSED "+step+"\n", line)
			require.NoError(t, cmd.Process.Kill()) // SIGKILL: no deferred cleanup runs
			_ = cmd.Wait()

			// Whatever the step, the database verifies and nothing is lost.
			requireIntact(t, db.Pool, keys)
			present := count(t, db.Pool, `SELECT count(*) FROM audit.audit_log`)
			if step == "removed" {
				require.Less(t, present, int64(inserted))
			} else {
				require.EqualValues(t, inserted, present, "no row is removed before its manifests are sealed")
			}

			// The next run finishes the job.
			deadline := time.Now().Add(30 * time.Second)
			var res *RetentionResult
			for {
				res, err = (&Deps{Pool: db.Pool, Keys: keys}).RunRetention(ctx, &RetentionConfig{ArchiveSink: dir, MaxRowsPerArchive: 300}, RetentionRunOptions{})
				if !errors.Is(err, ErrRetentionBusy) || time.Now().After(deadline) {
					break // the killed session's lock goes when PostgreSQL notices the closed socket
				}
				time.Sleep(50 * time.Millisecond)
			}
			require.NoError(t, err)
			if step == "manifests_sealed" {
				require.Equal(t, 1, res.Resumed, "the sealed archive of the killed run is verified and applied")
			}
			require.EqualValues(t, 2, count(t, db.Pool, `SELECT count(*) FROM audit.audit_log`), "only the newest row of each chain is left")
			requireIntact(t, db.Pool, keys)
			requireArchivesAccountFor(t, db.Pool, keys, dir, inserted)
			require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM audit.audit_log l JOIN audit.archive_manifests m
				ON m.chain_id = l.chain_id AND l.chain_seq BETWEEN m.first_seq AND m.last_seq`), "no sealed range is left half done")
			plan, err := (&Deps{Pool: db.Pool}).PlanRetention(ctx, &RetentionConfig{ArchiveSink: dir})
			require.NoError(t, err)
			require.Zero(t, plan.Rows)
			if step == "archive_written" || step == "archive_verified" {
				require.Len(t, plan.Unsealed, 1, "the killed run's file, which no manifest names, is reported")
			} else {
				require.Empty(t, plan.Unsealed)
			}
		})
	}
}

func TestRetentionWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	insertTx(t, db.Pool, rowsOf(5, "minimal", "PUBLIC", "200 days"))
	w := &RetentionWorker{Deps: &Deps{Pool: db.Pool, Keys: testKeys(t)}, Config: &RetentionConfig{ArchiveDir: t.TempDir()}}
	require.Equal(t, RetentionJobTimeoutDefault, w.Timeout(nil))

	// another run holds the lock: the job skips without failing
	conn, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `SELECT pg_advisory_lock(audit.chain_lock_namespace(), -2)`)
	require.NoError(t, err)
	require.NoError(t, w.Work(ctx, &river.Job[RetentionArgs]{}))
	require.EqualValues(t, 5, count(t, db.Pool, `SELECT count(*) FROM audit.audit_log`))
	_, err = conn.Exec(ctx, `SELECT pg_advisory_unlock(audit.chain_lock_namespace(), -2)`)
	require.NoError(t, err)
	conn.Release()

	require.NoError(t, w.Work(ctx, &river.Job[RetentionArgs]{}))
	require.EqualValues(t, 1, count(t, db.Pool, `SELECT count(*) FROM audit.audit_log`))
}

// Rows a legal hold covers are never due: retention stops before the first
// held row of a chain and goes on once the hold is released.
func TestRetentionHonoursLegalHolds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	keys := testKeys(t)
	dir := t.TempDir()
	insertTx(t, db.Pool, rowsOf(10, "minimal", "PUBLIC", "200 days"), rowsOf(1, "minimal", "PUBLIC", "200 days")) // one chain
	var heldPrincipal string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT principal_id FROM audit.audit_log WHERE chain_seq = 6`).Scan(&heldPrincipal))
	var hold int64
	require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO audit.legal_holds (scope, value, reason) VALUES ('subject', $1, 'litigation') RETURNING id`,
		heldPrincipal).Scan(&hold))

	deps := &Deps{Pool: db.Pool, Keys: keys}
	cfg := &RetentionConfig{ArchiveDir: dir}
	plan, err := deps.PlanRetention(ctx, cfg)
	require.NoError(t, err)
	require.EqualValues(t, 5, plan.Rows, "seqs 1-5, then the held row")
	var stopped []string
	for _, c := range plan.Chains {
		if c.Rows > 0 {
			stopped = append(stopped, c.StoppedBy)
		}
	}
	require.Equal(t, []string{"seq 6 is under a legal hold"}, stopped)
	_, err = deps.RunRetention(ctx, cfg, RetentionRunOptions{})
	require.NoError(t, err)
	require.EqualValues(t, 1, count(t, db.Pool, `SELECT count(*) FROM audit.audit_log WHERE principal_id = $1`, heldPrincipal))
	require.EqualValues(t, 6, count(t, db.Pool, `SELECT count(*) FROM audit.audit_log`))

	_, err = db.Pool.Exec(ctx, `UPDATE audit.legal_holds SET released_at = now() WHERE id = $1`, hold)
	require.NoError(t, err)
	_, err = deps.RunRetention(ctx, cfg, RetentionRunOptions{})
	require.NoError(t, err)
	require.EqualValues(t, 1, count(t, db.Pool, `SELECT count(*) FROM audit.audit_log`), "only the newest row stays")
	requireIntact(t, db.Pool, keys)
}
