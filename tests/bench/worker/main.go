// Command worker measures auditdb's River worker suite on a private durable
// PostgreSQL (fsync on) with the C insert trigger, and writes the results as
// a Markdown section of BENCHMARKS.md (issue 3, item 7):
//
//	go run ./tests/bench/worker -out BENCHMARKS.md
//
// or part by part, each run under six minutes on two cores, as
// `make bench-worker` does:
//
//	go run ./tests/bench/worker -parts seal -out BENCHMARKS.md
//	go run ./tests/bench/worker -parts seal -rate 0 -window 30s -out BENCHMARKS.md
//	go run ./tests/bench/worker -parts archive,verify -archive-max 100000,1000000 -out BENCHMARKS.md
//
// Four parts, each selectable with -parts (seal,archive,verify,sinks):
//
//   - seal: inserts paced at -rate rows/s by -writers connections (multi-row
//     INSERT ... SELECT of -batch rows, autocommit) for -window each, with no
//     worker, with workers.NewSuite sealing every 10 s (every other job
//     unscheduled), and with sealing plus verification at its defaults;
//     modes alternated -rounds times on one database;
//   - archive: -archive-rows rows 200 days old under the 'minimal' policy
//     (90 days), then Deps.RunRetention into a LocalDirSink, timed per step;
//   - sinks: the archive part's load and run once into a directory and once
//     into an S3 bucket with Object Lock on a private versitygw (harness.
//     StartS3), in the same run, -sink-rounds times alternating which goes
//     first; throughput ratio and the worker process's peak RSS (VmHWM,
//     reset before each run through /proc/self/clear_refs);
//   - verify: the log grown to each of -verify-sizes rows, sealed, a full
//     Deps.Verify, then -incr-rows new rows, a seal and an incremental
//     Deps.Verify, -incr-runs times.
//
// Each part writes a section of its own heading, replacing an earlier one
// after the marker line of tests/bench (which keeps everything after it) or is
// appended.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/embeddedpg"
	"github.com/auditdb/auditdb/internal/migrate"
	"github.com/auditdb/auditdb/internal/objstore"
	"github.com/auditdb/auditdb/tests/bench/benchdoc"
	"github.com/auditdb/auditdb/tests/harness"
	"github.com/auditdb/auditdb/workers"
)

// The headings of this program's sections, one per part, so that a run of
// one part replaces its own section only.
const (
	headingSeal    = "## Worker suite: seal cost at 10,000 rows/s of inserts (issue 3)"
	headingSealMax = "## Worker suite: seal cost at the highest insert rate (issue 3)"
	headingArchive = "## Worker suite: archive throughput (issue 3)"
	headingVerify  = "## Worker suite: incremental verification as the log grows (issue 3)"
	headingSinks   = "## Retention into S3 vs into a directory (issue 11)"
)

type config struct {
	out         string
	parts       map[string]bool
	rate        int
	writers     int
	batch       int
	window      time.Duration
	rounds      int
	archiveRows int
	sinkRounds  int
	trigger     string
	archiveMax  []int
	verifySizes []int
	incrRows    int
	incrRuns    int
	chains      int
	commandLine string
	startedAt   time.Time
	loadAtStart string
}

func main() {
	var cfg config
	flag.StringVar(&cfg.out, "out", "BENCHMARKS.md", "Markdown file to put the section into (empty: stdout only)")
	parts := flag.String("parts", "seal,archive,verify", "parts to run, comma-separated: seal, archive, verify, sinks")
	flag.StringVar(&cfg.trigger, "trigger", "c", "insert trigger of the loads: c (the accelerator, installed by make install-extension) or plpgsql")
	flag.IntVar(&cfg.sinkRounds, "sink-rounds", 1, "sinks: rounds of (directory, S3) runs, alternating the order")
	flag.IntVar(&cfg.rate, "rate", 10000, "seal: target insert rate, rows/s; 0 inserts back to back (the highest rate the server sustains)")
	flag.IntVar(&cfg.writers, "writers", 8, "seal: concurrent writer connections")
	flag.IntVar(&cfg.batch, "batch", 50, "seal: rows per INSERT statement")
	flag.DurationVar(&cfg.window, "window", 45*time.Second, "seal: measured time per run")
	flag.IntVar(&cfg.rounds, "rounds", 2, "seal: rounds of the three modes (the median is reported)")
	flag.IntVar(&cfg.archiveRows, "archive-rows", 1000000, "archive: rows past retention")
	maxRows := flag.String("archive-max", "100000", "archive: MaxRowsPerArchive values, comma-separated, a fresh load each")
	sizes := flag.String("verify-sizes", "1000000,5000000", "verify: log sizes, rows, ascending")
	flag.IntVar(&cfg.incrRows, "incr-rows", 10000, "verify: rows added before each incremental verification")
	flag.IntVar(&cfg.incrRuns, "incr-runs", 3, "verify: incremental verifications per size (the median is reported)")
	flag.Parse()
	cfg.parts = map[string]bool{}
	for _, p := range strings.Split(*parts, ",") {
		if p != "seal" && p != "archive" && p != "verify" && p != "sinks" {
			fmt.Fprintf(os.Stderr, "worker bench: -parts: %q is not seal, archive, verify or sinks\n", p)
			os.Exit(2)
		}
		cfg.parts[p] = true
	}
	var err error
	if cfg.archiveMax, err = ints(*maxRows); err == nil {
		cfg.verifySizes, err = ints(*sizes)
	}
	if err != nil || cfg.rate < 0 || cfg.writers < 1 || cfg.batch < 1 || cfg.window < time.Second || cfg.rounds < 1 ||
		cfg.archiveRows < 100 || (cfg.trigger != "c" && cfg.trigger != "plpgsql") || cfg.sinkRounds < 1 || cfg.incrRows < 16 || cfg.incrRuns < 1 || !slices.IsSorted(cfg.verifySizes) {
		fmt.Fprintln(os.Stderr, "worker bench: bad flags:", err)
		os.Exit(2)
	}
	cfg.commandLine = "go run ./tests/bench/worker " + strings.Join(os.Args[1:], " ")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, &cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker bench: FAILED:", err)
		os.Exit(1)
	}
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

