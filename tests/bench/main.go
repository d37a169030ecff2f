// Command bench measures what auditdb's integrity trigger costs and how fast
// a log verifies, on a private durable PostgreSQL (fsync on), and writes the
// results as Markdown:
//
//	go run ./tests/bench -out BENCHMARKS.md
//
// It measures, trigger ON versus OFF on the same schema:
//
//   - single-row inserts with pgbench at 1 and 8 clients, runs alternated
//     on/off/on/off and the median taken;
//   - bulk INSERT ... SELECT and COPY of N and N/10 rows into a fresh
//     database each, and how the trigger-on time grows with 10x the rows;
//   - verification of N rows written with the trigger on: the Go verifier
//     (verifier.Verify) against the single-SQL recomputation
//     audit.recompute_chain_heads().
//
// Every number comes from the run; targets are printed as PASS or MISS next
// to the measurement. -quick does a small smoke run.
package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditdb/auditdb/internal/embeddedpg"
	"github.com/auditdb/auditdb/internal/migrate"
	"github.com/auditdb/auditdb/internal/verifier"
	"github.com/auditdb/auditdb/tests/bench/benchdoc"
)

// Targets.
const (
	targetSingleRatio   = 0.65   // single-row, 8 clients: on/off
	targetBulkRatio     = 0.50   // bulk: on/off
	targetLinearity     = 11.0   // 10x rows in at most this many times the time
	targetVerifyRate    = 300000 // Go verification rows/s
	targetVerifyVsSQL   = 1.5    // Go rows/s over SQL rows/s
	singleTargetClients = 8
)

// The integrity trigger and the per-statement chain flush trigger.
var integrityTriggers = []string{"zz_audit_log_integrity", "zz_audit_log_chain_flush"}

// Constant integrity values for trigger-off rows, of the sizes the trigger
// writes: a 16-byte salt, a 32-byte commitment and a 64-hex-digit hash.
const (
	offSaltHex       = "00112233445566778899aabbccddeeff"
	offCommitmentHex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	offHash          = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

// The event every benchmark writes: a practitioner reading a patient chart.
const (
	evAction         = "fhir.patient.read"
	evStatus         = "success"
	evPrincipalType  = "practitioner"
	evTargetType     = "Patient"
	evSourceIP       = "10.1.2.3"
	evOutcome        = "Viewed chart"
	evClassification = "PHI"
	evDetails        = `{"department":"cardiology","reason":"treatment"}`
)

type config struct {
	triggers []string // implementations measured with the trigger on: plpgsql, c
	out      string
	rows     int
	duration time.Duration
	runs     int
	bulkRuns int
	quick    bool
	clients  []int
}

func main() {
	var cfg config
	flag.StringVar(&cfg.out, "out", "BENCHMARKS.md", "write the Markdown report to this file")
	flag.IntVar(&cfg.rows, "rows", 1000000, "rows per bulk load and per verification (N); the linearity check also loads N/10")
	flag.DurationVar(&cfg.duration, "duration", 20*time.Second, "duration of each pgbench run (whole seconds)")
	flag.IntVar(&cfg.runs, "runs", 2, "runs per mode of each pgbench and N/10-row bulk measurement, and per verifier; the median is reported")
	flag.IntVar(&cfg.bulkRuns, "bulk-runs", 1, "runs per mode of the N-row bulk loads (about a minute each with the trigger on at the default N)")
	flag.BoolVar(&cfg.quick, "quick", false, "smoke run: -rows 20000 -duration 3s")
	triggers := flag.String("triggers", "plpgsql,c", "insert trigger implementations to measure against trigger off, comma-separated (plpgsql, c)")
	flag.Parse()
	for _, t := range strings.Split(*triggers, ",") {
		if t != modePL && t != modeC {
			fmt.Fprintf(os.Stderr, "bench: -triggers: %q is not plpgsql or c\n", t)
			os.Exit(2)
		}
		cfg.triggers = append(cfg.triggers, t)
	}
	if cfg.quick {
		cfg.rows = 20000
		cfg.duration = 3 * time.Second
	}
	if cfg.rows < 10 || cfg.duration < time.Second || cfg.runs < 1 || cfg.bulkRuns < 1 {
		fmt.Fprintln(os.Stderr, "bench: -rows must be >= 10, -duration >= 1s, -runs and -bulk-runs >= 1")
		os.Exit(2)
	}
	cfg.clients = []int{1, singleTargetClients}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: FAILED:", err)
		os.Exit(1)
	}
}

// bench holds the running server and the results gathered so far.
type bench struct {
	cfg     config
	srv     *embeddedpg.Server
	admin   *pgx.Conn // to the postgres database: CREATE/DROP DATABASE, CHECKPOINT
	tmp     string
	started time.Time
	dbSeq   int

	machine     [][2]string
	loadAtStart string
	settings    [][2]string
	schema      [][2]string

	single []singleResult
	bulk   []bulkResult
	verify *verifyResult
}

