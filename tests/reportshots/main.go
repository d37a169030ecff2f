// Command reportshots renders every HTML report from a seeded private
// PostgreSQL and, when headless Chromium is installed, takes a PNG of each
// page, so that the reports can be checked as pictures (`make
// report-screenshots`). It needs PostgreSQL's binaries (as the tests do)
// and, for the PNGs, Debian's chromium package; `make test` does not run it.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditdb/auditdb/client"
	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/embeddedpg"
	"github.com/auditdb/auditdb/internal/migrate"
	"github.com/auditdb/auditdb/workers"
)

func main() {
	out := flag.String("out", "build/report-screenshots", "folder for the HTML pages and PNGs")
	browser := flag.String("chromium", "", "the Chromium binary (default: chromium, chromium-browser or google-chrome on PATH)")
	width := flag.Int("width", 1400, "window width in pixels")
	height := flag.Int("height", 2400, "window height in pixels (the PNG's height)")
	flag.Parse()
	if err := run(context.Background(), *out, *browser, *width, *height); err != nil {
		fmt.Fprintln(os.Stderr, "reportshots:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out, browser string, width, height int) error {
	if browser == "" {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				browser = p
				break
			}
		}
	}
	if browser == "" {
		return errors.New("no Chromium found: apt-get install -y chromium (or pass -chromium)")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	srv, err := embeddedpg.Start(ctx, embeddedpg.Config{})
	if err != nil {
		return err
	}
	defer srv.Stop()
	pool, err := pgxpool.New(ctx, srv.URL("postgres"))
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := migrate.Migrate(ctx, pool, migrate.Options{}); err != nil {
		return err
	}
	c, err := client.New(ctx, srv.URL("postgres"))
	if err != nil {
		return err
	}
	defer c.Close()
	k, err := integrity.GenerateSealKey("k1")
	if err != nil {
		return err
	}
	keys, err := integrity.ParseSealKeys(k, "")
	if err != nil {
		return err
	}
	// the tampered attestation's verification raises an alert: expected here
	deps := &workers.Deps{Pool: pool, Keys: keys, Logger: slog.New(slog.DiscardHandler)}

	now := time.Now().UTC()
	from, to := now.Add(-24*time.Hour), now.Add(time.Minute)
	if err := seed(ctx, c, deps, now); err != nil {
		return err
	}
	reports := []struct {
		name  string
		build func() (*client.Report, error)
	}{
		{"access", func() (*client.Report, error) {
			return c.AccessReport(ctx, client.AccessReportRequest{TargetResourceID: "patient-456", From: from, To: to})
		}},
		{"disclosures", func() (*client.Report, error) {
			return c.DisclosureReport(ctx, client.DisclosureReportRequest{To: to})
		}},
		{"activity", func() (*client.Report, error) {
			return c.WorkforceActivityReport(ctx, client.ActivityReportRequest{PrincipalID: "dr-123", From: from, To: to})
		}},
		{"attestation-intact", func() (*client.Report, error) {
			return c.IntegrityAttestation(ctx, client.AttestationRequest{})
		}},
		{"attestation-tampered", func() (*client.Report, error) {
			if err := tamper(ctx, pool, deps); err != nil {
				return nil, err
			}
			return c.IntegrityAttestation(ctx, client.AttestationRequest{})
		}},
	}
	for _, r := range reports {
		rep, err := r.build()
		if err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		var buf bytes.Buffer
		if err := rep.Render(&buf, client.ReportHTML); err != nil {
			return err
		}
		page := filepath.Join(out, r.name+".html")
		if err := os.WriteFile(page, buf.Bytes(), 0o644); err != nil {
			return err
		}
		png := filepath.Join(out, r.name+".png")
		if err := screenshot(ctx, browser, page, png, width, height); err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		fmt.Println(png)
	}
	return nil
}

// seed writes events of a small clinic: reads and writes of patient-456's
// record, disclosures with and without recipient, a pseudonymising
// organization, an erased patient; then seals and verifies.
func seed(ctx context.Context, c *client.Client, deps *workers.Deps, now time.Time) error {
	if err := c.EnablePseudonymisation(ctx, "org-north"); err != nil {
		return err
	}
	ev := func(min int, action string, status client.Status, principal, org, rtype, rid string) client.Event {
		return client.Event{
			Timestamp: now.Add(time.Duration(-min) * time.Minute), Action: action, Status: status,
			PrincipalID: principal, PrincipalType: "practitioner", OrganizationID: org,
			TargetResourceType: rtype, TargetResourceID: rid, DataClassification: client.ClassificationPHI,
			SourceIP: netip.MustParseAddr("10.20.30.40"), CorrelationID: fmt.Sprintf("req-%04d", min),
		}
	}
	var events []client.Event
	for i := range 40 {
		e := ev(600-i*13, "fhir.patient.read", client.StatusSuccess, []string{"dr-123", "nurse-7", "dr-88"}[i%3],
			[]string{"org-south", "org-north"}[i%2], "Patient", []string{"patient-456", "patient-789", "patient-101"}[(i/3)%3])
		if i%7 == 3 {
			e.Status = client.StatusFailure
			e.OutcomeDescription = "Access denied: no treatment relationship with the patient on record"
		}
		events = append(events, e)
	}
	d1 := ev(300, "ehr.record.disclose", client.StatusSuccess, "dr-123", "org-south", "Patient", "patient-456")
	d1.Details = map[string]any{"recipient": "Acme Health Insurance, claims department", "purpose": "payment"}
	d1.OutcomeDescription = "Discharge summary sent for claim 2026-118"
	d2 := ev(200, "fhir.bundle.export", client.StatusSuccess, "dr-88", "org-south", "Patient", "patient-789")
	d2.Details = map[string]any{"recipient": "County public health registry"}
	d3 := ev(100, "ehr.chart.print", client.StatusSuccess, "nurse-7", "org-south", "Patient", "patient-erased")
	events = append(events, d1, d2, d3, ev(90, "fhir.observation.create", client.StatusSuccess, "dr-123", "org-south", "Observation", "obs-5521"))
	if _, err := c.InsertBatch(ctx, events); err != nil {
		return err
	}
	if _, err := deps.Seal(ctx, workers.SealOptions{}); err != nil {
		return err
	}
	id, err := c.RequestErasure(ctx, client.Subject{ResourceType: "Patient", ResourceID: "patient-erased"}, "request 2026-118")
	if err != nil {
		return err
	}
	if _, err := deps.Erase(ctx, id, nil); err != nil {
		return err
	}
	if _, err := deps.Seal(ctx, workers.SealOptions{}); err != nil {
		return err
	}
	_, err = deps.Verify(ctx, workers.VerifyOptions{Full: true})
	return err
}

// tamper changes one row with every trigger off, as a privileged attacker
// would, and verifies again.
func tamper(ctx context.Context, pool *pgxpool.Pool, deps *workers.Deps) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE audit.audit_log SET action = 'fhir.patient.search' WHERE id = (SELECT min(id) FROM audit.audit_log)`)
		return err
	})
	if err != nil {
		return err
	}
	_, err = deps.Verify(ctx, workers.VerifyOptions{Full: true})
	return err
}

// screenshot renders page to png with headless Chromium, isolated from the
// network and from any profile.
func screenshot(ctx context.Context, browser, page, png string, width, height int) error {
	profile, err := os.MkdirTemp("", "reportshots-chromium-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(profile)
	abs, err := filepath.Abs(page)
	if err != nil {
		return err
	}
	absPNG, err := filepath.Abs(png)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir="+profile, "--screenshot="+absPNG, fmt.Sprintf("--window-size=%d,%d", width, height), "file://"+abs)
	if outp, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("chromium: %w: %s", err, outp)
	}
	if _, err := os.Stat(absPNG); err != nil {
		return fmt.Errorf("chromium wrote no screenshot: %w", err)
	}
	return nil
}