type bench struct {
	cfg   *config
	srv   *embeddedpg.Server
	admin *pgx.Conn
	keys  *integrity.SealKeys
	tmp   string
	dbSeq int

	pgVersion string
	seal      *sealResult
	archive   []*archiveResult
	sinks     []*archiveResult
	s3        *harness.S3
	verify    []*verifyResult
}

func run(ctx context.Context, cfg *config) (err error) {
	cfg.startedAt = time.Now().UTC()
	cfg.loadAtStart = benchdoc.LoadAvg()
	b := &bench{cfg: cfg}
	if b.tmp, err = os.MkdirTemp("", "auditdb-worker-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.tmp)
	key, err := integrity.GenerateSealKey("bench")
	if err != nil {
		return err
	}
	if b.keys, err = integrity.ParseSealKeys(key, ""); err != nil {
		return err
	}
	benchdoc.Progress("starting a durable PostgreSQL (fsync on)")
	// the settings of tests/bench, so the two reports compare
	b.srv, err = embeddedpg.Start(ctx, embeddedpg.Config{Durable: true, Settings: map[string]string{
		"max_wal_size": "8GB", "min_wal_size": "4GB", "checkpoint_timeout": "30min", "shared_buffers": "2GB",
	}})
	if err != nil {
		return err
	}
	defer func() {
		if stopErr := b.srv.Stop(); stopErr != nil {
			fmt.Fprintln(os.Stderr, "worker bench: stopping PostgreSQL:", stopErr)
		}
	}()
	if b.admin, err = pgx.Connect(ctx, b.srv.URL("postgres")); err != nil {
		return err
	}
	defer b.admin.Close(context.Background())
	var fsync string
	if err := b.admin.QueryRow(ctx, `SELECT version(), current_setting('fsync')`).Scan(&b.pgVersion, &fsync); err != nil {
		return err
	}
	if fsync != "on" {
		return fmt.Errorf("fsync is %s: the benchmark needs a durable server", fsync)
	}
	if cfg.parts["seal"] {
		if err := b.runSeal(ctx); err != nil {
			return fmt.Errorf("seal: %w", err)
		}
	}
	if cfg.parts["archive"] {
		for _, max := range cfg.archiveMax {
			r, err := b.runArchive(ctx, max, "dir")
			if err != nil {
				return fmt.Errorf("archive: %w", err)
			}
			b.archive = append(b.archive, r)
		}
	}
	if cfg.parts["sinks"] {
		benchdoc.Progress("sinks: starting versitygw")
		if b.s3, err = harness.StartS3(ctx); err != nil {
			return fmt.Errorf("sinks: %w", err)
		}
		defer b.s3.Stop()
		b.s3.SetEnv()
		for round := range cfg.sinkRounds {
			kinds := []string{"dir", "s3"}
			if round%2 == 1 {
				kinds = []string{"s3", "dir"}
			}
			for _, kind := range kinds {
				r, err := b.runArchive(ctx, cfg.archiveMax[0], kind)
				if err != nil {
					return fmt.Errorf("sinks: %s: %w", kind, err)
				}
				b.sinks = append(b.sinks, r)
			}
		}
	}
	if cfg.parts["verify"] {
		if err := b.runVerify(ctx); err != nil {
			return fmt.Errorf("verify: %w", err)
		}
	}
	for _, s := range b.markdown() {
		fmt.Println(s.body)
		if cfg.out != "" {
			if err := writeSection(cfg.out, s.heading, s.body); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeSection puts section after the marker line of path, replacing an earlier
// section with the same heading (up to the next "## " heading).
func writeSection(path, heading, section string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc := string(old)
	m := strings.Index(doc, benchdoc.Marker)
	if m < 0 {
		return fmt.Errorf("%s has no marker line %q", path, benchdoc.Marker)
	}
	if i := strings.Index(doc[m:], heading+"\n"); i >= 0 {
		start := m + i
		end := len(doc)
		if j := strings.Index(doc[start+len(heading):], "\n## "); j >= 0 {
			end = start + len(heading) + j + 1
		}
		doc = doc[:start] + section + "\n" + doc[end:]
	} else {
		doc = strings.TrimRight(doc, "\n") + "\n\n" + section
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}

// newDB creates and migrates a database with the C trigger and this month's
// partitions and the next three.
func (b *bench) newDB(ctx context.Context, prefix string) (*pgxpool.Pool, error) {
	b.dbSeq++
	name := fmt.Sprintf("wb_%s_%d", prefix, b.dbSeq)
	if _, err := b.admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, err
	}
	pcfg, err := pgxpool.ParseConfig(b.srv.URL(name))
	if err != nil {
		return nil, err
	}
	pcfg.MaxConns = 40
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, err
	}
	res, err := migrate.Migrate(ctx, pool, migrate.Options{Accelerator: b.cfg.trigger == "c"})
	if err != nil {
		pool.Close()
		return nil, err
	}
	if res.Trigger != b.cfg.trigger {
		pool.Close()
		return nil, fmt.Errorf("insert trigger is %q, want %q (the C accelerator: make install-extension)", res.Trigger, b.cfg.trigger)
	}
	if _, err := pool.Exec(ctx, `SELECT audit.ensure_partitions(3)`); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

func (b *bench) dropDB(pool *pgxpool.Pool) {
	name := pool.Config().ConnConfig.Database
	pool.Close()
	if _, err := b.admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		fmt.Fprintln(os.Stderr, "worker bench: drop database:", err)
	}
}

func (b *bench) checkpoint(ctx context.Context) error {
	_, err := b.admin.Exec(ctx, "CHECKPOINT")
	return err
}

// insertRange is the event of tests/bench, ids g from $1 to $2, timestamped
// $3 plus g microseconds, under classification $4 and policy $5.
const insertRange = `INSERT INTO audit.audit_log ("timestamp", action, status, principal_id, principal_type, organization_id,
	target_resource_type, target_resource_id, source_ip, outcome_description, data_classification, retention_policy, details)
SELECT $3::timestamptz + g * interval '1 microsecond', 'fhir.patient.read', 'success', 'user-' || g, 'practitioner', 'org-' || (g % 20),
	'Patient', 'patient-' || g, '10.1.2.3', 'Viewed chart', $4, $5, '{"department":"cardiology","reason":"treatment"}'
FROM generate_series($1::bigint, $2::bigint) AS g`

// load inserts n rows from 16 concurrent connections (one transaction holds
// one chain, so each writer fills its own chain).
func load(ctx context.Context, pool *pgxpool.Pool, first, n int64, writers int, ts time.Time, class, policy string) (time.Duration, error) {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		lo := first + n*int64(w)/int64(writers)
		hi := first + n*int64(w+1)/int64(writers) - 1
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[w] = pool.Exec(ctx, insertRange, lo, hi, ts, class, policy)
		}()
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

// logCapture records the seal and verify reports the workers log.
type logCapture struct {
	mu      sync.Mutex
	seals   []sealObs
	verifys []verifyObs
}

type sealObs struct {
	d      time.Duration
	sealed int64
}

type verifyObs struct {
	mode string
	rows int64
	d    time.Duration
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *logCapture) WithGroup(string) slog.Handler            { return c }

func (c *logCapture) Handle(_ context.Context, r slog.Record) error {
	switch r.Message {
	case "seal: done":
		var o sealObs
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "duration":
				o.d = a.Value.Duration()
			case "sealed":
				o.sealed = a.Value.Int64()
			}
			return true
		})
		c.mu.Lock()
		c.seals = append(c.seals, o)
		c.mu.Unlock()
	case "verify: done":
		var o verifyObs
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "duration":
				o.d = a.Value.Duration()
			case "rows":
				o.rows = a.Value.Int64()
			case "mode":
				o.mode = a.Value.String()
			}
			return true
		})
		c.mu.Lock()
		c.verifys = append(c.verifys, o)
		c.mu.Unlock()
	default:
		if r.Level >= slog.LevelWarn {
			benchdoc.Progress("worker log %s: %s", r.Level, r.Message)
		}
	}
	return nil
}