func run(ctx context.Context, cfg config) (err error) {
	b := &bench{cfg: cfg, started: time.Now(), loadAtStart: benchdoc.LoadAvg()}
	if b.tmp, err = os.MkdirTemp("", "auditdb-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.tmp)

	benchdoc.Progress("starting a durable PostgreSQL (fsync on)")
	b.srv, err = embeddedpg.Start(ctx, embeddedpg.Config{
		Durable: true,
		Settings: map[string]string{
			// A bulk load of a million rows writes over a gigabyte of WAL;
			// with the default 1GB a checkpoint would land inside some runs
			// and not others. Checkpoints are taken between runs instead,
			// and min_wal_size keeps the WAL segments of the warm-up for
			// reuse, so no run pays for creating segment files the next
			// one recycles.
			"max_wal_size":       "8GB",
			"min_wal_size":       "4GB",
			"checkpoint_timeout": "30min",
			// A million rows with their six indexes take about 600 MB. With
			// shared_buffers below that, the 1M loads miss the cache where
			// the 100k loads hit it, and the linearity check would measure
			// the buffer cache rather than the trigger.
			"shared_buffers": "2GB",
		},
	})
	if err != nil {
		return err
	}
	defer func() {
		benchdoc.Progress("stopping PostgreSQL")
		if stopErr := b.srv.Stop(); stopErr != nil {
			fmt.Fprintln(os.Stderr, "bench: stopping PostgreSQL:", stopErr)
		}
	}()
	benchdoc.Progress("PostgreSQL on 127.0.0.1:%d", b.srv.Port)

	if b.admin, err = pgx.Connect(ctx, b.srv.URL("postgres")); err != nil {
		return err
	}
	defer b.admin.Close(context.Background())

	if err := b.describe(ctx); err != nil {
		return err
	}
	if err := b.prepareTemplate(ctx); err != nil {
		return err
	}
	if err := b.warmUp(ctx); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if err := b.runSingle(ctx); err != nil {
		return fmt.Errorf("single-row: %w", err)
	}
	if err := b.runBulk(ctx); err != nil {
		return fmt.Errorf("bulk: %w", err)
	}
	if err := b.runVerify(ctx); err != nil {
		return fmt.Errorf("verification: %w", err)
	}

	report := b.markdown()
	fmt.Println(report)
	// Sections after the marker come from other benchmarks (Go benchmarks
	// of the client and cache); they stay as they are.
	if old, err := os.ReadFile(cfg.out); err == nil {
		if i := strings.Index(string(old), benchdoc.Marker); i >= 0 {
			report += "\n" + string(old[i:])
		}
	}
	if err := os.WriteFile(cfg.out, []byte(report), 0o644); err != nil {
		return err
	}
	benchdoc.Progress("wrote %s (total %s)", cfg.out, time.Since(b.started).Round(time.Second))
	return nil
}

// ---------------------------------------------------------------- setup

const templateDB = "bench_template"

// prepareTemplate creates and migrates the database every benchmark
// database is copied from, with the partitions of this month and the next
// three.
func (b *bench) prepareTemplate(ctx context.Context) error {
	benchdoc.Progress("creating database %s, migrating, ensuring partitions", templateDB)
	if _, err := b.admin.Exec(ctx, "CREATE DATABASE "+templateDB); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, b.srv.URL(templateDB))
	if err != nil {
		return err
	}
	defer pool.Close()
	res, err := migrate.Migrate(ctx, pool, migrate.Options{})
	if err != nil {
		return err
	}
	var parts int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit.ensure_partitions(3)`).Scan(&parts); err != nil {
		return err
	}
	var triggers int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_trigger t WHERE t.tgname = ANY ($1) AND t.tgrelid IN
		(SELECT 'audit.audit_log'::regclass UNION ALL SELECT inhrelid FROM pg_inherits WHERE inhparent = 'audit.audit_log'::regclass)`,
		integrityTriggers).Scan(&triggers); err != nil {
		return err
	}
	var fn, lang string
	if err := pool.QueryRow(ctx, `SELECT p.oid::regprocedure::text, l.lanname
		FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_language l ON l.oid = p.prolang
		WHERE t.tgrelid = 'audit.audit_log'::regclass AND t.tgname = 'zz_audit_log_integrity'`).Scan(&fn, &lang); err != nil {
		return fmt.Errorf("the insert trigger: %w", err)
	}
	b.schema = [][2]string{
		{"schema", fmt.Sprintf("migrations through step %04d (internal/migrate)", res.Current)},
		{"insert trigger", fmt.Sprintf("zz_audit_log_integrity runs %s (%s), as migrated", fn, lang)},
	}
	benchdoc.Progress("schema at version %d, %d monthly partitions ensured, %d integrity triggers in place, insert trigger runs %s (%s)",
		res.Current, parts, triggers, fn, lang)
	return nil
}

// warmUp does one untimed trigger-off load of N rows into a scratch copy of
// the schema and drops it, so that the WAL segments exist and the caches
// are warm before anything is timed.
func (b *bench) warmUp(ctx context.Context) error {
	benchdoc.Progress("warm-up: untimed load of %d rows (trigger off) to create WAL segments and warm the caches", b.cfg.rows)
	start := time.Now()
	if _, err := b.bulkOnce(ctx, methodInsert, b.cfg.rows, modeOff); err != nil {
		return err
	}
	if err := b.checkpoint(ctx); err != nil {
		return err
	}
	benchdoc.Progress("warm-up: done in %s", time.Since(start).Round(time.Millisecond))
	return nil
}

// freshDB copies the migrated template into a new database.
func (b *bench) freshDB(ctx context.Context, prefix string) (string, error) {
	b.dbSeq++
	name := fmt.Sprintf("bench_%s_%d", prefix, b.dbSeq)
	_, err := b.admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, templateDB))
	return name, err
}

func (b *bench) dropDB(name string) {
	if _, err := b.admin.Exec(context.Background(), fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)); err != nil {
		fmt.Fprintln(os.Stderr, "bench: drop database:", err)
	}
}

func (b *bench) checkpoint(ctx context.Context) error {
	_, err := b.admin.Exec(ctx, "CHECKPOINT")
	return err
}

// The modes a measurement runs in: the trigger on in one of its two
// implementations, or off.
const (
	modePL  = "plpgsql"
	modeC   = "c"
	modeOff = "off"
)

// modes are the trigger-on implementations measured, then off.
func (b *bench) modes() []string { return append(append([]string(nil), b.cfg.triggers...), modeOff) }

// setMode puts the database behind conn in mode: the triggers off, or on
// with the insert trigger running the given implementation (which must be
// available: the C one needs make install-extension).
func setMode(ctx context.Context, conn *pgx.Conn, mode string) error {
	if _, err := setTriggers(ctx, conn, mode != modeOff); err != nil {
		return err
	}
	if mode == modeOff {
		return nil
	}
	var got string
	if err := conn.QueryRow(ctx, `SELECT audit.use_accelerator($1)`, mode == modeC).Scan(&got); err != nil {
		return err
	}
	if got != mode {
		return fmt.Errorf("insert trigger %s asked for, %s in place: the C accelerator needs `make install-extension`", mode, got)
	}
	return nil
}

