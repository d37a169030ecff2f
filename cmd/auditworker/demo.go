package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/client"
	"github.com/auditdb/auditdb/internal/integrity"
	"github.com/auditdb/auditdb/workers"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "end to end on the embedded default: install, write, seal, verify, erase a patient (GDPR), tamper, catch it",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "writers", Value: 6, Usage: "concurrent plain-SQL writers", EnvVars: []string{"AUDIT_DEMO_WRITERS"}},
			&cli.IntFlag{Name: "events", Value: 1500, Usage: "events per writer", EnvVars: []string{"AUDIT_DEMO_EVENTS"}},
		},
		Action: func(c *cli.Context) error {
			if c.Int("writers") < 1 || c.Int("events") < 1 {
				return fmt.Errorf("writers and events: must be at least 1")
			}
			return runDemo(c, c.Int("writers"), c.Int("events"))
		},
	}
}

func runDemo(c *cli.Context, writers, perWriter int) error {
	ctx := c.Context
	w := c.App.Writer
	start := time.Now()
	step := func(format string, args ...any) {
		fmt.Fprintf(w, "\n== %s ", time.Since(start).Round(time.Millisecond))
		fmt.Fprintf(w, format+"\n", args...)
	}

	step("1. install: private PostgreSQL, auditdb migrations, partitions three months ahead")
	e, err := startEmbedded(ctx, w)
	if err != nil {
		return err
	}
	defer e.stop()
	fmt.Fprintf(w, "insert trigger: %s (the C accelerator when `make install-extension` has installed it, else PL/pgSQL)\n", e.trigger)
	if e.redis == nil {
		fmt.Fprintln(w, "(redis-server not installed: nothing in this demo needs it)")
	}

	// The writers log in as a role with audit_writer rights only, and use
	// nothing but SQL: any PostgreSQL client could do the same.
	if _, err := e.pool.Exec(ctx, `CREATE ROLE demo_app LOGIN IN ROLE audit_writer`); err != nil {
		return err
	}
	u, _ := url.Parse(e.pg.URL("postgres"))
	u.User = url.User("demo_app")
	u.RawQuery = fmt.Sprintf("pool_max_conns=%d", writers)
	app, err := pgxpool.New(ctx, u.String())
	if err != nil {
		return err
	}
	defer app.Close()

	step("2. write: %d concurrent writers, %d healthcare events each (single rows, multi-row inserts, transactions)", writers, perWriter)
	var written atomic.Int64
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			if err := demoWriter(ctx, app, rand.New(rand.NewPCG(seed, 7)), perWriter, &written); err != nil {
				errs <- err
			}
		}(uint64(i + 1))
	}
	done, drawn := make(chan struct{}), make(chan struct{})
	showProgress := isTerminal(w)
	go func() {
		defer close(drawn)
		if !showProgress {
			<-done
			return
		}
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				progressBar(w, "write", "rows", written.Load(), int64(writers*perWriter), t0)
			case <-done:
				progressBar(w, "write", "rows", written.Load(), int64(writers*perWriter), t0)
				fmt.Fprintln(w)
				return
			}
		}
	}()
	wg.Wait()
	close(done)
	<-drawn
	close(errs)
	for err := range errs {
		return fmt.Errorf("writer: %w", err)
	}
	fmt.Fprintf(w, "%d events in %s (%.0f events/s)\n", written.Load(), time.Since(t0).Round(time.Millisecond),
		float64(written.Load())/time.Since(t0).Seconds())

	step("3. seal: HMAC checkpoints of every chain head, with a key made for this demo (it never enters the database)")
	entry, err := integrity.GenerateSealKey("demo-1")
	if err != nil {
		return err
	}
	keys, err := integrity.ParseSealKeys(entry, "")
	if err != nil {
		return err
	}
	deps := &workers.Deps{Pool: e.pool, Keys: keys, Logger: slog.New(slog.DiscardHandler)}
	sealed, err := deps.Seal(ctx, workers.SealOptions{})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%d checkpoints under key %s\n", sealed.Sealed(), sealed.KeyID)

	step("4. verify: re-compute every commitment, row hash and chain link, and check the checkpoints' MACs")
	rep, err := integrity.Verify(ctx, e.pool, integrity.Options{Keys: keys.Ring})
	if err != nil {
		return err
	}
	printReport(w, rep)
	if !rep.Intact() {
		return fmt.Errorf("demo: the untouched log did not verify")
	}

	step("5. GDPR: export one patient's events with inclusion proofs, then erase them")
	cl, err := client.New(ctx, e.pg.URL("postgres"))
	if err != nil {
		return err
	}
	defer cl.Close()
	var patient string
	if err := e.pool.QueryRow(ctx, `SELECT target_resource_id FROM audit.audit_log WHERE target_resource_type = 'Patient'
		GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1`).Scan(&patient); err != nil {
		return err
	}
	sum, err := cl.ExportSubject(ctx, patient, client.ExportJSON, io.Discard)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "export of %s: %d events, each with a proof a third party can check without the database\n", patient, sum.Events)
	reqID, err := cl.RequestErasure(ctx, patient, "demo: data subject request")
	if err != nil {
		return err
	}
	erased, err := deps.Erase(ctx, reqID, nil)
	if err != nil {
		return err
	}
	var left int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log WHERE target_resource_id = $1`, patient).Scan(&left); err != nil {
		return err
	}
	fmt.Fprintf(w, "erased %d events: ids replaced by %s, salts deleted, sealed redaction records written; %d rows still name the patient\n",
		erased.Rows, erased.Token, left)
	rep, err = integrity.Verify(ctx, e.pool, integrity.Options{Keys: keys.Ring})
	if err != nil {
		return err
	}
	printReport(w, rep)
	if !rep.Intact() || left != 0 {
		return fmt.Errorf("demo: erasure left %d rows or broke verification", left)
	}

	step("6. status: audit.integrity_status and audit.partition_status")
	chains, err := integrityStatus(ctx, e.pool)
	if err != nil {
		return err
	}
	printIntegrity(w, chains)
	fmt.Fprintln(w)
	parts, err := listPartitions(ctx, e.pool)
	if err != nil {
		return err
	}
	printPartitions(w, parts)

	step("7. tamper: a superuser bypasses the triggers and rewrites one event's outcome")
	var id int64
	var chain int16
	var seq int64
	err = pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `UPDATE audit.audit_log SET outcome_description = 'Access approved'
			WHERE id = (SELECT id FROM audit.audit_log WHERE status = 'failure' ORDER BY id LIMIT 1)
			RETURNING id, chain_id, chain_seq`).Scan(&id, &chain, &seq)
	})
	if err != nil {
		return fmt.Errorf("tamper: %w", err)
	}
	fmt.Fprintf(w, "UPDATE audit.audit_log SET outcome_description = 'Access approved' WHERE id = %d  -- chain %d, seq %d\n", id, chain, seq)

	step("8. verify again")
	rep, err = integrity.Verify(ctx, e.pool, integrity.Options{Keys: keys.Ring})
	if err != nil {
		return err
	}
	printReport(w, rep)
	caught := false
	for _, f := range rep.Findings {
		caught = caught || (f.RowID == id && f.Kind == integrity.RowModified)
	}
	if !caught {
		return fmt.Errorf("demo: the verifier did not catch the tampered row %d", id)
	}
	step("done: the verifier caught the change to row %d (chain %d, seq %d). Cleaning up.", id, chain, seq)
	return nil
}

var (
	demoActions = []struct {
		action, target string
		class          string
	}{
		{"fhir.patient.read", "Patient", "PHI"},
		{"fhir.patient.search", "Patient", "PHI"},
		{"fhir.observation.create", "Observation", "PHI"},
		{"fhir.medication_request.update", "MedicationRequest", "PHI"},
		{"ehr.chart.print", "Encounter", "PHI"},
		{"ehr.break_glass.access", "Patient", "PHI"},
		{"auth.login", "Session", "INTERNAL"},
		{"auth.logout", "Session", "INTERNAL"},
		{"report.export", "Report", "CONFIDENTIAL"},
		{"portal.page.view", "Page", "PUBLIC"},
	}
	demoRoles = []string{"practitioner", "nurse", "admin", "billing", "system"}
	demoDepts = []string{"cardiology", "oncology", "emergency", "radiology", "pediatrics"}
)

const demoInsert = `INSERT INTO audit_log ("timestamp", action, status, principal_id, principal_type,
	organization_id, target_resource_type, target_resource_id, source_ip, outcome_description,
	data_classification, retention_policy, processing_latency, correlation_id, details)
