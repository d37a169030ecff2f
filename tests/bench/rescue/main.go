// Command rescue measures how long writers stall while the partitions job
// rescues the default partition: N rows of a month without a partition are
// moved into it (audit.create_partition, what the job does per month) while
// writers insert one row per transaction, and every insert's latency is
// recorded. The same writers run first without a rescue: the baseline of the
// same run. It writes the section "Rescuing the default partition" of
// BENCHMARKS.md.
//
//	go run ./tests/bench/rescue -rows 1000000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditdb/auditdb/internal/embeddedpg"
	"github.com/auditdb/auditdb/internal/migrate"
	"github.com/auditdb/auditdb/tests/bench/benchdoc"
)

const heading = "## Rescuing the default partition (issue 13)"

type config struct {
	rows     int
	writers  int
	baseline time.Duration
	out      string
}

func main() {
	var cfg config
	flag.IntVar(&cfg.rows, "rows", 1000000, "rows in the default partition to rescue")
	flag.IntVar(&cfg.writers, "writers", 2, "writers of the current month (it has its partition)")
	flag.DurationVar(&cfg.baseline, "baseline", 10*time.Second, "how long the writers run without a rescue first")
	flag.StringVar(&cfg.out, "out", "BENCHMARKS.md", "Markdown file to put the section into (empty: stdout only)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "rescue bench:", err)
		os.Exit(1)
	}
}

// writer classes
const (
	current = "current month (has its partition)"
	orphan  = "a month without partition (default partition)"
)

type sample struct {
	at      time.Time
	latency time.Duration
}

type stats struct {
	n        int
	max, p99 time.Duration
}

func summarize(ss []sample, from, to time.Time) stats {
	var ls []time.Duration
	for _, s := range ss {
		if !s.at.Before(from) && s.at.Before(to) {
			ls = append(ls, s.latency)
		}
	}
	if len(ls) == 0 {
		return stats{}
	}
	slices.Sort(ls)
	return stats{n: len(ls), max: ls[len(ls)-1], p99: ls[(len(ls)*99)/100]}
}