func (c *logCapture) take() ([]sealObs, []verifyObs) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, v := c.seals, c.verifys
	c.seals, c.verifys = nil, nil
	return s, v
}

// ---------------------------------------------------------------- seal

const (
	modeNone   = "no worker"
	modeSeal   = "seal every 10 s"
	modeVerify = "seal + verify (defaults)"
)

var sealModes = []string{modeNone, modeSeal, modeVerify}

type sealRun struct {
	mode        string
	round       int
	rows        int64
	elapsed     time.Duration
	lat         []time.Duration // per statement
	seals       []sealObs
	verifys     []verifyObs
	checkpoints int64
	logRows     int64 // rows in the log when the run started
}

// interval is each writer's time between statements; 0 when unpaced.
func (c *config) interval() time.Duration {
	if c.rate == 0 {
		return 0
	}
	return time.Duration(float64(time.Second) * float64(c.writers*c.batch) / float64(c.rate))
}

func (r sealRun) rate() float64 { return float64(r.rows) / r.elapsed.Seconds() }

type sealResult struct {
	runs []sealRun
}

func (b *bench) runSeal(ctx context.Context) error {
	pool, err := b.newDB(ctx, "seal")
	if err != nil {
		return err
	}
	defer b.dropDB(pool)
	res := &sealResult{}
	b.seal = res
	// one untimed paced run first: WAL segments, caches, the plan cache
	benchdoc.Progress("seal: warm-up, 10 s of paced inserts, no worker")
	if _, err := b.pacedInserts(ctx, pool, 10*time.Second); err != nil {
		return err
	}
	for round := 1; round <= b.cfg.rounds; round++ {
		for _, mode := range sealModes {
			if _, err := pool.Exec(ctx, `VACUUM ANALYZE audit.audit_log`); err != nil {
				return err
			}
			if err := b.checkpoint(ctx); err != nil {
				return err
			}
			r, err := b.sealRunOnce(ctx, pool, mode, round)
			if err != nil {
				return fmt.Errorf("%s, round %d: %w", mode, round, err)
			}
			res.runs = append(res.runs, r)
		}
	}
	return nil
}

