// Command anchor measures external anchoring against a durable private
// PostgreSQL:
//
//	go run ./tests/bench/anchor -rows 1000000 -bundles 1000 -out BENCHMARKS.md
//
// Two figures, each a ratio or a time taken in the same run:
//   - the anchor job's cost: Deps.Anchor over 16 chains, -bundles times
//     (reserve, read every head, sign, write the file to a directory sink,
//     mark it written), wall time and this process's CPU time per anchor;
//   - what -bundles bundles add to a full verification of -rows rows:
//     full verification with and without --anchors, alternating, -rounds
//     times each; the ratio of the medians.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditdb/auditdb/anchor"
	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/embeddedpg"
	"github.com/auditdb/auditdb/internal/migrate"
	"github.com/auditdb/auditdb/internal/verifier"
	"github.com/auditdb/auditdb/tests/bench/benchdoc"
	"github.com/auditdb/auditdb/workers"
)

const heading = "## Anchors (tests/bench/anchor)"

func main() {
	rows := flag.Int("rows", 1000000, "rows in the log (16 chains)")
	bundles := flag.Int("bundles", 1000, "bundles anchored (each timed) and then verified")
	rounds := flag.Int("rounds", 3, "full verifications with and without anchors, alternating")
	out := flag.String("out", "", "write the section into this markdown file (after its marker line)")
	flag.Parse()
	if *rows < 16 || *bundles < 1 || *rounds < 1 {
		fmt.Fprintln(os.Stderr, "anchor bench: -rows >= 16, -bundles >= 1, -rounds >= 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	section, err := run(ctx, *rows, *bundles, *rounds)
	if err != nil {
		fmt.Fprintln(os.Stderr, "anchor bench: FAILED:", err)
		os.Exit(1)
	}
	fmt.Println(section)
	if *out != "" {
		if err := benchdoc.WriteSection(*out, heading, section); err != nil {
			fmt.Fprintln(os.Stderr, "anchor bench:", err)
			os.Exit(1)
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func run(ctx context.Context, rows, bundles, rounds int) (string, error) {
	started := time.Now().UTC()
	load := benchdoc.LoadAvg()
	benchdoc.Progress("starting a durable PostgreSQL (fsync on)")
	srv, err := embeddedpg.Start(ctx, embeddedpg.Config{Durable: true, Settings: map[string]string{
		"max_wal_size": "8GB", "min_wal_size": "4GB", "checkpoint_timeout": "30min", "shared_buffers": "1GB",
	}})
	if err != nil {
		return "", err
	}
	defer srv.Stop()
	pool, err := pgxpool.New(ctx, srv.URL("postgres")+"&pool_max_conns=20")
	if err != nil {
		return "", err
	}
	defer pool.Close()
	if _, err := migrate.Migrate(ctx, pool, migrate.Options{}); err != nil {
		return "", err
	}
	benchdoc.Progress("loading %d rows into 16 chains", rows)
	t0 := time.Now()
	errs := make(chan error, 16)
	for c := 0; c < 16; c++ {
		go func() {
			// one transaction per chain, in batches of 50,000 rows
			left := rows / 16
			for left > 0 {
				n := min(left, 50000)
				_, err := pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, principal_id, target_resource_type,
					target_resource_id, data_classification, details)
					SELECT now(), 'fhir.patient.read', 'success', 'dr-' || g, 'Patient', 'p-' || (g % 1000), 'PHI',
					jsonb_build_object('n', g) FROM generate_series(1, $1) g`, n)
				if err != nil {
					errs <- err
					return
				}
				left -= n
			}
			errs <- nil
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			return "", err
		}
	}
	loaded := time.Since(t0)

	dir, err := os.MkdirTemp("", "auditdb-anchor-bench-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	sink, err := anchor.OpenSink(ctx, dir)
	if err != nil {
		return "", err
	}
	line, err := integrity.GenerateAnchorKey("bench")
	if err != nil {
		return "", err
	}
	signer, err := integrity.ParseAnchorPrivateKey(line, "bench")
	if err != nil {
		return "", err
	}
	keys, err := integrity.ParseAnchorKeys(signer.PublicLine(), "bench")
	if err != nil {
		return "", err
	}
	deps := &workers.Deps{Pool: pool, Anchors: &workers.AnchorSetup{Signer: signer, Sink: sink}, Logger: slog.New(slog.DiscardHandler)}
	benchdoc.Progress("anchoring %d bundles of 16 chains", bundles)
	walls := make([]float64, 0, bundles)
	cpus := make([]float64, 0, bundles)
	for range bundles {
		c0, w0 := cpuTime(), time.Now()
		if _, err := deps.Anchor(ctx); err != nil {
			return "", err
		}
		walls = append(walls, float64(time.Since(w0).Microseconds())/1000)
		cpus = append(cpus, float64((cpuTime()-c0).Microseconds())/1000)
	}
	slices.Sort(walls)
	p95 := walls[len(walls)*95/100]

	benchdoc.Progress("full verifications, with and without %d bundles, %d rounds", bundles, rounds)
	var plain, anchored []float64
	var checked int
	for r := range rounds {
		order := []bool{false, true}
		if r%2 == 1 {
			order = []bool{true, false}
		}
		for _, withAnchors := range order {
			t := time.Now()
			opts := verifier.Options{NoRecord: true}
			if withAnchors {
				if opts.Anchors, err = deps.CheckAnchors(ctx, workers.AnchorCheckOptions{Sink: sink, Keys: keys}); err != nil {
					return "", err
				}
			}
			rep, err := verifier.Verify(ctx, pool, opts)
			if err != nil {
				return "", err
			}
			if !rep.Intact() {
				return "", fmt.Errorf("verification found %d finding(s)", len(rep.Findings))
			}
			secs := time.Since(t).Seconds()
			if withAnchors {
				anchored = append(anchored, secs)
				checked = 0
				for _, ch := range rep.Chains {
					checked += ch.Anchors
				}
			} else {
				plain = append(plain, secs)
			}
		}
	}
	mp, ma := benchdoc.Median(plain), benchdoc.Median(anchored)
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", heading)
	fmt.Fprintf(&b, "Run %s, `go run ./tests/bench/anchor -rows %d -bundles %d -rounds %d`, load average at start %s, %s, durable PostgreSQL (fsync on), PL/pgSQL trigger; %s rows loaded in %s.\n\n",
		started.Format(time.RFC3339), rows, bundles, rounds, load, benchdoc.CPUModel(), benchdoc.Thousands(int64(rows)), benchdoc.Secs(loaded))
	fmt.Fprintf(&b, "| measure | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| one anchor of 16 chains (reserve, read heads, sign, write, record), wall, median | %.1f ms |\n", benchdoc.Median(walls))
	fmt.Fprintf(&b, "| the same, wall, p95 | %.1f ms |\n", p95)
	fmt.Fprintf(&b, "| the same, this process's CPU (user+sys), median | %.2f ms |\n", benchdoc.Median(cpus))
	fmt.Fprintf(&b, "| full verification of %s rows, median of %d | %.2f s |\n", benchdoc.Thousands(int64(rows)), rounds, mp)
	fmt.Fprintf(&b, "| the same with %d bundles read, checked and %d anchored positions compared, median of %d | %.2f s |\n", bundles, checked, rounds, ma)
	fmt.Fprintf(&b, "| added by the anchors | %+.1f %% |\n", (ma/mp-1)*100)
	return b.String(), nil
}
