package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/embeddedpg"
	"github.com/auditdb/auditdb/internal/migrate"
	"github.com/auditdb/auditdb/tests/harness"
	"github.com/auditdb/auditdb/workers"
)

// lockedBuffer collects a process's output written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fillChains writes rows rows into each of chains chains (one open
// transaction per chain, so each takes a chain of its own).
func fillChains(t *testing.T, url string, chains, rows int) {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.MaxConns = int32(chains)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer pool.Close()
	txs := make([]pgx.Tx, chains)
	for i := range txs {
		txs[i], err = pool.Begin(ctx)
		require.NoError(t, err)
		_, err = txs[i].Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, principal_id)
			SELECT now(), 'fhir.patient.read', 'success', 'dr-' || g FROM generate_series(1, $1) g`, rows)
		require.NoError(t, err)
	}
	for _, tx := range txs {
		require.NoError(t, tx.Commit(ctx))
	}
}

func sealKey(t *testing.T, id string) string {
	t.Helper()
	e, err := integrity.GenerateSealKey(id)
	require.NoError(t, err)
	return e
}

func unsealed(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	var n int64
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT coalesce(sum(unsealed_rows), 0) FROM audit.integrity_status`).Scan(&n))
	return n
}

// runInProcess runs `auditworker run` until the returned stop is called; stop
// returns the exit code and the output.
func runInProcess(t *testing.T, args ...string) (stop func() (int, string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out lockedBuffer
	done := make(chan int, 1)
	go func() { done <- Run(ctx, append([]string{"auditworker"}, args...), &out, &out) }()
	var once sync.Once
	var code int
	stop = func() (int, string) {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("run did not stop:\n%s", out.String())
			}
		})
		return code, out.String()
	}
	t.Cleanup(func() { stop() })
	return stop
}

// A worker killed (SIGKILL) in the middle of a seal leaves whole checkpoints
// only; the next worker seals the rest and the log verifies with the keys.
func TestWorkerKilledInTheMiddleOfASeal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	fillChains(t, db.URL, 16, 20)
	key := sealKey(t, "k1")

	cmd := exec.Command(os.Args[0], "run", "--listen", "127.0.0.1:0", "--seal-interval", "1s",
		"--verify-interval", "0", "--full-verify-interval", "0", "--partitions-interval", "0")
	cmd.Env = append(os.Environ(), "AUDITWORKER_TEST_EXEC=1", "AUDIT_DB_URL="+db.URL, "AUDIT_SEAL_KEYS="+key,
		"AUDITWORKER_FAULT_SEAL_PAUSE=250ms")
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	checkpoints := func() int {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.integrity_checkpoints`).Scan(&n))
		return n
	}
	require.Eventually(t, func() bool { return checkpoints() >= 3 }, 20*time.Second, 20*time.Millisecond, "worker output:\n%s", out.String())
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	n := checkpoints()
	require.Less(t, n, 16, "killed before the seal finished")
	var running int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM `+migrate.RiverSchema+`.river_job
		WHERE kind = 'auditdb_seal' AND state = 'running'`).Scan(&running))
	// (two when a seal outlasted the 1 s interval under load, so that the
	// next period's job started beside it: both were killed)
	require.GreaterOrEqual(t, running, 1, "the killed seal job was in progress")
	// The killed process still holds River's leadership lease, which
	// expires on its own after about 15 s; expire it now to keep the test
	// short (River's own tests cover the expiry).
	_, err := db.Pool.Exec(ctx, `DELETE FROM `+migrate.RiverSchema+`.river_leader`)
	require.NoError(t, err)

	stop := runInProcess(t, "--database-url", db.URL, "run", "--listen", "127.0.0.1:0", "--seal-interval", "1s",
		"--verify-interval", "0", "--full-verify-interval", "0", "--partitions-interval", "0", "--seal-keys", key)
	require.Eventually(t, func() bool { return unsealed(t, db.Pool) == 0 }, 20*time.Second, 50*time.Millisecond)
	code, logs := stop()
	require.Equal(t, 0, code, logs)
	require.Equal(t, 16, checkpoints(), "one checkpoint per chain: none lost, none doubled")

	code, stdout, stderr := run(t, "--database-url", db.URL, "verify", "--json", "--seal-keys", key)
	require.Equal(t, 0, code, stderr)
	var rep integrity.Report
	require.NoError(t, json.Unmarshal([]byte(stdout), &rep))
	require.True(t, rep.MACsChecked)
	require.EqualValues(t, 320, rep.RowsChecked)
}