VALUES (now(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`

func demoEvent(r *rand.Rand) []any {
	a := demoActions[r.IntN(len(demoActions))]
	status, outcome := "success", "Completed"
	switch n := r.IntN(20); {
	case n == 0:
		status, outcome = "failure", "Access denied: no treatment relationship"
	case n == 1:
		status, outcome = "attempt", "Started"
	}
	policy := map[string]string{"PHI": "phi_extended", "INTERNAL": "standard", "CONFIDENTIAL": "confidential", "PUBLIC": "minimal"}[a.class]
	details := map[string]any{"department": demoDepts[r.IntN(len(demoDepts))], "session": fmt.Sprintf("s-%06d", r.IntN(1000000))}
	if a.class == "PHI" {
		details["purpose_of_use"] = "TREAT"
	}
	return []any{a.action, status, fmt.Sprintf("user-%04d", r.IntN(500)), demoRoles[r.IntN(len(demoRoles))],
		fmt.Sprintf("hospital-%c", 'a'+r.IntN(3)), a.target, fmt.Sprintf("%s/%05d", a.target, r.IntN(20000)),
		fmt.Sprintf("10.%d.%d.%d", r.IntN(8), r.IntN(256), 1+r.IntN(254)), outcome, a.class, policy,
		r.IntN(250), fmt.Sprintf("req-%08x", r.Uint32()), details}
}

// demoWriter writes n events: mostly single-row autocommit inserts, some
// small transactions of several events (one request touching several
// records), some multi-row INSERT statements.
func demoWriter(ctx context.Context, pool *pgxpool.Pool, r *rand.Rand, n int, written *atomic.Int64) error {
	for left := n; left > 0; {
		switch k := r.IntN(10); {
		case k < 6 || left < 5:
			if _, err := pool.Exec(ctx, demoInsert, demoEvent(r)...); err != nil {
				return err
			}
			left--
			written.Add(1)
		case k < 8:
			size := 2 + r.IntN(3)
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				for i := 0; i < size; i++ {
					if _, err := tx.Exec(ctx, demoInsert, demoEvent(r)...); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			left -= size
			written.Add(int64(size))
		default:
			size := 5
			sql := `INSERT INTO audit_log ("timestamp", action, status, principal_id, principal_type,
				organization_id, target_resource_type, target_resource_id, source_ip, outcome_description,
				data_classification, retention_policy, processing_latency, correlation_id, details) VALUES `
			args := make([]any, 0, size*14)
			for i := 0; i < size; i++ {
				if i > 0 {
					sql += ", "
				}
				sql += "(now()"
				for j := 1; j <= 14; j++ {
					sql += fmt.Sprintf(", $%d", i*14+j)
				}
				sql += ")"
				args = append(args, demoEvent(r)...)
			}
			if _, err := pool.Exec(ctx, sql, args...); err != nil {
				return err
			}
			left -= size
			written.Add(int64(size))
		}
	}
	return nil
}
