package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/anchor"
	"github.com/auditdb/auditdb/client"
	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/verifier"
	"github.com/auditdb/auditdb/workers"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "end to end on the embedded default: install, run the worker, write, verify, anchor, erase a patient (GDPR), tamper and recompute the chain, catch it; re-seal it with the key, catch it by the anchor",
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

// demoFault is nil except in the tests' own binary (TestMain, with
// AUDITWORKER_FAULT_DEMO_PANIC): it panics in a goroutine of its own after
// the install step, where no deferred call of the demo runs, to prove that
// the servers' watchdogs clean up anyway.
var demoFault func()

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
	if demoFault != nil {
		demoFault()
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

	step("2. worker: the River suite in this process, sealing every second with a key made for this demo (the key never enters the database)")
	entry, err := integrity.GenerateSealKey("demo-1")
	if err != nil {
		return err
	}
	keys, err := integrity.ParseSealKeys(entry, "")
	if err != nil {
		return err
	}
	deps := &workers.Deps{Pool: e.pool, Keys: keys, Logger: slog.New(slog.DiscardHandler)}
	suite, err := workers.NewSuite(deps, workers.SuiteConfig{SealInterval: time.Second, VerifyInterval: -1, FullVerifyInterval: -1,
		PartitionsInterval: -1, ErasureInterval: -1, OptimizeInterval: -1, AlertsInterval: -1,
		Retention: &workers.RetentionConfig{Interval: -1}})
	if err != nil {
		return err
	}
	if err := suite.Start(ctx); err != nil {
		return err
	}
	defer func() { _ = suite.Stop(context.WithoutCancel(ctx)) }()
	fmt.Fprintln(w, "worker started: seal every 1s (verification, retention, erasure and the rest are left to `auditworker run`)")

	step("3. write: %d concurrent writers, %d healthcare events each (single rows, multi-row inserts, transactions)", writers, perWriter)
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

	step("4. seal: the worker's checkpoints")
	if err := waitSealed(ctx, e.pool, 30*time.Second); err != nil {
		return err
	}
	var cps, sealedChains int
	if err := e.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT chain_id) FROM audit.integrity_checkpoints`).Scan(&cps, &sealedChains); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d checkpoints on %d chains (each second the worker seals every chain whose head moved); every chain head is sealed\n", cps, sealedChains)

	step("5. verify: re-compute every commitment, row hash and chain link, and check the checkpoints' MACs")
	rep, err := verifier.Verify(ctx, e.pool, verifier.Options{Keys: keys.Ring, SealKeyID: keys.Active})
	if err != nil {
		return err
	}
	printReport(w, rep)
	if !rep.Intact() {
		return fmt.Errorf("demo: the untouched log did not verify")
	}
	anchorDir, err := os.MkdirTemp("", "auditdb-demo-anchors-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(anchorDir)
	anchorEntry, err := integrity.GenerateAnchorKey("demo-anchor")
	if err != nil {
		return err
	}
	anchorSigner, err := integrity.ParseAnchorPrivateKey(anchorEntry, "demo")
	if err != nil {
		return err
	}
	anchorKeys, err := integrity.ParseAnchorKeys(anchorSigner.PublicLine(), "demo")
	if err != nil {
		return err
	}
	anchorSink, err := anchor.OpenSink(ctx, anchorDir)
	if err != nil {
		return err
	}
	deps.Anchors = &workers.AnchorSetup{Signer: anchorSigner, Sink: anchorSink}
	arep, err := deps.Anchor(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "anchored: bundle %d of log %s, every chain head signed with Ed25519 key %s (not the seal key), written outside the database to %s\n",
		arep.Bundle, arep.LogID, arep.Key, arep.Sink)

	step("6. GDPR: export one patient's events with inclusion proofs, then erase them")
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
	patientSubject := client.Subject{ResourceType: "Patient", ResourceID: patient}
	sum, err := cl.ExportSubject(ctx, patientSubject, client.ExportJSON, io.Discard)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "export of %s: %d events, each with a proof a third party can check without the database\n", patient, sum.Events)
	reqID, err := cl.RequestErasure(ctx, patientSubject, "demo: data subject request")
	if err != nil {
		return err
	}
	erased, err := deps.Erase(ctx, reqID, nil)
	if err != nil {
		return err
	}
	var left int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM audit.audit_log WHERE target_resource_type = 'Patient' AND target_resource_id = $1`, patient).Scan(&left); err != nil {
		return err
	}
	fmt.Fprintf(w, "erased %d events: ids replaced by %s, salts deleted, sealed redaction records written; %d rows still name the patient\n",
		erased.Rows, erased.Token, left)
	rep, err = verifier.Verify(ctx, e.pool, verifier.Options{Keys: keys.Ring, SealKeyID: keys.Active})
	if err != nil {
		return err
	}
	printReport(w, rep)
	if !rep.Intact() || left != 0 {
		return fmt.Errorf("demo: erasure left %d rows or broke verification", left)
	}

	step("7. status: audit.integrity_status and audit.partition_status")
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

	step("8. tamper: a superuser turns a failed access into a success and recomputes the chain from there with the public SQL functions (no key)")
	if err := suite.Stop(ctx); err != nil {
		return err
	}
	var id int64
	var chain int16
	var seq int64
	if err := e.pool.QueryRow(ctx, `SELECT id, chain_id, chain_seq FROM audit.audit_log
		WHERE status = 'failure' AND pii_salt IS NOT NULL ORDER BY id LIMIT 1`).Scan(&id, &chain, &seq); err != nil {
		return fmt.Errorf("tamper: %w", err)
	}
	if _, err := e.pool.Exec(ctx, recomputeAttack(id, chain, seq)); err != nil {
		return fmt.Errorf("tamper: %w", err)
	}
	fmt.Fprintf(w, "UPDATE audit.audit_log SET status = 'success' WHERE id = %d  -- chain %d, seq %d; then every later hash of the chain and its head rewritten\n", id, chain, seq)
	rep, err = verifier.Verify(ctx, e.pool, verifier.Options{NoRecord: true, Chains: []int16{chain}})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "every row of chain %d now hashes correctly: %d row finding(s) of kind row_modified\n", chain, countKind(rep, integrity.RowModified))

	step("9. verify again: the sealed checkpoint no longer matches the chain")
	rep, err = verifier.Verify(ctx, e.pool, verifier.Options{Keys: keys.Ring, SealKeyID: keys.Active})
	if err != nil {
		return err
	}
	printReport(w, rep)
	if countKind(rep, integrity.CheckpointMismatch) == 0 {
		return fmt.Errorf("demo: the verifier did not catch the recomputed chain %d", chain)
	}
	step("10. the seal key's holder hides it: every checkpoint of chain %d from seq %d on gets a new MAC", chain, seq)
	resealed, err := resealChain(ctx, e.pool, keys, chain, seq)
	if err != nil {
		return err
	}
	rep, err = verifier.Verify(ctx, e.pool, verifier.Options{Keys: keys.Ring, NoRecord: true})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%d checkpoint(s) re-sealed; keyed verification alone now says: %s\n", resealed, rep.Status)
	if !rep.Intact() {
		return fmt.Errorf("demo: the re-sealed chain did not pass keyed verification")
	}

	step("11. verify against the anchor: the bundle signed before the rewrite still holds the old head")
	ar, err := deps.CheckAnchors(ctx, workers.AnchorCheckOptions{Sink: anchorSink, Keys: anchorKeys})
	if err != nil {
		return err
	}
	rep, err = verifier.Verify(ctx, e.pool, verifier.Options{Keys: keys.Ring, NoRecord: true, Anchors: ar})
	if err != nil {
		return err
	}
	printReport(w, rep)
	if countKind(rep, integrity.AnchorMismatch) == 0 {
		return fmt.Errorf("demo: the anchor did not catch the re-sealed chain %d", chain)
	}
	step("done: the recomputed chain %d was caught by its sealed checkpoint (checkpoint_mismatch); re-sealed with the key, by the anchor (anchor_mismatch). Cleaning up.", chain)
	return nil
}