func (b *bench) sealRunOnce(ctx context.Context, pool *pgxpool.Pool, mode string, round int) (sealRun, error) {
	r := sealRun{mode: mode, round: round}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log`).Scan(&r.logRows); err != nil {
		return r, err
	}
	var cp0 int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit.integrity_checkpoints`).Scan(&cp0); err != nil {
		return r, err
	}
	capture := &logCapture{}
	var suite *workers.Suite
	if mode != modeNone {
		// each run starts as a freshly deployed worker: River's periodic
		// jobs of an earlier run would otherwise make this run's start-up
		// jobs duplicates of their period
		if _, err := pool.Exec(ctx, `DELETE FROM `+migrate.RiverSchema+`.river_job`); err != nil {
			return r, err
		}
		sc := workers.SuiteConfig{
			SealInterval: workers.SealIntervalDefault, VerifyInterval: -1, FullVerifyInterval: -1,
			PartitionsInterval: -1, OptimizeInterval: -1, AlertsInterval: -1, ErasureInterval: -1,
			Retention: &workers.RetentionConfig{Interval: -1},
		}
		if mode == modeVerify {
			sc.VerifyInterval, sc.FullVerifyInterval = 0, 0 // defaults
		}
		var err error
		suite, err = workers.NewSuite(&workers.Deps{Pool: pool, Keys: b.keys, Logger: slog.New(capture)}, sc)
		if err != nil {
			return r, err
		}
		if err := suite.Start(ctx); err != nil {
			return r, err
		}
	}
	benchdoc.Progress("seal: round %d, %s: %s of inserts at %d rows/s, 0 unpaced (log has %d rows)", round, mode, b.cfg.window, b.cfg.rate, r.logRows)
	p, err := b.pacedInserts(ctx, pool, b.cfg.window)
	if suite != nil {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		if stopErr := suite.Stop(stopCtx); stopErr != nil && err == nil {
			err = stopErr
		}
		cancel()
	}
	if err != nil {
		return r, err
	}
	r.rows, r.elapsed, r.lat = p.rows, p.elapsed, p.lat
	r.seals, r.verifys = capture.take()
	var cp1 int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit.integrity_checkpoints`).Scan(&cp1); err != nil {
		return r, err
	}
	r.checkpoints = cp1 - cp0
	benchdoc.Progress("seal: %.0f rows/s, p50 %s p99 %s; %d seals (durations %v), %d checkpoints; verifications %v",
		r.rate(), pct(r.lat, 50), pct(r.lat, 99), len(r.seals), sealDurations(r.seals), r.checkpoints, r.verifys)
	return r, nil
}

func sealDurations(s []sealObs) []time.Duration {
	out := make([]time.Duration, len(s))
	for i, o := range s {
		out[i] = o.d.Round(100 * time.Microsecond)
	}
	return out
}

type paced struct {
	rows    int64
	elapsed time.Duration
	lat     []time.Duration
}

// pacedInserts runs the writers for d: writer w inserts batch rows at
// start + w*interval/writers + k*interval, catching up when late, so the
// offered load is rate rows/s and a server that cannot keep up shows as a
// lower achieved rate. With rate 0 they insert back to back.
func (b *bench) pacedInserts(ctx context.Context, pool *pgxpool.Pool, d time.Duration) (paced, error) {
	interval := b.cfg.interval()
	start := time.Now()
	deadline := start.Add(d)
	var (
		mu  sync.Mutex
		out paced
		wg  sync.WaitGroup
	)
	errs := make([]error, b.cfg.writers)
	for w := range b.cfg.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := pool.Acquire(ctx)
			if err != nil {
				errs[w] = err
				return
			}
			defer conn.Release()
			var lat []time.Duration
			var rows int64
			next := start.Add(interval * time.Duration(w) / time.Duration(b.cfg.writers))
			for g := int64(w) * 1_000_000_000; ; g += int64(b.cfg.batch) {
				if wait := time.Until(next); wait > 0 {
					time.Sleep(wait)
				}
				if !time.Now().Before(deadline) {
					break
				}
				t0 := time.Now()
				tag, err := conn.Exec(ctx, insertRange, g, g+int64(b.cfg.batch)-1, t0, "PHI", "phi_extended")
				if err != nil {
					errs[w] = err
					return
				}
				lat = append(lat, time.Since(t0))
				rows += tag.RowsAffected()
				next = next.Add(interval)
			}
			mu.Lock()
			out.rows += rows
			out.lat = append(out.lat, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	out.elapsed = time.Since(start)
	return out, errors.Join(errs...)
}

// ---------------------------------------------------------------- archive

type archiveResult struct {
	sink      string // dir or s3
	peakRSS   int64  // bytes, VmHWM over RunRetention
	maxRows   int
	rows      int64
	loadTime  time.Duration
	total     time.Duration
	steps     map[string]time.Duration
	res       *workers.RetentionResult
	bytes     int64
	leftInLog int64
}

// The steps of a retention run, in order, as timed here: each ends at the
// StepHook of its name.
var archiveSteps = []struct{ name, hook, what string }{
	{"plan", "planned", "choose the due chain ranges (per archive) and their retention end"},
	{"write", "archive_written", "read the rows in one snapshot, check hashes and links, gzip JSON lines, fsync"},
	{"re-verify", "archive_verified", "re-read the file and verify it from its bytes"},
	{"seal", "manifests_sealed", "insert one sealed manifest per chain range, one transaction"},
	{"remove", "removed", "audit.retention_remove: delete the rows (or drop the partition)"},
}

func (b *bench) runArchive(ctx context.Context, maxRows int, sink string) (*archiveResult, error) {
	pool, err := b.newDB(ctx, "archive")
	if err != nil {
		return nil, err
	}
	defer b.dropDB(pool)
	res := &archiveResult{sink: sink, maxRows: maxRows, steps: map[string]time.Duration{}}
	old := time.Now().AddDate(0, 0, -200)
	for _, m := range []time.Time{old.AddDate(0, -1, 0), old, old.AddDate(0, 1, 0)} {
		if _, err := pool.Exec(ctx, `SELECT audit.create_partition($1::date)`, time.Date(m.Year(), m.Month(), 1, 0, 0, 0, 0, time.UTC)); err != nil {
			return nil, err
		}
	}
	n := int64(b.cfg.archiveRows)
	benchdoc.Progress("archive: loading %d rows 200 days old, PUBLIC / minimal (90 days), 16 writers", n)
	if res.loadTime, err = load(ctx, pool, 1, n, 16, old, "PUBLIC", "minimal"); err != nil {
		return nil, err
	}
	// One current row per chain, from 16 transactions open at once (each
	// holds its chain until commit), so every old row is due: retention
	// always keeps a chain's newest row.
	if err := newestRows(ctx, pool, 16); err != nil {
		return nil, err
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log WHERE "timestamp" < now() - interval '90 days'`).Scan(&res.rows); err != nil {
		return nil, err
	}
	benchdoc.Progress("archive: loaded in %s; %d rows due", res.loadTime.Round(time.Millisecond), res.rows)
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE`); err != nil {
		return nil, err
	}
	if err := b.checkpoint(ctx); err != nil {
		return nil, err
	}
	dir := filepath.Join(b.tmp, fmt.Sprintf("archive-%d", b.dbSeq))
	last := time.Now()
	mark := func(step string) {
		now := time.Now()
		res.steps[step] += now.Sub(last)
		last = now
	}
	cfg := &workers.RetentionConfig{
		MaxRowsPerArchive: maxRows,
		ArchiveSink:       dir,
		StepHook: func(step string) {
			for _, s := range archiveSteps {
				if s.hook == step {
					mark(s.name)
				}
			}
		},
	}
	deps := &workers.Deps{Pool: pool, Keys: b.keys, Logger: slog.New(&logCapture{})}
	benchdoc.Progress("archive: Deps.RunRetention, MaxRowsPerArchive %d", maxRows)
	if sink == "s3" {
		bucket := fmt.Sprintf("bench-%d", b.dbSeq)
		if err := b.s3.CreateBucket(ctx, bucket, true); err != nil {
			return nil, err
		}
		cfg.ArchiveSink = "s3://" + bucket + "/archive"
		cfg.ArchiveRetain = time.Hour // Object Lock COMPLIANCE on every archive, as in production
	}
	runtime.GC()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return nil, fmt.Errorf("reset peak RSS: %w", err)
	}
	start := time.Now()
	res.res, err = deps.RunRetention(ctx, cfg, workers.RetentionRunOptions{})
	res.total = time.Since(start)
	if err != nil {
		return nil, err
	}
	if res.peakRSS, err = peakRSS(); err != nil {
		return nil, err
	}
	// the run's last plan finds nothing due and returns
	res.steps["plan"] += time.Since(last)
	if res.res.RowsArchived != res.rows || res.res.RowsRemoved != res.rows {
		return nil, fmt.Errorf("archived %d and removed %d rows, %d were due", res.res.RowsArchived, res.res.RowsRemoved, res.rows)
	}
	st, err := objstore.Open(ctx, cfg.ArchiveSink)
	if err != nil {
		return nil, err
	}
	for _, a := range res.res.Archives {
		fi, err := st.Stat(ctx, a.Name)
		if err != nil {
			return nil, err
		}
		res.bytes += fi.Size
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log`).Scan(&res.leftInLog); err != nil {
		return nil, err
	}
	// the log still verifies: manifests cover the archived prefixes
	rep, err := deps.Verify(ctx, workers.VerifyOptions{Full: true})
	if err != nil {
		return nil, err
	}
	if !rep.Intact() {
		return nil, fmt.Errorf("after retention the log does not verify: %d findings", len(rep.Findings))
	}
	benchdoc.Progress("archive: %d rows in %s (%.0f rows/s), %d archives, %d bytes, steps %v, partitions dropped %v",
		res.res.RowsArchived, res.total.Round(time.Millisecond), float64(res.res.RowsArchived)/res.total.Seconds(),
		len(res.res.Archives), res.bytes, res.steps, res.res.PartitionsDropped)
	return res, nil
}