// setTriggers enables or disables the row trigger zz_audit_log_integrity and
// the statement trigger zz_audit_log_chain_flush on audit_log and on every
// partition, and checks that all of them ended up in the state asked for.
func setTriggers(ctx context.Context, conn *pgx.Conn, enable bool) (int, error) {
	const q = `SELECT t.tgrelid::regclass::text, t.tgname
		FROM pg_trigger t
		WHERE t.tgname = ANY ($1)
		  AND t.tgrelid IN (SELECT 'audit.audit_log'::regclass
		                    UNION ALL
		                    SELECT inhrelid FROM pg_inherits WHERE inhparent = 'audit.audit_log'::regclass)
		ORDER BY t.tgrelid <> 'audit.audit_log'::regclass, 1, 2`
	rows, err := conn.Query(ctx, q, integrityTriggers)
	if err != nil {
		return 0, err
	}
	type trig struct{ rel, name string }
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (trig, error) {
		var t trig
		err := r.Scan(&t.rel, &t.name)
		return t, err
	})
	if err != nil {
		return 0, err
	}
	var parts int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit.audit_log'::regclass`).Scan(&parts); err != nil {
		return 0, err
	}
	// the row trigger is cloned to each partition; the statement trigger is
	// installed on each partition
	if want := 2 * (parts + 1); len(list) != want {
		return 0, fmt.Errorf("found %d integrity triggers on audit_log and its %d partitions, want %d", len(list), parts, want)
	}
	verb := "DISABLE"
	if enable {
		verb = "ENABLE"
	}
	for _, t := range list {
		if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s %s TRIGGER %s", t.rel, verb, pgx.Identifier{t.name}.Sanitize())); err != nil {
			return 0, err
		}
	}
	// The trigger gives every row its id; with it off, a column default takes
	// its place, as the identity default did before, so both modes pay for
	// one nextval a row.
	idDefault := "SET DEFAULT nextval('audit.audit_log_id_seq')"
	if enable {
		idDefault = "DROP DEFAULT"
	}
	if _, err := conn.Exec(ctx, "ALTER TABLE audit.audit_log ALTER COLUMN id "+idDefault); err != nil {
		return 0, err
	}
	want := "D"
	if enable {
		want = "O"
	}
	var wrong int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_trigger t
		WHERE t.tgname = ANY ($1) AND t.tgenabled <> $2
		  AND t.tgrelid IN (SELECT 'audit.audit_log'::regclass
		                    UNION ALL
		                    SELECT inhrelid FROM pg_inherits WHERE inhparent = 'audit.audit_log'::regclass)`,
		integrityTriggers, want).Scan(&wrong); err != nil {
		return 0, err
	}
	if wrong != 0 {
		return 0, fmt.Errorf("%d integrity triggers are not in state %s after ALTER TABLE ... %s TRIGGER", wrong, want, verb)
	}
	return len(list), nil
}

// ---------------------------------------------------------------- machine

func (b *bench) describe(ctx context.Context) error {
	cpu, mem := benchdoc.CPUModel(), benchdoc.MemTotal()
	nproc := strconv.Itoa(runtime.NumCPU())
	if out, err := exec.CommandContext(ctx, "nproc").Output(); err == nil {
		nproc = strings.TrimSpace(string(out))
	}
	var pgVersion string
	if err := b.admin.QueryRow(ctx, `SELECT version()`).Scan(&pgVersion); err != nil {
		return err
	}
	b.machine = [][2]string{
		{"CPUs (nproc)", nproc},
		{"CPU", cpu},
		{"Memory", mem},
		{"PostgreSQL", pgVersion},
		{"Go", runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH},
	}
	for _, name := range []string{"fsync", "synchronous_commit", "full_page_writes", "wal_level",
		"shared_buffers", "max_wal_size", "min_wal_size", "checkpoint_timeout", "jit"} {
		var v string
		if err := b.admin.QueryRow(ctx, `SELECT current_setting($1)`, name).Scan(&v); err != nil {
			return err
		}
		if name == "fsync" && v != "on" {
			return fmt.Errorf("fsync is %s: the benchmark needs a durable server", v)
		}
		b.settings = append(b.settings, [2]string{name, v})
	}
	return nil
}

// ---------------------------------------------------------------- single-row

type singleResult struct {
	clients  int
	runs     map[string][]pgbenchRun // by mode
	tps      map[string]float64      // median by mode
	lat      map[string]float64      // median latency (ms) by mode
	hasCheck bool
}

// ratio is the trigger-on rate of implementation impl over the trigger-off rate.
func (r singleResult) ratio(impl string) float64 { return r.tps[impl] / r.tps[modeOff] }

type pgbenchRun struct {
	tps       float64
	latencyMS float64
	txns      int64
}

// The pgbench scripts: one event per transaction, with the session's
// integrity columns left to the trigger (on) or supplied as constants of the
// same sizes (off), so that rows have the same width either way.
const singleOnScript = `\set u random(1, 1000000)
INSERT INTO audit.audit_log ("timestamp", action, status, principal_id, principal_type, organization_id, target_resource_type, target_resource_id, source_ip, outcome_description, data_classification, details) VALUES (now(), 'fhir.patient.read', 'success', 'user-' || :u, 'practitioner', 'org-' || (:u % 20), 'Patient', 'patient-' || :u, '10.1.2.3', 'Viewed chart', 'PHI', '{"department":"cardiology","reason":"treatment"}');
`

var singleOffScript = `\set u random(1, 1000000)
INSERT INTO audit.audit_log ("timestamp", action, status, principal_id, principal_type, organization_id, target_resource_type, target_resource_id, source_ip, outcome_description, data_classification, details, chain_id, chain_seq, recorded_at, pii_salt, pii_commitment, hash) VALUES (now(), 'fhir.patient.read', 'success', 'user-' || :u, 'practitioner', 'org-' || (:u % 20), 'Patient', 'patient-' || :u, '10.1.2.3', 'Viewed chart', 'PHI', '{"department":"cardiology","reason":"treatment"}', 0, :u, now(), '\x` + offSaltHex + `', '\x` + offCommitmentHex + `', '` + offHash + `');
`

func (b *bench) runSingle(ctx context.Context) error {
	db, err := b.freshDB(ctx, "single")
	if err != nil {
		return err
	}
	defer b.dropDB(db)
	conn, err := pgx.Connect(ctx, b.srv.URL(db))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())

	onPath := filepath.Join(b.tmp, "insert_on.sql")
	offPath := filepath.Join(b.tmp, "insert_off.sql")
	if err := os.WriteFile(onPath, []byte(singleOnScript), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(offPath, []byte(singleOffScript), 0o644); err != nil {
		return err
	}

	mode := ""
	defer func() {
		if mode != modeOff && mode != "" {
			return
		}
		if _, err := setTriggers(context.Background(), conn, true); err != nil {
			fmt.Fprintln(os.Stderr, "bench: re-enabling triggers:", err)
		}
	}()

	for _, clients := range b.cfg.clients {
		res := singleResult{clients: clients, hasCheck: clients == singleTargetClients,
			runs: map[string][]pgbenchRun{}, tps: map[string]float64{}, lat: map[string]float64{}}
		for r := 1; r <= b.cfg.runs; r++ {
			for _, m := range b.modes() {
				if m != mode {
					if err := setMode(ctx, conn, m); err != nil {
						return err
					}
					mode = m
					benchdoc.Progress("single-row: mode %s", m)
				}
				if _, err := conn.Exec(ctx, "VACUUM ANALYZE audit.audit_log"); err != nil {
					return err
				}
				if err := b.checkpoint(ctx); err != nil {
					return err
				}
				before, err := countRows(ctx, conn)
				if err != nil {
					return err
				}
				script := onPath
				if m == modeOff {
					script = offPath
				}
				benchdoc.Progress("single-row: %d client(s), %s, run %d/%d, %s", clients, m, r, b.cfg.runs, b.cfg.duration)
				pr, err := b.pgbench(ctx, db, script, clients)
				if err != nil {
					return err
				}
				after, err := countRows(ctx, conn)
				if err != nil {
					return err
				}
				// the rows written must be exactly the committed transactions,
				// hashed by the trigger (on) or carrying the constants (off)
				added, addedConst := after.all-before.all, after.constHash-before.constHash
				wantConst := int64(0)
				if m == modeOff {
					wantConst = added
				}
				if added != pr.txns || addedConst != wantConst {
					return fmt.Errorf("%s run: pgbench committed %d transactions, audit_log grew by %d rows of which %d carry the constant hash (want %d)",
						m, pr.txns, added, addedConst, wantConst)
				}
				benchdoc.Progress("single-row: %d client(s), %s: %.1f tps, %.3f ms average latency, %d rows",
					clients, m, pr.tps, pr.latencyMS, pr.txns)
				res.runs[m] = append(res.runs[m], pr)
			}
		}
		for m, runs := range res.runs {
			res.tps[m] = benchdoc.Median(field(runs, func(p pgbenchRun) float64 { return p.tps }))
			res.lat[m] = benchdoc.Median(field(runs, func(p pgbenchRun) float64 { return p.latencyMS }))
		}
		b.single = append(b.single, res)
	}
	if mode == modeOff {
		if _, err := setTriggers(ctx, conn, true); err != nil {
			return err
		}
		mode = modePL
		benchdoc.Progress("single-row: triggers re-enabled")
	}
	return nil
}

type rowCounts struct{ all, constHash int64 }

func countRows(ctx context.Context, conn *pgx.Conn) (rowCounts, error) {
	var c rowCounts
	err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE hash = $1) FROM audit.audit_log`, offHash).Scan(&c.all, &c.constHash)
	return c, err
}