// resealChain is what the holder of the seal key can do after rewriting a
// chain from seq on: give every checkpoint of the chain at or after seq the
// chain's new hash and a fresh MAC, bypassing the append-only guard. It
// returns how many checkpoints it rewrote.
func resealChain(ctx context.Context, pool *pgxpool.Pool, keys *integrity.SealKeys, chain int16, seq int64) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT c.id, c.chain_seq, l.hash, c.sealed_at, c.key_id FROM audit.integrity_checkpoints c
			JOIN audit.audit_log l ON l.chain_id = c.chain_id AND l.chain_seq = c.chain_seq
			WHERE c.chain_id = $1 AND c.chain_seq >= $2`, chain, seq)
		if err != nil {
			return err
		}
		type cp struct {
			id, seq    int64
			hash, key  string
			sealedAtUS int64
		}
		var cps []cp
		var at time.Time
		var c cp
		if _, err := pgx.ForEachRow(rows, []any{&c.id, &c.seq, &c.hash, &at, &c.key}, func() error {
			c.sealedAtUS = at.UnixMicro()
			cps = append(cps, c)
			return nil
		}); err != nil {
			return err
		}
		for _, c := range cps {
			key, ok := keys.Ring[c.key]
			if !ok {
				continue
			}
			if _, err := tx.Exec(ctx, `UPDATE audit.integrity_checkpoints SET hash = $2, mac = $3 WHERE id = $1`,
				c.id, c.hash, integrity.CheckpointMAC(key, chain, c.seq, c.hash, c.sealedAtUS)); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// waitSealed waits until every chain's head is covered by a checkpoint.
func waitSealed(ctx context.Context, pool *pgxpool.Pool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var unsealed int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM audit.integrity_status WHERE unsealed_rows > 0`).Scan(&unsealed)
		if err != nil || unsealed == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: %d chain(s) still unsealed after %s", unsealed, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// recomputeAttack is what a privileged user without the seal key can do:
// change a row, bypassing the guard, and recompute every later chain hash
// and the head with the public SQL functions, so that every row verifies.
func recomputeAttack(id int64, chain int16, seq int64) string {
	return fmt.Sprintf(`BEGIN;
SET LOCAL session_replication_role = replica;
UPDATE audit.audit_log SET status = 'success' WHERE id = %[1]d;
DO $$
DECLARE r record; prev bytea;
BEGIN
    SELECT coalesce((SELECT decode(hash, 'hex') FROM audit.audit_log WHERE chain_id = %[2]d AND chain_seq = %[3]d - 1),
                    audit.genesis_hash(%[2]d)) INTO prev;
    FOR r IN SELECT * FROM audit.audit_log WHERE chain_id = %[2]d AND chain_seq >= %[3]d ORDER BY chain_seq LOOP
        prev := audit.chain_hash(prev, audit.row_hash(r.id, r.chain_id, r.chain_seq, r."timestamp", r.recorded_at,
            r.action, r.status, r.principal_type, r.organization_id, r.target_resource_type, r.event_version,
            r.correlation_id, r.data_classification, r.retention_policy, r.processing_latency, r.ttl, r.pii_commitment));
        UPDATE audit.audit_log SET hash = encode(prev, 'hex') WHERE id = r.id;
    END LOOP;
    UPDATE audit.chain_heads SET head_hash = prev WHERE chain_id = %[2]d;
END $$;
COMMIT;`, id, chain, seq)
}

func countKind(rep *integrity.Report, k integrity.Kind) int {
	n := 0
	for _, f := range rep.Findings {
		if f.Kind == k {
			n++
		}
	}
	return n
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