// `run` keeps working through a PostgreSQL crash and restart: writes after
// the restart are sealed and verified, and the log verifies.
func TestRunSurvivesPostgresRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t0 := time.Now()
	pg, err := embeddedpg.Start(ctx, embeddedpg.Config{Durable: true})
	require.NoError(t, err)
	defer func() { _ = pg.Stop() }()
	url := pg.URL("postgres")
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()
	_, err = migrate.Migrate(ctx, pool, migrate.Options{})
	require.NoError(t, err)
	key := sealKey(t, "k1")
	t.Logf("migrated after %s", time.Since(t0))

	stop := runInProcess(t, "--database-url", url, "run", "--listen", "127.0.0.1:0", "--seal-interval", "1s",
		"--verify-interval", "1s", "--full-verify-interval", "0", "--partitions-interval", "1h", "--seal-keys", key)
	fillChains(t, url, 3, 10)
	require.Eventually(t, func() bool { return unsealed(t, pool) == 0 }, 20*time.Second, 50*time.Millisecond)

	t.Logf("sealed before restart after %s", time.Since(t0))
	require.NoError(t, pg.Restart(ctx, "immediate"))
	t.Logf("restarted after %s", time.Since(t0))
	restarted := time.Now()
	require.Eventually(t, func() bool { return pool.Ping(ctx) == nil }, 20*time.Second, 50*time.Millisecond)
	fillChains(t, url, 3, 10)
	require.Eventually(t, func() bool {
		var verified bool
		require.NoError(t, pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM audit.verification_runs
			WHERE status = 'intact' AND started_at > $1)`, restarted).Scan(&verified))
		return unsealed(t, pool) == 0 && verified
	}, 30*time.Second, 100*time.Millisecond, "sealed and verified after the restart")
	t.Logf("sealed+verified after restart after %s", time.Since(t0))
	code, logs := stop()
	t.Logf("stopped after %s", time.Since(t0))
	require.Equal(t, 0, code, logs)

	code, _, stderr := run(t, "--database-url", url, "verify", "--seal-keys", key)
	require.Equal(t, 0, code, stderr)
}

func TestKeysSealStatusCommands(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := run(t, "keys", "generate", "--id", "k2026", "--json")
	require.Equal(t, 0, code, stderr)
	var gen struct {
		KeyID string `json:"key_id"`
		Entry string `json:"entry"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &gen))
	require.Equal(t, "k2026", gen.KeyID)
	k, err := integrity.ParseSealKeys(gen.Entry, "")
	require.NoError(t, err)
	require.Equal(t, "k2026", k.Active)
	code, _, stderr = run(t, "keys", "generate", "--id", "no spaces")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "id: key id must be")

	db := harness.NewDB(t)
	fillChains(t, db.URL, 2, 5)
	for _, args := range [][]string{
		{"--database-url", db.URL, "seal"},
		{"--database-url", db.URL, "run"},
	} {
		code, _, stderr = run(t, args...)
		require.Equal(t, 1, code)
		require.Contains(t, stderr, "no seal key configured: set AUDIT_SEAL_KEYS")
		require.Equal(t, 1, strings.Count(strings.TrimSpace(stderr), "\n")+1, "one line: %q", stderr)
	}
	code, _, stderr = run(t, "--database-url", db.URL, "run", "--seal-interval", "500ms")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "seal-interval: must be at least 1s, or 0 to disable, got 500ms")
	code, _, stderr = run(t, "--database-url", db.URL, "run", "--seal-keys", "k1:short")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `AUDIT_SEAL_KEYS: key "k1"`)
	require.NotContains(t, stderr, "short", "key material never in errors")

	code, stdout, stderr = run(t, "--database-url", db.URL, "seal", "--seal-keys", gen.Entry, "--json")
	require.Equal(t, 0, code, stderr)
	var rep workers.SealReport
	require.NoError(t, json.Unmarshal([]byte(stdout), &rep))
	require.Equal(t, 2, rep.Sealed())
	code, stdout, _ = run(t, "--database-url", db.URL, "seal", "--seal-keys", gen.Entry)
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "sealed 0 chain(s) with key k2026, 16 already sealed at their head")

	code, stdout, _ = run(t, "--database-url", db.URL, "verify", "--incremental", "--seal-keys", gen.Entry)
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "incremental verification INTACT: 10 rows")
	code, stdout, _ = run(t, "--database-url", db.URL, "verify", "--incremental", "--seal-keys", gen.Entry)
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "incremental verification INTACT: 0 rows", "seeded from the checkpoints")

	_, err = db.Pool.Exec(context.Background(), `INSERT INTO `+migrate.RiverSchema+`.river_job (kind, args, queue, state, max_attempts)
		VALUES ('auditdb_seal', '{}', 'auditdb', 'available', 5)`)
	require.NoError(t, err)
	code, stdout, _ = run(t, "--database-url", db.URL, "status")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "Jobs (River, by kind and state)")
	require.Regexp(t, `auditdb_seal\s+available\s+1`, stdout)
	code, stdout, _ = run(t, "--database-url", db.URL, "status", "--json")
	require.Equal(t, 0, code)
	var st struct {
		Jobs []workers.JobCount `json:"jobs"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &st))
	require.Equal(t, []workers.JobCount{{Kind: "auditdb_seal", State: "available", Count: 1}}, st.Jobs)
}

// `run` reloads a changed keys file on SIGHUP: a key added and made
// active (active=) seals from then on; a file that drops a key in use is
// refused with the keys in use kept, and no key material is ever logged.
func TestRunReloadsKeysOnHUP(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	k1, k2 := sealKey(t, "k1"), sealKey(t, "k2")
	file := filepath.Join(t.TempDir(), "keys")
	require.NoError(t, os.WriteFile(file, []byte(k1+"\n"), 0o600))

	cmd := exec.Command(os.Args[0], "run", "--listen", "127.0.0.1:0", "--seal-interval", "1s",
		"--verify-interval", "0", "--full-verify-interval", "0", "--partitions-interval", "0")
	cmd.Env = append(os.Environ(), "AUDITWORKER_TEST_EXEC=1", "AUDIT_DB_URL="+db.URL, "AUDIT_SEAL_KEYS_FILE="+file)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sealedBy := func(key string) bool {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit.integrity_checkpoints WHERE key_id = $1`, key).Scan(&n))
		return n > 0 && unsealed(t, db.Pool) == 0
	}
	fillChains(t, db.URL, 2, 5)
	require.Eventually(t, func() bool { return sealedBy("k1") }, 20*time.Second, 50*time.Millisecond, "output:\n%s", out.String())

	// rotation: k2 added and made active, then SIGHUP
	require.NoError(t, os.WriteFile(file, []byte(k1+"\n"+k2+"\nactive=k2\n"), 0o600))
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "seal keys reloaded") }, 10*time.Second, 20*time.Millisecond, "output:\n%s", out.String())
	fillChains(t, db.URL, 2, 5)
	require.Eventually(t, func() bool { return sealedBy("k2") }, 20*time.Second, 50*time.Millisecond, "output:\n%s", out.String())

	// a file without k1 is refused; sealing goes on with k2
	require.NoError(t, os.WriteFile(file, []byte(k2+"\n"), 0o600))
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(out.String(), `key \"k1\" is missing`) }, 10*time.Second, 20*time.Millisecond, "output:\n%s", out.String())
	fillChains(t, db.URL, 2, 5)
	require.Eventually(t, func() bool { return unsealed(t, db.Pool) == 0 }, 20*time.Second, 50*time.Millisecond)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "output:\n%s", out.String())
	for _, k := range []string{k1, k2} {
		require.NotContains(t, out.String(), strings.SplitN(k, ":", 2)[1], "key material in the log")
	}
	code, _, stderr := run(t, "--database-url", db.URL, "verify", "--seal-keys", k1+","+k2, "--seal-active-key", "k2")
	require.Equal(t, 0, code, stderr)
}