var (
	reTPS     = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
	reLatency = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
	reTxns    = regexp.MustCompile(`(?m)^number of transactions actually processed: ([0-9]+)`)
	reFailed  = regexp.MustCompile(`(?m)^number of failed transactions: ([0-9]+)`)
)

func (b *bench) pgbench(ctx context.Context, db, script string, clients int) (pgbenchRun, error) {
	secs := int(math.Round(b.cfg.duration.Seconds()))
	args := []string{"-n", "-M", "prepared",
		"-c", strconv.Itoa(clients), "-j", strconv.Itoa(min(2, clients)),
		"-T", strconv.Itoa(secs), "-f", script,
		"-h", "127.0.0.1", "-p", strconv.Itoa(b.srv.Port), "-U", "postgres", db}
	cmd := exec.CommandContext(ctx, b.srv.Bin("pgbench"), args...)
	cmd.Env = append(os.Environ(), "PGSSLMODE=disable")
	out, err := cmd.CombinedOutput()
	text := string(out)
	if err != nil {
		return pgbenchRun{}, fmt.Errorf("pgbench %s: %w\n%s", strings.Join(args, " "), err, text)
	}
	var r pgbenchRun
	m := reTPS.FindStringSubmatch(text)
	l := reLatency.FindStringSubmatch(text)
	n := reTxns.FindStringSubmatch(text)
	if m == nil || l == nil || n == nil {
		return r, fmt.Errorf("pgbench: cannot read tps, latency and transactions from its output:\n%s", text)
	}
	if f := reFailed.FindStringSubmatch(text); f != nil && f[1] != "0" {
		return r, fmt.Errorf("pgbench: %s failed transactions:\n%s", f[1], text)
	}
	r.tps, _ = strconv.ParseFloat(m[1], 64)
	r.latencyMS, _ = strconv.ParseFloat(l[1], 64)
	r.txns, _ = strconv.ParseInt(n[1], 10, 64)
	if r.tps <= 0 || r.txns <= 0 {
		return r, fmt.Errorf("pgbench: no transactions were processed:\n%s", text)
	}
	return r, nil
}

// ---------------------------------------------------------------- bulk

