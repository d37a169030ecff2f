package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/tests/harness"
	"github.com/auditdb/auditdb/workers"
)

func TestMain(m *testing.M) {
	// The test binary doubles as the auditworker binary for tests that
	// need a real process to kill (see startWorker).
	if os.Getenv("AUDITWORKER_TEST_EXEC") == "1" {
		faultHooks = faultHooksFromEnv
		if os.Getenv("AUDITWORKER_FAULT_DEMO_PANIC") == "1" {
			demoFault = func() { go func() { panic("injected by AUDITWORKER_FAULT_DEMO_PANIC") }() }
		}
		main()
	}
	harness.Main(m, harness.Options{S3: true})
}

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), append([]string{"auditworker"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestVerifyExitCodesAndJSON(t *testing.T) {
	t.Parallel()
	db := harness.NewDB(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, principal_id)
		SELECT now(), 'a', 'success', 'u' || g FROM generate_series(1, 200) g`)
	require.NoError(t, err)

	code, out, errOut := run(t, "--database-url", db.URL, "verify")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "verification INTACT: 200 rows")

	code, out, _ = run(t, "--database-url", db.URL, "verify", "--json")
	require.Equal(t, 0, code)
	var rep integrity.Report
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Equal(t, "intact", rep.Status)
	require.EqualValues(t, 200, rep.RowsChecked)

	_, err = db.Pool.Exec(ctx, `BEGIN; SET LOCAL session_replication_role = replica;
		UPDATE audit.audit_log SET principal_id = 'mallory' WHERE id = 17; COMMIT`)
	require.NoError(t, err)
	code, out, _ = run(t, "--database-url", db.URL, "verify")
	require.Equal(t, 2, code)
	require.Contains(t, out, "verification TAMPERED")
	require.Contains(t, out, "row_modified")
	require.NotContains(t, out, "mallory", "reports name positions, never values")

	code, out, _ = run(t, "--database-url", db.URL, "verify", "--json")
	require.Equal(t, 2, code)
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Len(t, rep.Findings, 1)
	require.EqualValues(t, 17, rep.Findings[0].RowID)
}

func TestCLIErrorsAreOneLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--database-url", "", "verify"}, "no database: set AUDIT_DB_URL or --database-url"},
		{[]string{"--database-url", "postgres://nobody@127.0.0.1:1/x?connect_timeout=2", "status"}, "connect to 127.0.0.1:1/x"},
		{[]string{"--database-url", "::not a url::", "verify"}, "database-url: not a valid PostgreSQL URL"},
	} {
		code, _, errOut := run(t, tc.args...)
		require.Equal(t, 1, code, tc.args)
		require.Contains(t, errOut, tc.want)
		require.Equal(t, 1, strings.Count(strings.TrimSpace(errOut), "\n")+1, "one line: %q", errOut)
	}
	db := harness.NewDB(t)
	code, _, errOut := run(t, "--database-url", db.URL, "verify", "--chain", "99")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "chain 99: no such chain")
	code, _, errOut = run(t, "--database-url", db.URL, "partitions", "ensure", "--months-ahead", "500")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "months-ahead: must be between 0 and 120")
	// --replica-url must name a standby of the database (tests/standby_verify_test.go reads one)
	for _, cmd := range [][]string{{"verify"}, {"run", "--seal-interval", "0", "--listen", "127.0.0.1:0"}} {
		code, _, errOut = run(t, append(append([]string{"--database-url", db.URL}, cmd...), "--replica-url", db.URL)...)
		require.Equal(t, 1, code, cmd)
		require.Contains(t, errOut, "the source is not a standby of the database: it is not in recovery", cmd)
	}
	// --slow-query-threshold parses as AUDIT_SLOW_QUERY_THRESHOLD does, in optimize and run alike
	for _, cmd := range [][]string{{"optimize", "report", "--slow-query-threshold", "1s"}, {"run", "--seal-interval", "0", "--listen", "127.0.0.1:0", "--slow-query-threshold", "1s"}} {
		code, _, errOut = run(t, append([]string{"--database-url", db.URL}, cmd...)...)
		require.Equal(t, 1, code, cmd)
		require.Contains(t, errOut, "slow-query-threshold: must be a whole number of milliseconds", cmd)
	}
	code, _, errOut = run(t, "--database-url", db.URL, "verify", "--replica-url", "::not a url::")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "replica-url: not a valid PostgreSQL URL")
}

func TestMigratePartitionsStatus(t *testing.T) {
	t.Parallel()
	db := harness.NewEmptyDB(t)
	code, out, errOut := run(t, "--database-url", db.URL, "migrate", "--dry-run")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "would apply")
	code, out, errOut = run(t, "--database-url", db.URL, "migrate")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "applied")
	require.Contains(t, out, "partitions created: audit_log_", "migrate creates the months a writer needs")
	code, out, _ = run(t, "--database-url", db.URL, "migrate")
	require.Equal(t, 0, code)
	require.Contains(t, out, "up to date")

	code, out, errOut = run(t, "--database-url", db.URL, "partitions", "ensure", "--months-ahead", "2", "--json")
	require.Equal(t, 0, code, errOut)
	var changes []partitionChangeRow
	require.NoError(t, json.Unmarshal([]byte(out), &changes))
	require.Len(t, changes, 3)
	for _, ch := range changes {
		require.False(t, ch.Created, "migrate made them already")
	}
	code, out, _ = run(t, "--database-url", db.URL, "partitions", "list")
	require.Equal(t, 0, code)
	require.Contains(t, out, "audit_log_default")
	require.Contains(t, out, "current")

	code, out, _ = run(t, "--database-url", db.URL, "status", "--json")
	require.Equal(t, 0, code)
	var st struct {
		Chains     []ChainStatus `json:"chains"`
		Partitions []Partition   `json:"partitions"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.Len(t, st.Chains, 16)
	require.Equal(t, "unverified", st.Chains[0].State)
	require.Len(t, st.Partitions, 5, "this month, three ahead, and the default")

	// a backfilled row lands in the default partition; rescue moves it
	_, err := db.Pool.Exec(context.Background(), `INSERT INTO audit_log ("timestamp", action, status) VALUES ('2019-07-04 00:00:00+00', 'old.event', 'success')`)
	require.NoError(t, err)
	code, out, errOut = run(t, "--database-url", db.URL, "partitions", "rescue", "--json")
	require.Equal(t, 0, code, errOut)
	changes = nil
	require.NoError(t, json.Unmarshal([]byte(out), &changes))
	require.Equal(t, []partitionChangeRow{{Partition: "audit_log_2019_07", Created: true, RowsMoved: 1}}, changes)
}

// make demo, small: its own PostgreSQL and worker, every step, the
// recomputed chain caught by its checkpoint.
func TestDemoEndToEnd(t *testing.T) {
	t.Parallel()
	code, out, errOut := run(t, "demo", "--writers", "2", "--events", "150")
	require.Equal(t, 0, code, errOut)
	for _, want := range []string{"every chain head is sealed", "0 rows still name the patient", "0 row finding(s) of kind row_modified",
		"checkpoint_mismatch", "verification TAMPERED", "caught by its sealed checkpoint",
		"anchored: bundle 1", "keyed verification alone now says: intact", "anchor_mismatch", "by the anchor (anchor_mismatch)"} {
		require.Contains(t, out, want)
	}
}

// faultHooksFromEnv is the tests' fault injection: with
// AUDITWORKER_FAULT_SEAL_PAUSE set to a duration, a seal sleeps that long
// after each chain, so a test can kill the process in the middle of a seal.
func faultHooksFromEnv() *workers.FaultHooks {
	if step := os.Getenv("AUDITWORKER_FAULT_ANCHOR_STOP"); step != "" {
		// an anchor stops dead at this step, announced on stdout, until
		// the test kills the process
		stop := func(at string) func(context.Context, int64) {
			return func(_ context.Context, n int64) {
				if at == step {
					fmt.Printf("PAUSED %s %d\n", at, n)
					select {}
				}
			}
		}
		return &workers.FaultHooks{AfterAnchorReserve: stop("reserved"), AfterAnchorPut: stop("put")}
	}
	d, err := time.ParseDuration(os.Getenv("AUDITWORKER_FAULT_SEAL_PAUSE"))
	if err != nil || d <= 0 {
		return nil
	}
	return &workers.FaultHooks{AfterSealChain: func(ctx context.Context, _ int16) {
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}}
}

// Every command that reads the schema, run against a database where
// auditdb is not installed, says on one line to run `auditworker migrate`,
// instead of PostgreSQL's "relation ... does not exist".
func TestCommandsOnDatabaseWithoutSchema(t *testing.T) {
	t.Parallel()
	db := harness.NewEmptyDB(t)
	key, err := integrity.GenerateSealKey("k1")
	require.NoError(t, err)
	for _, args := range [][]string{
		{"status"}, {"verify"}, {"verify", "--incremental", "--seal-keys", key}, {"seal", "--seal-keys", key},
		{"run", "--listen", "127.0.0.1:0", "--seal-keys", key},
		{"partitions", "list"}, {"partitions", "ensure"}, {"partitions", "rescue"},
		{"retention", "plan"}, {"alerts", "list"}, {"alerts", "evaluate"},
		{"report", "attestation"}, {"gdpr", "holds", "list"},
	} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			code, _, errOut := run(t, append([]string{"--database-url", db.URL}, args...)...)
			require.Equal(t, 1, code, errOut)
			require.Equal(t, "auditworker: "+errNoSchema.Error()+"\n", errOut)
		})
	}
}