func run(ctx context.Context, cfg config) error {
	started := time.Now().UTC()
	load := benchdoc.LoadAvg()
	benchdoc.Progress("starting a durable PostgreSQL (fsync on)")
	srv, err := embeddedpg.Start(ctx, embeddedpg.Config{Durable: true, Settings: map[string]string{
		"max_wal_size": "8GB", "min_wal_size": "2GB", "checkpoint_timeout": "30min", "shared_buffers": "1GB",
	}})
	if err != nil {
		return err
	}
	defer func() { _ = srv.Stop() }()
	admin, err := pgx.Connect(ctx, srv.URL("postgres"))
	if err != nil {
		return err
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "CREATE DATABASE rescue"); err != nil {
		return err
	}
	pcfg, err := pgxpool.ParseConfig(srv.URL("rescue"))
	if err != nil {
		return err
	}
	pcfg.MaxConns = int32(cfg.writers + 4)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	res, err := migrate.Migrate(ctx, pool, migrate.Options{Accelerator: true})
	if err != nil {
		return err
	}
	var pgVersion string
	if err := pool.QueryRow(ctx, `SELECT current_setting('server_version')`).Scan(&pgVersion); err != nil {
		return err
	}

	// N rows of May 2019, which has no partition: they land in the default
	// partition, as a backfill would
	month := time.Date(2019, 5, 1, 0, 0, 0, 0, time.UTC)
	const chunk = 50000
	loadStart := time.Now()
	for done := 0; done < cfg.rows; done += chunk {
		n := min(chunk, cfg.rows-done)
		_, err := pool.Exec(ctx, `INSERT INTO audit.audit_log ("timestamp", action, status, principal_id, principal_type,
			organization_id, target_resource_type, target_resource_id, source_ip, outcome_description, data_classification, details)
			SELECT $1::timestamptz + (($2::bigint + g) * interval '2 seconds'), 'fhir.patient.read', 'success', 'user-' || g,
			       'practitioner', 'org-' || (g % 20), 'Patient', 'patient-' || g, '10.0.0.1', 'Viewed chart', 'PHI',
			       jsonb_build_object('department', 'cardiology', 'n', g)
			FROM generate_series(1, $3::bigint) g`, month, done, n)
		if err != nil {
			return fmt.Errorf("load: %w", err)
		}
		benchdoc.Progress("loaded %d of %d rows into the default partition", done+n, cfg.rows)
	}
	loadTime := time.Since(loadStart)
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE audit.audit_log_default`); err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, "CHECKPOINT"); err != nil {
		return err
	}
	var defaultBytes int64
	if err := pool.QueryRow(ctx, `SELECT pg_total_relation_size('audit.audit_log_default')`).Scan(&defaultBytes); err != nil {
		return err
	}

	// writers: cfg.writers of the current month, one of August 2019 (no
	// partition either: its rows go to the default partition too)
	var mu sync.Mutex
	samples := map[string][]sample{}
	wctx, stopWriters := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var werr error
	write := func(class string, ts func() time.Time) {
		defer wg.Done()
		for wctx.Err() == nil {
			t0 := time.Now()
			_, err := pool.Exec(wctx, `INSERT INTO audit.audit_log ("timestamp", action, status, principal_id) VALUES ($1, 'bench.write', 'success', 'w')`, ts())
			if err != nil {
				if wctx.Err() == nil {
					mu.Lock()
					werr = err
					mu.Unlock()
				}
				return
			}
			mu.Lock()
			samples[class] = append(samples[class], sample{at: t0, latency: time.Since(t0)})
			mu.Unlock()
		}
	}
	for range cfg.writers {
		wg.Add(1)
		go write(current, time.Now)
	}
	aug := time.Date(2019, 8, 10, 0, 0, 0, 0, time.UTC)
	wg.Add(1)
	go write(orphan, func() time.Time { return aug })

	benchdoc.Progress("baseline: writers alone for %s", cfg.baseline)
	baseFrom := time.Now()
	time.Sleep(cfg.baseline)
	baseTo := time.Now()

	benchdoc.Progress("rescue: moving %d rows while the writers write", cfg.rows)
	var moved int64
	var created bool
	rescueFrom := time.Now()
	err = pool.QueryRow(ctx, `SELECT created, rows_moved FROM audit.create_partition($1)`, month).Scan(&created, &moved)
	rescueTo := time.Now()
	time.Sleep(time.Second)
	stopWriters()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("rescue: %w", err)
	}
	if werr != nil {
		return fmt.Errorf("writer: %w", werr)
	}
	if moved != int64(cfg.rows) {
		return fmt.Errorf("rescue moved %d rows, want %d", moved, cfg.rows)
	}
	var left int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log_default WHERE "timestamp" < '2019-06-01'`).Scan(&left); err != nil {
		return err
	}
	if left != 0 {
		return fmt.Errorf("%d rows of the month left in the default partition", left)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", heading)
	fmt.Fprintf(&b, "`go run ./tests/bench/rescue -rows %d -writers %d -baseline %s`, %s UTC, load average at start %s. ",
		cfg.rows, cfg.writers, cfg.baseline, started.Format("2006-01-02 15:04"), load)
	fmt.Fprintf(&b, "A private PostgreSQL %s (internal/embeddedpg, fsync on, shared_buffers 1GB), migrated (insert trigger: %s); "+
		"%s rows of May 2019, a month without partition, loaded into the default partition in %s (%s on disk). "+
		"Then writers insert one row per transaction, back to back: %d of the current month (which `migrate` gave a partition) "+
		"and 1 of August 2019 (no partition: its rows go to the default partition too). First %s without a rescue (the baseline), "+
		"then `audit.create_partition('2019-05-01')`, what the partitions job does for that month (step 0013), moves the rows. "+
		"Latencies are per INSERT, measured by the writer; the longest is the longest stall.\n\n",
		pgVersion, res.Trigger, benchdoc.Thousands(int64(cfg.rows)), benchdoc.Secs(loadTime), fmt.Sprintf("%.0f MB", float64(defaultBytes)/1e6),
		cfg.writers, cfg.baseline)
	fmt.Fprintf(&b, "The rescue moved %s rows in %s.\n\n", benchdoc.Thousands(moved), benchdoc.Secs(rescueTo.Sub(rescueFrom)))
	fmt.Fprintf(&b, "| writer | phase | inserts | p99 | longest (stall) | longest / baseline's |\n|---|---|---:|---:|---:|---:|\n")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
	for _, class := range []string{current, orphan} {
		base := summarize(samples[class], baseFrom, baseTo)
		resc := summarize(samples[class], rescueFrom, rescueTo)
		// an insert that started before the rescue ended but is still
		// counted by its start: a stall longer than the rescue shows in full
		ratio := "-"
		if base.max > 0 {
			ratio = fmt.Sprintf("%.1f×", float64(resc.max)/float64(base.max))
		}
		fmt.Fprintf(&b, "| %s | baseline | %s | %s | %s | |\n", class, benchdoc.Thousands(int64(base.n)), ms(base.p99), ms(base.max))
		fmt.Fprintf(&b, "| %s | during the rescue | %s | %s | %s | %s |\n", class, benchdoc.Thousands(int64(resc.n)), ms(resc.p99), ms(resc.max), ratio)
	}
	b.WriteString("\nThe rescue moves the bulk of the month's rows without blocking anyone (the rows stay visible in the default partition " +
		"until it commits), then takes EXCLUSIVE on audit_log_default to move the rows of that month written meanwhile and attach the " +
		"partition (whose check scans the default partition). Writers of a month that has its partition never wait for it (it takes only " +
		"SHARE UPDATE EXCLUSIVE on audit_log); a writer whose row goes to the default partition waits for that last part only, which " +
		"grows with the size of the default partition's table (the scan), not with the time the move takes.\n")
	fmt.Print(b.String())
	if cfg.out == "" {
		return nil
	}
	return benchdoc.WriteSection(cfg.out, heading, b.String())
}