type bulkResult struct {
	method string // "INSERT … SELECT" or "COPY"
	rows   int
	runs   map[string][]time.Duration // by mode
	med    map[string]time.Duration   // median by mode
}

func (r bulkResult) rate(mode string) float64 { return float64(r.rows) / r.med[mode].Seconds() }

// ratio is the trigger-on rate of implementation impl over the trigger-off rate.
func (r bulkResult) ratio(impl string) float64 { return r.rate(impl) / r.rate(modeOff) }

const (
	methodInsert = "INSERT … SELECT"
	methodCopy   = "COPY"
)

func (b *bench) runBulk(ctx context.Context) error {
	small := b.cfg.rows / 10
	for _, method := range []string{methodInsert, methodCopy} {
		for _, n := range []int{small, b.cfg.rows} {
			res := bulkResult{method: method, rows: n, runs: map[string][]time.Duration{}, med: map[string]time.Duration{}}
			runs := b.cfg.runs
			if n == b.cfg.rows {
				runs = b.cfg.bulkRuns
			}
			for r := 1; r <= runs; r++ {
				for _, m := range b.modes() {
					benchdoc.Progress("bulk: %s of %d rows, %s, run %d/%d", method, n, m, r, runs)
					d, err := b.bulkOnce(ctx, method, n, m)
					if err != nil {
						return err
					}
					benchdoc.Progress("bulk: %s of %d rows, %s: %s, %.0f rows/s", method, n, m,
						d.Round(time.Millisecond), float64(n)/d.Seconds())
					res.runs[m] = append(res.runs[m], d)
				}
			}
			for m, ds := range res.runs {
				res.med[m] = benchdoc.MedianInt(ds)
			}
			b.bulk = append(b.bulk, res)
		}
	}
	return nil
}

// bulkOnce loads n rows into a fresh copy of the schema with one statement
// and returns how long the statement (with its commit) took.
func (b *bench) bulkOnce(ctx context.Context, method string, n int, mode string) (time.Duration, error) {
	on := mode != modeOff
	db, err := b.freshDB(ctx, "bulk")
	if err != nil {
		return 0, err
	}
	defer b.dropDB(db)
	conn, err := pgx.Connect(ctx, b.srv.URL(db))
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	if err := setMode(ctx, conn, mode); err != nil {
		return 0, err
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE audit.audit_log"); err != nil {
		return 0, err
	}
	if err := b.checkpoint(ctx); err != nil {
		return 0, err
	}

	var d time.Duration
	switch method {
	case methodInsert:
		// generate_series materialises its rows: with the default 4MB
		// work_mem a million of them spill to a temporary file, which the
		// 100,000-row load does not, and linearity would measure that.
		if _, err := conn.Exec(ctx, "SET work_mem = '256MB'"); err != nil {
			return 0, err
		}
		q := insertSelectSQL(on)
		start := time.Now()
		tag, err := conn.Exec(ctx, q, n)
		d = time.Since(start)
		if err != nil {
			return 0, err
		}
		if tag.RowsAffected() != int64(n) {
			return 0, fmt.Errorf("INSERT … SELECT inserted %d rows, want %d", tag.RowsAffected(), n)
		}
	case methodCopy:
		cols, src := copySource(n, on)
		start := time.Now()
		got, err := conn.CopyFrom(ctx, pgx.Identifier{"audit", "audit_log"}, cols, src)
		d = time.Since(start)
		if err != nil {
			return 0, err
		}
		if got != int64(n) {
			return 0, fmt.Errorf("COPY wrote %d rows, want %d", got, n)
		}
	default:
		return 0, fmt.Errorf("unknown method %q", method)
	}

	// the rows must be what the mode promises: hashed by the trigger into
	// the chains (on), or carrying the constants with no chain advanced (off)
	c, err := countRows(ctx, conn)
	if err != nil {
		return 0, err
	}
	var heads int64
	if err := conn.QueryRow(ctx, `SELECT coalesce(sum(head_seq), 0) FROM audit.chain_heads`).Scan(&heads); err != nil {
		return 0, err
	}
	wantConst, wantHeads := int64(0), int64(n)
	if !on {
		wantConst, wantHeads = int64(n), 0
	}
	if c.all != int64(n) || c.constHash != wantConst || heads != wantHeads {
		return 0, fmt.Errorf("%s, %s: %d rows, %d with the constant hash, chain heads sum to %d; want %d, %d, %d",
			method, mode, c.all, c.constHash, heads, n, wantConst, wantHeads)
	}
	return d, nil
}

func insertSelectSQL(on bool) string {
	cols := `"timestamp", action, status, principal_id, principal_type, organization_id,
		target_resource_type, target_resource_id, source_ip, outcome_description, data_classification, details`
	// events a microsecond apart, as COPY's are
	vals := `now() + g * interval '1 microsecond', 'fhir.patient.read', 'success', 'user-' || g, 'practitioner', 'org-' || (g % 20),
		'Patient', 'patient-' || g, '10.1.2.3', 'Viewed chart', 'PHI', '{"department":"cardiology","reason":"treatment"}'`
	if !on {
		cols += `, chain_id, chain_seq, recorded_at, pii_salt, pii_commitment, hash`
		vals += fmt.Sprintf(`, 0, g, now(), '\x%s', '\x%s', '%s'`, offSaltHex, offCommitmentHex, offHash)
	}
	return fmt.Sprintf(`INSERT INTO audit.audit_log (%s) SELECT %s FROM generate_series(1, $1::bigint) AS g`, cols, vals)
}

