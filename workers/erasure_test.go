package workers

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/tests/harness"
)

const erasureRequestEnv = "AUDITDB_TEST_ERASURE_REQUEST"

// erasureHelper is the worker process TestErasureSurvivesKill kills: it
// erases its request and, once the first batch has committed, stops to
// wait for the SIGKILL.
func erasureHelper(ctx context.Context, d *Deps) int {
	id, err := strconv.ParseInt(os.Getenv(erasureRequestEnv), 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_, err = d.Erase(ctx, id, func(done, total int64) {
		fmt.Printf("PAUSED %d/%d\n", done, total)
		select {} // wait for SIGKILL
	})
	fmt.Fprintln(os.Stderr, "erasure helper: not killed:", err)
	return 1
}

// A worker killed in the middle of an erasure (after its first batch
// committed, during the second) leaves a request the next sweep completes:
// every row of the subject erased exactly once, sealed, and verification
// intact at each point.
func TestErasureSurvivesKill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	entry, err := integrity.GenerateSealKey("k1")
	require.NoError(t, err)
	keys, err := integrity.ParseSealKeys(entry, "")
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, principal_id, target_resource_type,
		target_resource_id, organization_id, source_ip, details, data_classification)
		SELECT now(), 'fhir.patient.read', 'success', 'dr-' || (g % 7), 'Patient',
		       CASE WHEN g % 2 = 0 THEN 'patient-42' ELSE 'patient-' || g END, 'org-1', '10.0.0.1', '{"a": 1}', 'PHI'
		FROM generate_series(1, 2400) g`)
	require.NoError(t, err)
	var id int64
	require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO audit.erasure_requests (resource_type, resource_id, reason) VALUES ('Patient', 'patient-42', 'test') RETURNING id`).Scan(&id))

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=erasure", helperDBEnv+"="+db.URL, erasureRequestEnv+"="+strconv.FormatInt(id, 10),
		"AUDIT_SEAL_KEYS="+entry, "AUDIT_SEAL_KEYS_FILE=", "AUDIT_SEAL_ACTIVE_KEY=")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "PAUSED 500/1200\n", line)
	require.NoError(t, cmd.Process.Kill()) // SIGKILL: no deferred cleanup runs
	_ = cmd.Wait()

	// half-done: 500 rows erased and sealed, the rest untouched, all verifying
	requireIntact(t, db.Pool, keys)
	require.EqualValues(t, 700, count(t, db.Pool, `SELECT count(*) FROM audit.audit_log WHERE target_resource_id = 'patient-42'`))
	require.EqualValues(t, 500, count(t, db.Pool, `SELECT count(*) FROM audit.redactions`))

	// the next sweep (the periodic job) finishes it
	d := &Deps{Pool: db.Pool, Keys: keys}
	require.NoError(t, d.ProcessErasures(ctx))
	requireIntact(t, db.Pool, keys)
	require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM audit.audit_log WHERE target_resource_id = 'patient-42'`))
	require.EqualValues(t, 1200, count(t, db.Pool, `SELECT count(*) FROM audit.redactions`))
	require.EqualValues(t, 1200, count(t, db.Pool, `SELECT count(DISTINCT row_id) FROM audit.redactions`), "each row erased once")
	require.EqualValues(t, 1200, count(t, db.Pool, `SELECT rows_done FROM audit.erasure_requests WHERE id = $1 AND status = 'done' AND resource_id IS NULL`, id))
}