// newestRows commits one current row in each of n transactions held open
// together, so that each lands on its own chain.
func newestRows(ctx context.Context, pool *pgxpool.Pool, n int) error {
	var inserted, wg sync.WaitGroup
	inserted.Add(n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			once := sync.OnceFunc(inserted.Done)
			defer once()
			errs[i] = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				g := int64(2_000_000_000 + i)
				_, err := tx.Exec(ctx, insertRange, g, g, time.Now(), "PUBLIC", "minimal")
				once()
				inserted.Wait()
				return err
			})
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ---------------------------------------------------------------- verify

type verifyResult struct {
	rows      int64
	loadRows  int64
	loadTime  time.Duration
	fullTime  time.Duration
	fullRows  int64
	sealTime  time.Duration
	incr      []time.Duration
	incrRows  []int64
	incrSeals []time.Duration
}

func (b *bench) runVerify(ctx context.Context) error {
	pool, err := b.newDB(ctx, "verify")
	if err != nil {
		return err
	}
	defer b.dropDB(pool)
	deps := &workers.Deps{Pool: pool, Keys: b.keys, Logger: slog.New(&logCapture{})}
	var have int64
	next := int64(1)
	for _, size := range b.cfg.verifySizes {
		r := &verifyResult{loadRows: int64(size) - have}
		benchdoc.Progress("verify: loading %d rows (16 writers) to reach %d", r.loadRows, size)
		if r.loadTime, err = load(ctx, pool, next, r.loadRows, 16, time.Now(), "PHI", "phi_extended"); err != nil {
			return err
		}
		next += r.loadRows
		benchdoc.Progress("verify: loaded in %s (%.0f rows/s)", r.loadTime.Round(time.Millisecond), float64(r.loadRows)/r.loadTime.Seconds())
		if _, err := pool.Exec(ctx, `VACUUM ANALYZE audit.audit_log`); err != nil {
			return err
		}
		if err := b.checkpoint(ctx); err != nil {
			return err
		}
		seal, err := deps.Seal(ctx, workers.SealOptions{})
		if err != nil {
			return err
		}
		r.sealTime = seal.Duration
		rep, err := deps.Verify(ctx, workers.VerifyOptions{Full: true})
		if err != nil {
			return err
		}
		if !rep.Intact() {
			return fmt.Errorf("full verification: %d findings", len(rep.Findings))
		}
		r.fullTime, r.fullRows = rep.Duration, rep.RowsChecked
		benchdoc.Progress("verify: full, %d rows in %s", rep.RowsChecked, rep.Duration.Round(time.Millisecond))
		for range b.cfg.incrRuns {
			if _, err := load(ctx, pool, next, int64(b.cfg.incrRows), 16, time.Now(), "PHI", "phi_extended"); err != nil {
				return err
			}
			next += int64(b.cfg.incrRows)
			seal, err := deps.Seal(ctx, workers.SealOptions{})
			if err != nil {
				return err
			}
			rep, err := deps.Verify(ctx, workers.VerifyOptions{})
			if err != nil {
				return err
			}
			if !rep.Intact() || rep.Mode != "incremental" {
				return fmt.Errorf("incremental verification: mode %s, %d findings", rep.Mode, len(rep.Findings))
			}
			r.incr = append(r.incr, rep.Duration)
			r.incrRows = append(r.incrRows, rep.RowsChecked)
			r.incrSeals = append(r.incrSeals, seal.Duration)
			benchdoc.Progress("verify: +%d rows, seal %s, incremental %d rows in %s", b.cfg.incrRows, seal.Duration.Round(time.Microsecond),
				rep.RowsChecked, rep.Duration.Round(time.Microsecond))
		}
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log`).Scan(&r.rows); err != nil {
			return err
		}
		have = r.rows
		b.verify = append(b.verify, r)
	}
	return nil
}

// ---------------------------------------------------------------- report

type section struct{ heading, body string }

func (b *bench) markdown() []section {
	var out []section
	add := func(heading, what string, f func(io.Writer)) {
		var w strings.Builder
		b.preamble(&w, heading, what)
		f(&w)
		out = append(out, section{heading, w.String()})
	}
	if b.seal != nil {
		h := headingSeal
		if b.cfg.rate == 0 {
			h = headingSealMax
		}
		add(h, "seal", b.sealMarkdown)
	}
	if len(b.archive) > 0 {
		add(headingArchive, "archive", b.archiveMarkdown)
	}
	if len(b.verify) > 0 {
		add(headingVerify, "verify", b.verifyMarkdown)
	}
	if len(b.sinks) > 0 {
		add(headingSinks, "sinks", b.sinksMarkdown)
	}
	return out
}

func (b *bench) preamble(w io.Writer, heading, part string) {
	c := b.cfg
	fmt.Fprintf(w, "%s\n\nMeasured %s UTC with\n\n    %s\n\n", heading, c.startedAt.Format("2006-01-02 15:04"), c.commandLine)
	fmt.Fprintf(w, "(`tests/bench/worker/main.go`, part %s; not written by `make bench`). Machine: %d CPUs (%s), %s, %s; load average %s at the start of the run, %s at the end. ",
		part, runtime.NumCPU(), benchdoc.CPUModel(), benchdoc.MemTotal(), runtime.Version(), c.loadAtStart, benchdoc.LoadAvg())
	fmt.Fprintf(w, "A private PostgreSQL %s started for the run by internal/embeddedpg, durable (fsync and synchronous_commit on), with tests/bench's settings (shared_buffers 2GB, max_wal_size 8GB, checkpoint_timeout 30min); a database of its own migrated by internal/migrate with the %s insert trigger, 16 chains; one fresh 32-byte seal key.\n\n",
		strings.Fields(b.pgVersion)[1], map[string]string{"c": "C", "plpgsql": "PL/pgSQL"}[c.trigger])
}

func (b *bench) sealMarkdown(w io.Writer) {
	c := b.cfg
	load := fmt.Sprintf("every %s (offered load %s rows/s, %s commits/s), catching up when late, so a server that cannot keep up shows as a lower achieved rate",
		c.interval(), benchdoc.Thousands(int64(c.rate)), benchdoc.ThousandsF(float64(c.rate)/float64(c.batch), 0))
	if c.rate == 0 {
		load = "back to back, unpaced: the achieved rate is the most the server sustains beside the worker"
	}
	fmt.Fprintf(w, "%d writers, each an autocommit `INSERT … SELECT` of %d PHI events %s; %s per run after a 10 s untimed warm-up; `VACUUM ANALYZE` and `CHECKPOINT` before each run; modes alternated, %d round(s), one database whose log grows run after run. Modes: **%s**; **%s**: `workers.NewSuite` started for the run with `SealInterval` 10 s (the default) and every other job unscheduled (negative intervals), River's job table emptied first so each run starts like a newly deployed worker (seal on start, then every 10 s); **%s**: the same plus `VerifyInterval` and `FullVerifyInterval` at their defaults (5 min incremental, 24 h full), which in a %s run means each runs once, on start, and the full one reads the whole log. Seal durations are `SealReport.Duration` as the job logs it; statement latencies are pooled over the rounds.\n\n",
		c.writers, c.batch, load, c.window, c.rounds,
		modeNone, modeSeal, modeVerify, c.window)
	fmt.Fprintln(w, "| mode | achieved rows/s | vs no worker | statement p50 | p99 | seals | seal duration median (max) | checkpoints written | verifications run |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---|")
	med := map[string]float64{}
	for _, mode := range sealModes {
		var runs []sealRun
		for _, r := range b.seal.runs {
			if r.mode == mode {
				runs = append(runs, r)
			}
		}
		var rates []float64
		var lat []time.Duration
		var seals []time.Duration
		var cps, nseals int64
		var verifies []string
		for _, r := range runs {
			rates = append(rates, r.rate())
			lat = append(lat, r.lat...)
			for _, s := range r.seals {
				seals = append(seals, s.d)
			}
			nseals += int64(len(r.seals))
			cps += r.checkpoints
			for _, v := range r.verifys {
				verifies = append(verifies, fmt.Sprintf("%s %s rows %s", v.mode, benchdoc.Thousands(v.rows), fmtDur(v.d)))
			}
		}
		med[mode] = benchdoc.Median(rates)
		ratio := "—"
		if mode != modeNone {
			ratio = fmt.Sprintf("%.1f%%", 100*med[mode]/med[modeNone])
		}
		sealCol, seals50 := "—", "—"
		if len(seals) > 0 {
			slices.Sort(seals)
			seals50 = fmt.Sprintf("%s (%s)", fmtDur(pct(seals, 50)), fmtDur(seals[len(seals)-1]))
			sealCol = strconv.FormatInt(nseals, 10)
		}
		vcol := "—"
		if len(verifies) > 0 {
			vcol = strings.Join(verifies, "; ")
		}
		cpCol := "—"
		if mode != modeNone {
			cpCol = strconv.FormatInt(cps, 10)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", mode, benchdoc.ThousandsF(med[mode], 0), ratio,
			fmtDur(pct(lat, 50)), fmtDur(pct(lat, 99)), sealCol, seals50, cpCol, vcol)
	}
	fmt.Fprint(w, "\nRuns (achieved rows/s, in order; log rows at the start): ")
	for _, r := range b.seal.runs {
		fmt.Fprintf(w, "%s %s (%s); ", r.mode, benchdoc.ThousandsF(r.rate(), 0), benchdoc.Thousands(r.logRows))
	}
	fmt.Fprint(w, "\n\n")
}

func (b *bench) archiveMarkdown(w io.Writer) {
	fmt.Fprintf(w, "%s PUBLIC events under the 'minimal' policy (90 days), timestamped 200 days ago, loaded with the trigger by 16 writers into 16 chains (their month's partition created with `audit.create_partition`), then one current row per chain so every old row is due; `VACUUM ANALYZE`, `CHECKPOINT`; then one `Deps.RunRetention` into a `LocalDirSink` in a temporary directory (gzip JSON lines, fsync, rename). Steps timed with `RetentionConfig.StepHook` and a sink wrapper (planning ends when the run creates the archive object). Afterwards a full `Deps.Verify` of what is left must find the log intact (it does: manifests cover the removed prefixes). One run per setting.\n\n",
		benchdoc.Thousands(int64(b.cfg.archiveRows)))
	fmt.Fprintln(w, "| MaxRowsPerArchive | rows archived and removed | total | rows/s | archives | bytes/row | partitions dropped | rows left |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---|---:|")
	for _, a := range b.archive {
		drop := "none"
		if len(a.res.PartitionsDropped) > 0 {
			drop = strings.Join(a.res.PartitionsDropped, ", ")
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %d | %.1f | %s | %d |\n", benchdoc.Thousands(int64(a.maxRows)), benchdoc.Thousands(a.res.RowsArchived),
			benchdoc.Secs(a.total), benchdoc.ThousandsF(float64(a.res.RowsArchived)/a.total.Seconds(), 0), len(a.res.Archives),
			float64(a.bytes)/float64(a.res.RowsArchived), drop, a.leftInLog)
	}
	fmt.Fprintln(w, "\nPer step (summed over the run's archives):")
	fmt.Fprintln(w)
	fmt.Fprint(w, "| step | what |")
	for _, a := range b.archive {
		fmt.Fprintf(w, " %s rows/archive: time | rows/s | share |", benchdoc.Thousands(int64(a.maxRows)))
	}
	fmt.Fprint(w, "\n|---|---|")
	for range b.archive {
		fmt.Fprint(w, "---:|---:|---:|")
	}
	fmt.Fprintln(w)
	for _, s := range archiveSteps {
		fmt.Fprintf(w, "| %s | %s |", s.name, s.what)
		for _, a := range b.archive {
			d := a.steps[s.name]
			fmt.Fprintf(w, " %s | %s | %.0f%% |", benchdoc.Secs(d), benchdoc.ThousandsF(float64(a.res.RowsArchived)/d.Seconds(), 0), 100*d.Seconds()/a.total.Seconds())
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\nLoad of the old rows: ")
	for _, a := range b.archive {
		fmt.Fprintf(w, "%s (%s rows/s); ", benchdoc.Secs(a.loadTime), benchdoc.ThousandsF(float64(b.cfg.archiveRows)/a.loadTime.Seconds(), 0))
	}
	fmt.Fprint(w, "\n\n")
}

// peakRSS is this process's VmHWM in bytes.
func peakRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}

func (b *bench) sinksMarkdown(w io.Writer) {
	fmt.Fprintf(w, "The archive part's load (%s PUBLIC rows 200 days old under 'minimal', 16 chains, one current row per chain), a fresh database for each run, then one `Deps.RunRetention` with MaxRowsPerArchive %s: into a directory (`ArchiveSink` a temporary folder: temp file, fsync, link, read back) and into `s3://bucket/archive` on a private versitygw (%s; posix backend on the same disk, loopback HTTP, a bucket with Object Lock, `ArchiveRetain` 1h so every archive is stored COMPLIANCE-locked: multipart upload of 8 MiB parts with per-part SHA-256 checksums, If-None-Match, then the object read back and hashed, then re-read again by the retention step that verifies it). Both in the same run, %d round(s), the order alternating. Peak RSS is the benchmark process's VmHWM (it runs the worker code; PostgreSQL and versitygw are processes of their own), reset through /proc/self/clear_refs after a GC before each `RunRetention`. Afterwards a full `Deps.Verify` must find the log intact (it does).\n\n",
		benchdoc.Thousands(int64(b.cfg.archiveRows)), benchdoc.Thousands(int64(b.cfg.archiveMax[0])), harness.VersitygwInstall, b.cfg.sinkRounds)
	fmt.Fprintln(w, "| run | sink | rows archived and removed | archives | total | rows/s | S3 / directory | peak RSS | bytes/row |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|")
	for i, a := range b.sinks {
		rate := float64(a.res.RowsArchived) / a.total.Seconds()
		ratio := "-"
		// the ratio pairs each S3 run with the directory run of its round
		if a.sink == "s3" {
			pair := b.sinks[i^1]
			pr := float64(pair.res.RowsArchived) / pair.total.Seconds()
			ratio = fmt.Sprintf("%.0f%%", 100*rate/pr)
		}
		fmt.Fprintf(w, "| %d | %s | %s | %d | %s | %s | %s | %.0f MiB | %.1f |\n", i/2+1, a.sink, benchdoc.Thousands(a.res.RowsArchived), len(a.res.Archives),
			benchdoc.Secs(a.total), benchdoc.ThousandsF(rate, 0), ratio, float64(a.peakRSS)/(1<<20), float64(a.bytes)/float64(a.res.RowsArchived))
	}
	// over all rounds: the order alternates, so what one position in a
	// round costs (the first run of a round has been slower here) cancels
	rows, secs, peak := map[string]int64{}, map[string]float64{}, map[string]int64{}
	for _, a := range b.sinks {
		rows[a.sink] += a.res.RowsArchived
		secs[a.sink] += a.total.Seconds()
		peak[a.sink] = max(peak[a.sink], a.peakRSS)
	}
	dirRate, s3Rate := float64(rows["dir"])/secs["dir"], float64(rows["s3"])/secs["s3"]
	fmt.Fprintf(w, "\n**All rounds:** directory %s rows/s, S3 %s rows/s: S3 at **%.0f%%** of the directory's throughput (target: at least 80%%); peak RSS %.0f MiB into the directory, **%.0f MiB into S3**.\n",
		benchdoc.ThousandsF(dirRate, 0), benchdoc.ThousandsF(s3Rate, 0), 100*s3Rate/dirRate, float64(peak["dir"])/(1<<20), float64(peak["s3"])/(1<<20))
	fmt.Fprintln(w, "\nPer step (summed over the run's archives):")
	fmt.Fprintln(w)
	fmt.Fprint(w, "| step |")
	for i, a := range b.sinks {
		fmt.Fprintf(w, " run %d %s |", i/2+1, a.sink)
	}
	fmt.Fprint(w, "\n|---|")
	for range b.sinks {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	for _, s := range archiveSteps {
		fmt.Fprintf(w, "| %s |", s.name)
		for _, a := range b.sinks {
			fmt.Fprintf(w, " %s |", benchdoc.Secs(a.steps[s.name]))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprint(w, "\n")
}

func (b *bench) verifyMarkdown(w io.Writer) {
	c := b.cfg
	fmt.Fprintf(w, "One database grown to each size by 16 concurrent `INSERT … SELECT` writers (the trigger on, 16 chains); `VACUUM ANALYZE`, `CHECKPOINT`, `Deps.Seal`, then a full `Deps.Verify` (recorded in audit.verification_runs, MACs checked). Then %d times: %s new rows (16 writers), `Deps.Seal`, and an incremental `Deps.Verify`, which starts each chain at its newest checkpoint the previous run verified and reads only what follows. Times are `Report.Duration`; medians of the %d incremental runs.\n\n",
		c.incrRuns, benchdoc.Thousands(int64(c.incrRows)), c.incrRuns)
	fmt.Fprintln(w, "| log rows | load (rows/s) | full verify | full rows/s | seal after +rows | incremental verify | rows read | incremental / full |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range b.verify {
		incr := benchdoc.MedianInt(r.incr)
		fmt.Fprintf(w, "| %s | %s (%s) | %s | %s | %s | %s | %s | %.2f%% |\n", benchdoc.Thousands(r.fullRows),
			benchdoc.Secs(r.loadTime), benchdoc.ThousandsF(float64(r.loadRows)/r.loadTime.Seconds(), 0), benchdoc.Secs(r.fullTime),
			benchdoc.ThousandsF(float64(r.fullRows)/r.fullTime.Seconds(), 0), fmtDur(benchdoc.MedianInt(r.incrSeals)), fmtDur(incr),
			benchdoc.Thousands(benchdoc.MedianInt(r.incrRows)), 100*incr.Seconds()/r.fullTime.Seconds())
	}
	fmt.Fprint(w, "\nRuns (incremental, in order): ")
	for _, r := range b.verify {
		var ds []string
		for _, d := range r.incr {
			ds = append(ds, fmtDur(d))
		}
		fmt.Fprintf(w, "%s rows: %s; ", benchdoc.Thousands(r.fullRows), strings.Join(ds, ", "))
	}
	fmt.Fprint(w, "\n\n")
}

// ---------------------------------------------------------------- helpers

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
}