// copySource generates n events for COPY (binary, as pgx sends it), with
// timestamps a microsecond apart starting now.
func copySource(n int, on bool) ([]string, pgx.CopyFromSource) {
	cols := []string{"timestamp", "action", "status", "principal_id", "principal_type", "organization_id",
		"target_resource_type", "target_resource_id", "source_ip", "outcome_description",
		"data_classification", "details"}
	if !on {
		cols = append(cols, "chain_id", "chain_seq", "recorded_at", "pii_salt", "pii_commitment", "hash")
	}
	salt := mustHex(offSaltHex)
	commitment := mustHex(offCommitmentHex)
	ip := netip.MustParseAddr(evSourceIP)
	base := time.Now()
	i := 0
	return cols, pgx.CopyFromFunc(func() ([]any, error) {
		if i >= n {
			return nil, nil
		}
		i++
		u := strconv.Itoa(i)
		row := make([]any, 0, len(cols))
		row = append(row, base.Add(time.Duration(i)*time.Microsecond), evAction, evStatus, "user-"+u, evPrincipalType,
			"org-"+strconv.Itoa(i%20), evTargetType, "patient-"+u, ip, evOutcome, evClassification, evDetails)
		if !on {
			row = append(row, int16(0), int64(i), time.Now(), salt, commitment, offHash)
		}
		return row, nil
	})
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// ---------------------------------------------------------------- verification

type verifyResult struct {
	rows     int64
	chains   int
	loadTime time.Duration
	warmTime time.Duration
	writers  int
	goTimes  []time.Duration
	sqlTimes []time.Duration
	goMed    time.Duration
	sqlMed   time.Duration
	goRate   float64
	sqlRate  float64
	ratio    float64
}

func (b *bench) runVerify(ctx context.Context) error {
	db, err := b.freshDB(ctx, "verify")
	if err != nil {
		return err
	}
	defer b.dropDB(db)
	pool, err := pgxpool.New(ctx, b.srv.URL(db))
	if err != nil {
		return err
	}
	defer pool.Close()

	var chainCount int
	if err := pool.QueryRow(ctx, `SELECT value::integer FROM audit.settings WHERE key = 'chain_count'`).Scan(&chainCount); err != nil {
		return err
	}
	// Load N rows with the trigger on from as many concurrent writers as
	// there are chains, so that the log has its usual shape: every chain in
	// use, each a valid chain.
	res := &verifyResult{writers: chainCount}
	n := b.cfg.rows
	benchdoc.Progress("verification: loading %d rows with the trigger on from %d concurrent writers", n, chainCount)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, chainCount)
	q := insertSelectRangeSQL()
	for w := 0; w < chainCount; w++ {
		lo := int64(n) * int64(w) / int64(chainCount)
		hi := int64(n) * int64(w+1) / int64(chainCount)
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := pgx.Connect(ctx, b.srv.URL(db))
			if err != nil {
				errs[w] = err
				return
			}
			defer conn.Close(context.Background())
			_, errs[w] = conn.Exec(ctx, q, lo+1, hi)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	res.loadTime = time.Since(start)
	if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT chain_id) FROM audit.audit_log`).Scan(&res.rows, &res.chains); err != nil {
		return err
	}
	if res.rows != int64(n) {
		return fmt.Errorf("loaded %d rows, want %d", res.rows, n)
	}
	benchdoc.Progress("verification: loaded %d rows into %d chains in %s", res.rows, res.chains, res.loadTime.Round(time.Millisecond))
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE audit.audit_log"); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE audit.chain_heads"); err != nil {
		return err
	}
	if err := b.checkpoint(ctx); err != nil {
		return err
	}
	// One untimed pass first, so both verifiers read a warm cache.
	benchdoc.Progress("verification: untimed warm-up pass of the Go verifier")
	start = time.Now()
	warm, err := verifier.Verify(ctx, pool, verifier.Options{NoRecord: true})
	if err != nil {
		return err
	}
	if !warm.Intact() || warm.RowsChecked != res.rows {
		return fmt.Errorf("Go verifier (warm-up): status %s, %d findings, %d rows checked of %d", warm.Status, len(warm.Findings), warm.RowsChecked, res.rows)
	}
	res.warmTime = time.Since(start)
	benchdoc.Progress("verification: warm-up pass intact in %s", res.warmTime.Round(time.Millisecond))

	for r := 1; r <= b.cfg.runs; r++ {
		benchdoc.Progress("verification: Go verifier.Verify, run %d/%d", r, b.cfg.runs)
		start := time.Now()
		rep, err := verifier.Verify(ctx, pool, verifier.Options{NoRecord: true})
		d := time.Since(start)
		if err != nil {
			return err
		}
		if !rep.Intact() || rep.Status != "intact" {
			return fmt.Errorf("Go verifier: status %s with %d findings on a log written by the trigger (first: %+v)",
				rep.Status, len(rep.Findings), rep.Findings[0])
		}
		if rep.RowsChecked != res.rows {
			return fmt.Errorf("Go verifier checked %d rows, the log has %d", rep.RowsChecked, res.rows)
		}
		benchdoc.Progress("verification: Go: %d rows intact in %s, %.0f rows/s", rep.RowsChecked, d.Round(time.Millisecond), float64(rep.RowsChecked)/d.Seconds())
		res.goTimes = append(res.goTimes, d)

		benchdoc.Progress("verification: SQL audit.recompute_chain_heads(), run %d/%d", r, b.cfg.runs)
		start = time.Now()
		rows, err := pool.Query(ctx, `SELECT chain_id, rows_checked, head_seq, stored_hash, recomputed_hash, rows_modified FROM audit.recompute_chain_heads()`)
		if err != nil {
			return err
		}
		type chainRow struct {
			chain                   int16
			checked, head, modified int64
			stored, recomputed      string
		}
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (chainRow, error) {
			var c chainRow
			err := r.Scan(&c.chain, &c.checked, &c.head, &c.stored, &c.recomputed, &c.modified)
			return c, err
		})
		d = time.Since(start)
		if err != nil {
			return err
		}
		var checked int64
		for _, c := range got {
			if c.modified != 0 || c.stored != c.recomputed {
				return fmt.Errorf("SQL recompute: chain %d has rows_modified = %d (stored %s, recomputed %s) on a log written by the trigger",
					c.chain, c.modified, c.stored, c.recomputed)
			}
			checked += c.checked
		}
		if checked != res.rows || len(got) != res.chains {
			return fmt.Errorf("SQL recompute checked %d rows in %d chains, the log has %d rows in %d chains", checked, len(got), res.rows, res.chains)
		}
		benchdoc.Progress("verification: SQL: %d rows in %d chains, rows_modified 0, in %s, %.0f rows/s", checked, len(got), d.Round(time.Millisecond), float64(checked)/d.Seconds())
		res.sqlTimes = append(res.sqlTimes, d)
	}
	res.goMed = benchdoc.MedianInt(res.goTimes)
	res.sqlMed = benchdoc.MedianInt(res.sqlTimes)
	res.goRate = float64(res.rows) / res.goMed.Seconds()
	res.sqlRate = float64(res.rows) / res.sqlMed.Seconds()
	res.ratio = res.goRate / res.sqlRate
	b.verify = res
	return nil
}

func insertSelectRangeSQL() string {
	return `INSERT INTO audit.audit_log ("timestamp", action, status, principal_id, principal_type, organization_id,
		target_resource_type, target_resource_id, source_ip, outcome_description, data_classification, details)
	SELECT now(), 'fhir.patient.read', 'success', 'user-' || g, 'practitioner', 'org-' || (g % 20),
		'Patient', 'patient-' || g, '10.1.2.3', 'Viewed chart', 'PHI', '{"department":"cardiology","reason":"treatment"}'
	FROM generate_series($1::bigint, $2::bigint) AS g`
}

// ---------------------------------------------------------------- report

// modeTableHeader writes the header of a table with one column per mode,
// then ratio, target and result per trigger implementation.
func (b *bench) modeTableHeader(w *bytes.Buffer, header, rule string) {
	for _, m := range b.modes() {
		header += fmt.Sprintf(" %s |", m)
		rule += "---:|"
	}
	for _, impl := range b.cfg.triggers {
		header += fmt.Sprintf(" %s / off | target | result |", impl)
		rule += "---:|---|---|"
	}
	fmt.Fprintf(w, "%s\n%s\n", header, rule)
}

func (b *bench) markdown() string {
	var w bytes.Buffer
	total := time.Since(b.started).Round(time.Second)
	fmt.Fprintf(&w, "# auditdb benchmarks\n\n")
	fmt.Fprintf(&w, "Measured %s by `go run ./tests/bench", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	if b.cfg.quick {
		fmt.Fprintf(&w, " -quick")
	}
	fmt.Fprintf(&w, "` in %s, on a private PostgreSQL started for the run (internal/embeddedpg, durable).", total)
	if b.cfg.quick {
		fmt.Fprintf(&w, " **Quick smoke run: sizes too small for the targets to mean much.**")
	}
	fmt.Fprintf(&w, " Every number below was measured in this run; nothing is carried over.\n\n")

	fmt.Fprintf(&w, "## Machine\n\n| | |\n|---|---|\n")
	for _, kv := range b.machine {
		fmt.Fprintf(&w, "| %s | %s |\n", kv[0], kv[1])
	}
	fmt.Fprintf(&w, "| Load average (1, 5, 15 min) | %s at the start, %s at the end (other work on the machine adds noise) |\n", b.loadAtStart, benchdoc.LoadAvg())
	fmt.Fprintf(&w, "\n## Settings\n\n| | |\n|---|---|\n")
	for _, kv := range b.settings {
		fmt.Fprintf(&w, "| %s | %s |\n", kv[0], kv[1])
	}
	for _, kv := range b.schema {
		fmt.Fprintf(&w, "| %s | %s |\n", kv[0], kv[1])
	}
	small := b.cfg.rows / 10
	fmt.Fprintf(&w, "| single-row runs | pgbench -n -M prepared -j 2 (1 for 1 client), %s per run, %d run(s) per mode alternating the modes, median |\n",
		b.cfg.duration, b.cfg.runs)
	fmt.Fprintf(&w, "| bulk rows | %s (%d run(s) per mode) and %s (%d run(s) per mode) per load, one statement into a fresh copy of the schema, median, modes alternated |\n",
		benchdoc.Thousands(int64(small)), b.cfg.runs, benchdoc.Thousands(int64(b.cfg.rows)), b.cfg.bulkRuns)
	fmt.Fprintf(&w, "| warm-up | one untimed trigger-off load of %s rows before any measurement (WAL segments, caches) |\n", benchdoc.Thousands(int64(b.cfg.rows)))
	fmt.Fprintf(&w, "| between runs | VACUUM ANALYZE audit.audit_log, CHECKPOINT |\n")
	if b.verify != nil {
		fmt.Fprintf(&w, "| verification rows | %s in %d chains, one untimed warm-up pass, then %d run(s) of each verifier alternated, median |\n", benchdoc.Thousands(b.verify.rows), b.verify.chains, b.cfg.runs)
	}
	fmt.Fprintf(&w, "| partitions | monthly, audit.ensure_partitions(3) |\n")
	fmt.Fprintf(&w, "| event | fhir.patient.read by a practitioner on a Patient, PHI, with source_ip, outcome and a jsonb details object |\n")
	fmt.Fprintf(&w, "| modes | %s: the insert trigger in PL/pgSQL (audit.audit_log_before_insert, works everywhere) and in C (audit_log_before_insert_c, the optional accelerator), switched with audit.use_accelerator; off |\n", strings.Join(b.modes(), ", "))
	fmt.Fprintf(&w, "| trigger off | zz_audit_log_integrity and zz_audit_log_chain_flush disabled on audit_log and every partition; the client supplies chain_id, chain_seq, recorded_at and constant pii_salt (16 B), pii_commitment (32 B) and hash (64 hex) so rows keep their width |\n")

	pass, total2 := 0, 0
	mark := func(ok bool) string {
		total2++
		if ok {
			pass++
			return "PASS"
		}
		return "MISS"
	}

	impls := b.cfg.triggers
	fmt.Fprintf(&w, "\n## Single-row inserts (pgbench, one event per transaction)\n\n")
	fmt.Fprintf(&w, "Trigger on in each implementation, and off, on the same database, alternated run by run. tps (average latency in ms).\n\n")
	b.modeTableHeader(&w, "| clients |", "|---:|")
	for _, s := range b.single {
		line := fmt.Sprintf("| %d |", s.clients)
		for _, m := range b.modes() {
			line += fmt.Sprintf(" %s (%.3f) |", benchdoc.ThousandsF(s.tps[m], 1), s.lat[m])
		}
		for _, impl := range impls {
			target, result := "—", "—"
			if s.hasCheck {
				target = fmt.Sprintf("≥ %.0f%%", targetSingleRatio*100)
				result = mark(s.ratio(impl) >= targetSingleRatio)
			}
			line += fmt.Sprintf(" %.1f%% | %s | %s |", s.ratio(impl)*100, target, result)
		}
		fmt.Fprintf(&w, "%s\n", line)
	}
	fmt.Fprintf(&w, "\nRuns (tps, in order):")
	for _, s := range b.single {
		fmt.Fprintf(&w, " %d client(s):", s.clients)
		for _, m := range b.modes() {
			fmt.Fprintf(&w, " %s %s;", m, joinF(field(s.runs[m], func(p pgbenchRun) float64 { return p.tps })))
		}
	}
	fmt.Fprintf(&w, "\n")

	fmt.Fprintf(&w, "\n## Bulk loads (one statement)\n\nrows/s (time).\n\n")
	b.modeTableHeader(&w, "| method | rows |", "|---|---:|")
	for _, r := range b.bulk {
		line := fmt.Sprintf("| %s | %s |", r.method, benchdoc.Thousands(int64(r.rows)))
		for _, m := range b.modes() {
			line += fmt.Sprintf(" %s (%s) |", benchdoc.ThousandsF(r.rate(m), 0), benchdoc.Secs(r.med[m]))
		}
		for _, impl := range impls {
			line += fmt.Sprintf(" %.1f%% | ≥ %.0f%% | %s |", r.ratio(impl)*100, targetBulkRatio*100, mark(r.ratio(impl) >= targetBulkRatio))
		}
		fmt.Fprintf(&w, "%s\n", line)
	}
	fmt.Fprintf(&w, "\nRuns (seconds, in order):")
	for _, r := range b.bulk {
		fmt.Fprintf(&w, " %s %s rows:", r.method, benchdoc.Thousands(int64(r.rows)))
		for _, m := range b.modes() {
			fmt.Fprintf(&w, " %s %s;", m, joinD(r.runs[m]))
		}
	}
	fmt.Fprintf(&w, "\n")

	fmt.Fprintf(&w, "\n### Linearity: %s rows against %s\n\n", benchdoc.Thousands(int64(b.cfg.rows)), benchdoc.Thousands(int64(small)))
	fmt.Fprintf(&w, "| method | mode | time for %s | time for %s | 10x rows took | target | result |\n", benchdoc.Thousands(int64(small)), benchdoc.Thousands(int64(b.cfg.rows)))
	fmt.Fprintf(&w, "|---|---|---:|---:|---:|---|---|\n")
	for _, method := range []string{methodInsert, methodCopy} {
		var sm, lg *bulkResult
		for i := range b.bulk {
			if b.bulk[i].method != method {
				continue
			}
			if b.bulk[i].rows == small {
				sm = &b.bulk[i]
			} else if b.bulk[i].rows == b.cfg.rows {
				lg = &b.bulk[i]
			}
		}
		if sm == nil || lg == nil {
			continue
		}
		for _, m := range b.modes() {
			x := lg.med[m].Seconds() / sm.med[m].Seconds()
			target, result := "—", "—"
			if m != modeOff {
				target, result = fmt.Sprintf("≤ %.0fx", targetLinearity), mark(x <= targetLinearity)
			}
			fmt.Fprintf(&w, "| %s | %s | %s | %s | %.2fx the time | %s | %s |\n", method, m, benchdoc.Secs(sm.med[m]), benchdoc.Secs(lg.med[m]), x, target, result)
		}
	}

	if v := b.verify; v != nil {
		fmt.Fprintf(&w, "\n## Verification of %s rows (all chains valid)\n\n", benchdoc.Thousands(v.rows))
		fmt.Fprintf(&w, "Loaded with the trigger on by %d concurrent writers (INSERT … SELECT each) in %s (%s rows/s) into %d chains; VACUUM ANALYZE and CHECKPOINT, then one untimed Go pass (%s) to warm the cache.\n\n",
			v.writers, benchdoc.Secs(v.loadTime), benchdoc.ThousandsF(float64(v.rows)/v.loadTime.Seconds(), 0), v.chains, benchdoc.Secs(v.warmTime))
		fmt.Fprintf(&w, "| verifier | time | rows/s | target | result |\n|---|---:|---:|---|---|\n")
		fmt.Fprintf(&w, "| Go `verifier.Verify` (NoRecord), intact | %s | %s | ≥ %s rows/s | %s |\n", benchdoc.Secs(v.goMed), benchdoc.ThousandsF(v.goRate, 0),
			benchdoc.Thousands(targetVerifyRate), mark(v.goRate >= targetVerifyRate))
		fmt.Fprintf(&w, "| SQL `audit.recompute_chain_heads()`, rows_modified 0 | %s | %s | — | — |\n", benchdoc.Secs(v.sqlMed), benchdoc.ThousandsF(v.sqlRate, 0))
		fmt.Fprintf(&w, "| Go / SQL | | %.2fx | ≥ %.1fx | %s |\n", v.ratio, targetVerifyVsSQL, mark(v.ratio >= targetVerifyVsSQL))
		fmt.Fprintf(&w, "\nRuns (seconds, in order): Go %s; SQL %s\n", joinD(v.goTimes), joinD(v.sqlTimes))
	}

	fmt.Fprintf(&w, "\n## Summary\n\n%d of %d targets met.\n", pass, total2)
	return w.String()
}

// ---------------------------------------------------------------- helpers

func field[T any](xs []T, f func(T) float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

func joinF(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.1f", x)
	}
	return strings.Join(parts, ", ")
}

func joinD(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%.2f", d.Seconds())
	}
	return strings.Join(parts, ", ")
}
