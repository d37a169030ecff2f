package main

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/tests/harness"
)

// maintainerURL creates a login role granted only audit_maintainer (the
// worker's documented role) and returns a URL of db as it.
func maintainerURL(t *testing.T, db *harness.DB) string {
	t.Helper()
	ctx := context.Background()
	role := pgx.Identifier{"lp_maint_" + db.Name}.Sanitize()
	_, err := db.Pool.Exec(ctx, "CREATE ROLE "+role+" LOGIN IN ROLE audit_maintainer")
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = db.Pool.Exec(context.Background(), "DROP OWNED BY "+role+"; DROP ROLE "+role)
	})
	u, err := url.Parse(db.URL)
	require.NoError(t, err)
	u.User = url.User("lp_maint_" + db.Name)
	return u.String()
}

// Every command the worker's role is meant to run succeeds for a login
// role granted only audit_maintainer, with a row in the default partition.
func TestCommandsRunAsMaintainer(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, principal_id)
		SELECT now(), 'a', 'success', 'u' || g FROM generate_series(1, 50) g;
		INSERT INTO audit_log ("timestamp", action, status, retention_policy, data_classification)
		VALUES (now() - interval '200 days', 'old', 'success', 'minimal', 'PUBLIC')`)
	require.NoError(t, err)
	key, err := integrity.GenerateSealKey("k1")
	require.NoError(t, err)
	base := []string{"--database-url", maintainerURL(t, db)}
	for _, args := range [][]string{
		{"status"},
		{"alerts", "evaluate"},
		{"alerts", "list", "--status", "all"},
		{"partitions", "list"},
		{"optimize", "report"},
		{"optimize", "apply"},
		{"retention", "plan"},
		{"seal", "--seal-keys", key},
		{"verify", "--seal-keys", key},
		{"verify", "--incremental", "--seal-keys", key},
		{"report", "attestation"},
		{"partitions", "ensure"},
		{"partitions", "rescue"},
		{"retention", "run", "--archive-dir", t.TempDir(), "--seal-keys", key},
		{"verify", "--seal-keys", key},
		// every run verify recorded was sealed, so the keyed attestation
		// trusts them (an unsealed one would make it TAMPERED, exit 2)
		{"report", "attestation", "--seal-keys", key},
	} {
		code, out, errOut := run(t, append(base, args...)...)
		require.Equal(t, 0, code, "%v: %s%s", args, out, errOut)
	}
}

// The keyed attestation exits 2 once the worker's role flips a run.
func TestAttestationExitsTamperedOnEditedRun(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status) SELECT now(), 'a', 'success' FROM generate_series(1, 20) g`)
	require.NoError(t, err)
	key, err := integrity.GenerateSealKey("k1")
	require.NoError(t, err)
	base := []string{"--database-url", maintainerURL(t, db)}
	code, _, errOut := run(t, append(base, "verify", "--seal-keys", key)...)
	require.Equal(t, 0, code, errOut)
	code, out, errOut := run(t, append(base, "report", "attestation", "--seal-keys", key)...)
	require.Equal(t, 0, code, out+errOut)
	_, err = db.Pool.Exec(ctx, `UPDATE audit.verification_runs SET rows_checked = rows_checked + 1`)
	require.NoError(t, err)
	code, out, _ = run(t, append(base, "report", "attestation", "--seal-keys", key)...)
	require.Equal(t, 2, code, out)
	require.Contains(t, out, "forged")
	code, _, _ = run(t, append(base, "report", "attestation")...)
	require.Equal(t, 0, code, "without keys a changed count goes unseen")
}

// `run` listens on loopback unless told otherwise, and with a token file
// /metrics wants the token, which never reaches the logs.
func TestRunListensOnLoopbackWithMetricsToken(t *testing.T) {
	t.Parallel()
	var listen cli.Flag
	for _, f := range runCommand().Flags {
		if slices.Contains(f.Names(), "listen") {
			listen = f
		}
	}
	require.Equal(t, "127.0.0.1:9187", listen.(*cli.StringFlag).Value)
	require.Equal(t, []string{"AUDIT_WORKER_LISTEN"}, listen.(*cli.StringFlag).EnvVars)

	db := harness.NewDB(t)
	const token = "tok-0123456789abcdef-9f"
	file := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(file, []byte(token+"\n"), 0o600))
	code, _, errOut := run(t, "--database-url", db.URL, "run", "--listen", "127.0.0.1:0", "--seal-interval", "0",
		"--metrics-token", token, "--metrics-token-file", file)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "metrics-token, metrics-token-file: set one, not both")
	code, _, errOut = run(t, "--database-url", db.URL, "run", "--listen", "127.0.0.1:0", "--seal-interval", "0", "--metrics-token", "short-s3cret")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "metrics-token: must be at least 16 characters")
	require.NotContains(t, errOut, "short-s3cret")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"auditworker", "--database-url", db.URL, "run", "--listen", "127.0.0.1:0", "--seal-interval", "0",
			"--verify-interval", "0", "--full-verify-interval", "0", "--partitions-interval", "0", "--metrics-token-file", file}, &out, &out)
	}()
	var base string
	require.Eventually(t, func() bool {
		m := regexp.MustCompile(`url=(http://127\.0\.0\.1:\d+)`).FindStringSubmatch(out.String())
		if m != nil {
			base = m[1]
		}
		return m != nil
	}, 20*time.Second, 50*time.Millisecond)
	status := func(auth string) int {
		req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusUnauthorized, status(""))
	require.Equal(t, http.StatusUnauthorized, status("Bearer not-the-token-000"))
	require.Equal(t, http.StatusOK, status("Bearer "+token))
	cancel()
	select {
	case code = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("run did not stop:\n%s", out.String())
	}
	logs := out.String()
	require.Equal(t, 0, code, logs)
	require.Contains(t, logs, "metrics_token=true")
	require.NotContains(t, logs, token)
}
